//! [`FleetState`]: what a fleet's store records, read-only, without an engine.

use std::path::Path;
use std::sync::Arc;

use crate::config::StateDir;
use crate::error::Error;
use crate::name::InstanceName;
use crate::store::{Event, InstanceRecord, Lease, PortAllocation, Store};

/// A read-only view of one fleet's state store: its instances as recorded, port
/// allocations, events and leases. Writes go through [`Fleet`](crate::Fleet), which
/// holds the leases and undoes failed steps; this view cannot bypass either.
///
/// ```no_run
/// use fleet_core::FleetState;
///
/// # fn demo() -> Result<(), fleet_core::Error> {
/// let state = FleetState::open("/var/lib/fleet")?;
/// for port in state.ports()? {
///     println!("{} -> {}:{}", port.host, port.instance, port.container);
/// }
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct FleetState {
    dirs: StateDir,
    store: Arc<Store>,
}

impl FleetState {
    pub(crate) fn new(dirs: StateDir, store: Arc<Store>) -> Self {
        Self { dirs, store }
    }

    /// Opens the state of the existing fleet in `state_dir` ([`Error::NoFleet`] when
    /// there is none): read-only when this process cannot write it. Nothing is created
    /// and no engine is asked.
    pub fn open(state_dir: impl AsRef<Path>) -> Result<Self, Error> {
        let dirs = StateDir::new(state_dir.as_ref());
        let store = open_existing(&dirs)?;
        Ok(Self::new(dirs, Arc::new(store)))
    }

    /// Where things live in the state directory.
    pub fn dirs(&self) -> &StateDir {
        &self.dirs
    }

    /// The store's scope id (the `fleet.scope` label of its containers and networks).
    pub fn scope(&self) -> &str {
        self.store.scope()
    }

    /// Whether the store was opened read-only (the state directory cannot be written).
    pub fn is_read_only(&self) -> bool {
        self.store.is_read_only()
    }

    /// The instance named `name`, as recorded, if any.
    pub fn instance(&self, name: &InstanceName) -> Result<Option<InstanceRecord>, Error> {
        self.store.instance(name)
    }

    /// Every instance as recorded, by name.
    pub fn instances(&self) -> Result<Vec<InstanceRecord>, Error> {
        self.store.instances()
    }

    /// How many routes `fleet serve`'s proxy has (instances reached through it).
    pub fn routes(&self) -> Result<usize, Error> {
        Ok(self.store.routes()?.len())
    }

    /// Every port allocation, with the instance holding it.
    pub fn ports(&self) -> Result<Vec<PortAllocation>, Error> {
        self.store.ports()
    }

    /// The last `limit` events (of one instance, or all), oldest first.
    pub fn events(&self, name: Option<&InstanceName>, limit: usize) -> Result<Vec<Event>, Error> {
        self.store.events(name.map(InstanceName::as_str), limit)
    }

    /// The instance's backups, newest first.
    pub fn backups(&self, name: &InstanceName) -> Result<Vec<crate::view::Backup>, Error> {
        self.store.backups(name)
    }

    /// Who holds the instance's lease (an operation in progress), if anyone.
    pub fn lease_holder(&self, name: &InstanceName) -> Result<Option<Lease>, Error> {
        self.store.lease_holder(name)
    }
}

/// The store of the existing fleet in `dirs` ([`Error::NoFleet`] when there is none),
/// read-only when this process cannot write it.
pub(crate) fn open_existing(dirs: &StateDir) -> Result<Store, Error> {
    let database = dirs.database();
    if !database.exists() {
        return Err(Error::NoFleet {
            path: dirs.root().to_owned(),
        });
    }
    // An existing state directory is made private at open, like a new one.
    match dirs.tighten().and_then(|()| Store::open(&database)) {
        // This user cannot write the state directory: read it as it is.
        Err(Error::StoreReadOnly { .. } | Error::Io { .. }) => Store::open_read_only(&database),
        store => store,
    }
}
