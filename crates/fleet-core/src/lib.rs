//! The fleet domain: instances of one app image on a host.
//!
//! `fleet-core` holds instance specs, the SQLite state store, port allocation, the
//! container engine (Docker through bollard), reconciliation and updates. It is the only
//! crate that talks to the Docker Engine, and it never prints.

mod error;

pub use error::Error;
