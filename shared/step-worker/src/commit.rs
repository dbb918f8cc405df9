//! Commit, publish and finish: what ends every piece of a step's work.
//!
//! A commit writes the trades, the checkpoint (the engine's state; the equity curve stays out of
//! it), the cursor, the equity of the candles since the last commit (appended to
//! `session_equity`), the open position and the event numbers in one transaction conditional on
//! the version the step read, and takes the session's outbox. Then the outbox's events (the
//! controls', numbered before) and the commit's own are published, in seq order: the step is the
//! session's only publisher. At the end (the last candle, a stop, a budget) the position is
//! closed at the last close, the metrics are computed over the whole equity curve, and the
//! result, notification and activity entry are written with `session_completed`.

use chrono::Utc;
use engine::metrics::EquityPoint;
use engine::{Metrics, Trade};
use realtime::events::{Event, SessionCompleted, SessionFailed};
use realtime::{Envelope, Publisher};
use serde_json::Value;
use sqlx::PgPool;
use store::sessions::SessionResult;
use store::steps::{self, Commit, Committed, Finish};
use uuid::Uuid;

use crate::queue::StepMessage;
use crate::reconcile::reconcile;
use crate::run::Run;
use crate::worker::{Outcome, StepError, Worker, chain_of};

/// Publishes a commit's events: the outbox's (already numbered) first, then `own`, numbered
/// `last_seq - own.len() + 1 ..= last_seq`. Returns whether a subscriber was reached.
async fn publish(
    publisher: &Publisher,
    session_id: Uuid,
    outbox: Vec<Value>,
    own: &[Event],
    last_seq: i64,
) -> bool {
    let now = Utc::now();
    let first = last_seq - own.len() as i64 + 1;
    let mut envelopes: Vec<Envelope> = outbox
        .into_iter()
        .filter_map(|e| serde_json::from_value(e).ok())
        .collect();
    envelopes.extend(
        own.iter()
            .enumerate()
            .map(|(i, e)| Envelope::session(session_id, (first + i as i64) as u64, e, now)),
    );
    if envelopes.is_empty() {
        return false;
    }
    publisher.publish(session_id, &envelopes).await.reached > 0
}

impl Worker {
    /// Commits what the run holds and publishes its events; `None` when the version moved
    /// (another delivery of this step committed first).
    pub(crate) async fn commit(
        &self,
        run: &mut Run,
        finish: Option<Finish<'_>>,
    ) -> Result<Option<Committed>, StepError> {
        let checkpoint = run.engine.checkpoint()?;
        let stats =
            serde_json::to_value(crate::events::stats_of(&run.engine)).unwrap_or(Value::Null);
        let position = run
            .engine
            .position()
            .and_then(|p| serde_json::to_value(crate::events::opened(p)).ok())
            .unwrap_or(Value::Null);
        let first_index = run.cursor - run.points.len() as i64;
        let gaps = Value::Array(run.gaps.clone());
        let times: Vec<i64> = run.points.iter().map(|p| p.time).collect();
        let equity: Vec<f64> = run.points.iter().map(|p| p.equity).collect();
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
                live_stats: Some(&stats),
                last_watched_at: run.watched_at,
                model_failures: run.model_failures,
                position: Some(&position),
                candles_as_of: run.candles_as_of,
                equity: Some((first_index, &times, &equity)),
                last_candle: run.last_time.and_then(crate::forward::time),
                anchored: run.anchored.as_ref().map(|(a, w, f)| (*a, w, *f)),
                gaps: run.forward().then_some(&gaps),
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
        run.points.clear();
        let events = std::mem::take(&mut run.events);
        let outbox = committed.outbox.0.clone();
        if publish(
            &self.publisher,
            run.session_id,
            outbox,
            &events,
            committed.last_seq,
        )
        .await
        {
            run.watched_at = Some(Utc::now());
        }
        Ok(Some(committed))
    }

