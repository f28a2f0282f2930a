//! How a [`Fleet`] is opened: [`Fleet::builder`] names the state directory, and each
//! part that is not given is made the default way.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use fleet_health::Prober;

use super::Fleet;
use crate::config::{FleetConfig, StateDir};
use crate::engine::{DockerEngine, Engine};
use crate::error::{EngineOperation, Error, engine_error};
use crate::registry::RegistryResolver;
use crate::resolve::ImageResolver;
use crate::state::FleetState;
use crate::store::Store;

/// Whether opening a fleet may create one.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum OpenMode {
    /// Create the state directory and its store when there are none (what creating an
    /// instance needs).
    #[default]
    CreateIfMissing,
    /// Open an existing fleet only ([`Error::NoFleet`] when there is none, before the
    /// engine is asked anything), and read-only when this process cannot write its
    /// state directory (what listings need: a typo in a path must not make an empty
    /// fleet).
    Existing,
}

/// Opens a [`Fleet`]: the state directory, and optionally its settings, its engine, its
/// image resolver or the registry client settings the default resolver uses.
///
/// ```no_run
/// use fleet_core::{Fleet, OpenMode};
///
/// # async fn demo() -> Result<(), fleet_core::Error> {
/// let fleet = Fleet::builder("/var/lib/fleet")
///     .mode(OpenMode::Existing)
///     .open()
///     .await?;
/// for instance in fleet.list()? {
///     println!("{} {:?}", instance.name, instance.digest);
/// }
/// # Ok(()) }
/// ```
#[must_use = "a builder does nothing until `open` is called"]
pub struct FleetBuilder {
    state_dir: PathBuf,
    mode: OpenMode,
    config: Option<FleetConfig>,
    engine: Option<Arc<dyn Engine>>,
    resolver: Option<Arc<dyn ImageResolver>>,
    registry: Option<fleet_registry::ClientConfig>,
}

impl std::fmt::Debug for FleetBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FleetBuilder")
            .field("state_dir", &self.state_dir)
            .field("mode", &self.mode)
            .field("config", &self.config)
            .field("engine", &self.engine.as_ref().map(|e| e.host().to_owned()))
            .field("resolver", &self.resolver.is_some())
            .finish_non_exhaustive()
    }
}

impl Fleet {
    /// Starts opening the fleet whose state lives in `state_dir`.
    pub fn builder(state_dir: impl AsRef<Path>) -> FleetBuilder {
        FleetBuilder {
            state_dir: state_dir.as_ref().to_owned(),
            mode: OpenMode::default(),
            config: None,
            engine: None,
            resolver: None,
            registry: None,
        }
    }

    /// Opens (or creates) the fleet in `state_dir` with the Docker Engine as the Docker
    /// CLI finds it and registries reached with the Docker CLI's credentials: the
    /// builder with every default.
    pub async fn open(state_dir: impl AsRef<Path>) -> Result<Fleet, Error> {
        Fleet::builder(state_dir).open().await
    }
}

impl FleetBuilder {
    /// Whether opening may create the fleet (default: it may).
    pub fn mode(mut self, mode: OpenMode) -> Self {
        self.mode = mode;
        self
    }

    /// These settings instead of `<state dir>/config.toml`.
    pub fn config(mut self, config: FleetConfig) -> Self {
        self.config = Some(config);
        self
    }

    /// This engine instead of the Docker Engine found as the Docker CLI finds it.
    pub fn engine(mut self, engine: Arc<dyn Engine>) -> Self {
        self.engine = Some(engine);
        self
    }

    /// This resolver instead of one that asks registries.
    pub fn resolver(mut self, resolver: Arc<dyn ImageResolver>) -> Self {
        self.resolver = Some(resolver);
        self
    }

    /// Registry client settings (insecure registries, credentials, timeouts) for the
    /// default resolver; ignored when [`resolver`](Self::resolver) gives one.
    pub fn registry(mut self, config: fleet_registry::ClientConfig) -> Self {
        self.registry = Some(config);
        self
    }

    /// Opens the fleet: checks that it exists (in [`OpenMode::Existing`]), reads the
    /// settings, connects to the engine, then opens the store.
    pub async fn open(self) -> Result<Fleet, Error> {
        let dirs = StateDir::new(&self.state_dir);
        // "No fleet here" is the first thing to know, before the engine is asked.
        if self.mode == OpenMode::Existing && !dirs.database().exists() {
            return Err(Error::NoFleet {
                path: self.state_dir,
            });
        }
        let config = match self.config {
            Some(config) => config,
            None => FleetConfig::load(&self.state_dir)?,
        };
        let engine: Arc<dyn Engine> = match self.engine {
            Some(engine) => engine,
            None => Arc::new(
                DockerEngine::connect_with(config.engine)
                    .await
                    .map_err(engine_error(EngineOperation::Connect, "the Docker Engine"))?,
            ),
        };
        let resolver: Arc<dyn ImageResolver> = match self.resolver {
            Some(resolver) => resolver,
            None => Arc::new(
                RegistryResolver::with_config(self.registry.unwrap_or_default())
                    .map_err(|source| Error::RegistryClient { source })?,
            ),
        };
        let store = match self.mode {
            OpenMode::CreateIfMissing => {
                dirs.create()?;
                Store::open(&dirs.database())?
            }
            OpenMode::Existing => crate::state::open_existing(&dirs)?,
        };
        let prober = Prober::new().map_err(|source| Error::Prober { source })?;
        let host = nix::unistd::gethostname()
            .map(|h| h.to_string_lossy().into_owned())
            .unwrap_or_default();
        let owner = format!(
            "{host}:{}:{:06x}",
            std::process::id(),
            rand::random::<u32>() & 0xff_ffff
        );
        let store = Arc::new(store);
        Ok(Fleet {
            state: FleetState::new(dirs.clone(), Arc::clone(&store)),
            dirs,
            config,
            store,
            engine,
            resolver,
            prober,
            owner,
        })
    }
}
