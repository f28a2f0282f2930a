//! What the `Fleet` API returns: instances, their status, drift, progress, reports.
//! Every type serialises for `--json`.

use std::path::PathBuf;

use fleet_health::ProbeResult;
use fleet_registry::Digest;
use serde::Serialize;

use crate::engine::{ContainerState, PullProgress};
use crate::health::Health;
use crate::name::InstanceName;
use crate::spec::InstanceSpec;
use crate::store::DesiredState;

/// An instance: its spec and what is deployed for it.
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct Instance {
    /// The name.
    pub name: InstanceName,
    /// The group, if any.
    pub group: Option<String>,
    /// The image repository (`ghcr.io/acme/app`).
    pub image: String,
    /// The channel it follows (`v1`, `latest`, ...).
    pub channel: String,
    /// The tag the channel resolved to when last deployed.
    pub tag: Option<String>,
    /// The digest it should run.
    pub digest: Option<Digest>,
    /// Whether it should run.
    pub desired: DesiredState,
    /// Its current generation (1 after create, +1 per new container).
    pub generation: u64,
    /// Its ports.
    pub ports: Vec<PortMapping>,
    /// Its data directory on the host.
    pub data_dir: PathBuf,
    /// Its container's id.
    pub container: Option<String>,
    /// When it was created.
    pub created_at: jiff::Timestamp,
    /// The full spec (not serialised: it holds environment values).
    #[serde(skip)]
    pub spec: InstanceSpec,
}

/// A container port and the host port it is published on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct PortMapping {
    /// The port in the container.
    pub container: u16,
    /// The host port.
    pub host: u16,
}

/// An instance with its container's state and the health last recorded (no probe):
/// what `Fleet::overview` returns for listings.
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct InstanceOverview {
    /// The instance.
    #[serde(flatten)]
    pub instance: Instance,
    /// Its container's state (`None`: no container).
    pub state: Option<ContainerState>,
    /// The health last recorded by `status` or a deployment for the current container,
    /// while it runs; `None` when nothing was recorded or the container does not run.
    pub health: Option<Health>,
}

/// What `Fleet::status` found for one instance.
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct InstanceStatus {
    /// The instance.
    #[serde(flatten)]
    pub instance: Instance,
    /// Its container's state (`None`: no container).
    pub state: Option<ContainerState>,
    /// The digest its container runs.
    pub running_digest: Option<Digest>,
    /// Docker's own health status, if the container has a `HEALTHCHECK`.
    pub docker_health: Option<String>,
    /// fleet's verdict, from the probe made now, else Docker's own check, else what
    /// the container's state says.
    pub health: Health,
    /// The probe made for this status, if the instance has a health check and runs.
    pub probe: Option<ProbeResult>,
    /// Where the store and the engine disagree.
    pub drift: Vec<Drift>,
}

/// A disagreement between the store and the engine, which `Fleet::reconcile` repairs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Drift {
    /// The instance should run but has no container.
    MissingContainer {
        /// The instance.
        instance: String,
    },
    /// The instance's container runs another digest than the store expects.
    DigestMismatch {
        /// The instance.
        instance: String,
        /// What the store says it should run.
        expected: Digest,
        /// What its container's `fleet.digest` label says it runs.
        running: String,
    },
    /// The instance should run but its container does not.
    NotRunning {
        /// The instance.
        instance: String,
        /// The container's state.
        state: ContainerState,
    },
    /// The instance should be stopped but its container runs.
    ShouldBeStopped {
        /// The instance.
        instance: String,
    },
    /// A container labelled for this fleet that no instance owns.
    StrayContainer {
        /// Its name.
        container: String,
        /// The instance its label names.
        instance: Option<String>,
    },
}

impl Drift {
    /// The instance the drift is about (a stray container's label, if it has one).
    pub fn instance(&self) -> Option<&str> {
        match self {
            Drift::MissingContainer { instance }
            | Drift::DigestMismatch { instance, .. }
            | Drift::NotRunning { instance, .. }
            | Drift::ShouldBeStopped { instance } => Some(instance),
            Drift::StrayContainer { instance, .. } => instance.as_deref(),
        }
    }
}

