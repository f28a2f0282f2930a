//! Real local servers for the tests: axum apps on loopback, a listener that accepts and
//! never answers, and a port nothing listens on.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::Router;
use axum::body::Body;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use fleet_health::{ProbeResult, ProbeTarget};
use futures::StreamExt as _;
use tokio::net::{TcpListener, TcpSocket};

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
