//! One step of a backtest (DESIGN sections 5 and 5b).
//!
//! A step restores the engine from the session's checkpoint and processes candles until its time
//! budget is spent, the session ends, or a control says pause or stop:
//! - paced speeds (slow 1.0 s, normal 0.5 s, fast 0.2 s per candle) commit and publish candle by
//!   candle; a paced session nobody has watched for two minutes runs at instant until a
//!   subscriber shows up again (the result is the same);
//! - at instant a chunk of candles (at most `STEP_CHUNK_CANDLES`, or two seconds of work) is
//!   committed at once and its events go out packed into `batch` frames;
//! - each commit writes the trades, the checkpoint and the cursor in one transaction conditional
//!   on the version read; a stale or duplicate message changes nothing;
//! - a model decision is stored the moment it returns and reused on replay;
//! - at the end (last candle, or a stop) the position is closed at the last close, the result,
//!   a notification and an activity entry are written, and `session_completed` is published;
//! - then the next step is sent, unless the session is paused or over.
//!
//! One log line per step.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use adapters::binance::Binance;
use adapters::crypto::{Keyring, Sealed};
use adapters::openrouter::{KeyLimiter, OpenRouter, OpenRouterError, ResponseFormat, RetryPolicy};
use aws_lambda_events::event::sqs::SqsMessage;
use chrono::{DateTime, SecondsFormat, Utc};
use engine::baseline::{Baseline, Kind};
use engine::{Action, Candle, Decision, Engine, EngineConfig, Metrics, Position, Timeframe, Trade};
use platform::{ConfigError, Env, FromEnv};
use realtime::events::{
    AgentSummary, AiDecision, CandleData, Event, PositionClosed, PositionOpened, Progress,
    SessionCompleted, SessionFailed, SessionInitialized, StatsUpdate,
};
use realtime::{Envelope, Publisher};
use serde_json::Value;
use sqlx::PgPool;
use store::sessions::SessionResult;
use store::steps::{self, Commit, Committed, Finish, StepState, Thought};
use uuid::Uuid;

use crate::decider::{Decider, Fatal, Model, decision_of, is_failed_call};
use crate::queue::{StepMessage, StepQueue};

/// `STEP_BUDGET_MS` (work per step, default 60,000; the function timeout is twice that and the
/// queue's visibility timeout six times the function timeout), `STEP_CHUNK_CANDLES` (candles per
/// commit at instant, default 1,000), `STEP_MAX_RECEIVE_COUNT` (the queue's maxReceiveCount,
/// default 5: the last delivery of a failing step ends the session `failed` instead of leaving
/// it to the dead-letter queue), `MODEL_MAX_FAILURES` (candles in a row whose model call failed
/// after its retries before the session fails, default 5), `OPENROUTER_MAX_CONCURRENCY` (calls
/// in flight at once per key, default 8).
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    pub budget: Duration,
    pub chunk_candles: i64,
    pub max_receive_count: u32,
    pub max_model_failures: i32,
    /// Calls in flight at once per key (`OPENROUTER_MAX_CONCURRENCY`, default 8).
    pub max_concurrent_calls: usize,
}

impl FromEnv for WorkerConfig {
    fn from_env(env: &Env<'_>) -> Result<Self, ConfigError> {
        Ok(Self {
            budget: Duration::from_millis(env.number("STEP_BUDGET_MS", 60_000, 1..=840_000)?),
            chunk_candles: env.number("STEP_CHUNK_CANDLES", 1_000, 1..=50_000)?,
            max_receive_count: env.number("STEP_MAX_RECEIVE_COUNT", 5, 1..=1_000)?,
            max_model_failures: env.number("MODEL_MAX_FAILURES", 5, 1..=1_000)?,
            max_concurrent_calls: env.number("OPENROUTER_MAX_CONCURRENCY", 8, 1..=64)?,
        })
    }
}

/// Candles a model is asked about at once, by default and at most (the start body's `lookahead`).
pub const DEFAULT_LOOKAHEAD: usize = 4;
pub const MAX_LOOKAHEAD: usize = 16;

/// A paced session unwatched this long runs at instant (DESIGN 5b).
pub const IDLE_AFTER: Duration = Duration::from_secs(120);
/// At instant, a chunk is committed after this much work even if it is not full, so a pause or
/// a stop takes effect within about this long.
pub const CHUNK_TIME: Duration = Duration::from_secs(2);

/// Seconds per candle at `speed` (0 at instant).
pub fn pace(speed: &str) -> Duration {
    match speed {
        "slow" => Duration::from_millis(1000),
        "normal" => Duration::from_millis(500),
        "fast" => Duration::from_millis(200),
        _ => Duration::ZERO,
    }
}

/// Where a test kills a step (the invocation dies there: nothing after it happens and the
/// message comes back after its visibility timeout). Each point fires once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KillPoint {
    /// After the n-th model answer was stored (1-based, counted across steps from the first
    /// arming).
    AfterModelCall(usize),
    /// After the n-th candle was processed in memory, before its commit.
    MidChunk(usize),
    /// After the n-th step's last commit, before the next step is sent.
    AfterCommitBeforeSend(usize),
}

