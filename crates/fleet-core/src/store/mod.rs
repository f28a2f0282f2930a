//! The state store: one SQLite file holding instances, port allocations, leases,
//! deployments, backups and events.
//!
//! The file is opened in WAL mode with a busy timeout, so several `fleet` processes can
//! use it at once; every write runs in a `BEGIN IMMEDIATE` transaction, so two writers
//! never interleave. Schema changes are numbered migrations (`PRAGMA user_version`),
//! applied in order inside one transaction when the store opens.

mod events;
mod instances;
mod leases;
mod migrations;
mod ports;

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use rusqlite::{Connection, Transaction, TransactionBehavior};

pub use events::{Event, EventKind};
pub use instances::{DesiredState, InstanceRecord};
pub use leases::Lease;
pub use migrations::SCHEMA_VERSION;
pub use ports::PortAllocation;

use crate::error::Error;

/// How long a writer waits for another process's transaction before failing.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// The SQLite state store. Cheap to share behind an `Arc`; methods are synchronous and
/// short (single transactions on a local file).
#[derive(Debug)]
pub struct Store {
    path: PathBuf,
    connection: Mutex<Connection>,
    scope: String,
}

impl Store {
    /// Opens (creating if needed) the store at `path` and migrates it to the current schema.
    pub fn open(path: &Path) -> Result<Self, Error> {
        let fail = |context: &str| {
            let path = path.to_owned();
            let context = context.to_owned();
            move |source| Error::Store {
                path,
                context,
                source,
            }
        };
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|source| Error::Io {
                path: parent.to_owned(),
                source,
            })?;
        }
        let mut connection = Connection::open(path).map_err(fail("open"))?;
        connection
            .busy_timeout(BUSY_TIMEOUT)
            .map_err(fail("set the busy timeout"))?;
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
        let scope = migrations::scope(&connection).map_err(fail("read the scope id"))?;
        Ok(Self {
            path: path.to_owned(),
            connection: Mutex::new(connection),
            scope,
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// A random id made when the store was created. Containers carry it as a label, so
    /// that two fleets (two state directories) on one engine never touch each other's.
    pub fn scope(&self) -> &str {
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
        let mut connection = self.connection.lock().unwrap_or_else(|e| e.into_inner());
        let transaction = connection
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(|e| self.error(context, e))?;
        let value = f(&transaction)?;
        transaction.commit().map_err(|e| self.error(context, e))?;
        Ok(value)
    }
}

/// Milliseconds since the Unix epoch, as stored.
fn now_ms() -> i64 {
    jiff::Timestamp::now().as_millisecond()
}

fn timestamp(ms: i64) -> jiff::Timestamp {
    jiff::Timestamp::from_millisecond(ms).unwrap_or(jiff::Timestamp::UNIX_EPOCH)
}
