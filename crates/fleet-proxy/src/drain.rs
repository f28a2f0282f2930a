//! Draining the backend a route left: wait for what is in flight, up to a deadline.

use std::fmt;
use std::net::SocketAddr;
use std::pin::pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::RouteName;
use crate::backend::{Backend, BackendStats};

/// How long the drain waits, after closing upgraded connections at its deadline, for
/// their tasks to notice. Closing is immediate; this only bounds a wait for bookkeeping.
const CLOSE_GRACE: Duration = Duration::from_secs(1);

/// A route's switch away from a backend, returned by [`crate::Routes::set_backend`]
/// and [`crate::Routes::remove`]. New requests already go to the new backend; await
/// [`Switch::drained`] before stopping the previous one.
#[must_use = "await `drained` before stopping the previous backend"]
pub struct Switch {
    route: RouteName,
    previous: Option<Arc<Backend>>,
}

impl fmt::Debug for Switch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Switch")
            .field("route", &self.route)
            .field("previous", &self.previous())
            .finish()
    }
}

/// What a drain found.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DrainReport {
    /// Requests still in flight on the previous backend when the timeout came. They
    /// are not cut off by the proxy; they end when the backend answers or stops.
    pub in_flight_left: usize,
    /// Upgraded connections (WebSocket, …) closed at the timeout.
    pub upgraded_closed: usize,
    /// How long the drain waited.
    pub waited: Duration,
}

impl DrainReport {
    /// Whether the previous backend went idle before the timeout.
    pub fn is_clean(&self) -> bool {
        self.in_flight_left == 0 && self.upgraded_closed == 0
    }
}

impl fmt::Display for DrainReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "drained in {:?}: {} request(s) left in flight, {} upgraded connection(s) closed",
            self.waited, self.in_flight_left, self.upgraded_closed
        )
    }
}

impl Switch {
    pub(crate) fn new(route: RouteName, previous: Option<Arc<Backend>>) -> Self {
        Self { route, previous }
    }

    /// The route that switched.
    pub fn route(&self) -> &RouteName {
        &self.route
    }

    /// The backend the route left, or `None` when nothing changed.
    pub fn previous(&self) -> Option<SocketAddr> {
        self.previous.as_ref().map(|backend| backend.addr)
    }

    /// What is in flight on the previous backend now (all zeros when nothing changed).
    pub fn stats(&self) -> BackendStats {
        self.previous
            .as_ref()
            .map(|backend| backend.stats())
            .unwrap_or_default()
    }

    /// Waits until the previous backend has no request in flight and no upgraded
    /// connection open, or until `timeout`. At the timeout, upgraded connections are
    /// closed (they live until then, as a long-lived WebSocket would otherwise keep
    /// the old backend forever) and requests still in flight are reported.
    pub async fn drained(self, timeout: Duration) -> DrainReport {
        let Some(backend) = self.previous else {
            return DrainReport::default();
        };
        let began = Instant::now();
        let deadline = tokio::time::Instant::from_std(began + timeout);
        if wait_until(&backend, deadline, |s| s.requests == 0 && s.upgraded == 0).await {
            let report = DrainReport {
                waited: began.elapsed(),
                ..DrainReport::default()
            };
            tracing::debug!(route = %self.route, backend = %backend.addr, %report, "backend drained");
            return report;
        }
        let left = backend.stats();
        backend.close_upgraded();
        let closing = tokio::time::Instant::now() + CLOSE_GRACE;
        wait_until(&backend, closing, |s| s.upgraded == 0).await;
        let report = DrainReport {
            in_flight_left: left.requests,
            upgraded_closed: left.upgraded,
            waited: began.elapsed(),
        };
        tracing::info!(route = %self.route, backend = %backend.addr, %report, "drain timed out");
        report
    }
}

/// Waits until the backend's counts satisfy `done` (`true`) or the deadline passes.
async fn wait_until(
    backend: &Backend,
    deadline: tokio::time::Instant,
    done: impl Fn(BackendStats) -> bool,
) -> bool {
    loop {
        let mut notified = pin!(backend.idle().notified());
        // Registered before the count is read, so a decrement in between still wakes us.
        notified.as_mut().enable();
        if done(backend.stats()) {
            return true;
        }
        if tokio::time::timeout_at(deadline, notified).await.is_err() {
            return false;
        }
    }
}
