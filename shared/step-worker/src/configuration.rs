//! The step worker's configuration (every variable is in the README).

use std::sync::Arc;
use std::time::Duration;

use config::{ConfigError, Env, FromEnv};

/// `STEP_BUDGET_MS` (work per step, default 60,000; the step also ends before its invocation's
/// deadline, see [`crate::deadline`]), `STEP_CHUNK_CANDLES` (candles per commit at instant,
/// default 1,000), `STEP_MAX_RECEIVE_COUNT` (the queue's maxReceiveCount, default 5: the last
/// delivery of a failing step ends the session `failed` instead of leaving it to the dead-letter
/// queue), `STEP_RETRY_BASE_SECS` (a handled failure comes back after 5 s, then 4 times longer
/// each receive, at most 5 minutes), `STEP_IDLE_AFTER_SECS` (a paced session nobody watched for
/// this long runs at instant, default 120), `MODEL_MAX_FAILURES` (candles in a row whose model
/// call failed after its retries before the session fails, default 5),
/// `OPENROUTER_MAX_CONCURRENCY` (calls in flight at once per key, default 8); the evidence's
/// variables (see [`EvidenceConfig`]).
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    pub budget: Duration,
    pub chunk_candles: i64,
    pub max_receive_count: u32,
    pub retry_base: Duration,
    pub idle_after: Duration,
    pub max_model_failures: i32,
    /// Calls in flight at once per key (`OPENROUTER_MAX_CONCURRENCY`, default 8).
    pub max_concurrent_calls: usize,
    pub evidence: EvidenceConfig,
}

/// What the evidence on a result takes: `EVIDENCE_NULL_AGENTS` (random agents, default 1,000;
/// 0 turns them off), `EVIDENCE_BOOTSTRAP_RESAMPLES` (default 2,000; 0 turns the bootstrap off),
/// `MODEL_CUTOFFS_FILE` (a registry replacing the bundled `data/model-cutoffs.csv`, same format)
/// and `LEDGER_SIGNING_KEY` (required: the base64 of the 32-byte Ed25519 seed that signs ledgers;
/// a secret).
#[derive(Debug, Clone)]
pub struct EvidenceConfig {
    pub settings: evidence::Settings,
    pub registry: Arc<evidence::Registry>,
    pub key: Arc<evidence::ledger::SigningKey>,
}

impl FromEnv for EvidenceConfig {
    fn from_env(env: &Env<'_>) -> Result<Self, ConfigError> {
        let registry = match env.local_only("MODEL_CUTOFFS_FILE") {
            None => evidence::Registry::bundled(),
            Some(path) => {
                let text = std::fs::read_to_string(path.trim()).map_err(|e| {
                    ConfigError::invalid("MODEL_CUTOFFS_FILE", format!("unreadable: {e}"))
                })?;
                evidence::Registry::parse(&text)
                    .map_err(|e| ConfigError::invalid("MODEL_CUTOFFS_FILE", e.to_string()))?
            }
        };
        let key = evidence::ledger::SigningKey::from_base64(&env.require("LEDGER_SIGNING_KEY")?)
            .map_err(|e| ConfigError::invalid("LEDGER_SIGNING_KEY", e.to_string()))?;
        Ok(Self {
            settings: evidence::Settings {
                null_agents: env.number(
                    "EVIDENCE_NULL_AGENTS",
                    evidence::DEFAULT_NULL_AGENTS,
                    0..=evidence::ledger::MAX_DRAWS,
                )?,
                resamples: env.number(
                    "EVIDENCE_BOOTSTRAP_RESAMPLES",
                    evidence::DEFAULT_RESAMPLES,
                    0..=evidence::ledger::MAX_DRAWS,
                )?,
            },
            registry: Arc::new(registry),
            key: Arc::new(key),
        })
    }
}

impl FromEnv for WorkerConfig {
    fn from_env(env: &Env<'_>) -> Result<Self, ConfigError> {
        Ok(Self {
            budget: Duration::from_millis(env.number("STEP_BUDGET_MS", 60_000, 1..=840_000)?),
            chunk_candles: env.number("STEP_CHUNK_CANDLES", 1_000, 1..=50_000)?,
            max_receive_count: env.number("STEP_MAX_RECEIVE_COUNT", 5, 1..=1_000)?,
            retry_base: Duration::from_secs(env.number("STEP_RETRY_BASE_SECS", 5, 1..=300)?),
            idle_after: Duration::from_secs(env.number("STEP_IDLE_AFTER_SECS", 120, 1..=7_200)?),
            max_model_failures: env.number("MODEL_MAX_FAILURES", 5, 1..=1_000)?,
            max_concurrent_calls: env.number("OPENROUTER_MAX_CONCURRENCY", 8, 1..=64)?,
            evidence: EvidenceConfig::from_env(env)?,
        })
    }
}

/// The longest a failed step waits before it comes back.
pub const MAX_RETRY_DELAY: Duration = Duration::from_secs(300);

impl WorkerConfig {
    /// How long a message whose step failed (in a handled way) on its `receive_count`-th delivery
    /// stays invisible: `STEP_RETRY_BASE_SECS` x 4^(receive - 1), at most 5 minutes (5 s, 20 s,
    /// 80 s, 300 s: five receives span about 7 minutes, so a failover or a short outage is
    /// survived).
    pub fn retry_delay(&self, receive_count: u32) -> Duration {
        let factor = 4u32.saturating_pow(receive_count.saturating_sub(1).min(8));
        self.retry_base.saturating_mul(factor).min(MAX_RETRY_DELAY)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_back_off_five_then_four_times_longer_up_to_five_minutes() {
        let config = WorkerConfig::from_env(&Env::from_lookup(|name| {
            (name == "LEDGER_SIGNING_KEY")
                .then(|| "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=".into())
        }))
        .unwrap();
        let delays: Vec<u64> = (1..=6).map(|n| config.retry_delay(n).as_secs()).collect();
        assert_eq!(delays, [5, 20, 80, 300, 300, 300]);
        // the four waits between five receives
        assert_eq!(delays[..4].iter().sum::<u64>(), 405);
    }
}