impl std::fmt::Display for Drift {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Drift::MissingContainer { instance } => write!(f, "{instance}: container missing"),
            Drift::DigestMismatch {
                instance,
                expected,
                running,
            } => {
                write!(f, "{instance}: runs {running}, expected {expected}")
            }
            Drift::NotRunning { instance, state } => {
                write!(f, "{instance}: container {state}, expected running")
            }
            Drift::ShouldBeStopped { instance } => {
                write!(f, "{instance}: running, expected stopped")
            }
            Drift::StrayContainer {
                container,
                instance: Some(instance),
            } => {
                write!(f, "stray container {container} (labelled for {instance})")
            }
            Drift::StrayContainer {
                container,
                instance: None,
            } => write!(f, "stray container {container}"),
        }
    }
}

/// What `Fleet::status` found for the whole fleet.
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct FleetStatus {
    /// One entry per instance asked about.
    pub instances: Vec<InstanceStatus>,
    /// Containers labelled for this fleet that no instance owns.
    pub strays: Vec<Drift>,
}

impl FleetStatus {
    /// Every drift found, instances' and strays'.
    pub fn drift(&self) -> impl Iterator<Item = &Drift> {
        self.instances
            .iter()
            .flat_map(|i| i.drift.iter())
            .chain(self.strays.iter())
    }
}

/// What `Fleet::reconcile` did.
#[derive(Debug, Clone, Default, Serialize)]
#[non_exhaustive]
pub struct ReconcileReport {
    /// Each drift found, with what was done about it.
    pub repaired: Vec<Repair>,
    /// Drift of instances another operation holds, left alone (`action` says why).
    pub skipped: Vec<Repair>,
    /// Drift fleet tried to repair and could not; the other instances were still
    /// repaired.
    pub failed: Vec<FailedRepair>,
}

impl ReconcileReport {
    /// Whether the engine agrees with the store now: nothing failed, nothing was skipped.
    pub fn is_clean(&self) -> bool {
        self.failed.is_empty() && self.skipped.is_empty()
    }
}

/// One drift that reconciliation could not repair.
#[derive(Debug, Clone, Serialize)]
pub struct FailedRepair {
    /// What was wrong.
    pub drift: Drift,
    /// Why the repair failed: the error and its causes, `: `-separated.
    pub error: String,
}

/// One drift and its repair.
#[derive(Debug, Clone, Serialize)]
pub struct Repair {
    /// What was wrong.
    pub drift: Drift,
    /// What fleet did (`recreated container fleet-alice.2`, `removed`, `started`).
    pub action: String,
}

/// Steps of a long operation, for progress display.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "step", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Progress {
    /// Looking up the channel's digest.
    Resolving {
        /// The image and channel.
        image: String,
    },
    /// The channel points at this tag and digest.
    Resolved {
        /// The tag.
        tag: Option<String>,
        /// The digest.
        digest: Digest,
    },
    /// The engine reports pull progress.
    Pulling(PullProgress),
    /// Creating the container.
    Creating {
        /// Its name.
        container: String,
    },
    /// Starting the container.
    Starting {
        /// The instance.
        instance: String,
    },
    /// A health probe ended.
    Probed {
        /// 1 for the first.
        attempt: u32,
        /// What it found.
        health: String,
        /// Why, when not healthy.
        reason: Option<String>,
        /// It failed during the health policy's start period, where failures do not
        /// count: the app is still starting.
        starting: bool,
    },
    /// Stopping the instance's container.
    Stopping {
        /// The instance.
        instance: String,
    },
    /// Running the instance's `backup.exec` command in its container.
    RunningExec {
        /// The instance.
        instance: String,
        /// The command, joined by spaces.
        command: String,
    },
    /// Archiving the data directory.
    Archiving {
        /// The instance.
        instance: String,
    },
    /// Checking an archive end to end before anything changes.
    Verifying {
        /// The archive.
        archive: PathBuf,
    },
    /// Putting an archive's data in place of the data directory.
    Restoring {
        /// The instance.
        instance: String,
        /// The archive.
        archive: PathBuf,
    },
    /// Something failed: putting the previous data back.
    RollingBack {
        /// The instance.
        instance: String,
        /// What failed.
        reason: String,
    },
}

/// Why a backup was taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum BackupReason {
    /// An operator asked for it.
    Manual,
    /// An update was about to change the instance.
    PreUpdate,
    /// A restore was about to replace the data.
    PreRestore,
    /// The schedule said so.
    Schedule,
}

impl BackupReason {
    const ALL: [BackupReason; 4] = [
        BackupReason::Manual,
        BackupReason::PreUpdate,
        BackupReason::PreRestore,
        BackupReason::Schedule,
    ];

