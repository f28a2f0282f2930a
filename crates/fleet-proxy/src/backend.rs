//! One backend of one route: its address and what is in flight on it.
//!
//! A route's backend is replaced, never changed: [`crate::Routes::set_backend`] puts a
//! new `Backend` in the table and retires the old one, which then counts down to idle
//! while [`crate::Switch::drained`] waits.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};

use tokio::sync::{Notify, watch};

use crate::client::RawConn;
use crate::pool::{Conn, Pool, PoolSettings};

/// What is in flight on one backend at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BackendStats {
    /// Requests sent to the backend whose responses have not been fully passed on yet.
    pub requests: usize,
    /// Upgraded connections (WebSocket and other `Upgrade`s) open through it.
    pub upgraded: usize,
    /// Open TCP connections from the proxy to its address, busy or idle in the pool.
    pub connections: usize,
    /// Requests sent to it since it became the route's backend.
    pub served: u64,
}

pub(crate) struct Backend {
    pub(crate) addr: SocketAddr,
    /// Idle keep-alive connections to `addr` for hyper's client: requests with a body,
    /// and upgrades.
    pub(crate) pool: Pool<Conn>,
    /// Idle keep-alive connections to `addr` for requests without a body.
    pub(crate) raw: Pool<RawConn>,
    requests: AtomicUsize,
    upgraded: AtomicUsize,
    served: AtomicU64,
    retired: AtomicBool,
    /// Woken when a retired backend's count goes down.
    idle: Notify,
    /// Set when the drain timeout closes the upgraded connections.
    close_upgraded: watch::Sender<bool>,
}

impl Backend {
    pub(crate) fn new(
        addr: SocketAddr,
        settings: Arc<PoolSettings>,
        connections: Arc<AtomicUsize>,
    ) -> Self {
        Self {
            addr,
            pool: Pool::new(addr, Arc::clone(&settings), Arc::clone(&connections)),
            raw: Pool::new(addr, settings, connections),
            requests: AtomicUsize::new(0),
            upgraded: AtomicUsize::new(0),
            served: AtomicU64::new(0),
            retired: AtomicBool::new(false),
            idle: Notify::new(),
            close_upgraded: watch::Sender::new(false),
        }
    }

    /// Counts a request on this backend, unless it was retired: then the caller looks
    /// the route up again and finds its new backend.
    ///
    /// The count goes up before the retired flag is read, and [`Backend::retire`] sets
    /// the flag before the drain reads the count (all `SeqCst`): either the request
    /// sees the retirement, or the drain sees the request.
    pub(crate) fn enter(self: &Arc<Self>) -> Option<InFlight> {
        self.requests.fetch_add(1, Ordering::SeqCst);
        if self.retired.load(Ordering::SeqCst) {
            self.leave(&self.requests);
            return None;
        }
        self.served.fetch_add(1, Ordering::Relaxed);
        Some(InFlight {
            backend: Arc::clone(self),
        })
    }

    pub(crate) fn retire(&self) {
        self.retired.store(true, Ordering::SeqCst);
    }

    fn leave(&self, counter: &AtomicUsize) {
        counter.fetch_sub(1, Ordering::SeqCst);
        if self.retired.load(Ordering::SeqCst) {
            self.idle.notify_waiters();
        }
    }

    pub(crate) fn stats(&self) -> BackendStats {
        BackendStats {
            requests: self.requests.load(Ordering::SeqCst),
            upgraded: self.upgraded.load(Ordering::SeqCst),
            connections: self.pool.open_connections().load(Ordering::Relaxed),
            served: self.served.load(Ordering::Relaxed),
        }
    }

    /// Waits until the count of a retired backend may have gone down.
    pub(crate) fn idle(&self) -> &Notify {
        &self.idle
    }

    /// Closes every upgraded connection through this backend.
    pub(crate) fn close_upgraded(&self) {
        self.close_upgraded.send_replace(true);
    }

    /// A receiver that turns `true` when upgraded connections must close.
    pub(crate) fn upgraded_closing(&self) -> watch::Receiver<bool> {
        self.close_upgraded.subscribe()
    }
}

/// One request in flight on a backend; it ends when this is dropped (after the last
/// byte of the response was passed on, or when the exchange failed).
pub(crate) struct InFlight {
    backend: Arc<Backend>,
}

impl InFlight {
    pub(crate) fn backend(&self) -> &Arc<Backend> {
        &self.backend
    }

    /// Counts an upgraded connection on the same backend, which lives on after this
    /// request ends.
    pub(crate) fn upgraded(&self) -> Upgraded {
        self.backend.upgraded.fetch_add(1, Ordering::SeqCst);
        Upgraded {
            backend: Arc::clone(&self.backend),
        }
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.backend.leave(&self.backend.requests);
    }
}

/// One upgraded connection open through a backend; it ends when this is dropped.
pub(crate) struct Upgraded {
    backend: Arc<Backend>,
}

impl Upgraded {
    pub(crate) fn backend(&self) -> &Arc<Backend> {
        &self.backend
    }
}

impl Drop for Upgraded {
    fn drop(&mut self) {
        self.backend.leave(&self.backend.upgraded);
    }
}
