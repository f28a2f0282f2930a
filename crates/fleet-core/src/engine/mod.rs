//! The container engine fleet drives: a trait, its Docker implementation (bollard) and an
//! in-memory fake for fast tests of fleet's own logic.
//!
//! The trait is small on purpose: what `Fleet` needs, in fleet's words. Everything the
//! Docker implementation does is also tested against the real daemon (`tests/`).

mod docker;
#[cfg(any(test, feature = "test-util"))]
pub mod fake;

use std::collections::BTreeMap;
use std::time::Duration;

use async_trait::async_trait;
use futures::stream::BoxStream;
use serde::Serialize;

pub use docker::{DockerEngine, EngineTimeouts};

use crate::error::EngineError;

/// Label: the instance a container runs.
pub const LABEL_INSTANCE: &str = "fleet.instance";
/// Label: the instance's generation the container belongs to.
pub const LABEL_GENERATION: &str = "fleet.generation";
/// Label: the digest the container was created from.
pub const LABEL_DIGEST: &str = "fleet.digest";
/// Label: the scope (state store) that owns the container.
pub const LABEL_SCOPE: &str = "fleet.scope";

/// Credentials for pulling from a registry.
#[derive(Clone, PartialEq, Eq)]
pub struct RegistryAuth {
    /// User name.
    pub username: String,
    /// Password or token.
    pub password: String,
    /// The registry host they are for.
    pub server: String,
}

impl std::fmt::Debug for RegistryAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegistryAuth")
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .field("server", &self.server)
            .finish()
    }
}

/// Progress of a pull, as the engine reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PullProgress {
    /// The layer (or `None` for messages about the whole image).
    pub layer: Option<String>,
    /// The engine's status text (`Downloading`, `Pull complete`, ...).
    pub status: String,
    /// Bytes done, when known.
    pub current: Option<u64>,
    /// Bytes in all, when known.
    pub total: Option<u64>,
}

/// A container to create.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ContainerSpec {
    /// Its name.
    pub name: String,
    /// The image (`repo@sha256:...`).
    pub image: String,
    /// Environment.
    pub env: BTreeMap<String, String>,
    /// Labels.
    pub labels: BTreeMap<String, String>,
    /// Published ports: container port → (host address, host port).
    pub ports: Vec<PublishedPort>,
    /// Bind mounts.
    pub binds: Vec<Bind>,
    /// The network to attach to.
    pub network: Option<String>,
    /// Memory limit in bytes.
    pub memory_bytes: Option<u64>,
    /// CPU limit in billionths of a CPU.
    pub nano_cpus: Option<u64>,
    /// Docker restart policy (`no`, `always`, `unless-stopped`, `on-failure[:N]`).
    pub restart: crate::spec::RestartPolicy,
    /// The user to run as.
    pub user: Option<String>,
    /// A Docker `HEALTHCHECK`.
    pub healthcheck: Option<DockerHealthcheck>,
}

/// One published port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct PublishedPort {
    /// The port in the container.
    pub container: u16,
    /// The host address it is bound to (`0.0.0.0`, `127.0.0.1`).
    pub host_ip: std::net::IpAddr,
    /// The host port.
    pub host: u16,
}

/// A bind mount.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bind {
    /// Host path.
    pub host: std::path::PathBuf,
    /// Container path.
    pub container: String,
    /// Read-only.
    pub read_only: bool,
}

/// A Docker `HEALTHCHECK` for a container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DockerHealthcheck {
    /// The command (`CMD` form).
    pub command: Vec<String>,
    /// Between checks.
    pub interval: Duration,
    /// Per check.
    pub timeout: Duration,
    /// Failures in a row before unhealthy.
    pub retries: u32,
    /// Grace period after start.
    pub start_period: Duration,
}

/// The state of a container.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ContainerState {
    /// Created, never started.
    Created,
    /// Running.
    Running,
    /// Paused.
    Paused,
    /// Restarting after an exit.
    Restarting,
    /// Exited (stopped or crashed).
    Exited,
    /// Being removed, or dead.
    Dead,
}

impl std::fmt::Display for ContainerState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Created => "created",
            Self::Running => "running",
            Self::Paused => "paused",
            Self::Restarting => "restarting",
            Self::Exited => "exited",
            Self::Dead => "dead",
        })
    }
}

