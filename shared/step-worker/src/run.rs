//! The candles of one step: from the restored engine until the budget is spent, the session
//! ends, or a control says pause or stop.
//!
//! - Paced speeds (slow 1.0 s, normal 0.5 s, fast 0.2 s per candle) commit and publish candle
//!   by candle and wait out the rest of each candle's time inside the step; a paced session that
//!   nobody watched for `STEP_IDLE_AFTER_SECS` runs at instant until a subscriber shows up again
//!   (the result is the same).
//! - At instant a chunk of candles (at most `STEP_CHUNK_CANDLES`, or two seconds of work) is
//!   committed at once; a model agent's lookahead window ([`crate::window`]) is committed once.
//! - A step always commits at least one chunk or window before its budget can end it: the next
//!   step continues from a new version (a message for the same version would be deduplicated).

use std::collections::HashMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use engine::baseline::Baseline;
use engine::{Candle, Decision, Engine, Trade};
use realtime::events::Event;
use store::steps::Thought;
use uuid::Uuid;

use crate::deadline::Deadlines;
use crate::decider::Decider;
use crate::window::Window;
use crate::worker::{Outcome, StepError, Worker};

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

/// The state of one step's run between commits.
pub(crate) struct Run {
    pub(crate) user_id: Uuid,
    pub(crate) session_id: Uuid,
    pub(crate) version: i64,
    /// The version of the message this step handles.
    pub(crate) step_version: i64,
    pub(crate) status: String,
    pub(crate) speed: String,
    /// Index of the next candle.
    pub(crate) cursor: i64,
    /// How many candles the session decides (`None`: a forward session, which has no end).
    pub(crate) total: Option<i64>,
    /// The candle length (ms).
    pub(crate) step_ms: i64,
    /// Open time of the last decided candle (a forward session's anchor before the first).
    pub(crate) last_time: Option<i64>,
    /// The exchange's gaps met so far (the session's `gaps`).
    pub(crate) gaps: Vec<serde_json::Value>,
    /// A forward session's first step: anchor, warm-up summary and first decidable open time.
    pub(crate) anchored: Option<(DateTime<Utc>, serde_json::Value, DateTime<Utc>)>,
    /// The session reads only candles cached by then (fixed by its first step).
    pub(crate) candles_as_of: Option<DateTime<Utc>>,
    pub(crate) engine: Engine,
    /// Events, trades and equity points since the last commit.
    pub(crate) events: Vec<Event>,
    pub(crate) trades: Vec<Trade>,
    pub(crate) points: Vec<engine::metrics::EquityPoint>,
    pub(crate) watched_at: Option<DateTime<Utc>>,
    pub(crate) model_failures: i32,
    pub(crate) started_at: DateTime<Utc>,
    pub(crate) mode: String,
    /// The agent's model (an OpenRouter id or a baseline) and temperature.
    pub(crate) model: String,
    pub(crate) temperature: f64,
    /// Warm-up candles asked for, and the lookahead (the session's settings).
    pub(crate) warmup_candles: u32,
    pub(crate) lookahead_asked: u32,
    /// Open time from which candles are decided.
    pub(crate) start_ms: i64,
    pub(crate) starting_capital: f64,
    pub(crate) api_key_id: Option<Uuid>,
    /// Candles asked at once (1..16); halved after a 429 for the rest of the step.
    pub(crate) lookahead: usize,
    /// Bypass the decision cache (`fresh_decisions`).
    pub(crate) fresh: bool,
    pub(crate) budget_usd: Option<f64>,
    /// Model cost so far, this step's calls included.
    pub(crate) spent_usd: f64,
    /// The dearest call seen in this step (the budget's estimate when no price is listed).
    pub(crate) max_call_cost: Option<f64>,
    /// This session's decisions stored beyond the checkpoint, by candle index (a replay).
    pub(crate) replay: HashMap<i64, Thought>,
    pub(crate) deadlines: Deadlines,
}

