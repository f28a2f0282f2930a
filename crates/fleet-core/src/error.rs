//! The errors of this crate: [`Error`] for the `Fleet` API, [`EngineError`] for engines.

use std::path::PathBuf;

/// Everything that can go wrong while managing instances.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An instance name that is not a DNS-label-like name.
    #[error("invalid instance name {name:?}: {reason}")]
    InvalidName {
        /// The name given.
        name: String,
        /// What is wrong with it.
        reason: String,
    },
    /// An instance spec that cannot be run as given.
    #[error("invalid spec for instance {instance}: {reason}")]
    InvalidSpec {
        /// The instance.
        instance: String,
        /// What is wrong.
        reason: String,
    },
    /// A memory size that cannot be read, or that Docker does not take.
    #[error("invalid memory size {text:?}: {reason}")]
    InvalidMemory {
        /// The size given (`512m`).
        text: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A bind mount that is not `HOST:CONTAINER[:ro|rw]`.
    #[error("invalid volume {text:?}: {reason}")]
    InvalidVolume {
        /// The volume given.
        text: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A restart policy that is not one of Docker's.
    #[error("invalid restart policy {text:?}: {reason}")]
    InvalidRestartPolicy {
        /// The policy given.
        text: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A port range with no port in it.
    #[error("invalid port range {first}-{last} step {step}: {reason}")]
    InvalidPortRange {
        /// First port given.
        first: u16,
        /// Last port given.
        last: u16,
        /// Step given.
        step: u16,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// An instance with this name already exists.
    #[error("instance {name} already exists")]
    InstanceExists {
        /// The name.
        name: String,
    },
    /// No instance has this name.
    #[error("no instance named {name}")]
    NoSuchInstance {
        /// The name asked for.
        name: String,
    },
    /// The instance has no container now (it was never made, or it was removed).
    #[error("instance {instance} has no container")]
    NoContainer {
        /// The instance.
        instance: String,
    },
    /// A fixed host port is already in use.
    #[error("host port {port} is already in use by {holder}")]
    PortTaken {
        /// The port.
        port: u16,
        /// Who holds it.
        holder: PortHolder,
    },
    /// Every port of the allocation range is taken.
    #[error("no free host port in {first}-{last} (step {step})")]
    PortsExhausted {
        /// First port of the range.
        first: u16,
        /// Last port of the range.
        last: u16,
        /// Step between candidates.
        step: u16,
    },
    /// The data directory cannot be created or written.
    #[error("data directory {path} of instance {instance} is not usable")]
    DataDir {
        /// The instance.
        instance: String,
        /// The directory.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A data directory fleet will not use: a system directory, a directory the whole
    /// system shares, or one that holds the state directory.
    #[error("data directory {path} of instance {instance} is refused: {reason}")]
    DataDirRefused {
        /// The instance.
        instance: String,
        /// The directory.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// A data directory fleet will not delete: it did not create it, or another
    /// instance uses it. Nothing was removed.
    #[error("will not delete data directory {path} of instance {instance}: {reason}")]
    PurgeRefused {
        /// The instance.
        instance: String,
        /// The directory.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// A templated setting (an env value, a volume path) that cannot be rendered: a key
    /// with neither a value nor a default, a `{{` without `}}`, a placeholder that is not
    /// a key. The problem is part of the message rather than its source, so that one
    /// line (an event, a log) names the key as well as the instance.
    #[error("instance {instance}: {setting}: {problem}")]
    Template {
        /// The instance.
        instance: String,
        /// The setting (`env APP_URL`, `volume {{data_dir}}/logs`).
        setting: String,
        /// What is wrong.
        problem: crate::spec::template::TemplateError,
    },
    /// An environment file could not be read or parsed.
    #[error("environment file {path}: {reason}")]
    EnvFile {
        /// The file.
        path: PathBuf,
        /// What is wrong (with the line number where there is one).
        reason: String,
    },
    /// A file of the state directory could not be read or written.
    #[error("cannot use {path}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The configuration file is not valid.
    #[error("invalid configuration in {path}")]
    Config {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: toml::de::Error,
    },
    /// The state store failed.
    #[error("state store {path}: {context}")]
    Store {
        /// The database file.
        path: PathBuf,
        /// What fleet was doing.
        context: String,
        /// The cause.
        #[source]
        source: rusqlite::Error,
    },
    /// The state store was written by a newer fleet.
    #[error(
        "state store {path} has schema version {found}, newer than this fleet understands ({supported}); upgrade fleet"
    )]
    StoreTooNew {
        /// The database file.
        path: PathBuf,
        /// Its schema version.
        found: u32,
        /// The newest this build knows.
        supported: u32,
    },
    /// The state store's schema is older than this fleet's, and it was opened read-only
    /// (so it cannot be migrated).
    #[error(
        "state store {path} has schema version {found}, older than this fleet's ({supported}); opening it for writing migrates it"
    )]
    StoreOutdated {
        /// The database file.
        path: PathBuf,
        /// Its schema version.
        found: u32,
        /// The version this build writes.
        supported: u32,
    },
    /// There is no fleet (no state store) in this state directory.
    #[error("no fleet at {path}")]
    NoFleet {
        /// The state directory.
        path: PathBuf,
    },
    /// The state store's file exists but holds no fleet. Using it would make a new fleet
    /// with a new scope, and the old fleet's containers (labelled with its scope) would
    /// be left behind unmanaged: restore the file from a backup, or remove it to start a
    /// new fleet.
    #[error(
        "state store {path} holds no fleet ({reason}); restore it from a backup, or remove it to start a new fleet, leaving the old fleet's containers (labelled with its scope) as strays"
    )]
    StoreNotAFleet {
        /// The database file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// A write to a state store opened read-only, or one that cannot be written.
    #[error("state store {path} is read-only: cannot {context}")]
    StoreReadOnly {
        /// The database file.
        path: PathBuf,
        /// The write refused.
        context: String,
    },
    /// Another operation holds the instance.
    #[error(
        "instance {instance} is busy: {operation} by {owner} (lease expires in {expires_in_secs}s)"
    )]
    Busy {
        /// The instance.
        instance: String,
        /// The holder's operation.
        operation: String,
        /// The holder (host:pid:nonce).
        owner: String,
        /// Seconds until the lease expires if its holder stops renewing it.
        expires_in_secs: i64,
    },
    /// The container engine failed.
    #[error("container engine: {operation} {target}")]
    Engine {
        /// What fleet asked for.
        operation: EngineOperation,
        /// What it was about (container or image).
        target: String,
        /// The engine's error.
        #[source]
        source: EngineError,
    },
    /// Resolving or reading an image from its registry failed.
    #[error("image {image}")]
    Registry {
        /// The image reference.
        image: String,
        /// The registry client's error.
        #[source]
        source: fleet_registry::Error,
    },
    /// The instance did not become healthy.
    #[error("instance {instance} did not become healthy: {reason}")]
    Unhealthy {
        /// The instance.
        instance: String,
        /// The last probe's reason, and how long fleet waited.
        reason: String,
        /// Whether everything the operation made was removed again (a failed create);
        /// otherwise the instance is left as the gate found it (a failed start).
        undone: bool,
    },
    /// The registry client could not be set up (its TLS configuration, say).
    #[error("cannot set up the registry client")]
    RegistryClient {
        /// The registry client's error.
        #[source]
        source: fleet_registry::Error,
    },
    /// The health prober could not be set up.
    #[error("cannot set up the health prober")]
    Prober {
        /// The cause.
        #[source]
        source: fleet_health::Error,
    },
    /// A health probe could not be set up.
    #[error("health probe of instance {instance}")]
    Health {
        /// The instance.
        instance: String,
        /// The cause.
        #[source]
        source: fleet_health::Error,
    },
    /// A create failed, and undoing what it had done failed too: `left` says what is
    /// still there (reconciliation or a manual clean-up removes it).
    #[error("instance {instance} was not created, and not everything it made could be removed ({})", left.join("; "))]
    UndoIncomplete {
        /// The instance.
        instance: String,
        /// What is left, one sentence each.
        left: Vec<String>,
        /// Why the create failed.
        #[source]
        source: Box<Error>,
    },
    /// The instance has no such backup (or none at all, when `id` is `None`).
    #[error("instance {instance} has no backup{}", id.map_or_else(String::new, |id| format!(" with id {id}")))]
    NoSuchBackup {
        /// The instance.
        instance: String,
        /// The id asked for.
        id: Option<i64>,
    },
    /// Archiving an instance's data directory failed; nothing was recorded.
    #[error("backup of instance {instance}")]
    Backup {
        /// The instance.
        instance: String,
        /// The archiver's error.
        #[source]
        source: fleet_backup::Error,
    },
    /// An off-host copy (`[backup.remote]`) could not be made, listed, fetched or
    /// pruned; the message says what was wrong with the store and what to do.
    #[error("off-host backups of instance {instance}: {action}")]
    Remote {
        /// The instance.
        instance: String,
        /// What fleet was doing and what it means for the local backups.
        action: String,
        /// The remote store's error.
        #[source]
        source: Box<fleet_backup::remote::Error>,
    },
    /// The instance's `backup.exec` command failed; no archive was made.
    #[error("the backup command `{command}` of instance {instance} {reason}")]
    BackupExec {
        /// The instance.
        instance: String,
        /// The command, joined by spaces.
        command: String,
        /// What went wrong (`exited with 3; its output: ...`).
        reason: String,
    },
    /// A recorded archive is not what was recorded: its SHA-256 changed.
    #[error(
        "archive {} is not the backup fleet recorded: its SHA-256 is {actual}, not {expected}; it was changed or damaged after it was taken",
        path.display()
    )]
    ArchiveChanged {
        /// The archive.
        path: PathBuf,
        /// The SHA-256 recorded.
        expected: String,
        /// The SHA-256 now.
        actual: String,
    },
    /// A restore was refused or failed before the data directory changed: the archive is
    /// damaged, missing or unsafe, or it could not be extracted. Nothing was changed.
    #[error("restore of instance {instance} refused; its data and container are untouched")]
    Restore {
        /// The instance.
        instance: String,
        /// The archiver's error (every problem found, for a damaged archive).
        #[source]
        source: fleet_backup::Error,
    },
    /// A restore failed after the data was swapped; what the instance runs now is said.
    #[error("restore of instance {instance} failed: {reason}; {outcome}")]
    RestoreFailed {
        /// The instance.
        instance: String,
        /// What failed.
        reason: String,
        /// Where the data is now (`its previous data is back and it runs as before`).
        outcome: String,
    },
    /// `fleet rollback`: no earlier deployment to go back to.
    #[error(
        "instance {instance} has no earlier deployment to roll back to: it runs what it was created with, or what its last rollback restored"
    )]
    NoRollbackTarget {
        /// The instance.
        instance: String,
    },
    /// The operation was cancelled (Ctrl-C) at this step; what it did was undone.
    #[error("cancelled at step {step}")]
    Cancelled {
        /// The step it was at.
        step: crate::deployment::Step,
    },
    /// A setting `fleet edit` cannot make: an unknown key, a wrong type.
    #[error("{reason}")]
    InvalidSetting {
        /// What is wrong.
        reason: String,
    },
    /// A fleet file (`fleet.toml`) that cannot be read as one: syntax, types, unknown keys
    /// (with line and column), or settings that clash.
    #[error("{}: {reason}", path.display())]
    FleetFile {
        /// The file.
        path: PathBuf,
        /// What is wrong, where, and what was expected.
        reason: String,
    },
    /// `config.toml` reads, but its settings cannot work together.
    #[error("{}: {reason}", path.display())]
    InvalidConfig {
        /// The file.
        path: PathBuf,
        /// What is wrong, and what to do.
        reason: String,
    },
    /// `fleet serve`, or the control socket to it, failed.
    #[error("fleet serve at {}: {reason}", path.display())]
    Serve {
        /// The control socket.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// `fleet promote` cannot tell what to deploy, or where.
    #[error("cannot promote: {reason}")]
    Promote {
        /// Why.
        reason: String,
    },
    /// The update strategy asked for cannot run here.
    #[error("the {strategy} strategy cannot run: {reason}")]
    StrategyUnavailable {
        /// The strategy.
        strategy: crate::deployment::Strategy,
        /// Why, and what to do.
        reason: String,
    },
    /// An update target that is neither a tag nor a digest of the instance's image.
    #[error("{target:?} is not a tag of instance {instance}'s image: {reason}")]
    InvalidTarget {
        /// The instance.
        instance: String,
        /// The target given.
        target: String,
        /// Why.
        reason: String,
    },
    /// A destructive operation needs the caller's explicit confirmation.
    #[error("removing instance {instance} with its data ({path}) needs confirmation")]
    ConfirmationRequired {
        /// The instance.
        instance: String,
        /// The data that would be deleted.
        path: PathBuf,
    },
}

