//! The fleet domain: many instances of one app image on a host.
//!
//! `fleet-core` is what the `fleet` command drives and what Rust programs embed to
//! manage instances themselves. It is the only fleet crate that talks to the Docker
//! Engine, and it never prints: it returns data and typed errors, and reports progress
//! through callbacks.
//!
//! # Map
//!
//! - [`Fleet`]: the API, opened with [`Fleet::builder`] ([`FleetBuilder`]: the state
//!   directory, then optionally its settings, engine, resolver or registry settings).
//!   `create` (validate → allocate ports → resolve and pull the image by digest → data
//!   directory → container → start → wait healthy, undoing everything on failure),
//!   `list`, `get`, `status`, `start`, `stop`, `restart`, `remove`, `logs`, `ports`,
//!   `reconcile`, `events`. Every write goes through it: it holds each instance's lease
//!   and undoes failed steps.
//! - [`FleetState`]: what the state store records, read-only and without an engine.
//! - [`InstanceSpec`] and [`InstanceName`]: what an instance is. [`template`]: its
//!   settings templated from its allocation (`{{name}}`, `{{port}}`, vars).
//! - [`PortRange`] and the allocator (store + engine + bind checks).
//! - [`engine::Engine`]: the container engine trait and [`engine::DockerEngine`]
//!   (bollard). With the `test-util` feature, `engine::fake::FakeEngine` and
//!   `StaticResolver` stand in for the engine and registries in fast tests of fleet's
//!   logic, and `test_util` holds helpers for tests of programs built on fleet.
//! - [`ImageResolver`]: channel → digest; [`RegistryResolver`] asks real registries.
//! - [`FleetConfig`]: `<state dir>/config.toml`.
//! - [`export`]: `fleet export`'s writers, a `docker-compose.yml` that runs instances
//!   without fleet and a `fleet.toml` fragment, of the [`ExportedInstance`]s that
//!   [`Fleet::export`] gathers.
//!
//! # Example
//!
//! ```no_run
//! use fleet_core::{CreateOptions, Fleet, InstanceSpec, PortSpec, default_state_dir, http_health};
//!
//! # async fn demo() -> Result<(), fleet_core::Error> {
//! let fleet = Fleet::builder(default_state_dir()).open().await?;
//! let spec = InstanceSpec::new("alice".parse()?, "ghcr.io/acme/app:v1".parse().expect("a reference"))
//!     .with_port(PortSpec::auto(8080))
//!     .with_health(http_health("/api/health"));
//! let alice = fleet.create(spec, CreateOptions::default(), &|_progress| {}).await?;
//! println!("alice listens on port {}", alice.ports[0].host);
//! # Ok(()) }
//! ```

mod config;
mod data_dir;
mod deployment;
pub mod engine;
mod error;
pub mod export;
mod fleet;
pub mod fleetfile;
mod health;
mod name;
mod ports;
mod reconcile;
mod registry;
mod resolve;
pub mod serve;
mod spec;
mod state;
mod store;
#[cfg(feature = "test-util")]
pub mod test_util;
#[cfg(test)]
mod tests;
mod view;

pub use config::{BackupRetention, FleetConfig, ServeSettings, StateDir, default_state_dir};
pub use deployment::{
    Deployment, DeploymentKind, Outcome, Release, RollbackOptions, Step, StepTime, Strategy,
    UnknownStrategy, UpdateOptions, UpdateReport, UpdateTarget,
};
pub use error::{EngineError, EngineOperation, Error, PortHolder};
pub use export::ExportedInstance;
pub use fleet::{
    Applied, ApplyOptions, CreateOptions, FetchedArchive, Fleet, FleetBuilder, LocalArchive,
    OnInstanceProgress, OnProgress, OpenMode,
};
pub use health::{Health, UnknownHealth};
pub use name::InstanceName;
pub use ports::{PortRange, bindable, ephemeral_ports};
pub use registry::RegistryResolver;
#[cfg(any(test, feature = "test-util"))]
pub use resolve::StaticResolver;
pub use resolve::{ImageResolver, ResolvedImage};
pub use spec::{
    BackupSettings, DATA_MOUNT, DEFAULT_EXEC_TIMEOUT, InstanceSpec, PortSpec, Resources,
    RestartPolicy, VolumeSpec, default_policy, http_health, memory_text, parse_memory,
    read_env_file, tcp_health, template,
};
pub use state::FleetState;
pub use store::{
    DesiredState, Event, EventKind, InstanceRecord, Lease, PortAllocation, SCHEMA_VERSION,
};
pub use view::{
    Backup, BackupReason, BackupRun, Drift, ExecRun, FailedRepair, FleetStatus, Instance,
    InstanceOverview, InstanceStatus, PortMapping, Progress, ReconcileReport, Repair,
    RestoreSource, Restored, UnknownBackupReason,
};
