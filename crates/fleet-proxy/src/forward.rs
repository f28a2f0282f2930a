//! Forwarding one request: route it, rewrite it, send it to the backend (again, once,
//! if the connection was refused and that is safe), and pass the response back.

use std::error::Error as _;
use std::future::{Future, poll_fn};
use std::io;
use std::pin::pin;
use std::sync::Arc;
use std::task::Poll;

use http::header::HOST;
use http::uri::PathAndQuery;
use http::{Extensions, HeaderValue, Method, Request, Response, StatusCode, Uri, Version};
use hyper::body::{Body, Incoming};
use hyper::upgrade::OnUpgrade;

use crate::backend::{Backend, InFlight};
use crate::body::{RequestBody, ResponseBody};
use crate::headers::{is_upgrade, set_forwarded, strip_hop_by_hop};
use crate::limits::{declared_too_large, is_body_too_large};
use crate::pages::Page;
use crate::pool::{Conn, ConnectError};
use crate::proxy::Shared;
use crate::routes::Route;
use crate::server::ListenerState;
use crate::upgrade::spawn_tunnel;

static PROTO_HTTP: HeaderValue = HeaderValue::from_static("http");

/// What every request on one client connection shares.
pub(crate) struct ClientConn {
    /// The local port the connection arrived on: the first key of the route table.
    pub(crate) port: u16,
    /// The client's address, ready for `X-Forwarded-For`.
    pub(crate) client_ip: HeaderValue,
    pub(crate) listener: Arc<ListenerState>,
}

/// Why the backend gave no response.
enum Failure {
    /// No connection: the request was not sent and comes back (boxed: this is the
    /// rare path).
    Connect(ConnectError, Box<Request<RequestBody>>),
    /// The exchange failed once the request was handed to a connection.
    Exchange(hyper::Error),
    Timeout,
}

pub(crate) async fn forward(
    shared: &Shared,
    conn: &ClientConn,
    mut request: Request<Incoming>,
) -> Response<ResponseBody> {
    let limit = shared.config.max_body_bytes;
    if limit.is_some_and(|limit| declared_too_large(request.headers(), limit)) {
        return Page::BodyTooLarge.response();
    }
    let host = request
        .headers()
        .get(HOST)
        .cloned()
        .or_else(|| absolute_host(request.uri()));
    let lookup_host = host.as_ref().map(HeaderValue::as_bytes);
    let Some((mut route, mut in_flight)) = shared.routes.enter(conn.port, lookup_host) else {
        return Page::NoRoute.response();
    };
    let upgrade = is_upgrade(request.headers());
    let client_upgrade = upgrade.then(|| hyper::upgrade::on(&mut request));
    // Only a request that can be sent again whole is retried: idempotent, no body.
    let retry = !upgrade && is_idempotent(request.method()) && request.body().is_end_stream();
    let upstream = upstream_request(request, upgrade, conn, host.as_ref(), limit, &route.backend);

    let mut sent = exchange(shared, in_flight.backend(), upstream).await;
    if retry && let Err(Failure::Connect(error, request)) = sent {
        if !is_refused(&error) {
            return failed(&route, &Failure::Connect(error, request));
        }
        tracing::info!(route = %route.name, backend = %route.backend.addr, "connection refused; retrying once");
        drop(in_flight);
        tokio::time::sleep(shared.config.retry_delay).await;
        // Look again: the route may have been switched to a backend that is up.
        let Some(again) = shared.routes.enter(conn.port, lookup_host) else {
            return Page::NoRoute.response();
        };
        (route, in_flight) = again;
        sent = exchange(shared, in_flight.backend(), *request).await;
    }
    match sent {
        Ok((response, upstream_conn)) => respond(
            conn,
            &route,
            response,
            in_flight,
            upstream_conn,
            client_upgrade,
        ),
        Err(failure) => failed(&route, &failure),
    }
}

