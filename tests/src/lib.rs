//! The fleet test bed: the real parts every end-to-end test stands on.
//!
//! - [`registry::TestRegistry`]: Debian's `docker-registry` (the CNCF distribution
//!   registry) on `127.0.0.1:<free port>` with its own config and temporary storage,
//!   optionally behind htpasswd auth; stopped on drop.
//! - [`image::TestImage`]: images of the test app (`tests/testapp`, a static binary in a
//!   `FROM scratch` image) for a chosen version and behaviour (healthy, crashing, never
//!   healthy, slow to start, flapping), built by the local Docker Engine and pushed to a
//!   test registry under chosen tags. Nothing is pulled from the internet.
//! - [`docker::TestDocker`]: a connection to the Docker Engine that gives a test its own
//!   names, labels and networks, and removes every container, network and registry image
//!   it created when dropped.
//! - [`s3::TestS3`]: moto's S3-compatible server on `127.0.0.1:<free port>` with a
//!   bucket and an access key of its own (authentication enforced on request); killed
//!   on drop.
//! - [`cli::CliBed`]: a registry, a state directory and an engine scope for tests that
//!   drive the built `fleet` binary, with helpers to run it and read its JSON.
//! - [`load::Load`]: requests to one URL back to back (keep-alive and new connections),
//!   every answer and failure counted, for updates under load.
//! - [`archive`]: hand-made fleet-backup archives (path traversal, symlink escapes,
//!   absolute paths) that a restore must refuse.
//! - [`tools::require`]: finds an external program (`skopeo`, `docker-registry`) or fails
//!   with a message naming the Debian package to install. Tests never skip themselves.
//!
//! ```no_run
//! # async fn demo() -> anyhow::Result<()> {
//! use fleet_tests::{docker::TestDocker, image::{Behaviour, TestImage}, registry::TestRegistry};
//!
//! let registry = TestRegistry::start()?;
//! let docker = TestDocker::new().await?;
//! let image = TestImage::new("1.0.0").behaviour(Behaviour::Healthy).build(&docker).await?;
//! let digest = image.push(&docker, &registry, "app", &["v1.0.0", "v1", "latest"]).await?;
//! # Ok(()) }
//! ```

pub mod archive;
pub mod cli;
pub mod docker;
pub mod image;
pub mod load;
pub mod net;
pub mod registry;
pub mod s3;
pub mod static_fleet;
pub mod testapp;
pub mod tools;

use std::path::PathBuf;

/// The root of the Cargo workspace (the directory holding `Cargo.lock`).
pub fn workspace_root() -> PathBuf {
    let manifest_dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    manifest_dir
        .parent()
        .map(PathBuf::from)
        .unwrap_or(manifest_dir)
}

/// A short random hexadecimal string, for names that must not collide between tests.
pub fn unique_suffix() -> String {
    format!("{:08x}", rand::random::<u32>())
}
