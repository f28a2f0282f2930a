//! The `Fleet` API: create, list, inspect, start, stop, remove instances.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use fleet_health::{HealthReport, Prober, Verdict};
use futures::stream::BoxStream;

use crate::config::{FleetConfig, StateDir};
use crate::data_dir;
use crate::engine::{
    Bind, ContainerInfo, ContainerSpec, ContainerState, DockerHealthcheck, Engine, LABEL_DIGEST,
    LABEL_GENERATION, LABEL_INSTANCE, LABEL_SCOPE, LogLine, LogOptions, PublishedPort,
};
use crate::error::{EngineError, Error, PortHolder, engine_error};
use crate::name::InstanceName;
use crate::ports::host_check;
use crate::resolve::{ImageResolver, ResolvedImage};
use crate::spec::{DATA_MOUNT, InstanceSpec};
use crate::store::{DesiredState, EventKind, InstanceRecord, Lease, PortAllocation, Store};
use crate::view::{Instance, PortMapping, Progress};

/// How many allocated host ports a create gives up, taken by someone else between
/// allocation and start, before it fails.
const PORT_RETRIES: usize = 5;

/// How long a lease lasts without renewal; operations renew it every third of this.
const LEASE_TTL: Duration = Duration::from_secs(30);

/// Options of [`Fleet::create`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct CreateOptions {
    /// Start the instance (otherwise it is created stopped).
    pub start: bool,
    /// Wait until it is healthy (when it has a health check and is started).
    pub wait_healthy: bool,
}

impl Default for CreateOptions {
    fn default() -> Self {
        Self {
            start: true,
            wait_healthy: true,
        }
    }
}

impl CreateOptions {
    /// Creates the instance without starting it.
    pub fn no_start(mut self) -> Self {
        self.start = false;
        self
    }
}

/// A fleet: one state directory, its store, a container engine and a registry resolver.
#[derive(Debug)]
pub struct Fleet {
    pub(crate) dirs: StateDir,
    pub(crate) config: FleetConfig,
    pub(crate) store: Arc<Store>,
    pub(crate) engine: Arc<dyn Engine>,
    pub(crate) resolver: Arc<dyn ImageResolver>,
    pub(crate) prober: Prober,
    pub(crate) owner: String,
}

impl Fleet {
    /// Opens the fleet in `state_dir` with the Docker Engine (as the Docker CLI finds it)
    /// and registries reached with the Docker CLI's credentials.
    pub async fn open(state_dir: &Path) -> Result<Self, Error> {
        let config = FleetConfig::load(state_dir)?;
        let engine = crate::engine::DockerEngine::connect_with(config.engine)
            .await
            .map_err(engine_error("connect to", "the engine"))?;
        let resolver =
            crate::registry::RegistryResolver::new().map_err(|source| Error::Registry {
                image: "(client set-up)".into(),
                source,
            })?;
        Self::with_parts(state_dir, config, Arc::new(engine), Arc::new(resolver))
    }

    /// Opens the fleet in `state_dir` with the given parts (another engine, a fake, a
    /// resolver with its own credentials or cache).
    pub fn with_parts(
        state_dir: &Path,
        config: FleetConfig,
        engine: Arc<dyn Engine>,
        resolver: Arc<dyn ImageResolver>,
    ) -> Result<Self, Error> {
        let dirs = StateDir::new(state_dir);
        dirs.create()?;
        let store = Arc::new(Store::open(&dirs.database())?);
        Self::with_store(dirs, config, store, engine, resolver)
    }

    /// Opens the existing fleet in `state_dir` for reading only, with the given parts:
    /// nothing is created ([`Error::NoFleet`] when there is no fleet there), the store
    /// is opened with [`Store::open_read_only`] (so this works on a read-only state
    /// directory), and operations that would write fail with [`Error::StoreReadOnly`].
    pub fn with_parts_read_only(
        state_dir: &Path,
        config: FleetConfig,
        engine: Arc<dyn Engine>,
        resolver: Arc<dyn ImageResolver>,
    ) -> Result<Self, Error> {
        let dirs = StateDir::new(state_dir);
        // Tightening permissions is all this tries to write, and it may not be able to.
        let _ = dirs.tighten();
        let store = Arc::new(Store::open_read_only(&dirs.database())?);
        Self::with_store(dirs, config, store, engine, resolver)
    }

