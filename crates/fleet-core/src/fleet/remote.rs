//! Off-host copies of an instance's backups in the S3-compatible store `[backup.remote]`
//! names (through `fleet_backup::remote`): copied after each backup is recorded, listed
//! with the local ones (marking those found only there), fetched (verified) for a
//! restore, and pruned by the same retention.
//!
//! An instance's copies are `<prefix>/<instance>/<archive file name>`. Each carries the
//! archive's SHA-256 and what the record holds (reason, image, tag, digest, generation,
//! version, files) as object metadata, so a copy found only remotely — taken on a host
//! since lost, say — lists as the backup it is and is verified before it is restored.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use fleet_backup::remote::{RemoteArchive, RemoteObject, RemoteStore};
use fleet_backup::{ArchiveName, BackupName, Sha256};

use super::Fleet;
use crate::error::Error;
use crate::name::InstanceName;
use crate::view::{Backup, BackupReason};

/// A backup archive downloaded from the remote store into the state directory, verified;
/// deleted when dropped (unless [kept](Self::keep)).
#[derive(Debug)]
pub struct FetchedArchive {
    path: Option<PathBuf>,
}

impl FetchedArchive {
    /// Where it is.
    pub fn path(&self) -> &Path {
        self.path.as_deref().unwrap_or(Path::new(""))
    }

    /// Keeps the file: the caller deletes it.
    pub fn keep(mut self) -> PathBuf {
        self.path.take().unwrap_or_default()
    }
}

impl Drop for FetchedArchive {
    fn drop(&mut self) {
        if let Some(path) = self.path.take() {
            let _ = std::fs::remove_file(&path);
            if let Some(dir) = path.parent() {
                let _ = std::fs::remove_dir(dir);
            }
        }
    }
}

/// A backup's archive on this host: its own file, or a verified download of its
/// off-host copy.
#[derive(Debug)]
pub enum LocalArchive {
    /// The recorded archive file.
    Recorded(PathBuf),
    /// Downloaded from the remote store (deleted when dropped).
    Fetched(FetchedArchive),
}

impl LocalArchive {
    /// Where the archive is.
    pub fn path(&self) -> &Path {
        match self {
            LocalArchive::Recorded(path) => path,
            LocalArchive::Fetched(fetched) => fetched.path(),
        }
    }
}

impl Fleet {
    /// The remote store of `[backup.remote]`, when there is one.
    fn remote_store(&self, name: &InstanceName) -> Result<Option<RemoteStore>, Error> {
        let Some(settings) = &self.config.backup.remote else {
            return Ok(None);
        };
        RemoteStore::new(settings)
            .map(Some)
            .map_err(remote_error(name, "the remote store cannot be used"))
    }

    /// Copies a recorded backup to the remote store of `[backup.remote]` (verified; see
    /// `fleet_backup::remote`) and records its key; returns the backup with `remote`
    /// set. Without `[backup.remote]`, or when it already has a copy, returns it as is.
    /// Holds the instance's lease; [`backup`](Self::backup) does this by itself.
    pub async fn copy_off_host(&self, backup: &Backup) -> Result<Backup, Error> {
        self.with_lease(&backup.instance, "copy backup off-host", async || {
            self.copy_recorded_off_host(backup).await
        })
        .await
    }

    /// [`copy_off_host`](Self::copy_off_host) under a lease the caller holds.
    pub(super) async fn copy_recorded_off_host(&self, backup: &Backup) -> Result<Backup, Error> {
        let name = &backup.instance;
        let Some(remote) = self.remote_store(name)? else {
            return Ok(backup.clone());
        };
        if backup.remote.is_some() || backup.is_remote_only() {
            return Ok(backup.clone());
        }
        let failed = |action: String| remote_error(name, action);
        let expected = parse_sha256(&backup.sha256);
        let copy = remote
            .upload_with_metadata(&backup.path, expected, &metadata(backup))
            .await
            .map_err(failed(format!(
                "cannot copy backup {} off-host; it is kept and recorded here",
                backup.id
            )))?;
        self.store.set_backup_remote(backup.id, Some(&copy.key))?;
        Ok(Backup {
            remote: Some(copy.key),
            ..backup.clone()
        })
    }

