//! Archiving a directory.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use jiff::Timestamp;

use crate::hasher::Hasher;
use crate::layout::{self, BLOCK};
use crate::manifest::{
    self, Entry, EntryKind, FORMAT_VERSION, Manifest, ManifestSummary, Sha256, Skipped,
};
use crate::progress::{Progress, Tracker};
use crate::snapshots::{Snapshot, Snapshots};
use crate::writeback::BackgroundWriter;
use crate::{ArchiveName, BackupName, Error, snapshots};

/// A zstd compression level, 1 (fastest) to 19 (smallest).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Level(i32);

impl Level {
    /// Level 3: fast, and zstd's own default.
    pub const FAST: Level = Level(3);

    /// Checks the range. Levels above 19 need far more memory and are not offered.
    pub fn new(level: i32) -> Result<Self, Error> {
        if (1..=19).contains(&level) {
            Ok(Level(level))
        } else {
            Err(Error::InvalidLevel { level })
        }
    }

    /// The level as a number.
    pub fn get(self) -> i32 {
        self.0
    }
}

impl Default for Level {
    fn default() -> Self {
        Level::FAST
    }
}

/// How to archive: under which name, with what metadata, how hard to compress.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct CreateOptions {
    /// The backup name, usually the instance name; it starts the archive file name.
    pub name: BackupName,
    /// Stored in the manifest, such as `image` → the digest the instance ran.
    pub metadata: BTreeMap<String, String>,
    /// The compression level; [`Level::FAST`] by default.
    pub level: Level,
    /// Compression threads; 0 (the default) means one per available CPU.
    pub threads: u32,
    /// How long to wait for a writer that holds an SQLite database exclusively (rollback-journal
    /// mode only); 30 seconds by default.
    pub sqlite_busy_timeout: Duration,
}

impl CreateOptions {
    /// Defaults for a backup named `name`.
    pub fn new(name: BackupName) -> Self {
        CreateOptions {
            name,
            metadata: BTreeMap::new(),
            level: Level::FAST,
            threads: 0,
            sqlite_busy_timeout: Duration::from_secs(30),
        }
    }
}

/// What `create` wrote.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ArchiveInfo {
    /// The archive file.
    pub path: PathBuf,
    /// Its parsed file name.
    pub name: ArchiveName,
    /// Its size in bytes.
    pub archive_bytes: u64,
    /// What it holds.
    pub summary: ManifestSummary,
    /// SQLite databases archived as consistent snapshots (paths relative to the source, in
    /// manifest order).
    pub sqlite: Vec<String>,
    /// Special files left out.
    pub skipped: Vec<Skipped>,
    /// Files that changed or vanished while they were being archived: their content may be
    /// torn (as with any file-level backup) and is archived as read, matching its checksum.
    pub changed: Vec<String>,
}

