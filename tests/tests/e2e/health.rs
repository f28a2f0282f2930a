//! End-to-end scenarios for health: fleet-health probing the test app's containers on
//! the real Docker Engine, through the published port and through the container's IP.

use std::num::NonZeroUsize;
use std::time::Duration;

use fleet_health::{
    FailureKind, Health, HealthSpec, ProbeKind, ProbePolicy, ProbeTarget, Prober, Verdict,
};
use fleet_tests::docker::{RunSpec, RunningContainer, TestDocker};
use fleet_tests::image::{APP_PORT, Behaviour, TestImage};

/// A policy for containers that start in well under a second, with room for a slow CI.
fn policy(start_period: Duration, success: u32, failure: u32, deadline: Duration) -> ProbePolicy {
    ProbePolicy {
        start_period,
        start_interval: Duration::from_millis(200),
        interval: Duration::from_millis(300),
        timeout: Duration::from_secs(2),
        success_threshold: success.try_into().expect("a non-zero threshold"),
        failure_threshold: failure.try_into().expect("a non-zero threshold"),
        deadline,
    }
}

/// The test app's health check as an instance's configuration would state it.
fn app_spec(kind: ProbeKind) -> HealthSpec {
    let mut spec = HealthSpec::default();
    spec.kind = kind;
    spec.path = "/api/health".to_owned();
    spec.port = Some(APP_PORT);
    spec
}

/// The test app's health endpoint through the published port and through the container IP.
fn both_ways(container: &RunningContainer, kind: ProbeKind) -> anyhow::Result<[ProbeTarget; 2]> {
    let spec = app_spec(kind);
    Ok([
        spec.target("127.0.0.1", container.host_port)?,
        spec.target(&container.ip, APP_PORT)?,
    ])
}

/// Waits until the app accepts connections on its container IP, so that a scenario
/// starts from a listening app.
async fn wait_listening(prober: &Prober, container: &RunningContainer) -> anyhow::Result<()> {
    let target = ProbeTarget::tcp(&container.ip, APP_PORT)?;
    let report = prober
        .wait_healthy(
            &target,
            &policy(Duration::ZERO, 1, 100, Duration::from_secs(30)),
        )
        .await;
    anyhow::ensure!(
        report.verdict == Verdict::Healthy,
        "the app never listened:\n{report}"
    );
    Ok(())
}

#[tokio::test]
async fn probes_the_test_app_through_its_published_port_and_its_container_ip() -> anyhow::Result<()>
{
    let docker = TestDocker::new().await?;
    let image = TestImage::new("1.4.2").build(&docker).await?;
    let container = docker.run(RunSpec::new(&image.local_tag, "health")).await?;

    let [published, by_ip] = both_ways(&container, ProbeKind::Http)?;
    let [tcp_published, tcp_by_ip] = both_ways(&container, ProbeKind::Tcp)?;
    assert_eq!(
        published.to_string(),
        format!("{}/api/health", container.url())
    );
    assert_eq!(
        by_ip.to_string(),
        format!("http://{}:{APP_PORT}/api/health", container.ip)
    );

    let gate = policy(Duration::from_secs(20), 2, 3, Duration::from_secs(60));
    let targets: Vec<(ProbeTarget, ProbePolicy)> = [published, by_ip, tcp_published, tcp_by_ip]
        .into_iter()
        .map(|target| (target, gate.clone()))
        .collect();
    let reports = Prober::new()?
        .wait_many(&targets, NonZeroUsize::new(4).unwrap())
        .await;

    for report in &reports {
        assert_eq!(report.verdict, Verdict::Healthy, "{report}");
        assert_eq!(report.health(), Health::Healthy, "{report}");
        assert!(report.time_to_healthy.is_some(), "{report}");
    }
    for report in &reports[..2] {
        assert_eq!(
            report.reported_version.as_deref(),
            Some("1.4.2"),
            "{report}"
        );
        let last = &report.attempts.last().expect("attempts").result;
        assert_eq!(last.http_status, Some(200), "{report}");
        let checks: Vec<(&str, Option<Health>)> = last
            .checks
            .iter()
            .map(|c| (c.name.as_str(), c.health))
            .collect();
        assert_eq!(checks, [("database", Some(Health::Healthy))], "{report}");
    }
    Ok(())
}