/// Fault injection for tests; empty in production.
#[derive(Debug, Default)]
pub struct Faults {
    /// Whether any point is armed: production never takes the lock.
    any: AtomicBool,
    armed: Mutex<Vec<KillPoint>>,
    model_calls: AtomicUsize,
    candles: AtomicUsize,
    sends: AtomicUsize,
}

impl Faults {
    pub fn arm(&self, point: KillPoint) {
        self.armed
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(point);
        self.any.store(true, Ordering::SeqCst);
    }

    fn hit(&self, matches: impl Fn(&KillPoint) -> bool) {
        let mut armed = self.armed.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(i) = armed.iter().position(matches) {
            let point = armed.remove(i);
            drop(armed);
            panic!("injected fault: the step dies at {point:?}");
        }
    }

    fn model_call(&self) {
        if !self.any.load(Ordering::Relaxed) {
            return;
        }
        let n = self.model_calls.fetch_add(1, Ordering::SeqCst) + 1;
        self.hit(|p| *p == KillPoint::AfterModelCall(n));
    }

    fn candle(&self) {
        if !self.any.load(Ordering::Relaxed) {
            return;
        }
        let n = self.candles.fetch_add(1, Ordering::SeqCst) + 1;
        self.hit(|p| *p == KillPoint::MidChunk(n));
    }

