//! Restoring an archive in place of a directory, safely.

use std::fs::{self, DirBuilder, File, OpenOptions, Permissions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use filetime::FileTime;
use jiff::Timestamp;

use crate::Error;
use crate::manifest::{Entry, EntryKind, Manifest, ManifestSummary, ROOT};
use crate::pipe::decompressed;
use crate::problem::Problems;
use crate::progress::{Progress, Tracker};
use crate::scan::{Sink, scan};
use crate::writeback::Writeback;

/// What [`restore`] did.
#[derive(Debug)]
#[non_exhaustive]
pub struct RestoreOutcome {
    /// The restored directory.
    pub target: PathBuf,
    /// What the archive held.
    pub summary: ManifestSummary,
    /// The data that was at the target before, if any, kept until the caller removes it.
    pub previous: Option<PreviousData>,
}

/// The directory that was replaced by a restore, kept beside it as
/// `<target>.pre-restore-YYYYMMDD-HHMMSS`. Dropping this handle keeps the data on disk:
/// deleting it takes an explicit [`PreviousData::remove`], so nothing is lost by accident.
#[derive(Debug)]
#[must_use = "the previous data stays on disk until `remove` is called"]
pub struct PreviousData {
    path: PathBuf,
    target: PathBuf,
}

impl PreviousData {
    /// Where the previous data is.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Deletes the previous data.
    pub fn remove(self) -> Result<(), Error> {
        fs::remove_dir_all(&self.path).map_err(Error::io(&self.path))
    }

    /// Undoes the restore: puts the previous data back at the restored directory (in one
    /// atomic exchange where the filesystem allows) and deletes the restored data. For a
    /// restore whose data the app then refused.
    pub fn put_back(self) -> Result<(), Error> {
        let aside = free_name(&self.target, ".undone-restore")?;
        let restored = crate::swap::swap(&self.path, &self.target, &aside)?;
        if let Some(restored) = restored {
            fs::remove_dir_all(&restored).map_err(Error::io(&restored))?;
        }
        Ok(())
    }
}

/// Restores `archive` at `target`, replacing what is there only once everything is verified.
///
/// One streaming pass extracts into a temporary directory beside `target` and checks every
/// entry against the manifest (the manifest first: paths, parents and symlink targets are
/// checked before anything is written; then sizes, checksums, kinds and the zstd frame
/// checksums). Entries that would land outside the directory (absolute paths, `..`, symlinks
/// resolving outside, hard links, devices, FIFOs) are refused with an error naming them.
/// Only a fully verified tree is synced to disk (`syncfs`) and swapped in: in one atomic
/// `renameat2(RENAME_EXCHANGE)` where the filesystem supports it, else by two renames with
/// the first undone if the second fails. Until then `target` is not touched at all; a
/// failed or interrupted restore leaves it exactly as it was (an interrupted one may leave a
/// `.<target>.restore-*` directory beside it, safe to delete).
///
/// Modes (setuid, setgid and sticky included) and mtimes are restored exactly, and owners
/// too when running as root; otherwise everything belongs to the current user. The archive
/// holds a shared lock meanwhile, which [`prune`](crate::prune) respects.
pub fn restore(
    archive: &Path,
    target: &Path,
    progress: &mut dyn FnMut(Progress),
) -> Result<RestoreOutcome, Error> {
    let file = File::open(archive).map_err(Error::io(archive))?;
    file.lock_shared().map_err(Error::io(archive))?;
    let archive_bytes = file.metadata().map_err(Error::io(archive))?.len();
    let target = std::path::absolute(target).map_err(Error::io(target))?;
    let (Some(parent), Some(file_name)) = (target.parent(), target.file_name()) else {
        return Err(Error::NotADirectory { path: target });
    };
    match fs::symlink_metadata(&target) {
        Ok(meta) if !meta.is_dir() => return Err(Error::NotADirectory { path: target }),
        Ok(_) => {}
        Err(err) if err.kind() == io::ErrorKind::NotFound => {}
        Err(err) => {
            return Err(Error::Io {
                path: target,
                source: err,
            });
        }
    }
    let mut prefix = std::ffi::OsString::from(".");
    prefix.push(file_name);
    prefix.push(".restore-");
    let staging = tempfile::Builder::new()
        .prefix(&prefix)
        .tempdir_in(parent)
        .map_err(Error::io(parent))?;

    let mut extractor = Extractor {
        root: staging.path().to_owned(),
        file: None,
        as_root: is_root(),
    };
    let mut tracker = Tracker::new(progress, archive_bytes);
    let scanned = decompressed(&file, &mut tracker, |reader| scan(reader, &mut extractor))?;
    let manifest = match scanned.manifest {
        Some(manifest) if scanned.problems.is_empty() => manifest,
        _ => {
            return Err(Error::Verification {
                archive: archive.to_owned(),
                problems: Problems(scanned.problems),
            });
        }
    };
    extractor.finish(&manifest)?;
    tracker.finish();
    let dir = File::open(staging.path()).map_err(Error::io(staging.path()))?;
    nix::unistd::syncfs(&dir).map_err(|errno| Error::Io {
        path: staging.path().to_owned(),
        source: errno.into(),
    })?;

    let aside = free_aside_name(&target)?;
    let new = staging.keep();
    let previous = match crate::swap::swap(&new, &target, &aside) {
        Ok(previous) => previous,
        Err(err) => {
            // Keep the restored data only when the previous data could not be put back (the
            // error says where both are); otherwise the target is as it was.
            if !aside.exists() || target.exists() {
                let _ = fs::remove_dir_all(&new);
            }
            return Err(err);
        }
    };
    File::open(parent)
        .and_then(|d| d.sync_all())
        .map_err(Error::io(parent))?;
    Ok(RestoreOutcome {
        previous: previous.map(|path| PreviousData {
            path,
            target: target.clone(),
        }),
        target,
        summary: manifest.summary(),
    })
}

/// `<target>.pre-restore-YYYYMMDD-HHMMSS`, with `-N` added if taken.
fn free_aside_name(target: &Path) -> Result<PathBuf, Error> {
    free_name(target, ".pre-restore")
}

/// `<target><suffix>-YYYYMMDD-HHMMSS`, with `-N` added if taken.
fn free_name(target: &Path, suffix: &str) -> Result<PathBuf, Error> {
    let stamp = Timestamp::now().strftime("%Y%m%d-%H%M%S").to_string();
    for n in 0u32.. {
        let mut name = target.as_os_str().to_owned();
        name.push(format!("{suffix}-{stamp}"));
        if n > 0 {
            name.push(format!("-{n}"));
        }
        let path = PathBuf::from(name);
        match fs::symlink_metadata(&path) {
            Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(path),
            Err(err) => return Err(Error::Io { path, source: err }),
            Ok(_) => {}
        }
    }
    unreachable!("an unbounded range ends only by returning")
}

fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// Writes verified entries under `root`, which the archive's manifest has been checked to
/// confine them to: every parent is a directory this extractor created, files are created
/// with `O_EXCL | O_NOFOLLOW`, so nothing is ever written through a symlink.
struct Extractor {
    root: PathBuf,
    file: Option<(PathBuf, File, Writeback)>,
    as_root: bool,
}

impl Extractor {
    fn path(&self, entry: &Entry) -> PathBuf {
        if entry.path == ROOT {
            self.root.clone()
        } else {
            self.root.join(&entry.path)
        }
    }

    /// Sets directory metadata, deepest first, as creating children changes a directory's mtime.
    fn finish(&mut self, manifest: &Manifest) -> Result<(), Error> {
        let mut dirs: Vec<&Entry> = manifest
            .entries
            .iter()
            .filter(|e| matches!(e.kind, EntryKind::Dir))
            .collect();
        dirs.sort_by_key(|e| std::cmp::Reverse(depth(&e.path)));
        for dir in dirs {
            let path = self.path(dir);
            if self.as_root {
                std::os::unix::fs::chown(&path, Some(dir.uid), Some(dir.gid))
                    .map_err(Error::io(&path))?;
            }
            fs::set_permissions(&path, Permissions::from_mode(dir.mode & 0o7777))
                .map_err(Error::io(&path))?;
            let mtime = file_time(dir.mtime);
            filetime::set_file_times(&path, mtime, mtime).map_err(Error::io(&path))?;
        }
        Ok(())
    }
}

fn depth(path: &str) -> usize {
    if path == ROOT {
        0
    } else {
        path.split('/').count()
    }
}

fn file_time(ts: Timestamp) -> FileTime {
    FileTime::from_unix_time(ts.as_second(), ts.subsec_nanosecond().unsigned_abs())
}

impl Sink for Extractor {
    fn start(&mut self, manifest: &Manifest) -> Result<(), Error> {
        let mut dirs: Vec<&Entry> = manifest
            .entries
            .iter()
            .filter(|e| matches!(e.kind, EntryKind::Dir) && e.path != ROOT)
            .collect();
        dirs.sort_by_key(|e| depth(&e.path));
        let mut builder = DirBuilder::new();
        builder.mode(0o700);
        for dir in dirs {
            let path = self.path(dir);
            builder.create(&path).map_err(Error::io(&path))?;
        }
        Ok(())
    }

    fn begin_file(&mut self, entry: &Entry) -> Result<(), Error> {
        let path = self.path(entry);
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&path)
            .map_err(Error::io(&path))?;
        self.file = Some((path, file, Writeback::at(0)));
        Ok(())
    }

    fn data(&mut self, data: &[u8]) -> Result<(), Error> {
        let (path, file, writeback) = self.file.as_mut().expect("data follows begin_file");
        file.write_all(data).map_err(Error::io(&*path))?;
        writeback.wrote(file, data.len() as u64);
        Ok(())
    }

    fn end_file(&mut self, entry: &Entry) -> Result<(), Error> {
        let (path, file, mut writeback) = self.file.take().expect("end_file follows begin_file");
        writeback.start(&file);
        if self.as_root {
            std::os::unix::fs::fchown(&file, Some(entry.uid), Some(entry.gid))
                .map_err(Error::io(&path))?;
        }
        // After chown, which clears setuid and setgid.
        file.set_permissions(Permissions::from_mode(entry.mode & 0o7777))
            .map_err(Error::io(&path))?;
        let mtime = file_time(entry.mtime);
        filetime::set_file_handle_times(&file, Some(mtime), Some(mtime)).map_err(Error::io(&path))
    }

    fn symlink(&mut self, entry: &Entry) -> Result<(), Error> {
        let EntryKind::Symlink { target } = &entry.kind else {
            unreachable!("symlink is called for symlinks")
        };
        let path = self.path(entry);
        std::os::unix::fs::symlink(target, &path).map_err(Error::io(&path))?;
        if self.as_root {
            std::os::unix::fs::lchown(&path, Some(entry.uid), Some(entry.gid))
                .map_err(Error::io(&path))?;
        }
        let mtime = file_time(entry.mtime);
        filetime::set_symlink_file_times(&path, mtime, mtime).map_err(Error::io(&path))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::swap::{FAIL_AT, NO_EXCHANGE, Step};
    use crate::{BackupName, CreateOptions, create};

    /// Restores an archive holding `v = new` over `live/v = old` (or over nothing), with a
    /// failure injected at `fail`; describes the result, the target and what lies beside it.
    fn check(fail: Option<Step>, exchange: bool, existing: bool) -> String {
        let tmp = tempfile::tempdir().unwrap();
        let src = tmp.path().join("src");
        fs::create_dir(&src).unwrap();
        fs::write(src.join("v"), "new").unwrap();
        let options = CreateOptions::new(BackupName::new("t").unwrap());
        let archive = create(&src, &tmp.path().join("archives"), &options, &mut |_| {})
            .unwrap()
            .path;
        fs::remove_dir_all(&src).unwrap();
        let live = tmp.path().join("live");
        if existing {
            fs::create_dir(&live).unwrap();
            fs::write(live.join("v"), "old").unwrap();
        }

        FAIL_AT.set(fail);
        NO_EXCHANGE.set(!exchange);
        let result = restore(&archive, &live, &mut |_| {});
        FAIL_AT.set(None);
        NO_EXCHANGE.set(false);

        let outcome = match &result {
            Ok(outcome) => match &outcome.previous {
                Some(previous) => format!("restored, previous in {}", generic(previous.path())),
                None => "restored".to_owned(),
            },
            Err(Error::Swap { reason, .. }) => {
                format!("failed: {}", reason.split(';').nth(1).unwrap_or("").trim())
            }
            Err(err) => format!("failed: {err}"),
        };
        let live_v = fs::read_to_string(live.join("v")).unwrap_or_else(|_| "missing".to_owned());
        let mut beside: Vec<String> = fs::read_dir(tmp.path())
            .unwrap()
            .map(|e| generic(&e.unwrap().path()))
            .collect();
        beside.sort();
        format!("{outcome}; live/v={live_v}; beside: {}", beside.join(" "))
    }

    /// A file name with its time stamp or random part replaced by `*`.
    fn generic(path: &Path) -> String {
        let name = path.file_name().unwrap().to_str().unwrap();
        for prefix in ["live.pre-restore-", ".live.restore-"] {
            if name.starts_with(prefix) {
                return format!("{prefix}*");
            }
        }
        name.to_owned()
    }

    #[test]
    fn swaps_and_failed_swaps() {
        insta::assert_snapshot!(check(None, true, true), @"restored, previous in live.pre-restore-*; live/v=new; beside: archives live live.pre-restore-*");
        insta::assert_snapshot!(check(None, false, true), @"restored, previous in live.pre-restore-*; live/v=new; beside: archives live live.pre-restore-*");
        insta::assert_snapshot!(check(None, true, false), @"restored; live/v=new; beside: archives live");
        // Killed half-way, simulated at each step: the old data stays, nothing is left over.
        insta::assert_snapshot!(check(Some(Step::Exchange), true, true), @"failed: the previous data is untouched; live/v=old; beside: archives live");
        insta::assert_snapshot!(check(Some(Step::MoveAside), false, true), @"failed: it is untouched; live/v=old; beside: archives live");
        insta::assert_snapshot!(check(Some(Step::MoveIn), false, true), @"failed: the previous data is back; live/v=old; beside: archives live");
        insta::assert_snapshot!(check(Some(Step::MoveIn), true, false), @"failed: ; live/v=missing; beside: archives");
        // After the exchange the restore is complete; the old data keeps its temporary name.
        insta::assert_snapshot!(check(Some(Step::MoveAside), true, true), @"restored, previous in .live.restore-*; live/v=new; beside: .live.restore-* archives live");
    }
}
