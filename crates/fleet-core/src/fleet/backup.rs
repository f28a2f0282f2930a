//! `Fleet::backup`: a consistent archive of an instance's data directory, recorded with
//! what ran when it was taken (after the instance's consistency hook, if it has one);
//! `Fleet::backups` lists them; retention prunes them.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read as _;
use std::path::Path;
use std::time::{Duration, Instant};

use sha2::Digest as _;

use super::{Fleet, OnProgress};
use crate::engine::ContainerState;
use crate::error::{EngineOperation, Error, engine_error};
use crate::name::InstanceName;
use crate::store::{EventKind, InstanceRecord, NewBackup};
use crate::view::{Backup, BackupReason, BackupRun, ExecRun, Progress};

/// How much of a consistency command's output is kept (its end).
const EXEC_OUTPUT_KEPT: usize = 64 * 1024;

impl Fleet {
    /// Archives the instance's data directory under `<state dir>/backups/<name>/`
    /// (SQLite databases as consistent snapshots while the app writes them), holding the
    /// instance's lease, and records the archive with the image, tag, digest,
    /// generation and app version (when its health answer reports one) of that moment.
    /// The archive is private to the state directory's owner (0600). With
    /// `[backup.remote]` it is then copied off-host ([`copy_off_host`](Self::copy_off_host)).
    /// Retention is applied afterwards, here and off-host.
    ///
    /// The instance's `backup` settings run first when it is running: `exec` runs a
    /// command in the container (a non-zero exit fails the backup; the output is kept in
    /// the archive's metadata), `stop` stops it for the copy and starts it again,
    /// health-gated, measuring the downtime.
    pub async fn backup(
        &self,
        name: &InstanceName,
        reason: BackupReason,
    ) -> Result<BackupRun, Error> {
        self.backup_with_progress(name, reason, &|_| {}).await
    }

    /// [`backup`](Self::backup), reporting its steps.
    pub async fn backup_with_progress(
        &self,
        name: &InstanceName,
        reason: BackupReason,
        progress: &OnProgress<'_>,
    ) -> Result<BackupRun, Error> {
        self.with_lease(name, "backup", async || {
            let record = self.record(name)?;
            let mut run = self.take_backup(&record, reason, progress).await?;
            // Off-host once recorded (`[backup.remote]`); a failed copy fails the command,
            // and the local backup stays.
            run.backup = self.copy_recorded_off_host(&run.backup).await?;
            let pruned = self.prune(name, false)?;
            self.prune_off_host(name, false, &pruned).await?;
            Ok(run)
        })
        .await
    }

    /// A backup under the lease the caller holds, with the instance's consistency
    /// settings; no retention.
    pub(super) async fn take_backup(
        &self,
        record: &InstanceRecord,
        reason: BackupReason,
        progress: &OnProgress<'_>,
    ) -> Result<BackupRun, Error> {
        let started = Instant::now();
        let name = &record.spec.name;
        let settings = &record.spec.backup;
        let running = self.running_container(record).await?;
        let version = self.running_version(record).await;
        let mut metadata = BTreeMap::new();
        let mut exec = None;
        if let (Some(command), Some(container)) = (&settings.exec, &running) {
            let run = self
                .run_backup_exec(name, container, command, settings.exec_timeout(), progress)
                .await?;
            metadata.insert("exec.command".to_owned(), command.join(" "));
            if let Some(code) = run.exit_code {
                metadata.insert("exec.exit_code".to_owned(), code.to_string());
            }
            metadata.insert("exec.output".to_owned(), run.output.clone());
            exec = Some(run);
        }
        let stopped = match &running {
            Some(container) if settings.stop => {
                progress(Progress::Stopping {
                    instance: name.to_string(),
                });
                let down = Instant::now();
                self.engine
                    .stop_container(container, self.config.stop_grace)
                    .await
                    .map_err(engine_error(EngineOperation::StopContainer, container))?;
                Some((container, down))
            }
            _ => None,
        };
        progress(Progress::Archiving {
            instance: name.to_string(),
        });
        let archived = self
            .archive(record, reason, metadata, version.as_deref())
            .await;
        let mut downtime_ms = None;
        if let Some((container, down)) = stopped {
            // Started again whatever the archive did: a failed backup must not leave the
            // instance down.
            let restarted = self
                .start_and_gate(&record.spec, container, true, progress)
                .await;
            let downtime = down.elapsed();
            self.store.record_event(
                Some(name.as_str()),
                EventKind::Started,
                &format!(
                    "stopped {:.1}s for a backup (backup.stop)",
                    downtime.as_secs_f64()
                ),
            )?;
            restarted?;
            downtime_ms = Some(millis(downtime));
        }
        let backup = archived?;
        Ok(BackupRun {
            backup,
            exec,
            downtime_ms,
            duration_ms: millis(started.elapsed()),
        })
    }