impl Error {
    /// Whether the caller's input is at fault (a name, a spec, a directory fleet refuses)
    /// and nothing was changed: a command-line tool reports these as usage errors.
    pub fn is_invalid_input(&self) -> bool {
        matches!(
            self,
            Error::InvalidName { .. }
                | Error::InvalidSpec { .. }
                | Error::Template { .. }
                | Error::InvalidMemory { .. }
                | Error::InvalidVolume { .. }
                | Error::InvalidRestartPolicy { .. }
                | Error::InvalidPortRange { .. }
                | Error::DataDirRefused { .. }
                | Error::PurgeRefused { .. }
                | Error::StrategyUnavailable { .. }
                | Error::InvalidTarget { .. }
                | Error::InvalidConfig { .. }
                | Error::FleetFile { .. }
                | Error::InvalidSetting { .. }
        )
    }
}

/// What fleet asked the container engine to do, in [`Error::Engine`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum EngineOperation {
    /// Connect and negotiate the API version.
    Connect,
    /// Pull an image.
    Pull,
    /// Inspect an image (does it exist, which user does it run as).
    InspectImage,
    /// Create the fleet's network.
    CreateNetwork,
    /// Create a container.
    CreateContainer,
    /// Start a container.
    StartContainer,
    /// Stop a container.
    StopContainer,
    /// Remove a container.
    RemoveContainer,
    /// Inspect a container.
    InspectContainer,
    /// List containers.
    ListContainers,
    /// List the host ports every container publishes.
    ListPublishedPorts,
    /// Read how many CPUs the engine's host has.
    ReadCpus,
    /// Run a command inside a container.
    Exec,
}

