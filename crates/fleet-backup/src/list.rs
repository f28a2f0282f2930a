//! Listing the archives in a directory.

use std::fs::{self, File};
use std::path::{Path, PathBuf};

use crate::manifest::{Manifest, ManifestSummary};
use crate::problem::{Problem, Problems};
use crate::{ArchiveName, Error};

/// One archive found by [`list`].
#[derive(Debug)]
#[non_exhaustive]
pub struct ListedArchive {
    /// The archive file.
    pub path: PathBuf,
    /// Its parsed file name.
    pub name: ArchiveName,
    /// Its size in bytes.
    pub bytes: u64,
    /// What its manifest says, or why it could not be read. The archive is not verified.
    pub summary: Result<ManifestSummary, Error>,
}

/// Every archive in `dir` (files named like `NAME-YYYYMMDD-HHMMSS.tar.zst`), oldest first,
/// with a summary of its manifest.
///
/// Reading a summary decompresses only the manifest, the first entry, so listing is fast
/// whatever the archive sizes. A missing `dir` lists nothing.
pub fn list(dir: &Path) -> Result<Vec<ListedArchive>, Error> {
    let mut archives = Vec::new();
    for (path, name) in archive_files(dir)? {
        let bytes = fs::symlink_metadata(&path).map_err(Error::io(&path))?.len();
        let summary = read_manifest(&path).map(|m| m.summary());
        archives.push(ListedArchive {
            path,
            name,
            bytes,
            summary,
        });
    }
    Ok(archives)
}

/// The archive files in `dir` with their parsed names, oldest first.
pub(crate) fn archive_files(dir: &Path) -> Result<Vec<(PathBuf, ArchiveName)>, Error> {
    let read_dir = match fs::read_dir(dir) {
        Ok(read_dir) => read_dir,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(err) => {
            return Err(Error::Io {
                path: dir.to_owned(),
                source: err,
            });
        }
    };
    let mut found = Vec::new();
    for item in read_dir {
        let item = item.map_err(Error::io(dir))?;
        let Some(name) = item.file_name().to_str().and_then(ArchiveName::parse) else {
            continue;
        };
        if item.file_type().map_err(Error::io(item.path()))?.is_file() {
            found.push((item.path(), name));
        }
    }
    found.sort_by(|a, b| a.1.cmp(&b.1));
    Ok(found)
}

/// Reads the manifest of `archive` without verifying the rest of it (see [`verify`](crate::verify)).
pub fn read_manifest(archive: &Path) -> Result<Manifest, Error> {
    let fail = |problem: Problem| Error::Verification {
        archive: archive.to_owned(),
        problems: Problems(vec![problem]),
    };
    let unreadable = |err: std::io::Error| {
        fail(Problem::Unreadable {
            after: None,
            reason: err.to_string(),
        })
    };
    let file = File::open(archive).map_err(Error::io(archive))?;
    let decoder = zstd::Decoder::new(file).map_err(unreadable)?;
    let mut tar = tar::Archive::new(decoder);
    let mut entries = tar.entries().map_err(unreadable)?;
    match entries.next() {
        None => Err(fail(Problem::NoManifest {
            found: "an empty archive".to_owned(),
        })),
        Some(Err(err)) => Err(unreadable(err)),
        Some(Ok(first)) => crate::scan::read_manifest(first).map_err(fail),
    }
}
