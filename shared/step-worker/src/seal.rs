//! What a result carries besides its metrics (issue 25), built by the step that writes it, from
//! the run's own candles and decisions, with no model call and no request: the signed ledger of
//! every candle the engine saw and every decision it applied, a replay of the engine over it, the
//! evidence figures of that replay (which is what anyone re-running `verify-ledger` recomputes)
//! and the methodology card.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use engine::baseline::{Baseline, Kind};
use engine::metrics::EquityPoint;
use engine::{Action, Candle, Engine, Metrics, Order};
use evidence::ledger::{self, Applied, Entry, Header, Source};
use serde_json::json;
use store::steps::Sealed;
use uuid::Uuid;

use crate::run::Run;
use crate::worker::{StepError, Worker};

/// The engine's fill rules, in words (the methodology card's `fill_policy`).
pub const FILL_POLICY: &str = "market orders fill at the decided candle's close with slippage against the trader and the fee on the notional; stop-loss, take-profit and liquidation are checked on each later candle's range, the stop-loss before the take-profit inside one candle; a gap through a level fills at the candle's open; an open position closes at the last decided candle's close";

/// Where the candles come from (`data_source`).
pub const DATA_SOURCE: &str = "binance-spot-klines";

fn rfc3339(ms: i64) -> Option<String> {
    DateTime::<Utc>::from_timestamp_millis(ms)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
}

/// The decision a stored model answer applied, as the ledger records it.
fn model_decision(d: &store::steps::LedgerDecision) -> Applied {
    let failed = d.error.is_some();
    let action = match failed {
        true => Action::Hold,
        false => Action::parse(&d.action).unwrap_or(Action::Hold),
    };
    Applied {
        action,
        order: matches!(action, Action::Long | Action::Short).then(|| {
            d.order_details
                .clone()
                .and_then(|v| serde_json::from_value::<Order>(v).ok())
                .unwrap_or_default()
        }),
        source: match (failed, d.from_cache) {
            (true, _) => Source::Fallback,
            (false, true) => Source::Cache,
            (false, false) => Source::Model,
        },
        prompt_sha256: d.prompt_hash.clone(),
        answer_sha256: d.answer_hash.clone(),
    }
}

/// A decision without a stored answer: HOLD, as the engine took it.
fn missing() -> Applied {
    Applied {
        action: Action::Hold,
        order: None,
        source: Source::Fallback,
        prompt_sha256: None,
        answer_sha256: None,
    }
}