    fn with_store(
        dirs: StateDir,
        config: FleetConfig,
        store: Arc<Store>,
        engine: Arc<dyn Engine>,
        resolver: Arc<dyn ImageResolver>,
    ) -> Result<Self, Error> {
        let prober = Prober::new().map_err(|source| Error::Health {
            instance: "(prober set-up)".into(),
            source,
        })?;
        let host = nix::unistd::gethostname()
            .map(|h| h.to_string_lossy().into_owned())
            .unwrap_or_default();
        let owner = format!(
            "{host}:{}:{:06x}",
            std::process::id(),
            rand::random::<u32>() & 0xff_ffff
        );
        Ok(Self {
            dirs,
            config,
            store,
            engine,
            resolver,
            prober,
            owner,
        })
    }

    /// The state store.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The settings.
    pub fn config(&self) -> &FleetConfig {
        &self.config
    }

    /// The state directory layout.
    pub fn dirs(&self) -> &StateDir {
        &self.dirs
    }

    /// The engine.
    pub fn engine(&self) -> &dyn Engine {
        self.engine.as_ref()
    }

    /// Creates an instance: validate, allocate ports, resolve and pull the image, create
    /// the data directory (owned by the image's user), create and start the container,
    /// wait until healthy. If any step fails, everything done so far is undone: no
    /// container, no allocated port, no store row, no data directory fleet made.
    pub async fn create(
        &self,
        spec: InstanceSpec,
        options: CreateOptions,
        progress: &(dyn Fn(Progress) + Send + Sync),
    ) -> Result<Instance, Error> {
        spec.validate()?;
        // Docker refuses a CPU limit above its host's CPUs, but only after the pull.
        if let Some(cpus) = self
            .engine
            .cpus()
            .await
            .map_err(engine_error("read the CPUs of", self.engine.host()))?
        {
            spec.check_host_limits(cpus)?;
        }
        let data_dir = self.data_dir(&spec);
        if let Some(reason) = data_dir::refusal(&data_dir, self.dirs.root()) {
            return Err(Error::DataDirRefused {
                instance: spec.name.to_string(),
                path: data_dir,
                reason,
            });
        }
        if self.store.instance(&spec.name)?.is_some() {
            return Err(Error::InstanceExists {
                name: spec.name.to_string(),
            });
        }
        let name = spec.name.clone();
        self.with_lease(&name, "create", async || {
            let mut undo = Undo::default();
            let result = self.create_steps(&spec, options, progress, &mut undo).await;
            let Err(error) = result else {
                return Ok(());
            };
            let left = undo.run(self).await;
            let _ = self.store.record_event(
                Some(name.as_str()),
                EventKind::Error,
                &format!("create failed: {error}"),
            );
            if left.is_empty() {
                return Err(match error {
                    Error::Unhealthy {
                        instance, reason, ..
                    } => Error::Unhealthy {
                        instance,
                        reason,
                        undone: true,
                    },
                    error => error,
                });
            }
            for what in &left {
                tracing::warn!(instance = %name, "create failed and could not undo: {what}");
            }
            Err(Error::UndoIncomplete {
                instance: name.to_string(),
                left,
                source: Box::new(error),
            })
        })
        .await?;
        self.get(&name)
    }

