//! One step of a session (DESIGN sections 5 and 5b): the SQS record in, the session's state
//! restored, [`crate::run`] driving the candles, the next step sent.
//!
//! - The record's message is reconciled with the session ([`crate::reconcile`]): only the chain's
//!   current message runs (or resumes a step that died after committing); a stale duplicate
//!   does nothing.
//! - The step's time is its invocation's ([`crate::deadline`]): the work budget ends before the
//!   invocation's deadline less a reserve, and everything waited on carries that deadline.
//! - A handled failure makes the message visible again after a growing delay
//!   ([`WorkerConfig::retry_delay`]); on its last delivery the session fails with a reason for
//!   people ([`crate::reasons`]), but only when the message is the chain's current one.
//!
//! One log line per step.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use adapters::binance::Binance;
use adapters::crypto::{Keyring, Sealed};
use adapters::openrouter::{KeyLimiter, OpenRouter, ResponseFormat, RetryPolicy};
use aws_lambda_events::event::sqs::SqsMessage;
use chrono::Utc;
use engine::baseline::{Baseline, Kind};
use engine::{Engine, Timeframe};
use realtime::Publisher;
use realtime::events::{AgentSummary, Event, SessionInitialized};
use sqlx::PgPool;
use store::steps::{self, StepState};
use tokio::time::Instant;
use tracing::Instrument;

use crate::WorkerConfig;
use crate::deadline::Deadlines;
use crate::decider::{Decider, Model};
use crate::faults::Faults;
use crate::queue::{StepMessage, StepQueue};
use crate::reconcile::{Action, Chain, reconcile};
use crate::run::Run;

/// Candles a model is asked about at once, by default and at most (the start body's `lookahead`).
pub const DEFAULT_LOOKAHEAD: usize = 4;
pub const MAX_LOOKAHEAD: usize = 16;