impl Run {
    /// Whether a paced session has gone unwatched long enough to run at instant.
    fn unwatched(&self, idle_after: Duration) -> bool {
        self.watched_at
            .is_none_or(|w| (Utc::now() - w).to_std().unwrap_or_default() > idle_after)
    }

    /// Whether the session may go on (a control may have paused or stopped it).
    pub(crate) fn going(&self) -> bool {
        matches!(self.status.as_str(), "running" | "pending")
    }

    /// A forward session (no end: it waits for candles to close).
    pub(crate) fn forward(&self) -> bool {
        self.total.is_none()
    }

    /// How the session is named to its user.
    pub(crate) fn label(&self) -> &'static str {
        if self.forward() {
            "Forward test"
        } else {
            "Backtest"
        }
    }

    /// Records an applied candle: its events, closed trades, equity point, and the cursor.
    pub(crate) fn applied(
        &mut self,
        candle: Candle,
        decision: &Decision,
        applied: engine::Applied,
        is_model: bool,
    ) {
        let gap_before = match self.last_time {
            Some(last) if candle.time - last > self.step_ms => {
                self.gaps
                    .push(crate::forward::gap(last, candle.time, self.step_ms));
                (candle.time - last) / self.step_ms - 1
            }
            _ => 0,
        };
        self.last_time = Some(candle.time);
        self.events.extend(crate::events::of_candle(
            &self.engine,
            candle,
            self.cursor,
            self.total,
            gap_before,
            decision,
            &applied,
            is_model,
        ));
        self.trades.extend(applied.closed);
        self.points.extend(self.engine.last_point());
        self.cursor += 1;
    }
}

