//! Is this instance healthy? HTTP and TCP probes with the policies operators know.
//!
//! `fleet-health` probes any URL or socket address, understands JSON health bodies
//! (`{"status": "ok"}` and `application/health+json`), applies a probe policy (start
//! period, interval, timeout, thresholds, deadline) and probes many targets at once.
//! It knows nothing of the Docker Engine, SQLite or the terminal.

mod body;
mod durations;
mod error;
mod policy;
mod probe;
mod report;
mod target;

pub use body::{BodyFormat, Check, HealthBody};
pub use error::Error;
pub use policy::{PolicyState, ProbePolicy, Verdict};
pub use probe::{DEFAULT_REDIRECT_LIMIT, FailureKind, Health, ProbeResult, Prober};
pub use target::{
    DEFAULT_MAX_BODY_BYTES, Headers, HttpTarget, ProbeTarget, StatusRange, TcpTarget,
};
