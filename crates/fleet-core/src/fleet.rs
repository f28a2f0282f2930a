//! The `Fleet` API: one state directory, its store, a container engine and a
//! registry resolver, and what every operation shares (names, views, leases).
//!
//! Each operation lives in a module of its own:
//!
//! - `create.rs`: the create pipeline (resolve, allocate, pull, data directory,
//!   container, start, health gate), undoing every step on failure.
//! - `gate.rs`: the health gate (probing, watching for an exit, the app's last output).
//! - `containers.rs`: containers as fleet makes, finds and removes them.
//! - `lifecycle.rs`: start, stop, restart, remove (with the purge rule).
//! - `backup.rs`: backups (consistency hooks, archive, record) and their retention.
//! - `routing.rs`: instances behind `fleet serve`'s proxy: their routes, switched
//!   through its control socket.
//! - `restore.rs`: restore, verified first and undone when the app does not come back.
//! - `recover.rs`: finishing or undoing a deployment whose process died, from its
//!   journal (run under every lease).
//! - `apply.rs`: converging the fleet to a fleet file (`fleet apply`).
//! - `update_many.rs`: many instances in parallel with a canary; promote.
//! - `update.rs`: update and rollback, journaled step by step, the old container
//!   brought back on any failure.

mod apply;
mod backup;
mod builder;
mod containers;
mod create;
mod export;
mod gate;
mod lifecycle;
mod recover;
mod remote;
mod restore;
mod routing;
mod update;
mod update_many;

pub use apply::{Applied, ApplyOptions};
pub use builder::{FleetBuilder, OpenMode};
pub use create::CreateOptions;
pub use remote::{FetchedArchive, LocalArchive};
pub use update_many::OnInstanceProgress;

use std::collections::BTreeMap;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use fleet_health::Prober;
use futures::stream::BoxStream;

use crate::config::{FleetConfig, StateDir};
use crate::state::FleetState;

use crate::engine::{Engine, LABEL_SCOPE, LogLine, LogOptions};
use crate::error::{EngineError, Error};
use crate::name::InstanceName;

use crate::resolve::ImageResolver;
use crate::spec::InstanceSpec;
use crate::store::{InstanceRecord, Lease, PortAllocation, Store};
use crate::view::{Instance, PortMapping, Progress};

/// How long a lease lasts without renewal; operations renew it every third of this.
const LEASE_TTL: Duration = Duration::from_secs(30);

/// What long operations report their steps to (`&|step| ...`).
pub type OnProgress<'a> = dyn Fn(Progress) + Send + Sync + 'a;

/// A fleet: one state directory, its store, a container engine and a registry resolver.
#[derive(Debug)]
pub struct Fleet {
    pub(crate) state: FleetState,
    pub(crate) dirs: StateDir,
    pub(crate) config: FleetConfig,
    pub(crate) store: Arc<Store>,
    pub(crate) engine: Arc<dyn Engine>,
    pub(crate) resolver: Arc<dyn ImageResolver>,
    pub(crate) prober: Prober,
    pub(crate) owner: String,
}

impl Fleet {
    /// What the store records, read-only.
    pub fn state(&self) -> &FleetState {
        &self.state
    }

    /// The settings.
    pub fn config(&self) -> &FleetConfig {
        &self.config
    }

    /// The state directory layout.
    pub fn dirs(&self) -> &StateDir {
        &self.dirs
    }

    /// The container name of an instance's generation: `<prefix><name>.<generation>`.
    pub fn container_name(&self, name: &InstanceName, generation: u64) -> String {
        format!("{}{name}.{generation}", self.config.container_prefix)
    }

    /// The labels every resource of this fleet carries.
    pub(crate) fn scope_labels(&self) -> BTreeMap<String, String> {
        let mut labels = self.config.labels.clone();
        labels.insert(LABEL_SCOPE.into(), self.store.scope().to_owned());
        labels
    }

    pub(crate) fn data_dir(&self, spec: &InstanceSpec) -> PathBuf {
        spec.data_dir
            .clone()
            .unwrap_or_else(|| self.dirs.default_data_dir(&spec.name))
    }

    /// Every instance, by name (from the store; no engine call).
    pub fn list(&self) -> Result<Vec<Instance>, Error> {
        self.store
            .instances()?
            .into_iter()
            .map(|record| self.view(record))
            .collect()
    }

    /// One instance (from the store).
    pub fn get(&self, name: &InstanceName) -> Result<Instance, Error> {
        let record = self.record(name)?;
        self.view(record)
    }

    pub(crate) fn record(&self, name: &InstanceName) -> Result<InstanceRecord, Error> {
        self.store
            .instance(name)?
            .ok_or_else(|| Error::NoSuchInstance {
                name: name.to_string(),
            })
    }

    pub(crate) fn view(&self, record: InstanceRecord) -> Result<Instance, Error> {
        let ports = self
            .store
            .instance_ports(&record.spec.name)?
            .into_iter()
            .map(|p| PortMapping {
                container: p.container,
                host: p.host,
            })
            .collect();
        let image = record.spec.image.image();
        Ok(Instance {
            name: record.spec.name.clone(),
            group: record.spec.group.clone(),
            image: image.name(),
            channel: channel_text(&record.spec),
            tag: record.tag,
            digest: record.digest,
            desired: record.desired,
            generation: record.generation,
            ports,
            data_dir: self.data_dir(&record.spec),
            container: record.container_id,
            created_at: record.created_at,
            spec: record.spec,
        })
    }

    /// A container's output.
    pub fn logs(
        &self,
        name: &InstanceName,
        options: LogOptions,
    ) -> Result<BoxStream<'static, Result<LogLine, EngineError>>, Error> {
        let record = self.record(name)?;
        let container = record.container_id.ok_or_else(|| Error::NoContainer {
            instance: name.to_string(),
        })?;
        Ok(self.engine.logs(&container, options))
    }

    /// Every port allocation, with the instance holding it.
    pub fn ports(&self) -> Result<Vec<PortAllocation>, Error> {
        self.store.ports()
    }

    /// The last `limit` events, oldest first.
    pub fn events(
        &self,
        name: Option<&InstanceName>,
        limit: usize,
    ) -> Result<Vec<crate::store::Event>, Error> {
        self.store.events(name.map(InstanceName::as_str), limit)
    }

    /// Runs `operation` holding the instance's lease, renewing it while it runs.
    pub(crate) async fn with_lease<T>(
        &self,
        name: &InstanceName,
        operation: &str,
        f: impl AsyncFnOnce() -> Result<T, Error>,
    ) -> Result<T, Error> {
        let lease = self
            .store
            .acquire_lease(name, &self.owner, operation, LEASE_TTL)?;
        let renewer = spawn_renewer(Arc::clone(&self.store), lease.clone());
        // A deployment whose process died left its journal: finish or undo it first.
        let result = match self.recover(name).await {
            Ok(_) => f().await,
            Err(error) => Err(error),
        };
        renewer.abort();
        let released = self.store.release_lease(&lease);
        let value = result?;
        released?;
        Ok(value)
    }
}

fn spawn_renewer(store: Arc<Store>, lease: Lease) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(LEASE_TTL / 3).await;
            if !matches!(store.renew_lease(&lease, LEASE_TTL), Ok(true)) {
                return;
            }
        }
    })
}

/// The channel an instance follows, as the operator wrote it.
pub(crate) fn channel_text(spec: &InstanceSpec) -> String {
    match spec.image.channel() {
        fleet_registry::Channel::Digest(digest) => format!("@{digest}"),
        channel => channel.to_string(),
    }
}