/// Archives `source` into a new `NAME-YYYYMMDD-HHMMSS.tar.zst` in `dest_dir` (created if
/// missing) and returns what was written.
///
/// Memory stays bounded whatever the data size: content streams through a fixed number of
/// 1 MiB buffers (to the hashing thread, to the disk writer) and zstd's per-worker buffers;
/// only the manifest (about 250 bytes per file) is held. The archive is written to a temporary
/// file in `dest_dir`, fsynced, and only then renamed to its final name (and the directory
/// fsynced), so a crash never leaves a complete-looking archive that is not. SQLite databases
/// are archived as consistent snapshots: see [`sqlite`](crate::sqlite) for what a snapshot
/// guarantees. A snapshot is copied into a scratch file beside the archive while the other
/// files are archived, so `dest_dir` temporarily needs room for it too.
pub fn create(
    source: &Path,
    dest_dir: &Path,
    options: &CreateOptions,
    progress: &mut dyn FnMut(Progress),
) -> Result<ArchiveInfo, Error> {
    let source = fs::canonicalize(source).map_err(Error::io(source))?;
    if !source.is_dir() {
        return Err(Error::NotADirectory { path: source });
    }
    fs::create_dir_all(dest_dir).map_err(Error::io(dest_dir))?;
    let dest = fs::canonicalize(dest_dir).map_err(Error::io(dest_dir))?;
    if !dest.is_dir() {
        return Err(Error::NotADirectory { path: dest });
    }
    if dest.starts_with(&source) {
        return Err(Error::DestinationInsideSource {
            source_dir: source,
            dest,
        });
    }
    let created = Timestamp::now();
    let name = &options.name;
    let staging = tempfile::Builder::new()
        .prefix(&format!(".{name}-staging-"))
        .tempdir_in(&dest)
        .map_err(Error::io(&dest))?;

    let (mut entries, skipped) = crate::walk::walk(&source)?;
    let databases = snapshots::find(&source, &mut entries)?;
    let mut manifest = Manifest {
        version: FORMAT_VERSION,
        created,
        name: name.clone(),
        source: source
            .to_str()
            .map(str::to_owned)
            .ok_or_else(|| Error::Unarchivable {
                path: manifest::ROOT.to_owned(),
                reason: format!("the source path {} is not valid UTF-8", source.display()),
            })?,
        metadata: options.metadata.clone(),
        entries,
        skipped,
    };
    // An archive that restore would refuse is worse than none: fail now, naming the file.
    if let Some(problem) = manifest.problems().into_iter().next() {
        let (path, reason) = match problem {
            crate::Problem::Unsafe { entry, reason } => (entry, reason),
            other => (manifest::ROOT.to_owned(), other.to_string()),
        };
        return Err(Error::Unarchivable { path, reason });
    }

    let tmp = tempfile::Builder::new()
        .prefix(&format!(".{name}-"))
        .suffix(".tar.zst.tmp")
        .tempfile_in(&dest)
        .map_err(Error::io(&dest))?;
    let tmp_path = tmp.path().to_owned();
    let reserved = reserved_len(&manifest)?;
    let file = tmp.as_file();
    (&mut &*file)
        .seek(SeekFrom::Start(reserved))
        .map_err(Error::io(&tmp_path))?;
    // Compressed output goes to disk from a helper thread: the thread feeding the compressor
    // never waits for the disk.
    let mut out =
        BackgroundWriter::spawn(file.try_clone().map_err(Error::io(&tmp_path))?, reserved);

    let total = manifest
        .entries
        .iter()
        .map(|e| {
            if let EntryKind::File { size, .. } = e.kind {
                size
            } else {
                0
            }
        })
        .sum();
    let mut tracker = Tracker::new(progress, total);
    // The snapshots' instant: every database is pinned before any other file is read. The
    // copies are made meanwhile on a helper thread, and each goes into the stream as soon as
    // it is ready (or last).
    let mut snapshots = Snapshots::start(
        &source,
        &databases,
        staging.path(),
        options.sqlite_busy_timeout,
    )?;
    let waiting: Vec<usize> = (0..manifest.entries.len())
        .filter(|&i| {
            matches!(
                manifest.entries[i].kind,
                EntryKind::File { sqlite: true, .. }
            )
        })
        .collect();
    let mut waiting = waiting.into_iter().peekable();
    let mut changed = Vec::new();
    // Indices of the file entries in the order their content is streamed, so each gets the
    // digest the hashing thread computed for it.
    let mut streamed = Vec::new();
    // Indices of the files that vanished before they could be read, in increasing order.
    let mut vanished = Vec::new();
    let mut hasher = Hasher::spawn();
    {
        let mut encoder =
            zstd::Encoder::new(&mut out, options.level.get()).map_err(Error::io(&tmp_path))?;
        let threads = match options.threads {
            // One per CPU. Reading, hashing, copying SQLite snapshots and writing have threads
            // of their own that fill the CPUs when compression is cheap; with one more worker
            // they all fight for the CPUs and `create` gets slower (see docs/BENCHMARKS.md).
            0 => std::thread::available_parallelism().map_or(1, |n| n.get() as u32),
            n => n,
        };
        encoder.multithread(threads).map_err(Error::io(&tmp_path))?;
        encoder
            .include_checksum(true)
            .map_err(Error::io(&tmp_path))?;
        for i in 0..manifest.entries.len() {
            if let Some(&db) = waiting.peek()
                && let Some(snapshot) = snapshots.ready()?
            {
                let entry = &mut manifest.entries[db];
                archive_snapshot(&mut encoder, entry, &snapshot, &mut hasher, &mut tracker)?;
                snapshots.archived(snapshot);
                streamed.push(db);
                waiting.next();
            }
            let entry = &mut manifest.entries[i];
            match entry.kind {
                EntryKind::File { sqlite: true, .. } => {}
                EntryKind::File { .. } => {
                    let origin = source.join(&entry.path);
                    match archive_file(&mut encoder, entry, &origin, &mut hasher, &mut tracker) {
                        Ok(Archived::Intact) => streamed.push(i),
                        Ok(Archived::Changed) => {
                            streamed.push(i);
                            changed.push(entry.path.clone());
                        }
                        Ok(Archived::Vanished) => {
                            vanished.push(i);
                            changed.push(entry.path.clone());
                        }
                        Err(err) => {
                            return Err(Error::Io {
                                path: origin,
                                source: err,
                            });
                        }
                    }
                }
                _ => {
                    layout::write_entry_header(&mut encoder, entry).map_err(Error::io(&tmp_path))?
                }
            }
        }
        for db in waiting {
            let snapshot = snapshots.next()?;
            let entry = &mut manifest.entries[db];
            archive_snapshot(&mut encoder, entry, &snapshot, &mut hasher, &mut tracker)?;
            snapshots.archived(snapshot);
            streamed.push(db);
        }
        // The end of the tar stream: two zero blocks.
        encoder
            .write_all(&[0; 2 * BLOCK as usize])
            .map_err(Error::io(&tmp_path))?;
        encoder.finish().map_err(Error::io(&tmp_path))?;
    }
    let digests = hasher.finish().map_err(Error::io(&tmp_path))?;
    assert_eq!(
        digests.len(),
        streamed.len(),
        "one digest per streamed file"
    );
    for (i, digest) in streamed.into_iter().zip(digests) {
        if let EntryKind::File { sha256, .. } = &mut manifest.entries[i].kind {
            *sha256 = digest;
        }
    }
    let mut index = 0;
    manifest.entries.retain(|_| {
        index += 1;
        vanished.binary_search(&(index - 1)).is_err()
    });
    out.finish().map_err(Error::io(&tmp_path))?;
    tracker.finish();

    let head = manifest_frame(&manifest, options.level).map_err(Error::io(&tmp_path))?;
    let padding = reserved - head.len() as u64 - 8;
    // `reserved_len` leaves room by construction; a failure here is a bug, not corrupt output.
    assert!(
        head.len() as u64 + 8 <= reserved,
        "manifest frame outgrew its reservation"
    );
    file.write_all_at(&head, 0).map_err(Error::io(&tmp_path))?;
    let skip =
        layout::skippable_frame_header(u32::try_from(padding).expect("reservation below 4 GiB"));
    file.write_all_at(&skip, head.len() as u64)
        .map_err(Error::io(&tmp_path))?;
    file.sync_all().map_err(Error::io(&tmp_path))?;
    let archive_bytes = file.metadata().map_err(Error::io(&tmp_path))?.len();

    let (path, archive_name) = persist(tmp, &dest, name, created)?;
    File::open(&dest)
        .and_then(|d| d.sync_all())
        .map_err(Error::io(&dest))?;
    // Waits for the snapshot files' removal, which overlapped with the end of the work.
    drop(snapshots);
    Ok(ArchiveInfo {
        path,
        name: archive_name,
        archive_bytes,
        summary: manifest.summary(),
        sqlite: databases,
        skipped: manifest.skipped,
        changed,
    })
}

