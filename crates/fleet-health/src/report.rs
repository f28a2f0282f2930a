//! Reports people and programs read: serde for `--json`, `Display` for a terminal.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::durations::millis;
use crate::{Health, ProbeResult, Verdict};

/// One probe of a wait.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Attempt {
    /// 1 for the first probe of the wait.
    pub number: u32,
    /// When the probe started, since the wait began.
    #[serde(rename = "at_ms", with = "millis")]
    pub at: Duration,
    /// Whether it counted toward a threshold: a failure during the start period does
    /// not, nor does a probe cut short by the deadline.
    pub counted: bool,
    /// What the probe found.
    #[serde(flatten)]
    pub result: ProbeResult,
}

/// How a wait for a target to become healthy went.
///
/// Serialises for programs (durations in milliseconds, as `*_ms` numbers); `Display`
/// writes a summary line and one line per attempt for people.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct HealthReport {
    /// What was probed (the target's URL).
    pub target: String,
    /// How the wait ended.
    pub verdict: Verdict,
    /// The version the app reported last, if it ever did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reported_version: Option<String>,
    /// From the start of the wait to the end of the probe that made it healthy.
    #[serde(
        rename = "time_to_healthy_ms",
        with = "millis::option",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub time_to_healthy: Option<Duration>,
    /// How long the whole wait took.
    #[serde(rename = "elapsed_ms", with = "millis")]
    pub elapsed: Duration,
    /// Every probe, in order.
    pub attempts: Vec<Attempt>,
}

impl HealthReport {
    /// The health the wait ended with: healthy, or degraded when the probe that made
    /// it healthy found the app degraded; unhealthy for any other verdict.
    pub fn health(&self) -> Health {
        match self.verdict {
            Verdict::Healthy => self
                .attempts
                .last()
                .map_or(Health::Healthy, |attempt| attempt.result.outcome),
            _ => Health::Unhealthy,
        }
    }

    /// The last attempt's reason, if it has one: why a wait failed.
    pub fn last_reason(&self) -> Option<&str> {
        self.attempts.last()?.result.reason.as_deref()
    }
}

impl fmt::Display for HealthReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let attempts = match self.attempts.len() {
            1 => "1 attempt".to_owned(),
            n => format!("{n} attempts"),
        };
        let verdict = match self.health() {
            Health::Degraded => "degraded".to_owned(),
            _ => self.verdict.to_string(),
        };
        write!(
            f,
            "{}: {verdict} after {attempts} in {}",
            self.target,
            short(self.elapsed)
        )?;
        if let Some(version) = &self.reported_version {
            write!(f, " (version {version})")?;
        }
        for attempt in &self.attempts {
            let result = &attempt.result;
            let detail = match (&result.reason, result.http_status) {
                (Some(reason), _) => reason.clone(),
                (None, Some(status)) => format!("HTTP {status}"),
                (None, None) => "connected".to_owned(),
            };
            let note = if attempt.counted {
                ""
            } else {
                " (not counted)"
            };
            write!(
                f,
                "\n  #{:<3} +{:<8} {:<9} {:>7}  {detail}{note}",
                attempt.number,
                short(attempt.at),
                result.outcome.to_string(),
                short(result.latency),
            )?;
        }
        Ok(())
    }
}

/// A duration for people, short and only as precise as it is useful: `850µs`, `3.2ms`,
/// `312ms`, `1.5s`, `2m 5s`.
pub(crate) fn short(duration: Duration) -> String {
    let micros = duration.as_micros();
    if micros == 0 {
        "0s".to_owned()
    } else if micros < 1_000 {
        format!("{micros}µs")
    } else if micros < 10_000 {
        trim(format!("{:.1}", micros as f64 / 1_000.0)) + "ms"
    } else if micros < 1_000_000 {
        format!("{}ms", (micros + 500) / 1_000)
    } else if micros < 60_000_000 {
        trim(format!("{:.2}", micros as f64 / 1_000_000.0)) + "s"
    } else {
        let secs = duration.as_secs();
        format!("{}m {}s", secs / 60, secs % 60)
    }
}

fn trim(number: String) -> String {
    if number.contains('.') {
        number
            .trim_end_matches('0')
            .trim_end_matches('.')
            .to_owned()
    } else {
        number
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_durations() {
        let check = |micros: u64| short(Duration::from_micros(micros));
        insta::assert_snapshot!(check(0), @"0s");
        insta::assert_snapshot!(check(850), @"850µs");
        insta::assert_snapshot!(check(3_200), @"3.2ms");
        insta::assert_snapshot!(check(3_000), @"3ms");
        insta::assert_snapshot!(check(311_600), @"312ms");
        insta::assert_snapshot!(check(1_000_000), @"1s");
        insta::assert_snapshot!(check(1_500_000), @"1.5s");
        insta::assert_snapshot!(check(12_345_678), @"12.35s");
        insta::assert_snapshot!(check(125_000_000), @"2m 5s");
    }
}
