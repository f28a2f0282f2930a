//! Consistent, verified, fast archives of a data directory, and a restore that cannot hurt.
//!
//! `fleet-backup` archives any directory as tar + zstd with a checksummed manifest,
//! snapshots SQLite databases consistently while they are written, verifies archives,
//! restores them atomically and applies retention. It knows nothing of the Docker Engine,
//! registries or the terminal.

mod error;

pub use error::Error;