/// An upper bound of the compressed manifest frame plus the skippable frame header: the
/// manifest is measured with every size and mtime at its widest.
fn reserved_len(manifest: &Manifest) -> Result<u64, Error> {
    let mut widest = manifest.clone();
    for entry in &mut widest.entries {
        if let EntryKind::File { size, .. } = &mut entry.kind {
            *size = u64::MAX;
        }
        entry.mtime = Timestamp::MAX;
    }
    let json_len = serde_json::to_vec(&widest)
        .expect("manifests serialize")
        .len() as u64;
    let raw = BLOCK + layout::padded(json_len);
    let bound = zstd::compress_bound(usize::try_from(raw).unwrap_or(usize::MAX)) as u64;
    // Frame header and checksum slack beyond `compress_bound`, then the skippable frame header.
    let reserved = bound + 64 + 8;
    if reserved > u64::from(u32::MAX) {
        return Err(Error::Unarchivable {
            path: manifest::ROOT.to_owned(),
            reason: "too many files: the manifest would exceed 4 GiB".to_owned(),
        });
    }
    Ok(reserved)
}

/// The manifest entry as a compressed zstd frame.
fn manifest_frame(manifest: &Manifest, level: Level) -> io::Result<Vec<u8>> {
    let json = serde_json::to_vec(manifest).expect("manifests serialize");
    let mut encoder = zstd::Encoder::new(Vec::new(), level.get())?;
    encoder.include_checksum(true)?;
    let mtime = manifest.created.as_second().max(0).unsigned_abs();
    layout::write_manifest_header(&mut encoder, json.len() as u64, mtime)?;
    encoder.write_all(&json)?;
    layout::write_padding(&mut encoder, json.len() as u64)?;
    encoder.finish()
}

