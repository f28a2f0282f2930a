//! fleet's health checks: the probe policy fleet uses unless a spec says otherwise, and
//! HTTP and TCP checks that use it.

use fleet_health::{HealthSpec, ProbeKind, ProbePolicy};

/// The probe policy fleet uses unless a spec says otherwise: quicker than Docker's
/// defaults (30 s between probes), because fleet gates deployments on it.
///
/// Probes every 250 ms while the app starts (failures in the first 60 s do not count),
/// every 2 s after that, each cut at 2 s; 1 success makes it healthy, 3 counted failures
/// unhealthy, and the whole wait ends after 90 s.
pub fn default_policy() -> ProbePolicy {
    ProbePolicy {
        start_period: std::time::Duration::from_secs(60),
        start_interval: std::time::Duration::from_millis(250),
        interval: std::time::Duration::from_secs(2),
        timeout: std::time::Duration::from_secs(2),
        deadline: std::time::Duration::from_secs(90),
        ..ProbePolicy::default()
    }
}

/// An HTTP health check of `path` with fleet's [`default_policy`].
pub fn http_health(path: &str) -> HealthSpec {
    let mut health = HealthSpec::default();
    health.path = path.to_owned();
    health.policy = default_policy();
    health
}

/// A TCP health check (the port accepts connections) with fleet's [`default_policy`].
pub fn tcp_health() -> HealthSpec {
    let mut health = http_health("/");
    health.kind = ProbeKind::Tcp;
    health
}
