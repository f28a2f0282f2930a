//! Keep-alive connections to one backend: opened on demand, reused newest first, kept
//! idle up to a count and an age.
//!
//! The pool is the backend's own (see [`crate::backend::Backend`]): when a route
//! switches and the old backend is dropped after its drain, its idle connections close
//! with it. A connection goes back to the pool only once its response was read to the
//! end, so every pooled connection is between exchanges.
//!
//! A backend has two pools: hyper's client connections ([`Conn`]), for requests with a
//! body and upgrades, and plain ones ([`crate::client::RawConn`]) for requests without a
//! body, most of them, which [`crate::client`] sends at less cost.

use std::future::Future as _;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::AtomicUsize;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::Context;
use std::time::Duration;

use hyper::client::conn::http1::{self, SendRequest};
use tokio::time::{Instant, Sleep};

use crate::body::RequestBody;
use crate::connect::connect;

/// How the pools of every backend of one proxy behave.
#[derive(Debug, Clone)]
pub(crate) struct PoolSettings {
    pub(crate) connect_timeout: Duration,
    pub(crate) idle_timeout: Duration,
    pub(crate) max_idle: usize,
}

/// A connection to a backend: the handle requests are sent on (the connection's
/// HTTP/1.1 state runs on a task of its own) and its response timer.
pub(crate) struct Conn {
    pub(crate) send: SendRequest<RequestBody>,
    /// The deadline of the response the connection waits for. One timer per
    /// connection, moved later for each exchange, costs less than one per request:
    /// moving a deadline later touches no timer wheel.
    timer: Pin<Box<Sleep>>,
}

/// What a pool needs of a connection.
pub(crate) trait Pooled {
    /// Whether an idle connection was closed (or is otherwise unfit for another
    /// exchange) meanwhile.
    fn is_closed(&mut self) -> bool;

    /// Whether a connection whose exchange just ended can serve another.
    fn is_reusable(&self) -> bool;
}

impl Pooled for Conn {
    fn is_closed(&mut self) -> bool {
        self.send.is_closed()
    }

    fn is_reusable(&self) -> bool {
        !self.send.is_closed()
    }
}

impl Conn {
    /// Starts the wait for a response: it must start within `timeout`.
    pub(crate) fn arm(&mut self, timeout: Duration) {
        self.timer.as_mut().reset(Instant::now() + timeout);
    }

    /// Whether the response timeout passed (registering the task to be woken when it
    /// does).
    pub(crate) fn expired(&mut self, cx: &mut Context<'_>) -> bool {
        self.timer.as_mut().poll(cx).is_ready()
    }
}

pub(crate) struct Pool<C> {
    pub(crate) addr: SocketAddr,
    pub(crate) settings: Arc<PoolSettings>,
    /// Open upstream connections to `addr`, counted by every pool at that address.
    pub(crate) open: Arc<AtomicUsize>,
    idle: Mutex<Vec<(C, Instant)>>,
}

impl<C: Pooled> Pool<C> {
    pub(crate) fn new(
        addr: SocketAddr,
        settings: Arc<PoolSettings>,
        open: Arc<AtomicUsize>,
    ) -> Self {
        Self {
            addr,
            settings,
            open,
            idle: Mutex::new(Vec::new()),
        }
    }

    pub(crate) fn open_connections(&self) -> &AtomicUsize {
        &self.open
    }

    /// The most recently used idle connection that is still open, if any.
    pub(crate) fn checkout(&self) -> Option<C> {
        let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        while let Some((mut conn, since)) = idle.pop() {
            if since.elapsed() > self.settings.idle_timeout {
                // Newest first: every connection below this one is older still.
                idle.clear();
                return None;
            }
            if !conn.is_closed() {
                return Some(conn);
            }
        }
        None
    }

    /// Gives back a connection whose exchange ended cleanly.
    pub(crate) fn checkin(&self, conn: C) {
        if !conn.is_reusable() {
            return;
        }
        let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        if idle.len() < self.settings.max_idle {
            idle.push((conn, Instant::now()));
        }
    }
}

impl Pool<Conn> {
    /// Opens a new connection, its HTTP/1.1 state kept by a task of its own.
    pub(crate) async fn open(&self) -> Result<Conn, ConnectError> {
        let io = connect(
            self.addr,
            self.settings.connect_timeout,
            Arc::clone(&self.open),
        )
        .await
        .map_err(ConnectError::Io)?;
        let (send, connection) = http1::Builder::new()
            // As on client connections (see `Proxy::new`): one buffer per write.
            .writev(false)
            .handshake(io)
            .await
            .map_err(ConnectError::Handshake)?;
        let addr = self.addr;
        tokio::spawn(async move {
            if let Err(error) = connection.with_upgrades().await {
                tracing::debug!(backend = %addr, %error, "upstream connection ended with an error");
            }
        });
        Ok(Conn {
            send,
            timer: Box::pin(tokio::time::sleep(self.settings.connect_timeout)),
        })
    }
}

/// Why no connection could be opened.
#[derive(Debug)]
pub(crate) enum ConnectError {
    Io(std::io::Error),
    Handshake(hyper::Error),
    /// The connection closed before the request could be sent on it.
    Closed,
}
