//! The one error type of this crate.

use std::path::PathBuf;

use crate::problem::Problems;

/// Everything that can go wrong while archiving, verifying, restoring or pruning.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Reading or writing a file failed.
    #[error("I/O error on {path}")]
    Io {
        /// The file or directory involved.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A backup name is not usable in an archive file name.
    #[error("invalid backup name {name:?}: {reason}")]
    InvalidName {
        /// The rejected name.
        name: String,
        /// Why it was rejected.
        reason: &'static str,
    },
    /// A compression level outside the supported range.
    #[error("invalid compression level {level}: expected 1 to 19")]
    InvalidLevel {
        /// The rejected level.
        level: i32,
    },
    /// A path that must be a directory is something else.
    #[error("{path} is not a directory")]
    NotADirectory {
        /// The offending path.
        path: PathBuf,
    },
    /// The archive destination lies inside the directory being archived.
    #[error("destination {dest} is inside the source directory {source_dir}")]
    DestinationInsideSource {
        /// The directory being archived.
        source_dir: PathBuf,
        /// The destination directory.
        dest: PathBuf,
    },
    /// A file in the source cannot be represented in an archive that restores safely.
    #[error("cannot archive {path}: {reason}")]
    Unarchivable {
        /// The file, relative to the source directory.
        path: String,
        /// Why it cannot be archived.
        reason: String,
    },
    /// Taking a consistent snapshot of an SQLite database failed.
    #[error("SQLite snapshot of {path} failed: {}", sqlite_message(sqlite))]
    Sqlite {
        /// The database file.
        path: PathBuf,
        /// The SQLite error. Not a `source`: its own cause repeats its message
        /// (`database or disk is full: Error code 13: database or disk is full`).
        sqlite: rusqlite::Error,
    },
    /// An SQLite database stayed locked by a writer longer than the configured timeout.
    #[error("SQLite database {path} stayed locked for {waited:?}")]
    SqliteBusy {
        /// The database file.
        path: PathBuf,
        /// How long the snapshot waited.
        waited: std::time::Duration,
    },
    /// The archive is corrupt, does not match its manifest or holds unsafe entries.
    #[error("archive {archive} failed verification: {problems}")]
    Verification {
        /// The archive file.
        archive: PathBuf,
        /// Every problem found, in the order found.
        problems: Problems,
    },
    /// Swapping the restored data into place failed; `reason` says where each copy is.
    #[error("restore into {target} failed: {reason}")]
    Swap {
        /// The restore target.
        target: PathBuf,
        /// What went wrong, and where the data is now.
        reason: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
}

impl Error {
    pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Error {
        let path = path.into();
        move |source| Error::Io { path, source }
    }
}

/// An SQLite error's message once: rusqlite's `SqliteFailure` says it, and its cause says
/// it again with the code.
fn sqlite_message(error: &rusqlite::Error) -> String {
    match error {
        rusqlite::Error::SqliteFailure(code, Some(message)) => {
            format!("{message} (SQLite code {})", code.extended_code)
        }
        rusqlite::Error::SqliteFailure(code, None) => {
            format!("{code} (SQLite code {})", code.extended_code)
        }
        other => other.to_string(),
    }
}
