//! Deployments: what an update (or a rollback) asks for, the steps it journals, and what
//! it reports.
//!
//! Every step is recorded in the store before it runs, so a process killed half-way
//! leaves a journal that the next command touching the instance finishes or undoes
//! (`Fleet::update` and friends call the recovery first).

use std::fmt;
use std::str::FromStr;

use fleet_registry::Digest;
use serde::{Deserialize, Serialize};

use crate::name::InstanceName;

/// How an update replaces the running container.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum Strategy {
    /// Start the candidate beside the old container and switch fleet's proxy to it once
    /// healthy: no request is lost. Needs `fleet serve`.
    BlueGreen,
    /// Stop the old container, start the candidate on the same host ports: the downtime
    /// is measured and reported. The old container comes back if the candidate fails.
    Recreate,
}

impl Strategy {
    const ALL: [Strategy; 2] = [Strategy::BlueGreen, Strategy::Recreate];

    fn as_str(self) -> &'static str {
        match self {
            Strategy::BlueGreen => "blue-green",
            Strategy::Recreate => "recreate",
        }
    }
}

impl fmt::Display for Strategy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A word that is not a [`Strategy`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not an update strategy (blue-green, recreate)")]
pub struct UnknownStrategy(String);

impl FromStr for Strategy {
    type Err = UnknownStrategy;

    fn from_str(text: &str) -> Result<Self, UnknownStrategy> {
        Strategy::ALL
            .into_iter()
            .find(|s| s.as_str() == text)
            .ok_or_else(|| UnknownStrategy(text.to_owned()))
    }
}

/// The journaled steps of a deployment, in the order they run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Step {
    /// Resolving the target to a digest.
    Resolve,
    /// Backing up the data directory.
    Backup,
    /// Pulling the image by digest.
    Pull,
    /// Stopping the old container (recreate only).
    StopOld,
    /// Putting back the data of the deployment rolled back to (`rollback
    /// --restore-data`).
    RestoreData,
    /// Creating and starting the candidate container.
    Start,
    /// Waiting for the candidate to become healthy.
    Gate,
    /// Switching the proxy's routes to the candidate (blue-green only).
    Switch,
    /// Draining, stopping and removing the old container.
    Retire,
    /// Recording the outcome.
    Record,
}

impl Step {
    /// Every step, in order.
    pub const ALL: [Step; 10] = [
        Step::Resolve,
        Step::Backup,
        Step::Pull,
        Step::StopOld,
        Step::RestoreData,
        Step::Start,
        Step::Gate,
        Step::Switch,
        Step::Retire,
        Step::Record,
    ];

    /// The step's name (`stop_old`), as stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            Step::Resolve => "resolve",
            Step::Backup => "backup",
            Step::Pull => "pull",
            Step::StopOld => "stop_old",
            Step::RestoreData => "restore_data",
            Step::Start => "start",
            Step::Gate => "gate",
            Step::Switch => "switch",
            Step::Retire => "retire",
            Step::Record => "record",
        }
    }
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Step {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        Step::ALL
            .into_iter()
            .find(|s| s.as_str() == text)
            .ok_or_else(|| format!("{text:?} is not a deployment step"))
    }
}

/// How a deployment ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Outcome {
    /// Still running (or interrupted, until recovery decides).
    InProgress,
    /// The instance runs the target now.
    Updated,
    /// The instance already ran the target: nothing was done.
    Unchanged,
    /// The deployment started and was undone: the old version serves.
    RolledBack,
    /// The update could not start (the instance was busy, the target did not resolve:
    /// nothing changed), or it could not be undone; the reason says which, and what runs.
    Failed,
    /// Not attempted: the canary failed first.
    Skipped,
}

impl Outcome {
    const ALL: [Outcome; 6] = [
        Outcome::InProgress,
        Outcome::Updated,
        Outcome::Unchanged,
        Outcome::RolledBack,
        Outcome::Failed,
        Outcome::Skipped,
    ];

    /// Whether the instance ended on its target (updated, or already there).
    pub fn is_success(self) -> bool {
        matches!(self, Outcome::Updated | Outcome::Unchanged)
    }

    /// The outcome's name (`rolled_back`), as stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::InProgress => "in_progress",
            Outcome::Updated => "updated",
            Outcome::Unchanged => "unchanged",
            Outcome::RolledBack => "rolled_back",
            Outcome::Failed => "failed",
            Outcome::Skipped => "skipped",
        }
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Outcome {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        Outcome::ALL
            .into_iter()
            .find(|s| s.as_str() == text)
            .ok_or_else(|| format!("{text:?} is not a deployment outcome"))
    }
}

/// What an update deploys.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum UpdateTarget {
    /// What the instance's channel resolves to now.
    #[default]
    Channel,
    /// This tag of the instance's image (the instance keeps following its channel on
    /// later updates).
    Tag(String),
    /// This digest of the instance's image.
    Digest(Digest),
}

impl FromStr for UpdateTarget {
    type Err = std::convert::Infallible;

    /// `sha256:…` is a digest, anything else a tag.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Ok(match text.parse::<Digest>() {
            Ok(digest) if text.starts_with("sha256:") => UpdateTarget::Digest(digest),
            _ => UpdateTarget::Tag(text.to_owned()),
        })
    }
}

/// How to update.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct UpdateOptions {
    /// What to deploy (default: the channel's digest).
    pub target: UpdateTarget,
    /// How to replace the container (default: blue-green when `fleet serve` runs,
    /// recreate otherwise).
    pub strategy: Option<Strategy>,
    /// Skip the backup before the update.
    pub no_backup: bool,
    /// Cancelled (Ctrl-C), a deployment stops at its next step, or during its health
    /// gate, and rolls back like any failure: the old version serves.
    pub cancel: Option<tokio_util::sync::CancellationToken>,
}

