//! Waits against real servers that start slowly, flap, or hang. The assertions are
//! about verdicts and reasons, never about how long things took.

use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::routing::get;
use fleet_health::{FailureKind, Health, ProbePolicy, Prober, Verdict};
use tokio::net::TcpListener;

use crate::support::{self, http, respond};

fn policy(start_period_ms: u64, success: u32, failure: u32, deadline_ms: u64) -> ProbePolicy {
    ProbePolicy {
        start_period: Duration::from_millis(start_period_ms),
        start_interval: Duration::from_millis(100),
        interval: Duration::from_millis(100),
        timeout: Duration::from_secs(1),
        success_threshold: NonZeroU32::new(success).unwrap(),
        failure_threshold: NonZeroU32::new(failure).unwrap(),
        deadline: Duration::from_millis(deadline_ms),
    }
}

/// An app that does not listen for its first second, then answers 503 "starting" for
/// half a second, then 200 "ok" with its version.
async fn slow_starter() -> SocketAddr {
    let addr = support::refused().await;
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let listening = tokio::time::Instant::now();
        let app = Router::new().route(
            "/healthz",
            get(move || async move {
                if listening.elapsed() < Duration::from_millis(500) {
                    respond(503, "application/json", r#"{"status":"starting"}"#)
                } else {
                    respond(
                        200,
                        "application/json",
                        r#"{"status":"ok","version":"2.0.1"}"#,
                    )
                }
            }),
        );
        let listener = TcpListener::bind(addr).await.unwrap();
        axum::serve(listener, app).await.unwrap();
    });
    addr
}

#[tokio::test]
async fn a_slow_start_is_healthy_within_the_start_period() {
    let addr = slow_starter().await;
    // Start period 4 s: the refusals and 503s of the first 1.5 s do not count.
    let report = Prober::new()
        .unwrap()
        .wait_healthy(&http(addr, "/healthz"), &policy(4_000, 2, 2, 20_000))
        .await;
    assert_eq!(report.verdict, Verdict::Healthy, "{report}");
    assert_eq!(
        report.reported_version.as_deref(),
        Some("2.0.1"),
        "{report}"
    );
    assert!(report.time_to_healthy.is_some(), "{report}");
    let first = &report.attempts[0];
    assert_eq!(
        first.result.failure,
        Some(FailureKind::ConnectionRefused),
        "{report}"
    );
    assert!(
        report
            .attempts
            .iter()
            .any(|a| a.result.http_status == Some(503)),
        "the app said it was starting at least once: {report}"
    );
    for attempt in report.attempts.iter().filter(|a| !a.result.outcome.is_up()) {
        assert!(
            !attempt.counted,
            "failures in the start period do not count: {report}"
        );
    }
    let [.., one, two] = &report.attempts[..] else {
        panic!("{report}")
    };
    assert_eq!(
        (one.result.outcome, two.result.outcome),
        (Health::Healthy, Health::Healthy),
        "{report}"
    );
}

#[tokio::test]
async fn a_slow_start_without_a_start_period_is_unhealthy() {
    let addr = slow_starter().await;
    let report = Prober::new()
        .unwrap()
        .wait_healthy(&http(addr, "/healthz"), &policy(0, 1, 2, 20_000))
        .await;
    assert_eq!(report.verdict, Verdict::Unhealthy, "{report}");
    assert_eq!(report.attempts.len(), 2, "{report}");
    assert!(report.attempts.iter().all(|a| a.counted), "{report}");
    assert_eq!(report.last_reason(), Some("connection refused"), "{report}");
}

#[tokio::test]
async fn a_flapping_app_never_reaches_a_threshold() {
    let requests = Arc::new(AtomicUsize::new(0));
    let app = Router::new().route(
        "/healthz",
        get(move || {
            let n = requests.fetch_add(1, Ordering::SeqCst);
            async move {
                if n.is_multiple_of(2) {
                    respond(200, "application/json", r#"{"status":"ok"}"#)
                } else {
                    respond(500, "", "")
                }
            }
        }),
    );
    let addr = support::serve(app).await;
    let report = Prober::new()
        .unwrap()
        .wait_healthy(&http(addr, "/healthz"), &policy(0, 2, 2, 1_000))
        .await;
    assert_eq!(report.verdict, Verdict::DeadlineExceeded, "{report}");
    let outcomes: Vec<bool> = report
        .attempts
        .iter()
        .filter(|a| a.result.failure != Some(FailureKind::Deadline))
        .map(|a| a.result.outcome.is_up())
        .collect();
    assert!(outcomes.len() >= 3, "{report}");
    for (i, up) in outcomes.iter().enumerate() {
        assert_eq!(*up, i % 2 == 0, "alternates: {report}");
    }
}

#[tokio::test]
async fn a_hung_app_times_out_every_probe() {
    let addr = support::hang().await;
    let policy = ProbePolicy {
        timeout: Duration::from_millis(200),
        ..policy(0, 1, 2, 20_000)
    };
    let report = Prober::new()
        .unwrap()
        .wait_healthy(&http(addr, "/"), &policy)
        .await;
    assert_eq!(report.verdict, Verdict::Unhealthy, "{report}");
    for attempt in &report.attempts {
        assert_eq!(
            attempt.result.failure,
            Some(FailureKind::Timeout),
            "{report}"
        );
        assert!(
            attempt
                .result
                .reason
                .as_deref()
                .unwrap()
                .contains("timed out after 200ms")
        );
    }
    // A hang detector, not a timing assertion.
    assert!(report.elapsed < Duration::from_secs(10), "{report}");
}

#[tokio::test]
async fn the_deadline_cuts_a_hung_probe_short() {
    let addr = support::hang().await;
    let policy = ProbePolicy {
        timeout: Duration::from_secs(30),
        ..policy(0, 1, 3, 300)
    };
    let report = Prober::new()
        .unwrap()
        .wait_healthy(&http(addr, "/"), &policy)
        .await;
    assert_eq!(report.verdict, Verdict::DeadlineExceeded, "{report}");
    assert_eq!(report.attempts.len(), 1, "{report}");
    assert_eq!(
        report.attempts[0].result.failure,
        Some(FailureKind::Deadline),
        "{report}"
    );
    assert!(!report.attempts[0].counted);
    assert!(report.elapsed < Duration::from_secs(10), "{report}");
}
