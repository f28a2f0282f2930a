//! The errors of off-host copies: each says what was wrong and what to do.

use std::path::PathBuf;

use crate::Sha256;

/// Everything that can go wrong with a remote store.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The store's settings cannot be used.
    #[error("invalid remote backup settings: {reason}")]
    Settings {
        /// What is wrong, and how to write it.
        reason: String,
    },
    /// No credentials were found in any of the usual places.
    #[error(
        "no AWS credentials found for bucket {bucket}: looked for {}; set them in one of \
         these places (or name another profile)",
        searched.join(", ")
    )]
    NoCredentials {
        /// The bucket they were wanted for.
        bucket: String,
        /// Every place looked in, in order.
        searched: Vec<String>,
    },
    /// An AWS credentials or config file is not valid ini.
    #[error("cannot parse {path}: fix or move it (AWS_SHARED_CREDENTIALS_FILE, AWS_CONFIG_FILE)")]
    AwsFile {
        /// The file.
        path: PathBuf,
        /// Where it is malformed.
        #[source]
        source: ini::ParseError,
    },
    /// The store refused the credentials (HTTP 401/403).
    #[error(
        "{target} refused the credentials from {credentials} ({code}): check the access key \
         and secret, or the policy granting them access to the bucket"
    )]
    Refused {
        /// The bucket, prefix and endpoint.
        target: String,
        /// Where the refused credentials came from.
        credentials: String,
        /// The store's error code (`InvalidAccessKeyId`, `SignatureDoesNotMatch`,
        /// `AccessDenied`), or the HTTP status.
        code: String,
        /// The request's error. Not a `source`: its text repeats the store's whole XML
        /// answer, of which `code` is the part that says what is wrong.
        request: Box<object_store::Error>,
    },
    /// Nothing answers at the endpoint.
    #[error(
        "cannot reach {endpoint} (for {target}): check the endpoint URL and that the store runs"
    )]
    Unreachable {
        /// The endpoint.
        endpoint: String,
        /// The bucket and prefix.
        target: String,
        /// The request's error.
        #[source]
        source: Box<object_store::Error>,
    },
    /// The bucket does not exist.
    #[error("bucket {bucket} does not exist at {endpoint}: create it, or fix the url")]
    NoSuchBucket {
        /// The bucket.
        bucket: String,
        /// The endpoint.
        endpoint: String,
        /// The request's error (not a `source`: see [`Error::Refused`]).
        request: Box<object_store::Error>,
    },
    /// No object under this key.
    #[error("{target} has no object {key}")]
    NotFound {
        /// The bucket, prefix and endpoint.
        target: String,
        /// The object's key.
        key: String,
    },
    /// An object's content does not have the SHA-256 it should: it was not uploaded
    /// intact, or was changed or corrupted in the store.
    #[error(
        "{target}: object {key} has SHA-256 {actual}, expected {expected}: it is not the archive it should be"
    )]
    Checksum {
        /// The bucket, prefix and endpoint.
        target: String,
        /// The object's key.
        key: String,
        /// What it should be.
        expected: Sha256,
        /// What it is.
        actual: Sha256,
    },
    /// An object was not uploaded with its SHA-256, and none was given: it cannot be
    /// verified.
    #[error("{target}: object {key} carries no SHA-256 to verify it against")]
    NoChecksum {
        /// The bucket, prefix and endpoint.
        target: String,
        /// The object's key.
        key: String,
    },
    /// Another request to the store failed.
    #[error("{target}: cannot {operation} {key}")]
    Request {
        /// The bucket, prefix and endpoint.
        target: String,
        /// What was being done (`upload`, `list`, `download`, `delete`).
        operation: &'static str,
        /// The object's key, or the prefix listed.
        key: String,
        /// The request's error.
        #[source]
        source: Box<object_store::Error>,
    },
    /// Reading or writing a local file failed.
    #[error("I/O error on {path}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
}
