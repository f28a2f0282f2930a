//! Backup rows: each archive of an instance's data directory, and what ran when it was
//! taken.

use std::path::PathBuf;

use rusqlite::{Row, params};

use super::{Store, now_ms, timestamp};
use crate::error::Error;
use crate::name::InstanceName;
use crate::view::{Backup, BackupReason};

const COLUMNS: &str = "id, instance, path, created_at, bytes, digest, sha256, files, reason, image, tag, generation, version, remote";

fn from_row(row: &Row<'_>) -> rusqlite::Result<Backup> {
    let conversion = |index: usize, e: Box<dyn std::error::Error + Send + Sync>| {
        rusqlite::Error::FromSqlConversionFailure(index, rusqlite::types::Type::Text, e)
    };
    let instance: String = row.get(1)?;
    let path: String = row.get(2)?;
    let digest: Option<String> = row.get(5)?;
    let reason: String = row.get(8)?;
    Ok(Backup {
        id: row.get(0)?,
        instance: instance.parse().map_err(|e| conversion(1, Box::new(e)))?,
        path: PathBuf::from(path),
        created_at: timestamp(row.get(3)?),
        size: row.get::<_, i64>(4)? as u64,
        digest: digest
            .map(|d| d.parse())
            .transpose()
            .map_err(|e| conversion(5, Box::new(e)))?,
        sha256: row.get::<_, Option<String>>(6)?.unwrap_or_default(),
        files: row.get::<_, i64>(7)? as u64,
        reason: reason.parse().map_err(|e| conversion(8, Box::new(e)))?,
        image: row.get::<_, Option<String>>(9)?.unwrap_or_default(),
        tag: row.get(10)?,
        generation: row.get::<_, i64>(11)? as u64,
        version: row.get(12)?,
        remote: row.get(13)?,
    })
}

/// A backup to record (its id and time are the store's).
pub(crate) struct NewBackup<'a> {
    pub(crate) instance: &'a InstanceName,
    pub(crate) path: &'a std::path::Path,
    pub(crate) size: u64,
    pub(crate) sha256: &'a str,
    pub(crate) files: u64,
    pub(crate) reason: BackupReason,
    pub(crate) image: &'a str,
    pub(crate) tag: Option<&'a str>,
    pub(crate) digest: Option<&'a fleet_registry::Digest>,
    pub(crate) generation: u64,
    pub(crate) version: Option<&'a str>,
}

impl Store {
    /// Records a backup; returns it as stored.
    pub(crate) fn insert_backup(&self, backup: &NewBackup<'_>) -> Result<Backup, Error> {
        let id = self.write("record backup", |tx| {
            tx.execute(
                "INSERT INTO backups (instance, path, created_at, bytes, digest, sha256, files, reason, image, tag, generation, version)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
                params![
                    backup.instance.as_str(),
                    backup.path.to_string_lossy(),
                    now_ms(),
                    backup.size as i64,
                    backup.digest.map(fleet_registry::Digest::as_str),
                    backup.sha256,
                    backup.files as i64,
                    backup.reason.to_string(),
                    backup.image,
                    backup.tag,
                    backup.generation as i64,
                    backup.version,
                ],
            )
            .map_err(|e| self.error("record backup", e))?;
            Ok(tx.last_insert_rowid())
        })?;
        self.read("read backup", |c| {
            c.query_row(
                &format!("SELECT {COLUMNS} FROM backups WHERE id = ?1"),
                [id],
                from_row,
            )
        })
    }

    /// Records that a backup has a verified off-host copy under `key` (or, with `None`,
    /// no longer has one).
    pub(crate) fn set_backup_remote(&self, id: i64, key: Option<&str>) -> Result<(), Error> {
        self.write("record off-host copy", |tx| {
            tx.execute(
                "UPDATE backups SET remote = ?2 WHERE id = ?1",
                params![id, key],
            )
            .map_err(|e| self.error("record off-host copy", e))?;
            Ok(())
        })
    }

    /// Forgets a backup (its archive was deleted).
    pub(crate) fn delete_backup(&self, id: i64) -> Result<(), Error> {
        self.write("delete backup", |tx| {
            tx.execute("DELETE FROM backups WHERE id = ?1", [id])
                .map_err(|e| self.error("delete backup", e))?;
            Ok(())
        })
    }

    /// The backups of `instance`, newest first.
    pub(crate) fn backups(&self, instance: &InstanceName) -> Result<Vec<Backup>, Error> {
        self.read("list backups", |c| {
            let mut statement = c.prepare(&format!(
                "SELECT {COLUMNS} FROM backups WHERE instance = ?1 ORDER BY created_at DESC, id DESC"
            ))?;
            statement.query_map([instance.as_str()], from_row)?.collect()
        })
    }
}
