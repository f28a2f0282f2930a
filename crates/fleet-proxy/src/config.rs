//! How the proxy behaves: limits, timeouts and the upstream pool.

use std::time::Duration;

/// The proxy's settings. Start from [`ProxyConfig::default`] and change what differs.
#[derive(Debug, Clone)]
pub struct ProxyConfig {
    /// The largest request head (request line and headers) a client may send; more is
    /// answered `431 Request Header Fields Too Large`. At least 8 KiB (hyper's floor).
    pub max_header_bytes: usize,
    /// The most headers a request may carry; more is answered `431`.
    pub max_headers: usize,
    /// The largest request body, if any limit: a larger `Content-Length` is answered
    /// `413 Content Too Large` before the backend sees anything, and a chunked upload
    /// that grows past it is cut off (`413` when the backend has not answered yet).
    pub max_body_bytes: Option<u64>,
    /// How long a client may take to send a request head before the connection is
    /// closed.
    pub header_read_timeout: Duration,
    /// How long connecting to a backend may take before the request fails with `502`.
    pub connect_timeout: Duration,
    /// How long a backend may take to start its response (status and headers) before
    /// the client gets `504 Gateway Timeout`. The body then streams without a limit.
    pub response_timeout: Duration,
    /// The pause before the one retry of an idempotent request whose backend refused
    /// the connection. The retry looks the route up again, so a route switched in the
    /// meantime sends it to the new backend.
    pub retry_delay: Duration,
    /// How long an idle pooled connection to a backend is kept (checked when the pool
    /// is next used; a backend's pool closes with it after a switch's drain). Shorter
    /// than the keep-alive timeout of common app servers (gunicorn's 2 s, Node.js's
    /// 5 s), so the proxy does not send a request on a connection the app is closing.
    pub upstream_idle_timeout: Duration,
    /// The most idle pooled connections kept per backend.
    pub max_idle_per_backend: usize,
}

impl Default for ProxyConfig {
    fn default() -> Self {
        Self {
            max_header_bytes: 64 * 1024,
            max_headers: 100,
            max_body_bytes: None,
            header_read_timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(5),
            response_timeout: Duration::from_secs(60),
            retry_delay: Duration::from_millis(100),
            upstream_idle_timeout: Duration::from_secs(1),
            max_idle_per_backend: 1024,
        }
    }
}
