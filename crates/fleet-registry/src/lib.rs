//! Which exact image should an instance run, and which tags does a release publish?
//!
//! `fleet-registry` reads image references the way the Docker CLI does ([`ImageRef`]),
//! understands version channels (`latest`, `v1`, `v1.4`, `v1.4.2`, `sha-1a2b3c4`, semver
//! ranges), resolves them to digests on any OCI registry, computes release tag sets and
//! assembles OCI images. It knows nothing of the Docker Engine, SQLite or the terminal.

mod error;
mod reference;

pub use error::Error;
pub use reference::ImageRef;
