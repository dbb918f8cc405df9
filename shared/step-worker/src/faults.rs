//! Fault injection for tests: where a step dies. Empty (and free: one atomic load) in
//! production.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

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

/// The armed points and the counters they fire on.
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

    fn count(&self, counter: &AtomicUsize, point: impl Fn(usize) -> KillPoint) {
        if !self.any.load(Ordering::Relaxed) {
            return;
        }
        let n = counter.fetch_add(1, Ordering::SeqCst) + 1;
        self.hit(|p| *p == point(n));
    }

    pub(crate) fn model_call(&self) {
        self.count(&self.model_calls, KillPoint::AfterModelCall);
    }

    pub(crate) fn candle(&self) {
        self.count(&self.candles, KillPoint::MidChunk);
    }

    pub(crate) fn before_send(&self) {
        self.count(&self.sends, KillPoint::AfterCommitBeforeSend);
    }
}
