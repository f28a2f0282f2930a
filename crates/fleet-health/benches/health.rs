//! `cargo xtask bench health`: probing many endpoints at once, and the cost of one probe.
//!
//! Starts 200 endpoints in this process (150 healthy axum apps, 50 that accept and never
//! answer), then measures, each over several runs, reporting medians:
//!
//! 1. `probe_many` over all 200 with a 1 s timeout: the wall time should be about one
//!    timeout (50 hung endpoints one after the other would take 50 s).
//! 2. The cost of one probe of a healthy endpoint: `Prober::probe` one after the other
//!    over the 150 healthy endpoints, against what a user would write, a `curl -s -m 1`
//!    loop in `sh` over the same endpoints. Both as wall time per probe in a loop, and
//!    as the request's own time (`ProbeResult::latency` against curl's `time_total`).

// A benchmark reports on stdout.
#![allow(clippy::print_stdout)]

use std::net::SocketAddr;
use std::num::NonZeroUsize;
use std::process::Command;
use std::time::{Duration, Instant};

use axum::Router;
use axum::http::header;
use axum::routing::get;
use fleet_health::{DEFAULT_CONCURRENCY, FailureKind, Health, ProbeTarget, Prober};
use tokio::net::TcpListener;

const HEALTHY: usize = 150;
const HUNG: usize = 50;
const TIMEOUT: Duration = Duration::from_secs(1);
const RUNS: usize = 5;

fn main() {
    let runtime = tokio::runtime::Runtime::new().expect("a tokio runtime");
    let (healthy, hung) = runtime.block_on(start_endpoints());
    let healthy_targets: Vec<ProbeTarget> = healthy
        .iter()
        .map(|addr| format!("http://{addr}/healthz").parse().unwrap())
        .collect();
    // Interleave hung and healthy endpoints, as a real fleet would.
    let mut all_targets = healthy_targets.clone();
    for (i, addr) in hung.iter().enumerate() {
        let target = format!("http://{addr}/healthz").parse().unwrap();
        all_targets.insert(i * 4, target);
    }
    let prober = Prober::new().expect("a prober");

    println!(
        "fleet-health bench: {HEALTHY} healthy + {HUNG} hung endpoints on loopback, \
         timeout {TIMEOUT:?}, {RUNS} runs, medians"
    );
    println!();

    // 1. Everything at once.
    for concurrency in [
        NonZeroUsize::new(all_targets.len()).unwrap(),
        DEFAULT_CONCURRENCY,
    ] {
        let walls: Vec<Duration> = (0..RUNS)
            .map(|_| {
                let began = Instant::now();
                let results =
                    runtime.block_on(prober.probe_many(&all_targets, TIMEOUT, concurrency));
                let wall = began.elapsed();
                check_many(&results);
                wall
            })
            .collect();
        let wall = median(walls);
        println!(
            "probe_many, {} targets, concurrency {concurrency:>3}: wall {:>8.1} ms  \
             ({:.2} x the timeout; {HUNG} hung probes one after the other: {} s)",
            all_targets.len(),
            ms(wall),
            wall.as_secs_f64() / TIMEOUT.as_secs_f64(),
            HUNG as u64 * TIMEOUT.as_secs(),
        );
    }
    println!();

    // 2. One probe at a time over the healthy endpoints.
    let mut loop_per_probe = Vec::new();
    let mut latencies = Vec::new();
    for _ in 0..RUNS {
        let began = Instant::now();
        for target in &healthy_targets {
            let result = runtime.block_on(prober.probe(target, TIMEOUT));
            assert_eq!(result.outcome, Health::Healthy, "{result:?}");
            latencies.push(result.latency);
        }
        loop_per_probe.push(began.elapsed() / HEALTHY as u32);
    }
    let ours_loop = median(loop_per_probe);
    let ours_latency = median(latencies);

    let urls: Vec<String> = healthy
        .iter()
        .map(|addr| format!("http://{addr}/healthz"))
        .collect();
    let mut curl_loop_per_probe = Vec::new();
    let mut curl_latencies = Vec::new();
    for _ in 0..RUNS {
        let began = Instant::now();
        let output = Command::new("sh")
            .arg("-c")
            .arg(r#"for u in "$@"; do curl -s -m 1 -o /dev/null -w '%{http_code} %{time_total}\n' "$u"; done"#)
            .arg("sh")
            .args(&urls)
            .output()
            .expect("curl must be installed to compare against it (apt-get install curl)");
        curl_loop_per_probe.push(began.elapsed() / HEALTHY as u32);
        let stdout = String::from_utf8(output.stdout).unwrap();
        assert_eq!(
            stdout.lines().count(),
            HEALTHY,
            "curl answered for every endpoint"
        );
        for line in stdout.lines() {
            let (code, total) = line.split_once(' ').unwrap();
            assert_eq!(code, "200", "curl got 200 from every healthy endpoint");
            curl_latencies.push(Duration::from_secs_f64(total.parse().unwrap()));
        }
    }
    let curl_loop = median(curl_loop_per_probe);
    let curl_latency = median(curl_latencies);

    println!("one probe of a healthy endpoint, {HEALTHY} one after the other:");
    println!(
        "  wall per probe in a loop:  fleet-health {:>7.3} ms   curl loop {:>7.3} ms   curl/fleet-health {:>5.1}x",
        ms(ours_loop),
        ms(curl_loop),
        curl_loop.as_secs_f64() / ours_loop.as_secs_f64(),
    );
    println!(
        "  request time (no process): fleet-health {:>7.3} ms   curl      {:>7.3} ms   curl/fleet-health {:>5.1}x",
        ms(ours_latency),
        ms(curl_latency),
        curl_latency.as_secs_f64() / ours_latency.as_secs_f64(),
    );
}

/// Starts the healthy apps and the hung listeners; returns their addresses.
async fn start_endpoints() -> (Vec<SocketAddr>, Vec<SocketAddr>) {
    let mut healthy = Vec::new();
    for _ in 0..HEALTHY {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        healthy.push(listener.local_addr().unwrap());
        let app = Router::new().route(
            "/healthz",
            get(|| async {
                (
                    [(header::CONTENT_TYPE, "application/json")],
                    r#"{"status":"ok","version":"1.0.0"}"#,
                )
            }),
        );
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    }
    let mut hung = Vec::new();
    for _ in 0..HUNG {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        hung.push(listener.local_addr().unwrap());
        tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((stream, _)) = listener.accept().await {
                held.push(stream);
            }
        });
    }
    (healthy, hung)
}

fn check_many(results: &[fleet_health::ProbeResult]) {
    let healthy = results
        .iter()
        .filter(|r| r.outcome == Health::Healthy)
        .count();
    let timed_out = results
        .iter()
        .filter(|r| r.failure == Some(FailureKind::Timeout))
        .count();
    assert_eq!(
        (healthy, timed_out),
        (HEALTHY, HUNG),
        "every endpoint answered as it should"
    );
}

fn median(mut values: Vec<Duration>) -> Duration {
    values.sort();
    values[values.len() / 2]
}

fn ms(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}
