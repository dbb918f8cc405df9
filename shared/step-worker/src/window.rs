//! One lookahead window of a model agent (DESIGN 5a): the prompts of the next `lookahead`
//! candles (the later ones from a clone run ahead with HOLD, which changes nothing but time),
//! their answers from this session's stored decisions, the decision cache or concurrent calls,
//! then the answers accepted in candle order up to and including the first that is not HOLD,
//! stored in one insert and applied. The rest were speculative: paid for, cached, counted, never
//! applied. Paced, each accepted candle is committed and waited out.
//!
//! Every billed answer is counted the moment it returns (stored with its session, so a replay of
//! the session finds it whatever other sessions wrote), an empty 200 included (a failed decision
//! for its candle). A call the step's deadline cut short was never answered: the window ends
//! before its candle, which the next step asks again, and only then.

use std::time::Duration;

use adapters::openrouter::{OpenRouterError, ResponseFormat, Usage};
use engine::{Action, Candle};
use realtime::events::Event;
use store::decisions::Cached;
use store::steps::{self, Thought};

use crate::decider::{
    Call, Model, decision_of, failed_thought, hash_hex, is_failed_call, thought_from,
};
use crate::run::Run;
use crate::worker::{StepError, Worker};

/// How a window ended.
pub(crate) enum Window {
    /// This many candles were decided and applied; `cut`: a call did not fit in the step's
    /// time (the step ends, the next asks it).
    Accepted { n: usize, cut: bool },
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

/// How one of the window's calls ended, once its answer is stored and counted.
enum Outcome {
    Answered {
        stored: Cached,
        format: ResponseFormat,
    },
    Failed(Thought),
    NotAsked,
    Fatal(OpenRouterError),
}

impl Worker {
    pub(crate) async fn window(
        &self,
        run: &mut Run,
        model: &mut Model,
        rows: &[Candle],
        pace: Option<Duration>,
    ) -> Result<Window, StepError> {
        let deadline = run.deadlines.hard;
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
            .map(|r| hash_hex(r.body().to_string().as_bytes()))
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
        let cached =
            store::decisions::lookup(&self.pool, run.user_id, &wanted, run.session_id, run.fresh)
                .await?;
        for j in 0..n {
            if resolved[j].is_some() {
                continue;
            }
            if let Some(hit) = cached.iter().find(|c| c.request_hash == hashes[j]) {
                let source = if hit.session_id == run.session_id {
                    Source::Paid
                } else {
                    Source::Cache
                };
                let index = (first_index + j as i64) as u64;
                let mut thought = thought_from(hit, index, rows[j].time);
                thought.from_cache = source == Source::Cache;
                resolved[j] = Some((thought, source));
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
            let estimate = match model.pricing(deadline).await {
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
        // paid answer, and a replay finds it
        let calls = missing.iter().map(|&j| {
            let (model, request, hash) = (&*model, &requests[j], &hashes[j]);
            let (user_id, session_id) = (run.user_id, run.session_id);
            let index = (first_index + j as i64) as u64;
            let time = rows[j].time;
            async move {
                // a billed answer of this session, filed (and counted) at once
                let billed = |request_hash: String, usage: &Usage, cost: Option<f64>| Cached {
                    request_hash,
                    session_id,
                    content: String::new(),
                    prompt_tokens: usage.prompt_tokens.map(|t| t as i32),
                    completion_tokens: usage.completion_tokens.map(|t| t as i32),
                    cost_usd: cost,
                    latency_ms: None,
                    error: None,
                };
                let file = async |stored: &Cached, requests: u32| {
                    store::decisions::put(&self.pool, user_id, &model.model, stored, requests).await
                };
                let outcome = match model.call(request, deadline).await {
                    Call::Answered { answer, usage } => {
                        let cost = model.cost(&usage, deadline).await;
                        // filed under the request as it was answered (after a fallback, the
                        // json_object one that every later request of the session will be)
                        let mut answered = request.clone();
                        answered.format = answer.format;
                        let stored = Cached {
                            content: answer.content,
                            latency_ms: Some(answer.latency_ms.min(i32::MAX as u32) as i32),
                            ..billed(
                                hash_hex(answered.body().to_string().as_bytes()),
                                &usage,
                                cost,
                            )
                        };
                        file(&stored, usage.requests).await?;
                        let format = answer.format;
                        (Outcome::Answered { stored, format }, cost)
                    }
                    Call::Failed { error, usage } if usage.requests > 0 => {
                        // billed without a usable message: a failed decision, kept for replays
                        let cost = model.cost(&usage, deadline).await;
                        let stored = Cached {
                            error: Some(error),
                            ..billed(hash.clone(), &usage, cost)
                        };
                        file(&stored, usage.requests).await?;
                        (Outcome::Failed(thought_from(&stored, index, time)), cost)
                    }
                    Call::Failed { error, .. } => {
                        store::decisions::count_call(&self.pool, user_id, session_id, 1, None)
                            .await?;
                        (
                            Outcome::Failed(failed_thought(error, hash, index, time)),
                            None,
                        )
                    }
                    Call::NotAsked { usage } => {
                        let cost = model.cost(&usage, deadline).await;
                        if usage.requests > 0 {
                            store::decisions::count_call(
                                &self.pool,
                                user_id,
                                session_id,
                                usage.requests,
                                cost,
                            )
                            .await?;
                        }
                        (Outcome::NotAsked, cost)
                    }
                    Call::Fatal(e) => (Outcome::Fatal(e), None),
                };
                Ok::<_, StepError>((j, outcome))
            }
        });
        let answers = futures::future::join_all(calls).await;
        let mut cut = false;
        for answer in answers {
            let (j, (outcome, cost)) = answer?;
            if let Some(c) = cost {
                run.spent_usd += c;
                run.max_call_cost = Some(run.max_call_cost.map_or(c, |m| m.max(c)));
            }
            match outcome {
                Outcome::Fatal(e) => return Ok(Window::Failed(self.fatal(run, &e).await?)),
                Outcome::NotAsked => cut = true,
                Outcome::Failed(thought) => resolved[j] = Some((thought, Source::Paid)),
                Outcome::Answered { stored, format } => {
                    // (a test's kill point: the window's answers are stored, none is accepted)
                    self.faults.model_call();
                    if format != model.format {
                        // a model that refused the schema is asked for plain JSON from now on,
                        // by every later step of the session too
                        steps::set_response_format(
                            &self.pool,
                            run.user_id,
                            run.session_id,
                            "json_object",
                        )
                        .await?;
                        model.format = format;
                    }
                    let index = (first_index + j as i64) as u64;
                    resolved[j] = Some((thought_from(&stored, index, rows[j].time), Source::Paid));
                }
            }
        }
        if model.limiter.take_rate_limited() {
            // rate limited: look less far ahead for the rest of the step
            run.lookahead = (run.lookahead / 2).max(1);
        }
        // accepted: in order, up to the first candle without an answer, and up to and including
        // the first answer that is not HOLD
        let known = resolved.iter().position(Option::is_none).unwrap_or(n);
        let resolved: Vec<(Thought, Source)> = resolved.into_iter().take(known).flatten().collect();
        let accepted = resolved
            .iter()
            .position(|(t, _)| t.action != "hold")
            .map_or(resolved.len(), |p| p + 1);
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
            let candle_started = tokio::time::Instant::now();
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
            run.applied(rows[j], &decision, applied, true);
            self.faults.candle();
            if let Some(pace) = pace {
                run.events
                    .push(Event::StatsUpdate(crate::events::stats_of(&run.engine)));
                let Some(_) = self.commit(run, None).await? else {
                    return Ok(Window::Stale);
                };
                if !run.going() {
                    return Ok(Window::Accepted { n: j + 1, cut });
                }
                self.wait_pace(run, candle_started + pace).await;
            }
        }
        Ok(Window::Accepted {
            n: decisions.len(),
            cut,
        })
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
        Ok(crate::reasons::model_refused(e))
    }
}