    /// Ends the run with its result (`completed`, or `stopped`).
    pub(crate) async fn finish(
        &self,
        run: &mut Run,
        status: &'static str,
        reason: Option<&str>,
    ) -> Result<Outcome, StepError> {
        // the whole curve: what earlier commits appended, then this step's candles
        let mut points: Vec<EquityPoint> = steps::equity(&self.pool, run.user_id, run.session_id)
            .await?
            .into_iter()
            .map(|(time, equity)| EquityPoint { time, equity })
            .collect();
        points.extend(run.points.iter().copied());
        run.engine.rebuild_curve(points.iter().copied());
        let (closed, metrics): (Vec<Trade>, Metrics) = run.engine.finish()?;
        run.events.extend(closed.iter().map(crate::events::closed));
        run.trades.extend(closed);
        let result_id = Uuid::new_v4();
        let economics = store::sessions::economics(&self.pool, run.user_id, run.session_id).await?;
        let sealed = self
            .seal(run, result_id, &metrics, &points, &economics)
            .await?;
        let result = SessionResult::new(
            result_id,
            status == "completed",
            run.starting_capital,
            metrics.final_equity,
            steps::metrics_json(&metrics),
            economics,
        )
        .with_evidence(
            sealed.as_ref().map(|s| s.evidence.clone()),
            sealed.as_ref().map(|s| s.methodology.clone()),
        );
        run.events
            .push(Event::StatsUpdate(crate::events::stats_of(&run.engine)));
        run.events.push(Event::SessionCompleted(SessionCompleted {
            can_generate_certificate: result.can_generate_certificate,
            result: serde_json::to_value(&result).unwrap_or(Value::Null),
        }));
        let mode = run.mode.clone();
        let duration = (Utc::now() - run.started_at).num_seconds().max(0);
        let label = run.label();
        let writing = std::time::Instant::now();
        let committed = self
            .commit(
                run,
                Some(Finish::Result {
                    label,
                    status,
                    result_id,
                    reason,
                    metrics: &metrics,
                    mode: &mode,
                    duration_seconds: duration,
                    sealed: sealed.as_ref(),
                }),
            )
            .await?;
        tracing::info!(
            session_id = %run.session_id,
            ms = writing.elapsed().as_millis() as u64,
            ledger_chunks = sealed.as_ref().map_or(0, |s| s.chunks.len()),
            "result written"
        );
        Ok(match committed {
            Some(_) => Outcome::Ended(status.into()),
            None => Outcome::Stale,
        })
    }

    /// Ends the run `failed`: what was decided so far is kept.
    pub(crate) async fn end_failed(
        &self,
        run: &mut Run,
        reason: &str,
    ) -> Result<Option<Committed>, StepError> {
        run.events.push(Event::SessionFailed(SessionFailed {
            reason: reason.into(),
        }));
        let label = run.label();
        self.commit(run, Some(Finish::Failed { label, reason }))
            .await
    }
}

/// Ends `message`'s session `failed` for `reason` (its checkpoint as it is) when the message is
/// the chain's current one; a stale duplicate fails nothing (`false`). Publishes the outbox and
/// `session_failed`.
pub async fn fail_current(
    pool: &PgPool,
    publisher: &Publisher,
    message: &StepMessage,
    reason: &str,
) -> Result<bool, sqlx::Error> {
    let Some(s) = steps::load(pool, message.user_id, message.session_id).await? else {
        return Ok(false);
    };
    if !reconcile(message.version, &chain_of(&s)).is_current() {
        return Ok(false);
    }
    let committed = steps::commit(
        pool,
        &Commit {
            user_id: s.user_id,
            session_id: s.id,
            version: s.version,
            step_version: message.version,
            checkpoint: s.checkpoint.as_ref().unwrap_or(&Value::Null),
            cursor: s.cursor,
            total_candles: s.total_candles,
            trades: &[],
            events: 1,
            live_stats: None,
            last_watched_at: None,
            model_failures: s.model_failures,
            position: None,
            candles_as_of: None,
            equity: None,
            last_candle: None,
            anchored: None,
            gaps: None,
            finish: Some(Finish::Failed {
                label: if s.kind == "forward" {
                    "Forward test"
                } else {
                    "Backtest"
                },
                reason,
            }),
        },
    )
    .await?;
    let Some(c) = committed else {
        return Ok(false);
    };
    let failed = Event::SessionFailed(SessionFailed {
        reason: reason.into(),
    });
    publish(publisher, s.id, c.outbox.0, &[failed], c.last_seq).await;
    Ok(true)
}
