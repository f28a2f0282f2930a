//! Counting live tasks (connections, tunnels) and waiting for the count to reach zero.

use std::pin::pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::sync::Notify;
use tokio::time::Instant;

#[derive(Default)]
pub(crate) struct Tracker {
    count: AtomicUsize,
    idle: Notify,
}

impl Tracker {
    pub(crate) fn track(self: &Arc<Self>) -> Tracked {
        self.count.fetch_add(1, Ordering::SeqCst);
        Tracked {
            tracker: Arc::clone(self),
        }
    }

    pub(crate) fn count(&self) -> usize {
        self.count.load(Ordering::SeqCst)
    }

    /// Waits until nothing is tracked (`true`) or the deadline passes.
    pub(crate) async fn wait_zero(&self, deadline: Instant) -> bool {
        loop {
            let mut idle = pin!(self.idle.notified());
            idle.as_mut().enable();
            if self.count() == 0 {
                return true;
            }
            if tokio::time::timeout_at(deadline, idle).await.is_err() {
                return false;
            }
        }
    }
}

/// One tracked task; it ends when this is dropped.
pub(crate) struct Tracked {
    tracker: Arc<Tracker>,
}

impl Drop for Tracked {
    fn drop(&mut self) {
        if self.tracker.count.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.tracker.idle.notify_waiters();
        }
    }
}
