//! [`Health`]: fleet's verdict on an instance, as `status` finds it and the store keeps it.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// fleet's verdict on an instance's health.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Health {
    /// Its health check passes.
    Healthy,
    /// Up, but the app says something is wrong.
    Degraded,
    /// Its health check fails.
    Unhealthy,
    /// Docker's own `HEALTHCHECK` has not decided yet (its start period).
    Starting,
    /// Its container exists but does not run.
    Stopped,
    /// It has no container.
    Missing,
    /// It runs, and nothing checks its health.
    Unknown,
}

impl Health {
    /// Every verdict.
    pub const ALL: [Health; 7] = [
        Health::Healthy,
        Health::Degraded,
        Health::Unhealthy,
        Health::Starting,
        Health::Stopped,
        Health::Missing,
        Health::Unknown,
    ];

    /// The verdict of Docker's own `HEALTHCHECK` (`healthy`, `unhealthy`, `starting`;
    /// anything else says nothing).
    pub fn from_docker(status: &str) -> Health {
        match status {
            "healthy" => Health::Healthy,
            "unhealthy" => Health::Unhealthy,
            "starting" => Health::Starting,
            _ => Health::Unknown,
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            Health::Healthy => "healthy",
            Health::Degraded => "degraded",
            Health::Unhealthy => "unhealthy",
            Health::Starting => "starting",
            Health::Stopped => "stopped",
            Health::Missing => "missing",
            Health::Unknown => "unknown",
        }
    }
}

impl From<fleet_health::Health> for Health {
    fn from(probed: fleet_health::Health) -> Health {
        match probed {
            fleet_health::Health::Healthy => Health::Healthy,
            fleet_health::Health::Degraded => Health::Degraded,
            _ => Health::Unhealthy,
        }
    }
}

impl fmt::Display for Health {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A word that is not one of [`Health`]'s.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a health verdict")]
pub struct UnknownHealth(String);

impl FromStr for Health {
    type Err = UnknownHealth;

    fn from_str(text: &str) -> Result<Health, UnknownHealth> {
        Health::ALL
            .into_iter()
            .find(|health| health.as_str() == text)
            .ok_or_else(|| UnknownHealth(text.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verdicts_read_back_as_written() {
        for health in Health::ALL {
            assert_eq!(health.to_string().parse::<Health>(), Ok(health));
            assert_eq!(
                serde_json::to_string(&health).unwrap(),
                format!("\"{health}\"")
            );
        }
        assert!("fine".parse::<Health>().is_err());
        assert_eq!(Health::from_docker("none"), Health::Unknown);
        assert_eq!(Health::from_docker("starting"), Health::Starting);
    }
}
