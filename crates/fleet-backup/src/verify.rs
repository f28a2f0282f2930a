//! Checking an archive end to end.

use std::fs::File;
use std::path::Path;

use crate::Error;
use crate::manifest::Manifest;
use crate::pipe::decompressed;
use crate::problem::Problems;
use crate::progress::{Progress, Tracker};
use crate::scan::{Discard, scan};

/// An archive that passed [`verify`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Verified {
    /// Its manifest.
    pub manifest: Manifest,
    /// The archive's size in bytes.
    pub archive_bytes: u64,
}

/// Decompresses the whole archive in one streaming pass and checks it: the manifest comes
/// first, is well-formed and safe to restore; every entry is listed in it, with the listed
/// kind, size, symlink target and SHA-256; no listed entry is missing; the zstd frame
/// checksums hold and nothing follows the end of the tar stream.
///
/// On failure the error lists every problem found, each naming its entry.
pub fn verify(archive: &Path, progress: &mut dyn FnMut(Progress)) -> Result<Verified, Error> {
    let file = File::open(archive).map_err(Error::io(archive))?;
    let archive_bytes = file.metadata().map_err(Error::io(archive))?.len();
    let mut tracker = Tracker::new(progress, archive_bytes);
    let mut scanned = decompressed(&file, &mut tracker, |reader| scan(reader, &mut Discard))?;
    match scanned.manifest.take() {
        Some(manifest) if scanned.problems.is_empty() => {
            tracker.finish();
            Ok(Verified {
                manifest,
                archive_bytes,
            })
        }
        _ => Err(Error::Verification {
            archive: archive.to_owned(),
            problems: Problems(scanned.problems),
        }),
    }
}