/// The authority of an absolute-form target (`GET http://host/ HTTP/1.1`).
fn absolute_host(uri: &Uri) -> Option<HeaderValue> {
    HeaderValue::from_str(uri.authority()?.as_str()).ok()
}

fn is_idempotent(method: &Method) -> bool {
    matches!(
        *method,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE | Method::PUT | Method::DELETE
    )
}

/// The client's request as it goes to the backend: origin-form target, HTTP/1.1,
/// hop-by-hop headers out, `X-Forwarded-*` in, the body streamed under the limit.
fn upstream_request(
    request: Request<Incoming>,
    upgrade: bool,
    conn: &ClientConn,
    host: Option<&HeaderValue>,
    limit: Option<u64>,
    backend: &Backend,
) -> Request<RequestBody> {
    let (mut parts, body) = request.into_parts();
    if parts.uri.scheme().is_some() || parts.uri.authority().is_some() {
        let path = parts
            .uri
            .path_and_query()
            .cloned()
            .unwrap_or_else(|| PathAndQuery::from_static("/"));
        parts.uri = Uri::from(path);
    }
    parts.version = Version::HTTP_11;
    parts.extensions = Extensions::new();
    strip_hop_by_hop(&mut parts.headers, upgrade);
    if !parts.headers.contains_key(HOST) {
        // HTTP/1.1 needs a `Host`: the absolute-form target's, or, from an HTTP/1.0
        // client that sent none, the backend's address.
        let host = host.cloned().unwrap_or_else(|| {
            HeaderValue::from_str(&backend.addr.to_string())
                .expect("a socket address is a valid header value")
        });
        parts.headers.insert(HOST, host);
    }
    // Room for the three `X-Forwarded-*` headers at once, rather than growing twice.
    parts.headers.reserve(3);
    set_forwarded(&mut parts.headers, &conn.client_ip, &PROTO_HTTP);
    Request::from_parts(parts, RequestBody::new(body, limit))
}

/// Sends the request on a pooled connection, or a new one, and waits for the response
/// head up to the response timeout.
async fn exchange(
    shared: &Shared,
    backend: &Backend,
    request: Request<RequestBody>,
) -> Result<(Response<Incoming>, Conn), Failure> {
    let timeout = shared.config.response_timeout;
    let mut request = request;
    while let Some(mut conn) = backend.pool.checkout() {
        conn.arm(timeout);
        match send_on(&mut conn, request).await {
            Ok(response) => return Ok((response, conn)),
            // Not sent (the connection closed between exchanges): try another.
            Err(Sent::Not(unsent)) => request = *unsent,
            Err(Sent::Failed(error)) => return Err(Failure::Exchange(error)),
            Err(Sent::TimedOut) => return Err(Failure::Timeout),
        }
    }
    let mut conn = match backend.pool.open().await {
        Ok(conn) => conn,
        Err(error) => return Err(Failure::Connect(error, Box::new(request))),
    };
    conn.arm(timeout);
    match send_on(&mut conn, request).await {
        Ok(response) => Ok((response, conn)),
        Err(Sent::Not(request)) => Err(Failure::Connect(ConnectError::Closed, request)),
        Err(Sent::Failed(error)) => Err(Failure::Exchange(error)),
        Err(Sent::TimedOut) => Err(Failure::Timeout),
    }
}

/// How sending on one connection went wrong.
enum Sent {
    /// The request was not sent: the connection closed between exchanges (boxed:
    /// this is the rare path).
    Not(Box<Request<RequestBody>>),
    Failed(hyper::Error),
    TimedOut,
}

