//! The one error type of this crate.

/// Everything that can go wrong while reading references or talking to a registry.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The text is not a valid image reference.
    #[error("invalid image reference {input:?}: {reason}")]
    InvalidReference {
        /// What the caller gave.
        input: String,
        /// Why it was refused.
        reason: String,
    },
}