    /// The instance's backups here and in the remote store, newest first: the recorded
    /// ones (`remote` set where a copy exists), and those found only remotely (id 0, no
    /// path: [`Backup::is_remote_only`]). Without `[backup.remote]`, the recorded ones.
    pub async fn all_backups(&self, name: &InstanceName) -> Result<Vec<Backup>, Error> {
        let mut backups = self.backups(name)?;
        let Some(remote) = self.remote_store(name)? else {
            return Ok(backups);
        };
        let known: BTreeSet<String> = backups.iter().filter_map(|b| b.remote.clone()).collect();
        let listed = self.list_remote(name, &remote).await?;
        for archive in listed.into_iter().filter(|a| !known.contains(&a.key)) {
            let object = remote.head(&archive.key).await.map_err(remote_error(
                name,
                format!("cannot read off-host backup {}", archive.key),
            ))?;
            backups.push(remote_only(name, &archive, &object));
        }
        backups.sort_by_key(|b| std::cmp::Reverse(taken_order(b)));
        Ok(backups)
    }

    /// The instance's archives in the remote store.
    async fn list_remote(
        &self,
        name: &InstanceName,
        remote: &RemoteStore,
    ) -> Result<Vec<RemoteArchive>, Error> {
        remote.list(&backup_name(name)?).await.map_err(remote_error(
            name,
            "cannot list the off-host backups".to_owned(),
        ))
    }

    /// Downloads a backup's off-host copy into `<state dir>/tmp/`, verified against the
    /// SHA-256 recorded here (or, for one found only remotely, stored with the copy);
    /// the file is deleted when the returned value is dropped. Nothing is left behind
    /// when the download fails or does not verify.
    pub async fn fetch_backup(&self, backup: &Backup) -> Result<FetchedArchive, Error> {
        let name = &backup.instance;
        let key = backup
            .remote
            .as_deref()
            .ok_or_else(|| Error::NoSuchBackup {
                instance: name.to_string(),
                id: Some(backup.id),
            })?;
        let remote = self.remote_store(name)?.ok_or_else(|| Error::Remote {
            instance: name.to_string(),
            action: format!(
                "backup {} has an off-host copy, but [backup.remote] is not set in config.toml",
                backup.id
            ),
            source: Box::new(fleet_backup::remote::Error::Settings {
                reason: "no [backup.remote]".to_owned(),
            }),
        })?;
        let file_name = key.rsplit('/').next().unwrap_or(key);
        let dir = self
            .dirs
            .root()
            .join("tmp")
            .join(format!("fetch-{:016x}", rand::random::<u64>()));
        self.dirs.create_dir(&dir)?;
        let destination = dir.join(file_name);
        let fetched = remote
            .download(key, &destination, parse_sha256(&backup.sha256))
            .await;
        match fetched {
            Ok(_) => Ok(FetchedArchive {
                path: Some(destination),
            }),
            Err(source) => {
                let _ = std::fs::remove_dir_all(&dir);
                Err(remote_error(
                    name,
                    format!("cannot fetch off-host backup {key}"),
                )(source))
            }
        }
    }

    /// The archive of `backup` on this host: its recorded file when it is there, else a
    /// verified download of its off-host copy (for a restore).
    pub async fn local_archive(&self, backup: &Backup) -> Result<LocalArchive, Error> {
        if !backup.is_remote_only() && backup.path.is_file() {
            return Ok(LocalArchive::Recorded(backup.path.clone()));
        }
        if backup.remote.is_none() {
            return Ok(LocalArchive::Recorded(backup.path.clone()));
        }
        self.fetch_backup(backup).await.map(LocalArchive::Fetched)
    }

