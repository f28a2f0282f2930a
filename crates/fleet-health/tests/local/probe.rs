//! One probe against real servers: every answer a health endpoint can give.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use axum::http::HeaderMap;
use axum::response::Redirect;
use axum::routing::get;
use fleet_health::{FailureKind, Health, ProbeTarget, Prober, StatusRange};
use futures::StreamExt as _;

use crate::support::{self, http, respond, summary};

const TIMEOUT: Duration = Duration::from_secs(5);

/// Serves one route, `/h`, answering `status` with `content_type` and `body`, probes it
/// once and sums the result up.
async fn check(status: u16, content_type: &'static str, body: &'static str) -> String {
    let app = Router::new().route(
        "/h",
        get(move || async move { respond(status, content_type, body) }),
    );
    let addr = support::serve(app).await;
    let result = Prober::new()
        .unwrap()
        .probe(&http(addr, "/h"), TIMEOUT)
        .await;
    summary(&result)
}

const JSON: &str = "application/json";

#[tokio::test]
async fn answers_a_health_endpoint_can_give() {
    insta::assert_snapshot!(check(200, JSON, r#"{"status":"ok","version":"1.2.3"}"#).await, @"healthy HTTP 200 v=1.2.3");
    insta::assert_snapshot!(check(200, "", "").await, @"healthy HTTP 200");
    insta::assert_snapshot!(check(204, "", "").await, @"healthy HTTP 204");
    insta::assert_snapshot!(check(200, "text/plain", "OK").await, @"healthy HTTP 200");
    insta::assert_snapshot!(check(500, "text/plain", "boom").await, @"unhealthy [Status] HTTP 500: HTTP 500 (expected 200-399)");
    insta::assert_snapshot!(check(503, "application/health+json", r#"{"status":"fail","output":"db down"}"#).await, @r#"unhealthy [Status] HTTP 503: HTTP 503 (expected 200-399); reported status "fail"; output: db down"#);
    insta::assert_snapshot!(check(200, JSON, r#"{"status":"fail","version":"2"}"#).await, @r#"unhealthy [Reported] HTTP 200 v=2: reported status "fail""#);
    insta::assert_snapshot!(check(200, "application/health+json", r#"{"status":"warn","checks":{"disk:utilization":[{"status":"warn","output":"91%"}]}}"#).await, @r#"degraded HTTP 200: reported status "warn"; checks: disk:utilization warn (91%)"#);
    insta::assert_snapshot!(check(200, JSON, r#"{"status":"degraded"}"#).await, @r#"degraded HTTP 200: reported status "degraded""#);
    insta::assert_snapshot!(check(200, JSON, r#"{"status": ok}"#).await, @"unhealthy [InvalidJson] HTTP 200: invalid JSON health body: expected value at line 1 column 12");
    insta::assert_snapshot!(check(200, "text/plain", r#"{"status":"down"}"#).await, @r#"unhealthy [Reported] HTTP 200: reported status "down""#);
}

#[tokio::test]
async fn connection_refused() {
    let addr = support::refused().await;
    let prober = Prober::new().unwrap();
    let http_result = prober.probe(&http(addr, "/"), TIMEOUT).await;
    insta::assert_snapshot!(summary(&http_result), @"unhealthy [ConnectionRefused]: connection refused");
    let tcp = ProbeTarget::tcp("127.0.0.1", addr.port()).unwrap();
    let tcp_result = prober.probe(&tcp, TIMEOUT).await;
    insta::assert_snapshot!(summary(&tcp_result), @"unhealthy [ConnectionRefused]: connection refused");
}

#[tokio::test]
async fn a_server_that_accepts_and_never_answers_is_cut_at_the_timeout() {
    let addr = support::hang().await;
    let timeout = Duration::from_millis(300);
    let result = Prober::new()
        .unwrap()
        .probe(&http(addr, "/"), timeout)
        .await;
    insta::assert_snapshot!(summary(&result), @"unhealthy [Timeout]: timed out after 300ms waiting for a response");
    // A hang detector, not a timing assertion.
    assert!(result.latency < Duration::from_secs(10), "{result:?}");
    assert!(result.latency >= timeout, "{result:?}");
}

#[tokio::test]
async fn a_body_that_never_ends_is_cut_at_the_timeout() {
    let app = Router::new().route(
        "/h",
        get(|| async {
            let start = futures::stream::iter([Ok::<_, std::io::Error>(b"{\"status\":".to_vec())]);
            let stream = start.chain(futures::stream::pending());
            axum::response::Response::builder()
                .header("content-type", JSON)
                .body(axum::body::Body::from_stream(stream))
                .unwrap()
        }),
    );
    let addr = support::serve(app).await;
    let result = Prober::new()
        .unwrap()
        .probe(&http(addr, "/h"), Duration::from_millis(300))
        .await;
    insta::assert_snapshot!(summary(&result), @"unhealthy [Timeout] HTTP 200: timed out after 300ms reading the body of an HTTP 200 response (10 bytes read)");
}

#[tokio::test]
async fn a_ten_megabyte_body_is_read_up_to_the_cap_only() {
    const TOTAL: u64 = 10 * 1024 * 1024;
    let produced = Arc::new(AtomicU64::new(0));
    let counter = Arc::clone(&produced);
    let app = Router::new().route(
        "/h",
        get(move || {
            let counter = Arc::clone(&counter);
            async move { support::endless_body(TOTAL, counter) }
        }),
    );
    let addr = support::serve_on(support::small_buffer_listener(), app);
    let cap = 100_000;
    let ProbeTarget::Http(target) = http(addr, "/h") else {
        unreachable!()
    };
    let target = ProbeTarget::Http(target.with_max_body_bytes(cap));
    let result = Prober::new().unwrap().probe(&target, TIMEOUT).await;

    insta::assert_snapshot!(summary(&result), @"healthy HTTP 200: body longer than 100000 bytes: not read past the cap, judged by status");
    assert_eq!(result.body_bytes, cap);
    assert!(result.body_truncated);
    // The server could only hand over what the client read plus what the socket
    // buffers and hyper's read buffer hold: nowhere near the whole body (about 0.5 MB
    // here).
    let produced = produced.load(Ordering::SeqCst);
    assert!(
        produced < TOTAL / 2,
        "the server produced {produced} of {TOTAL} bytes"
    );
}

#[tokio::test]
async fn a_long_body_with_a_bad_status_is_still_unhealthy() {
    let app = Router::new().route(
        "/h",
        get(|| async { respond(500, "text/plain", "0123456789") }),
    );
    let addr = support::serve(app).await;
    let ProbeTarget::Http(target) = http(addr, "/h") else {
        unreachable!()
    };
    let target = ProbeTarget::Http(target.with_max_body_bytes(4));
    let result = Prober::new().unwrap().probe(&target, TIMEOUT).await;
    insta::assert_snapshot!(summary(&result), @"unhealthy [Status] HTTP 500: HTTP 500 (expected 200-399); body longer than 4 bytes: not read past the cap, judged by status");
    assert_eq!((result.body_bytes, result.body_truncated), (4, true));
}

#[tokio::test]
async fn redirects_are_followed_up_to_the_limit() {
    let app = Router::new()
        .route("/one", get(|| async { Redirect::temporary("/two") }))
        .route("/two", get(|| async { Redirect::permanent("/h") }))
        .route(
            "/h",
            get(|| async { respond(200, JSON, r#"{"status":"ok","version":"9"}"#) }),
        )
        .route("/down", get(|| async { Redirect::to("/broken") }))
        .route("/broken", get(|| async { respond(500, "", "") }))
        .route("/loop", get(|| async { Redirect::to("/loop") }));
    let addr = support::serve(app).await;
    let prober = Prober::new().unwrap();
    let probe = async |path: &str| summary(&prober.probe(&http(addr, path), TIMEOUT).await);
    insta::assert_snapshot!(probe("/one").await, @"healthy HTTP 200 v=9");
    insta::assert_snapshot!(probe("/down").await, @"unhealthy [Status] HTTP 500: HTTP 500 (expected 200-399)");
    insta::assert_snapshot!(probe("/loop").await, @"unhealthy [Redirect]: redirect failed: too many redirects");

    // Without following, a redirect is an answer like any other, judged by its status.
    let literal = Prober::with_redirect_limit(0).unwrap();
    let result = literal.probe(&http(addr, "/one"), TIMEOUT).await;
    insta::assert_snapshot!(summary(&result), @"healthy HTTP 307");
    let ProbeTarget::Http(strict) = http(addr, "/one") else {
        unreachable!()
    };
    let strict = ProbeTarget::Http(strict.with_expected_status("2xx".parse().unwrap()));
    let result = literal.probe(&strict, TIMEOUT).await;
    insta::assert_snapshot!(summary(&result), @"unhealthy [Status] HTTP 307: HTTP 307 (expected 200-299)");
}

#[tokio::test]
async fn sends_the_target_headers_and_honours_the_status_range() {
    let app = Router::new().route(
        "/h",
        get(|headers: HeaderMap| async move {
            let token = headers.get("x-probe-token").and_then(|v| v.to_str().ok());
            let accept = headers
                .get("accept")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default();
            match token {
                Some("s3cret") if accept.starts_with("application/health+json") => {
                    respond(418, "", "")
                }
                _ => respond(401, "", ""),
            }
        }),
    );
    let addr = support::serve(app).await;
    let prober = Prober::new().unwrap();
    let ProbeTarget::Http(plain) = http(addr, "/h") else {
        unreachable!()
    };
    let teapot = plain
        .clone()
        .with_header("X-Probe-Token", "s3cret")
        .unwrap()
        .with_expected_status(StatusRange::new(418, 418).unwrap());
    let result = prober.probe(&ProbeTarget::Http(teapot), TIMEOUT).await;
    insta::assert_snapshot!(summary(&result), @"healthy HTTP 418");
    let result = prober
        .probe(
            &ProbeTarget::Http(plain.with_expected_status(StatusRange::new(418, 418).unwrap())),
            TIMEOUT,
        )
        .await;
    insta::assert_snapshot!(summary(&result), @"unhealthy [Status] HTTP 401: HTTP 401 (expected 418)");
}

#[tokio::test]
async fn tcp_connect() {
    let listening = support::hang().await;
    let result = Prober::new()
        .unwrap()
        .probe(
            &ProbeTarget::tcp("127.0.0.1", listening.port()).unwrap(),
            TIMEOUT,
        )
        .await;
    insta::assert_snapshot!(summary(&result), @"healthy");
    let localhost = ProbeTarget::tcp("localhost", listening.port()).unwrap();
    let result = Prober::new().unwrap().probe(&localhost, TIMEOUT).await;
    assert_eq!(result.outcome, Health::Healthy, "{result:?}");
}

#[tokio::test]
async fn https_to_a_plain_http_server_fails_to_connect() {
    let app = Router::new().route("/h", get(|| async { respond(200, "", "") }));
    let addr = support::serve(app).await;
    let target: ProbeTarget = format!("https://{addr}/h").parse().unwrap();
    let result = Prober::new().unwrap().probe(&target, TIMEOUT).await;
    assert_eq!(result.failure, Some(FailureKind::Connect), "{result:?}");
    insta::assert_snapshot!(summary(&result), @"unhealthy [Connect]: cannot connect: received corrupt message of type InvalidContentType");
}

#[tokio::test]
async fn every_probe_opens_a_new_connection() {
    let peers = Arc::new(Mutex::new(HashSet::new()));
    let seen = Arc::clone(&peers);
    let app = Router::new().route(
        "/h",
        get(
            move |ConnectInfo(peer): ConnectInfo<SocketAddr>| async move {
                seen.lock().unwrap().insert(peer);
                respond(200, "", "")
            },
        ),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
        .unwrap()
    });
    let prober = Prober::new().unwrap();
    for _ in 0..3 {
        let result = prober.probe(&http(addr, "/h"), TIMEOUT).await;
        assert_eq!(result.outcome, Health::Healthy, "{result:?}");
    }
    assert_eq!(
        peers.lock().unwrap().len(),
        3,
        "three probes, three connections"
    );
}