/// Streams the snapshot of the database at `entry` into the tar stream and through `hasher`.
fn archive_snapshot(
    out: &mut impl Write,
    entry: &mut Entry,
    snapshot: &Snapshot,
    hasher: &mut Hasher,
    tracker: &mut Tracker<'_>,
) -> Result<(), Error> {
    // The snapshot's size is what the entry promises, not the live file's.
    entry.kind = EntryKind::File {
        size: snapshot.size,
        sha256: Sha256::default(),
        sqlite: true,
    };
    let failed = |source| Error::Io {
        path: snapshot.file.clone(),
        source,
    };
    match archive_file(out, entry, &snapshot.file, hasher, tracker).map_err(failed)? {
        Archived::Intact => Ok(()),
        // Nothing but `create` touches a snapshot file.
        Archived::Changed | Archived::Vanished => Err(failed(io::Error::other(
            "the SQLite snapshot file changed while being archived",
        ))),
    }
}

enum Archived {
    Intact,
    Changed,
    Vanished,
}

/// Streams one file into the tar stream and through `hasher`, setting its size and mtime in
/// `entry` from what was actually read. Unless it vanished, the file's digest is the next one
/// `hasher` returns.
fn archive_file(
    out: &mut impl Write,
    entry: &mut Entry,
    origin: &Path,
    hasher: &mut Hasher,
    tracker: &mut Tracker<'_>,
) -> io::Result<Archived> {
    // O_NOFOLLOW: a file swapped for a symlink since the walk is not followed out of the tree.
    // O_NONBLOCK: a file swapped for a FIFO does not hang the backup.
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(origin);
    let mut file = match file {
        Ok(file) => file,
        Err(err)
            if err.kind() == io::ErrorKind::NotFound || err.raw_os_error() == Some(libc::ELOOP) =>
        {
            return Ok(Archived::Vanished);
        }
        Err(err) => return Err(err),
    };
    let before = file.metadata()?;
    if !before.is_file() {
        return Ok(Archived::Vanished);
    }
    let EntryKind::File {
        size: walked_size,
        sqlite,
        ..
    } = entry.kind
    else {
        unreachable!("archive_file is called for files only")
    };
    let size = before.len();
    let mut changed = size != walked_size;
    // A snapshot keeps the live database's mtime; other files get theirs as of this read.
    if !sqlite && let Ok(mtime) = Timestamp::new(before.mtime(), before.mtime_nsec() as i32) {
        changed |= mtime != entry.mtime;
        entry.mtime = mtime;
    }
    entry.kind = EntryKind::File {
        size,
        sha256: Sha256::default(),
        sqlite,
    };
    layout::write_entry_header(out, entry)?;
    let mut remaining = size;
    while remaining > 0 {
        let room = hasher.room()?;
        let want = room
            .len()
            .min(usize::try_from(remaining).unwrap_or(usize::MAX));
        let n = match file.read(&mut room[..want]) {
            Ok(0) => {
                // The file shrank while being read: the header promised `size` bytes.
                changed = true;
                room[..want].fill(0);
                want
            }
            Ok(n) => n,
            Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
            Err(err) => return Err(err),
        };
        out.write_all(hasher.commit(n))?;
        remaining -= n as u64;
        tracker.advance(n as u64);
    }
    hasher.end_file();
    layout::write_padding(out, size)?;
    let after = file.metadata()?;
    changed |= after.len() != before.len()
        || after.mtime() != before.mtime()
        || after.mtime_nsec() != before.mtime_nsec();
    Ok(if changed {
        Archived::Changed
    } else {
        Archived::Intact
    })
}

/// Renames the finished temporary file to the first free archive name of its second.
fn persist(
    mut tmp: tempfile::NamedTempFile,
    dest: &Path,
    name: &BackupName,
    created: Timestamp,
) -> Result<(PathBuf, ArchiveName), Error> {
    for seq in 0.. {
        let archive_name = ArchiveName::new(name.clone(), created, seq);
        let path = dest.join(archive_name.to_string());
        match tmp.persist_noclobber(&path) {
            Ok(_) => return Ok((path, archive_name)),
            Err(err) if err.error.kind() == io::ErrorKind::AlreadyExists => tmp = err.file,
            Err(err) => {
                return Err(Error::Io {
                    path,
                    source: err.error,
                });
            }
        }
    }
    unreachable!("an unbounded range ends only by returning")
}
