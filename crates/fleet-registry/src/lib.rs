//! Which exact image should an instance run, and which tags does a release publish?
//!
//! `fleet-registry` reads image references the way the Docker CLI does, understands
//! version channels, resolves them to digests on any OCI registry and computes release
//! tag sets. It knows nothing of the Docker Engine, SQLite or the terminal, and never
//! prints.
//!
//! # Map
//!
//! Pure parts (no I/O, property-tested):
//! - [`ImageRef`]: a normalised reference (`nginx` → `docker.io/library/nginx`), with the
//!   grammar and normalisation of distribution/reference.
//! - [`Digest`]: a validated `sha256:…` content digest.
//! - [`Version`]: a tag read as a version (`v1`, `1.4`, `v1.4.2`, `2.0.0-rc.1`).
//! - [`Channel`]: what an instance follows (`latest`, `v1`, `^1.2`, `sha-1a2b3c4`,
//!   `@sha256:…`); [`Channel::resolve`] picks a tag from a tag list, in any order.
//!   [`ChannelRef`] is a repository plus a channel (`ghcr.io/o/app:v1`).
//! - [`ReleaseTags`]: the tags a release publishes, with the older-patch rule.
//!
//! # Example
//!
//! ```
//! use fleet_registry::{ChannelRef, ImageRef};
//!
//! let image: ImageRef = "nginx:1.27".parse()?;
//! assert_eq!(image.to_string(), "docker.io/library/nginx:1.27");
//!
//! let tracked: ChannelRef = "ghcr.io/owner/app:v1".parse()?;
//! let tags = ["v1.3.9", "v1.4.0", "v2.0.0-rc.1", "latest"];
//! assert_eq!(tracked.channel().resolve(&tags), Some("v1.4.0"));
//! # Ok::<(), fleet_registry::Error>(())
//! ```

mod channel;
mod digest;
mod error;
mod reference;
mod tagset;
mod version;

pub use channel::{Channel, ChannelRef, ResolveOptions};
pub use digest::{Digest, DigestError};
pub use error::Error;
pub use reference::{ImageRef, ReferenceError};
pub use tagset::{CommitSha, HeldBack, ReleaseTags};
pub use version::Version;
