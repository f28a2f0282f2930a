//! The request body limit. (Head limits are hyper's: `max_buf_size`, `max_headers`.)

use std::fmt;

use http::HeaderMap;
use http::header::CONTENT_LENGTH;

/// The error an upload that grew past the limit ends with, recognised in the upstream
/// client's error to answer `413`.
#[derive(Debug)]
pub(crate) struct BodyTooLarge {
    pub(crate) limit: u64,
}

impl fmt::Display for BodyTooLarge {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "the request body is larger than {} bytes", self.limit)
    }
}

impl std::error::Error for BodyTooLarge {}

/// Whether the request declares a body larger than `limit`.
pub(crate) fn declared_too_large(headers: &HeaderMap, limit: u64) -> bool {
    headers
        .get(CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.trim().parse::<u64>().ok())
        .is_some_and(|length| length > limit)
}

/// Whether `error` or one of its causes is a body over the limit.
pub(crate) fn is_body_too_large(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut cause = Some(error);
    while let Some(error) = cause {
        if error.is::<BodyTooLarge>() {
            return true;
        }
        cause = error.source();
    }
    false
}
