//! The one error type of this crate.

/// Everything that can go wrong while configuring or running probes.
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
}