    /// Runs the instance's `backup.exec` command in its running container.
    async fn run_backup_exec(
        &self,
        name: &InstanceName,
        container: &str,
        command: &[String],
        timeout: Duration,
        progress: &OnProgress<'_>,
    ) -> Result<ExecRun, Error> {
        let joined = command.join(" ");
        progress(Progress::RunningExec {
            instance: name.to_string(),
            command: joined.clone(),
        });
        let failed = |reason: String| Error::BackupExec {
            instance: name.to_string(),
            command: joined.clone(),
            reason,
        };
        let started = Instant::now();
        let output = tokio::time::timeout(timeout, self.engine.exec(container, command))
            .await
            .map_err(|_| {
                failed(format!(
                    "did not finish within {}; no backup was taken (raise backup.exec_timeout if it needs longer)",
                    humantime::format_duration(timeout)
                ))
            })?
            .map_err(engine_error(EngineOperation::Exec, container))?;
        let text = tail(&output.output, EXEC_OUTPUT_KEPT);
        if output.exit_code != Some(0) {
            let code = output
                .exit_code
                .map_or_else(|| "an unknown status".to_owned(), |c| c.to_string());
            let shown = text.trim_end();
            let said = if shown.is_empty() {
                String::new()
            } else {
                format!("; its output:\n{shown}")
            };
            return Err(failed(format!(
                "exited with {code}; no backup was taken{said}"
            )));
        }
        Ok(ExecRun {
            command: command.to_vec(),
            exit_code: output.exit_code,
            output: text.to_owned(),
            duration_ms: millis(started.elapsed()),
        })
    }

    /// The instance's container when it is running.
    pub(super) async fn running_container(
        &self,
        record: &InstanceRecord,
    ) -> Result<Option<String>, Error> {
        let Some(id) = &record.container_id else {
            return Ok(None);
        };
        Ok(self
            .inspect(id)
            .await?
            .filter(|info| info.state == ContainerState::Running)
            .map(|_| id.clone()))
    }

    /// Archives the data directory and records the archive; an archive that cannot be
    /// hashed, made private or recorded is removed again.
    async fn archive(
        &self,
        record: &InstanceRecord,
        reason: BackupReason,
        extra: BTreeMap<String, String>,
        version: Option<&str>,
    ) -> Result<Backup, Error> {
        let name = &record.spec.name;
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
        options.metadata = extra;
        options.metadata.extend([
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
        if let Some(version) = version {
            options
                .metadata
                .insert("version".to_owned(), version.to_owned());
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
        // A recorded backup whose archive is gone from this host (kept off-host) still
        // holds its name: take the next free one.
        let mut archive = archive;
        let recorded_paths: BTreeSet<std::path::PathBuf> = self
            .store
            .backups(name)?
            .into_iter()
            .map(|b| b.path)
            .collect();
        if recorded_paths.contains(&archive.path) {
            let renamed = unrecorded_name(&archive.path, &recorded_paths);
            if let Err(source) = std::fs::rename(&archive.path, &renamed) {
                let _ = std::fs::remove_file(&archive.path);
                return Err(Error::Io {
                    path: renamed,
                    source,
                });
            }
            archive.path = renamed;
        }
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
                    version,
                })
            });
        match recorded {
            Ok(backup) => Ok(backup),
            Err(error) => {
                let _ = std::fs::remove_file(&archive.path);
                Err(error)
            }
        }
    }

    /// Applies the instance's retention to its backups: `backup.keep_last` and
    /// `backup.keep_within` of its spec, else `[backup]` in `config.toml`. Keeps the
    /// newest `keep_last` (and, with `keep_within`, none older than that; the newest
    /// always), and never the pre-update backup a rollback would restore. Deletes the
    /// other archives and their records. Returns what was (with `dry_run`, what would
    /// be) deleted, oldest first. Holds the instance's lease. With `[backup.remote]`, the
    /// same retention applies to the off-host copies; expired copies found only there
    /// come last (id 0).
    pub async fn prune_backups(
        &self,
        name: &InstanceName,
        dry_run: bool,
    ) -> Result<Vec<Backup>, Error> {
        self.with_lease(name, "prune backups", async || {
            // The same retention off-host (`[backup.remote]`): what it expires that is
            // only there is reported too.
            let mut pruned = self.prune(name, dry_run)?;
            let off_host = self.prune_off_host(name, dry_run, &pruned).await?;
            pruned.extend(off_host);
            Ok(pruned)
        })
        .await
    }

    /// [`prune_backups`](Self::prune_backups) under a lease the caller holds.
    pub(super) fn prune(&self, name: &InstanceName, dry_run: bool) -> Result<Vec<Backup>, Error> {
        let record = self.record(name)?;
        let policy = self.retention(&record);
        // fleet-backup decides by the time in each archive's name, as its own prune does.
        let backups = self.store.backups(name)?;
        let protected = self.rollback_reachable(&record, &backups)?;
        let named: Vec<(fleet_backup::ArchiveName, Backup)> = backups
            .into_iter()
            .filter(|backup| !protected.contains(&backup.id))
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

    /// The retention of an instance: its own `backup.keep_*`, else `[backup]`'s.
    pub(super) fn retention(&self, record: &InstanceRecord) -> fleet_backup::RetentionPolicy {
        let own = &record.spec.backup;
        let fleet = &self.config.backup;
        let mut policy =
            fleet_backup::RetentionPolicy::keep_last(own.keep_last.unwrap_or(fleet.keep_last));
        if let Some(age) = own.keep_within.or(fleet.keep_within) {
            policy = policy.with_max_age(
                jiff::SignedDuration::try_from(age).unwrap_or(jiff::SignedDuration::MAX),
            );
        }
        policy
    }

    /// The instance's backups, newest first.
    pub fn backups(&self, name: &InstanceName) -> Result<Vec<Backup>, Error> {
        self.record(name)?;
        self.store.backups(name)
    }

    /// The version the instance's health answer reports now, if it runs and says.
    pub(super) async fn running_version(&self, record: &InstanceRecord) -> Option<String> {
        let info = self.inspect(record.container_id.as_deref()?).await.ok()??;
        if info.state != ContainerState::Running {
            return None;
        }
        self.reported_version(&record.spec, &info).await
    }

    /// The version `container`'s health answer reports now, if it says.
    pub(super) async fn reported_version(
        &self,
        spec: &crate::spec::InstanceSpec,
        container: &crate::engine::ContainerInfo,
    ) -> Option<String> {
        let health = spec.health.as_ref()?;
        let target = self.health_target(spec, container).ok()?;
        self.prober
            .probe(&target, health.policy.timeout)
            .await
            .version
    }
}

