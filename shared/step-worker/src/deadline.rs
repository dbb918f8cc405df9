//! A step's time (DESIGN 5b): one record per invocation, and the step ends before its
//! invocation does, whatever the model or the exchange do.
//!
//! - `invocation`: Lambda's deadline for this invocation (its `Context::deadline`; locally the
//!   event source mapping's `STEP_TIMEOUT_SECS`).
//! - `hard`: `invocation` minus a reserve for the last commit and publish (5 s, or a quarter of
//!   the invocation's time when that is shorter). Everything the step waits on carries it: a
//!   model call and its retries and backoff, the pricing fetch, exchange pages and their
//!   `Retry-After`; nothing starts that cannot end before it.
//! - `budget_end`: `min(start + STEP_BUDGET_MS, hard)`: no new chunk or window starts after it
//!   (except the step's first, so that every step advances).
//! - `safety`: halfway through the reserve. A step still running then (a database that hangs) is
//!   cut off as a handled failure, retried with backoff, instead of being killed by Lambda and
//!   coming back only after the queue's visibility timeout.

use std::time::Duration;

use tokio::time::Instant;

/// The longest reserve for the last commit and publish.
pub const RESERVE: Duration = Duration::from_secs(5);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Deadlines {
    pub budget_end: Instant,
    pub hard: Instant,
    pub safety: Instant,
    pub invocation: Instant,
}

impl Deadlines {
    /// The deadlines of a step that starts now, in an invocation ending at `invocation`, with a
    /// work budget of `budget`.
    pub fn new(invocation: Instant, budget: Duration) -> Self {
        let now = Instant::now();
        let left = invocation.saturating_duration_since(now);
        let reserve = RESERVE.min(left / 4);
        let hard = invocation - reserve;
        Self {
            budget_end: (now + budget).min(hard),
            hard,
            safety: invocation - reserve / 2,
            invocation,
        }
    }

    /// Whether the work budget is spent.
    pub fn budget_spent(&self) -> bool {
        Instant::now() >= self.budget_end
    }

    /// Whether something taking `needs` can still start and end before `hard`.
    pub fn fits(&self, needs: Duration) -> bool {
        Instant::now() + needs <= self.hard
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_budget_ends_before_the_reserve_and_the_reserve_shrinks_for_short_invocations() {
        let now = Instant::now();
        // Lambda: 120 s, budget 60 s
        let d = Deadlines::new(now + Duration::from_secs(120), Duration::from_secs(60));
        assert!(d.budget_end <= now + Duration::from_secs(61));
        assert!(
            d.hard >= now + Duration::from_secs(114) && d.hard <= now + Duration::from_secs(115)
        );
        assert!(d.safety > d.hard && d.safety < d.invocation);
        // a 6 s invocation with a 3 s budget: 1.5 s of reserve
        let d = Deadlines::new(now + Duration::from_secs(6), Duration::from_secs(3));
        let hard = d.hard.duration_since(now);
        assert!(
            hard >= Duration::from_millis(4_490) && hard <= Duration::from_millis(4_510),
            "{hard:?}"
        );
        assert!(d.budget_end.duration_since(now) <= Duration::from_millis(3_010));
        // a budget longer than the invocation ends with the hard deadline
        let d = Deadlines::new(now + Duration::from_secs(6), Duration::from_secs(60));
        assert_eq!(d.budget_end, d.hard);
    }
}
