//! `Fleet::backup`: a consistent archive of an instance's data directory, recorded with
//! what ran when it was taken; `Fleet::backups` lists them.

use std::collections::BTreeMap;
use std::io::Read as _;
use std::path::Path;

use sha2::Digest as _;

use super::Fleet;
use crate::engine::ContainerState;
use crate::error::Error;
use crate::name::InstanceName;
use crate::store::{InstanceRecord, NewBackup};
use crate::view::{Backup, BackupReason};

impl Fleet {
    /// Archives the instance's data directory under `<state dir>/backups/<name>/`
    /// (SQLite databases as consistent snapshots while the app writes them), holding the
    /// instance's lease, and records the archive with the image, tag, digest,
    /// generation and app version (when its health answer reports one) of that moment.
    /// The archive is private to the state directory's owner (0600).
    pub async fn backup(&self, name: &InstanceName, reason: BackupReason) -> Result<Backup, Error> {
        self.with_lease(name, "backup", async || {
            let record = self.record(name)?;
            let version = self.running_version(&record).await;
            let data_dir = self.data_dir(&record.spec);
            let destination = self.dirs.backups(name);
            self.dirs.create_dir(&destination)?;
            let image = record.spec.image.image().name();
            let mut options = fleet_backup::CreateOptions::new(
                fleet_backup::BackupName::new(name.as_str()).map_err(|source| Error::Backup {
                    instance: name.to_string(),
                    source,
                })?,
            );
            options.metadata = BTreeMap::from([
                ("instance".to_owned(), name.to_string()),
                ("reason".to_owned(), reason.to_string()),
                ("image".to_owned(), image.clone()),
            ]);
            if let Some(digest) = &record.digest {
                options
                    .metadata
                    .insert("digest".to_owned(), digest.to_string());
            }
            if let Some(tag) = &record.tag {
                options.metadata.insert("tag".to_owned(), tag.clone());
            }
            let (archive, sha256) = tokio::task::spawn_blocking(move || {
                let archive = fleet_backup::create(&data_dir, &destination, &options, &mut |_| {})?;
                let sha256 = file_sha256(&archive.path).map_err(|source| fleet_backup::Error::Io {
                    path: archive.path.clone(),
                    source,
                });
                Ok::<_, fleet_backup::Error>((archive, sha256))
            })
            .await
            .map_err(|join| Error::Io {
                path: self.dirs.backups(name),
                source: std::io::Error::other(join),
            })?
            .map_err(|source| Error::Backup {
                instance: name.to_string(),
                source,
            })?;
            // An archive that cannot be hashed, made private or recorded is not left
            // behind unrecorded.
            let recorded = sha256
                .map_err(|source| Error::Backup {
                    instance: name.to_string(),
                    source,
                })
                .and_then(|sha256| {
                    crate::store::private::restrict(&archive.path).map_err(|source| Error::Io {
                        path: archive.path.clone(),
                        source,
                    })?;
                    self.store.insert_backup(&NewBackup {
                        instance: name,
                        path: &archive.path,
                        size: archive.archive_bytes,
                        sha256: &sha256,
                        files: archive.summary.files,
                        reason,
                        image: &image,
                        tag: record.tag.as_deref(),
                        digest: record.digest.as_ref(),
                        generation: record.generation,
                        version: version.as_deref(),
                    })
                });
            let backup = match recorded {
                Ok(backup) => backup,
                Err(error) => {
                    let _ = std::fs::remove_file(&archive.path);
                    return Err(error);
                }
            };
            self.prune(name, false)?;
            Ok(backup)
        })
        .await
    }

    /// Applies the retention of `[backup]` in `config.toml` to the instance's backups:
    /// keeps the newest `keep_last` (and, with `keep_within`, none older than that; the
    /// newest always), deletes the other archives and their records. Returns what was
    /// (with `dry_run`, what would be) deleted, oldest first. Holds the instance's lease.
    pub async fn prune_backups(
        &self,
        name: &InstanceName,
        dry_run: bool,
    ) -> Result<Vec<Backup>, Error> {
        self.with_lease(name, "prune backups", async || self.prune(name, dry_run))
            .await
    }

    /// [`prune_backups`](Self::prune_backups) under a lease the caller holds.
    fn prune(&self, name: &InstanceName, dry_run: bool) -> Result<Vec<Backup>, Error> {
        let retention = &self.config.backup;
        let mut policy = fleet_backup::RetentionPolicy::keep_last(retention.keep_last);
        if let Some(age) = retention.keep_within {
            policy = policy.with_max_age(
                jiff::SignedDuration::try_from(age).unwrap_or(jiff::SignedDuration::MAX),
            );
        }
        // fleet-backup decides by the time in each archive's name, as its own prune does.
        let backups = self.store.backups(name)?;
        let named: Vec<(fleet_backup::ArchiveName, Backup)> = backups
            .into_iter()
            .filter_map(|backup| {
                let file_name = backup.path.file_name()?.to_str()?;
                Some((fleet_backup::ArchiveName::parse(file_name)?, backup))
            })
            .collect();
        let names: Vec<fleet_backup::ArchiveName> =
            named.iter().map(|(archive, _)| archive.clone()).collect();
        let expired: Vec<Backup> = policy
            .expired(&names, jiff::Timestamp::now())
            .into_iter()
            .filter_map(|archive| {
                named
                    .iter()
                    .find(|(name, _)| *name == archive)
                    .map(|(_, backup)| backup.clone())
            })
            .collect();
        if dry_run {
            return Ok(expired);
        }
        for backup in &expired {
            match std::fs::remove_file(&backup.path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(source) => {
                    return Err(Error::Io {
                        path: backup.path.clone(),
                        source,
                    });
                }
            }
            self.store.delete_backup(backup.id)?;
        }
        Ok(expired)
    }

    /// The instance's backups, newest first.
    pub fn backups(&self, name: &InstanceName) -> Result<Vec<Backup>, Error> {
        self.record(name)?;
        self.store.backups(name)
    }

    /// The version the instance's health answer reports now, if it runs and says.
    async fn running_version(&self, record: &InstanceRecord) -> Option<String> {
        let health = record.spec.health.as_ref()?;
        let info = self.inspect(record.container_id.as_deref()?).await.ok()??;
        if info.state != ContainerState::Running {
            return None;
        }
        let target = self.health_target(&record.spec, &info).ok()?;
        self.prober
            .probe(&target, health.policy.timeout)
            .await
            .version
    }
}

/// The SHA-256 of a file, in lowercase hex (what `sha256sum` prints).
fn file_sha256(path: &Path) -> std::io::Result<String> {
    let mut file = std::fs::File::open(path)?;
    let mut hasher = sha2::Sha256::new();
    let mut buffer = vec![0; 1 << 20];
    loop {
        let read = file.read(&mut buffer)?;
        if read == 0 {
            break;
        }
        hasher.update(&buffer[..read]);
    }
    Ok(hex::encode(hasher.finalize()))
}
