//! A health check as an instance's configuration states it: what to probe inside the
//! app, and the policy, before anyone knows the address it will be reachable at.

use std::num::NonZeroU32;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::durations::human;
use crate::target::{DEFAULT_MAX_BODY_BYTES, Headers, HttpTarget, StatusRange};
use crate::{Error, ProbePolicy, ProbeTarget};

/// How an app's health is checked: the probe (kind, path, container port, expected
/// statuses, headers) and the [`ProbePolicy`], all in one flat table.
///
/// ```
/// use fleet_health::HealthSpec;
///
/// let spec: HealthSpec = toml::from_str(r#"
///     path = "/healthz"
///     port = 8080
///     start_period = "10s"
///     interval = "2s"
/// "#)?;
/// let target = spec.target("127.0.0.1", 49153)?;
/// assert_eq!(target.to_string(), "http://127.0.0.1:49153/healthz");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "FlatSpec")]
#[non_exhaustive]
pub struct HealthSpec {
    /// `http` (the default), `https` or `tcp`.
    pub kind: ProbeKind,
    /// The HTTP path (and query) to GET; `/` unless stated.
    pub path: String,
    /// The port inside the container; `None` lets the caller choose (say, the app's
    /// only published port).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    /// The HTTP statuses that count as up.
    pub expected_status: StatusRange,
    /// Extra request headers (`Host`, a token).
    #[serde(skip_serializing_if = "Headers::is_empty")]
    pub headers: Headers,
    /// How much of a response body to read at most.
    pub max_body_bytes: u64,
    /// Whether an HTTPS probe verifies the app's certificate; on unless stated.
    ///
    /// `tls_verify = false` is for an app whose certificate cannot be valid for the
    /// address it is probed at (its container's IP address, `127.0.0.1`), such as a
    /// certificate for its public host name or a self-signed one. See
    /// [`HttpTarget::with_tls_verify`] for what it costs. Written out only when off.
    #[serde(skip_serializing_if = "is_true")]
    pub tls_verify: bool,
    /// When the app counts as healthy.
    #[serde(flatten)]
    pub policy: ProbePolicy,
}

impl Default for HealthSpec {
    fn default() -> Self {
        Self {
            kind: ProbeKind::Http,
            path: "/".to_owned(),
            port: None,
            expected_status: StatusRange::default(),
            headers: Headers::default(),
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            tls_verify: true,
            policy: ProbePolicy::default(),
        }
    }
}

/// How a [`HealthSpec`] is read: every field spelled out, so that an unknown one (a
/// typo such as `intervall`) is refused. `#[serde(flatten)]` would accept it silently.
#[derive(Deserialize)]
#[serde(default, deny_unknown_fields)]
struct FlatSpec {
    kind: ProbeKind,
    path: String,
    port: Option<u16>,
    expected_status: StatusRange,
    headers: Headers,
    max_body_bytes: u64,
    tls_verify: bool,
    #[serde(with = "human")]
    start_period: Duration,
    #[serde(with = "human")]
    start_interval: Duration,
    #[serde(with = "human")]
    interval: Duration,
    #[serde(with = "human")]
    timeout: Duration,
    success_threshold: NonZeroU32,
    failure_threshold: NonZeroU32,
    #[serde(with = "human")]
    deadline: Duration,
}

impl Default for FlatSpec {
    fn default() -> Self {
        let HealthSpec {
            kind,
            path,
            port,
            expected_status,
            headers,
            max_body_bytes,
            tls_verify,
            policy,
        } = HealthSpec::default();
        let ProbePolicy {
            start_period,
            start_interval,
            interval,
            timeout,
            success_threshold,
            failure_threshold,
            deadline,
        } = policy;
        Self {
            kind,
            path,
            port,
            expected_status,
            headers,
            max_body_bytes,
            tls_verify,
            start_period,
            start_interval,
            interval,
            timeout,
            success_threshold,
            failure_threshold,
            deadline,
        }
    }
}

impl From<FlatSpec> for HealthSpec {
    fn from(flat: FlatSpec) -> Self {
        Self {
            kind: flat.kind,
            path: flat.path,
            port: flat.port,
            expected_status: flat.expected_status,
            headers: flat.headers,
            max_body_bytes: flat.max_body_bytes,
            tls_verify: flat.tls_verify,
            policy: ProbePolicy {
                start_period: flat.start_period,
                start_interval: flat.start_interval,
                interval: flat.interval,
                timeout: flat.timeout,
                success_threshold: flat.success_threshold,
                failure_threshold: flat.failure_threshold,
                deadline: flat.deadline,
            },
        }
    }
}

fn is_true(value: &bool) -> bool {
    *value
}

/// What kind of probe a [`HealthSpec`] makes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProbeKind {
    /// An HTTP GET.
    #[default]
    Http,
    /// An HTTPS GET.
    Https,
    /// A TCP connect. Through a port Docker publishes with its userland proxy (the
    /// default), the proxy accepts connections whether or not the app listens: probe
    /// the container's IP address, or use HTTP.
    Tcp,
}

