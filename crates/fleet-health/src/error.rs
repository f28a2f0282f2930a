//! The one error type of this crate.
//!
//! A probe that finds its target unhealthy is not an error: it is a [`ProbeResult`]
//! with an [`Health::Unhealthy`] outcome and a reason. Errors are for what cannot be
//! probed at all: a target, status range or header that does not make sense, or an
//! HTTP client that cannot be built.
//!
//! [`ProbeResult`]: crate::ProbeResult
//! [`Health::Unhealthy`]: crate::Health::Unhealthy

/// Everything that can go wrong while configuring or preparing probes.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A probe target could not be understood.
    #[error("invalid probe target {target:?}: {reason}")]
    InvalidTarget {
        /// What the caller gave.
        target: String,
        /// Why it was refused.
        reason: String,
    },
    /// An expected HTTP status range could not be understood.
    #[error("invalid HTTP status range {range:?}: {reason}")]
    InvalidStatusRange {
        /// What the caller gave.
        range: String,
        /// Why it was refused.
        reason: &'static str,
    },
    /// A request header name or value is not valid HTTP.
    #[error("invalid request header {name:?}")]
    InvalidHeader {
        /// The header name the caller gave.
        name: String,
        /// What HTTP said about it.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// Root certificates to trust could not be read from PEM.
    #[error("invalid PEM root certificates: {reason}")]
    InvalidRootCertificates {
        /// What is wrong with them.
        reason: &'static str,
        /// What the PEM reader said, when it said something.
        #[source]
        source: Option<rustls::pki_types::pem::Error>,
    },
    /// The HTTP client could not be built (for example, TLS could not be initialised).
    #[error("cannot build the HTTP client for probes")]
    Client(#[source] reqwest::Error),
}
