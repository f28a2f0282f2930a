//! The Docker Engine through bollard.
//!
//! Connects the way the Docker CLI does: `DOCKER_HOST` (`unix://`, `tcp://`, with
//! `DOCKER_TLS_VERIFY` and `DOCKER_CERT_PATH` for TLS) or the default socket, then
//! negotiates the API version, so older engines (Docker 20.10 speaks API 1.41) work.
//! Podman's Docker-compatible socket works the same way:
//! `DOCKER_HOST=unix:///run/podman/podman.sock`.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::time::Duration;

use async_trait::async_trait;
use bollard::Docker;
use bollard::auth::DockerCredentials;
use bollard::models::{
    ContainerCreateBody, ContainerStateStatusEnum, EndpointSettings, HealthConfig, HostConfig,
    NetworkCreateRequest, NetworkingConfig, PortBinding, RestartPolicy as DockerRestart,
    RestartPolicyNameEnum,
};
use bollard::query_parameters::{
    CreateContainerOptionsBuilder, CreateImageOptionsBuilder, EventsOptionsBuilder,
    InspectContainerOptions, ListContainersOptionsBuilder, LogsOptionsBuilder,
    RemoveContainerOptionsBuilder, StopContainerOptionsBuilder,
};
use futures::stream::BoxStream;
use futures::{StreamExt as _, TryStreamExt as _};

use super::{
    ContainerInfo, ContainerSpec, ContainerState, Engine, EngineEvent, ExecOutput, LogLine,
    LogOptions, PublishedPort, PullProgress, RegistryAuth,
};
use crate::error::EngineError;
use crate::spec::RestartPolicy;

/// The Docker Engine (or anything that speaks its API).
#[derive(Debug, Clone)]
pub struct DockerEngine {
    docker: Docker,
    host: String,
    timeouts: EngineTimeouts,
}

/// How long fleet waits for the engine.
///
/// A hung engine must fail a command in seconds, not after bollard's default of two
/// minutes per call. Streams (pulls, logs, events) are bounded by `request` until their
/// first byte only; stopping a container gets its grace period on top.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct EngineTimeouts {
    /// Connecting and negotiating the API version (`connect_timeout`).
    #[serde(rename = "connect_timeout", with = "fleet_health::human_duration")]
    pub connect: Duration,
    /// One control call (inspect, create, start, remove, list), until the engine
    /// answers (`request_timeout`).
    #[serde(rename = "request_timeout", with = "fleet_health::human_duration")]
    pub request: Duration,
}

impl Default for EngineTimeouts {
    fn default() -> Self {
        Self {
            connect: Duration::from_secs(5),
            request: Duration::from_secs(30),
        }
    }
}

impl DockerEngine {
    /// Connects like the Docker CLI does and negotiates the API version.
    pub async fn connect() -> Result<Self, EngineError> {
        Self::connect_with(EngineTimeouts::default()).await
    }

    /// Connects like the Docker CLI does (`DOCKER_HOST`, else the default socket), with
    /// these timeouts.
    pub async fn connect_with(timeouts: EngineTimeouts) -> Result<Self, EngineError> {
        let host = std::env::var("DOCKER_HOST")
            .unwrap_or_else(|_| "unix:///var/run/docker.sock".to_owned());
        Self::connect_to_with(&host, timeouts).await
    }

    /// Connects to the engine at `host` (`unix:///path`, `tcp://host:port`,
    /// `https://...`) and negotiates the API version.
    pub async fn connect_to(host: &str) -> Result<Self, EngineError> {
        Self::connect_to_with(host, EngineTimeouts::default()).await
    }

    /// Connects to the engine at `host` with these timeouts.
    pub async fn connect_to_with(
        host: &str,
        timeouts: EngineTimeouts,
    ) -> Result<Self, EngineError> {
        let docker = Docker::connect_with_host(host)
            .map_err(|e| connection_error(host, timeouts.connect, e))?
            .with_timeout(timeouts.connect);
        let docker = docker
            .negotiate_version()
            .await
            .map_err(|e| connection_error(host, timeouts.connect, e))?
            .with_timeout(timeouts.request);
        Ok(Self {
            docker,
            host: host.to_owned(),
            timeouts,
        })
    }

