//! Listing the directory to archive.

use std::io;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;

use jiff::Timestamp;

use crate::Error;
use crate::manifest::{Entry, EntryKind, ROOT, Sha256, Skipped};

/// Every entry under `root`, parents before children, in file-name order; special files
/// (sockets, FIFOs, devices) in `skipped`. File checksums are left zero.
pub(crate) fn walk(root: &Path) -> Result<(Vec<Entry>, Vec<Skipped>), Error> {
    let mut entries = Vec::new();
    let mut skipped = Vec::new();
    for item in walkdir::WalkDir::new(root)
        .follow_links(false)
        .sort_by_file_name()
    {
        let item = match item {
            Ok(item) => item,
            // Deleted between listing its directory and looking at it: it is not part of the backup.
            Err(err)
                if err
                    .io_error()
                    .is_some_and(|e| e.kind() == io::ErrorKind::NotFound)
                    && err.depth() > 0 =>
            {
                continue;
            }
            Err(err) => {
                let path = err.path().unwrap_or(root).to_owned();
                return Err(Error::Io {
                    path,
                    source: err.into(),
                });
            }
        };
        let rel = item
            .path()
            .strip_prefix(root)
            .expect("walkdir yields paths under its root");
        let path = if rel.as_os_str().is_empty() {
            ROOT.to_owned()
        } else {
            rel.to_str()
                .ok_or_else(|| Error::Unarchivable {
                    path: rel.to_string_lossy().into_owned(),
                    reason: "the file name is not valid UTF-8".to_owned(),
                })?
                .to_owned()
        };
        let meta = match item.metadata() {
            Ok(meta) => meta,
            Err(err)
                if err
                    .io_error()
                    .is_some_and(|e| e.kind() == io::ErrorKind::NotFound) =>
            {
                continue;
            }
            Err(err) => {
                return Err(Error::Io {
                    path: item.path().to_owned(),
                    source: err.into(),
                });
            }
        };
        let file_type = meta.file_type();
        let kind = if file_type.is_dir() {
            EntryKind::Dir
        } else if file_type.is_file() {
            EntryKind::File {
                size: meta.len(),
                sha256: Sha256::default(),
                sqlite: false,
            }
        } else if file_type.is_symlink() {
            let target = std::fs::read_link(item.path()).map_err(Error::io(item.path()))?;
            let target =
                target
                    .into_os_string()
                    .into_string()
                    .map_err(|_| Error::Unarchivable {
                        path: path.clone(),
                        reason: "the symlink target is not valid UTF-8".to_owned(),
                    })?;
            EntryKind::Symlink { target }
        } else {
            let reason = if file_type.is_socket() {
                "socket"
            } else if file_type.is_fifo() {
                "FIFO"
            } else {
                "device file"
            };
            skipped.push(Skipped {
                path,
                reason: reason.to_owned(),
            });
            continue;
        };
        let mtime = Timestamp::new(meta.mtime(), meta.mtime_nsec() as i32).map_err(|err| {
            Error::Unarchivable {
                path: path.clone(),
                reason: format!("modification time out of range: {err}"),
            }
        })?;
        entries.push(Entry {
            path,
            kind,
            mode: meta.mode() & 0o7777,
            mtime,
            uid: meta.uid(),
            gid: meta.gid(),
        });
    }
    Ok((entries, skipped))
}
