//! Is this instance healthy? HTTP and TCP probes with the policies operators know.
//!
//! `fleet-health` probes any URL or socket address, understands JSON health bodies
//! (`{"status": "ok"}` and `application/health+json`), applies a probe policy (start
//! period, interval, timeout, thresholds, deadline) and probes many targets at once.
//! It knows nothing of the Docker Engine, SQLite or the terminal.
//!
//! # Map
//!
//! - [`ProbeTarget`]: what to probe, parsed from `http://…`, `https://…` or
//!   `tcp://host:port` ([`HttpTarget`] adds the expected [`StatusRange`], [`Headers`],
//!   a body cap and, for HTTPS, whether the certificate is verified:
//!   [`HttpTarget::with_tls_verify`], on unless turned off).
//! - [`Prober`]: makes probes ([`Prober::probe`]) and returns a [`ProbeResult`]:
//!   [`Health`] (healthy, degraded, unhealthy), latency, reason, [`FailureKind`], HTTP
//!   status, the version and [`Check`]s the app reported ([`HealthBody`] reads bodies).
//!   [`Prober::builder`] gives a [`ProberBuilder`]: the redirect limit, and root
//!   certificates to trust besides the system's
//!   ([`ProberBuilder::root_certificates_pem`]), for apps with a private CA.
//! - [`ProbePolicy`]: Docker-style start period, interval, timeout and thresholds, plus
//!   a deadline; [`PolicyState`] is its pure state machine, ending in a [`Verdict`].
//! - [`Prober::wait_healthy`]: probes until the policy decides; returns a
//!   [`HealthReport`] of every [`Attempt`]. [`wait_with_probe`] applies a policy to a
//!   probe of the caller's.
//! - [`Prober::probe_many`] and [`Prober::wait_many`]: many targets, a bounded number at
//!   a time, results in input order.
//! - [`HealthSpec`]: a health check as configuration states it (kind, path, container
//!   port, `tls_verify`, policy), turned into a target once the address is known.
//! - [`human_duration`]: the serde adapter for durations as humantime text (`"30s"`),
//!   for configuration files that hold a policy and durations of their own.
//!
//! # HTTPS
//!
//! Certificates are verified by default, against the system's roots and those given to
//! [`ProberBuilder::root_certificates_pem`]; a refused certificate makes the probe
//! unhealthy with [`FailureKind::Certificate`]. An app probed at an address its
//! certificate cannot name (a container's IP address, with a certificate for its
//! public host name or a self-signed one) needs the explicit opt-out, `tls_verify =
//! false` on its [`HealthSpec`] or [`HttpTarget::with_tls_verify`]`(false)`: the probe
//! still speaks TLS and judges the answer, without knowing who answered.
//!
//! # Example
//!
//! ```no_run
//! use std::time::Duration;
//! use fleet_health::{ProbePolicy, ProbeTarget, Prober, Verdict};
//!
//! # async fn run() -> Result<(), fleet_health::Error> {
//! let target: ProbeTarget = "http://127.0.0.1:8080/healthz".parse()?;
//! let policy = ProbePolicy {
//!     start_period: Duration::from_secs(10),
//!     interval: Duration::from_secs(2),
//!     timeout: Duration::from_secs(1),
//!     ..ProbePolicy::default()
//! };
//! let report = Prober::new()?.wait_healthy(&target, &policy).await;
//! if report.verdict != Verdict::Healthy {
//!     eprintln!("{report}");
//! }
//! # Ok(())
//! # }
//! ```

mod body;
mod builder;
mod durations;
mod error;
mod many;
mod policy;
mod probe;
mod report;
mod spec;
mod target;
mod wait;

pub use body::{BodyFormat, Check, HealthBody};
pub use builder::ProberBuilder;
pub use durations::human as human_duration;
pub use error::Error;
pub use many::DEFAULT_CONCURRENCY;
pub use policy::{PolicyState, ProbePolicy, Verdict};
pub use probe::{DEFAULT_REDIRECT_LIMIT, FailureKind, Health, ProbeResult, Prober, probe};
pub use report::{Attempt, HealthReport};
pub use spec::{HealthSpec, ProbeKind};
pub use target::{
    DEFAULT_MAX_BODY_BYTES, Headers, HttpTarget, ProbeTarget, StatusRange, TcpTarget,
};
pub use wait::{wait_healthy, wait_with_probe};