    /// Wraps an existing bollard client.
    pub fn from_bollard(docker: Docker, host: &str) -> Self {
        Self {
            timeouts: EngineTimeouts {
                request: docker.timeout(),
                ..EngineTimeouts::default()
            },
            docker,
            host: host.to_owned(),
        }
    }

    /// The bollard client, for what this trait does not cover.
    pub fn bollard(&self) -> &Docker {
        &self.docker
    }

    fn error(&self, e: bollard::errors::Error) -> EngineError {
        use bollard::errors::Error as B;
        match e {
            B::DockerResponseServerError {
                status_code: 404,
                message,
            } => EngineError::NotFound { message },
            B::DockerResponseServerError {
                status_code: 409,
                message,
            } => EngineError::Conflict { message },
            B::DockerResponseServerError { message, .. }
                if message.contains("port is already allocated")
                    || message.contains("address already in use") =>
            {
                EngineError::PortAllocated {
                    port: bound_port(&message),
                    message,
                }
            }
            B::DockerResponseServerError {
                status_code,
                message,
            } => EngineError::Other {
                status: Some(status_code),
                message,
                source: None,
            },
            other => connection_error(&self.host, self.timeouts.request, other),
        }
    }
}

/// The host port in Docker's "Bind for 0.0.0.0:5001 failed: port is already allocated"
/// (or "listen tcp4 0.0.0.0:5001: bind: address already in use").
fn bound_port(message: &str) -> Option<u16> {
    let before = message
        .find(" failed: port is already allocated")
        .or_else(|| message.find(": bind: address already in use"))?;
    let address = &message[..before];
    let colon = address.rfind(':')?;
    address[colon + 1..].parse().ok()
}

/// What a failure to talk to the engine at `host` means: permission denied on its
/// socket, no answer within `timeout`, not reachable at all, or another error.
fn connection_error(host: &str, timeout: Duration, error: bollard::errors::Error) -> EngineError {
    use bollard::errors::Error as B;
    if matches!(error, B::RequestTimeoutError) {
        return EngineError::Timeout {
            host: host.to_owned(),
            after: timeout,
        };
    }
    let io_kind = {
        let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(&error);
        let mut kind = None;
        while let Some(c) = cause {
            if let Some(io) = c.downcast_ref::<std::io::Error>() {
                kind = Some(io.kind());
                break;
            }
            cause = c.source();
        }
        kind
    };
    let host = host.to_owned();
    let source = Box::new(error);
    match io_kind {
        Some(std::io::ErrorKind::PermissionDenied) => {
            EngineError::PermissionDenied { host, source }
        }
        Some(_) => EngineError::Unreachable { host, source },
        None if matches!(
            *source,
            B::HyperResponseError { .. }
                | B::HyperLegacyError { .. }
                | B::IOError { .. }
                | B::SocketNotFoundError(_)
        ) =>
        {
            EngineError::Unreachable { host, source }
        }
        None => EngineError::Other {
            status: None,
            message: format!("the engine at {host} could not be used"),
            source: Some(source),
        },
    }
}

fn credentials(auth: Option<&RegistryAuth>) -> Option<DockerCredentials> {
    auth.map(|a| DockerCredentials {
        username: Some(a.username.clone()),
        password: Some(a.password.clone()),
        serveraddress: Some(a.server.clone()),
        ..Default::default()
    })
}

fn restart_policy(policy: RestartPolicy) -> DockerRestart {
    let (name, retries) = match policy {
        RestartPolicy::No => (RestartPolicyNameEnum::NO, None),
        RestartPolicy::Always => (RestartPolicyNameEnum::ALWAYS, None),
        RestartPolicy::UnlessStopped => (RestartPolicyNameEnum::UNLESS_STOPPED, None),
        RestartPolicy::OnFailure(n) => (RestartPolicyNameEnum::ON_FAILURE, Some(i64::from(n))),
    };
    DockerRestart {
        name: Some(name),
        maximum_retry_count: retries,
    }
}