    async fn create_steps(
        &self,
        spec: &InstanceSpec,
        options: CreateOptions,
        progress: &(dyn Fn(Progress) + Send + Sync),
        undo: &mut Undo,
    ) -> Result<(), Error> {
        let name = &spec.name;
        // Check the env file now: a typo must not leave anything behind.
        spec.resolved_env()?;
        progress(Progress::Resolving {
            image: spec.image.to_string(),
        });
        let resolved = self.resolve(spec).await?;
        progress(Progress::Resolved {
            tag: resolved.tag.clone(),
            digest: resolved.digest.clone(),
        });

        let desired = if options.start {
            DesiredState::Running
        } else {
            DesiredState::Stopped
        };
        self.store.insert_instance(spec, desired)?;
        undo.instance = Some(name.clone());
        self.allocate_ports(spec, &BTreeSet::new()).await?;

        self.pull(spec, &resolved, progress).await?;
        let data_dir = self.data_dir(spec);
        undo.data_dir = data_dir::topmost_missing(&data_dir);
        // The instance's own directory in the state directory is private like the rest
        // of it; the data directory inside belongs to the container's user.
        if let Some(parent) = data_dir
            .parent()
            .filter(|parent| parent.starts_with(self.dirs.root()))
        {
            self.dirs.create_dir(parent)?;
        }
        let user = match &spec.user {
            Some(user) => Some(user.clone()),
            None => self
                .engine
                .image_user(&resolved.reference)
                .await
                .map_err(engine_error("inspect image", &resolved.reference))?,
        };
        data_dir::prepare(name, &data_dir, undo.data_dir.is_some(), user.as_deref())?;
        if undo.data_dir.is_some() {
            self.store.set_data_dir_created(name)?;
        }

        let generation = 1;
        // Another fleet on this engine (an overlapping port range) may take an allocated
        // port between allocation and start: Docker then refuses to start. An allocated
        // port is then given up for the next free one; a fixed one is the operator's.
        let mut taken = BTreeSet::new();
        loop {
            let container = self
                .create_container(spec, &resolved, generation, progress)
                .await?;
            undo.container = Some((container.clone(), self.container_name(name, generation)));
            self.store.set_deployed(
                name,
                generation,
                resolved.tag.as_deref(),
                &resolved.digest,
                &container,
            )?;
            if taken.is_empty() {
                self.store.record_event(
                    Some(name.as_str()),
                    EventKind::Created,
                    &format!("created from {} ({})", spec.image, resolved.digest),
                )?;
            }
            if !options.start {
                return Ok(());
            }
            match self
                .start_and_gate(spec, &container, options.wait_healthy, progress)
                .await
            {
                Err(Error::Engine {
                    source:
                        EngineError::PortAllocated {
                            port: Some(port), ..
                        },
                    ..
                }) if taken.len() < PORT_RETRIES
                    && !spec.ports.iter().any(|p| p.host == Some(port)) =>
                {
                    self.remove_container(&container).await?;
                    undo.container = None;
                    self.store.release_ports(name)?;
                    taken.insert(port);
                    self.allocate_ports(spec, &taken).await?;
                    self.store.record_event(
                        Some(name.as_str()),
                        EventKind::Created,
                        &format!("host port {port} was taken before the container started; allocated another"),
                    )?;
                }
                result => return result,
            }
        }
    }