    /// Applies the instance's retention (the local one: [`prune_backups`]) to its copies
    /// in the remote store, never to the copy of a backup a rollback may need, and
    /// deletes the expired ones unless `dry_run`. Returns the expired copies that are not
    /// already in `reported` (what the local retention expired), oldest first: those
    /// found only remotely.
    ///
    /// [`prune_backups`]: Self::prune_backups
    pub(super) async fn prune_off_host(
        &self,
        name: &InstanceName,
        dry_run: bool,
        reported: &[Backup],
    ) -> Result<Vec<Backup>, Error> {
        let Some(remote) = self.remote_store(name)? else {
            return Ok(Vec::new());
        };
        let record = self.record(name)?;
        let policy = self.retention(&record);
        let records = self.store.backups(name)?;
        let protected = self.rollback_reachable(&record, &records)?;
        let kept_keys: BTreeSet<&str> = records
            .iter()
            .filter(|b| protected.contains(&b.id))
            .filter_map(|b| b.remote.as_deref())
            .collect();
        let known: BTreeSet<&str> = records
            .iter()
            .chain(reported)
            .filter_map(|b| b.remote.as_deref())
            .collect();
        let listed: Vec<RemoteArchive> = self
            .list_remote(name, &remote)
            .await?
            .into_iter()
            .filter(|a| !kept_keys.contains(a.key.as_str()))
            .collect();
        let names: Vec<ArchiveName> = listed.iter().map(|a| a.name.clone()).collect();
        let expired: BTreeSet<ArchiveName> = policy
            .expired(&names, jiff::Timestamp::now())
            .into_iter()
            .collect();
        let mut only_remote = Vec::new();
        for archive in listed.iter().filter(|a| expired.contains(&a.name)) {
            if !known.contains(archive.key.as_str()) {
                only_remote.push(remote_only(
                    name,
                    archive,
                    &RemoteObject {
                        key: archive.key.clone(),
                        size: archive.size,
                        last_modified: archive.last_modified,
                        sha256: None,
                        metadata: BTreeMap::new(),
                    },
                ));
            }
            if !dry_run {
                remote.delete(&archive.key).await.map_err(remote_error(
                    name,
                    format!("cannot delete expired off-host backup {}", archive.key),
                ))?;
            }
        }
        only_remote.sort_by_key(taken_order);
        Ok(only_remote)
    }
}

/// The order backups were taken in: by the time and sequence number in the archive's
/// name (recorded and remote-only ones alike), then id.
fn taken_order(backup: &Backup) -> (jiff::Timestamp, u32, i64) {
    let file = backup
        .path
        .file_name()
        .and_then(|f| f.to_str())
        .or_else(|| backup.remote.as_deref()?.rsplit('/').next());
    match file.and_then(ArchiveName::parse) {
        Some(archive) => (archive.time(), archive.seq(), backup.id),
        None => (backup.created_at, 0, backup.id),
    }
}

/// Wraps a remote store's error as [`Error::Remote`]: for `map_err`.
fn remote_error(
    name: &InstanceName,
    action: impl Into<String>,
) -> impl FnOnce(fleet_backup::remote::Error) -> Error {
    let instance = name.to_string();
    let action = action.into();
    move |source| Error::Remote {
        instance,
        action,
        source: Box::new(source),
    }
}

/// The instance's name as fleet-backup names its archives.
fn backup_name(name: &InstanceName) -> Result<BackupName, Error> {
    BackupName::new(name.as_str()).map_err(|source| Error::Backup {
        instance: name.to_string(),
        source,
    })
}

fn parse_sha256(hex_text: &str) -> Option<Sha256> {
    let mut bytes = [0; 32];
    hex::decode_to_slice(hex_text, &mut bytes).ok()?;
    Some(Sha256(bytes))
}

/// What a record holds, as object metadata (printable ASCII values only).
fn metadata(backup: &Backup) -> BTreeMap<String, String> {
    let mut metadata = BTreeMap::from([
        ("reason".to_owned(), backup.reason.to_string()),
        ("image".to_owned(), backup.image.clone()),
        ("generation".to_owned(), backup.generation.to_string()),
        ("files".to_owned(), backup.files.to_string()),
    ]);
    if let Some(tag) = &backup.tag {
        metadata.insert("tag".to_owned(), tag.clone());
    }
    if let Some(digest) = &backup.digest {
        metadata.insert("digest".to_owned(), digest.to_string());
    }
    if let Some(version) = &backup.version {
        metadata.insert("version".to_owned(), version.clone());
    }
    metadata.retain(|_, value| value.bytes().all(|b| (b' '..=b'~').contains(&b)));
    metadata
}

/// A copy found only in the remote store, as a backup (id 0, no path), from what its
/// metadata says.
fn remote_only(name: &InstanceName, archive: &RemoteArchive, object: &RemoteObject) -> Backup {
    let field = |key: &str| object.metadata.get(key).cloned();
    Backup {
        id: 0,
        instance: name.clone(),
        path: PathBuf::new(),
        size: archive.size,
        sha256: object.sha256.map(|s| s.to_string()).unwrap_or_default(),
        files: field("files").and_then(|f| f.parse().ok()).unwrap_or(0),
        created_at: archive.name.time(),
        reason: field("reason")
            .and_then(|r| r.parse().ok())
            .unwrap_or(BackupReason::Manual),
        image: field("image").unwrap_or_default(),
        tag: field("tag"),
        digest: field("digest").and_then(|d| d.parse().ok()),
        generation: field("generation")
            .and_then(|g| g.parse().ok())
            .unwrap_or(0),
        version: field("version"),
        remote: Some(archive.key.clone()),
    }
}

