//! Waiting for a target to become healthy, as its policy says.

use std::future::Future;
use std::time::Duration;

use tokio::time::Instant;

use crate::report::short;
use crate::{
    Attempt, Error, FailureKind, HealthReport, PolicyState, ProbePolicy, ProbeResult, ProbeTarget,
    Prober, Verdict,
};

impl Prober {
    /// Probes `target` as `policy` says until it is healthy, unhealthy or out of time,
    /// and reports every attempt. Never runs past the policy's deadline.
    pub async fn wait_healthy(&self, target: &ProbeTarget, policy: &ProbePolicy) -> HealthReport {
        self.wait_healthy_with(target, policy, |_| {}).await
    }

    /// [`Prober::wait_healthy`], calling `on_attempt` after each probe (to show
    /// progress).
    pub async fn wait_healthy_with(
        &self,
        target: &ProbeTarget,
        policy: &ProbePolicy,
        on_attempt: impl FnMut(&Attempt),
    ) -> HealthReport {
        let probe = |timeout| self.probe(target, timeout);
        wait_with_probe(&target.to_string(), policy, probe, on_attempt).await
    }
}

/// Probes `target` as `policy` says until it is healthy, unhealthy or out of time.
///
/// Builds a [`Prober`] for this one wait; make one and call [`Prober::wait_healthy`] to
/// wait for several targets.
pub async fn wait_healthy(
    target: &ProbeTarget,
    policy: &ProbePolicy,
) -> Result<HealthReport, Error> {
    Ok(Prober::new()?.wait_healthy(target, policy).await)
}

/// Applies `policy` to any probe: `probe(timeout)` runs one probe that takes at most
/// `timeout` (the policy's). `name` names what is probed in the report.
///
/// This is how a caller gates on a probe this crate does not make (a command run in a
/// container, say) with the same policy, schedule and report. It uses tokio's clock,
/// so a test can run it on a paused clock.
pub async fn wait_with_probe<F, Fut>(
    name: &str,
    policy: &ProbePolicy,
    mut probe: F,
    mut on_attempt: impl FnMut(&Attempt),
) -> HealthReport
where
    F: FnMut(Duration) -> Fut,
    Fut: Future<Output = ProbeResult>,
{
    let began = Instant::now();
    let mut state = PolicyState::new(policy);
    let mut attempts = Vec::<Attempt>::new();
    let mut time_to_healthy = None;
    let mut next = Duration::ZERO;
    loop {
        // Sleep until the next probe is due, but not past the deadline.
        tokio::time::sleep_until(began + next.min(policy.deadline)).await;
        let at = began.elapsed();
        if state.expire(at).is_final() {
            break;
        }
        let number = u32::try_from(attempts.len() + 1).unwrap_or(u32::MAX);
        let left = policy.deadline.saturating_sub(at);
        let Ok(result) = tokio::time::timeout(left, probe(policy.timeout)).await else {
            let reason = format!("cut short by the deadline ({})", short(policy.deadline));
            let result = ProbeResult::failed(FailureKind::Deadline, reason, began.elapsed() - at);
            let attempt = Attempt {
                number,
                at,
                counted: false,
                result,
            };
            on_attempt(&attempt);
            attempts.push(attempt);
            state.expire(began.elapsed().max(policy.deadline));
            break;
        };
        let counted = result.outcome.is_up() || policy.counts_failure_at(at);
        let verdict = state.observe(result.outcome, at);
        let attempt = Attempt {
            number,
            at,
            counted,
            result,
        };
        on_attempt(&attempt);
        attempts.push(attempt);
        if verdict == Verdict::Healthy {
            time_to_healthy = Some(began.elapsed());
        }
        if verdict.is_final() {
            break;
        }
        next = at + policy.interval_after(at);
    }
    HealthReport {
        target: name.to_owned(),
        verdict: state.verdict(),
        reported_version: attempts.iter().rev().find_map(|a| a.result.version.clone()),
        time_to_healthy,
        elapsed: began.elapsed(),
        attempts,
    }
}

#[cfg(test)]
mod tests {
    use std::num::NonZeroU32;

    use super::*;
    use crate::Health;

    fn secs(s: f64) -> Duration {
        Duration::from_secs_f64(s)
    }

