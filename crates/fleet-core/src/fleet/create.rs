//! `Fleet::create`: validate, resolve, allocate ports, pull, prepare the data
//! directory, create and start the container, pass the health gate; every step undone
//! if a later one fails.

use std::collections::{BTreeSet, HashMap};

use std::path::PathBuf;

use super::{Fleet, OnProgress};
use crate::data_dir;

use crate::error::{EngineError, EngineOperation, Error, PortHolder, engine_error, error_chain};
use crate::name::InstanceName;
use crate::ports::host_check;
use crate::resolve::ResolvedImage;
use crate::spec::InstanceSpec;
use crate::store::{DesiredState, EventKind, PortAllocation};
use crate::view::{Instance, Progress};

/// How many allocated host ports a create gives up, taken by someone else between
/// allocation and start, before it fails.
const PORT_RETRIES: usize = 5;

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

impl Fleet {
    /// Creates an instance: validate, allocate ports, resolve and pull the image, create
    /// the data directory (owned by the image's user), create and start the container,
    /// wait until healthy. If any step fails, everything done so far is undone: no
    /// container, no allocated port, no store row, no data directory fleet made.
    pub async fn create(
        &self,
        spec: InstanceSpec,
        options: CreateOptions,
        progress: &OnProgress<'_>,
    ) -> Result<Instance, Error> {
        spec.validate()?;
        // Docker refuses a CPU limit above its host's CPUs, but only after the pull.
        if let Some(cpus) = self
            .engine
            .cpus()
            .await
            .map_err(engine_error(EngineOperation::ReadCpus, self.engine.host()))?
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
        progress: &OnProgress<'_>,
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
        // Templated settings need the allocated ports: render them now, so a key without
        // a value fails the create before anything is pulled or made.
        let context = self.template_context(spec)?;
        spec.rendered_env(&context)?;
        spec.rendered_volumes(&context)?;

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
                .map_err(engine_error(
                    EngineOperation::InspectImage,
                    &resolved.reference,
                ))?,
        };
        data_dir::prepare(name, &data_dir, undo.data_dir.is_some(), user.as_deref())?;
        if undo.data_dir.is_some() {
            self.store.set_data_dir_created(name)?;
        }

        let generation = 1;
        // With `fleet serve` running, a started instance is reached through its proxy:
        // the container publishes nothing. (One created stopped publishes its ports
        // itself, and moves behind the proxy at its next update.)
        let behind_proxy = options.start && self.serve_client().await.is_some();
        // Another fleet on this engine (an overlapping port range) may take an allocated
        // port between allocation and start: Docker then refuses to start. An allocated
        // port is then given up for the next free one; a fixed one is the operator's.
        let mut taken = BTreeSet::new();
        loop {
            let container = self
                .create_container(spec, &resolved, generation, !behind_proxy, progress)
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
                Ok(()) if behind_proxy => {
                    undo.routed = true;
                    self.route_to(spec, &container, true).await?;
                    return Ok(());
                }
                result => return result,
            }
        }
    }

    /// Allocates the spec's host ports: none the store, the engine or a bind test says is
    /// in use, and none of `taken`.
    pub(super) async fn allocate_ports(
        &self,
        spec: &InstanceSpec,
        taken: &BTreeSet<u16>,
    ) -> Result<Vec<PortAllocation>, Error> {
        let published: HashMap<u16, String> = self
            .engine
            .published_ports()
            .await
            .map_err(engine_error(
                EngineOperation::ListPublishedPorts,
                "all containers",
            ))?
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

    pub(crate) async fn resolve(&self, spec: &InstanceSpec) -> Result<ResolvedImage, Error> {
        self.resolver
            .resolve(&spec.image)
            .await
            .map_err(|source| Error::Registry {
                image: spec.image.to_string(),
                source,
            })
    }

    pub(crate) async fn pull(
        &self,
        spec: &InstanceSpec,
        resolved: &ResolvedImage,
        progress: &OnProgress<'_>,
    ) -> Result<(), Error> {
        let has = self
            .engine
            .has_image(&resolved.reference)
            .await
            .map_err(engine_error(
                EngineOperation::InspectImage,
                &resolved.reference,
            ))?;
        if has {
            return Ok(());
        }
        let auth = self.resolver.pull_auth(spec.image.image().registry()).await;
        self.engine
            .pull(&resolved.reference, auth.as_ref(), &|p| {
                progress(Progress::Pulling(p))
            })
            .await
            .map_err(engine_error(EngineOperation::Pull, &resolved.reference))
    }
}

/// What a failed create must take back.
#[derive(Debug, Default)]
struct Undo {
    instance: Option<InstanceName>,
    /// Routes were (perhaps) given to `fleet serve`.
    routed: bool,
    /// The container's id and name.
    container: Option<(String, String)>,
    data_dir: Option<PathBuf>,
}

impl Undo {
    /// Takes back what was done; returns what could not be taken back, one sentence
    /// each (empty when everything was).
    async fn run(self, fleet: &Fleet) -> Vec<String> {
        let mut left = Vec::new();
        if self.routed
            && let Some(name) = &self.instance
            && let Err(error) = fleet.unroute(name).await
        {
            left.push(format!(
                "the routes of {name} are left in fleet serve: {}",
                error_chain(&error)
            ));
        }
        let mut remove =
            async |id: &str, container: &str| match fleet.engine.remove_container(id).await {
                Ok(()) | Err(EngineError::NotFound { .. }) => {}
                Err(error) => left.push(format!(
                    "container {container} is left: {}",
                    error_chain(&error)
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
                    error_chain(&error)
                )),
            }
            if let Err(error) = fleet.store.delete_instance(name) {
                left.push(format!(
                    "the store still lists {name}: {}",
                    error_chain(&error)
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