impl Worker {
    /// The result's evidence, methodology card and signed ledger; `None` (logged) when the
    /// run's candles cannot be read back as it saw them: the result is written without them.
    pub(crate) async fn seal(
        &self,
        run: &Run,
        result_id: Uuid,
        metrics: &Metrics,
        points: &[EquityPoint],
        economics: &store::sessions::Economics,
    ) -> Result<Option<Sealed>, StepError> {
        let started = std::time::Instant::now();
        let config = run.engine.config().clone();
        let tf = config.timeframe;
        let step_ms = tf.millis();
        // the decided candles are the ones with an equity point
        let times: Vec<i64> = points.iter().map(|p| p.time).collect();
        let first_ms = times.first().copied().unwrap_or(run.start_ms);
        let decided: Vec<Candle> = match (times.first(), times.last()) {
            (Some(&first), Some(&last)) => {
                let rows = store::market_data::range(
                    &self.pool,
                    &config.asset,
                    tf.as_str(),
                    first,
                    last + 1,
                )
                .await?;
                let by_time: HashMap<i64, Candle> = rows
                    .into_iter()
                    .map(|r| (r.0, crate::candles::candle(r)))
                    .collect();
                times
                    .iter()
                    .filter_map(|t| by_time.get(t).copied())
                    .collect()
            }
            _ => Vec::new(),
        };
        if decided.len() != times.len() {
            tracing::error!(
                session_id = %run.session_id,
                decided = times.len(),
                found = decided.len(),
                "the result's candles are no longer all cached: written without evidence"
            );
            return Ok(None);
        }
        let warm: Vec<Candle> = store::market_data::window(
            &self.pool,
            &config.asset,
            tf.as_str(),
            i64::from(run.warmup_candles),
            first_ms,
            first_ms,
            0,
        )
        .await?
        .into_iter()
        .map(crate::candles::candle)
        .collect();
        let baseline = Kind::from_model(&run.model);
        let decisions: Vec<Applied> = match baseline {
            Some(kind) => {
                // a baseline decides from the engine's state alone: the same engine gives the
                // same decisions again
                let mut engine = Engine::new(config.clone())?;
                let b = Baseline::new(kind, engine.indicators())
                    .map_err(engine::engine::EngineError::from)?;
                for c in &warm {
                    engine.warm(*c)?;
                }
                let mut out = Vec::with_capacity(decided.len());
                for c in &decided {
                    let ctx = engine.observe(*c)?;
                    let d = b.decide(&ctx);
                    engine.apply(&d)?;
                    out.push(Applied {
                        action: d.action,
                        order: matches!(d.action, Action::Long | Action::Short).then_some(d.order),
                        source: Source::Baseline,
                        prompt_sha256: None,
                        answer_sha256: None,
                    });
                }
                out
            }
            None => {
                let stored: HashMap<i64, store::steps::LedgerDecision> =
                    store::steps::ledger_decisions(&self.pool, run.user_id, run.session_id)
                        .await?
                        .into_iter()
                        .map(|d| (d.candle_index, d))
                        .collect();
                (0..decided.len() as i64)
                    .map(|i| stored.get(&i).map_or_else(missing, model_decision))
                    .collect()
            }
        };
        let w = warm.len() as i64;
        let entries: Vec<Entry> = warm
            .iter()
            .enumerate()
            .map(|(i, c)| Entry {
                n: i as i64 - w,
                candle: *c,
                decision: None,
            })
            .chain(
                decided
                    .iter()
                    .zip(decisions)
                    .enumerate()
                    .map(|(i, (c, d))| Entry {
                        n: i as i64,
                        candle: *c,
                        decision: Some(d),
                    }),
            )
            .collect();

        let cutoff = self.config.evidence.registry.cutoff(&run.model);
        let settings = self.config.evidence.settings;
        let seed = evidence::seed_of(result_id.as_bytes());
        let header = Header {
            version: ledger::VERSION,
            result_id: result_id.to_string(),
            session_id: run.session_id.to_string(),
            config: config.clone(),
            seed: seed.to_string(),
            null_agents: settings.null_agents,
            resamples: settings.resamples,
            model_cutoff: cutoff.map(|(d, _)| d.format("%Y-%m-%d").to_string()),
        };
        let run_metrics = metrics.summary_json();
        let key = self.config.evidence.key.clone();
        // CPU work (the replay, the random agents, the bootstrap, the hashes): off the runtime
        let built = tokio::task::spawn_blocking(move || {
            let replay = ledger::replay(header.clone(), &entries)
                .map_err(|(i, why)| format!("the replay stops at candle line {i}: {why}"))?;
            let replayed = replay.metrics.summary_json();
            let evidence = replay.evidence(evidence::threads())?;
            let evidence = serde_json::to_value(&evidence).map_err(|e| e.to_string())?;
            let mut writer = ledger::Writer::new(&header);
            for e in &entries {
                writer.entry(e);
            }
            let (lines, head) = writer.seal(&header.result_id, &run_metrics, &evidence, &key);
            Ok::<_, String>((replayed == run_metrics, evidence, lines, head, key))
        })
        .await
        .map_err(|e| format!("the evidence task stopped: {e}"));
        let (same, evidence, lines, head, key) = match built.and_then(|r| r) {
            Ok(b) => b,
            Err(why) => {
                tracing::error!(session_id = %run.session_id, %why, "no evidence for the result");
                return Ok(None);
            }
        };
        if !same {
            // the ledger would not verify: a defect to look into, never hidden
            tracing::error!(
                session_id = %run.session_id,
                "the replay of the ledger gives other metrics than the run"
            );
        }
        let window = match (baseline, decided.first(), decided.last()) {
            (Some(_), _, _) => evidence::Window::NotApplicable,
            (None, Some(f), Some(l)) => {
                evidence::cutoff::window(cutoff.map(|c| c.0), f.time, l.time, step_ms)
            }
            (None, _, _) => evidence::Window::Unknown,
        };
        let expected = match (decided.first(), decided.last()) {
            (Some(f), Some(l)) => (l.time - f.time) / step_ms + 1,
            _ => 0,
        };
        let model = baseline.is_none();
        let methodology = json!({
            "asset": config.asset,
            "timeframe": tf.as_str(),
            "first_candle": decided.first().and_then(|c| rfc3339(c.time)),
            "last_candle": decided.last().and_then(|c| rfc3339(c.time)),
            "candles": decided.len(),
            "warmup_candles": warm.len(),
            "gaps": expected - decided.len() as i64,
            "data_source": DATA_SOURCE,
            "fill_policy": FILL_POLICY,
            "fee_bps": config.fee_bps,
            "slippage_bps": config.slippage_bps,
            "leverage": config.max_leverage,
            "safety_mode": config.safety,
            "model": run.model,
            "temperature": model.then_some(run.temperature),
            "max_tokens": model.then_some(crate::decider::MAX_TOKENS),
            "mode": run.mode,
            "lookahead": model.then_some(run.lookahead_asked),
            "decisions": decided.len(),
            "cached_decisions": economics.cached_decisions,
            "model_cost_usd": economics.model_cost_usd,
            "model_cutoff": cutoff.map(|(d, _)| d.format("%Y-%m-%d").to_string()),
            "model_cutoff_source": cutoff.map(|(_, s)| s.to_owned()),
            "window_vs_cutoff": window,
            "evidence_grade": evidence::cutoff::grade(baseline.is_some(), run.forward(), window),
        });
        tracing::info!(
            session_id = %run.session_id,
            lines = lines.len(),
            ms = started.elapsed().as_millis() as u64,
            "evidence and ledger built"
        );
        Ok(Some(Sealed {
            evidence,
            methodology,
            head,
            key_id: key.key_id.clone(),
            public_key: key.public_key.clone(),
            chunks: store::ledger::chunks(&lines),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_answer_is_a_fallback_hold_and_a_reused_one_a_cache() {
        let d = store::steps::LedgerDecision {
            candle_index: 0,
            action: "long".into(),
            order_details: Some(json!({"size": 0.5, "leverage": 2})),
            prompt_hash: Some("p".into()),
            answer_hash: Some("a".into()),
            error: None,
            from_cache: true,
        };
        let a = model_decision(&d);
        assert_eq!(a.source, Source::Cache);
        assert_eq!(a.order.unwrap().size, Some(0.5));
        let failed = model_decision(&store::steps::LedgerDecision {
            error: Some("unreadable".into()),
            ..d
        });
        assert_eq!(
            (failed.action, failed.source),
            (Action::Hold, Source::Fallback)
        );
        assert!(failed.order.is_none());
    }
}