/// What the engine knows about a container.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ContainerInfo {
    /// Its id.
    pub id: String,
    /// Its name (without Docker's leading `/`).
    pub name: String,
    /// The image reference it was created from.
    pub image: String,
    /// Its labels.
    pub labels: BTreeMap<String, String>,
    /// Its state.
    pub state: ContainerState,
    /// Its exit code, once exited.
    pub exit_code: Option<i64>,
    /// Docker's health status (`starting`, `healthy`, `unhealthy`) if it has a healthcheck.
    pub docker_health: Option<String>,
    /// Its IP address on each network.
    pub ips: BTreeMap<String, String>,
    /// Its published ports.
    pub ports: Vec<PublishedPort>,
}

/// What a command run inside a container did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ExecOutput {
    /// Its exit code (`None` when the engine did not say).
    pub exit_code: Option<i64>,
    /// Its standard output and error, interleaved as they came.
    pub output: String,
}

/// Which logs to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LogOptions {
    /// Only the last `n` lines (all when `None`).
    pub tail: Option<usize>,
    /// Keep streaming new lines.
    pub follow: bool,
}

/// One chunk of container output.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LogLine {
    /// `stdout` or `stderr`.
    pub stream: &'static str,
    /// The text (usually one line, with its newline).
    pub text: String,
}

/// Something that happened on the engine.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EngineEvent {
    /// Object type (`container`, `image`, `network`).
    pub kind: String,
    /// What happened (`start`, `die`, `health_status: healthy`, ...).
    pub action: String,
    /// The object's id.
    pub id: String,
    /// The object's attributes (labels, name, exit code, ...).
    pub attributes: BTreeMap<String, String>,
}

/// A container engine, in fleet's words.
#[async_trait]
pub trait Engine: Send + Sync + std::fmt::Debug {
    /// Where the engine is (`unix:///var/run/docker.sock`).
    fn host(&self) -> &str;

    /// Checks that the engine answers.
    async fn ping(&self) -> Result<(), EngineError>;

    /// How many CPUs the engine's host has, when the engine says.
    async fn cpus(&self) -> Result<Option<usize>, EngineError> {
        Ok(None)
    }

    /// Pulls `image` (normally `repo@sha256:...`), reporting progress.
    async fn pull(
        &self,
        image: &str,
        auth: Option<&RegistryAuth>,
        progress: &(dyn Fn(PullProgress) + Send + Sync),
    ) -> Result<(), EngineError>;

    /// Whether `image` is present locally.
    async fn has_image(&self, image: &str) -> Result<bool, EngineError>;

    /// The `USER` of a local image's config (`None` when it runs as root by default).
    async fn image_user(&self, image: &str) -> Result<Option<String>, EngineError>;

    /// Creates the network if it does not exist.
    async fn ensure_network(
        &self,
        name: &str,
        labels: &BTreeMap<String, String>,
    ) -> Result<(), EngineError>;

    /// Creates a container; returns its id.
    async fn create_container(&self, spec: &ContainerSpec) -> Result<String, EngineError>;

    /// Starts a container.
    async fn start_container(&self, id: &str) -> Result<(), EngineError>;

    /// Stops a container, killing it after `grace`.
    async fn stop_container(&self, id: &str, grace: Duration) -> Result<(), EngineError>;

    /// Removes a container (running or not) and its anonymous volumes.
    async fn remove_container(&self, id: &str) -> Result<(), EngineError>;

    /// Inspects a container; `None` if it does not exist.
    async fn inspect_container(&self, id: &str) -> Result<Option<ContainerInfo>, EngineError>;

    /// Every container (running or not) carrying all of these labels.
    async fn list_containers(
        &self,
        labels: &[(&str, &str)],
    ) -> Result<Vec<ContainerInfo>, EngineError>;

    /// Every host port published by any container on the engine, with the container's name.
    async fn published_ports(&self) -> Result<Vec<(u16, String)>, EngineError>;

    /// Runs `command` inside the running container `id` and waits for it to end, however
    /// long it takes (callers bound the wait; the engine cannot kill an exec'd command).
    async fn exec(&self, id: &str, command: &[String]) -> Result<ExecOutput, EngineError>;

    /// A container's output.
    fn logs(
        &self,
        id: &str,
        options: LogOptions,
    ) -> BoxStream<'static, Result<LogLine, EngineError>>;

    /// Engine events about containers carrying all of these labels, from the moment of
    /// this call on (even if the stream is polled later).
    fn events(
        &self,
        labels: &[(&str, &str)],
    ) -> BoxStream<'static, Result<EngineEvent, EngineError>>;
}