/// The off-host path on the fake engine against a real S3-compatible server (moto, from
/// the test bed): nothing mocks the store.
#[cfg(test)]
mod tests {
    use std::num::NonZeroUsize;
    use std::path::Path;
    use std::sync::Arc;

    use fleet_backup::remote::{RemoteSettings, RemoteStore};
    use fleet_tests::s3::{REGION, TestS3};

    use crate::engine::fake::FakeEngine;
    use crate::{
        BackupReason, CreateOptions, Error, Fleet, FleetConfig, InstanceName, InstanceSpec,
        PortRange, PortSpec, StaticResolver,
    };

    const IMAGE: &str = "localhost:5000/app:v1";
    const DIGEST: &str = "sha256:1111111111111111111111111111111111111111111111111111111111111111";

    /// `[backup.remote]` for `s3`'s bucket under `fleet/`, credentials from a file of
    /// profile `test` holding `key` (the authorised one unless given).
    fn settings(s3: &TestS3, dir: &Path, key: Option<(&str, &str)>) -> RemoteSettings {
        let (id, secret) = key.unwrap_or((s3.access_key_id(), s3.secret_access_key()));
        let file = s3.write_credentials_with(dir, "test", id, secret).unwrap();
        let mut settings = RemoteSettings::new(s3.url("fleet").parse().unwrap());
        settings.endpoint = Some(s3.endpoint());
        settings.region = Some(REGION.to_owned());
        settings.profile = Some("test".to_owned());
        settings.credentials_file = Some(file);
        settings
    }

    /// A fleet on the fake engine in `dir/<state>`, keeping `keep_last` backups here and
    /// off-host, with instance `alice` created and a file in its data directory.
    async fn fleet(dir: &Path, state: &str, remote: RemoteSettings, keep_last: usize) -> Fleet {
        let engine = Arc::new(FakeEngine::new());
        engine.add_image(&format!("localhost:5000/app@{DIGEST}"), Some("10001:10001"));
        let resolver = Arc::new(StaticResolver::new());
        resolver.set(IMAGE, Some("v1.0.0"), &DIGEST.parse().unwrap());
        let mut config = FleetConfig {
            ports: PortRange::new(43000, 43999, 1).unwrap(),
            ..FleetConfig::default()
        };
        config.backup.keep_last = NonZeroUsize::new(keep_last).unwrap();
        config.backup.remote = Some(remote);
        let fleet = Fleet::builder(dir.join(state))
            .config(config)
            .engine(engine)
            .resolver(resolver)
            .open()
            .await
            .unwrap();
        let spec =
            InstanceSpec::new(alice(), IMAGE.parse().unwrap()).with_port(PortSpec::auto(8080));
        fleet
            .create(spec, CreateOptions::default(), &|_| {})
            .await
            .unwrap();
        let data = fleet.dirs().default_data_dir(&alice());
        std::fs::write(data.join("notes.txt"), state).unwrap();
        fleet
    }

    fn alice() -> InstanceName {
        "alice".parse().unwrap()
    }

