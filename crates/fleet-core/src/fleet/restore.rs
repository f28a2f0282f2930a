//! `Fleet::restore`: an instance's data directory from one of its backups (or any
//! archive), verified first, the replaced data kept as a backup, undone when the app
//! does not come back healthy.

use std::path::{Path, PathBuf};
use std::time::Instant;

use super::backup::file_sha256;
use super::{Fleet, OnProgress};
use crate::error::{EngineOperation, Error, engine_error};
use crate::name::InstanceName;
use crate::store::{EventKind, InstanceRecord};
use crate::view::{Backup, BackupReason, Progress, RestoreSource, Restored};

impl Fleet {
    /// Restores the instance's data directory from `source`, holding its lease.
    ///
    /// 1. The archive is checked end to end first (and, for a recorded backup, against
    ///    the SHA-256 recorded when it was taken): a damaged, changed or unsafe archive
    ///    is refused ([`Error::Restore`], [`Error::ArchiveChanged`]) before anything
    ///    changes.
    /// 2. A running instance is stopped: its bind mount keeps pointing at the old
    ///    directory until the container starts again.
    /// 3. The current data is backed up (reason `pre-restore`): restoring that backup
    ///    undoes this restore.
    /// 4. The archive's data is swapped in atomically, and the container started again
    ///    and health-gated.
    /// 5. If it does not become healthy, the previous data is put back and the instance
    ///    started as before; the error ([`Error::RestoreFailed`]) says so.
    ///
    /// A stopped instance stays stopped; only the data changes.
    pub async fn restore(
        &self,
        name: &InstanceName,
        source: &RestoreSource,
        progress: &OnProgress<'_>,
    ) -> Result<Restored, Error> {
        self.with_lease(name, "restore", async || {
            let started = Instant::now();
            let record = self.record(name)?;
            let (archive, backup) = self.restore_source(name, source).await?;
            // A backup whose archive is not on this host comes from its off-host copy,
            // downloaded and verified (deleted again when the restore ends).
            let local = match &backup {
                Some(backup) => Some(self.local_archive(backup).await?),
                None => None,
            };
            let archive = local.as_ref().map_or(archive, |l| l.path().to_owned());
            progress(Progress::Verifying {
                archive: archive.clone(),
            });
            self.check_archive(name, &archive, backup.as_ref()).await?;

            let running = self.running_container(&record).await?;
            let down = Instant::now();
            if let Some(container) = &running {
                progress(Progress::Stopping {
                    instance: name.to_string(),
                });
                self.engine
                    .stop_container(container, self.config.stop_grace)
                    .await
                    .map_err(engine_error(EngineOperation::StopContainer, container))?;
            }
            // From here on, a failure starts the instance again as it was.
            let swapped = self.swap_in(&record, &archive, progress).await;
            let (pre_restore, files, previous) = match swapped {
                Ok(swapped) => swapped,
                Err(error) => {
                    if let Some(container) = &running {
                        self.start_and_gate(&record.spec, container, true, progress)
                            .await?;
                    }
                    return Err(error);
                }
            };
            if let Some(container) = &running
                && let Err(error) = self
                    .start_and_gate(&record.spec, container, true, progress)
                    .await
            {
                return Err(self
                    .undo_restore(&record, container, previous, &error, progress)
                    .await);
            }
            let downtime_ms = if running.is_some() {
                super::backup::millis(down.elapsed())
            } else {
                0
            };
            // The replaced data is kept as the pre-restore backup.
            if let Some(previous) = previous {
                let path = previous.path().to_owned();
                if let Err(error) = previous.remove() {
                    tracing::warn!(
                        "cannot remove the replaced data at {} (it is also in backup {}): {error}",
                        path.display(),
                        pre_restore.id
                    );
                }
            }
            self.store.record_event(
                Some(name.as_str()),
                EventKind::Restored,
                &format!(
                    "restored {}; the replaced data is backup {}",
                    archive.display(),
                    pre_restore.id
                ),
            )?;
            Ok(Restored {
                instance: name.clone(),
                archive,
                backup,
                pre_restore,
                files,
                restarted: running.is_some(),
                downtime_ms,
                duration_ms: super::backup::millis(started.elapsed()),
            })
        })
        .await
    }

    /// The archive a source names, and the backup when it is one of the instance's
    /// (here or, with `[backup.remote]`, only off-host: `latest` may be one, and a
    /// remote-only backup is named by its archive's file name).
    async fn restore_source(
        &self,
        name: &InstanceName,
        source: &RestoreSource,
    ) -> Result<(PathBuf, Option<Backup>), Error> {
        let backups = self.all_backups(name).await?;
        let backup = match source {
            RestoreSource::Latest => backups.into_iter().next(),
            RestoreSource::Id(id) => backups
                .into_iter()
                .find(|backup| backup.id == *id && !backup.is_remote_only()),
            RestoreSource::Path(path) if !path.exists() && path.components().count() == 1 => {
                let wanted = path.as_os_str();
                backups.into_iter().find(|backup| {
                    backup.path.file_name() == Some(wanted)
                        || backup
                            .remote
                            .as_deref()
                            .and_then(|key| key.rsplit('/').next())
                            .is_some_and(|file| std::ffi::OsStr::new(file) == wanted)
                })
            }
            RestoreSource::Path(path) => {
                let path = std::path::absolute(path).map_err(|source| Error::Io {
                    path: path.clone(),
                    source,
                })?;
                let recorded = backups.into_iter().find(|backup| backup.path == path);
                return Ok((path, recorded));
            }
        };
        let backup = backup.ok_or_else(|| Error::NoSuchBackup {
            instance: name.to_string(),
            id: match source {
                RestoreSource::Id(id) => Some(*id),
                _ => None,
            },
        })?;
        Ok((backup.path.clone(), Some(backup)))
    }