    /// Runs a wait on tokio's paused clock against a scripted app: `app(t)` says what a
    /// probe started `t` seconds into the wait finds, and how many seconds it takes.
    async fn check(policy: &ProbePolicy, app: impl Fn(f64) -> (Health, f64)) -> String {
        let began = Instant::now();
        let probe = |_timeout| {
            let (outcome, latency) = app(began.elapsed().as_secs_f64());
            async move {
                tokio::time::sleep(secs(latency)).await;
                let mut result = match outcome {
                    Health::Unhealthy => {
                        ProbeResult::failed(FailureKind::Status, "HTTP 503", secs(latency))
                    }
                    outcome => {
                        let mut result =
                            ProbeResult::failed(FailureKind::Status, "", secs(latency));
                        result.outcome = outcome;
                        result.failure = None;
                        result.reason = None;
                        result
                    }
                };
                result.http_status = Some(if outcome.is_up() { 200 } else { 503 });
                result
            }
        };
        let mut seen = 0;
        let report = wait_with_probe("app", policy, probe, |_| seen += 1).await;
        assert_eq!(seen, report.attempts.len());
        report.to_string()
    }

    fn policy(
        start_period: f64,
        start_interval: f64,
        interval: f64,
        success: u32,
        failure: u32,
        deadline: f64,
    ) -> ProbePolicy {
        ProbePolicy {
            start_period: secs(start_period),
            start_interval: secs(start_interval),
            interval: secs(interval),
            timeout: secs(1.0),
            success_threshold: NonZeroU32::new(success).unwrap(),
            failure_threshold: NonZeroU32::new(failure).unwrap(),
            deadline: secs(deadline),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn slow_start_within_the_start_period() {
        // Up from 11 s on. Start period 10 s probed every 2 s, then every 5 s.
        let p = policy(10.0, 2.0, 5.0, 2, 2, 60.0);
        let app = |t: f64| {
            (
                if t >= 11.0 {
                    Health::Healthy
                } else {
                    Health::Unhealthy
                },
                0.1,
            )
        };
        insta::assert_snapshot!(check(&p, app).await, @r#"
            app: healthy after 8 attempts in 20.1s
              #1   +0s       unhealthy   100ms  HTTP 503 (not counted)
              #2   +2s       unhealthy   100ms  HTTP 503 (not counted)
              #3   +4s       unhealthy   100ms  HTTP 503 (not counted)
              #4   +6s       unhealthy   100ms  HTTP 503 (not counted)
              #5   +8s       unhealthy   100ms  HTTP 503 (not counted)
              #6   +10s      unhealthy   100ms  HTTP 503
              #7   +15s      healthy     100ms  HTTP 200
              #8   +20s      healthy     100ms  HTTP 200
        "#);
    }

    #[tokio::test(start_paused = true)]
    async fn slow_start_without_a_start_period_fails() {
        let p = policy(0.0, 2.0, 5.0, 2, 2, 60.0);
        let app = |t: f64| {
            (
                if t >= 11.0 {
                    Health::Healthy
                } else {
                    Health::Unhealthy
                },
                0.1,
            )
        };
        insta::assert_snapshot!(check(&p, app).await, @r#"
            app: unhealthy after 2 attempts in 5.1s
              #1   +0s       unhealthy   100ms  HTTP 503
              #2   +5s       unhealthy   100ms  HTTP 503
        "#);
    }

    #[tokio::test(start_paused = true)]
    async fn flapping_runs_into_the_deadline() {
        let p = policy(0.0, 1.0, 1.0, 2, 2, 5.0);
        let app = |t: f64| {
            (
                if (t as u64).is_multiple_of(2) {
                    Health::Healthy
                } else {
                    Health::Unhealthy
                },
                0.01,
            )
        };
        insta::assert_snapshot!(check(&p, app).await, @r#"
            app: deadline exceeded after 5 attempts in 5s
              #1   +0s       healthy      10ms  HTTP 200
              #2   +1s       unhealthy    10ms  HTTP 503
              #3   +2s       healthy      10ms  HTTP 200
              #4   +3s       unhealthy    10ms  HTTP 503
              #5   +4s       healthy      10ms  HTTP 200
        "#);
    }

    #[tokio::test(start_paused = true)]
    async fn degraded_counts_as_up_and_is_reported() {
        let p = policy(0.0, 1.0, 1.0, 2, 2, 5.0);
        let app = |t: f64| {
            (
                if t < 1.0 {
                    Health::Healthy
                } else {
                    Health::Degraded
                },
                0.01,
            )
        };
        insta::assert_snapshot!(check(&p, app).await, @r#"
            app: degraded after 2 attempts in 1.01s
              #1   +0s       healthy      10ms  HTTP 200
              #2   +1s       degraded     10ms  HTTP 200
        "#);
    }

    #[tokio::test(start_paused = true)]
    async fn a_probe_slower_than_the_interval_is_followed_at_once() {
        let p = policy(0.0, 1.0, 2.0, 1, 3, 60.0);
        let app = |_t: f64| (Health::Unhealthy, 3.0);
        insta::assert_snapshot!(check(&p, app).await, @r#"
            app: unhealthy after 3 attempts in 9s
              #1   +0s       unhealthy      3s  HTTP 503
              #2   +3s       unhealthy      3s  HTTP 503
              #3   +6s       unhealthy      3s  HTTP 503
        "#);
    }

    #[tokio::test(start_paused = true)]
    async fn the_deadline_cuts_a_probe_short() {
        let p = policy(0.0, 1.0, 4.0, 1, 3, 6.0);
        let app = |_t: f64| (Health::Unhealthy, 5.0);
        insta::assert_snapshot!(check(&p, app).await, @r#"
            app: deadline exceeded after 2 attempts in 6s
              #1   +0s       unhealthy      5s  HTTP 503
              #2   +5s       unhealthy      1s  cut short by the deadline (6s) (not counted)
        "#);
    }

    #[tokio::test(start_paused = true)]
    async fn the_deadline_ends_the_wait_between_probes() {
        let p = policy(0.0, 1.0, 30.0, 1, 5, 40.0);
        let app = |_t: f64| (Health::Unhealthy, 0.5);
        insta::assert_snapshot!(check(&p, app).await, @r#"
            app: deadline exceeded after 2 attempts in 40s
              #1   +0s       unhealthy   500ms  HTTP 503
              #2   +30s      unhealthy   500ms  HTTP 503
        "#);
    }

    #[tokio::test(start_paused = true)]
    async fn reports_serialise_for_programs() {
        let p = policy(1.0, 1.0, 1.0, 1, 1, 10.0);
        let began = Instant::now();
        let probe = |_timeout| {
            let t = began.elapsed();
            async move {
                tokio::time::sleep(Duration::from_micros(1500)).await;
                if t < Duration::from_secs(1) {
                    ProbeResult::failed(
                        FailureKind::ConnectionRefused,
                        "connection refused",
                        Duration::from_micros(1500),
                    )
                } else {
                    let mut result =
                        ProbeResult::failed(FailureKind::Status, "", Duration::from_micros(1500));
                    result.outcome = Health::Healthy;
                    result.failure = None;
                    result.reason = None;
                    result.http_status = Some(200);
                    result.version = Some("1.4.2".to_owned());
                    result
                }
            }
        };
        let report = wait_with_probe("http://app/healthz", &p, probe, |_| {}).await;
        let json = serde_json::to_string_pretty(&report).unwrap();
        insta::assert_snapshot!(json, @r#"
            {
              "target": "http://app/healthz",
              "verdict": "healthy",
              "reported_version": "1.4.2",
              "time_to_healthy_ms": 1002.0,
              "elapsed_ms": 1002.0,
              "attempts": [
                {
                  "number": 1,
                  "at_ms": 0.0,
                  "counted": false,
                  "outcome": "unhealthy",
                  "failure": "connection_refused",
                  "reason": "connection refused",
                  "latency_ms": 1.5,
                  "body_bytes": 0,
                  "body_truncated": false
                },
                {
                  "number": 2,
                  "at_ms": 1000.0,
                  "counted": true,
                  "outcome": "healthy",
                  "latency_ms": 1.5,
                  "http_status": 200,
                  "version": "1.4.2",
                  "body_bytes": 0,
                  "body_truncated": false
                }
              ]
            }
        "#);
        let again: HealthReport = serde_json::from_str(&json).unwrap();
        assert_eq!(again, report);
    }
}