#[tokio::test]
async fn the_start_period_carries_a_slow_start_that_thresholds_alone_refuse() -> anyhow::Result<()>
{
    let docker = TestDocker::new().await?;
    let image = TestImage::new("2.0.0")
        .behaviour(Behaviour::SlowStart(6))
        .build(&docker)
        .await?;
    let container = docker.run(RunSpec::new(&image.local_tag, "slow")).await?;
    let prober = Prober::new()?;
    wait_listening(&prober, &container).await?;
    let [published, by_ip] = both_ways(&container, ProbeKind::Http)?;

    // No start period: two 503 "starting" answers in a row and the gate closes.
    let strict = policy(Duration::ZERO, 1, 2, Duration::from_secs(30));
    let report = prober.wait_healthy(&by_ip, &strict).await;
    assert_eq!(report.verdict, Verdict::Unhealthy, "{report}");
    assert_eq!(report.attempts.len(), 2, "{report}");
    for attempt in &report.attempts {
        assert_eq!(
            attempt.result.failure,
            Some(FailureKind::Status),
            "{report}"
        );
        assert_eq!(attempt.result.http_status, Some(503), "{report}");
        let reason = attempt.result.reason.as_deref().unwrap_or_default();
        assert!(reason.contains(r#"reported status "starting""#), "{report}");
    }

    // A start period longer than the slow start: the 503s do not count.
    let lenient = policy(Duration::from_secs(30), 2, 3, Duration::from_secs(60));
    let report = prober.wait_healthy(&published, &lenient).await;
    assert_eq!(report.verdict, Verdict::Healthy, "{report}");
    assert_eq!(
        report.reported_version.as_deref(),
        Some("2.0.0"),
        "{report}"
    );
    let failures: Vec<_> = report
        .attempts
        .iter()
        .filter(|a| !a.result.outcome.is_up())
        .collect();
    assert!(
        !failures.is_empty(),
        "the app was still starting at first: {report}"
    );
    for attempt in failures {
        assert!(!attempt.counted, "{report}");
        assert_eq!(attempt.result.http_status, Some(503), "{report}");
    }
    Ok(())
}

#[tokio::test]
async fn never_healthy_and_flapping_apps_fail_the_gate() -> anyhow::Result<()> {
    let docker = TestDocker::new().await?;
    let never = TestImage::new("3.0.0")
        .behaviour(Behaviour::NeverHealthy)
        .build(&docker)
        .await?;
    let flap = TestImage::new("3.0.0")
        .behaviour(Behaviour::Flap)
        .build(&docker)
        .await?;
    let never = docker.run(RunSpec::new(&never.local_tag, "never")).await?;
    let flap = docker.run(RunSpec::new(&flap.local_tag, "flap")).await?;
    let prober = Prober::new()?;
    wait_listening(&prober, &never).await?;
    wait_listening(&prober, &flap).await?;

    let gate = policy(Duration::ZERO, 2, 3, Duration::from_secs(4));
    let [_, never_by_ip] = both_ways(&never, ProbeKind::Http)?;
    let [flap_published, _] = both_ways(&flap, ProbeKind::Http)?;
    let reports = prober
        .wait_many(
            &[(never_by_ip, gate.clone()), (flap_published, gate)],
            NonZeroUsize::new(2).unwrap(),
        )
        .await;

    let never = &reports[0];
    assert_eq!(never.verdict, Verdict::Unhealthy, "{never}");
    let reason = never.last_reason().unwrap_or_default();
    assert!(reason.starts_with("HTTP 503 (expected 200-399)"), "{never}");
    assert!(reason.contains("never healthy (test behaviour)"), "{never}");
    assert_eq!(never.reported_version.as_deref(), Some("3.0.0"), "{never}");

    // Every other answer is healthy: neither two successes nor three failures in a row.
    let flap = &reports[1];
    assert_eq!(flap.verdict, Verdict::DeadlineExceeded, "{flap}");
    let answered: Vec<bool> = flap
        .attempts
        .iter()
        .filter(|a| a.result.failure != Some(FailureKind::Deadline))
        .map(|a| a.result.outcome.is_up())
        .collect();
    assert!(answered.len() >= 4, "{flap}");
    assert!(answered.windows(2).all(|pair| pair[0] != pair[1]), "{flap}");
    Ok(())
}

/// Regression guard for a trap, not for a bug: through a published port, Docker's
/// userland proxy (`docker-proxy`, on by default) accepts TCP connections for the
/// container whether or not the app listens, so a TCP probe there proves nothing. HTTP
/// through the published port, and anything through the container IP, see the truth.
#[tokio::test]
async fn a_tcp_probe_through_a_published_port_cannot_see_a_deaf_app() -> anyhow::Result<()> {
    let docker = TestDocker::new().await?;
    let image = TestImage::new("4.0.0").build(&docker).await?;
    // The app listens on 9999, not on the published 8080.
    let container = docker
        .run(RunSpec::new(&image.local_tag, "deaf").env("PORT", "9999"))
        .await?;
    let prober = Prober::new()?;
    let elsewhere = ProbeTarget::tcp(&container.ip, 9999)?;
    let report = prober
        .wait_healthy(
            &elsewhere,
            &policy(Duration::ZERO, 1, 100, Duration::from_secs(30)),
        )
        .await;
    assert_eq!(
        report.verdict,
        Verdict::Healthy,
        "the app listens on 9999:\n{report}"
    );

    let [published, by_ip] = both_ways(&container, ProbeKind::Http)?;
    let [tcp_published, tcp_by_ip] = both_ways(&container, ProbeKind::Tcp)?;
    let results = prober
        .probe_many(
            &[published, by_ip, tcp_by_ip, tcp_published],
            Duration::from_secs(2),
            NonZeroUsize::new(4).unwrap(),
        )
        .await;
    let line = |r: &fleet_health::ProbeResult| {
        format!(
            "{} {:?}: {}",
            r.outcome,
            r.failure,
            r.reason.as_deref().unwrap_or("")
        )
    };
    // Through the container IP, nothing listens on 8080: refused, by HTTP and by TCP.
    insta::assert_snapshot!(format!("{}\n{}", line(&results[1]), line(&results[2])), @r"
    unhealthy Some(ConnectionRefused): connection refused
    unhealthy Some(ConnectionRefused): connection refused
    ");
    // Through the published port, HTTP fails however the daemon forwards: the userland
    // proxy accepts and then resets the connection; iptables forwarding refuses it.
    let http_published = &results[0];
    assert!(
        matches!(
            http_published.failure,
            Some(FailureKind::Request | FailureKind::ConnectionRefused)
        ),
        "{}",
        line(http_published)
    );
    // TCP through the published port: with the userland proxy the connect succeeds;
    // without it (`"userland-proxy": false`) it is refused. Either way it says nothing
    // about the app.
    let tcp_published = &results[3];
    assert!(
        tcp_published.outcome == Health::Healthy
            || tcp_published.failure == Some(FailureKind::ConnectionRefused),
        "{}",
        line(tcp_published)
    );
    Ok(())
}
