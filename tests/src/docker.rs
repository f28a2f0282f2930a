//! The Docker Engine for tests: scoped names and labels, and clean-up on drop.
//!
//! Every container and network a [`TestDocker`] creates carries the label
//! `fleet.test.run=<run id>` (the demo's: `fleet.demo.run=<run id>`); code under test
//! (fleet-core) is given the same label through [`TestDocker::labels`], so that dropping
//! the `TestDocker` removes exactly what this test created (containers, networks, and
//! images pulled from the test registries it was told about), and nothing else on the
//! engine.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use anyhow::{Context as _, bail};
use bollard::Docker;
use bollard::models::{ContainerCreateBody, HostConfig, NetworkCreateRequest, PortBinding};
use bollard::query_parameters::{
    CreateContainerOptionsBuilder, InspectContainerOptions, ListContainersOptionsBuilder,
    ListImagesOptionsBuilder, ListNetworksOptionsBuilder, RemoveContainerOptionsBuilder,
    RemoveImageOptionsBuilder,
};

/// The label that marks everything one test created.
pub const RUN_LABEL: &str = "fleet.test.run";

/// The label that marks everything one run of the demo (`cargo xtask demo`) created.
pub const DEMO_RUN_LABEL: &str = "fleet.demo.run";

/// Connects to the Docker Engine the way the Docker CLI does (`DOCKER_HOST` or the default
/// socket) and negotiates the API version, or fails saying how to get an engine.
pub async fn connect() -> anyhow::Result<Docker> {
    let hint = "the end-to-end tests need a running Docker Engine: start one (`dockerd`, from \
                Debian's `docker.io` package; `bash .ci/run` does this when `docker info` fails) \
                or point DOCKER_HOST at one";
    let docker = Docker::connect_with_defaults().context(hint)?;
    let docker = docker.negotiate_version().await.context(hint)?;
    docker.ping().await.context(hint)?;
    Ok(docker)
}

/// A test's view of the Docker Engine; removes what the test created when dropped.
pub struct TestDocker {
    docker: Docker,
    run_id: String,
    /// What names start with: `fleet-test` (tests) or `fleet-demo` (the demo).
    name_prefix: &'static str,
    /// [`RUN_LABEL`] or [`DEMO_RUN_LABEL`].
    run_label: &'static str,
    registries: Mutex<Vec<String>>,
}

/// What [`TestDocker::run`] starts: a container of one image with one published port.
#[derive(Debug, Clone)]
pub struct RunSpec {
    /// The image reference (local tag, or `localhost:<port>/repo:tag` from a test registry).
    pub image: String,
    /// The name's suffix; the container is named [`TestDocker::name`] of it.
    pub name: String,
    /// Extra environment variables.
    pub env: Vec<(String, String)>,
    /// The container port to publish on a free loopback port.
    pub port: u16,
    /// A user-defined network to attach to (default: Docker's bridge).
    pub network: Option<String>,
    /// Bind mounts as `host:container` strings.
    pub binds: Vec<String>,
}

impl RunSpec {
    /// A spec for `image` named `name`, publishing the test app's port 8080.
    pub fn new(image: impl Into<String>, name: impl Into<String>) -> Self {
        Self {
            image: image.into(),
            name: name.into(),
            env: Vec::new(),
            port: 8080,
            network: None,
            binds: Vec::new(),
        }
    }

    /// Adds an environment variable.
    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.env.push((key.into(), value.into()));
        self
    }

    /// Attaches the container to a network.
    pub fn network(mut self, network: &str) -> Self {
        self.network = Some(network.into());
        self
    }

    /// Adds a bind mount (`host:container`).
    pub fn bind(mut self, bind: &str) -> Self {
        self.binds.push(bind.into());
        self
    }
}

/// A container started by [`TestDocker::run`].
#[derive(Debug, Clone)]
pub struct RunningContainer {
    /// The container id.
    pub id: String,
    /// The container name.
    pub name: String,
    /// The loopback port its container port is published on.
    pub host_port: u16,
    /// Its IP address on its network.
    pub ip: String,
}

impl RunningContainer {
    /// `http://127.0.0.1:<published port>`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.host_port)
    }
}

impl TestDocker {
    /// Connects (see [`connect`]) with a fresh run id, for a test.
    pub async fn new() -> anyhow::Result<Self> {
        Self::named("fleet-test", RUN_LABEL).await
    }

    /// Connects with a fresh run id, for the demo: its names start with `fleet-demo-` and
    /// its label is [`DEMO_RUN_LABEL`], so nothing it makes passes for a test's.
    pub async fn for_demo() -> anyhow::Result<Self> {
        Self::named("fleet-demo", DEMO_RUN_LABEL).await
    }

    async fn named(name_prefix: &'static str, run_label: &'static str) -> anyhow::Result<Self> {
        Ok(Self {
            docker: connect().await?,
            run_id: format!("t{}", crate::unique_suffix()),
            name_prefix,
            run_label,
            registries: Mutex::default(),
        })
    }