impl std::fmt::Display for EngineOperation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Connect => "connect to",
            Self::Pull => "pull",
            Self::InspectImage => "inspect image",
            Self::CreateNetwork => "create network",
            Self::CreateContainer => "create container",
            Self::StartContainer => "start container",
            Self::StopContainer => "stop container",
            Self::RemoveContainer => "remove container",
            Self::InspectContainer => "inspect container",
            Self::ListContainers => "list containers of",
            Self::ListPublishedPorts => "list published ports of",
            Self::ReadCpus => "read the CPUs of",
            Self::Exec => "run a command in container",
        })
    }
}

/// An error and its causes on one line, `: `-separated (as `{:#}` prints an anyhow
/// chain), for reports that carry errors as data.
pub(crate) fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// Wraps an engine error as [`Error::Engine`] about `target`: for `map_err`.
pub(crate) fn engine_error(
    operation: EngineOperation,
    target: impl std::fmt::Display,
) -> impl FnOnce(EngineError) -> Error {
    move |source| Error::Engine {
        operation,
        target: target.to_string(),
        source,
    }
}

/// Who holds a host port.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
#[non_exhaustive]
pub enum PortHolder {
    /// A fleet instance (allocated in the store).
    Instance {
        /// Its name.
        name: String,
    },
    /// A container on the engine that publishes it.
    Container {
        /// Its name.
        name: String,
    },
    /// A process on the host (the port cannot be bound).
    Process,
}

