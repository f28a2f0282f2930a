//! The state store: one SQLite file holding instances, port allocations, leases,
//! deployments, backups and events.
//!
//! The file is opened in WAL mode with a busy timeout, so several `fleet` processes can
//! use it at once; every write runs in a `BEGIN IMMEDIATE` transaction, so two writers
//! never interleave. Schema changes are numbered migrations (`PRAGMA user_version`),
//! applied in order inside one transaction when the store opens.
//!
//! The store holds secrets (instances' environment values): its files are 0600. Commands
//! that only read open it with [`Store::open_read_only`], which writes nothing.

mod backups;
mod deployments;
mod events;
mod instances;
mod leases;
mod migrations;
mod open;
mod ports;
pub(crate) mod private;
mod routes;

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags, Transaction, TransactionBehavior};

pub(crate) use backups::NewBackup;
pub(crate) use deployments::{DeploymentRecord, Finished, NewDeployment};
pub use events::{Event, EventKind};
pub(crate) use instances::HealthRecorded;
pub use instances::{DesiredState, InstanceRecord};
pub use leases::Lease;
pub use migrations::SCHEMA_VERSION;
pub use ports::PortAllocation;
pub(crate) use routes::RouteRecord;

use crate::error::Error;

/// How long a writer waits for another process's transaction before failing.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// The SQLite state store. Cheap to share behind an `Arc`; methods are synchronous and
/// short (single transactions on a local file).
#[derive(Debug)]
pub(crate) struct Store {
    path: PathBuf,
    connection: Mutex<Connection>,
    scope: String,
    read_only: bool,
}

impl Store {
    /// Opens the store at `path` for reading and writing, and migrates it to the current
    /// schema. A missing store is created (with its missing directories, 0700), complete
    /// with its scope id, before it appears at `path`. The database and its WAL files are
    /// private to their owner (0600) whatever the umask; existing ones are tightened.
    ///
    /// A file at `path` that holds no fleet (zero bytes, or without fleet's schema) is
    /// refused with [`Error::StoreNotAFleet`]: the containers of the fleet it was are
    /// labelled with that fleet's scope, which a new store would not know.
    pub(crate) fn open(path: &Path) -> Result<Self, Error> {
        let fail = |context: &str| open::store_error(path, context);
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            private::create_dir_all(parent).map_err(|source| Error::Io {
                path: parent.to_owned(),
                source,
            })?;
        }
        restrict_files(path)?;
        if !path.exists() {
            open::create(path)?;
        }
        open::check_writable(path)?;
        // No SQLITE_OPEN_CREATE: the file exists, and a vanished one must not be re-made.
        let mut connection = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE
                | OpenFlags::SQLITE_OPEN_URI
                | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(fail("open"))?;
        connection
            .busy_timeout(BUSY_TIMEOUT)
            .map_err(fail("set the busy timeout"))?;
        // Before anything writes: a file that holds no fleet stays as it is.
        open::check_fleet(&connection, path)?;
        connection
            .pragma_update(None, "journal_mode", "WAL")
            .map_err(fail("enable WAL"))?;
        connection
            .pragma_update(None, "synchronous", "NORMAL")
            .map_err(fail("set synchronous"))?;
        connection
            .pragma_update(None, "foreign_keys", "ON")
            .map_err(fail("enable foreign keys"))?;
        migrations::migrate(&mut connection, path)?;
        let scope = open::scope(&connection, path)?;
        Ok(Self {
            path: path.to_owned(),
            connection: Mutex::new(connection),
            scope,
            read_only: false,
        })
    }

    /// Opens the existing store at `path` for reading only: nothing is created, the
    /// journal mode and schema are left as they are (so it works on a read-only
    /// directory or file system), and every write fails with [`Error::StoreReadOnly`].
    ///
    /// Fails with [`Error::NoFleet`] when there is no store at `path`,
    /// [`Error::StoreNotAFleet`] when the file holds none, and [`Error::StoreOutdated`]
    /// when its schema is older than this build's (opening it with [`Store::open`]
    /// migrates it).
    pub(crate) fn open_read_only(path: &Path) -> Result<Self, Error> {
        match std::fs::metadata(path) {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(Error::NoFleet {
                    path: path
                        .parent()
                        .filter(|p| !p.as_os_str().is_empty())
                        .unwrap_or(path)
                        .to_owned(),
                });
            }
            Err(source) => {
                return Err(Error::Io {
                    path: path.to_owned(),
                    source,
                });
            }
        }
        // Tightening is all the writing a read-only open tries, and it may not be able to.
        let _ = restrict_files(path);
        let connection = open::read_only(path)?;
        connection
            .busy_timeout(BUSY_TIMEOUT)
            .map_err(open::store_error(path, "set the busy timeout"))?;
        let found = open::check_fleet(&connection, path)?;
        if found > SCHEMA_VERSION {
            return Err(Error::StoreTooNew {
                path: path.to_owned(),
                found,
                supported: SCHEMA_VERSION,
            });
        }
        if found < SCHEMA_VERSION {
            return Err(Error::StoreOutdated {
                path: path.to_owned(),
                found,
                supported: SCHEMA_VERSION,
            });
        }
        let scope = open::scope(&connection, path)?;
        Ok(Self {
            path: path.to_owned(),
            connection: Mutex::new(connection),
            scope,
            read_only: true,
        })
    }

    /// Whether the store was opened with [`Store::open_read_only`].
    pub(crate) fn is_read_only(&self) -> bool {
        self.read_only
    }

    /// A random id made when the store was created. Containers carry it as a label, so
    /// that two fleets (two state directories) on one engine never touch each other's.
    pub(crate) fn scope(&self) -> &str {
        &self.scope
    }

    fn error(&self, context: &str, source: rusqlite::Error) -> Error {
        Error::Store {
            path: self.path.clone(),
            context: context.to_owned(),
            source,
        }
    }

    /// Runs `f` on the connection (reads).
    fn read<T>(
        &self,
        context: &str,
        f: impl FnOnce(&Connection) -> rusqlite::Result<T>,
    ) -> Result<T, Error> {
        let connection = self.connection.lock().unwrap_or_else(|e| e.into_inner());
        f(&connection).map_err(|e| self.error(context, e))
    }

    /// Runs `f` in a `BEGIN IMMEDIATE` transaction, committing when it returns `Ok`.
    fn write<T>(
        &self,
        context: &str,
        f: impl FnOnce(&Transaction<'_>) -> Result<T, Error>,
    ) -> Result<T, Error> {
        if self.read_only {
            return Err(Error::StoreReadOnly {
                path: self.path.clone(),
                context: context.to_owned(),
            });
        }
        let mut connection = self.connection.lock().unwrap_or_else(|e| e.into_inner());
        let transaction = connection
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(|e| self.error(context, e))?;
        let value = f(&transaction)?;
        transaction.commit().map_err(|e| self.error(context, e))?;
        Ok(value)
    }
}

/// Removes group and other permissions from the database and its WAL files.
fn restrict_files(path: &Path) -> Result<(), Error> {
    let [wal, shm] = open::wal_files(path);
    for file in [path, &wal, &shm] {
        private::restrict(file).map_err(|source| Error::Io {
            path: file.to_owned(),
            source,
        })?;
    }
    Ok(())
}

/// Milliseconds since the Unix epoch, as stored.
fn now_ms() -> i64 {
    jiff::Timestamp::now().as_millisecond()
}

fn timestamp(ms: i64) -> jiff::Timestamp {
    jiff::Timestamp::from_millisecond(ms).unwrap_or(jiff::Timestamp::UNIX_EPOCH)
}