    /// Starts the container and, if asked and the spec has a health check, waits until
    /// it is healthy.
    async fn start_and_gate(
        &self,
        spec: &InstanceSpec,
        container: &str,
        wait: bool,
        progress: &(dyn Fn(Progress) + Send + Sync),
    ) -> Result<(), Error> {
        progress(Progress::Starting {
            instance: spec.name.to_string(),
        });
        self.engine
            .start_container(container)
            .await
            .map_err(engine_error("start container", &container))?;
        self.store.record_event(
            Some(spec.name.as_str()),
            EventKind::Started,
            "container started",
        )?;
        if wait && spec.health.is_some() {
            // The gate ends early if the container exits: a crash on start need not wait
            // for the deadline.
            let failure = tokio::select! {
                report = self.wait_healthy(spec, container, progress) => match report {
                    Ok(report) => (report.verdict != Verdict::Healthy).then(|| {
                        format!(
                            "{} after {:.1}s and {} probes; last: {}",
                            report.verdict,
                            report.elapsed.as_secs_f64(),
                            report.attempts.len(),
                            report.last_reason().unwrap_or("no answer")
                        )
                    }),
                    // It exited before the first probe: keep its output in the error too.
                    Err(Error::Unhealthy { reason, .. }) => Some(reason),
                    Err(error) => return Err(error),
                },
                exit = self.watch_exit(container) => Some(exit?),
            };
            if let Some(reason) = failure {
                // The container is about to be removed: keep what it said in the error.
                let output = self.last_output(container, 10).await;
                return Err(Error::Unhealthy {
                    instance: spec.name.to_string(),
                    reason: format!("{reason}{output}"),
                    undone: false,
                });
            }
            self.store.set_health(&spec.name, "healthy")?;
        }
        Ok(())
    }

    /// Resolves when the container has exited (or is restarting after an exit), with a
    /// sentence saying so; never resolves while it runs.
    async fn watch_exit(&self, container: &str) -> Result<String, Error> {
        loop {
            tokio::time::sleep(Duration::from_millis(250)).await;
            let Some(info) = self.inspect(container).await? else {
                return Ok(format!("its container {container} vanished"));
            };
            if matches!(
                info.state,
                ContainerState::Exited | ContainerState::Dead | ContainerState::Restarting
            ) {
                return Ok(exit_reason(container, &info));
            }
        }
    }

    /// The container's last `lines` lines of output, as a suffix for an error message.
    async fn last_output(&self, container: &str, lines: usize) -> String {
        use futures::StreamExt as _;
        let output: Vec<String> = self
            .engine
            .logs(
                container,
                LogOptions {
                    tail: Some(lines),
                    follow: false,
                },
            )
            .filter_map(|line| async move { line.ok().map(|l| l.text) })
            .collect()
            .await;
        let text: String = output.concat();
        let text = text.trim_end();
        if text.is_empty() {
            return String::new();
        }
        let indented: Vec<String> = text.lines().map(|line| format!("  | {line}")).collect();
        format!("; its last output:\n{}", indented.join("\n"))
    }

    /// Waits for the instance's `container` as its health policy says.
    pub(crate) async fn wait_healthy(
        &self,
        spec: &InstanceSpec,
        container: &str,
        progress: &(dyn Fn(Progress) + Send + Sync),
    ) -> Result<HealthReport, Error> {
        let Some(health) = &spec.health else {
            return Err(Error::InvalidSpec {
                instance: spec.name.to_string(),
                reason: "it has no health check".into(),
            });
        };
        let info = self
            .inspect(container)
            .await?
            .ok_or_else(|| Error::Unhealthy {
                instance: spec.name.to_string(),
                reason: format!("its container {container} vanished"),
                undone: false,
            })?;
        let target = self.health_target(spec, &info)?;
        Ok(self
            .prober
            .wait_healthy_with(&target, &health.policy, |attempt| {
                progress(Progress::Probed {
                    attempt: attempt.number,
                    health: attempt.result.outcome.to_string(),
                    reason: attempt.result.reason.clone(),
                    starting: !attempt.counted && attempt.at < health.policy.start_period,
                })
            })
            .await)
    }

