//! Off-host copies of archives in any S3-compatible store (AWS S3, MinIO, Backblaze B2,
//! Garage, Ceph), behind the `remote` feature.
//!
//! - [`RemoteSettings`] say where: an [`S3Url`] (`s3://bucket/prefix`), and optionally an
//!   endpoint, a region and a profile of the `~/.aws` files. They deserialise, so a
//!   program's configuration can embed them.
//! - [`RemoteStore::new`] completes them from the environment and the `~/.aws` files
//!   (`AWS_ACCESS_KEY_ID`, `AWS_PROFILE`, `AWS_REGION`, `AWS_ENDPOINT_URL`, …; see
//!   [`CredentialSource`]) and then [uploads](RemoteStore::upload),
//!   [lists](RemoteStore::list), [downloads](RemoteStore::download),
//!   [deletes](RemoteStore::delete) and [prunes](RemoteStore::prune) archives, every
//!   transfer verified by SHA-256.
//! - Keys are `<prefix>/<backup name>/<archive file name>`; an archive's SHA-256 travels
//!   with it as the object metadata `fleet-sha256` (`x-amz-meta-fleet-sha256`), so a copy
//!   that exists only remotely can be verified before it is restored.
//! - [`Error`] says what was wrong and what to do: refused credentials name the bucket,
//!   the endpoint and where the credentials came from.
//!
//! The store is reached through `object_store` (Apache Arrow's client, the one
//! DataFusion and Polars use). Every request sends `x-amz-checksum-sha256`, which AWS
//! and MinIO check; as not every store does, uploads are also read back by default.
//!
//! ```no_run
//! use fleet_backup::remote::{RemoteSettings, RemoteStore};
//!
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let settings = RemoteSettings::new("s3://backups/fleet".parse()?);
//! let remote = RemoteStore::new(&settings)?;
//! let copy = remote
//!     .upload(std::path::Path::new("shop-20250102-030405.tar.zst"), None)
//!     .await?;
//! remote
//!     .download(&copy.key, std::path::Path::new("/tmp/restore.tar.zst"), None)
//!     .await?;
//! # Ok(()) }
//! ```

mod credentials;
mod error;
mod settings;
mod store;

pub use credentials::CredentialSource;
pub use error::Error;
pub use settings::{RemoteSettings, S3Url};
pub use store::{MIN_PART_SIZE, RemoteArchive, RemoteObject, RemoteStore, SHA256_METADATA};
