//! An in-memory engine for fast tests of fleet's logic (rollback on failure, reconcile
//! decisions). It never replaces the tests against the real Docker Engine.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use futures::StreamExt as _;
use futures::stream::BoxStream;

use super::{
    ContainerInfo, ContainerSpec, ContainerState, Engine, EngineEvent, ExecOutput, LogLine,
    LogOptions, PullProgress, RegistryAuth,
};
use crate::error::EngineError;

/// An engine that keeps containers in memory. Operations can be made to fail with
/// [`FakeEngine::fail`].
#[derive(Debug, Default)]
pub struct FakeEngine {
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    images: BTreeSet<String>,
    image_users: HashMap<String, String>,
    networks: BTreeSet<String>,
    containers: BTreeMap<String, ContainerInfo>,
    foreign_ports: Vec<(u16, String)>,
    failures: HashMap<&'static str, EngineError>,
    next_id: u64,
    execs: Vec<(String, Vec<String>)>,
    exec_result: Option<ExecOutput>,
}

impl FakeEngine {
    /// An empty engine.
    pub fn new() -> Self {
        Self::default()
    }

    fn inner(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Makes the next call of `operation` (`pull`, `create_container`, `start_container`,
    /// `stop_container`, `remove_container`, `ensure_network`) fail with `message`.
    pub fn fail(&self, operation: &'static str, message: &str) {
        self.fail_with(operation, EngineError::other(message));
    }

    /// Makes the next call of `operation` fail with `error`.
    pub fn fail_with(&self, operation: &'static str, error: EngineError) {
        self.inner().failures.insert(operation, error);
    }

    /// Adds an image that can be "pulled", running as `user`.
    pub fn add_image(&self, image: &str, user: Option<&str>) {
        let mut inner = self.inner();
        inner.images.insert(image.to_owned());
        if let Some(user) = user {
            inner.image_users.insert(image.to_owned(), user.to_owned());
        }
    }

    /// Pretends a foreign container publishes `port`.
    pub fn add_foreign_port(&self, port: u16, container: &str) {
        self.inner()
            .foreign_ports
            .push((port, container.to_owned()));
    }

    /// What `exec` answers from now on (default: exit 0 and a line naming the command).
    pub fn set_exec_result(&self, exit_code: i64, output: &str) {
        self.inner().exec_result = Some(ExecOutput {
            exit_code: Some(exit_code),
            output: output.to_owned(),
        });
    }

    /// Every command run with `exec`: the container's name and the command.
    pub fn execs(&self) -> Vec<(String, Vec<String>)> {
        self.inner().execs.clone()
    }

    /// Every container, as the engine sees it.
    pub fn containers(&self) -> Vec<ContainerInfo> {
        self.inner().containers.values().cloned().collect()
    }

    /// Removes a container behind fleet's back.
    pub fn delete_behind_the_back(&self, id: &str) {
        self.inner().containers.remove(id);
    }

    /// Changes a container's state behind fleet's back (it crashed, someone stopped it).
    pub fn set_state(&self, id: &str, state: ContainerState) {
        if let Some(container) = self.inner().containers.get_mut(id) {
            container.state = state;
        }
    }

    /// Adds a container as if another tool had created it.
    pub fn insert_container(&self, info: ContainerInfo) {
        self.inner().containers.insert(info.id.clone(), info);
    }

    fn check(&self, operation: &'static str) -> Result<(), EngineError> {
        match self.inner().failures.remove(operation) {
            Some(error) => Err(error),
            None => Ok(()),
        }
    }

    fn with_container<T>(
        &self,
        id: &str,
        f: impl FnOnce(&mut ContainerInfo) -> T,
    ) -> Result<T, EngineError> {
        let mut inner = self.inner();
        let container = inner
            .containers
            .values_mut()
            .find(|c| c.id == id || c.name == id)
            .ok_or_else(|| EngineError::NotFound {
                message: format!("no such container: {id}"),
            })?;
        Ok(f(container))
    }
}

#[async_trait]
impl Engine for FakeEngine {
    fn host(&self) -> &str {
        "fake://"
    }

    async fn ping(&self) -> Result<(), EngineError> {
        Ok(())
    }

    async fn pull(
        &self,
        image: &str,
        _auth: Option<&RegistryAuth>,
        progress: &(dyn Fn(PullProgress) + Send + Sync),
    ) -> Result<(), EngineError> {
        self.check("pull")?;
        let known = self
            .inner()
            .images
            .iter()
            .any(|i| i == image || image.starts_with(&format!("{i}@")));
        if !known {
            return Err(EngineError::NotFound {
                message: format!("manifest for {image} not found"),
            });
        }
        self.inner().images.insert(image.to_owned());
        progress(PullProgress {
            layer: None,
            status: format!("Pulled {image}"),
            current: None,
            total: None,
        });
        Ok(())
    }

    async fn has_image(&self, image: &str) -> Result<bool, EngineError> {
        Ok(self.inner().images.contains(image))
    }

    async fn image_user(&self, image: &str) -> Result<Option<String>, EngineError> {
        let inner = self.inner();
        let base = image.split('@').next().unwrap_or(image);
        Ok(inner
            .image_users
            .get(image)
            .or_else(|| inner.image_users.get(base))
            .cloned())
    }

    async fn ensure_network(
        &self,
        name: &str,
        _labels: &BTreeMap<String, String>,
    ) -> Result<(), EngineError> {
        self.check("ensure_network")?;
        self.inner().networks.insert(name.to_owned());
        Ok(())
    }

    async fn create_container(&self, spec: &ContainerSpec) -> Result<String, EngineError> {
        self.check("create_container")?;
        let mut inner = self.inner();
        if inner.containers.values().any(|c| c.name == spec.name) {
            return Err(EngineError::Conflict {
                message: format!("container name {} is already in use", spec.name),
            });
        }
        inner.next_id += 1;
        let id = format!("fake{:060}", inner.next_id);
        let network = spec.network.clone().unwrap_or_else(|| "bridge".into());
        let info = ContainerInfo {
            id: id.clone(),
            name: spec.name.clone(),
            image: spec.image.clone(),
            labels: spec.labels.clone(),
            state: ContainerState::Created,
            exit_code: None,
            docker_health: None,
            ips: BTreeMap::from([(network, format!("10.99.0.{}", inner.next_id % 250 + 2))]),
            ports: spec.ports.clone(),
        };
        inner.containers.insert(id.clone(), info);
        Ok(id)
    }

    async fn start_container(&self, id: &str) -> Result<(), EngineError> {
        self.check("start_container")?;
        self.with_container(id, |c| c.state = ContainerState::Running)
    }

    async fn stop_container(&self, id: &str, _grace: Duration) -> Result<(), EngineError> {
        self.check("stop_container")?;
        self.with_container(id, |c| {
            c.state = ContainerState::Exited;
            c.exit_code = Some(0);
        })
    }

    async fn remove_container(&self, id: &str) -> Result<(), EngineError> {
        self.check("remove_container")?;
        let mut inner = self.inner();
        let key = inner
            .containers
            .values()
            .find(|c| c.id == id || c.name == id)
            .map(|c| c.id.clone());
        match key {
            Some(key) => {
                inner.containers.remove(&key);
                Ok(())
            }
            None => Err(EngineError::NotFound {
                message: format!("no such container: {id}"),
            }),
        }
    }

    async fn inspect_container(&self, id: &str) -> Result<Option<ContainerInfo>, EngineError> {
        Ok(self
            .inner()
            .containers
            .values()
            .find(|c| c.id == id || c.name == id)
            .cloned())
    }

    async fn list_containers(
        &self,
        labels: &[(&str, &str)],
    ) -> Result<Vec<ContainerInfo>, EngineError> {
        let inner = self.inner();
        Ok(inner
            .containers
            .values()
            .filter(|c| {
                labels
                    .iter()
                    .all(|(k, v)| c.labels.get(*k).map(String::as_str) == Some(*v))
            })
            .cloned()
            .collect())
    }

    async fn published_ports(&self) -> Result<Vec<(u16, String)>, EngineError> {
        let inner = self.inner();
        let mut ports: Vec<(u16, String)> = inner.foreign_ports.clone();
        for container in inner.containers.values() {
            ports.extend(
                container
                    .ports
                    .iter()
                    .map(|p| (p.host, container.name.clone())),
            );
        }
        ports.sort();
        Ok(ports)
    }

    async fn exec(&self, id: &str, command: &[String]) -> Result<ExecOutput, EngineError> {
        self.check("exec")?;
        let (name, state) = self.with_container(id, |c| (c.name.clone(), c.state))?;
        if state != ContainerState::Running {
            return Err(EngineError::Conflict {
                message: format!("container {name} is not running"),
            });
        }
        let mut inner = self.inner();
        inner.execs.push((name, command.to_vec()));
        Ok(inner.exec_result.clone().unwrap_or_else(|| ExecOutput {
            exit_code: Some(0),
            output: format!("ran {}\n", command.join(" ")),
        }))
    }

    fn logs(
        &self,
        id: &str,
        _options: LogOptions,
    ) -> BoxStream<'static, Result<LogLine, EngineError>> {
        let line = LogLine {
            stream: "stdout",
            text: format!("fake log of {id}\n"),
        };
        futures::stream::iter([Ok(line)]).boxed()
    }

    fn events(
        &self,
        _labels: &[(&str, &str)],
    ) -> BoxStream<'static, Result<EngineEvent, EngineError>> {
        futures::stream::empty().boxed()
    }
}