    /// The probe target of an instance's container: its health port as published on the
    /// host for HTTP, so the probe sees what users see; its address on the fleet network
    /// for TCP, because Docker's userland proxy accepts connections on a published port
    /// even when nothing listens in the container.
    pub(crate) fn health_target(
        &self,
        spec: &InstanceSpec,
        container: &ContainerInfo,
    ) -> Result<fleet_health::ProbeTarget, Error> {
        let invalid = |reason: &str| Error::InvalidSpec {
            instance: spec.name.to_string(),
            reason: reason.to_owned(),
        };
        let health = spec
            .health
            .as_ref()
            .ok_or_else(|| invalid("it has no health check"))?;
        let port = spec
            .health_port()
            .ok_or_else(|| invalid("its health check has no port"))?;
        let health_error = |source| Error::Health {
            instance: spec.name.to_string(),
            source,
        };
        if health.kind == fleet_health::ProbeKind::Tcp {
            let Some(ip) = container.ips.get(&self.config.network) else {
                // A container that has exited already has no address: say that it
                // exited, not that the network is wrong.
                if container.state != ContainerState::Running {
                    return Err(Error::Unhealthy {
                        instance: spec.name.to_string(),
                        reason: exit_reason(&container.name, container),
                        undone: false,
                    });
                }
                return Err(invalid(&format!(
                    "its container {} has no address on the network {}",
                    container.name, self.config.network
                )));
            };
            return health.target(ip, port).map_err(health_error);
        }
        let host_port = self
            .store
            .instance_ports(&spec.name)?
            .into_iter()
            .find(|p| p.container == port)
            .map(|p| p.host)
            .ok_or_else(|| invalid("its health port is not published"))?;
        let host = match self.config.bind_address {
            IpAddr::V4(ip) if ip.is_unspecified() => "127.0.0.1".to_owned(),
            IpAddr::V6(ip) if ip.is_unspecified() => "::1".to_owned(),
            ip => ip.to_string(),
        };
        health.target(&host, host_port).map_err(health_error)
    }

    pub(crate) async fn resolve(&self, spec: &InstanceSpec) -> Result<ResolvedImage, Error> {
        self.resolver
            .resolve(&spec.image)
            .await
            .map_err(|source| Error::Registry {
                image: spec.image.to_string(),
                source,
            })
    }

    /// Allocates the spec's host ports: none the store, the engine or a bind test says is
    /// in use, and none of `taken`.
    async fn allocate_ports(
        &self,
        spec: &InstanceSpec,
        taken: &BTreeSet<u16>,
    ) -> Result<Vec<PortAllocation>, Error> {
        let published: HashMap<u16, String> = self
            .engine
            .published_ports()
            .await
            .map_err(engine_error("list published ports of", "all containers"))?
            .into_iter()
            .collect();
        let check = host_check(&published);
        let check = |port: u16| {
            if taken.contains(&port) {
                return Err(PortHolder::Process);
            }
            check(port)
        };
        self.store
            .allocate_ports(&spec.name, &spec.ports, &self.config.ports, &check)
    }

