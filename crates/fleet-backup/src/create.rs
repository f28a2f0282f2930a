//! Archiving a directory.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use jiff::Timestamp;
use sha2::Digest;

use crate::layout::{self, BLOCK};
use crate::manifest::{
    self, Entry, EntryKind, FORMAT_VERSION, Manifest, ManifestSummary, Sha256, Skipped,
};
use crate::progress::{Progress, Tracker};
use crate::writeback::BackgroundWriter;
use crate::{ArchiveName, BackupName, Error, sqlite};

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
    /// Compression threads; 0 (the default) means one per available CPU, plus one.
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
    /// SQLite databases archived as consistent snapshots (paths relative to the source).
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
/// Memory stays bounded whatever the data size: content streams through in 1 MiB chunks;
/// only the manifest (about 250 bytes per file) is held. The archive is written to a temporary
/// file in `dest_dir`, fsynced, and only then renamed to its final name (and the directory
/// fsynced), so a crash never leaves a complete-looking archive that is not. SQLite databases
/// are archived as consistent snapshots: see [`sqlite`](crate::sqlite) for what a snapshot guarantees.
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
    let snapshots = snapshot_databases(
        &source,
        &mut entries,
        staging.path(),
        options.sqlite_busy_timeout,
    )?;
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
    let mut changed = Vec::new();
    {
        let mut encoder =
            zstd::Encoder::new(&mut out, options.level.get()).map_err(Error::io(&tmp_path))?;
        let threads = match options.threads {
            // One more than the CPUs: the thread reading and hashing the files needs a share
            // too, and an extra worker keeps every CPU compressing when it runs.
            0 => std::thread::available_parallelism().map_or(1, |n| n.get() as u32) + 1,
            n => n,
        };
        encoder.multithread(threads).map_err(Error::io(&tmp_path))?;
        encoder
            .include_checksum(true)
            .map_err(Error::io(&tmp_path))?;
        let mut buf = vec![0; 1 << 20];
        let mut kept = Vec::with_capacity(manifest.entries.len());
        for mut entry in std::mem::take(&mut manifest.entries) {
            if let EntryKind::File { .. } = entry.kind {
                let origin = match snapshots.get(&entry.path) {
                    Some(snapshot) => snapshot.clone(),
                    None => source.join(&entry.path),
                };
                match archive_file(&mut encoder, &mut entry, &origin, &mut buf, &mut tracker) {
                    Ok(Archived::Intact) => {}
                    Ok(Archived::Changed) => changed.push(entry.path.clone()),
                    Ok(Archived::Vanished) => {
                        changed.push(entry.path.clone());
                        continue;
                    }
                    Err(err) => {
                        return Err(Error::Io {
                            path: origin,
                            source: err,
                        });
                    }
                }
            } else {
                layout::write_entry_header(&mut encoder, &entry).map_err(Error::io(&tmp_path))?;
            }
            kept.push(entry);
        }
        manifest.entries = kept;
        // The end of the tar stream: two zero blocks.
        encoder
            .write_all(&[0; 2 * BLOCK as usize])
            .map_err(Error::io(&tmp_path))?;
        encoder.finish().map_err(Error::io(&tmp_path))?;
    }
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
    Ok(ArchiveInfo {
        path,
        name: archive_name,
        archive_bytes,
        summary: manifest.summary(),
        sqlite: snapshots.into_keys().collect(),
        skipped: manifest.skipped,
        changed,
    })
}

/// Replaces every SQLite database among `entries` by a snapshot in `staging` and drops its
/// companion files; returns entry path → snapshot file.
fn snapshot_databases(
    source: &Path,
    entries: &mut Vec<Entry>,
    staging: &Path,
    busy_timeout: Duration,
) -> Result<BTreeMap<String, PathBuf>, Error> {
    let mut databases = Vec::new();
    for entry in entries.iter() {
        // A database file is at least one 512-byte page; an empty file is not worth a snapshot.
        if let EntryKind::File { size, .. } = entry.kind
            && size >= 512
            && sqlite::is_sqlite(&source.join(&entry.path))?
        {
            databases.push(entry.path.clone());
        }
    }
    let companions: HashSet<String> = databases
        .iter()
        .flat_map(|db| sqlite::COMPANION_SUFFIXES.map(|suffix| format!("{db}{suffix}")))
        .collect();
    entries.retain(|e| !(companions.contains(&e.path) && matches!(e.kind, EntryKind::File { .. })));
    let mut snapshots = BTreeMap::new();
    let index: HashMap<String, usize> = entries
        .iter()
        .enumerate()
        .map(|(i, e)| (e.path.clone(), i))
        .collect();
    for (n, db) in databases.into_iter().enumerate() {
        let snapshot = staging.join(format!("{n}.sqlite"));
        sqlite::snapshot(&source.join(&db), &snapshot, busy_timeout)?;
        let size = fs::metadata(&snapshot).map_err(Error::io(&snapshot))?.len();
        let entry = &mut entries[index[&db]];
        entry.kind = EntryKind::File {
            size,
            sha256: Sha256::default(),
            sqlite: true,
        };
        snapshots.insert(db, snapshot);
    }
    Ok(snapshots)
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

enum Archived {
    Intact,
    Changed,
    Vanished,
}

/// Streams one file into the tar stream, setting its size, mtime and checksum in `entry`
/// from what was actually read.
fn archive_file(
    out: &mut impl Write,
    entry: &mut Entry,
    origin: &Path,
    buf: &mut [u8],
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
    let mut hasher = sha2::Sha256::new();
    let mut remaining = size;
    while remaining > 0 {
        let want = buf
            .len()
            .min(usize::try_from(remaining).unwrap_or(usize::MAX));
        let n = match file.read(&mut buf[..want]) {
            Ok(0) => {
                // The file shrank while being read: the header promised `size` bytes.
                changed = true;
                buf[..want].fill(0);
                want
            }
            Ok(n) => n,
            Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
            Err(err) => return Err(err),
        };
        hasher.update(&buf[..n]);
        out.write_all(&buf[..n])?;
        remaining -= n as u64;
        tracker.advance(n as u64);
    }
    layout::write_padding(out, size)?;
    let after = file.metadata()?;
    changed |= after.len() != before.len()
        || after.mtime() != before.mtime()
        || after.mtime_nsec() != before.mtime_nsec();
    entry.kind = EntryKind::File {
        size,
        sha256: Sha256(hasher.finalize().into()),
        sqlite,
    };
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
