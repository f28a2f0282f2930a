//! Many targets at once: order kept, bound honoured, hung targets cost one timeout.

use std::num::NonZeroUsize;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::routing::get;
use fleet_health::{FailureKind, Health, ProbePolicy, ProbeTarget, Prober, Verdict};

use crate::support::{self, http, respond};

#[tokio::test]
async fn results_come_in_input_order() {
    let app = Router::new()
        .route(
            "/ok",
            get(|| async { respond(200, "application/json", r#"{"status":"ok"}"#) }),
        )
        .route(
            "/warn",
            get(|| async { respond(200, "application/json", r#"{"status":"warn"}"#) }),
        )
        .route("/fail", get(|| async { respond(503, "", "") }));
    let addr = support::serve(app).await;
    let hung = support::hang().await;
    let refused = support::refused().await;
    let targets: Vec<ProbeTarget> = vec![
        http(hung, "/"),
        http(addr, "/ok"),
        http(refused, "/"),
        http(addr, "/warn"),
        http(addr, "/fail"),
        ProbeTarget::tcp("127.0.0.1", addr.port()).unwrap(),
    ];
    let results = Prober::new()
        .unwrap()
        .probe_many(
            &targets,
            Duration::from_millis(300),
            NonZeroUsize::new(2).unwrap(),
        )
        .await;
    let summary: Vec<String> = results.iter().map(support::summary).collect();
    insta::assert_snapshot!(summary.join("\n"), @r#"
        unhealthy [Timeout]: timed out after 300ms waiting for a response
        healthy HTTP 200
        unhealthy [ConnectionRefused]: connection refused
        degraded HTTP 200: reported status "warn"
        unhealthy [Status] HTTP 503: HTTP 503 (expected 200-399)
        healthy
    "#);
}

#[tokio::test]
async fn no_more_than_the_bound_in_flight() {
    let in_flight = Arc::new(AtomicUsize::new(0));
    let most = Arc::new(AtomicUsize::new(0));
    let (now, max) = (Arc::clone(&in_flight), Arc::clone(&most));
    let app = Router::new().route(
        "/slow",
        get(move || {
            let (now, max) = (Arc::clone(&now), Arc::clone(&max));
            async move {
                let current = now.fetch_add(1, Ordering::SeqCst) + 1;
                max.fetch_max(current, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(50)).await;
                now.fetch_sub(1, Ordering::SeqCst);
                respond(200, "", "")
            }
        }),
    );
    let addr = support::serve(app).await;
    let targets = vec![http(addr, "/slow"); 12];
    let results = Prober::new()
        .unwrap()
        .probe_many(
            &targets,
            Duration::from_secs(5),
            NonZeroUsize::new(3).unwrap(),
        )
        .await;
    assert!(
        results.iter().all(|r| r.outcome == Health::Healthy),
        "{results:?}"
    );
    let most = most.load(Ordering::SeqCst);
    assert!((1..=3).contains(&most), "{most} probes in flight at once");
}

#[tokio::test]
async fn forty_hung_targets_cost_about_one_timeout() {
    let mut targets = Vec::new();
    for _ in 0..40 {
        targets.push(http(support::hang().await, "/"));
    }
    let began = std::time::Instant::now();
    let results = Prober::new()
        .unwrap()
        .probe_many(
            &targets,
            Duration::from_millis(500),
            NonZeroUsize::new(64).unwrap(),
        )
        .await;
    assert!(
        results
            .iter()
            .all(|r| r.failure == Some(FailureKind::Timeout))
    );
    // A hang detector, not a timing assertion: one after the other would take 20 s.
    assert!(
        began.elapsed() < Duration::from_secs(10),
        "{:?}",
        began.elapsed()
    );
}

#[tokio::test]
async fn wait_many_reports_in_input_order() {
    let app = Router::new()
        .route(
            "/ok",
            get(|| async { respond(200, "application/json", r#"{"status":"ok","version":"1"}"#) }),
        )
        .route("/fail", get(|| async { respond(500, "", "") }));
    let addr = support::serve(app).await;
    let quick = ProbePolicy {
        interval: Duration::from_millis(50),
        timeout: Duration::from_millis(300),
        deadline: Duration::from_secs(20),
        ..ProbePolicy::default()
    };
    let targets = vec![
        (http(addr, "/fail"), quick.clone()),
        (http(support::hang().await, "/"), quick.clone()),
        (http(addr, "/ok"), quick),
    ];
    let reports = Prober::new()
        .unwrap()
        .wait_many(&targets, NonZeroUsize::new(8).unwrap())
        .await;
    let verdicts: Vec<(Verdict, usize, Option<&str>)> = reports
        .iter()
        .map(|r| (r.verdict, r.attempts.len(), r.reported_version.as_deref()))
        .collect();
    assert_eq!(
        verdicts,
        [
            (Verdict::Unhealthy, 3, None),
            (Verdict::Unhealthy, 3, None),
            (Verdict::Healthy, 1, Some("1"))
        ]
    );
}
