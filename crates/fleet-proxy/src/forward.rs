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
use http::{
    Extensions, HeaderValue, Method, Request, Response, StatusCode, Uri, Version, request, response,
};
use hyper::body::{Body, Incoming};
use hyper::upgrade::OnUpgrade;

use crate::backend::{Backend, InFlight};
use crate::body::{RequestBody, ResponseBody};
use crate::client::{self, ExchangeError, Forwarded, Framing, RawConn};
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
    /// No connection: the request was not sent.
    Connect(ConnectError),
    /// The exchange failed once the request was handed to a connection.
    Exchange(hyper::Error),
    /// The exchange on a plain connection failed.
    Raw(ExchangeError),
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
    if !upgrade && request.body().is_end_stream() && request.method() != Method::CONNECT {
        // No body to send and no protocol switch: the lean client's case.
        let (mut head, _) = request.into_parts();
        // The lean client writes the `X-Forwarded-*` headers into the head itself.
        rewrite_target(&mut head, upgrade, host.as_ref(), &route.backend);
        let forwarded = Forwarded {
            client_ip: &conn.client_ip,
            proto: &PROTO_HTTP,
        };
        // Only a request that can be sent again whole is retried: idempotent.
        let idempotent = is_idempotent(&head.method);
        let mut sent =
            exchange_raw(shared, in_flight.backend(), &head, forwarded, idempotent).await;
        if idempotent && let Err(Failure::Connect(error)) = &sent {
            if !is_refused(error) {
                return failed(&route, &sent.err().expect("a failure"));
            }
            tracing::info!(route = %route.name, backend = %route.backend.addr, "connection refused; retrying once");
            drop(in_flight);
            tokio::time::sleep(shared.config.retry_delay).await;
            // Look again: the route may have been switched to a backend that is up.
            let Some(again) = shared.routes.enter(conn.port, lookup_host) else {
                return Page::NoRoute.response();
            };
            (route, in_flight) = again;
            sent = exchange_raw(shared, in_flight.backend(), &head, forwarded, idempotent).await;
        }
        return match sent {
            Ok((response, upstream_conn, framing)) => {
                respond_raw(&route, response, framing, in_flight, upstream_conn)
            }
            Err(failure) => failed(&route, &failure),
        };
    }
    let client_upgrade = upgrade.then(|| hyper::upgrade::on(&mut request));
    let (mut head, body) = request.into_parts();
    rewrite_head(&mut head, upgrade, conn, host.as_ref(), &route.backend);
    let upstream = Request::from_parts(head, RequestBody::new(body, limit));
    match exchange(shared, in_flight.backend(), upstream).await {
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

/// The client's request head as it goes to the backend: origin-form target, HTTP/1.1,
/// hop-by-hop headers out, `X-Forwarded-*` in.
fn rewrite_head(
    parts: &mut request::Parts,
    upgrade: bool,
    conn: &ClientConn,
    host: Option<&HeaderValue>,
    backend: &Backend,
) {
    rewrite_target(parts, upgrade, host, backend);
    // Room for the three `X-Forwarded-*` headers at once, rather than growing twice.
    parts.headers.reserve(3);
    set_forwarded(&mut parts.headers, &conn.client_ip, &PROTO_HTTP);
}

/// [`rewrite_head`] but for the `X-Forwarded-*` headers.
fn rewrite_target(
    parts: &mut request::Parts,
    upgrade: bool,
    host: Option<&HeaderValue>,
    backend: &Backend,
) {
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
}

/// Sends a request without a body on a pooled plain connection, or a new one, and waits
/// for the response head up to the response timeout. A pooled connection found closed
/// is left for another when the request did not reach the backend, or may be sent again.
async fn exchange_raw(
    shared: &Shared,
    backend: &Backend,
    head: &request::Parts,
    forwarded: Forwarded<'_>,
    idempotent: bool,
) -> Result<(response::Parts, RawConn, Framing), Failure> {
    let timeout = shared.config.response_timeout;
    while let Some(mut conn) = backend.raw.checkout() {
        conn.arm(timeout);
        match client::send(&mut conn, head, forwarded).await {
            Ok((response, framing)) => return Ok((response, conn, framing)),
            Err(ExchangeError::Closed { sent }) if !sent || idempotent => {}
            Err(error) => return Err(raw_failure(error)),
        }
    }
    let mut conn = backend.raw.open_raw().await.map_err(Failure::Connect)?;
    conn.arm(timeout);
    match client::send(&mut conn, head, forwarded).await {
        Ok((response, framing)) => Ok((response, conn, framing)),
        Err(ExchangeError::Closed { .. }) => Err(Failure::Connect(ConnectError::Closed)),
        Err(error) => Err(raw_failure(error)),
    }
}

fn raw_failure(error: ExchangeError) -> Failure {
    match error {
        ExchangeError::TimedOut => Failure::Timeout,
        error => Failure::Raw(error),
    }
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
    let mut conn = backend.pool.open().await.map_err(Failure::Connect)?;
    conn.arm(timeout);
    match send_on(&mut conn, request).await {
        Ok(response) => Ok((response, conn)),
        Err(Sent::Not(_)) => Err(Failure::Connect(ConnectError::Closed)),
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

/// The backend's response to a request without a body, on its way to the client.
fn respond_raw(
    route: &Route,
    mut response: response::Parts,
    framing: Framing,
    in_flight: InFlight,
    upstream_conn: RawConn,
) -> Response<ResponseBody> {
    if response.status == StatusCode::SWITCHING_PROTOCOLS {
        tracing::warn!(route = %route.name, "the backend switched protocols unasked");
        return Page::BadGateway {
            route: &route.name,
            reason: "an unexpected protocol switch",
        }
        .response();
    }
    strip_hop_by_hop(&mut response.headers, false);
    Response::from_parts(
        response,
        ResponseBody::raw(framing, in_flight, upstream_conn),
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
        Failure::Connect(ConnectError::Io(error)) => {
            tracing::warn!(route = %route.name, %backend, %error, "cannot connect to the backend");
            match error.kind() {
                io::ErrorKind::ConnectionRefused => "connection refused",
                io::ErrorKind::TimedOut => "connecting timed out",
                _ => "cannot connect",
            }
        }
        Failure::Connect(ConnectError::Closed) => {
            tracing::warn!(route = %route.name, %backend, "the backend closed a new connection at once");
            "the connection failed"
        }
        Failure::Connect(ConnectError::Handshake(error)) | Failure::Exchange(error) => {
            tracing::warn!(route = %route.name, %backend, error = %chain(error), "the exchange with the backend failed");
            "the connection failed"
        }
        Failure::Raw(error) => {
            tracing::warn!(route = %route.name, %backend, %error, "the exchange with the backend failed");
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