    fn before_send(&self) {
        if !self.any.load(Ordering::Relaxed) {
            return;
        }
        let n = self.sends.fetch_add(1, Ordering::SeqCst) + 1;
        self.hit(|p| *p == KillPoint::AfterCommitBeforeSend(n));
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StepError {
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    #[error(transparent)]
    Source(#[from] crate::candles::SourceError),
    #[error(transparent)]
    Queue(#[from] crate::queue::QueueError),
    #[error("engine: {0}")]
    Engine(#[from] engine::engine::EngineError),
}

/// How a step ended (for its log line and for tests).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The session is gone.
    Gone,
    /// The message's version is not the session's: nothing done.
    Stale,
    /// The session was already over.
    Over,
    /// Candles processed; the next step was sent.
    Continued,
    /// Paused: no step sent (resume sends one).
    Paused,
    /// The session ended with this status.
    Ended(String),
}

/// The step worker, built once per cold start.
#[derive(Clone)]
pub struct Worker {
    pub pool: PgPool,
    pub publisher: Arc<Publisher>,
    pub queue: StepQueue,
    pub keys: Arc<Keyring>,
    pub openrouter: OpenRouter,
    pub binance: Binance,
    pub config: WorkerConfig,
    pub retry: RetryPolicy,
    pub faults: Arc<Faults>,
}

/// The agent as the session snapshot holds it.
#[derive(Debug, Clone, serde::Deserialize)]
struct Snapshot {
    name: String,
    model: String,
    mode: String,
    #[serde(default)]
    strategy_prompt: String,
    #[serde(default = "default_temperature")]
    temperature: f64,
    #[serde(default)]
    api_key_id: Option<Uuid>,
}

fn default_temperature() -> f64 {
    store::agents::DEFAULT_TEMPERATURE
}

fn rfc3339(ms: i64) -> String {
    DateTime::from_timestamp_millis(ms)
        .map(|d| d.to_rfc3339_opts(SecondsFormat::Secs, true))
        .unwrap_or_default()
}

/// How a window ended.
enum Window {
    /// This many candles were decided and applied.
    Accepted(usize),
    /// Another delivery committed first.
    Stale,
    /// The session cannot go on.
    Failed(String),
    /// The next call could exceed the session's `budget_usd`.
    Budget,
}

/// Where a window's answer came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Source {
    /// This session's stored decision (a replay).
    Stored,
    /// Paid for by this session (now, or before a crash).
    Paid,
    /// An earlier session's identical request.
    Cache,
}

/// The state of one step's run between commits.
struct Run {
    user_id: Uuid,
    session_id: Uuid,
    version: i64,
    /// The version of the message this step handles.
    step_version: i64,
    status: String,
    speed: String,
    cursor: i64,
    total: i64,
    engine: Engine,
    events: Vec<Event>,
    trades: Vec<Trade>,
    watched_at: Option<DateTime<Utc>>,
    model_failures: i32,
    started_at: DateTime<Utc>,
    mode: String,
    starting_capital: f64,
    api_key_id: Option<Uuid>,
    /// Candles asked at once (1..16); halved after a 429 for the rest of the step.
    lookahead: usize,
    /// Bypass the decision cache (`fresh_decisions`).
    fresh: bool,
    budget_usd: Option<f64>,
    /// Model cost so far, this step's calls included.
    spent_usd: f64,
    /// The dearest call seen in this step (the budget's estimate when no price is listed).
    max_call_cost: Option<f64>,
    /// This session's decisions stored beyond the checkpoint, by candle index (a replay).
    replay: HashMap<i64, Thought>,
}

fn stats_of(engine: &Engine) -> StatsUpdate {
    let m = engine.metrics();
    StatsUpdate {
        equity: m.final_equity,
        total_return_pct: m.total_return_pct,
        total_trades: m.total_trades,
        win_rate_pct: m.win_rate_pct,
        max_drawdown_pct: m.max_drawdown_pct,
    }
}

fn opened_event(p: &Position) -> Event {
    Event::PositionOpened(PositionOpened {
        trade_no: p.trade_no,
        side: p.side.as_str().into(),
        time: rfc3339(p.entry_time),
        entry_price: p.entry_price,
        quantity: p.quantity,
        leverage: p.leverage,
        stop_loss: p.stop_loss,
        take_profit: p.take_profit,
    })
}

fn closed_event(t: &Trade) -> Event {
    Event::PositionClosed(PositionClosed {
        trade_no: t.trade_no,
        side: t.side.as_str().into(),
        time: rfc3339(t.exit_time),
        entry_price: t.entry_price,
        exit_price: t.exit_price,
        pnl: t.pnl,
        pnl_pct: t.pnl_pct,
        exit_type: t.exit_type.as_str().into(),
    })
}

impl Worker {
    /// Handles one SQS record. `Err` leaves the message to the queue, made visible again at once
    /// (a handled failure); on its last delivery the session fails instead.
    pub async fn handle(&self, record: SqsMessage) -> Result<(), StepError> {
        let started = Instant::now();
        let receive_count: u32 = record
            .attributes
            .get("ApproximateReceiveCount")
            .and_then(|v| v.parse().ok())
            .unwrap_or(1);
        let Some(message) = record
            .body
            .as_deref()
            .and_then(|b| serde_json::from_str::<StepMessage>(b).ok())
        else {
            tracing::error!(message_id = ?record.message_id, "unreadable step message dropped");
            return Ok(());
        };
        let span = tracing::info_span!("step", session_id = %message.session_id,
            user_id = %message.user_id, version = message.version, receive_count);
        let _guard = span.enter();
        // boxed: the step future is deep, and callers (the runtime, the local poller) stay simple
        match Box::pin(self.run(&message)).await {
            Ok((outcome, candles)) => {
                tracing::info!(outcome = ?outcome, candles, elapsed_ms = started.elapsed().as_millis() as u64, "step done");
                Ok(())
            }
            Err(e) if receive_count >= self.config.max_receive_count => {
                tracing::error!(error = %e, "step failed on its last delivery; the session fails");
                self.fail(&message, &format!("the backtest could not continue: {e}"))
                    .await?;
                Ok(())
            }
            Err(e) => {
                tracing::warn!(error = %e, elapsed_ms = started.elapsed().as_millis() as u64, "step failed; retried now");
                if let Some(receipt) = &record.receipt_handle
                    && let Err(q) = self.queue.retry_now(receipt).await
                {
                    tracing::warn!(error = %q, "could not make the message visible again");
                }
                Err(e)
            }
        }
    }

    /// Ends the session `failed` for `reason` (its checkpoint as it is).
    async fn fail(&self, message: &StepMessage, reason: &str) -> Result<(), StepError> {
        let Some(s) = steps::load(&self.pool, message.user_id, message.session_id).await? else {
            return Ok(());
        };
        if s.completed_at.is_some() {
            return Ok(());
        }
        let committed = steps::commit(
            &self.pool,
            &Commit {
                user_id: s.user_id,
                session_id: s.id,
                version: s.version,
                step_version: message.version,
                checkpoint: s.checkpoint.as_ref().unwrap_or(&Value::Null),
                cursor: s.cursor,
                total_candles: s.total_candles.unwrap_or(0),
                trades: &[],
                events: 1,
                live_stats: &Value::Null,
                last_watched_at: None,
                model_failures: s.model_failures,
                finish: Some(Finish::Failed { reason }),
            },
        )
        .await?;
        if let Some(c) = committed {
            let event = Event::SessionFailed(SessionFailed {
                reason: reason.into(),
            });
            let envelope = Envelope::session(s.id, c.last_seq as u64, &event, Utc::now());
            self.publisher.publish(s.id, &[envelope]).await;
        }
        Ok(())
    }

    /// The step itself: the outcome and how many candles it processed.
    async fn run(&self, message: &StepMessage) -> Result<(Outcome, i64), StepError> {
        let started = Instant::now();
        let Some(s) = steps::load(&self.pool, message.user_id, message.session_id).await? else {
            return Ok((Outcome::Gone, 0));
        };
        let active = s.completed_at.is_none()
            && matches!(s.status.as_str(), "pending" | "running" | "stopped");
        let mut version = s.version;
        if s.version != message.version {
            if !(active && message.version < s.version) {
                return Ok((Outcome::Stale, 0));
            }
            if s.chain_version == s.version {
                // the step that made this version ended; its message for the next step may never
                // have been sent (the invocation died before): send it again (SQS drops a copy
                // sent within five minutes; a later one is found stale)
                self.queue
                    .send(&StepMessage {
                        version: s.version,
                        ..*message
                    })
                    .await?;
                return Ok((Outcome::Stale, 0));
            }
            if s.step_version != Some(message.version) {
                // an old duplicate: the chain is someone else's to continue
                return Ok((Outcome::Stale, 0));
            }
            // this message's step died after committing some of its work: go on from there
            version = s.version;
        }
        if s.completed_at.is_some() || matches!(s.status.as_str(), "completed" | "failed") {
            return Ok((Outcome::Over, 0));
        }
        let snapshot: Snapshot = match serde_json::from_value(s.agent_snapshot.clone()) {
            Ok(snapshot) => snapshot,
            Err(e) => {
                self.fail(message, &format!("unreadable agent snapshot: {e}"))
                    .await?;
                return Ok((Outcome::Ended("failed".into()), 0));
            }
        };
        let (Some(start), Some(end), Some(timeframe)) =
            (s.start_date, s.end_date, Timeframe::parse(&s.timeframe))
        else {
            self.fail(message, "the session has no date range").await?;
            return Ok((Outcome::Ended("failed".into()), 0));
        };
        let (start_ms, end_ms) = (start.timestamp_millis(), end.timestamp_millis());
        // the first step (no checkpoint yet) makes sure the candles are cached and counts them
        let total = if s.checkpoint.is_some() {
            s.total_candles.unwrap_or(0)
        } else {
            crate::candles::ensure_cached(
                &self.pool,
                &self.binance,
                &s.asset,
                timeframe,
                start_ms,
                end_ms,
            )
            .await?
        };
        let engine = match &s.checkpoint {
            Some(c) if !c.is_null() => Engine::restore(c)?,
            _ => {
                let config: EngineConfig = serde_json::from_value(s.config["engine"].clone())
                    .map_err(|e| engine::engine::EngineError::Config(e.to_string()))?;
                Engine::new(config)?
            }
        };
        let mut decider = match self.decider(&s, &snapshot, &engine).await? {
            Ok(decider) => decider,
            Err(reason) => {
                self.fail(message, &reason).await?;
                return Ok((Outcome::Ended("failed".into()), 0));
            }
        };
        let mut run = Run {
            user_id: s.user_id,
            session_id: s.id,
            version,
            step_version: message.version,
            status: s.status.clone(),
            speed: s.speed.clone(),
            cursor: s.cursor,
            total,
            engine,
            events: Vec::new(),
            trades: Vec::new(),
            watched_at: s.last_watched_at,
            model_failures: s.model_failures,
            started_at: s.started_at.unwrap_or_else(Utc::now),
            mode: snapshot.mode.clone(),
            starting_capital: s.starting_capital,
            api_key_id: snapshot.api_key_id,
            lookahead: s.config["lookahead"]
                .as_u64()
                .map_or(DEFAULT_LOOKAHEAD, |k| {
                    k.clamp(1, MAX_LOOKAHEAD as u64) as usize
                }),
            fresh: s.config["fresh_decisions"].as_bool().unwrap_or(false),
            budget_usd: s.config["budget_usd"].as_f64(),
            spent_usd: match s.config["budget_usd"].as_f64() {
                Some(_) => {
                    store::sessions::economics(&self.pool, s.user_id, s.id)
                        .await?
                        .model_cost_usd
                }
                None => 0.0,
            },
            max_call_cost: None,
            replay: HashMap::new(),
        };
        if matches!(decider, Decider::Model(_)) {
            // decisions stored beyond the checkpoint (the step before died after storing them):
            // read once, used as their candles come
            run.replay = steps::thoughts(&self.pool, s.user_id, s.id, s.cursor, i64::MAX)
                .await?
                .into_iter()
                .map(|t| (t.candle_index, t))
                .collect();
        }
        if s.checkpoint.is_none() {
            run.events
                .push(Event::SessionInitialized(SessionInitialized {
                    asset: s.asset.clone(),
                    timeframe: s.timeframe.clone(),
                    total_candles: total.max(0) as u64,
                    starting_capital: s.starting_capital,
                    speed: s.speed.clone(),
                    agent: AgentSummary {
                        name: snapshot.name.clone(),
                        model: snapshot.model.clone(),
                        mode: snapshot.mode.clone(),
                    },
                }));
        }
        let processed_before = run.cursor;
        let outcome = self
            .drive(&mut run, &mut decider, start_ms, end_ms, started)
            .await?;
        let processed = run.cursor - processed_before;
        if matches!(outcome, Outcome::Continued | Outcome::Paused)
            && !steps::close_step(&self.pool, run.user_id, run.session_id, run.version).await?
        {
            return Ok((Outcome::Stale, processed));
        }
        if outcome == Outcome::Continued {
            self.faults.before_send();
            self.queue
                .send(&StepMessage {
                    version: run.version,
                    ..*message
                })
                .await?;
        }
        Ok((outcome, processed))
    }

    /// The session's decider; `Err` is why the session cannot run (no usable key).
    async fn decider(
        &self,
        s: &StepState,
        snapshot: &Snapshot,
        engine: &Engine,
    ) -> Result<Result<Decider, String>, StepError> {
        if let Some(kind) = Kind::from_model(&snapshot.model) {
            return Ok(Baseline::new(kind, engine.indicators())
                .map(Decider::Baseline)
                .map_err(|e| format!("baseline: {e}")));
        }
        let Some(store::api_keys::SessionKey {
            key: stored,
            status,
            status_reason: reason,
        }) = store::api_keys::for_session(&self.pool, s.user_id, snapshot.api_key_id).await?
        else {
            return Ok(Err(
                "no OpenRouter key: the agent's key was deleted and there is no default key".into(),
            ));
        };
        if matches!(status.as_str(), "invalid" | "no_credits") {
            return Ok(Err(format!(
                "the OpenRouter key is {status}: {}",
                reason.unwrap_or_default()
            )));
        }
        let sealed = Sealed {
            version: stored.key_version,
            bytes: stored.encrypted_key,
        };
        let key = match self.keys.open(stored.user_id, stored.id, &sealed) {
            Ok(key) => key,
            Err(e) => {
                tracing::error!(error = %e, "a stored key does not decrypt");
                return Ok(Err(
                    "the OpenRouter key cannot be decrypted; add it again".into()
                ));
            }
        };
        let system = match engine::prompt::system_prompt(engine.config(), &snapshot.strategy_prompt)
        {
            Ok(system) => system,
            Err(e) => return Ok(Err(format!("prompt: {e}"))),
        };
        Ok(Ok(Decider::Model(Box::new(Model {
            openrouter: self.openrouter.clone(),
            key,
            model: snapshot.model.clone(),
            temperature: snapshot.temperature,
            system,
            format: ResponseFormat::JsonSchema,
            policy: self.retry,
            limiter: Arc::new(KeyLimiter::new(self.config.max_concurrent_calls)),
            pricing: tokio::sync::OnceCell::new(),
        }))))
    }

    /// Processes candles until the budget, the end, a pause or a stop.
    async fn drive(
        &self,
        run: &mut Run,
        decider: &mut Decider,
        start_ms: i64,
        end_ms: i64,
        started: Instant,
    ) -> Result<Outcome, StepError> {
        // a step always commits at least one chunk before its budget can end it: the next step
        // continues from a new version (a message for the same version would be deduplicated)
        let mut committed_once = false;
        loop {
            match run.status.as_str() {
                "paused" => {
                    // commit (a new version), so that a resume racing this step is not lost:
                    // whichever comes second sees the other
                    let Some(c) = self.commit(run, None).await? else {
                        return Ok(Outcome::Stale);
                    };
                    if c.status == "paused" {
                        return Ok(Outcome::Paused);
                    }
                    continue;
                }
                "stopped" => return self.finish(run, "stopped", None).await,
                _ => {}
            }
            if run.cursor >= run.total {
                return self.finish(run, "completed", None).await;
            }
            let model = match &*decider {
                Decider::Model(m) => Some(&**m),
                Decider::Baseline(_) => None,
            };
            if committed_once && self.out_of_time(model, started) {
                // nothing pending: the last commit holds everything
                return Ok(Outcome::Continued);
            }
            let unwatched = run
                .watched_at
                .is_none_or(|w| (Utc::now() - w).to_std().unwrap_or_default() > IDLE_AFTER);
            let pace = pace(&run.speed);
            let paced = !pace.is_zero() && !unwatched;
            let limit = match (&decider, paced) {
                (Decider::Baseline(_), true) => 1,
                // a model agent's window looks ahead even when paced
                (Decider::Model(_), true) => run.lookahead as i64,
                _ => self.config.chunk_candles,
            };
            let after = run.engine.context().map(|c| c.candle().time);
            let rows: Vec<Candle> = store::market_data::next_chunk(
                &self.pool,
                run.engine.config().asset.as_str(),
                run.engine.config().timeframe.as_str(),
                start_ms,
                after,
                end_ms,
                limit,
            )
            .await?
            .into_iter()
            .map(crate::candles::candle)
            .collect();
            if rows.is_empty() {
                // fewer candles than counted (should not happen): end here
                run.total = run.cursor;
                return self.finish(run, "completed", None).await;
            }
            let chunk_started = Instant::now();
            let mut i = 0;
            while i < rows.len() {
                match decider {
                    Decider::Baseline(baseline) => {
                        let candle_started = Instant::now();
                        self.baseline_candle(run, baseline, rows[i])?;
                        i += 1;
                        self.faults.candle();
                        if paced {
                            run.events.push(Event::StatsUpdate(stats_of(&run.engine)));
                            let Some(_) = self.commit(run, None).await? else {
                                return Ok(Outcome::Stale);
                            };
                            if let Some(wait) = pace.checked_sub(candle_started.elapsed()) {
                                tokio::time::sleep(wait).await;
                            }
                        } else if chunk_started.elapsed() >= CHUNK_TIME {
                            break;
                        }
                    }
                    Decider::Model(model) => {
                        if committed_once && self.out_of_time(Some(model), started) {
                            break;
                        }
                        match self
                            .window(run, model, &rows[i..], paced.then_some(pace))
                            .await?
                        {
                            Window::Accepted(n) => i += n,
                            Window::Stale => return Ok(Outcome::Stale),
                            Window::Failed(reason) => {
                                let Some(_) = self.end_failed(run, &reason).await? else {
                                    return Ok(Outcome::Stale);
                                };
                                return Ok(Outcome::Ended("failed".into()));
                            }
                            Window::Budget => {
                                return self.finish(run, "stopped", Some("budget")).await;
                            }
                        }
                        // at instant, one commit per window: a pause or stop takes effect at
                        // the next accepted candle
                        if !paced {
                            run.events.push(Event::StatsUpdate(stats_of(&run.engine)));
                            let Some(_) = self.commit(run, None).await? else {
                                return Ok(Outcome::Stale);
                            };
                            committed_once = true;
                        }
                        if !matches!(run.status.as_str(), "running" | "pending") {
                            break;
                        }
                    }
                }
            }
            if !run.events.is_empty() || !run.trades.is_empty() {
                run.events.push(Event::StatsUpdate(stats_of(&run.engine)));
                let Some(_) = self.commit(run, None).await? else {
                    return Ok(Outcome::Stale);
                };
            }
            committed_once = true;
        }
    }

    /// Whether the step's budget is spent: for a model agent, when a window's calls could no
    /// longer finish within it (they take up to the chat timeout).
    fn out_of_time(&self, model: Option<&Model>, started: Instant) -> bool {
        let reserve = model.map_or(Duration::ZERO, |m| m.openrouter.chat_timeout());
        started.elapsed() + reserve >= self.config.budget
    }

    /// One candle of a baseline: observe, decide, apply, events.
    fn baseline_candle(
        &self,
        run: &mut Run,
        baseline: &Baseline,
        candle: Candle,
    ) -> Result<(), StepError> {
        let ctx = run.engine.observe(candle)?;
        let decision = baseline.decide(&ctx);
        let applied = run.engine.apply(&decision)?;
        self.push_candle(run, candle, &decision, applied, false);
        Ok(())
    }

    /// The events of an applied candle, its closed trades, and the cursor.
    fn push_candle(
        &self,
        run: &mut Run,
        candle: Candle,
        decision: &Decision,
        applied: engine::Applied,
        is_model: bool,
    ) {
        let index = run.cursor;
        let indicators = run.engine.indicators();
        run.events.push(Event::Candle(CandleData {
            time: rfc3339(candle.time),
            open: candle.open,
            high: candle.high,
            low: candle.low,
            close: candle.close,
            volume: candle.volume,
            indicators: indicators
                .names()
                .iter()
                .cloned()
                .zip(indicators.values().iter().copied())
                .collect(),
            progress: Progress {
                index: index as u64,
                total: run.total as u64,
            },
        }));
        if is_model || applied.action != Action::Hold {
            run.events.push(Event::AiDecision(AiDecision {
                index: index as u64,
                action: applied.action.as_str().into(),
                confidence: decision.confidence,
                reasoning: decision.reasoning.text().into_owned(),
                notes: applied.notes.clone(),
            }));
        }
        for t in &applied.closed {
            run.events.push(closed_event(t));
        }
        if let Some(p) = &applied.opened {
            run.events.push(opened_event(p));
        }
        run.trades.extend(applied.closed);
        run.cursor += 1;
    }

    /// One lookahead window of a model agent (DESIGN 5a): the prompts of the next `lookahead`
    /// candles (the later ones from a clone run ahead with HOLD, which changes nothing but
    /// time), their answers from this session's stored decisions, the decision cache or
    /// concurrent calls, then the answers accepted in candle order up to and including the first
    /// that is not HOLD, stored in one insert and applied. The rest were speculative: paid for,
    /// cached, counted, never applied. Paced, each accepted candle is committed and waited out.
    async fn window(
        &self,
        run: &mut Run,
        model: &mut Model,
        rows: &[Candle],
        pace: Option<Duration>,
    ) -> Result<Window, StepError> {
        let n = rows.len().min(run.lookahead.max(1));
        let first_index = run.cursor;
        // the prompts, from a clone run ahead with HOLD (the engine itself observes a candle
        // only when its decision is applied)
        let mut requests = Vec::with_capacity(n);
        let mut ahead = run.engine.clone();
        for (j, candle) in rows.iter().enumerate().take(n) {
            let ctx = ahead.observe(*candle)?;
            requests.push(model.request(&ctx));
            if j + 1 < n {
                ahead.apply_order(Action::Hold, &engine::Order::default())?;
            }
        }
        drop(ahead);
        let hashes: Vec<String> = requests
            .iter()
            .map(|r| crate::decider::hash_hex(r.body().to_string().as_bytes()))
            .collect();
        // what is known already: this session's decisions (a replay), then the cache
        let mut resolved: Vec<Option<(Thought, Source)>> = vec![None; n];
        for (j, slot) in resolved.iter_mut().enumerate() {
            if let Some(t) = run.replay.remove(&(first_index + j as i64)) {
                *slot = Some((t, Source::Stored));
            }
        }
        let wanted: Vec<String> = (0..n)
            .filter(|&j| resolved[j].is_none())
            .map(|j| hashes[j].clone())
            .collect();
        let only_own = run.fresh.then_some(run.session_id);
        let cached = store::decisions::lookup(&self.pool, run.user_id, &wanted, only_own).await?;
        for j in 0..n {
            if resolved[j].is_some() {
                continue;
            }
            if let Some(hit) = cached.iter().find(|c| c.request_hash == hashes[j]) {
                let source = if hit.session_id == Some(run.session_id) {
                    Source::Paid
                } else {
                    Source::Cache
                };
                resolved[j] = Some((
                    crate::decider::thought_from(
                        hit,
                        (first_index + j as i64) as u64,
                        rows[j].time,
                    ),
                    source,
                ));
            }
        }
        // a known answer that is not HOLD ends the window: nothing after it needs asking
        if let Some(p) = resolved
            .iter()
            .position(|r| r.as_ref().is_some_and(|(t, _)| t.action != "hold"))
        {
            resolved.truncate(p + 1);
        }
        // the calls: those still unknown, within the budget
        let mut missing: Vec<usize> = (0..resolved.len())
            .filter(|&j| resolved[j].is_none())
            .collect();
        if let Some(budget) = run.budget_usd
            && !missing.is_empty()
        {
            let estimate = match model.pricing().await {
                Some(p) => Some(p.cost(
                    (requests[missing[0]].body().to_string().len() / 4) as u32,
                    crate::decider::MAX_TOKENS,
                )),
                None => run.max_call_cost,
            };
            let left = budget - run.spent_usd;
            let affordable = match estimate {
                Some(e) if e > 0.0 => (left / e).floor().max(0.0) as usize,
                // nothing known of the price yet: one call at a time, to learn it
                _ => usize::from(left > 0.0),
            };
            if affordable < missing.len() {
                // the window ends before the first call that cannot be afforded
                let end = missing[affordable];
                if end == 0 {
                    return Ok(Window::Budget);
                }
                resolved.truncate(end);
                missing.retain(|&j| j < end);
            }
        }
        let n = resolved.len();
        // each answer is stored (and counted) the moment it returns: a crash never loses a
        // paid answer, and a replay finds it in the cache
        let calls = missing.iter().map(|&j| {
            let (model, request, hash) = (&*model, &requests[j], &hashes[j]);
            let (user_id, session_id) = (run.user_id, run.session_id);
            async move {
                let answer = match model.call(request).await {
                    Ok(Ok(answer)) => answer,
                    Ok(Err(error)) => {
                        store::decisions::count_failed_call(&self.pool, user_id, session_id)
                            .await?;
                        return Ok::<_, StepError>((j, Ok(Err(error))));
                    }
                    Err(fatal) => return Ok((j, Err(fatal))),
                };
                let stored = store::decisions::Cached {
                    request_hash: hash.clone(),
                    session_id: Some(session_id),
                    cost_usd: model.cost(&answer).await,
                    content: answer.content,
                    prompt_tokens: answer.prompt_tokens.map(|t| t as i32),
                    completion_tokens: answer.completion_tokens.map(|t| t as i32),
                    latency_ms: Some(answer.latency_ms.min(i32::MAX as u32) as i32),
                };
                store::decisions::put(&self.pool, user_id, &model.model, &stored).await?;
                Ok((j, Ok(Ok((stored, answer.format)))))
            }
        });
        let answers = futures::future::join_all(calls).await;
        for outcome in answers {
            let (j, answer) = outcome?;
            let index = (first_index + j as i64) as u64;
            match answer {
                Err(Fatal(e)) => return Ok(Window::Failed(self.fatal(run, &e).await?)),
                Ok(Err(error)) => {
                    resolved[j] = Some((
                        crate::decider::failed_thought(error, &hashes[j], index, rows[j].time),
                        Source::Paid,
                    ));
                }
                Ok(Ok((stored, format))) => {
                    // (a test's kill point: the window's answers are stored, none is accepted)
                    self.faults.model_call();
                    // a model that refused the schema is asked for plain JSON from now on
                    model.format = format;
                    if let Some(c) = stored.cost_usd {
                        run.spent_usd += c;
                        run.max_call_cost = Some(run.max_call_cost.map_or(c, |m| m.max(c)));
                    }
                    resolved[j] = Some((
                        crate::decider::thought_from(&stored, index, rows[j].time),
                        Source::Paid,
                    ));
                }
            }
        }
        if model.limiter.take_rate_limited() {
            // rate limited: look less far ahead for the rest of the step
            run.lookahead = (run.lookahead / 2).max(1);
        }
        let resolved: Vec<(Thought, Source)> = resolved.into_iter().flatten().collect();
        // accepted: in order, up to and including the first answer that is not HOLD
        let accepted = resolved
            .iter()
            .position(|(t, _)| t.action != "hold")
            .map_or(resolved.len(), |p| p + 1)
            .min(n);
        let from_cache = resolved[..accepted]
            .iter()
            .filter(|(_, s)| *s == Source::Cache)
            .count() as i64;
        let new: Vec<Thought> = resolved[..accepted]
            .iter()
            .filter(|(_, s)| *s != Source::Stored)
            .map(|(t, _)| t.clone())
            .collect();
        let mut decisions: Vec<Thought> = resolved[..accepted]
            .iter()
            .map(|(t, _)| t.clone())
            .collect();
        if !new.is_empty() {
            let saved =
                steps::save_thoughts(&self.pool, run.user_id, run.session_id, &new, from_cache)
                    .await?;
            // the stored decision wins (another delivery may have stored first)
            for t in saved {
                let j = (t.candle_index - first_index) as usize;
                if j < decisions.len() {
                    decisions[j] = t;
                }
            }
        }
        for (j, thought) in decisions.iter().enumerate() {
            let candle_started = Instant::now();
            run.engine.observe(rows[j])?;
            if is_failed_call(thought) {
                run.model_failures += 1;
                if run.model_failures >= self.config.max_model_failures {
                    return Ok(Window::Failed(format!(
                        "the model failed on {} candles in a row; last: {}",
                        run.model_failures,
                        thought.error.as_deref().unwrap_or("unknown error")
                    )));
                }
            } else {
                run.model_failures = 0;
            }
            let decision = decision_of(thought);
            let applied = run.engine.apply(&decision)?;
            self.push_candle(run, rows[j], &decision, applied, true);
            self.faults.candle();
            if let Some(pace) = pace {
                run.events.push(Event::StatsUpdate(stats_of(&run.engine)));
                let Some(_) = self.commit(run, None).await? else {
                    return Ok(Window::Stale);
                };
                if !matches!(run.status.as_str(), "running" | "pending") {
                    return Ok(Window::Accepted(j + 1));
                }
                if let Some(wait) = pace.checked_sub(candle_started.elapsed()) {
                    tokio::time::sleep(wait).await;
                }
            }
        }
        Ok(Window::Accepted(decisions.len()))
    }

    /// A call that cannot succeed: the key's status is recorded (with its notification) and the
    /// reason the session fails is returned.
    async fn fatal(&self, run: &Run, e: &OpenRouterError) -> Result<String, StepError> {
        let status = match e {
            OpenRouterError::Rejected { .. } => Some("invalid"),
            OpenRouterError::NoCredits { .. } => Some("no_credits"),
            _ => None,
        };
        if let Some(status) = status
            && let Some(session_key) =
                store::api_keys::for_session(&self.pool, run.user_id, run.api_key_id).await?
        {
            store::api_keys::record_check(
                &self.pool,
                run.user_id,
                session_key.key.id,
                &store::api_keys::CheckResult {
                    status,
                    reason: Some(e.to_string()),
                    details: None,
                },
            )
            .await?;
        }
        Ok(format!("the model call was refused: {e}"))
    }

    /// Commits what the run holds; publishes its events, numbered; `None` when the version moved
    /// (another delivery of this step committed first).
    async fn commit(
        &self,
        run: &mut Run,
        finish: Option<Finish<'_>>,
    ) -> Result<Option<Committed>, StepError> {
        let checkpoint = run.engine.checkpoint()?;
        let stats = serde_json::to_value(stats_of(&run.engine)).unwrap_or(Value::Null);
        let committed = steps::commit(
            &self.pool,
            &Commit {
                user_id: run.user_id,
                session_id: run.session_id,
                version: run.version,
                step_version: run.step_version,
                checkpoint: &checkpoint,
                cursor: run.cursor,
                total_candles: run.total,
                trades: &run.trades,
                events: run.events.len() as i64,
                live_stats: &stats,
                last_watched_at: run.watched_at,
                model_failures: run.model_failures,
                finish,
            },
        )
        .await?;
        let Some(committed) = committed else {
            return Ok(None);
        };
        run.version = committed.version;
        run.status = committed.status.clone();
        run.speed = committed.speed.clone();
        run.trades.clear();
        let events = std::mem::take(&mut run.events);
        if !events.is_empty() {
            let first = committed.last_seq - events.len() as i64 + 1;
            let now = Utc::now();
            let envelopes: Vec<Envelope> = events
                .iter()
                .enumerate()
                .map(|(i, e)| Envelope::session(run.session_id, (first + i as i64) as u64, e, now))
                .collect();
            let report = self.publisher.publish(run.session_id, &envelopes).await;
            if !report.connections.is_empty() {
                run.watched_at = Some(now);
            }
        }
        Ok(Some(committed))
    }

    /// Ends the run with its result (`completed`, or `stopped`).
    async fn finish(
        &self,
        run: &mut Run,
        status: &'static str,
        reason: Option<&str>,
    ) -> Result<Outcome, StepError> {
        let (closed, metrics): (Vec<Trade>, Metrics) = run.engine.finish()?;
        for t in &closed {
            run.events.push(closed_event(t));
        }
        run.trades.extend(closed);
        let result_id = Uuid::new_v4();
        let economics = store::sessions::economics(&self.pool, run.user_id, run.session_id).await?;
        let result = SessionResult::new(
            result_id,
            run.starting_capital,
            metrics.final_equity,
            steps::metrics_json(&metrics),
            economics,
        );
        run.events.push(Event::StatsUpdate(stats_of(&run.engine)));
        run.events.push(Event::SessionCompleted(SessionCompleted {
            can_generate_certificate: result.can_generate_certificate,
            result: serde_json::to_value(&result).unwrap_or(Value::Null),
        }));
        let mode = run.mode.clone();
        let duration = (Utc::now() - run.started_at).num_seconds().max(0);
        let committed = self
            .commit(
                run,
                Some(Finish::Result {
                    status,
                    result_id,
                    reason,
                    metrics: &metrics,
                    mode: &mode,
                    duration_seconds: duration,
                }),
            )
            .await?;
        Ok(match committed {
            Some(_) => Outcome::Ended(status.into()),
            None => Outcome::Stale,
        })
    }

    /// Ends the run `failed`: what was decided so far is kept.
    async fn end_failed(
        &self,
        run: &mut Run,
        reason: &str,
    ) -> Result<Option<Committed>, StepError> {
        run.events.push(Event::SessionFailed(SessionFailed {
            reason: reason.into(),
        }));
        self.commit(run, Some(Finish::Failed { reason })).await
    }
}