impl HealthSpec {
    /// The target to probe once the app is reachable at `host:port` (a published port
    /// on the host, or the container's IP address and port).
    pub fn target(&self, host: &str, port: u16) -> Result<ProbeTarget, Error> {
        let scheme = match self.kind {
            ProbeKind::Tcp => return ProbeTarget::tcp(host, port),
            ProbeKind::Http => "http",
            ProbeKind::Https => "https",
        };
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let host = if host.contains(':') {
            format!("[{host}]")
        } else {
            host.to_owned()
        };
        let slash = if self.path.starts_with('/') { "" } else { "/" };
        let url = format!("{scheme}://{host}:{port}{slash}{}", self.path);
        let mut target = HttpTarget::new(&url)?
            .with_expected_status(self.expected_status)
            .with_max_body_bytes(self.max_body_bytes)
            .with_tls_verify(self.tls_verify);
        for (name, value) in self.headers.iter() {
            let value = String::from_utf8_lossy(value.as_bytes());
            target = target.with_header(name.as_str(), &value)?;
        }
        Ok(ProbeTarget::Http(target))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(toml: &str, host: &str) -> String {
        let spec: HealthSpec = match toml::from_str(toml) {
            Ok(spec) => spec,
            Err(e) => return format!("error: {}", e.message()),
        };
        match spec.target(host, 8080) {
            Ok(ProbeTarget::Http(http)) => format!(
                "{http} expect {} headers {:?} cap {}{}",
                http.expected_status(),
                http.headers().iter().collect::<Vec<_>>(),
                http.max_body_bytes(),
                if http.tls_verify() {
                    ""
                } else {
                    " no-tls-verify"
                }
            ),
            Ok(target) => target.to_string(),
            Err(e) => format!("error: {e}"),
        }
    }

    #[test]
    fn targets_from_specs() {
        insta::assert_snapshot!(check("", "127.0.0.1"), @"http://127.0.0.1:8080/ expect 200-399 headers [] cap 65536");
        insta::assert_snapshot!(check(r#"path = "healthz?full=1""#, "172.17.0.2"), @"http://172.17.0.2:8080/healthz?full=1 expect 200-399 headers [] cap 65536");
        insta::assert_snapshot!(check(r#"kind = "https"
expected_status = "2xx"
headers = { Host = "app.example" }
max_body_bytes = 1024"#, "::1"), @r#"https://[::1]:8080/ expect 200-299 headers [("host", "app.example")] cap 1024"#);
        insta::assert_snapshot!(check(r#"kind = "tcp""#, "fd00::2"), @"tcp://[fd00::2]:8080");
        insta::assert_snapshot!(check(r#"kind = "https"
tls_verify = false"#, "172.17.0.2"), @"https://172.17.0.2:8080/ expect 200-399 headers [] cap 65536 no-tls-verify");
        insta::assert_snapshot!(check(r#"tls_verify = "no""#, "h"), @r#"error: invalid type: string "no", expected a boolean"#);
        insta::assert_snapshot!(check(r#"kind = "grpc""#, "h"), @"error: unknown variant `grpc`, expected one of `http`, `https`, `tcp`");
        insta::assert_snapshot!(check(r#"intervall = "5s""#, "h"), @"error: unknown field `intervall`, expected one of `kind`, `path`, `port`, `expected_status`, `headers`, `max_body_bytes`, `tls_verify`, `start_period`, `start_interval`, `interval`, `timeout`, `success_threshold`, `failure_threshold`, `deadline`");
        insta::assert_snapshot!(check(r#"path = "/x y""#, "h"), @"http://h:8080/x%20y expect 200-399 headers [] cap 65536");
    }

    #[test]
    fn tls_verify_is_written_only_when_off() {
        let mut spec = HealthSpec::default();
        assert!(!toml::to_string(&spec).unwrap().contains("tls_verify"));
        spec.tls_verify = false;
        let written = toml::to_string(&spec).unwrap();
        assert!(written.contains("tls_verify = false"), "{written}");
        let again: HealthSpec = toml::from_str(&written).unwrap();
        assert_eq!(again, spec);
    }

    #[test]
    fn the_policy_is_flat_in_the_same_table() {
        let spec: HealthSpec = toml::from_str(
            r#"
            path = "/healthz"
            port = 3000
            interval = "2s"
            failure_threshold = 5
            "#,
        )
        .unwrap();
        assert_eq!(spec.port, Some(3000));
        assert_eq!(spec.policy.interval, std::time::Duration::from_secs(2));
        assert_eq!(spec.policy.failure_threshold.get(), 5);
        insta::assert_snapshot!(toml::to_string(&spec).unwrap(), @r#"
        kind = "http"
        path = "/healthz"
        port = 3000
        expected_status = "200-399"
        max_body_bytes = 65536
        start_period = "0s"
        start_interval = "5s"
        interval = "2s"
        timeout = "30s"
        success_threshold = 1
        failure_threshold = 5
        deadline = "5m"
        "#);
        let again: HealthSpec = toml::from_str(&toml::to_string(&spec).unwrap()).unwrap();
        assert_eq!(again, spec);
    }
}
