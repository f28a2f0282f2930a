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
//! - [`Platform`]: `linux/arm64`, normalised like containerd.
//!
//! The registry client:
//! - [`Client`] (configured by [`ClientConfig`]): [`Client::resolve`] turns a
//!   [`ChannelRef`] into a [`Resolved`] digest, [`Client::list_tags`] lists every page of
//!   tags (cached), [`Client::head_manifest`], [`Client::get_manifest`],
//!   [`Client::platform_digest`], and [`Client::push_blob`] / [`Client::push_manifest`]
//!   for releases. [`Client::request_count`] counts HTTP requests.
//! - [`CredentialSource`] / [`Credentials`]: `~/.docker/config.json` (`auths`,
//!   `credHelpers`, `credsStore`), `DOCKER_CONFIG`, or given directly; secrets are
//!   [`Secret`]s that never print.
//! - [`Error`]: one typed error; registry variants name the reference and the status.
//!
//! Image assembly, without a daemon: public API for releasing fleet itself (the release
//! task builds fleet's own images with it where `docker buildx` is missing; fleet's
//! run-time crates do not use it). [`LayerBuilder`] → [`Layer`], [`ImageBuilder`] →
//! [`Image`] (configuration and manifest), [`Index`] for several platforms, pushed by
//! [`Client::push_image`] and [`Client::push_index`]. The same inputs always give the
//! same digests.
//!
//! # Why the client has its own HTTP transport
//!
//! oci-client (0.18) is good at what the OCI specs define as data: manifests, indexes,
//! descriptors and their media types, which this crate re-exports as [`oci`] and uses.
//! Its `Client` is not used for requests, because resolution needs what it hides:
//! `list_tags` returns one page and drops the `Link` header, its errors drop
//! `Retry-After` and the registry's error codes (so "rate limited", "repository not
//! found" and "tag not found" cannot be told apart), and its requests cannot be counted.
//! Mixing it in for pushes would mean two authentication paths and two retry policies.
//! So every request goes through one small transport on reqwest 0.13 (the same reqwest
//! oci-client uses, so nothing is compiled twice): the distribution token flow
//! (`WWW-Authenticate: Bearer realm/service/scope`, anonymously or with Basic
//! credentials or an identity token) and Basic auth, tokens cached per repository
//! scope, and one retry policy for every request, token requests included: jittered
//! exponential backoff on connection errors and 500/502/503/504, `Retry-After` (seconds
//! or HTTP date) waited out on 429 up to a bound and reported as [`Error::RateLimited`]
//! beyond it, per-request timeouts (a timed-out request is not retried), and one
//! request counter.
//!
//! Plain HTTP is explicit: loopback registries (`localhost`, `127.0.0.0/8`, `[::1]`)
//! and those in [`ClientConfig::insecure_registries`], as Docker does; HTTPS otherwise.
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

mod assembly;
mod auth;
mod cache;
mod channel;
mod client;
mod credentials;
mod digest;
mod error;
mod manifest;
mod platform;
mod push;
mod reference;
mod tags;
mod tagset;
mod target;
mod transport;
mod version;

pub use assembly::{Healthcheck, Image, ImageBuilder, Index, Layer, LayerBuilder};
pub use channel::{Channel, ChannelRef, ResolveOptions};
pub use client::{Client, ClientConfig, Resolved};
pub use credentials::{CredentialSource, Credentials, Secret};
pub use digest::{Digest, DigestError};
pub use error::Error;
pub use manifest::{Manifest, ManifestHead, ManifestKind};
pub use platform::Platform;
pub use reference::{ImageRef, ReferenceError};
pub use tagset::{CommitSha, HeldBack, ReleaseTags};
pub use version::Version;

/// OCI manifest, index and descriptor types and media-type constants (from oci-client).
pub use oci_client::manifest as oci;
