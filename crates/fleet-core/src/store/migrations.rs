//! Numbered schema migrations, applied in order through `PRAGMA user_version`.
//!
//! Never edit a migration that has shipped: add a new one. A store written by a newer
//! fleet (a higher version than [`SCHEMA_VERSION`]) is refused rather than misread.

use std::path::Path;

use rusqlite::{Connection, TransactionBehavior};

use crate::error::Error;

/// Migration `n` (1-based) brings the schema from version `n - 1` to `n`.
const MIGRATIONS: &[&str] = &[
    // 1: instances, their ports, and events.
    "CREATE TABLE instances (
        name TEXT PRIMARY KEY,
        spec TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        updated_at INTEGER NOT NULL,
        generation INTEGER NOT NULL DEFAULT 0,
        tag TEXT,
        digest TEXT,
        container_id TEXT,
        desired TEXT NOT NULL DEFAULT 'running'
    );
    CREATE TABLE ports (
        port INTEGER PRIMARY KEY,
        instance TEXT NOT NULL REFERENCES instances(name) ON DELETE CASCADE,
        container_port INTEGER NOT NULL,
        allocated_at INTEGER NOT NULL,
        UNIQUE (instance, container_port)
    );
    CREATE TABLE events (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        at INTEGER NOT NULL,
        instance TEXT,
        kind TEXT NOT NULL,
        message TEXT NOT NULL
    );
    CREATE INDEX events_by_instance ON events (instance, id);",
    // 2: the store's scope id, per-instance leases, deployments and backups, event data,
    //    and the last health seen (to record health changes).
    "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
    INSERT INTO meta (key, value) VALUES ('scope', lower(hex(randomblob(6))));
    CREATE TABLE leases (
        instance TEXT PRIMARY KEY,
        owner TEXT NOT NULL,
        operation TEXT NOT NULL,
        acquired_at INTEGER NOT NULL,
        expires_at INTEGER NOT NULL
    );
    CREATE TABLE deployments (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        instance TEXT NOT NULL,
        generation INTEGER NOT NULL,
        from_digest TEXT,
        to_digest TEXT NOT NULL,
        to_tag TEXT,
        state TEXT NOT NULL,
        steps TEXT NOT NULL DEFAULT '[]',
        started_at INTEGER NOT NULL,
        finished_at INTEGER
    );
    CREATE INDEX deployments_by_instance ON deployments (instance, id);
    CREATE TABLE backups (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        instance TEXT NOT NULL,
        path TEXT NOT NULL UNIQUE,
        created_at INTEGER NOT NULL,
        bytes INTEGER NOT NULL,
        digest TEXT
    );
    ALTER TABLE events ADD COLUMN data TEXT;
    ALTER TABLE instances ADD COLUMN last_health TEXT;",
    // 3: whether fleet created the instance's data directory (and so may delete it).
    "ALTER TABLE instances ADD COLUMN data_dir_created INTEGER NOT NULL DEFAULT 0;",
    // 4: what a backup holds and what ran when it was taken.
    "ALTER TABLE backups ADD COLUMN sha256 TEXT;
    ALTER TABLE backups ADD COLUMN files INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE backups ADD COLUMN reason TEXT NOT NULL DEFAULT 'manual';
    ALTER TABLE backups ADD COLUMN image TEXT;
    ALTER TABLE backups ADD COLUMN tag TEXT;
    ALTER TABLE backups ADD COLUMN generation INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE backups ADD COLUMN version TEXT;",
    // 5: the key of a backup's off-host copy, once it is verified there.
    "ALTER TABLE backups ADD COLUMN remote TEXT;",
    // 6: deployments as updates journal them. Version 2's table was never written.
    "DROP TABLE deployments;
    CREATE TABLE deployments (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        instance TEXT NOT NULL,
        kind TEXT NOT NULL,
        strategy TEXT NOT NULL,
        started_at INTEGER NOT NULL,
        finished_at INTEGER,
        step TEXT NOT NULL,
        outcome TEXT NOT NULL,
        reason TEXT,
        from_tag TEXT,
        from_digest TEXT,
        from_version TEXT,
        from_generation INTEGER NOT NULL,
        from_container TEXT,
        to_tag TEXT,
        to_digest TEXT NOT NULL,
        to_version TEXT,
        to_generation INTEGER NOT NULL,
        to_container TEXT,
        backup_id INTEGER,
        restores_backup INTEGER,
        spec TEXT,
        downtime_ms INTEGER,
        steps TEXT NOT NULL DEFAULT '[]'
    );
    CREATE INDEX deployments_by_instance ON deployments (instance, id);",
    // 7: the routes of `fleet serve`'s proxy: a host port (and host name, on the shared
    //    port) to the serving container.
    "CREATE TABLE routes (
        name TEXT PRIMARY KEY,
        instance TEXT NOT NULL,
        host_port INTEGER NOT NULL,
        host TEXT,
        container_port INTEGER NOT NULL,
        backend TEXT NOT NULL,
        updated_at INTEGER NOT NULL,
        UNIQUE (host_port, host)
    );
    CREATE INDEX routes_by_instance ON routes (instance);",
];