    fn as_str(self) -> &'static str {
        match self {
            BackupReason::Manual => "manual",
            BackupReason::PreUpdate => "pre-update",
            BackupReason::PreRestore => "pre-restore",
            BackupReason::Schedule => "schedule",
        }
    }
}

impl std::fmt::Display for BackupReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A word that is not one of [`BackupReason`]'s.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a backup reason (manual, pre-update, pre-restore, schedule)")]
pub struct UnknownBackupReason(String);

impl std::str::FromStr for BackupReason {
    type Err = UnknownBackupReason;

    fn from_str(text: &str) -> Result<BackupReason, UnknownBackupReason> {
        BackupReason::ALL
            .into_iter()
            .find(|reason| reason.as_str() == text)
            .ok_or_else(|| UnknownBackupReason(text.to_owned()))
    }
}

/// A backup just taken, and how its data was made consistent.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct BackupRun {
    /// The backup, as recorded.
    #[serde(flatten)]
    pub backup: Backup,
    /// The instance's `backup.exec` command, when it ran.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exec: Option<ExecRun>,
    /// With `backup.stop`: how long the instance was down (stopped, archived, started
    /// and healthy again), in milliseconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub downtime_ms: Option<u64>,
    /// How long the whole backup took, in milliseconds.
    pub duration_ms: u64,
}

/// A consistency command run inside an instance's container before a backup.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct ExecRun {
    /// The command.
    pub command: Vec<String>,
    /// Its exit code.
    pub exit_code: Option<i64>,
    /// Its output (the last 64 KiB), also kept in the archive's metadata.
    pub output: String,
    /// How long it ran, in milliseconds.
    pub duration_ms: u64,
}

/// What [`Fleet::restore`](crate::Fleet::restore) restores.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RestoreSource {
    /// The instance's newest backup.
    Latest,
    /// One of the instance's backups, by id.
    Id(i64),
    /// An archive file anywhere (verified like any other).
    Path(PathBuf),
}

impl std::str::FromStr for RestoreSource {
    type Err = std::convert::Infallible;

    /// `latest`, a backup id (digits), or else a path.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Ok(if text == "latest" {
            Self::Latest
        } else if let Ok(id) = text.parse::<i64>() {
            Self::Id(id)
        } else {
            Self::Path(PathBuf::from(text))
        })
    }
}

/// What a restore did.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct Restored {
    /// The instance.
    pub instance: InstanceName,
    /// The archive restored.
    pub archive: PathBuf,
    /// The backup restored, when it was one of the instance's.
    pub backup: Option<Backup>,
    /// The data that was replaced, kept as a backup (reason `pre-restore`): restoring it
    /// undoes this restore.
    pub pre_restore: Backup,
    /// How many files were restored.
    pub files: u64,
    /// Whether the instance was started again (it ran before) and passed its health gate.
    pub restarted: bool,
    /// How long the instance was down, in milliseconds (0 when it was not running).
    pub downtime_ms: u64,
    /// How long the whole restore took, in milliseconds.
    pub duration_ms: u64,
}

/// One archive of an instance's data directory, and what ran when it was taken.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct Backup {
    /// The store's id of the backup.
    pub id: i64,
    /// The instance.
    pub instance: InstanceName,
    /// The archive file.
    pub path: PathBuf,
    /// The archive file's size in bytes.
    pub size: u64,
    /// The SHA-256 of the archive file itself (what `sha256sum` prints).
    pub sha256: String,
    /// How many files it holds.
    pub files: u64,
    /// When it was taken.
    pub created_at: jiff::Timestamp,
    /// Why it was taken.
    pub reason: BackupReason,
    /// The image the instance ran (`registry/repository`).
    pub image: String,
    /// The tag its channel had resolved to.
    pub tag: Option<String>,
    /// The digest it ran.
    pub digest: Option<Digest>,
    /// Its deployment generation.
    pub generation: u64,
    /// The app's version, when its health answer reported one.
    pub version: Option<String>,
    /// The object key of its verified off-host copy (`[backup.remote]`), if it has one.
    /// A backup found only there (taken on another host, or recorded in a state
    /// directory since lost) has id 0 and an empty `path`: see
    /// [`is_remote_only`](Self::is_remote_only).
    pub remote: Option<String>,
}

impl Backup {
    /// Whether this backup exists only in the remote store (no local archive or record):
    /// restoring it downloads it first.
    pub fn is_remote_only(&self) -> bool {
        self.id == 0
    }
}