    pub(crate) async fn pull(
        &self,
        spec: &InstanceSpec,
        resolved: &ResolvedImage,
        progress: &(dyn Fn(Progress) + Send + Sync),
    ) -> Result<(), Error> {
        let has = self
            .engine
            .has_image(&resolved.reference)
            .await
            .map_err(engine_error("inspect image", &resolved.reference))?;
        if has {
            return Ok(());
        }
        let auth = self.resolver.pull_auth(spec.image.image().registry()).await;
        self.engine
            .pull(&resolved.reference, auth.as_ref(), &|p| {
                progress(Progress::Pulling(p))
            })
            .await
            .map_err(engine_error("pull", &resolved.reference))
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

    /// Creates (does not start) the container of `generation`, publishing the allocated ports.
    pub(crate) async fn create_container(
        &self,
        spec: &InstanceSpec,
        resolved: &ResolvedImage,
        generation: u64,
        progress: &(dyn Fn(Progress) + Send + Sync),
    ) -> Result<String, Error> {
        let name = self.container_name(&spec.name, generation);
        progress(Progress::Creating {
            container: name.clone(),
        });
        let network = self.config.network.clone();
        self.engine
            .ensure_network(&network, &self.scope_labels())
            .await
            .map_err(engine_error("create network", &network))?;
        let mut labels = self.scope_labels();
        labels.extend(spec.labels.clone());
        labels.insert(LABEL_INSTANCE.into(), spec.name.to_string());
        labels.insert(LABEL_GENERATION.into(), generation.to_string());
        labels.insert(LABEL_DIGEST.into(), resolved.digest.clone());
        let mut env = BTreeMap::from([("FLEET_INSTANCE".to_owned(), spec.name.to_string())]);
        env.extend(spec.resolved_env()?);
        let ports = self
            .store
            .instance_ports(&spec.name)?
            .into_iter()
            .map(|p| PublishedPort {
                container: p.container,
                host_ip: self.config.bind_address,
                host: p.host,
            })
            .collect();
        let mut binds = vec![Bind {
            host: self.data_dir(spec),
            container: DATA_MOUNT.into(),
            read_only: false,
        }];
        binds.extend(spec.volumes.iter().map(|v| Bind {
            host: v.host.clone(),
            container: v.container.clone(),
            read_only: v.read_only,
        }));
        let healthcheck = spec.docker_healthcheck.as_ref().map(|command| {
            let policy = spec
                .health
                .as_ref()
                .map(|h| h.policy.clone())
                .unwrap_or_else(crate::spec::default_policy);
            DockerHealthcheck {
                command: command.clone(),
                interval: policy.interval,
                timeout: policy.timeout,
                retries: policy.failure_threshold.get(),
                start_period: policy.start_period,
            }
        });
        let container = ContainerSpec {
            name: name.clone(),
            image: resolved.reference.clone(),
            env,
            labels,
            ports,
            binds,
            network: Some(network),
            memory_bytes: spec.resources.memory_bytes,
            nano_cpus: spec.resources.cpus.map(|c| (c * 1e9) as u64),
            restart: spec.restart,
            user: spec.user.clone(),
            healthcheck,
        };
        self.engine
            .create_container(&container)
            .await
            .map_err(engine_error("create container", name))
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
            name: record.spec.name.to_string(),
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

    /// Starts a stopped instance (recreating its container if it vanished) and waits
    /// until it is healthy.
    pub async fn start(&self, name: &InstanceName) -> Result<Instance, Error> {
        self.with_lease(name, "start", async || {
            let record = self.record(name)?;
            self.store.set_desired(name, DesiredState::Running)?;
            let container = self.ensure_container(&record, &|_| {}).await?;
            let info = self.inspect(&container).await?;
            if info
                .as_ref()
                .is_some_and(|i| i.state == crate::engine::ContainerState::Running)
            {
                return Ok(());
            }
            self.start_and_gate(&record.spec, &container, true, &|_| {})
                .await
        })
        .await?;
        self.get(name)
    }

    /// Stops an instance's container (SIGTERM, then SIGKILL after the grace period).
    pub async fn stop(&self, name: &InstanceName) -> Result<Instance, Error> {
        self.with_lease(name, "stop", async || {
            let record = self.record(name)?;
            self.store.set_desired(name, DesiredState::Stopped)?;
            if let Some(container) = &record.container_id {
                match self
                    .engine
                    .stop_container(container, self.config.stop_grace)
                    .await
                {
                    Ok(()) | Err(EngineError::NotFound { .. }) => {}
                    Err(source) => {
                        return Err(engine_error("stop container", container)(source));
                    }
                }
            }
            self.store
                .record_event(Some(name.as_str()), EventKind::Stopped, "container stopped")
        })
        .await?;
        self.get(name)
    }

    /// Stops and starts an instance.
    pub async fn restart(&self, name: &InstanceName) -> Result<Instance, Error> {
        self.stop(name).await?;
        self.start(name).await
    }

    /// Removes an instance: its containers, its ports and its store row. The data
    /// directory is kept, unless `purge` is given and returns `true` when asked about it
    /// (the caller confirms; this library never prompts). Returns whether data was purged.
    ///
    /// Only fleet's own data directory is ever deleted: the default location under the
    /// state directory, or one fleet created at `create`; and never one another
    /// instance uses. Otherwise nothing is removed and the error is
    /// [`Error::PurgeRefused`].
    pub async fn remove(
        &self,
        name: &InstanceName,
        purge: Option<&(dyn Fn(&Path) -> bool + Sync)>,
    ) -> Result<bool, Error> {
        self.with_lease(name, "remove", async || {
            let record = self.record(name)?;
            let data_dir = self.data_dir(&record.spec);
            let purge = match purge {
                Some(confirm) if data_dir.exists() => {
                    // Refuse before anything is removed: the operator can decide again.
                    self.check_purge(&record, &data_dir)?;
                    if !confirm(&data_dir) {
                        return Err(Error::ConfirmationRequired {
                            instance: name.to_string(),
                            path: data_dir,
                        });
                    }
                    true
                }
                _ => false,
            };
            for container in self.instance_containers(name).await? {
                self.remove_container(&container.id).await?;
            }
            if let Some(id) = &record.container_id {
                self.remove_container(id).await?;
            }
            self.store.delete_instance(name)?;
            if purge {
                std::fs::remove_dir_all(&data_dir).map_err(|source| Error::Io {
                    path: data_dir.clone(),
                    source,
                })?;
                // The default layout keeps data under <state>/instances/<name>/: drop it too.
                let default = self.dirs.default_data_dir(name);
                if data_dir == default
                    && let Some(parent) = default.parent()
                {
                    let _ = std::fs::remove_dir(parent);
                }
            }
            let what = if purge {
                "removed with its data"
            } else {
                "removed; data kept"
            };
            self.store
                .record_event(Some(name.as_str()), EventKind::Removed, what)?;
            Ok(purge)
        })
        .await
    }

    /// Refuses to delete `data_dir` unless it is fleet's own and no other instance uses
    /// it (see [`data_dir::purge_refusal`]).
    fn check_purge(&self, record: &InstanceRecord, data_dir: &Path) -> Result<(), Error> {
        let name = &record.spec.name;
        let others: Vec<(InstanceName, PathBuf)> = self
            .store
            .instances()?
            .into_iter()
            .filter(|other| other.spec.name != *name)
            .map(|other| (other.spec.name.clone(), self.data_dir(&other.spec)))
            .collect();
        let default = self.dirs.default_data_dir(name);
        match data_dir::purge_refusal(name, data_dir, &default, record.data_dir_created, &others) {
            None => Ok(()),
            Some(reason) => Err(Error::PurgeRefused {
                instance: name.to_string(),
                path: data_dir.to_owned(),
                reason,
            }),
        }
    }

    /// A container's output.
    pub fn logs(
        &self,
        name: &InstanceName,
        options: LogOptions,
    ) -> Result<BoxStream<'static, Result<LogLine, EngineError>>, Error> {
        let record = self.record(name)?;
        let container = record.container_id.ok_or_else(|| Error::InvalidSpec {
            instance: name.to_string(),
            reason: "it has no container (run `fleet reconcile` or `fleet start`)".into(),
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

    pub(crate) async fn inspect(&self, container: &str) -> Result<Option<ContainerInfo>, Error> {
        self.engine
            .inspect_container(container)
            .await
            .map_err(engine_error("inspect container", &container))
    }

    pub(crate) async fn remove_container(&self, container: &str) -> Result<(), Error> {
        match self.engine.remove_container(container).await {
            Ok(()) | Err(EngineError::NotFound { .. }) => Ok(()),
            Err(source) => Err(engine_error("remove container", container)(source)),
        }
    }

    /// The containers of this fleet that carry `name`'s instance label.
    pub(crate) async fn instance_containers(
        &self,
        name: &InstanceName,
    ) -> Result<Vec<ContainerInfo>, Error> {
        let scope = self.store.scope().to_owned();
        self.engine
            .list_containers(&[(LABEL_SCOPE, &scope), (LABEL_INSTANCE, name.as_str())])
            .await
            .map_err(engine_error("list containers of", name))
    }

    /// The instance's container, recreated from the stored digest if it vanished.
    pub(crate) async fn ensure_container(
        &self,
        record: &InstanceRecord,
        progress: &(dyn Fn(Progress) + Send + Sync),
    ) -> Result<String, Error> {
        if let Some(id) = &record.container_id
            && self.inspect(id).await?.is_some()
        {
            return Ok(id.clone());
        }
        self.recreate(record, progress).await
    }

    /// Makes a new container (next generation) for the stored digest and records it.
    pub(crate) async fn recreate(
        &self,
        record: &InstanceRecord,
        progress: &(dyn Fn(Progress) + Send + Sync),
    ) -> Result<String, Error> {
        let spec = &record.spec;
        let resolved = match &record.digest {
            Some(digest) => ResolvedImage {
                tag: record.tag.clone(),
                digest: digest.clone(),
                reference: format!("{}@{digest}", spec.image.image().name()),
            },
            None => self.resolve(spec).await?,
        };
        self.pull(spec, &resolved, progress).await?;
        if let Some(old) = &record.container_id {
            self.remove_container(old).await?;
        }
        let generation = record.generation + 1;
        let container = self
            .create_container(spec, &resolved, generation, progress)
            .await?;
        self.store.set_deployed(
            &spec.name,
            generation,
            resolved.tag.as_deref(),
            &resolved.digest,
            &container,
        )?;
        Ok(container)
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
        let result = f().await;
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

/// "its container exited with code 3": what the gate reports when a container exits.
fn exit_reason(container: &str, info: &ContainerInfo) -> String {
    if info.state == ContainerState::Created {
        return format!("its container {container} never started");
    }
    let code = info
        .exit_code
        .map_or_else(|| "unknown".to_owned(), |c| c.to_string());
    let restarting = if info.state == ContainerState::Restarting {
        ", restarting"
    } else {
        ""
    };
    format!("its container exited with code {code}{restarting}")
}

/// The channel an instance follows, as the operator wrote it.
pub(crate) fn channel_text(spec: &InstanceSpec) -> String {
    match spec.image.channel() {
        fleet_registry::Channel::Digest(digest) => format!("@{digest}"),
        channel => channel.to_string(),
    }
}

/// What a failed create must take back.
#[derive(Debug, Default)]
struct Undo {
    instance: Option<InstanceName>,
    /// The container's id and name.
    container: Option<(String, String)>,
    data_dir: Option<PathBuf>,
}

impl Undo {
    /// Takes back what was done; returns what could not be taken back, one sentence
    /// each (empty when everything was).
    async fn run(self, fleet: &Fleet) -> Vec<String> {
        let mut left = Vec::new();
        let mut remove =
            async |id: &str, container: &str| match fleet.engine.remove_container(id).await {
                Ok(()) | Err(EngineError::NotFound { .. }) => {}
                Err(error) => left.push(format!(
                    "container {container} is left: {}",
                    crate::reconcile::error_chain(&error)
                )),
            };
        if let Some((id, container)) = &self.container {
            remove(id, container).await;
        }
        if let Some(name) = &self.instance {
            // Also catches a container created but not recorded.
            match fleet.instance_containers(name).await {
                Ok(containers) => {
                    for container in containers {
                        if self
                            .container
                            .as_ref()
                            .is_none_or(|(id, _)| *id != container.id)
                        {
                            remove(&container.id, &container.name).await;
                        }
                    }
                }
                Err(error) => left.push(format!(
                    "containers of {name} could not be listed: {}",
                    crate::reconcile::error_chain(&error)
                )),
            }
            if let Err(error) = fleet.store.delete_instance(name) {
                left.push(format!(
                    "the store still lists {name}: {}",
                    crate::reconcile::error_chain(&error)
                ));
            }
        }
        if let Some(dir) = &self.data_dir
            && let Err(error) = std::fs::remove_dir_all(dir)
            && error.kind() != std::io::ErrorKind::NotFound
        {
            left.push(format!("data directory {} is left: {error}", dir.display()));
        }
        left
    }
}