fn nanos(duration: Duration) -> i64 {
    duration.as_nanos().min(i64::MAX as u128) as i64
}

fn state(status: Option<ContainerStateStatusEnum>) -> ContainerState {
    match status {
        Some(ContainerStateStatusEnum::RUNNING) => ContainerState::Running,
        Some(ContainerStateStatusEnum::PAUSED) => ContainerState::Paused,
        Some(ContainerStateStatusEnum::RESTARTING) => ContainerState::Restarting,
        Some(ContainerStateStatusEnum::EXITED | ContainerStateStatusEnum::STOPPING) => {
            ContainerState::Exited
        }
        Some(ContainerStateStatusEnum::CREATED) => ContainerState::Created,
        _ => ContainerState::Dead,
    }
}

fn label_filters(labels: &[(&str, &str)]) -> HashMap<String, Vec<String>> {
    HashMap::from([(
        "label".to_owned(),
        labels.iter().map(|(k, v)| format!("{k}={v}")).collect(),
    )])
}

#[async_trait]
impl Engine for DockerEngine {
    fn host(&self) -> &str {
        &self.host
    }

    async fn ping(&self) -> Result<(), EngineError> {
        self.docker
            .ping()
            .await
            .map(|_| ())
            .map_err(|e| self.error(e))
    }

    async fn cpus(&self) -> Result<Option<usize>, EngineError> {
        let info = self.docker.info().await.map_err(|e| self.error(e))?;
        Ok(info.ncpu.and_then(|n| usize::try_from(n).ok()))
    }

    async fn pull(
        &self,
        image: &str,
        auth: Option<&RegistryAuth>,
        progress: &(dyn Fn(PullProgress) + Send + Sync),
    ) -> Result<(), EngineError> {
        let options = CreateImageOptionsBuilder::default()
            .from_image(image)
            .build();
        let mut stream = self
            .docker
            .create_image(Some(options), None, credentials(auth));
        while let Some(item) = stream.next().await {
            let info = item.map_err(|e| self.error(e))?;
            if let Some(message) = info.error_detail.and_then(|e| e.message) {
                return Err(
                    if message.contains("not found") || message.contains("manifest unknown") {
                        EngineError::NotFound { message }
                    } else {
                        EngineError::other(message)
                    },
                );
            }
            let detail = info.progress_detail.unwrap_or_default();
            progress(PullProgress {
                layer: info.id,
                status: info.status.unwrap_or_default(),
                current: detail.current.and_then(|c| u64::try_from(c).ok()),
                total: detail.total.and_then(|t| u64::try_from(t).ok()),
            });
        }
        Ok(())
    }

    async fn has_image(&self, image: &str) -> Result<bool, EngineError> {
        match self.docker.inspect_image(image).await {
            Ok(_) => Ok(true),
            Err(e) => match self.error(e) {
                EngineError::NotFound { .. } => Ok(false),
                other => Err(other),
            },
        }
    }

    async fn image_user(&self, image: &str) -> Result<Option<String>, EngineError> {
        let inspect = self
            .docker
            .inspect_image(image)
            .await
            .map_err(|e| self.error(e))?;
        Ok(inspect
            .config
            .and_then(|c| c.user)
            .filter(|u| !u.is_empty()))
    }

    async fn ensure_network(
        &self,
        name: &str,
        labels: &BTreeMap<String, String>,
    ) -> Result<(), EngineError> {
        match self
            .docker
            .inspect_network(
                name,
                None::<bollard::query_parameters::InspectNetworkOptions>,
            )
            .await
        {
            Ok(_) => return Ok(()),
            Err(e) => match self.error(e) {
                EngineError::NotFound { .. } => {}
                other => return Err(other),
            },
        }
        let request = NetworkCreateRequest {
            name: name.to_owned(),
            driver: Some("bridge".into()),
            labels: Some(labels.iter().map(|(k, v)| (k.clone(), v.clone())).collect()),
            ..Default::default()
        };
        match self.docker.create_network(request).await {
            Ok(_) => Ok(()),
            // Another process created it in the meantime.
            Err(e) => match self.error(e) {
                EngineError::Conflict { .. } => Ok(()),
                EngineError::Other { message, .. } if message.contains("already exists") => Ok(()),
                other => Err(other),
            },
        }
    }

