//! The proxy: its settings, route table, upstream pool and listeners.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use hyper::server::conn::http1;
use hyper_util::rt::TokioTimer;
use tokio::net::TcpListener;

use crate::connect::ConnectionCounts;
use crate::pool::PoolSettings;
use crate::server::{self, Listener, ListenerState, ShutdownReport};
use crate::{Error, ProxyConfig, Routes};

/// hyper refuses a read buffer smaller than this.
const MIN_HEADER_BYTES: usize = 8192;

/// An HTTP/1.1 reverse proxy. Cheap to clone: clones share the route table, the
/// upstream connection pool and the listeners.
#[derive(Clone)]
pub struct Proxy {
    shared: Arc<Shared>,
}

pub(crate) struct Shared {
    pub(crate) config: ProxyConfig,
    pub(crate) routes: Routes,
    pub(crate) http: http1::Builder,
    pub(crate) listeners: Mutex<Vec<Arc<ListenerState>>>,
}

impl std::fmt::Debug for Proxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Proxy")
            .field("config", &self.shared.config)
            .field("routes", &self.shared.routes)
            .field("listeners", &self.listeners())
            .finish()
    }
}

impl Proxy {
    /// A proxy with no route and no listener yet.
    pub fn new(config: ProxyConfig) -> Self {
        let pool = PoolSettings {
            connect_timeout: config.connect_timeout,
            idle_timeout: config.upstream_idle_timeout,
            max_idle: config.max_idle_per_backend,
        };
        let mut http = http1::Builder::new();
        http.timer(TokioTimer::new())
            .header_read_timeout(config.header_read_timeout)
            .max_buf_size(config.max_header_bytes.max(MIN_HEADER_BYTES))
            .max_headers(config.max_headers)
            .keep_alive(true)
            // One buffer per write: for the small responses most requests get, copying
            // the body behind the head costs less than a vectored write (measured with
            // `cargo xtask bench proxy`: about 10% less CPU per request).
            .writev(false);
        Self {
            shared: Arc::new(Shared {
                routes: Routes::new(ConnectionCounts::default(), pool),
                http,
                listeners: Mutex::new(Vec::new()),
                config,
            }),
        }
    }

    /// The route table. Changes apply to every listener at once.
    pub fn routes(&self) -> &Routes {
        &self.shared.routes
    }

    /// The settings the proxy runs with.
    pub fn config(&self) -> &ProxyConfig {
        &self.shared.config
    }

    /// Listens on `addr` and serves every connection on a task of its own. Requests
    /// are routed by the port of `addr` as bound (so port 0 routes by the port the
    /// system chose: see [`Listener::local_addr`]).
    pub async fn listen(&self, addr: SocketAddr) -> Result<Listener, Error> {
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| Error::Bind { addr, source })?;
        self.serve(listener)
    }

    /// Serves connections accepted on a listener the caller bound (a socket handed
    /// over by systemd, say). Must be called within a Tokio runtime.
    pub fn serve(&self, listener: TcpListener) -> Result<Listener, Error> {
        let addr = listener
            .local_addr()
            .map_err(|source| Error::ListenerAddress { source })?;
        let state = Arc::new(ListenerState::new(addr));
        self.lock_listeners().push(Arc::clone(&state));
        tokio::spawn(server::accept_loop(
            Arc::clone(&self.shared),
            listener,
            Arc::clone(&state),
        ));
        tracing::info!(%addr, "listening");
        Ok(Listener::new(Arc::clone(&self.shared), state))
    }

    /// The addresses of the listeners serving now.
    pub fn listeners(&self) -> Vec<SocketAddr> {
        self.lock_listeners()
            .iter()
            .map(|state| state.addr)
            .collect()
    }

    /// Stops every listener gracefully: no new connection is accepted, requests in
    /// flight finish (idle keep-alive connections close at once), and upgraded
    /// connections live until `timeout`, when whatever is left is closed.
    pub async fn shutdown(&self, timeout: Duration) -> ShutdownReport {
        let began = Instant::now();
        let listeners: Vec<Arc<ListenerState>> = std::mem::take(&mut *self.lock_listeners());
        server::close_listeners(&listeners, began, timeout).await
    }

    fn lock_listeners(&self) -> std::sync::MutexGuard<'_, Vec<Arc<ListenerState>>> {
        self.shared
            .listeners
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

impl Shared {
    pub(crate) fn forget_listener(&self, state: &Arc<ListenerState>) {
        self.listeners
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .retain(|other| !Arc::ptr_eq(other, state));
    }
}