    /// The bollard client.
    pub fn docker(&self) -> &Docker {
        &self.docker
    }

    /// This test's run id (the value of [`RUN_LABEL`], or of [`DEMO_RUN_LABEL`] for the demo).
    pub fn run_id(&self) -> &str {
        &self.run_id
    }

    /// A name no other test uses: `fleet-test-<run id>-<base>` (`fleet-demo-...` for the demo).
    pub fn name(&self, base: &str) -> String {
        format!("{}-{}-{base}", self.name_prefix, self.run_id)
    }

    /// The labels that mark a resource as this test's (give them to code under test).
    pub fn labels(&self) -> HashMap<String, String> {
        HashMap::from([(self.run_label.to_owned(), self.run_id.clone())])
    }

    /// A fleet `config.toml` that keeps a fleet inside this test's bounds: loopback ports
    /// `first..=last`, a network of its own, containers named `<prefix><name>.<n>` and
    /// labelled with [`TestDocker::labels`] (so they are removed with the test's).
    ///
    /// # Panics
    ///
    /// When `first..=last` reaches into the kernel's ephemeral port range: an outgoing
    /// connection of any test could hold one of those ports while a container restarts,
    /// and publishing it again would fail now and then ("address already in use").
    pub fn fleet_config(&self, prefix: &str, first: u16, last: u16) -> String {
        if let Some((low, high)) = ephemeral_ports()
            && first <= high
            && low <= last
        {
            panic!(
                "the test's host ports {first}-{last} reach into the kernel's ephemeral port range {low}-{high} \
                 (net.ipv4.ip_local_port_range), where outgoing connections take their local port; \
                 give the test a range below {low}"
            );
        }
        let labels: String = self
            .labels()
            .iter()
            .map(|(k, v)| format!("\"{k}\" = \"{v}\"\n"))
            .collect();
        format!(
            "bind_address = \"127.0.0.1\"\nnetwork = \"{}\"\ncontainer_prefix = \"{prefix}\"\n\n[labels]\n{labels}\n[ports]\nfirst = {first}\nlast = {last}\n",
            self.name("net")
        )
    }

    /// Images pulled from `registry_host` (`localhost:<port>` or `127.0.0.1:<port>`) are
    /// removed on clean-up too.
    pub fn track_registry(&self, registry_host: &str) {
        self.registries
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(registry_host.to_owned());
    }

    /// Pulls `reference` (`localhost:<port>/repo:tag`) from a test registry into the engine.
    pub async fn pull(
        &self,
        registry: &crate::registry::TestRegistry,
        reference: &str,
    ) -> anyhow::Result<()> {
        use futures::StreamExt as _;
        self.track_registry(&registry.docker_host());
        let credentials = registry
            .credentials()
            .map(|c| bollard::auth::DockerCredentials {
                username: Some(c.username.clone()),
                password: Some(c.password.clone()),
                serveraddress: Some(registry.docker_host()),
                ..Default::default()
            });
        let options = bollard::query_parameters::CreateImageOptionsBuilder::default()
            .from_image(reference)
            .build();
        let mut stream = self.docker.create_image(Some(options), None, credentials);
        while let Some(item) = stream.next().await {
            let info = item.with_context(|| format!("docker pull {reference} failed"))?;
            if let Some(error) = info.error_detail.and_then(|e| e.message) {
                bail!("docker pull {reference} failed: {error}");
            }
        }
        Ok(())
    }

    /// Creates a labelled bridge network named [`TestDocker::name`] of `base`.
    pub async fn network(&self, base: &str) -> anyhow::Result<String> {
        let name = self.name(base);
        self.docker
            .create_network(NetworkCreateRequest {
                name: name.clone(),
                driver: Some("bridge".into()),
                labels: Some(self.labels()),
                ..Default::default()
            })
            .await
            .with_context(|| format!("cannot create network {name}"))?;
        Ok(name)
    }