    async fn create_container(&self, spec: &ContainerSpec) -> Result<String, EngineError> {
        let mut bindings: HashMap<String, Option<Vec<PortBinding>>> = HashMap::new();
        for port in &spec.ports {
            bindings
                .entry(format!("{}/tcp", port.container))
                .or_insert_with(|| Some(Vec::new()))
                .get_or_insert_default()
                .push(PortBinding {
                    host_ip: Some(port.host_ip.to_string()),
                    host_port: Some(port.host.to_string()),
                });
        }
        let binds = spec
            .binds
            .iter()
            .map(|b| {
                format!(
                    "{}:{}{}",
                    b.host.display(),
                    b.container,
                    if b.read_only { ":ro" } else { "" }
                )
            })
            .collect::<Vec<_>>();
        let host_config = HostConfig {
            port_bindings: Some(bindings.clone()),
            binds: (!binds.is_empty()).then_some(binds),
            network_mode: spec.network.clone(),
            memory: spec.memory_bytes.map(|m| m as i64),
            nano_cpus: spec.nano_cpus.map(|n| n as i64),
            restart_policy: Some(restart_policy(spec.restart)),
            ..Default::default()
        };
        let healthcheck = spec.healthcheck.as_ref().map(|h| HealthConfig {
            test: Some(
                std::iter::once("CMD".to_owned())
                    .chain(h.command.iter().cloned())
                    .collect(),
            ),
            interval: Some(nanos(h.interval)),
            timeout: Some(nanos(h.timeout)),
            retries: Some(i64::from(h.retries)),
            start_period: Some(nanos(h.start_period)),
            ..Default::default()
        });
        let networking = spec.network.as_ref().map(|network| NetworkingConfig {
            endpoints_config: Some(HashMap::from([(
                network.clone(),
                EndpointSettings::default(),
            )])),
        });
        let body = ContainerCreateBody {
            image: Some(spec.image.clone()),
            env: Some(spec.env.iter().map(|(k, v)| format!("{k}={v}")).collect()),
            labels: Some(
                spec.labels
                    .iter()
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect(),
            ),
            exposed_ports: Some(bindings.keys().cloned().collect()),
            user: spec.user.clone(),
            healthcheck,
            host_config: Some(host_config),
            networking_config: networking,
            ..Default::default()
        };
        let options = CreateContainerOptionsBuilder::default()
            .name(&spec.name)
            .build();
        let created = self
            .docker
            .create_container(Some(options), body)
            .await
            .map_err(|e| self.error(e))?;
        Ok(created.id)
    }

    async fn start_container(&self, id: &str) -> Result<(), EngineError> {
        self.docker
            .start_container(id, None)
            .await
            .map_err(|e| self.error(e))
    }