/// Sends the request and waits for the response head, until the connection's timer
/// (armed by the caller) runs out.
async fn send_on(
    conn: &mut Conn,
    request: Request<RequestBody>,
) -> Result<Response<Incoming>, Sent> {
    // The connection's task may not have taken note yet that its last exchange ended.
    let ready = poll_fn(|cx| {
        if conn.expired(cx) {
            return Poll::Ready(Err(true));
        }
        conn.send
            .poll_ready(cx)
            .map(|ready| ready.map_err(|_| false))
    })
    .await;
    match ready {
        Ok(()) => {}
        Err(true) => return Err(Sent::TimedOut),
        Err(false) => return Err(Sent::Not(Box::new(request))),
    }
    let mut response = pin!(conn.send.try_send_request(request));
    poll_fn(|cx| match response.as_mut().poll(cx) {
        Poll::Ready(Ok(response)) => Poll::Ready(Ok(response)),
        Poll::Ready(Err(mut error)) => Poll::Ready(Err(match error.take_message() {
            Some(unsent) => Sent::Not(Box::new(unsent)),
            None => Sent::Failed(error.into_error()),
        })),
        Poll::Pending if conn.expired(cx) => Poll::Ready(Err(Sent::TimedOut)),
        Poll::Pending => Poll::Pending,
    })
    .await
}

fn respond(
    conn: &ClientConn,
    route: &Route,
    mut response: Response<Incoming>,
    in_flight: InFlight,
    upstream_conn: Conn,
    client_upgrade: Option<OnUpgrade>,
) -> Response<ResponseBody> {
    if response.status() == StatusCode::SWITCHING_PROTOCOLS {
        let Some(client_upgrade) = client_upgrade else {
            tracing::warn!(route = %route.name, "the backend switched protocols unasked");
            return Page::BadGateway {
                route: &route.name,
                reason: "an unexpected protocol switch",
            }
            .response();
        };
        let upstream_upgrade = hyper::upgrade::on(&mut response);
        spawn_tunnel(
            client_upgrade,
            upstream_upgrade,
            in_flight.upgraded(),
            conn.listener.tunnels.track(),
            conn.listener.phase.subscribe(),
        );
        let (mut parts, _) = response.into_parts();
        strip_hop_by_hop(&mut parts.headers, true);
        parts.extensions = Extensions::new();
        return Response::from_parts(parts, ResponseBody::empty());
    }
    let (mut parts, body) = response.into_parts();
    strip_hop_by_hop(&mut parts.headers, false);
    parts.extensions = Extensions::new();
    Response::from_parts(
        parts,
        ResponseBody::upstream(body, in_flight, upstream_conn),
    )
}

fn failed(route: &Route, failure: &Failure) -> Response<ResponseBody> {
    let backend = route.backend.addr;
    let reason = match failure {
        Failure::Timeout => {
            tracing::warn!(route = %route.name, %backend, "the backend did not answer in time");
            return Page::GatewayTimeout { route: &route.name }.response();
        }
        Failure::Exchange(error) if is_body_too_large(error) => {
            return Page::BodyTooLarge.response();
        }
        Failure::Connect(ConnectError::Io(error), _) => {
            tracing::warn!(route = %route.name, %backend, %error, "cannot connect to the backend");
            match error.kind() {
                io::ErrorKind::ConnectionRefused => "connection refused",
                io::ErrorKind::TimedOut => "connecting timed out",
                _ => "cannot connect",
            }
        }
        Failure::Connect(ConnectError::Closed, _) => {
            tracing::warn!(route = %route.name, %backend, "the backend closed a new connection at once");
            "the connection failed"
        }
        Failure::Connect(ConnectError::Handshake(error), _) | Failure::Exchange(error) => {
            tracing::warn!(route = %route.name, %backend, error = %chain(error), "the exchange with the backend failed");
            "the connection failed"
        }
    };
    Page::BadGateway {
        route: &route.name,
        reason,
    }
    .response()
}

fn is_refused(error: &ConnectError) -> bool {
    matches!(error, ConnectError::Io(error) if error.kind() == io::ErrorKind::ConnectionRefused)
}

fn chain(error: &hyper::Error) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(error) = cause {
        text.push_str(": ");
        text.push_str(&error.to_string());
        cause = error.source();
    }
    text
}