impl UpdateOptions {
    /// Deploys `target`.
    pub fn to(mut self, target: UpdateTarget) -> Self {
        self.target = target;
        self
    }

    /// Uses `strategy`.
    pub fn strategy(mut self, strategy: Strategy) -> Self {
        self.strategy = Some(strategy);
        self
    }

    /// Takes no backup first.
    pub fn no_backup(mut self) -> Self {
        self.no_backup = true;
        self
    }

    /// Stops (and rolls back) when `token` is cancelled.
    pub fn cancel_on(mut self, token: tokio_util::sync::CancellationToken) -> Self {
        self.cancel = Some(token);
        self
    }
}

/// How to roll back.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RollbackOptions {
    /// How to replace the container (as for an update). With `restore_data`, always
    /// recreate: the app must stop while its data is swapped.
    pub strategy: Option<Strategy>,
    /// Also restore the data as it was before the deployment being rolled back (its
    /// pre-update backup), for a version that migrated it.
    pub restore_data: bool,
}

impl RollbackOptions {
    /// Also restores the data of before the deployment rolled back.
    pub fn restore_data(mut self) -> Self {
        self.restore_data = true;
        self
    }

    /// Uses `strategy` (when the data is not restored).
    pub fn strategy(mut self, strategy: Option<Strategy>) -> Self {
        self.strategy = strategy;
        self
    }
}

/// One side of a deployment: what ran before, or what was deployed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Release {
    /// The tag (none when deployed by digest).
    pub tag: Option<String>,
    /// The digest (none only for an instance that never ran).
    pub digest: Option<Digest>,
    /// The app's version, when its health answer reported one.
    pub version: Option<String>,
}

/// The time one step took.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepTime {
    /// The step.
    pub step: Step,
    /// How long it took, in milliseconds.
    pub ms: u64,
}

/// One deployment of an instance, as the store records it (`fleet history`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct Deployment {
    /// The store's id.
    pub id: i64,
    /// The instance.
    pub instance: InstanceName,
    /// What kind of deployment (`update`, `rollback`).
    pub kind: DeploymentKind,
    /// How the container was replaced.
    pub strategy: Strategy,
    /// When it started.
    pub started_at: jiff::Timestamp,
    /// When it ended.
    pub finished_at: Option<jiff::Timestamp>,
    /// The step it reached (the last journaled).
    pub step: Step,
    /// How it ended.
    pub outcome: Outcome,
    /// Why it was rolled back or failed.
    pub reason: Option<String>,
    /// What ran before.
    pub from: Release,
    /// What was deployed.
    pub to: Release,
    /// The generation before and the candidate's.
    pub from_generation: u64,
    /// The candidate's generation.
    pub to_generation: u64,
    /// The pre-update backup taken first.
    pub backup: Option<i64>,
    /// The backup whose data it restored (`rollback --restore-data`).
    pub restored: Option<i64>,
    /// How long the instance did not answer (recreate), in milliseconds.
    pub downtime_ms: Option<u64>,
    /// The time each step took.
    pub steps: Vec<StepTime>,
}

/// Why a deployment was made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum DeploymentKind {
    /// `fleet update`.
    Update,
    /// `fleet rollback`.
    Rollback,
    /// A changed spec (`fleet apply`, `fleet edit`): a new container of the same
    /// version with the new settings.
    Reconfigure,
}

impl DeploymentKind {
    /// The kind's name, as stored.
    pub fn as_str(self) -> &'static str {
        match self {
            DeploymentKind::Update => "update",
            DeploymentKind::Rollback => "rollback",
            DeploymentKind::Reconfigure => "reconfigure",
        }
    }
}

impl FromStr for DeploymentKind {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        match text {
            "update" => Ok(DeploymentKind::Update),
            "rollback" => Ok(DeploymentKind::Rollback),
            "reconfigure" => Ok(DeploymentKind::Reconfigure),
            _ => Err(format!("{text:?} is not a deployment kind")),
        }
    }
}

/// What one update did (`fleet update --json`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct UpdateReport {
    /// The instance.
    pub instance: InstanceName,
    /// What ran before.
    pub from: Release,
    /// The target.
    pub to: Release,
    /// How it ended.
    pub outcome: Outcome,
    /// The step that failed, when it did.
    pub step: Option<Step>,
    /// Why it was rolled back or failed (with the candidate's last output).
    pub reason: Option<String>,
    /// The pre-update backup's id.
    pub backup: Option<i64>,
    /// How long the instance did not answer, in milliseconds (recreate; 0 for
    /// blue-green).
    pub downtime_ms: Option<u64>,
    /// How long the update took, in milliseconds.
    pub duration_ms: u64,
    /// The deployment recorded (none when unchanged).
    pub deployment: Option<i64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_read_back() {
        for step in Step::ALL {
            assert_eq!(step.as_str().parse::<Step>(), Ok(step));
        }
        for outcome in Outcome::ALL {
            assert_eq!(outcome.as_str().parse::<Outcome>(), Ok(outcome));
        }
        assert_eq!("recreate".parse::<Strategy>(), Ok(Strategy::Recreate));
        assert!(
            "rolling"
                .parse::<Strategy>()
                .unwrap_err()
                .to_string()
                .contains("blue-green")
        );
        let digest = format!("sha256:{}", "a".repeat(64));
        assert!(matches!(
            digest.parse::<UpdateTarget>(),
            Ok(UpdateTarget::Digest(_))
        ));
        assert_eq!(
            "v1.1.0".parse::<UpdateTarget>(),
            Ok(UpdateTarget::Tag("v1.1.0".into()))
        );
    }
}
