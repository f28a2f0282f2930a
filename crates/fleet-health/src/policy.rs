//! When a target counts as healthy or unhealthy: the probe policy and its state machine.
//!
//! The semantics are Docker's `HEALTHCHECK` with Kubernetes' success threshold and an
//! overall deadline:
//!
//! - Probes run every `interval` (every `start_interval` during the start period), each
//!   cut at `timeout`. The first probe runs at once.
//! - A probe that finds the target up (healthy or degraded) adds to the success streak
//!   and ends the failure streak; `success_threshold` successes in a row make the verdict
//!   healthy.
//! - A failed probe ends the success streak. It adds to the failure streak unless it
//!   *started* during the start period (as Docker decides with the probe's start time);
//!   `failure_threshold` counted failures in a row make the verdict unhealthy.
//! - A probe that starts at or after the `deadline` is not looked at: the verdict is
//!   "deadline exceeded". A wait never runs past its deadline.
//! - The first final verdict stands; later observations do not change it.
//!
//! [`PolicyState`] is that state machine, pure: it is told each outcome and when its
//! probe started (time since the wait began) and never reads a clock.

use std::num::NonZeroU32;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::Health;
use crate::durations::human;

/// How to decide that a target is healthy: Docker's `HEALTHCHECK` options plus a
/// success threshold and an overall deadline.
///
/// The defaults are Docker's (`interval` 30s, `timeout` 30s, `start_period` 0s,
/// `start_interval` 5s, `retries` 3 as `failure_threshold`), a success threshold of 1
/// as in Kubernetes, and a deadline of 5 minutes (Docker has none).
///
/// In configuration, durations are written as people write them:
///
/// ```
/// let policy: fleet_health::ProbePolicy = serde_json::from_str(
///     r#"{"start_period": "20s", "interval": "2s", "timeout": "1s", "failure_threshold": 5}"#,
/// )?;
/// assert_eq!(policy.success_threshold.get(), 1);
/// # Ok::<(), serde_json::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ProbePolicy {
    /// Failures of probes that start this soon after the wait began do not count
    /// (the app is still starting). A success during it counts as usual.
    #[serde(with = "human")]
    pub start_period: Duration,
    /// Time between the starts of two probes during the start period.
    #[serde(with = "human")]
    pub start_interval: Duration,
    /// Time between the starts of two probes after the start period. A probe that takes
    /// longer than this is followed at once by the next one.
    #[serde(with = "human")]
    pub interval: Duration,
    /// How long one probe may take, all included (connect, request, body).
    #[serde(with = "human")]
    pub timeout: Duration,
    /// Successes in a row that make the verdict healthy.
    pub success_threshold: NonZeroU32,
    /// Counted failures in a row that make the verdict unhealthy (Docker's `retries`).
    pub failure_threshold: NonZeroU32,
    /// The whole wait ends by then, with "deadline exceeded" if no verdict came.
    #[serde(with = "human")]
    pub deadline: Duration,
}

impl Default for ProbePolicy {
    fn default() -> Self {
        Self {
            start_period: Duration::ZERO,
            start_interval: Duration::from_secs(5),
            interval: Duration::from_secs(30),
            timeout: Duration::from_secs(30),
            success_threshold: NonZeroU32::MIN,
            failure_threshold: NonZeroU32::new(3).unwrap_or(NonZeroU32::MIN),
            deadline: Duration::from_secs(5 * 60),
        }
    }
}

impl ProbePolicy {
    /// The time between the start of a probe that started at `at` (since the wait
    /// began) and the start of the next one.
    pub fn interval_after(&self, at: Duration) -> Duration {
        if at < self.start_period {
            self.start_interval
        } else {
            self.interval
        }
    }

    /// Whether a failure of a probe started at `at` counts toward the failure threshold.
    pub fn counts_failure_at(&self, at: Duration) -> bool {
        at >= self.start_period
    }
}

/// Where a wait stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Verdict {
    /// Not decided yet: keep probing.
    Pending,
    /// The success threshold was reached.
    Healthy,
    /// The failure threshold was reached.
    Unhealthy,
    /// The deadline passed before either threshold was reached.
    DeadlineExceeded,
}