impl Fleet {
    /// The backups retention must keep because `fleet rollback --restore-data` may need
    /// them: the pre-update backup of the deployment that runs now (what a rollback
    /// restores), and the newest pre-update backup whatever became of its deployment.
    pub(super) fn rollback_reachable(
        &self,
        record: &InstanceRecord,
        backups: &[Backup],
    ) -> Result<BTreeSet<i64>, Error> {
        let mut keep: BTreeSet<i64> = backups
            .iter()
            .filter(|backup| backup.reason == BackupReason::PreUpdate)
            .max_by_key(|backup| (backup.created_at, backup.id))
            .map(|backup| backup.id)
            .into_iter()
            .collect();
        let current = self
            .store
            .deployments(&record.spec.name)?
            .into_iter()
            .map(|r| r.deployment)
            .find(|d| {
                d.outcome == crate::deployment::Outcome::Updated && d.to.digest == record.digest
            });
        keep.extend(current.and_then(|d| d.backup));
        Ok(keep)
    }
}

/// `alice-20261130-081500_N.tar.zst` for the first `N` that is neither recorded nor on
/// disk.
fn unrecorded_name(path: &Path, recorded: &BTreeSet<std::path::PathBuf>) -> std::path::PathBuf {
    let file = path
        .file_name()
        .and_then(|f| f.to_str())
        .unwrap_or_default();
    let stem = file.strip_suffix(".tar.zst").unwrap_or(file);
    let stem = match stem.rsplit_once('_') {
        Some((base, n)) if n.bytes().all(|b| b.is_ascii_digit()) => base,
        _ => stem,
    };
    (1u32..)
        .map(|n| path.with_file_name(format!("{stem}_{n}.tar.zst")))
        .find(|candidate| !recorded.contains(candidate) && !candidate.exists())
        .unwrap_or_else(|| path.to_owned())
}

/// The end of `text`, at most `limit` bytes, cut at a character boundary.
fn tail(text: &str, limit: usize) -> &str {
    if text.len() <= limit {
        return text;
    }
    let mut start = text.len() - limit;
    while !text.is_char_boundary(start) {
        start += 1;
    }
    &text[start..]
}

pub(super) fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

/// The SHA-256 of a file, in lowercase hex (what `sha256sum` prints).
pub(super) fn file_sha256(path: &Path) -> std::io::Result<String> {
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