    /// Puts `backup`'s data in place of the (stopped) instance's, verified first;
    /// returns the replaced data, kept until the caller removes or puts it back.
    pub(super) async fn swap_in_backup(
        &self,
        record: &InstanceRecord,
        backup: &Backup,
        progress: &OnProgress<'_>,
    ) -> Result<Option<fleet_backup::PreviousData>, Error> {
        let name = &record.spec.name;
        let local = self.local_archive(backup).await?;
        let archive = local.path().to_owned();
        progress(Progress::Verifying {
            archive: archive.clone(),
        });
        self.check_archive(name, &archive, Some(backup)).await?;
        progress(Progress::Restoring {
            instance: name.to_string(),
            archive: archive.clone(),
        });
        let data_dir = self.data_dir(&record.spec);
        let outcome = tokio::task::spawn_blocking(move || {
            fleet_backup::restore(&archive, &data_dir, &mut |_| {})
        })
        .await
        .map_err(|join| Error::Io {
            path: self.data_dir(&record.spec),
            source: std::io::Error::other(join),
        })?
        .map_err(|source| Error::Restore {
            instance: name.to_string(),
            source,
        })?;
        drop(local);
        Ok(outcome.previous)
    }

    /// Refuses an archive that changed since it was recorded, or that is damaged or
    /// unsafe anywhere.
    async fn check_archive(
        &self,
        name: &InstanceName,
        archive: &Path,
        backup: Option<&Backup>,
    ) -> Result<(), Error> {
        let archive = archive.to_owned();
        let expected = backup.map(|backup| backup.sha256.clone());
        let instance = name.to_string();
        tokio::task::spawn_blocking(move || {
            if let Some(expected) = expected {
                let actual = file_sha256(&archive).map_err(|source| Error::Restore {
                    instance: instance.clone(),
                    source: fleet_backup::Error::Io {
                        path: archive.clone(),
                        source,
                    },
                })?;
                if actual != expected {
                    return Err(Error::ArchiveChanged {
                        path: archive,
                        expected,
                        actual,
                    });
                }
            }
            fleet_backup::verify(&archive, &mut |_| {})
                .map(drop)
                .map_err(|source| Error::Restore { instance, source })
        })
        .await
        .map_err(|join| Error::Io {
            path: self.dirs.backups(name),
            source: std::io::Error::other(join),
        })?
    }

    /// Backs up the (stopped) instance's data as `pre-restore`, then swaps the archive's
    /// data in. Returns the pre-restore backup, the files restored and the replaced data.
    async fn swap_in(
        &self,
        record: &InstanceRecord,
        archive: &Path,
        progress: &OnProgress<'_>,
    ) -> Result<(Backup, u64, Option<fleet_backup::PreviousData>), Error> {
        let name = &record.spec.name;
        // Stopped, the data is quiescent: no consistency hook runs.
        let pre_restore = self
            .take_backup(record, BackupReason::PreRestore, progress)
            .await?
            .backup;
        progress(Progress::Restoring {
            instance: name.to_string(),
            archive: archive.to_owned(),
        });
        let data_dir = self.data_dir(&record.spec);
        let archive = archive.to_owned();
        let outcome = tokio::task::spawn_blocking(move || {
            fleet_backup::restore(&archive, &data_dir, &mut |_| {})
        })
        .await
        .map_err(|join| Error::Io {
            path: self.data_dir(&record.spec),
            source: std::io::Error::other(join),
        })?
        .map_err(|source| Error::Restore {
            instance: name.to_string(),
            source,
        })?;
        Ok((pre_restore, outcome.summary.files, outcome.previous))
    }

    /// The restored instance did not come back: stop it, put the previous data back,
    /// start it as before. Returns the error to report.
    async fn undo_restore(
        &self,
        record: &InstanceRecord,
        container: &str,
        previous: Option<fleet_backup::PreviousData>,
        error: &Error,
        progress: &OnProgress<'_>,
    ) -> Error {
        let name = &record.spec.name;
        let reason = crate::error::error_chain(error);
        progress(Progress::RollingBack {
            instance: name.to_string(),
            reason: "the restored instance did not become healthy".into(),
        });
        let failed = |outcome: String| Error::RestoreFailed {
            instance: name.to_string(),
            reason: reason.clone(),
            outcome,
        };
        if let Err(stop) = self
            .engine
            .stop_container(container, self.config.stop_grace)
            .await
        {
            return failed(format!(
                "it could not be stopped to put the previous data back ({stop}); the previous data is in its pre-restore backup"
            ));
        }
        let put_back = match previous {
            Some(previous) => tokio::task::spawn_blocking(move || previous.put_back())
                .await
                .map_err(|join| join.to_string())
                .and_then(|done| done.map_err(|e| e.to_string())),
            // There was no data directory before: nothing to put back.
            None => Ok(()),
        };
        if let Err(put_back) = put_back {
            return failed(format!(
                "putting the previous data back failed ({put_back}); it is in its pre-restore backup"
            ));
        }
        let _ = self.store.record_event(
            Some(name.as_str()),
            EventKind::Restored,
            "restore undone: the restored instance did not become healthy",
        );
        match self
            .start_and_gate(&record.spec, container, true, progress)
            .await
        {
            Ok(()) => failed("its previous data is back and it runs as before".into()),
            Err(again) => failed(format!(
                "its previous data is back, but it did not start again either: {again}"
            )),
        }
    }
}