impl Verdict {
    /// Whether the wait is over.
    pub fn is_final(self) -> bool {
        self != Self::Pending
    }
}

impl std::fmt::Display for Verdict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Pending => "pending",
            Self::Healthy => "healthy",
            Self::Unhealthy => "unhealthy",
            Self::DeadlineExceeded => "deadline exceeded",
        })
    }
}

/// The policy's state machine: feed it each probe's outcome and start time, read the
/// verdict. Pure (no clock, no I/O), so it can be driven by a real wait, a simulation
/// or a property test.
///
/// ```
/// use std::time::Duration;
/// use fleet_health::{Health, PolicyState, ProbePolicy, Verdict};
///
/// let policy = ProbePolicy { start_period: Duration::from_secs(10), ..ProbePolicy::default() };
/// let mut state = PolicyState::new(&policy);
/// let s = Duration::from_secs;
/// // Failures while the app starts do not count...
/// for at in [0, 5, 9] {
///     assert_eq!(state.observe(Health::Unhealthy, s(at)), Verdict::Pending);
/// }
/// // ...after the start period, three in a row (the default threshold) do.
/// state.observe(Health::Unhealthy, s(10));
/// state.observe(Health::Unhealthy, s(40));
/// assert_eq!(state.observe(Health::Unhealthy, s(70)), Verdict::Unhealthy);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyState {
    start_period: Duration,
    success_threshold: u32,
    failure_threshold: u32,
    deadline: Duration,
    successes: u32,
    failures: u32,
    verdict: Verdict,
}

impl PolicyState {
    /// A wait that has just begun.
    pub fn new(policy: &ProbePolicy) -> Self {
        Self {
            start_period: policy.start_period,
            success_threshold: policy.success_threshold.get(),
            failure_threshold: policy.failure_threshold.get(),
            deadline: policy.deadline,
            successes: 0,
            failures: 0,
            verdict: Verdict::Pending,
        }
    }

    /// Takes in the outcome of a probe that started at `at` (time since the wait began;
    /// observations come in the order the probes started) and returns the verdict.
    pub fn observe(&mut self, outcome: Health, at: Duration) -> Verdict {
        if self.verdict.is_final() {
            return self.verdict;
        }
        if at >= self.deadline {
            self.verdict = Verdict::DeadlineExceeded;
            return self.verdict;
        }
        if outcome.is_up() {
            self.successes = self.successes.saturating_add(1);
            self.failures = 0;
            if self.successes >= self.success_threshold {
                self.verdict = Verdict::Healthy;
            }
        } else {
            self.successes = 0;
            if at >= self.start_period {
                self.failures = self.failures.saturating_add(1);
                if self.failures >= self.failure_threshold {
                    self.verdict = Verdict::Unhealthy;
                }
            }
        }
        self.verdict
    }

    /// Tells the state machine that it is now `now` (time since the wait began) with no
    /// probe to observe: past the deadline, a pending wait is over.
    pub fn expire(&mut self, now: Duration) -> Verdict {
        if !self.verdict.is_final() && now >= self.deadline {
            self.verdict = Verdict::DeadlineExceeded;
        }
        self.verdict
    }

    /// The verdict so far.
    pub fn verdict(&self) -> Verdict {
        self.verdict
    }

    /// Successes in a row so far.
    pub fn success_streak(&self) -> u32 {
        self.successes
    }