impl std::fmt::Display for PortHolder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PortHolder::Instance { name } => write!(f, "fleet instance {name}"),
            PortHolder::Container { name } => write!(f, "container {name}"),
            PortHolder::Process => f.write_str("another process on this host"),
        }
    }
}

/// What a container engine reports when an operation fails.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EngineError {
    /// The engine cannot be reached: nothing listens where fleet looked, or the
    /// connection broke.
    #[error("cannot reach the engine at {host}")]
    Unreachable {
        /// Where fleet looked (`unix:///var/run/docker.sock`, `tcp://...`).
        host: String,
        /// The connection error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The engine's socket refuses this user.
    #[error("permission denied on the engine's socket at {host}")]
    PermissionDenied {
        /// Where fleet looked.
        host: String,
        /// The connection error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The engine accepted the connection but did not answer in time.
    #[error("the engine at {host} did not answer within {}s", after.as_secs_f64())]
    Timeout {
        /// Where fleet looked.
        host: String,
        /// How long fleet waited.
        after: std::time::Duration,
    },
    /// The container, image or network does not exist.
    #[error("not found: {message}")]
    NotFound {
        /// The engine's message.
        message: String,
    },
    /// The name is taken, or the object is in a state that forbids the operation.
    #[error("conflict: {message}")]
    Conflict {
        /// The engine's message.
        message: String,
    },
    /// A host port the container publishes is bound already (Docker's "port is already
    /// allocated" when the container starts).
    #[error("host port {} is already allocated: {message}", port.map_or_else(|| "?".to_owned(), |p| p.to_string()))]
    PortAllocated {
        /// The port, when the engine's message names it.
        port: Option<u16>,
        /// The engine's message.
        message: String,
    },
    /// Anything else the engine reported.
    #[error("{message}")]
    Other {
        /// The HTTP status the engine answered with, when it answered.
        status: Option<u16>,
        /// The engine's message.
        message: String,
        /// The client's error, when the failure was not an answer of the engine's.
        #[source]
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
    },
}

impl EngineError {
    /// An error the engine reported in words only (no status), such as a failed pull's
    /// progress stream or a fake engine's injected failure.
    pub fn other(message: impl Into<String>) -> Self {
        EngineError::Other {
            status: None,
            message: message.into(),
            source: None,
        }
    }
}
