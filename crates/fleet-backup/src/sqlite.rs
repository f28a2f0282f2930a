//! Consistent snapshots of live SQLite databases.
//!
//! A database is recognised by its 16-byte header `SQLite format 3\0`, whatever its name.
//! Instead of its file and its `-wal`, `-shm` or `-journal` companions, the archive holds a
//! snapshot made with SQLite's online backup API, copying every page in one step, that is,
//! inside one read transaction.
//!
//! # What a snapshot guarantees
//!
//! - It is the database exactly as it was at one instant during `create`: every transaction
//!   committed before that instant is in it, including those still only in the WAL, and
//!   nothing of a transaction that had not committed. Every transaction committed before
//!   `create` was called is therefore in the archive.
//! - It is a single self-contained database file that passes `PRAGMA integrity_check`
//!   whenever the live database does.
//! - In WAL mode, writers are not blocked while the snapshot is taken (readers never block
//!   writers). In rollback-journal mode the snapshot holds a shared lock for its duration, so
//!   a writer's commit waits for it (within the writer's own busy timeout).
//! - Each database is snapshotted at its own instant, one after another: two databases that
//!   an app updates together are each consistent, but not necessarily with each other.
//!
//! The database is opened as any SQLite client opens it (read-write, never created). So
//! SQLite may do what it does on any open: roll back a crashed transaction's hot journal, or
//! checkpoint the WAL when the snapshot's connection is the last one to close.

use std::fs::File;
use std::io::{self, Read};
use std::path::Path;
use std::time::{Duration, Instant};

use rusqlite::backup::{Backup, StepResult};
use rusqlite::{Connection, OpenFlags};

use crate::Error;

/// The first 16 bytes of every SQLite 3 database file.
pub(crate) const HEADER: &[u8; 16] = b"SQLite format 3\0";

/// The files SQLite keeps beside a database; a snapshot replaces them.
pub(crate) const COMPANION_SUFFIXES: [&str; 3] = ["-wal", "-shm", "-journal"];

/// Whether the file at `path` starts with the SQLite header.
pub(crate) fn is_sqlite(path: &Path) -> Result<bool, Error> {
    let mut file = match File::open(path) {
        Ok(file) => file,
        Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(false),
        Err(err) => {
            return Err(Error::Io {
                path: path.to_owned(),
                source: err,
            });
        }
    };
    let mut header = [0; 16];
    match file.read_exact(&mut header) {
        Ok(()) => Ok(&header == HEADER),
        Err(err) if err.kind() == io::ErrorKind::UnexpectedEof => Ok(false),
        Err(err) => Err(Error::Io {
            path: path.to_owned(),
            source: err,
        }),
    }
}

/// Copies the live database at `source` into a new database file at `dest`, consistently.
///
/// Waits at most `busy_timeout` for a writer that holds an exclusive lock (rollback-journal
/// mode only; in WAL mode nothing blocks the snapshot).
pub(crate) fn snapshot(source: &Path, dest: &Path, busy_timeout: Duration) -> Result<(), Error> {
    let sqlite_err = |path: &Path| {
        let path = path.to_owned();
        move |source| Error::Sqlite { path, source }
    };
    let src = Connection::open_with_flags(
        source,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(sqlite_err(source))?;
    src.busy_timeout(busy_timeout).map_err(sqlite_err(source))?;
    let mut dst = Connection::open(dest).map_err(sqlite_err(dest))?;
    // The snapshot is a scratch file: the archive it goes into is what gets fsynced.
    dst.execute_batch("PRAGMA journal_mode=OFF; PRAGMA synchronous=OFF;")
        .map_err(sqlite_err(dest))?;
    {
        let backup = Backup::new(&src, &mut dst).map_err(sqlite_err(source))?;
        let started = Instant::now();
        loop {
            // -1: every page in one step, so in one read transaction: a consistent snapshot
            // that never restarts however busy the writers are.
            match backup.step(-1).map_err(sqlite_err(source))? {
                StepResult::Done => break,
                StepResult::More => {}
                StepResult::Busy | StepResult::Locked => {
                    if started.elapsed() >= busy_timeout {
                        return Err(Error::SqliteBusy {
                            path: source.to_owned(),
                            waited: started.elapsed(),
                        });
                    }
                    std::thread::sleep(Duration::from_millis(10));
                }
                // `StepResult` is non-exhaustive; any future outcome is treated as "try again".
                _ => std::thread::sleep(Duration::from_millis(10)),
            }
        }
    }
    dst.close().map_err(|(_, err)| Error::Sqlite {
        path: dest.to_owned(),
        source: err,
    })?;
    drop(src);
    // The snapshot must be one self-contained file: nothing may be left in a WAL beside it.
    for suffix in COMPANION_SUFFIXES {
        let mut companion = dest.as_os_str().to_owned();
        companion.push(suffix);
        match std::fs::metadata(&companion) {
            Ok(meta) if meta.len() > 0 && suffix != "-shm" => {
                return Err(Error::Unarchivable {
                    path: source.display().to_string(),
                    reason: format!("the SQLite snapshot left a non-empty {suffix} file"),
                });
            }
            _ => {}
        }
    }
    Ok(())
}