    /// Counted failures in a row so far.
    pub fn failure_streak(&self) -> u32 {
        self.failures
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn policy(start_period: u64, success: u32, failure: u32, deadline: u64) -> ProbePolicy {
        ProbePolicy {
            start_period: Duration::from_secs(start_period),
            success_threshold: NonZeroU32::new(success).unwrap(),
            failure_threshold: NonZeroU32::new(failure).unwrap(),
            deadline: Duration::from_secs(deadline),
            ..ProbePolicy::default()
        }
    }

    /// Feeds `events` ("+5" a success at 5 s, "~5" degraded, "-5" a failure) to a fresh
    /// state machine and writes the verdict after each one.
    fn check(policy: &ProbePolicy, events: &str) -> String {
        let mut state = PolicyState::new(policy);
        events
            .split_whitespace()
            .map(|event| {
                let (sign, at) = event.split_at(1);
                let outcome = match sign {
                    "+" => Health::Healthy,
                    "~" => Health::Degraded,
                    _ => Health::Unhealthy,
                };
                let verdict = state.observe(outcome, Duration::from_secs(at.parse().unwrap()));
                format!("{event}:{verdict}")
            })
            .collect::<Vec<_>>()
            .join(" ")
    }

    #[test]
    fn thresholds() {
        let p = policy(0, 2, 3, 100);
        insta::assert_snapshot!(check(&p, "+0 +1"), @"+0:pending +1:healthy");
        insta::assert_snapshot!(check(&p, "+0 -1 +2 ~3"), @"+0:pending -1:pending +2:pending ~3:healthy");
        insta::assert_snapshot!(check(&p, "-0 -1 -2"), @"-0:pending -1:pending -2:unhealthy");
        insta::assert_snapshot!(check(&p, "-0 -1 +2 -3 -4 -5"), @"-0:pending -1:pending +2:pending -3:pending -4:pending -5:unhealthy");
        // Flapping never reaches either threshold.
        insta::assert_snapshot!(check(&p, "+0 -1 +2 -3 +4 -5"), @"+0:pending -1:pending +2:pending -3:pending +4:pending -5:pending");
        // The first final verdict stands.
        insta::assert_snapshot!(check(&p, "+0 +1 -2 -3 -4"), @"+0:pending +1:healthy -2:healthy -3:healthy -4:healthy");
    }

    #[test]
    fn start_period() {
        let p = policy(10, 1, 2, 100);
        insta::assert_snapshot!(check(&p, "-0 -3 -6 -9 -10 -13"), @"-0:pending -3:pending -6:pending -9:pending -10:pending -13:unhealthy");
        insta::assert_snapshot!(check(&p, "-0 -3 +6"), @"-0:pending -3:pending +6:healthy");
        // A failure in the start period does not count, but still ends a success streak.
        let p = policy(10, 2, 1, 100);
        insta::assert_snapshot!(check(&p, "+0 -1 +2 +3"), @"+0:pending -1:pending +2:pending +3:healthy");
    }

    #[test]
    fn deadline() {
        let p = policy(0, 1, 3, 10);
        insta::assert_snapshot!(check(&p, "-0 -5 +10"), @"-0:pending -5:pending +10:deadline exceeded");
        let mut state = PolicyState::new(&p);
        state.observe(Health::Unhealthy, Duration::from_secs(1));
        assert_eq!(state.expire(Duration::from_secs(9)), Verdict::Pending);
        assert_eq!(
            state.expire(Duration::from_secs(10)),
            Verdict::DeadlineExceeded
        );
    }

    fn serde(json: &str) -> String {
        match serde_json::from_str::<ProbePolicy>(json) {
            Ok(policy) => serde_json::to_string(&policy).unwrap(),
            Err(e) => format!("error: {e}"),
        }
    }

    #[test]
    fn policies_in_configuration() {
        insta::assert_snapshot!(serde("{}"), @r#"{"start_period":"0s","start_interval":"5s","interval":"30s","timeout":"30s","success_threshold":1,"failure_threshold":3,"deadline":"5m"}"#);
        insta::assert_snapshot!(serde(r#"{"interval":"1m 30s","timeout":"250ms","deadline":"1h"}"#), @r#"{"start_period":"0s","start_interval":"5s","interval":"1m 30s","timeout":"250ms","success_threshold":1,"failure_threshold":3,"deadline":"1h"}"#);
        insta::assert_snapshot!(serde(r#"{"interval":5}"#), @"error: invalid type: integer `5`, expected a string at line 1 column 13");
        insta::assert_snapshot!(serde(r#"{"interval":"5 parsecs"}"#), @r#"error: invalid duration "5 parsecs" (unknown time unit "parsecs", supported units: ns, us/µs, ms, sec, min, hours, days, weeks, months, years (and few variations)); write it like "5s", "1m 30s" or "250ms" at line 1 column 24"#);
        insta::assert_snapshot!(serde(r#"{"failure_threshold":0}"#), @"error: invalid value: integer `0`, expected a nonzero u32 at line 1 column 22");
        insta::assert_snapshot!(serde(r#"{"retries":3}"#), @"error: unknown field `retries`, expected one of `start_period`, `start_interval`, `interval`, `timeout`, `success_threshold`, `failure_threshold`, `deadline` at line 1 column 10");
    }

    /// The specification, written independently of the state machine: recompute the
    /// verdict from scratch after each observation.
    fn reference(policy: &ProbePolicy, events: &[(Health, Duration)]) -> Verdict {
        for end in 1..=events.len() {
            let seen = &events[..end];
            let (outcome, at) = seen[end - 1];
            if at >= policy.deadline {
                return Verdict::DeadlineExceeded;
            }
            let successes_in_a_row = seen.iter().rev().take_while(|(o, _)| o.is_up()).count();
            if outcome.is_up() && successes_in_a_row >= policy.success_threshold.get() as usize {
                return Verdict::Healthy;
            }
            let since_last_success = seen.iter().rev().take_while(|(o, _)| !o.is_up());
            let counted = since_last_success
                .filter(|(_, at)| *at >= policy.start_period)
                .count();
            if !outcome.is_up() && counted >= policy.failure_threshold.get() as usize {
                return Verdict::Unhealthy;
            }
        }
        Verdict::Pending
    }

    fn arb_policy() -> impl Strategy<Value = ProbePolicy> {
        (0u64..20, 1u32..5, 1u32..5, 1u64..80)
            .prop_map(|(start, s, f, deadline)| policy(start, s, f, deadline))
    }

    fn arb_events() -> impl Strategy<Value = Vec<(Health, Duration)>> {
        let outcome = prop_oneof![
            Just(Health::Healthy),
            Just(Health::Degraded),
            Just(Health::Unhealthy)
        ];
        prop::collection::vec((outcome, 0u64..6), 0..40).prop_map(|steps| {
            let mut at = 0;
            steps
                .into_iter()
                .map(|(outcome, gap)| {
                    at += gap;
                    (outcome, Duration::from_secs(at))
                })
                .collect()
        })
    }

    proptest! {
        #[test]
        fn matches_the_reference(policy in arb_policy(), events in arb_events()) {
            let mut state = PolicyState::new(&policy);
            let mut verdict = Verdict::Pending;
            for &(outcome, at) in &events {
                verdict = state.observe(outcome, at);
            }
            prop_assert_eq!(verdict, reference(&policy, &events));
        }

        #[test]
        fn a_final_verdict_stands(policy in arb_policy(), events in arb_events()) {
            let mut state = PolicyState::new(&policy);
            let mut first_final = None;
            for &(outcome, at) in &events {
                let verdict = state.observe(outcome, at);
                match first_final {
                    None if verdict.is_final() => first_final = Some(verdict),
                    Some(first) => prop_assert_eq!(verdict, first),
                    None => {}
                }
            }
        }

        #[test]
        fn failures_in_the_start_period_never_make_it_unhealthy(
            policy in arb_policy(),
            events in arb_events(),
        ) {
            let mut state = PolicyState::new(&policy);
            for &(outcome, at) in events.iter().filter(|(_, at)| *at < policy.start_period) {
                prop_assert_ne!(state.observe(outcome, at), Verdict::Unhealthy);
            }
        }

        #[test]
        fn healthy_takes_the_success_threshold_in_a_row(policy in arb_policy(), events in arb_events()) {
            let mut state = PolicyState::new(&policy);
            for (i, &(outcome, at)) in events.iter().enumerate() {
                if state.observe(outcome, at) == Verdict::Healthy {
                    let threshold = policy.success_threshold.get() as usize;
                    prop_assert!(i + 1 >= threshold);
                    prop_assert!(events[i + 1 - threshold..=i].iter().all(|(o, _)| o.is_up()));
                    break;
                }
            }
        }
    }
}