    /// Creates and starts a labelled container, publishing `spec.port` on a free loopback port.
    pub async fn run(&self, spec: RunSpec) -> anyhow::Result<RunningContainer> {
        let name = self.name(&spec.name);
        let port_key = format!("{}/tcp", spec.port);
        let host_config = HostConfig {
            port_bindings: Some(HashMap::from([(
                port_key.clone(),
                Some(vec![PortBinding {
                    host_ip: Some("127.0.0.1".into()),
                    host_port: Some(String::new()),
                }]),
            )])),
            network_mode: spec.network.clone(),
            binds: (!spec.binds.is_empty()).then(|| spec.binds.clone()),
            ..Default::default()
        };
        let body = ContainerCreateBody {
            image: Some(spec.image.clone()),
            env: Some(spec.env.iter().map(|(k, v)| format!("{k}={v}")).collect()),
            labels: Some(self.labels()),
            exposed_ports: Some(vec![port_key.clone()]),
            host_config: Some(host_config),
            ..Default::default()
        };
        let options = CreateContainerOptionsBuilder::default().name(&name).build();
        let created = self
            .docker
            .create_container(Some(options), body)
            .await
            .with_context(|| format!("cannot create container {name} from {}", spec.image))?;
        self.docker
            .start_container(&created.id, None)
            .await
            .with_context(|| format!("cannot start {name}"))?;
        let inspect = self
            .docker
            .inspect_container(&created.id, None::<InspectContainerOptions>)
            .await?;
        let settings = inspect.network_settings.unwrap_or_default();
        let host_port = settings
            .ports
            .as_ref()
            .and_then(|ports| ports.get(&port_key).cloned().flatten())
            .and_then(|bindings| bindings.into_iter().find_map(|b| b.host_port?.parse().ok()))
            .with_context(|| format!("{name} has no published port for {port_key}"))?;
        let network = spec.network.as_deref().unwrap_or("bridge");
        let ip = settings
            .networks
            .as_ref()
            .and_then(|networks| networks.get(network))
            .and_then(|endpoint| endpoint.ip_address.clone())
            .filter(|ip| !ip.is_empty())
            .with_context(|| format!("{name} has no IP address on network {network}"))?;
        Ok(RunningContainer {
            id: created.id,
            name,
            host_port,
            ip,
        })
    }

    /// Removes every container and network labelled with this run id, and the images
    /// pulled from tracked registries. Called on drop; callable earlier.
    pub async fn cleanup(&self) -> anyhow::Result<()> {
        let registries = self
            .registries
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        cleanup_run(&self.docker, self.run_label, &self.run_id, &registries).await
    }
}

async fn cleanup_run(
    docker: &Docker,
    run_label: &str,
    run_id: &str,
    registries: &[String],
) -> anyhow::Result<()> {
    let filters = HashMap::from([("label".to_owned(), vec![format!("{run_label}={run_id}")])]);
    let containers = docker
        .list_containers(Some(
            ListContainersOptionsBuilder::default()
                .all(true)
                .filters(&filters)
                .build(),
        ))
        .await?;
    let mut failures = Vec::new();
    for container in containers {
        let Some(id) = container.id else { continue };
        let options = RemoveContainerOptionsBuilder::default()
            .force(true)
            .v(true)
            .build();
        if let Err(e) = docker.remove_container(&id, Some(options)).await {
            failures.push(format!("container {id}: {e}"));
        }
    }
    let networks = docker
        .list_networks(Some(
            ListNetworksOptionsBuilder::default()
                .filters(&filters)
                .build(),
        ))
        .await?;
    for network in networks {
        let Some(id) = network.id else { continue };
        if let Err(e) = docker.remove_network(&id).await {
            failures.push(format!("network {id}: {e}"));
        }
    }
    if !registries.is_empty() {
        for image in docker
            .list_images(Some(ListImagesOptionsBuilder::default().all(false).build()))
            .await?
        {
            let names = image.repo_tags.iter().chain(image.repo_digests.iter());
            for name in names.filter(|n| registries.iter().any(|r| n.starts_with(&format!("{r}/"))))
            {
                let options = RemoveImageOptionsBuilder::default().noprune(false).build();
                // An image still used by another test's container stays; that is fine.
                let _ = docker.remove_image(name, Some(options), None).await;
            }
        }
    }
    if !failures.is_empty() {
        bail!(
            "clean-up of test run {run_id} failed: {}",
            failures.join("; ")
        );
    }
    Ok(())
}

impl Drop for TestDocker {
    fn drop(&mut self) {
        // Drop cannot be async, and may run inside a runtime: clean up on a thread of its own.
        // A fresh connection: the test's own may belong to the runtime this thread blocks.
        let run_id = self.run_id.clone();
        let run_label = self.run_label;
        let registries =
            std::mem::take(&mut *self.registries.lock().unwrap_or_else(|e| e.into_inner()));
        let cleaner = std::thread::spawn(move || -> anyhow::Result<()> {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            runtime.block_on(async {
                let docker = connect().await?;
                tokio::time::timeout(
                    Duration::from_secs(60),
                    cleanup_run(&docker, run_label, &run_id, &registries),
                )
                .await
                .context("clean-up timed out")?
            })
        });
        if let Ok(Err(e)) = cleaner.join() {
            // A destructor cannot return an error; make the leak visible in the test output.
            #[allow(clippy::print_stderr)]
            {
                eprintln!("warning: {e:#}");
            }
        }
    }
}

/// The kernel's ephemeral port range (`net.ipv4.ip_local_port_range`), where Linux has it.
fn ephemeral_ports() -> Option<(u16, u16)> {
    let text = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range").ok()?;
    let mut numbers = text.split_whitespace().map(str::parse::<u16>);
    Some((numbers.next()?.ok()?, numbers.next()?.ok()?))
}
