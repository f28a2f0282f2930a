//! Forwarding one request: route it, rewrite it, send it to the backend (again, once,
//! if the connection was refused and that is safe), and pass the response back.

use std::error::Error as _;
use std::io;
use std::sync::Arc;

use http::header::HOST;
use http::uri::{PathAndQuery, Scheme};
use http::{
    Extensions, HeaderMap, HeaderValue, Method, Request, Response, StatusCode, Uri, Version,
};
use hyper::body::{Body, Incoming};
use hyper::upgrade::OnUpgrade;
use hyper_util::client::legacy;

use crate::backend::{Backend, InFlight};
use crate::body::{RequestBody, ResponseBody};
use crate::headers::{is_upgrade, set_forwarded, strip_hop_by_hop};
use crate::limits::{declared_too_large, is_body_too_large};
use crate::pages::Page;
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
    Upstream(legacy::Error),
    Timeout,
}

/// The request as it goes upstream, without its body.
struct Head {
    method: Method,
    path: PathAndQuery,
    headers: HeaderMap,
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
    let host = host(&request);
    let Some((route, in_flight)) = shared
        .routes
        .enter(conn.port, host.as_ref().map(HeaderValue::as_bytes))
    else {
        return Page::NoRoute.response();
    };
    let upgrade = is_upgrade(request.headers());
    let client_upgrade = upgrade.then(|| hyper::upgrade::on(&mut request));
    let (parts, body) = request.into_parts();
    let mut head = Head {
        method: parts.method,
        path: parts
            .uri
            .path_and_query()
            .cloned()
            .unwrap_or_else(|| PathAndQuery::from_static("/")),
        headers: parts.headers,
    };
    strip_hop_by_hop(&mut head.headers, upgrade);
    set_forwarded(&mut head.headers, &conn.client_ip, &PROTO_HTTP);
    // Only a request that can be sent again whole is retried: idempotent, no body.
    let retry = (!upgrade && is_idempotent(&head.method) && body.is_end_stream()).then(|| Head {
        method: head.method.clone(),
        path: head.path.clone(),
        headers: head.headers.clone(),
    });
    let body = RequestBody::new(body, limit);
    let mut sent = send(shared, upstream_request(head, body, in_flight.backend())).await;
    let (mut route, mut in_flight) = (route, in_flight);
    if let (Err(Failure::Upstream(error)), Some(head)) = (&sent, retry)
        && is_refused(error)
    {
        tracing::info!(route = %route.name, backend = %route.backend.addr, "connection refused; retrying once");
        drop(in_flight);
        tokio::time::sleep(shared.config.retry_delay).await;
        // Look again: the route may have been switched to a backend that is up.
        let Some(again) = shared
            .routes
            .enter(conn.port, host.as_ref().map(HeaderValue::as_bytes))
        else {
            return Page::NoRoute.response();
        };
        (route, in_flight) = again;
        sent = send(
            shared,
            upstream_request(head, RequestBody::empty(), in_flight.backend()),
        )
        .await;
    }
    match sent {
        Ok(response) => respond(conn, &route, response, in_flight, client_upgrade),
        Err(failure) => failed(&route, &failure),
    }
}

/// The host name the request is for: its `Host` header, or the authority of an
/// absolute-form target.
fn host(request: &Request<Incoming>) -> Option<HeaderValue> {
    if let Some(host) = request.headers().get(HOST) {
        return Some(host.clone());
    }
    let authority = request.uri().authority()?;
    HeaderValue::from_str(authority.as_str()).ok()
}

fn is_idempotent(method: &Method) -> bool {
    matches!(
        *method,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE | Method::PUT | Method::DELETE
    )
}

fn upstream_request(head: Head, body: RequestBody, backend: &Backend) -> Request<RequestBody> {
    let mut uri = Uri::builder()
        .scheme(Scheme::HTTP)
        .authority(backend.authority.clone())
        .path_and_query(head.path)
        .build()
        .expect("a scheme, an authority and a path make a URI");
    let mut request = Request::new(body);
    std::mem::swap(request.uri_mut(), &mut uri);
    *request.method_mut() = head.method;
    *request.version_mut() = Version::HTTP_11;
    *request.headers_mut() = head.headers;
    request
}

async fn send(
    shared: &Shared,
    request: Request<RequestBody>,
) -> Result<Response<Incoming>, Failure> {
    match tokio::time::timeout(
        shared.config.response_timeout,
        shared.client.request(request),
    )
    .await
    {
        Ok(Ok(response)) => Ok(response),
        Ok(Err(error)) => Err(Failure::Upstream(error)),
        Err(_) => Err(Failure::Timeout),
    }
}

fn respond(
    conn: &ClientConn,
    route: &Route,
    mut response: Response<Incoming>,
    in_flight: InFlight,
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
    Response::from_parts(parts, ResponseBody::upstream(body, in_flight))
}

fn failed(route: &Route, failure: &Failure) -> Response<ResponseBody> {
    let backend = route.backend.addr;
    match failure {
        Failure::Timeout => {
            tracing::warn!(route = %route.name, %backend, "the backend did not answer in time");
            Page::GatewayTimeout { route: &route.name }.response()
        }
        Failure::Upstream(error) if is_body_too_large(error) => Page::BodyTooLarge.response(),
        Failure::Upstream(error) => {
            let reason = reason(error);
            tracing::warn!(route = %route.name, %backend, error = %chain(error), "bad gateway");
            Page::BadGateway {
                route: &route.name,
                reason,
            }
            .response()
        }
    }
}

fn io_kind(error: &legacy::Error) -> Option<io::ErrorKind> {
    let mut cause = error.source();
    while let Some(error) = cause {
        if let Some(io) = error.downcast_ref::<io::Error>() {
            return Some(io.kind());
        }
        cause = error.source();
    }
    None
}

fn is_refused(error: &legacy::Error) -> bool {
    error.is_connect() && io_kind(error) == Some(io::ErrorKind::ConnectionRefused)
}

fn reason(error: &legacy::Error) -> &'static str {
    match (error.is_connect(), io_kind(error)) {
        (true, Some(io::ErrorKind::ConnectionRefused)) => "connection refused",
        (true, Some(io::ErrorKind::TimedOut)) => "connecting timed out",
        (true, _) => "cannot connect",
        (false, _) => "the connection failed",
    }
}

fn chain(error: &legacy::Error) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(error) = cause {
        text.push_str(": ");
        text.push_str(&error.to_string());
        cause = error.source();
    }
    text
}
