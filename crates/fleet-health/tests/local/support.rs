//! Real local servers for the tests: axum apps on loopback (over HTTP or HTTPS), a
//! listener that accepts and never answers, and a port nothing listens on.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use axum::Router;
use axum::body::Body;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use fleet_health::{ProbeResult, ProbeTarget};
use futures::StreamExt as _;
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

use crate::pki::Identity;

/// Serves `app` on a free loopback port until the test's runtime ends.
pub(crate) async fn serve(app: Router) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    serve_on(listener, app)
}

/// Serves `app` on `listener` until the test's runtime ends.
pub(crate) fn serve_on(listener: TcpListener, app: Router) -> SocketAddr {
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

/// An HTTPS server on loopback and how many TLS handshakes it completed.
pub(crate) struct TlsServer {
    pub(crate) addr: SocketAddr,
    pub(crate) handshakes: Arc<AtomicUsize>,
}

/// Serves `app` over HTTPS with `identity` on a free loopback port until the test's
/// runtime ends.
///
/// Handshakes run in tasks of their own, so one that never completes or fails (a client
/// refusing the certificate) holds up no other connection.
pub(crate) async fn serve_tls(app: Router, identity: Identity) -> TlsServer {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(identity.chain, identity.key)
        .unwrap();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let acceptor = TlsAcceptor::from(Arc::new(config));
    let tcp = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = tcp.local_addr().unwrap();
    let handshakes = Arc::new(AtomicUsize::new(0));
    let (connections, incoming) = mpsc::channel(16);
    let counter = Arc::clone(&handshakes);
    tokio::spawn(async move {
        while let Ok((stream, peer)) = tcp.accept().await {
            let (acceptor, connections, counter) =
                (acceptor.clone(), connections.clone(), Arc::clone(&counter));
            tokio::spawn(async move {
                if let Ok(tls) = acceptor.accept(stream).await {
                    counter.fetch_add(1, Ordering::SeqCst);
                    let _ = connections.send((tls, peer)).await;
                }
            });
        }
    });
    let listener = TlsListener { incoming, addr };
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    TlsServer { addr, handshakes }
}

/// Hands axum the connections whose TLS handshake completed.
struct TlsListener {
    incoming: mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
    addr: SocketAddr,
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.incoming.recv().await {
            Some(connection) => connection,
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<SocketAddr> {
        Ok(self.addr)
    }
}

/// A listener with small socket buffers, so that bytes the client never reads cannot
/// hide in the kernel by the megabyte.
pub(crate) fn small_buffer_listener() -> TcpListener {
    let socket = TcpSocket::new_v4().unwrap();
    socket.set_send_buffer_size(16 * 1024).unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    socket.listen(16).unwrap()
}

/// A port that accepts connections and never sends a byte.
pub(crate) async fn hang() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((stream, _)) = listener.accept().await {
            held.push(stream);
        }
    });
    addr
}

/// A loopback port nothing listens on (it was free a moment ago).
pub(crate) async fn refused() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    listener.local_addr().unwrap()
}

/// A response with `status`, `content_type` and `body`.
pub(crate) fn respond(status: u16, content_type: &'static str, body: &'static str) -> Response {
    let status = StatusCode::from_u16(status).unwrap();
    if content_type.is_empty() {
        (status, body).into_response()
    } else {
        (status, [(header::CONTENT_TYPE, content_type)], body).into_response()
    }
}

/// A streamed body of `total` bytes in 64 KiB chunks; `produced` counts the bytes the
/// server actually handed to the connection.
pub(crate) fn endless_body(total: u64, produced: Arc<AtomicU64>) -> Response {
    const CHUNK: u64 = 64 * 1024;
    let chunks = (total / CHUNK) as usize;
    let stream = futures::stream::iter(0..chunks).map(move |_| {
        produced.fetch_add(CHUNK, Ordering::SeqCst);
        Ok::<_, std::io::Error>(vec![b'x'; CHUNK as usize])
    });
    Response::builder()
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from_stream(stream))
        .unwrap()
}

/// The URL of `path` on `addr`, as a target.
pub(crate) fn http(addr: SocketAddr, path: &str) -> ProbeTarget {
    format!("http://{addr}{path}").parse().unwrap()
}

/// A probe result on one line, for snapshots: what a reader of a report would check.
/// The latency is left out (it is a timing).
pub(crate) fn summary(result: &ProbeResult) -> String {
    let mut out = result.outcome.to_string();
    if let Some(failure) = result.failure {
        out.push_str(&format!(" [{failure:?}]"));
    }
    if let Some(status) = result.http_status {
        out.push_str(&format!(" HTTP {status}"));
    }
    if let Some(version) = &result.version {
        out.push_str(&format!(" v={version}"));
    }
    if let Some(reason) = &result.reason {
        out.push_str(&format!(": {reason}"));
    }
    out
}
