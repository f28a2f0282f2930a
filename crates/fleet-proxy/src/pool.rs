//! Keep-alive connections to one backend: opened on demand, reused newest first, kept
//! idle up to a count and an age.
//!
//! The pool is the backend's own (see [`crate::backend::Backend`]): when a route
//! switches and the old backend is dropped after its drain, its idle connections close
//! with it. A connection goes back to the pool only once its response was read to the
//! end, so every pooled connection is between exchanges.

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

    /// Whether the connection is closed.
    pub(crate) fn is_closed(&self) -> bool {
        self.send.is_closed()
    }
}

pub(crate) struct Pool {
    addr: SocketAddr,
    settings: Arc<PoolSettings>,
    /// Open upstream connections to `addr`, counted by every pool at that address.
    open: Arc<AtomicUsize>,
    idle: Mutex<Vec<(Conn, Instant)>>,
}

impl Pool {
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
    pub(crate) fn checkout(&self) -> Option<Conn> {
        let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        while let Some((conn, since)) = idle.pop() {
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
    pub(crate) fn checkin(&self, conn: Conn) {
        if conn.is_closed() {
            return;
        }
        let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        if idle.len() < self.settings.max_idle {
            idle.push((conn, Instant::now()));
        }
    }

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
