//! The one error type of this crate.

/// Everything that can go wrong while managing instances.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// No instance has this name.
    #[error("no instance named {name:?}")]
    NoSuchInstance {
        /// The name asked for.
        name: String,
    },
}