    async fn stop_container(&self, id: &str, grace: Duration) -> Result<(), EngineError> {
        let seconds = i32::try_from(grace.as_secs()).unwrap_or(i32::MAX);
        let options = StopContainerOptionsBuilder::default().t(seconds).build();
        // The engine answers once the container stopped: give it the grace period too.
        let docker = self
            .docker
            .clone()
            .with_timeout(self.timeouts.request + grace);
        match docker.stop_container(id, Some(options)).await {
            Ok(()) => Ok(()),
            // 304: already stopped.
            Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 304, ..
            }) => Ok(()),
            Err(e) => Err(self.error(e)),
        }
    }

    async fn remove_container(&self, id: &str) -> Result<(), EngineError> {
        let options = RemoveContainerOptionsBuilder::default()
            .force(true)
            .v(true)
            .build();
        self.docker
            .remove_container(id, Some(options))
            .await
            .map_err(|e| self.error(e))
    }

    async fn inspect_container(&self, id: &str) -> Result<Option<ContainerInfo>, EngineError> {
        let inspect = match self
            .docker
            .inspect_container(id, None::<InspectContainerOptions>)
            .await
        {
            Ok(inspect) => inspect,
            Err(e) => {
                return match self.error(e) {
                    EngineError::NotFound { .. } => Ok(None),
                    other => Err(other),
                };
            }
        };
        let config = inspect.config.unwrap_or_default();
        let container_state = inspect.state.unwrap_or_default();
        let settings = inspect.network_settings.unwrap_or_default();
        let ips = settings
            .networks
            .unwrap_or_default()
            .into_iter()
            .filter_map(|(network, endpoint)| {
                Some((network, endpoint.ip_address.filter(|ip| !ip.is_empty())?))
            })
            .collect();
        let mut ports = Vec::new();
        for (key, bindings) in settings.ports.unwrap_or_default() {
            let Some(container) = key.split('/').next().and_then(|p| p.parse().ok()) else {
                continue;
            };
            for binding in bindings.unwrap_or_default() {
                let (Some(ip), Some(host)) = (
                    binding.host_ip,
                    binding.host_port.and_then(|p| p.parse().ok()),
                ) else {
                    continue;
                };
                let host_ip = ip.parse().unwrap_or(IpAddr::from([0, 0, 0, 0]));
                ports.push(PublishedPort {
                    container,
                    host_ip,
                    host,
                });
            }
        }
        ports.sort_by_key(|p| (p.container, p.host));
        ports.dedup_by_key(|p| (p.container, p.host));
        Ok(Some(ContainerInfo {
            id: inspect.id.unwrap_or_default(),
            name: inspect
                .name
                .unwrap_or_default()
                .trim_start_matches('/')
                .to_owned(),
            image: config.image.unwrap_or_default(),
            labels: config.labels.unwrap_or_default().into_iter().collect(),
            state: state(container_state.status),
            exit_code: container_state.exit_code,
            docker_health: container_state
                .health
                .and_then(|h| h.status)
                .map(|s| s.to_string())
                .filter(|s| !s.is_empty() && s != "none"),
            ips,
            ports,
        }))
    }

    async fn list_containers(
        &self,
        labels: &[(&str, &str)],
    ) -> Result<Vec<ContainerInfo>, EngineError> {
        let filters = label_filters(labels);
        let options = ListContainersOptionsBuilder::default()
            .all(true)
            .filters(&filters)
            .build();
        let summaries = self
            .docker
            .list_containers(Some(options))
            .await
            .map_err(|e| self.error(e))?;
        let mut containers = Vec::new();
        for summary in summaries {
            let Some(id) = summary.id else { continue };
            // Inspect for the full picture; a container removed meanwhile is skipped.
            if let Some(info) = self.inspect_container(&id).await? {
                containers.push(info);
            }
        }
        containers.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(containers)
    }

    async fn published_ports(&self) -> Result<Vec<(u16, String)>, EngineError> {
        let options = ListContainersOptionsBuilder::default().all(true).build();
        let summaries = self
            .docker
            .list_containers(Some(options))
            .await
            .map_err(|e| self.error(e))?;
        let mut ports = Vec::new();
        for summary in summaries {
            let name = summary
                .names
                .unwrap_or_default()
                .first()
                .map(|n| n.trim_start_matches('/').to_owned())
                .unwrap_or_default();
            for port in summary.ports.unwrap_or_default() {
                if let Some(public) = port.public_port {
                    ports.push((public, name.clone()));
                }
            }
            // A created or stopped container holds its port bindings too, though the
            // summary lists no public port for it: read them from its host config.
            if let Some(id) = summary.id.as_deref()
                && summary.state.map(|s| s.to_string()) != Some("running".into())
                && let Ok(inspect) = self
                    .docker
                    .inspect_container(id, None::<InspectContainerOptions>)
                    .await
            {
                let bindings = inspect
                    .host_config
                    .and_then(|h| h.port_bindings)
                    .unwrap_or_default();
                for binding in bindings.into_values().flatten().flatten() {
                    if let Some(port) = binding.host_port.and_then(|p| p.parse().ok()) {
                        ports.push((port, name.clone()));
                    }
                }
            }
        }
        ports.sort();
        ports.dedup();
        Ok(ports)
    }

    async fn exec(&self, id: &str, command: &[String]) -> Result<ExecOutput, EngineError> {
        use bollard::exec::{CreateExecOptions, StartExecResults};
        let created = self
            .docker
            .create_exec(
                id,
                CreateExecOptions {
                    cmd: Some(command.to_vec()),
                    attach_stdout: Some(true),
                    attach_stderr: Some(true),
                    ..Default::default()
                },
            )
            .await
            .map_err(|e| self.error(e))?;
        // The output streams until the command ends: the caller bounds the wait, not the
        // per-request timeout.
        let docker = self
            .docker
            .clone()
            .with_timeout(Duration::from_secs(u64::from(u32::MAX)));
        let mut output = String::new();
        if let StartExecResults::Attached {
            output: mut stream, ..
        } = docker
            .start_exec(&created.id, None)
            .await
            .map_err(|e| self.error(e))?
        {
            while let Some(chunk) = stream.next().await {
                output.push_str(&chunk.map_err(|e| self.error(e))?.to_string());
            }
        }
        let inspect = self
            .docker
            .inspect_exec(&created.id)
            .await
            .map_err(|e| self.error(e))?;
        Ok(ExecOutput {
            exit_code: inspect.exit_code,
            output,
        })
    }

    fn logs(
        &self,
        id: &str,
        options: LogOptions,
    ) -> BoxStream<'static, Result<LogLine, EngineError>> {
        let tail = options
            .tail
            .map_or_else(|| "all".to_owned(), |n| n.to_string());
        let query = LogsOptionsBuilder::default()
            .stdout(true)
            .stderr(true)
            .follow(options.follow)
            .tail(&tail)
            .build();
        let this = self.clone();
        self.docker
            .logs(id, Some(query))
            .map_ok(|output| {
                use bollard::container::LogOutput;
                let (stream, message) = match output {
                    LogOutput::StdErr { message } => ("stderr", message),
                    LogOutput::StdOut { message } | LogOutput::Console { message } => {
                        ("stdout", message)
                    }
                    LogOutput::StdIn { message } => ("stdin", message),
                };
                LogLine {
                    stream,
                    text: String::from_utf8_lossy(&message).into_owned(),
                }
            })
            .map_err(move |e| this.error(e))
            .boxed()
    }

    fn events(
        &self,
        labels: &[(&str, &str)],
    ) -> BoxStream<'static, Result<EngineEvent, EngineError>> {
        let mut filters = label_filters(labels);
        filters.insert("type".into(), vec!["container".into()]);
        // The request goes out when the stream is first polled: `since` makes the engine
        // replay what happened from this call on, so nothing in between is missed.
        let since = jiff::Timestamp::now().as_second().to_string();
        let options = EventsOptionsBuilder::default()
            .since(&since)
            .filters(&filters)
            .build();
        let this = self.clone();
        self.docker
            .events(Some(options))
            .map_ok(|message| {
                let actor = message.actor.unwrap_or_default();
                EngineEvent {
                    kind: message.typ.map(|t| t.to_string()).unwrap_or_default(),
                    action: message.action.unwrap_or_default(),
                    id: actor.id.unwrap_or_default(),
                    attributes: actor.attributes.unwrap_or_default().into_iter().collect(),
                }
            })
            .map_err(move |e| this.error(e))
            .boxed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_port_docker_could_not_bind() {
        assert_eq!(
            bound_port(
                "driver failed programming external connectivity on endpoint fleet-a.1 (0123): Bind for 0.0.0.0:21003 failed: port is already allocated"
            ),
            Some(21003)
        );
        assert_eq!(
            bound_port(
                "driver failed programming external connectivity on endpoint x (1): Error starting userland proxy: listen tcp4 0.0.0.0:5001: bind: address already in use"
            ),
            Some(5001)
        );
        assert_eq!(
            bound_port("Bind for [::]:8080 failed: port is already allocated"),
            Some(8080)
        );
        assert_eq!(bound_port("port is already allocated"), None);
    }
}