impl Worker {
    /// Processes candles until the budget, the end, a pause or a stop.
    pub(crate) async fn drive(
        &self,
        run: &mut Run,
        decider: &mut Decider,
        start_ms: i64,
        end_ms: i64,
    ) -> Result<Outcome, StepError> {
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
                // a forward session's stop is its normal end, at the last candle decided
                "stopping" => return self.finish(run, "completed", None).await,
                _ => {}
            }
            if let Some(total) = run.total
                && run.cursor >= total
            {
                return self.finish(run, "completed", None).await;
            }
            let chat_timeout = match &*decider {
                Decider::Model(m) => Some(m.openrouter.chat_timeout()),
                Decider::Baseline(_) => None,
            };
            if committed_once && self.out_of_time(run, chat_timeout) {
                // nothing pending: the last commit holds everything
                return Ok(Outcome::Continued);
            }
            let pace = pace(&run.speed);
            let paced = !pace.is_zero() && !run.unwatched(self.config.idle_after);
            let limit = match (&decider, paced) {
                (Decider::Baseline(_), true) => 1,
                // a model agent's window looks ahead even when paced
                (Decider::Model(_), true) => run.lookahead as i64,
                _ => self.config.chunk_candles,
            };
            let rows: Vec<Candle> = match run.forward() {
                // a forward session decides the cached candles that follow its last one
                true => {
                    crate::forward::decidable(
                        &self.pool,
                        run.engine.config().asset.as_str(),
                        run.engine.config().timeframe,
                        run.last_time.unwrap_or(start_ms - run.step_ms),
                        limit,
                    )
                    .await?
                }
                false => store::market_data::next_chunk(
                    &self.pool,
                    run.engine.config().asset.as_str(),
                    run.engine.config().timeframe.as_str(),
                    start_ms,
                    run.engine.context().map(|c| c.candle().time),
                    end_ms,
                    run.candles_as_of,
                    limit,
                )
                .await?
                .into_iter()
                .map(crate::candles::candle)
                .collect(),
            };
            if rows.is_empty() && run.forward() {
                // nothing closed to decide: the tick sends a step when a candle closes
                if !run.events.is_empty() || run.anchored.is_some() && !committed_once {
                    let Some(_) = self.commit(run, None).await? else {
                        return Ok(Outcome::Stale);
                    };
                }
                return Ok(Outcome::Waiting);
            }
            if rows.is_empty() {
                // fewer candles than counted (should not happen: the count is fixed): end here
                run.total = Some(run.cursor);
                return self.finish(run, "completed", None).await;
            }
            let chunk_started = tokio::time::Instant::now();
            let mut i = 0;
            while i < rows.len() {
                match decider {
                    Decider::Baseline(baseline) => {
                        let candle_started = tokio::time::Instant::now();
                        baseline_candle(run, baseline, rows[i])?;
                        i += 1;
                        self.faults.candle();
                        if paced {
                            run.events
                                .push(Event::StatsUpdate(crate::events::stats_of(&run.engine)));
                            let Some(_) = self.commit(run, None).await? else {
                                return Ok(Outcome::Stale);
                            };
                            self.wait_pace(run, candle_started + pace).await;
                        } else if chunk_started.elapsed() >= CHUNK_TIME {
                            break;
                        }
                    }
                    Decider::Model(model) => {
                        if committed_once && self.out_of_time(run, chat_timeout) {
                            break;
                        }
                        let first = !committed_once;
                        let (accepted, cut) = match self
                            .window(run, model, &rows[i..], paced.then_some(pace))
                            .await?
                        {
                            Window::Accepted { n, cut } => (n, cut),
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
                        };
                        i += accepted;
                        if first && accepted == 0 && cut {
                            // not one answer fitted in this step: counted like a failed call,
                            // so a model that never answers in time ends the session
                            run.model_failures += 1;
                            if run.model_failures >= self.config.max_model_failures {
                                let reason = format!(
                                    "the model did not answer within a step's time {} times in a row",
                                    run.model_failures
                                );
                                let Some(_) = self.end_failed(run, &reason).await? else {
                                    return Ok(Outcome::Stale);
                                };
                                return Ok(Outcome::Ended("failed".into()));
                            }
                        }
                        // at instant, one commit per window: a pause or stop takes effect at
                        // the next accepted candle
                        if !paced || cut {
                            run.events
                                .push(Event::StatsUpdate(crate::events::stats_of(&run.engine)));
                            let Some(_) = self.commit(run, None).await? else {
                                return Ok(Outcome::Stale);
                            };
                            committed_once = true;
                        }
                        if cut {
                            // the step's time is up: the next step asks what was not answered
                            return Ok(Outcome::Continued);
                        }
                        if !run.going() {
                            break;
                        }
                    }
                }
            }
            if !run.events.is_empty() || !run.trades.is_empty() || !run.points.is_empty() {
                run.events
                    .push(Event::StatsUpdate(crate::events::stats_of(&run.engine)));
                let Some(_) = self.commit(run, None).await? else {
                    return Ok(Outcome::Stale);
                };
            }
            committed_once = true;
            if run.forward() && (rows.len() as i64) < limit && run.going() {
                // every decidable candle was decided: the step's caller looks once more after
                // closing the chain (a candle cached meanwhile is not missed)
                return Ok(Outcome::Waiting);
            }
        }
    }

    /// Whether the step should start nothing more: its budget is spent, or (for a model agent)
    /// a call could no longer end before the step's deadline.
    fn out_of_time(&self, run: &Run, chat_timeout: Option<Duration>) -> bool {
        run.deadlines.budget_spent() || chat_timeout.is_some_and(|t| !run.deadlines.fits(t))
    }

    /// Waits until `until` (a paced candle's time), never past the step's deadline.
    pub(crate) async fn wait_pace(&self, run: &Run, until: tokio::time::Instant) {
        tokio::time::sleep_until(until.min(run.deadlines.hard)).await;
    }
}

/// One candle of a baseline: observe, decide, apply, events.
fn baseline_candle(run: &mut Run, baseline: &Baseline, candle: Candle) -> Result<(), StepError> {
    let ctx = run.engine.observe(candle)?;
    let decision = baseline.decide(&ctx);
    let applied = run.engine.apply(&decision)?;
    run.applied(candle, &decision, applied, false);
    Ok(())
}