/// The schema version this build writes.
pub const SCHEMA_VERSION: u32 = MIGRATIONS.len() as u32;

/// Applies the pending migrations in one transaction.
pub(super) fn migrate(connection: &mut Connection, path: &Path) -> Result<(), Error> {
    let fail = |context: String| {
        let path = path.to_owned();
        move |source| Error::Store {
            path,
            context,
            source,
        }
    };
    // IMMEDIATE: two processes opening a new store at once must not both migrate it.
    let transaction = connection
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(fail("begin the migration".into()))?;
    let found: u32 = transaction
        .query_row("PRAGMA user_version", [], |row| row.get(0))
        .map_err(fail("read the schema version".into()))?;
    if found > SCHEMA_VERSION {
        return Err(Error::StoreTooNew {
            path: path.to_owned(),
            found,
            supported: SCHEMA_VERSION,
        });
    }
    for (index, sql) in MIGRATIONS.iter().enumerate().skip(found as usize) {
        let version = index + 1;
        transaction
            .execute_batch(sql)
            .map_err(fail(format!("migrate the schema to version {version}")))?;
        transaction
            .pragma_update(None, "user_version", version as i64)
            .map_err(fail(format!("record schema version {version}")))?;
    }
    transaction
        .commit()
        .map_err(fail("commit the migration".into()))
}

pub(super) fn scope(connection: &Connection) -> rusqlite::Result<String> {
    connection.query_row("SELECT value FROM meta WHERE key = 'scope'", [], |row| {
        row.get(0)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Store;

    #[test]
    fn a_version_1_store_opens_and_migrates_keeping_its_data() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("fleet.db");
        {
            let connection = Connection::open(&path).unwrap();
            connection.execute_batch(MIGRATIONS[0]).unwrap();
            connection.pragma_update(None, "user_version", 1).unwrap();
            connection
                .execute(
                    "INSERT INTO instances (name, spec, created_at, updated_at) VALUES ('old', ?1, 1, 1)",
                    [r#"{"name":"old","image":"docker.io/library/nginx:latest"}"#],
                )
                .unwrap();
            connection
                .execute("INSERT INTO ports (port, instance, container_port, allocated_at) VALUES (5001, 'old', 80, 1)", [])
                .unwrap();
        }
        let store = Store::open(&path).unwrap();
        let version: u32 = store
            .read("version", |c| {
                c.query_row("PRAGMA user_version", [], |r| r.get(0))
            })
            .unwrap();
        assert_eq!(version, SCHEMA_VERSION);
        let old = store
            .instance(&"old".parse().unwrap())
            .unwrap()
            .expect("the old instance survives");
        assert_eq!(old.spec.image.to_string(), "docker.io/library/nginx:latest");
        assert_eq!(store.ports().unwrap()[0].host, 5001);
        assert_eq!(store.scope().len(), 12);
        // Opening again is a no-op and keeps the scope.
        let scope = store.scope().to_owned();
        drop(store);
        assert_eq!(Store::open(&path).unwrap().scope(), scope);
    }

    #[test]
    fn a_store_from_a_newer_fleet_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("fleet.db");
        Connection::open(&path)
            .unwrap()
            .pragma_update(None, "user_version", 99)
            .unwrap();
        let error = Store::open(&path).unwrap_err().to_string();
        assert!(
            error.contains("schema version 99, newer than this fleet understands"),
            "{error}"
        );
    }
}
