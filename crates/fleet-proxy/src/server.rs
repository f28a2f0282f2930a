//! Listeners: accepting client connections, serving each with hyper, closing them
//! gracefully.

use std::net::SocketAddr;
use std::pin::pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use http::HeaderValue;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use crate::forward::{self, ClientConn};
use crate::proxy::Shared;
use crate::timer::ConnTimer;
use crate::track::Tracker;

/// After closing what was left at a timeout, how long to wait for the tasks to end.
const CLOSE_GRACE: Duration = Duration::from_secs(1);

/// Where a listener is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    Serving,
    /// No new connections; connections end after their request in flight.
    Draining,
    /// Everything still open is closed now.
    Closing,
}

pub(crate) struct ListenerState {
    pub(crate) addr: SocketAddr,
    pub(crate) phase: watch::Sender<Phase>,
    pub(crate) connections: Arc<Tracker>,
    pub(crate) tunnels: Arc<Tracker>,
}

impl ListenerState {
    pub(crate) fn new(addr: SocketAddr) -> Self {
        Self {
            addr,
            phase: watch::Sender::new(Phase::Serving),
            connections: Arc::default(),
            tunnels: Arc::default(),
        }
    }
}

/// A listener the proxy serves, returned by [`crate::Proxy::listen`] and
/// [`crate::Proxy::serve`]. Dropping it leaves the listener serving; close it with
/// [`Listener::close`] or [`crate::Proxy::shutdown`].
pub struct Listener {
    shared: Arc<Shared>,
    state: Arc<ListenerState>,
}

impl std::fmt::Debug for Listener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Listener")
            .field("addr", &self.state.addr)
            .finish()
    }
}

/// What closing listeners found.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ShutdownReport {
    /// Client connections still busy at the timeout, then closed.
    pub connections_closed: usize,
    /// Upgraded connections still open at the timeout, then closed.
    pub upgraded_closed: usize,
    /// How long closing took.
    pub waited: Duration,
}

impl Listener {
    pub(crate) fn new(shared: Arc<Shared>, state: Arc<ListenerState>) -> Self {
        Self { shared, state }
    }

    /// The address the listener is bound to.
    pub fn local_addr(&self) -> SocketAddr {
        self.state.addr
    }

    /// The client connections open on this listener now, upgraded ones included.
    pub fn connections(&self) -> usize {
        self.state.connections.count() + self.state.tunnels.count()
    }

    /// Stops this listener as [`crate::Proxy::shutdown`] stops them all.
    pub async fn close(self, timeout: Duration) -> ShutdownReport {
        let began = Instant::now();
        self.shared.forget_listener(&self.state);
        close_listeners(std::slice::from_ref(&self.state), began, timeout).await
    }
}

pub(crate) async fn close_listeners(
    listeners: &[Arc<ListenerState>],
    began: Instant,
    timeout: Duration,
) -> ShutdownReport {
    for listener in listeners {
        listener.phase.send_replace(Phase::Draining);
    }
    let deadline = tokio::time::Instant::from_std(began + timeout);
    let mut clean = true;
    for listener in listeners {
        clean &= listener.connections.wait_zero(deadline).await;
        clean &= listener.tunnels.wait_zero(deadline).await;
    }
    let mut report = ShutdownReport::default();
    if !clean {
        for listener in listeners {
            report.connections_closed += listener.connections.count();
            report.upgraded_closed += listener.tunnels.count();
            listener.phase.send_replace(Phase::Closing);
        }
        let closing = tokio::time::Instant::now() + CLOSE_GRACE;
        for listener in listeners {
            listener.connections.wait_zero(closing).await;
            listener.tunnels.wait_zero(closing).await;
        }
    }
    report.waited = began.elapsed();
    for listener in listeners {
        tracing::info!(addr = %listener.addr, ?report, "listener closed");
    }
    report
}

pub(crate) async fn accept_loop(
    shared: Arc<Shared>,
    listener: TcpListener,
    state: Arc<ListenerState>,
) {
    let mut phase = state.phase.subscribe();
    loop {
        let accepted = tokio::select! {
            biased;
            _ = phase.wait_for(|phase| *phase != Phase::Serving) => break,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((stream, peer)) => {
                tokio::spawn(serve_connection(
                    Arc::clone(&shared),
                    Arc::clone(&state),
                    stream,
                    peer,
                ));
            }
            Err(error) => {
                // Out of file descriptors and the like: pause rather than spin.
                tracing::warn!(addr = %state.addr, %error, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

async fn serve_connection(
    shared: Arc<Shared>,
    state: Arc<ListenerState>,
    stream: TcpStream,
    peer: SocketAddr,
) {
    let _tracked = state.connections.track();
    if let Err(error) = stream.set_nodelay(true) {
        tracing::debug!(%peer, %error, "cannot set TCP_NODELAY");
    }
    let client_ip = HeaderValue::from_str(&peer.ip().to_string())
        .expect("an IP address is a valid header value");
    let mut phase = state.phase.subscribe();
    let conn = Arc::new(ClientConn {
        port: state.addr.port(),
        client_ip,
        listener: Arc::clone(&state),
    });
    let service = {
        let shared = Arc::clone(&shared);
        service_fn(move |request| {
            let shared = Arc::clone(&shared);
            let conn = Arc::clone(&conn);
            async move {
                Ok::<_, std::convert::Infallible>(forward::forward(&shared, &conn, request).await)
            }
        })
    };
    // The connection's own settings, for a header read timer of its own.
    let mut http = shared.http.clone();
    http.timer(ConnTimer::new(shared.config.header_read_timeout));
    let mut connection = pin!(
        http.serve_connection(TokioIo::new(stream), service)
            .with_upgrades()
    );
    tokio::select! {
        biased;
        result = connection.as_mut() => {
            if let Err(error) = result {
                tracing::debug!(%peer, %error, "client connection ended with an error");
            }
            return;
        }
        _ = phase.wait_for(|phase| *phase != Phase::Serving) => {}
    }
    connection.as_mut().graceful_shutdown();
    tokio::select! {
        biased;
        _ = connection.as_mut() => {}
        _ = phase.wait_for(|phase| *phase == Phase::Closing) => {}
    }
}