    #[tokio::test]
    async fn backups_go_off_host_and_come_back_on_another_host() {
        let s3 = TestS3::start().await.unwrap();
        let dir = tempfile::tempdir().unwrap();
        let remote = settings(&s3, dir.path(), None);
        let store = RemoteStore::new(&remote).unwrap();
        let first = fleet(dir.path(), "first", remote.clone(), 2).await;

        // Each backup is copied off-host once recorded, its record and metadata along.
        let mut taken = Vec::new();
        for _ in 0..3 {
            taken.push(
                first
                    .backup(&alice(), BackupReason::Manual)
                    .await
                    .unwrap()
                    .backup,
            );
        }
        let newest = taken.last().unwrap();
        let key = newest.remote.clone().expect("copied off-host");
        let file_name = newest.path.file_name().unwrap().to_str().unwrap();
        assert_eq!(key, format!("fleet/alice/{file_name}"));
        let object = store.head(&key).await.unwrap();
        assert_eq!(object.sha256.unwrap().to_string(), newest.sha256);
        assert_eq!(object.metadata["reason"], "manual");
        assert_eq!(object.metadata["tag"], "v1.0.0");
        assert_eq!(object.metadata["digest"], DIGEST);
        // The same retention off-host: the oldest went here and there.
        let here: Vec<Option<String>> = first
            .backups(&alice())
            .unwrap()
            .into_iter()
            .map(|b| b.remote)
            .collect();
        let there = store
            .list(&fleet_backup::BackupName::new("alice").unwrap())
            .await
            .unwrap();
        assert_eq!(here.len(), 2);
        assert_eq!(
            there
                .iter()
                .rev()
                .map(|a| Some(a.key.clone()))
                .collect::<Vec<_>>(),
            here,
            "newest first here, oldest first there"
        );
        assert!(
            !there
                .iter()
                .any(|a| Some(&a.key) == taken[0].remote.as_ref())
        );
        // Nothing is remote-only where every backup is recorded.
        let all = first.all_backups(&alice()).await.unwrap();
        assert_eq!(all, first.backups(&alice()).unwrap());

        // Another host (a new state directory) finds them in the store only.
        let second = fleet(dir.path(), "second", remote.clone(), 1).await;
        let found = second.all_backups(&alice()).await.unwrap();
        assert_eq!(found.len(), 2);
        assert!(
            found
                .iter()
                .all(|b| b.is_remote_only() && b.path.as_os_str().is_empty())
        );
        assert_eq!(
            found[0].remote.as_deref(),
            Some(key.as_str()),
            "newest first"
        );
        assert_eq!(found[0].sha256, newest.sha256);
        assert_eq!(found[0].reason, BackupReason::Manual);
        assert_eq!(found[0].tag.as_deref(), Some("v1.0.0"));
        assert_eq!(found[0].files, newest.files);
        assert_eq!(
            found[0].created_at,
            fleet_backup::ArchiveName::parse(file_name).unwrap().time()
        );

        // Fetched for a restore: verified, under the state directory, gone when dropped.
        let local = second.local_archive(&found[0]).await.unwrap();
        let path = local.path().to_owned();
        assert!(
            path.starts_with(second.dirs().root().join("tmp")),
            "{}",
            path.display()
        );
        assert_eq!(
            crate::fleet::backup::file_sha256(&path).unwrap(),
            newest.sha256
        );
        let manifest = fleet_backup::verify(&path, &mut |_| {}).unwrap().manifest;
        assert_eq!(manifest.metadata["instance"], "alice");
        drop(local);
        assert!(!path.exists());
        assert_eq!(
            std::fs::read_dir(second.dirs().root().join("tmp"))
                .unwrap()
                .count(),
            0,
            "nothing left in tmp/"
        );
        // A recorded backup whose archive is here is used as it is.
        let recorded = first.local_archive(newest).await.unwrap();
        assert_eq!(recorded.path(), newest.path);

        // The second host keeps one: retention reports and deletes the older copy, found
        // only remotely.
        let would = second.prune_backups(&alice(), true).await.unwrap();
        assert_eq!(would.len(), 1);
        assert_eq!(would[0].remote, found[1].remote);
        assert!(would[0].is_remote_only());
        assert_eq!(
            second.all_backups(&alice()).await.unwrap().len(),
            2,
            "a dry run"
        );
        second.prune_backups(&alice(), false).await.unwrap();
        let left = second.all_backups(&alice()).await.unwrap();
        assert_eq!(left.len(), 1);
        assert_eq!(left[0].remote.as_deref(), Some(key.as_str()));
    }

    /// A store that refuses the credentials fails the backup command with an error that
    /// says why; the local backup is kept and recorded, without a remote copy.
    #[tokio::test]
    async fn refused_credentials_fail_the_backup_but_keep_it_here() {
        let s3 = TestS3::start_enforcing_auth().await.unwrap();
        let dir = tempfile::tempdir().unwrap();
        let remote = settings(&s3, dir.path(), Some(("AKIAWRONG00000000000", "nope")));
        let fleet = fleet(dir.path(), "state", remote, 10).await;
        let error = fleet
            .backup(&alice(), BackupReason::Manual)
            .await
            .unwrap_err();
        assert!(matches!(error, Error::Remote { .. }), "{error}");
        let chain = crate::error::error_chain(&error);
        assert!(
            chain.starts_with(&format!(
                "off-host backups of instance alice: cannot copy backup 1 off-host; it is \
                 kept and recorded here: {} at {} refused the credentials from profile \
                 \"test\" in ",
                s3.url("fleet"),
                s3.endpoint()
            )) && chain.contains("(InvalidAccessKeyId)"),
            "{chain}"
        );
        let kept = fleet.backups(&alice()).unwrap();
        assert_eq!(kept.len(), 1);
        assert_eq!(kept[0].remote, None);
        assert!(kept[0].path.is_file());
    }
}
