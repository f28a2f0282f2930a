//! Consistent, verified, fast archives of a data directory, and a restore that cannot hurt.
//!
//! `fleet-backup` archives any directory as tar + zstd with a checksummed manifest,
//! snapshots SQLite databases consistently while they are written, verifies archives,
//! restores them atomically and applies retention. It knows nothing of the Docker Engine,
//! registries or the terminal.
//!
//! # Map
//!
//! - [`create`] with [`CreateOptions`] writes `NAME-YYYYMMDD-HHMMSS.tar.zst` and returns an
//!   [`ArchiveInfo`]. SQLite databases become consistent snapshots: [`sqlite`] says exactly
//!   what that guarantees.
//! - [`verify`] checks an archive end to end against its [`Manifest`]; every [`Problem`]
//!   found is reported in [`Error::Verification`].
//! - [`restore`] verifies while extracting beside the target, then swaps atomically; the
//!   replaced data comes back as [`PreviousData`] in the [`RestoreOutcome`].
//! - [`list`] shows the archives of a directory with a [`ManifestSummary`] each;
//!   [`prune`] applies a [`RetentionPolicy`].
//! - Long operations report [`Progress`] through a callback.
//! - Archive names are [`ArchiveName`]s built from a [`BackupName`].
//! - With the `remote` feature, `remote::RemoteStore` keeps off-host copies in any
//!   S3-compatible store, each transfer verified by SHA-256.
//!
//! The archive layout (a plain tar inside zstd frames, manifest first, readable by
//! `tar -I zstd -xf`) is described in the `layout` module source.
//!
//! # Costs and limits
//!
//! - `create` reads every file once (content, SHA-256 and compression in one pass); the
//!   manifest still comes first thanks to a reserved, padded head of the file. Files are
//!   read on the calling thread, hashed on another and compressed on one worker per CPU;
//!   SQLite snapshots are copied on yet another thread while the other files are archived.
//!   A 2-core machine archives about as fast as `tar -I 'zstd -T0 -3' -cf`
//!   (docs/BENCHMARKS.md).
//! - `restore` is one pass too: it verifies while extracting into a sibling directory and
//!   swaps only a fully verified tree in, so a corrupt archive never touches the target.
//!   The price: a corrupt archive is found only after (up to) its whole content has been
//!   written to the sibling directory and deleted again; run [`verify`] first where disk
//!   space is tight.
//! - Kept: regular files, directories, symlinks (inside the tree only), permission bits
//!   including setuid/setgid/sticky, mtimes to the nanosecond, numeric owners (restored
//!   when running as root). Not kept: extended attributes and ACLs, hard links (each link
//!   is archived as its own file), sparseness, sockets/FIFOs/devices (listed as skipped).
//! - File names must be UTF-8, as the manifest is JSON.
//! - A crash may leave `.NAME-*.tar.zst.tmp` or `.NAME-staging-*` in the destination and
//!   `.<target>.restore-*` beside a restore target: never mistaken for archives or data,
//!   safe to delete.
//!
//! ```
//! use fleet_backup::{BackupName, CreateOptions, create, restore, verify};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let tmp = tempfile::tempdir()?;
//! let data = tmp.path().join("data");
//! std::fs::create_dir(&data)?;
//! std::fs::write(data.join("notes.txt"), "hello")?;
//!
//! let options = CreateOptions::new(BackupName::new("shop")?);
//! let archive = create(&data, &tmp.path().join("backups"), &options, &mut |_| {})?;
//! assert!(archive.name.to_string().starts_with("shop-"));
//! verify(&archive.path, &mut |_| {})?;
//!
//! std::fs::write(data.join("notes.txt"), "oops")?;
//! let outcome = restore(&archive.path, &data, &mut |_| {})?;
//! assert_eq!(std::fs::read_to_string(data.join("notes.txt"))?, "hello");
//! if let Some(previous) = outcome.previous {
//!     previous.remove()?;
//! }
//! # Ok(())
//! # }
//! ```

#![deny(missing_docs)]

mod chunks;
mod create;
mod error;
mod hasher;
mod layout;
mod list;
mod manifest;
mod name;
mod pipe;
mod problem;
mod progress;
#[cfg(feature = "remote")]
pub mod remote;
mod restore;
mod retention;
mod scan;
mod snapshots;
pub mod sqlite;
mod swap;
mod verify;
mod walk;
mod writeback;

pub use create::{ArchiveInfo, CreateOptions, Level, create};
pub use error::Error;
pub use list::{ListedArchive, list, read_manifest};
pub use manifest::{
    Entry, EntryKind, FORMAT_VERSION, Manifest, ManifestSummary, ROOT, Sha256, Skipped,
};
pub use name::{ArchiveName, BackupName};
pub use problem::{Problem, Problems};
pub use progress::Progress;
pub use restore::{PreviousData, RestoreOutcome, restore};
pub use retention::{PruneReport, RetentionPolicy, prune};
pub use verify::{Verified, verify};
