//! Consistent snapshots of live SQLite databases.
//!
//! A database is recognised by its 16-byte header `SQLite format 3\0`, whatever its name.
//! Instead of its file and its `-wal`, `-shm` or `-journal` companions, the archive holds a
//! snapshot: `create` first opens a read transaction on every database (pins it), then
//! copies each one with SQLite's online backup API inside that same read transaction, on a
//! helper thread, while the other files are being archived. (At most 32 databases are held
//! pinned, each with up to three open files; with more, the first ones are pinned and
//! copied one at a time before archiving starts.)
//!
//! # What a snapshot guarantees
//!
//! - It is the database exactly as it was at one instant: when its read transaction began.
//!   Every transaction committed before that instant is in it, including those still only in
//!   the WAL, and nothing of a transaction that had not committed. That instant comes after
//!   `create` was called and listed the directory, and before `create` reads any other
//!   file's content to archive it. Every transaction committed before `create` was called
//!   is therefore in the archive; commits made while the copy runs are not, however long
//!   it takes.
//! - Because every database is pinned before any other file is read for the archive, a file
//!   the app wrote and then referred to in a commit before the pin (say an upload, then its
//!   row) is archived with content at least as new as that commit, as long as it already
//!   existed when `create` listed the directory.
//! - It is a single self-contained database file that passes `PRAGMA integrity_check`
//!   whenever the live database does.
//! - In WAL mode, writers are not blocked by a snapshot (readers never block writers), but
//!   the WAL cannot be checkpointed past the pinned instant until the copy is done, so it
//!   may grow meanwhile. In rollback-journal mode the read transaction holds a shared lock
//!   from the pin until that database's copy is done, so a writer's commit waits for it
//!   (within the writer's own busy timeout); databases are copied one after another, so the
//!   wait includes the copies of the databases before it.
//! - Databases are pinned one after another, within a few milliseconds: two databases that
//!   an app updates together are each consistent, but not necessarily with each other.
//!
//! The database is opened as any SQLite client opens it (read-write, never created). So
//! SQLite may do what it does on any open: roll back a crashed transaction's hot journal, or
//! checkpoint the WAL when the snapshot's connection is the last one to close.

use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rusqlite::backup::{Backup, StepResult};
use rusqlite::{Connection, ErrorCode, OpenFlags};

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

fn sqlite_err(path: &Path) -> impl FnOnce(rusqlite::Error) -> Error {
    let path = path.to_owned();
    move |sqlite| Error::Sqlite { path, sqlite }
}

/// A live database held at one instant: a read transaction is open on it, so a later
/// [`Pinned::copy_to`] copies the database as it was when [`pin`] returned.
pub(crate) struct Pinned {
    source: PathBuf,
    conn: Connection,
}

/// Opens the live database at `source` and begins a read transaction on it: the instant the
/// snapshot will show.
///
/// Waits at most `busy_timeout` for a writer that holds an exclusive lock (rollback-journal
/// mode only; in WAL mode nothing blocks a reader).
pub(crate) fn pin(source: &Path, busy_timeout: Duration) -> Result<Pinned, Error> {
    let conn = Connection::open_with_flags(
        source,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(sqlite_err(source))?;
    conn.busy_timeout(busy_timeout)
        .map_err(sqlite_err(source))?;
    let started = Instant::now();
    conn.execute_batch("BEGIN").map_err(sqlite_err(source))?;
    // In a transaction, the first read starts the read transaction, which then lasts until
    // the transaction ends; the backup API copies inside it rather than starting its own.
    match conn.query_row("SELECT count(*) FROM sqlite_schema", [], |row| {
        row.get::<_, i64>(0)
    }) {
        Ok(_) => Ok(Pinned {
            source: source.to_owned(),
            conn,
        }),
        Err(rusqlite::Error::SqliteFailure(err, _))
            if matches!(
                err.code,
                ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked
            ) =>
        {
            Err(Error::SqliteBusy {
                path: source.to_owned(),
                waited: started.elapsed(),
            })
        }
        Err(err) => Err(sqlite_err(source)(err)),
    }
}

impl Pinned {
    /// Copies the database as of the pin into a new database file at `dest`, then ends the
    /// read transaction.
    pub(crate) fn copy_to(self, dest: &Path) -> Result<(), Error> {
        let Pinned { source, conn: src } = self;
        let source = source.as_path();
        let mut dst = Connection::open(dest).map_err(sqlite_err(dest))?;
        // The snapshot is a scratch file: the archive it goes into is what gets fsynced.
        dst.execute_batch("PRAGMA journal_mode=OFF; PRAGMA synchronous=OFF;")
            .map_err(sqlite_err(dest))?;
        {
            let backup = Backup::new(&src, &mut dst).map_err(sqlite_err(source))?;
            // -1: every page in one step. The read transaction is already open, so the copy
            // is of the pinned instant whatever happens meanwhile, and never restarts.
            loop {
                match backup.step(-1).map_err(sqlite_err(source))? {
                    StepResult::Done => break,
                    StepResult::More => {}
                    // Only a lock on the destination, a scratch file nobody else opens, could
                    // cause these; and `StepResult` is non-exhaustive. Try again shortly.
                    _ => std::thread::sleep(Duration::from_millis(10)),
                }
            }
        }
        dst.close().map_err(|(_, err)| Error::Sqlite {
            path: dest.to_owned(),
            sqlite: err,
        })?;
        // Ends the read transaction (it wrote nothing, so this rolls nothing back).
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
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Pins a database of 3 rows in `mode`, has another connection try to commit a fourth
    /// row (without waiting for locks), copies the pinned database, and describes what the
    /// writer saw and what the copy and the live database hold.
    fn check(mode: &str) -> String {
        let tmp = tempfile::tempdir().unwrap();
        let live = tmp.path().join("live.db");
        let writer = Connection::open(&live).unwrap();
        writer.busy_timeout(Duration::ZERO).unwrap();
        writer
            .execute_batch(&format!(
                "PRAGMA journal_mode={mode}; CREATE TABLE t (v); INSERT INTO t VALUES (1), (2), (3);"
            ))
            .unwrap();
        let pinned = pin(&live, Duration::from_secs(1)).unwrap();
        let write = match writer.execute("INSERT INTO t VALUES (4)", []) {
            Ok(_) => "committed".to_owned(),
            Err(err) => format!("refused ({:?})", err.sqlite_error_code()),
        };
        let copy = tmp.path().join("copy.db");
        pinned.copy_to(&copy).unwrap();
        let count = |db: &Path| -> i64 {
            Connection::open(db)
                .unwrap()
                .query_row("SELECT count(*) FROM t", [], |r| r.get(0))
                .unwrap()
        };
        format!(
            "write while pinned: {write}; copy: {} rows; live: {} rows",
            count(&copy),
            count(&live)
        )
    }

    #[test]
    fn a_snapshot_is_the_database_as_of_the_pin() {
        // WAL: the writer goes on; the copy, made after its commit, does not hold it.
        insta::assert_snapshot!(check("WAL"), @"write while pinned: committed; copy: 3 rows; live: 4 rows");
        // Rollback journal: the pin's shared lock makes the writer's commit wait (here: fail
        // at once, as its busy timeout is zero).
        insta::assert_snapshot!(check("DELETE"), @"write while pinned: refused (Some(DatabaseBusy)); copy: 3 rows; live: 3 rows");
    }
}