/// What can fail a step in a handled way (the message comes back after a delay).
#[derive(Debug, thiserror::Error)]
pub enum StepError {
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    #[error("market data: {0}")]
    MarketData(adapters::binance::BinanceError),
    #[error(transparent)]
    Queue(#[from] crate::queue::QueueError),
    #[error("engine: {0}")]
    Engine(#[from] engine::engine::EngineError),
    /// The step could not finish before its invocation's deadline.
    #[error("the step ran out of time")]
    OutOfTime,
}

impl From<crate::candles::SourceError> for StepError {
    fn from(e: crate::candles::SourceError) -> Self {
        match e {
            crate::candles::SourceError::Database(e) => Self::Database(e),
            crate::candles::SourceError::Upstream(adapters::binance::BinanceError::OutOfTime) => {
                Self::OutOfTime
            }
            crate::candles::SourceError::Upstream(e) => Self::MarketData(e),
        }
    }
}

/// How a step ended (for its log line and for tests).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The session is gone.
    Gone,
    /// The message is not the chain's current one: nothing done.
    Stale,
    /// The session was already over.
    Over,
    /// Candles processed; the next step was sent.
    Continued,
    /// Paused: no step sent (resume sends one).
    Paused,
    /// A forward session with nothing closed to decide (or an exchange error before its
    /// anchor): no step sent; the tick sends one when a candle closes.
    Waiting,
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

/// The session's side of the version protocol.
pub(crate) fn chain_of(s: &StepState) -> Chain {
    Chain {
        version: s.version,
        step_version: s.step_version,
        chain_version: s.chain_version,
        active: s.completed_at.is_none()
            && matches!(
                s.status.as_str(),
                "pending" | "running" | "stopped" | "stopping"
            ),
        over: s.completed_at.is_some() || matches!(s.status.as_str(), "completed" | "failed"),
    }
}

/// A record's attribute as a number.
fn attribute(record: &SqsMessage, name: &str) -> Option<u64> {
    record.attributes.get(name).and_then(|v| v.parse().ok())
}

impl Worker {
    /// Handles one SQS record in an invocation that ends at `deadline`. `Err` leaves the message
    /// to the queue, visible again after [`WorkerConfig::retry_delay`] (a handled failure); on
    /// its last delivery the session fails instead.
    pub async fn handle(&self, record: SqsMessage, deadline: Instant) -> Result<(), StepError> {
        let started = Instant::now();
        let receive_count = attribute(&record, "ApproximateReceiveCount").unwrap_or(1) as u32;
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
        async {
            let deadlines = Deadlines::new(deadline, self.config.budget);
            // boxed: the step future is deep, and callers (the runtime, the local mapping) stay
            // simple
            let step = Box::pin(self.step(&message, &deadlines));
            let result = tokio::time::timeout_at(deadlines.safety, step)
                .await
                .unwrap_or(Err(StepError::OutOfTime));
            let elapsed_ms = started.elapsed().as_millis() as u64;
            match result {
                Ok((outcome, candles)) => {
                    tracing::info!(outcome = ?outcome, candles, elapsed_ms, "step done");
                    Ok(())
                }
                Err(e) if receive_count >= self.config.max_receive_count => {
                    let failing_for =
                        attribute(&record, "ApproximateFirstReceiveTimestamp").map(|first| {
                            let now = Utc::now().timestamp_millis().max(0) as u64;
                            Duration::from_millis(now.saturating_sub(first))
                        });
                    let reason = crate::reasons::step_failed(&e, failing_for);
                    match crate::commit::fail_current(
                        &self.pool,
                        &self.publisher,
                        &message,
                        &reason,
                    )
                    .await
                    {
                        Ok(true) => {
                            tracing::warn!(
                                elapsed_ms,
                                "step failed on its last delivery; the session failed"
                            );
                            Ok(())
                        }
                        Ok(false) => {
                            tracing::info!(
                                elapsed_ms,
                                "a stale message failed on its last delivery; dropped"
                            );
                            Ok(())
                        }
                        Err(db) => {
                            // the dead-letter queue takes it; its consumer fails the session
                            tracing::error!(error = %db, "the failure could not be recorded");
                            self.back_off(&record, receive_count).await;
                            Err(e)
                        }
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, elapsed_ms, "step failed; retried later");
                    self.back_off(&record, receive_count).await;
                    Err(e)
                }
            }
        }
        .instrument(span)
        .await
    }

    /// Makes the record visible again after the failure's retry delay.
    async fn back_off(&self, record: &SqsMessage, receive_count: u32) {
        let delay = self.config.retry_delay(receive_count);
        if let Some(receipt) = &record.receipt_handle
            && let Err(e) = self.queue.retry_after(receipt, delay).await
        {
            tracing::warn!(error = %e, "could not delay the message's next delivery");
        }
    }

    /// The step itself: the outcome and how many candles it processed.
    async fn step(
        &self,
        message: &StepMessage,
        deadlines: &Deadlines,
    ) -> Result<(Outcome, i64), StepError> {
        let Some(s) = steps::load(&self.pool, message.user_id, message.session_id).await? else {
            return Ok((Outcome::Gone, 0));
        };
        match reconcile(message.version, &chain_of(&s)) {
            Action::Stale => return Ok((Outcome::Stale, 0)),
            Action::Over => return Ok((Outcome::Over, 0)),
            Action::ResendSuccessor => {
                self.queue
                    .send(&StepMessage {
                        version: s.version,
                        ..*message
                    })
                    .await?;
                return Ok((Outcome::Stale, 0));
            }
            Action::Run | Action::Resume => {}
        }
        let snapshot = s.agent_snapshot.0.clone();
        let config = s.config.0.clone();
        let forward = s.kind == "forward";
        let Some(timeframe) = Timeframe::parse(&s.timeframe) else {
            let reason = crate::reasons::internal(&"the session has an unknown timeframe");
            crate::commit::fail_current(&self.pool, &self.publisher, message, &reason).await?;
            return Ok((Outcome::Ended("failed".into()), 0));
        };
        let step_ms = timeframe.millis();
        let restored = match &s.checkpoint {
            Some(c) if !c.is_null() => Some(Engine::restore(c)?),
            _ => None,
        };
        let mut anchored = None;
        let mut warmup_summary = None;
        let (start_ms, end_ms, total, candles_as_of, engine) = if forward {
            match (restored, s.anchor_time) {
                (Some(engine), Some(anchor)) => {
                    let anchor = anchor.timestamp_millis();
                    (
                        anchor + step_ms,
                        crate::forward::OPEN_END_MS,
                        None,
                        None,
                        engine,
                    )
                }
                _ => {
                    // the first step: the anchor and the warm-up, by the exchange's clock
                    let begun = match crate::forward::begin(
                        &self.pool,
                        &self.binance,
                        &s.asset,
                        timeframe,
                        config.warmup_candles,
                        deadlines.hard,
                    )
                    .await
                    {
                        Ok(begun) => begun,
                        Err(crate::candles::SourceError::Database(e)) => return Err(e.into()),
                        Err(crate::candles::SourceError::Upstream(e)) => {
                            // an exchange error never fails a forward session: the tick sends
                            // its step again
                            let reason = crate::reasons::exchange(&e);
                            store::forward::delay_one(&self.pool, s.user_id, s.id, &reason).await?;
                            return Ok((Outcome::Waiting, 0));
                        }
                    };
                    let mut engine = Engine::new(config.engine.clone())?;
                    for c in &begun.warmup {
                        engine.warm(*c)?;
                    }
                    let summary = crate::forward::summary(&begun.warmup);
                    let (Some(anchor), Some(first)) = (
                        crate::forward::time(begun.anchor),
                        crate::forward::time(begun.anchor + step_ms),
                    ) else {
                        return Err(StepError::MarketData(
                            adapters::binance::BinanceError::InvalidBody(
                                "the exchange's clock is out of range".into(),
                            ),
                        ));
                    };
                    warmup_summary = Some(summary.clone());
                    anchored = Some((anchor, summary, first));
                    (
                        begun.anchor + step_ms,
                        crate::forward::OPEN_END_MS,
                        None,
                        None,
                        engine,
                    )
                }
            }
        } else {
            let (Some(start), Some(end)) = (s.start_date, s.end_date) else {
                let reason = crate::reasons::internal(&"the session has no date range");
                crate::commit::fail_current(&self.pool, &self.publisher, message, &reason).await?;
                return Ok((Outcome::Ended("failed".into()), 0));
            };
            let (start_ms, end_ms) = (start.timestamp_millis(), end.timestamp_millis());
            // the first step (no checkpoint yet) makes sure every candle is cached and fixes them
            let (total, candles_as_of) = match &s.checkpoint {
                Some(_) => (s.total_candles.unwrap_or(0), s.candles_as_of),
                None => {
                    let fixed = crate::candles::ensure_cached(
                        &self.pool,
                        &self.binance,
                        &s.asset,
                        timeframe,
                        start_ms,
                        end_ms,
                        deadlines.hard,
                    )
                    .await?;
                    (fixed.total, Some(fixed.as_of))
                }
            };
            let engine = match restored {
                Some(engine) => engine,
                None => {
                    let mut engine = Engine::new(config.engine.clone())?;
                    // the warm-up candles move the indicators only (the checkpoint keeps them)
                    let warm = crate::candles::warmup(
                        &self.pool,
                        &self.binance,
                        &s.asset,
                        timeframe,
                        start_ms,
                        config.warmup_candles,
                        deadlines.hard,
                    )
                    .await?;
                    if !warm.is_empty() {
                        warmup_summary = Some(crate::forward::summary(&warm));
                    }
                    for c in warm {
                        engine.warm(c)?;
                    }
                    engine
                }
            };
            (start_ms, end_ms, Some(total), candles_as_of, engine)
        };
        let mut decider = match self.decider(&s, &snapshot, &engine).await? {
            Ok(decider) => decider,
            Err(reason) => {
                crate::commit::fail_current(&self.pool, &self.publisher, message, &reason).await?;
                return Ok((Outcome::Ended("failed".into()), 0));
            }
        };
        let spent_usd = match config.budget_usd {
            Some(_) => {
                store::sessions::economics(&self.pool, s.user_id, s.id)
                    .await?
                    .model_cost_usd
            }
            None => 0.0,
        };
        let mut run = Run {
            user_id: s.user_id,
            session_id: s.id,
            version: s.version,
            step_version: message.version,
            status: s.status.clone(),
            speed: s.speed.clone(),
            cursor: s.cursor,
            total,
            step_ms,
            last_time: s
                .last_candle
                .or(s.anchor_time)
                .map(|t| t.timestamp_millis())
                .or(anchored.as_ref().map(|a| a.0.timestamp_millis())),
            gaps: s.gaps.as_array().cloned().unwrap_or_default(),
            anchored,
            candles_as_of,
            engine,
            events: Vec::new(),
            trades: Vec::new(),
            points: Vec::new(),
            watched_at: s.last_watched_at,
            model_failures: s.model_failures,
            started_at: s.started_at.unwrap_or_else(Utc::now),
            mode: snapshot.mode.clone(),
            model: snapshot.model.clone(),
            temperature: snapshot.temperature,
            warmup_candles: config.warmup_candles,
            lookahead_asked: if forward { 1 } else { config.lookahead },
            start_ms,
            starting_capital: s.starting_capital,
            api_key_id: snapshot.api_key_id,
            // a forward session decides one candle at a time, when it closes
            lookahead: match forward {
                true => 1,
                false => (config.lookahead as usize).clamp(1, MAX_LOOKAHEAD),
            },
            fresh: config.fresh_decisions,
            budget_usd: config.budget_usd,
            spent_usd,
            max_call_cost: None,
            replay: HashMap::new(),
            deadlines: *deadlines,
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
                    kind: s.kind.clone(),
                    asset: s.asset.clone(),
                    timeframe: s.timeframe.clone(),
                    total_candles: total.map(|t| t.max(0) as u64),
                    starting_capital: s.starting_capital,
                    speed: s.speed.clone(),
                    agent: AgentSummary {
                        name: snapshot.name.clone(),
                        model: snapshot.model.clone(),
                        mode: snapshot.mode.clone(),
                    },
                    warmup: warmup_summary,
                }));
        }
        let processed_before = run.cursor;
        let outcome = self.drive(&mut run, &mut decider, start_ms, end_ms).await?;
        let processed = run.cursor - processed_before;
        if matches!(
            outcome,
            Outcome::Continued | Outcome::Paused | Outcome::Waiting
        ) && !steps::close_step(&self.pool, run.user_id, run.session_id, run.version).await?
        {
            return Ok((Outcome::Stale, processed));
        }
        if outcome == Outcome::Waiting
            && let Some(last) = run.last_time
            && !crate::forward::decidable(&self.pool, &s.asset, timeframe, last, 1)
                .await?
                .is_empty()
        {
            // a candle was cached after this step looked and before it closed its chain: the
            // tick may have read the old version, so this step sends the next one itself
            self.queue
                .nudge(&StepMessage {
                    version: run.version,
                    ..*message
                })
                .await?;
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
        snapshot: &store::sessions::AgentSnapshot,
        engine: &Engine,
    ) -> Result<Result<Decider, String>, StepError> {
        if let Some(kind) = Kind::from_model(&snapshot.model) {
            return Ok(Baseline::new(kind, engine.indicators())
                .map(Decider::Baseline)
                .map_err(|e| crate::reasons::internal(&e)));
        }
        let Some(store::api_keys::SessionKey {
            key: stored,
            status,
            ..
        }) = store::api_keys::for_session(&self.pool, s.user_id, snapshot.api_key_id).await?
        else {
            return Ok(Err(
                "no OpenRouter key: the agent's key was deleted and there is no default key".into(),
            ));
        };
        if matches!(status.as_str(), "invalid" | "no_credits") {
            return Ok(Err(format!(
                "the OpenRouter key is {status}; validate it again or use another key"
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
            Err(e) => return Ok(Err(crate::reasons::internal(&e))),
        };
        let format = match s.response_format.as_deref() {
            Some("json_object") => ResponseFormat::JsonObject,
            _ => ResponseFormat::JsonSchema,
        };
        Ok(Ok(Decider::Model(Box::new(Model {
            openrouter: self.openrouter.clone(),
            key,
            model: snapshot.model.clone(),
            temperature: snapshot.temperature,
            system,
            format,
            policy: self.retry,
            limiter: Arc::new(KeyLimiter::new(self.config.max_concurrent_calls)),
            pricing: tokio::sync::OnceCell::new(),
        }))))
    }
}
