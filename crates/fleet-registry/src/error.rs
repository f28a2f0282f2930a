//! The one error type of this crate.

use std::path::PathBuf;
use std::time::Duration;

use crate::digest::DigestError;
use crate::reference::ReferenceError;

/// Everything that can go wrong while reading references or talking to a registry.
///
/// Registry errors name the reference they were about (`reference`, the normalised
/// text such as `ghcr.io/owner/app:v1`) and, where there is one, the HTTP status.
/// "Not found", "unauthorized" and "rate limited" are distinct variants, and a missing
/// repository is told apart from a missing tag or digest.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The text is not a valid image reference.
    #[error("invalid image reference {input:?}: {reason}")]
    InvalidReference {
        /// What the caller gave.
        input: String,
        /// Why it was refused.
        reason: ReferenceError,
    },

    /// The text is not a valid digest.
    #[error("invalid digest {input:?}: {reason}")]
    InvalidDigest {
        /// What the caller gave.
        input: String,
        /// Why it was refused.
        reason: DigestError,
    },

    /// The text is not a version.
    #[error("invalid version {input:?}: {reason}")]
    InvalidVersion {
        /// What the caller gave.
        input: String,
        /// What a version looks like.
        reason: String,
    },

    /// The text is not a channel.
    #[error("invalid channel {input:?}: {reason}")]
    InvalidChannel {
        /// What the caller gave.
        input: String,
        /// Why it was refused.
        reason: String,
    },

    /// The text is not a commit id.
    #[error("invalid commit sha {input:?}: expected 7 to 64 hexadecimal digits")]
    InvalidCommitSha {
        /// What the caller gave.
        input: String,
    },

    /// The text is not a platform such as `linux/arm64`.
    #[error(
        "invalid platform {input:?}: expected `os/architecture[/variant]`, such as `linux/arm64`"
    )]
    InvalidPlatform {
        /// What the caller gave.
        input: String,
    },

    /// The registry does not know the repository.
    #[error("repository {reference} not found (HTTP {status})")]
    RepositoryNotFound {
        /// The reference asked for.
        reference: String,
        /// 404, usually.
        status: u16,
    },

    /// The repository exists but not the tag or digest.
    #[error("manifest {reference} not found: no such tag or digest (HTTP {status})")]
    ManifestNotFound {
        /// The reference asked for.
        reference: String,
        /// 404, usually.
        status: u16,
    },

    /// No tag in the repository belongs to the channel.
    #[error("no tag of {reference} matches channel {channel} ({tags} tags listed)")]
    NoMatchingTag {
        /// The repository.
        reference: String,
        /// The channel asked for.
        channel: String,
        /// How many tags the repository has.
        tags: usize,
    },

    /// An index has no manifest for the platform.
    #[error("{reference} has no manifest for platform {platform} (available: {available})")]
    PlatformNotFound {
        /// The reference resolved.
        reference: String,
        /// The platform asked for.
        platform: String,
        /// The platforms the index lists, comma-separated.
        available: String,
    },

    /// The registry refused the credentials, or wants some.
    #[error("unauthorized to access {reference} (HTTP {status}){}", detail_suffix(.detail))]
    Unauthorized {
        /// The reference asked for.
        reference: String,
        /// 401 or 403.
        status: u16,
        /// What the registry or the token service said, if anything.
        detail: Option<String>,
    },

    /// The registry rate-limits us (HTTP 429).
    #[error("rate limited by the registry while accessing {reference}{}", retry_after_suffix(.retry_after))]
    RateLimited {
        /// The reference asked for.
        reference: String,
        /// How long the registry asked us to wait (`Retry-After`), if it said.
        retry_after: Option<Duration>,
    },

    /// Any other unexpected HTTP status, after retries where they make sense.
    #[error("registry answered HTTP {status} for {reference}{}", detail_suffix(.detail))]
    Http {
        /// The reference asked for.
        reference: String,
        /// The status.
        status: u16,
        /// The registry's error message, if it sent one.
        detail: Option<String>,
    },

    /// The registry could not be reached, or the connection failed or timed out
    /// (after retries).
    #[error("cannot reach the registry for {reference}")]
    Network {
        /// The reference asked for.
        reference: String,
        /// What failed.
        #[source]
        source: reqwest::Error,
    },

    /// The registry sent something that breaks the distribution spec.
    #[error("unexpected answer from the registry for {reference}: {message}")]
    Protocol {
        /// The reference asked for.
        reference: String,
        /// What was wrong.
        message: String,
    },

    /// The Docker configuration file could not be read.
    #[error("cannot read Docker credentials from {}", path.display())]
    DockerConfig {
        /// The file.
        path: PathBuf,
        /// What failed.
        #[source]
        source: std::io::Error,
    },

    /// A `docker-credential-<name>` helper failed.
    #[error("credential helper docker-credential-{helper} failed for {registry}: {message}")]
    CredentialHelper {
        /// The helper's name (`desktop`, `pass`, `ecr-login`, …).
        helper: String,
        /// The registry asked about.
        registry: String,
        /// What went wrong (never the secret).
        message: String,
    },

    /// An image could not be assembled.
    #[error("cannot assemble {what}")]
    Assembly {
        /// What was being written: `a layer`, `a JSON document`.
        what: String,
        /// What failed.
        #[source]
        source: std::io::Error,
    },

    /// The HTTP client could not be built (TLS set-up).
    #[error("cannot set up the HTTP client")]
    ClientSetup(#[source] reqwest::Error),
}

fn detail_suffix(detail: &Option<String>) -> String {
    detail
        .as_ref()
        .map(|detail| format!(": {detail}"))
        .unwrap_or_default()
}

fn retry_after_suffix(retry_after: &Option<Duration>) -> String {
    retry_after
        .map(|wait| format!(" (retry after {}s)", wait.as_secs().max(1)))
        .unwrap_or_default()
}

impl Error {
    /// Whether retrying later may help (rate limiting, network trouble, 5xx).
    pub fn is_transient(&self) -> bool {
        match self {
            Error::RateLimited { .. } | Error::Network { .. } => true,
            Error::Http { status, .. } => *status >= 500,
            _ => false,
        }
    }
}
