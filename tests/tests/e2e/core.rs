//! fleet-core on the real Docker Engine, with images from a real registry.

use std::net::TcpListener;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::Duration;

use anyhow::Context as _;
use fleet_core::engine::{DockerEngine, Engine as _, LABEL_INSTANCE, LABEL_SCOPE};
use fleet_core::{
    CreateOptions, Error, Fleet, FleetConfig, Health, InstanceName, InstanceSpec, PortHolder,
    PortRange, PortSpec, RegistryResolver, http_health,
};
use fleet_tests::docker::TestDocker;
use fleet_tests::image::{Behaviour, TestImage};
use fleet_tests::registry::TestRegistry;

/// Each test gets its own port range, so parallel tests never race for a port.
fn port_range() -> PortRange {
    static NEXT: AtomicU16 = AtomicU16::new(0);
    let block = NEXT.fetch_add(1, Ordering::SeqCst);
    let first = 21000 + block * 50;
    PortRange::new(first, first + 49, 1).expect("a valid range")
}

/// A fleet in a temporary state directory, whose containers and network carry the
/// test's labels (so `TestDocker` removes them), with test app images in a registry.
struct CoreBed {
    registry: TestRegistry,
    docker: TestDocker,
    state: tempfile::TempDir,
    fleet: Fleet,
    range: PortRange,
}

impl CoreBed {
    async fn new() -> anyhow::Result<Self> {
        let registry = TestRegistry::start()?;
        let docker = TestDocker::new().await?;
        for (version, tags) in [
            ("1.0.0", &["v1.0.0", "v1", "latest"][..]),
            ("2.0.0", &["v2.0.0"][..]),
        ] {
            let image = TestImage::new(version).build(&docker).await?;
            image.push(&docker, &registry, "app", tags).await?;
        }
        let image = TestImage::new("3.0.0")
            .behaviour(Behaviour::NeverHealthy)
            .build(&docker)
            .await?;
        image
            .push(&docker, &registry, "app", &["v3.0.0-broken"])
            .await?;
        docker.track_registry(&registry.docker_host());
        let state = tempfile::Builder::new()
            .prefix("fleet-core-e2e-")
            .tempdir()?;
        let range = port_range();
        let fleet = Self::open(&docker, state.path(), range).await?;
        Ok(Self {
            registry,
            docker,
            state,
            fleet,
            range,
        })
    }

    async fn open(docker: &TestDocker, state: &Path, range: PortRange) -> anyhow::Result<Fleet> {
        let mut config = FleetConfig::default();
        config.ports = range;
        config.bind_address = "127.0.0.1".parse()?;
        config.network = docker.name("net");
        config.container_prefix = docker.name("");
        config.labels = docker.labels().into_iter().collect();
        let engine = DockerEngine::connect().await?;
        Ok(Fleet::builder(state)
            .config(config)
            .engine(Arc::new(engine))
            .resolver(Arc::new(RegistryResolver::new()?))
            .open()
            .await?)
    }

    fn image(&self, channel: &str) -> String {
        format!("{}/app:{channel}", self.registry.docker_host())
    }

    fn spec(&self, name: &str, channel: &str) -> InstanceSpec {
        let mut health = http_health("/api/health");
        health.policy.deadline = Duration::from_secs(45);
        InstanceSpec::new(
            name.parse().expect("a valid name"),
            self.image(channel).parse().expect("a reference"),
        )
        .with_port(PortSpec::auto(8080))
        .with_health(health)
    }

    async fn create(&self, spec: InstanceSpec) -> Result<fleet_core::Instance, Error> {
        self.fleet
            .create(spec, CreateOptions::default(), &|_| {})
            .await
    }

    /// Asserts that nothing of `name` is left: no store row, no port, no container.
    async fn assert_nothing_left(&self, name: &str) -> anyhow::Result<()> {
        let instance: InstanceName = name.parse()?;
        assert!(
            self.fleet.state().instance(&instance)?.is_none(),
            "store row of {name} left"
        );
        assert!(
            self.fleet
                .ports()?
                .iter()
                .all(|p| p.instance.as_str() != name),
            "port of {name} left"
        );
        let scope = self.fleet.state().scope().to_owned();
        let left = DockerEngine::connect()
            .await?
            .list_containers(&[(LABEL_SCOPE, &scope), (LABEL_INSTANCE, name)])
            .await?;
        assert!(left.is_empty(), "containers of {name} left: {left:?}");
        Ok(())
    }
}

async fn get_json(url: &str) -> anyhow::Result<serde_json::Value> {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()?;
    Ok(client
        .get(url)
        .send()
        .await
        .with_context(|| format!("GET {url}"))?
        .json()
        .await?)
}

async fn post_json(url: &str) -> anyhow::Result<serde_json::Value> {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()?;
    Ok(client
        .post(url)
        .send()
        .await
        .with_context(|| format!("POST {url}"))?
        .json()
        .await?)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_instances_each_healthy_on_its_own_port_with_its_own_data() -> anyhow::Result<()> {
    let bed = CoreBed::new().await?;
    let names = ["alice", "bob", "carol", "dave", "erin"];
    let mut instances = Vec::new();
    for name in names {
        instances.push(bed.create(bed.spec(name, "v1")).await?);
    }
    let mut ports: Vec<u16> = instances.iter().map(|i| i.ports[0].host).collect();
    ports.dedup();
    assert_eq!(ports.len(), 5, "distinct ports: {ports:?}");
    assert!(
        ports.iter().all(|p| bed.range.contains(*p)),
        "{ports:?} in {:?}",
        bed.range
    );

    let status = bed.fleet.status(&[]).await?;
    for (instance, name) in status.instances.iter().zip(names) {
        assert_eq!(instance.instance.name.as_str(), name);
        assert_eq!(instance.health, Health::Healthy, "{instance:?}");
        assert_eq!(
            instance.state,
            Some(fleet_core::engine::ContainerState::Running)
        );
        assert_eq!(instance.running_digest, instance.instance.digest);
        assert!(instance.drift.is_empty(), "{:?}", instance.drift);
        assert_eq!(
            instance.probe.as_ref().and_then(|p| p.version.as_deref()),
            Some("1.0.0")
        );
    }
    for instance in &instances {
        let url = format!("http://127.0.0.1:{}", instance.ports[0].host);
        let root = get_json(&url).await?;
        assert_eq!(
            root["instance"],
            instance.name.as_str(),
            "each answers with its own name"
        );
        assert_eq!(instance.tag.as_deref(), Some("v1.0.0"));
        // Each has its own data directory, owned by the image's user (10001).
        assert!(instance.data_dir.starts_with(bed.state.path()));
        use std::os::unix::fs::MetadataExt as _;
        assert_eq!(std::fs::metadata(&instance.data_dir)?.uid(), 10001);
        assert!(instance.data_dir.join("testapp.db").exists());
    }

    // The data survives stop and start.
    let alice = &instances[0];
    let alice_name: InstanceName = "alice".parse()?;
    let url = format!("http://127.0.0.1:{}", alice.ports[0].host);
    for _ in 0..3 {
        post_json(&format!("{url}/api/counter")).await?;
    }
    bed.fleet.stop(&alice_name).await?;
    assert_eq!(
        bed.fleet
            .status(std::slice::from_ref(&alice_name))
            .await?
            .instances[0]
            .health,
        Health::Stopped
    );
    assert!(
        reqwest::get(&url).await.is_err(),
        "a stopped instance does not answer"
    );
    bed.fleet.start(&alice_name).await?;
    assert_eq!(get_json(&format!("{url}/api/counter")).await?["counter"], 3);
    assert_eq!(get_json(&url).await?["boots"], 2);

    // Remove releases the port and keeps the data; purge removes the data.
    let bob = &instances[1];
    assert!(!bed.fleet.remove(&"bob".parse()?, None).await?);
    assert!(
        bed.fleet
            .ports()?
            .iter()
            .all(|p| p.host != bob.ports[0].host)
    );
    assert!(bob.data_dir.join("testapp.db").exists());
    bed.assert_nothing_left("bob").await?;
    let reused = bed.create(bed.spec("frank", "v1")).await?;
    assert_eq!(
        reused.ports[0].host, bob.ports[0].host,
        "the released port is handed out again"
    );
    let carol = &instances[2];
    assert!(
        bed.fleet
            .remove(&"carol".parse()?, Some(&|_: &Path| true))
            .await?
    );
    assert!(!carol.data_dir.exists());
    bed.assert_nothing_left("carol").await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_allocator_skips_ports_held_by_a_foreign_listener_or_container() -> anyhow::Result<()> {
    let bed = CoreBed::new().await?;
    let first = bed.range.first();
    // A listener of this test process holds the first port of the range...
    let listener = TcpListener::bind(("0.0.0.0", first))?;
    // ...and a container that is not fleet's publishes the second one.
    let image = TestImage::new("1.0.0").build(&bed.docker).await?;
    let second = first + 1;
    let engine = DockerEngine::connect().await?;
    let spec = fleet_core::engine::ContainerSpec {
        name: bed.docker.name("foreign2"),
        image: image.local_tag.clone(),
        labels: bed.docker.labels().into_iter().collect(),
        ports: vec![fleet_core::engine::PublishedPort {
            container: 8080,
            host_ip: "127.0.0.1".parse()?,
            host: second,
        }],
        ..Default::default()
    };
    let id = engine.create_container(&spec).await?;
    engine.start_container(&id).await?;

    let alice = bed.create(bed.spec("alice", "v1")).await?;
    assert_eq!(
        alice.ports[0].host,
        first + 2,
        "both held ports are skipped"
    );

    // Fixed ports that are taken are clear errors naming the holder, and leave nothing.
    let error = bed
        .create(
            bed.spec("bob", "v1")
                .with_port(PortSpec::fixed(9000, first)),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(
            error,
            Error::PortTaken {
                holder: PortHolder::Process,
                ..
            }
        ),
        "{error:?}"
    );
    assert_eq!(
        error.to_string(),
        format!("host port {first} is already in use by another process on this host")
    );
    bed.assert_nothing_left("bob").await?;
    let error = bed
        .create(
            bed.spec("bob", "v1")
                .with_port(PortSpec::fixed(9000, second)),
        )
        .await
        .unwrap_err();
    assert_eq!(
        error.to_string(),
        format!(
            "host port {second} is already in use by container {}",
            spec.name
        )
    );
    bed.assert_nothing_left("bob").await?;
    drop(listener);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_clear_typed_errors_and_leaves_nothing_behind() -> anyhow::Result<()> {
    let bed = CoreBed::new().await?;
    // Pushed before any resolution: the registry client caches tag lists for a minute.
    let image = TestImage::new("4.0.0")
        .behaviour(Behaviour::Crash)
        .build(&bed.docker)
        .await?;
    image
        .push(&bed.docker, &bed.registry, "app", &["v4.0.0-crash"])
        .await?;

    // An invalid name never gets as far as a spec.
    let error = "Alice_1".parse::<InstanceName>().unwrap_err();
    assert_eq!(
        error.to_string(),
        "invalid instance name \"Alice_1\": only lower-case letters, digits and '-' are allowed"
    );

    // An unknown image (a repository the registry does not have, a tag it does not have).
    let error = bed
        .create(InstanceSpec::new(
            "alice".parse()?,
            bed.image("v9").parse()?,
        ))
        .await
        .unwrap_err();
    let chain = format!("{:#}", anyhow::Error::from(error));
    assert!(
        chain.contains("no tag of") && chain.contains("matches channel"),
        "{chain}"
    );
    let missing = format!("{}/nope:v1", bed.registry.docker_host());
    let error = bed
        .create(InstanceSpec::new("alice".parse()?, missing.parse()?))
        .await
        .unwrap_err();
    let chain = format!("{:#}", anyhow::Error::from(error));
    assert!(
        chain.contains("repository") && chain.contains("not found"),
        "{chain}"
    );
    bed.assert_nothing_left("alice").await?;

    // An app that never becomes healthy: create fails, and nothing of it is left.
    let mut spec = bed.spec("alice", "v3.0.0-broken");
    if let Some(health) = spec.health.as_mut() {
        health.policy.start_period = Duration::from_secs(1);
        health.policy.deadline = Duration::from_secs(8);
    }
    let error = bed.create(spec).await.unwrap_err();
    assert!(
        error
            .to_string()
            .starts_with("instance alice did not become healthy: unhealthy"),
        "{error}"
    );
    let message = error.to_string();
    assert!(
        message.contains("its last output:") && message.contains("fleet-testapp 3.0.0 starting"),
        "{message}"
    );
    bed.assert_nothing_left("alice").await?;
    assert!(
        !bed.state.path().join("instances/alice").exists(),
        "the data dir fleet made is gone"
    );

    // Regression (issue 9): a gate that ran out of time read "deadlineexceeded".
    let mut spec = bed.spec("alice", "v3.0.0-broken");
    if let Some(health) = spec.health.as_mut() {
        health.policy.start_period = Duration::from_secs(1);
        health.policy.failure_threshold = std::num::NonZeroU32::new(1000).expect("not zero");
        health.policy.deadline = Duration::from_secs(3);
    }
    let error = bed.create(spec).await.unwrap_err();
    assert!(
        error
            .to_string()
            .starts_with("instance alice did not become healthy: deadline exceeded after"),
        "{error}"
    );
    bed.assert_nothing_left("alice").await?;

    // An app that crashes on start: the gate stops when the container exits, without
    // waiting for the deadline (90 s by default), and the error keeps what it said.
    let error = bed
        .create(bed.spec("alice", "v4.0.0-crash"))
        .await
        .unwrap_err();
    let message = error.to_string();
    assert!(
        message
            .starts_with("instance alice did not become healthy: its container exited with code 1"),
        "{message}"
    );
    assert!(
        message.contains("crashing on start (TESTAPP_BEHAVIOUR=crash)"),
        "{message}"
    );
    bed.assert_nothing_left("alice").await?;

    // A data directory that is not writable (a read-only mount).
    let readonly = tempfile::tempdir()?;
    let _mount = ReadOnlyMount::new(readonly.path())?;
    let error = bed
        .create(bed.spec("alice", "v1").with_data_dir(readonly.path()))
        .await
        .unwrap_err();
    let chain = format!("{:#}", anyhow::Error::from(error));
    assert!(
        chain.contains("is not usable") && chain.contains("Read-only file system"),
        "{chain}"
    );
    bed.assert_nothing_left("alice").await?;

    // A CPU limit above what the engine's host has is refused before anything is made.
    let mut greedy = bed.spec("alice", "v1");
    greedy.resources.cpus = Some(9999.0);
    let error = bed.create(greedy).await.unwrap_err();
    assert!(
        matches!(&error, Error::InvalidSpec { reason, .. } if reason.starts_with("CPU limit 9999 is more than the host's")),
        "{error:?}"
    );
    bed.assert_nothing_left("alice").await?;

    // An unreachable engine.
    let error = DockerEngine::connect_to("unix:///nonexistent/docker.sock")
        .await
        .unwrap_err();
    assert_eq!(
        error.to_string(),
        "cannot reach the engine at unix:///nonexistent/docker.sock"
    );
    assert!(
        matches!(error, fleet_core::EngineError::Unreachable { .. }),
        "{error:?}"
    );
    let cause = std::error::Error::source(&error).map(ToString::to_string);
    assert!(
        cause.as_deref().is_some_and(|c| !c.is_empty()),
        "the connection error is kept as the cause: {error:?}"
    );
    Ok(())
}

/// A read-only tmpfs mounted over a directory for the test's duration.
struct ReadOnlyMount(std::path::PathBuf);

impl ReadOnlyMount {
    fn new(dir: &Path) -> anyhow::Result<Self> {
        let status = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", "ro", "tmpfs"])
            .arg(dir)
            .status()?;
        anyhow::ensure!(
            status.success(),
            "this test mounts a read-only tmpfs and needs root: mount failed ({status})"
        );
        Ok(Self(dir.to_owned()))
    }
}

impl Drop for ReadOnlyMount {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.0).status();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_sees_drift_made_behind_fleets_back_and_reconcile_repairs_it() -> anyhow::Result<()>
{
    let bed = CoreBed::new().await?;
    let alice = bed.create(bed.spec("alice", "v1")).await?;
    bed.create(bed.spec("bob", "v1")).await?;

    // Delete alice's container behind fleet's back, and start a stray labelled container.
    let engine = DockerEngine::connect().await?;
    engine
        .remove_container(alice.container.as_deref().expect("a container"))
        .await?;
    let image = TestImage::new("1.0.0").build(&bed.docker).await?;
    let mut stray = fleet_core::engine::ContainerSpec {
        name: bed.docker.name("stray"),
        image: image.local_tag.clone(),
        labels: bed.docker.labels().into_iter().collect(),
        ..Default::default()
    };
    stray
        .labels
        .insert(LABEL_SCOPE.into(), bed.fleet.state().scope().into());
    stray.labels.insert(LABEL_INSTANCE.into(), "ghost".into());
    let stray_id = engine.create_container(&stray).await?;
    engine.start_container(&stray_id).await?;

    let status = bed.fleet.status(&[]).await?;
    let drift: Vec<String> = status.drift().map(ToString::to_string).collect();
    assert_eq!(
        drift,
        [
            "alice: container missing".to_owned(),
            format!("stray container {} (labelled for ghost)", stray.name)
        ]
    );
    assert_eq!(status.instances[0].health, Health::Missing);
    assert_eq!(status.instances[1].health, Health::Healthy);

    let report = bed.fleet.reconcile().await?;
    assert_eq!(report.repaired.len(), 2, "{report:?}");
    assert!(
        engine.inspect_container(&stray_id).await?.is_none(),
        "the stray is removed"
    );
    let status = bed.fleet.status(&[]).await?;
    assert_eq!(status.drift().count(), 0);
    // The recreated alice serves again, from the same data directory.
    let alice_now = bed.fleet.get(&"alice".parse()?)?;
    assert_eq!(alice_now.generation, 2);
    let url = format!("http://127.0.0.1:{}", alice_now.ports[0].host);
    fleet_tests::net::wait_http_ok(&format!("{url}/api/health"), Duration::from_secs(30)).await?;
    assert_eq!(
        get_json(&url).await?["boots"],
        2,
        "the recreated container found the old data"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_and_events_come_from_the_engine_and_the_store() -> anyhow::Result<()> {
    use futures::StreamExt as _;
    let bed = CoreBed::new().await?;
    bed.create(bed.spec("alice", "v1")).await?;
    let name: InstanceName = "alice".parse()?;
    let lines: Vec<String> = bed
        .fleet
        .logs(
            &name,
            fleet_core::engine::LogOptions {
                tail: Some(10),
                follow: false,
            },
        )?
        .map(|line| line.map(|l| l.text).unwrap_or_default())
        .collect()
        .await;
    let text = lines.concat();
    assert!(
        text.contains("fleet-testapp 1.0.0 starting: instance=alice"),
        "{text}"
    );
    let events: Vec<String> = bed
        .fleet
        .events(Some(&name), 10)?
        .iter()
        .map(|e| format!("{:?}", e.kind))
        .collect();
    assert_eq!(events, ["Created", "Started"]);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tcp_health_check_probes_the_container_address_not_the_docker_proxy() -> anyhow::Result<()>
{
    let bed = CoreBed::new().await?;
    // The app listens on 8080; the health check names a port nothing listens on. Through
    // the published port Docker's proxy would accept the connection anyway.
    let spec = InstanceSpec::new("alice".parse()?, bed.image("v1").parse()?)
        .with_port(PortSpec::auto(8080))
        .with_port(PortSpec::auto(9999))
        .with_health({
            let mut health = fleet_core::tcp_health();
            health.port = Some(9999);
            health.policy.start_period = Duration::from_secs(1);
            health.policy.deadline = Duration::from_secs(6);
            health
        });
    let error = bed.create(spec).await.unwrap_err();
    assert!(
        error
            .to_string()
            .starts_with("instance alice did not become healthy"),
        "{error}"
    );
    bed.assert_nothing_left("alice").await?;
    let spec = InstanceSpec::new("alice".parse()?, bed.image("v1").parse()?)
        .with_port(PortSpec::auto(8080))
        .with_health(fleet_core::tcp_health());
    bed.create(spec).await?;
    assert_eq!(
        bed.fleet.status(&[]).await?.instances[0].health,
        Health::Healthy
    );
    Ok(())
}

/// The Docker engine implementation on the real daemon, one test per operation, each
/// checked against the daemon's own view (bollard's inspect) where there is one: pull,
/// networks, create and start (limits, restart policy, mounts, env), inspect (network,
/// ports, Docker's HEALTHCHECK), logs (tail and follow), events, stop and remove.
mod engine {
    use std::collections::BTreeMap;
    use std::time::Duration;

    use anyhow::Context as _;
    use fleet_core::EngineError;
    use fleet_core::engine::{
        Bind, ContainerSpec, ContainerState, DockerEngine, DockerHealthcheck, Engine as _,
        LABEL_INSTANCE, LogOptions, PublishedPort, PullProgress,
    };
    use fleet_tests::docker::TestDocker;
    use fleet_tests::image::TestImage;
    use fleet_tests::registry::TestRegistry;
    use futures::StreamExt as _;

    use super::{get_json, nix_chown};

    /// The test app's image in a registry (not yet on the engine, unless [`Self::pulled`]),
    /// an engine that answers, and the directories a container spec mounts.
    struct EngineBed {
        registry: TestRegistry,
        docker: TestDocker,
        engine: DockerEngine,
        /// The `fleet.instance` label and `INSTANCE_NAME` of its containers: this test's
        /// own, as the tests run side by side and list and watch containers by that label.
        instance: String,
        /// The image by digest: `<registry>/engine@sha256:...`.
        pinned: String,
        data: tempfile::TempDir,
        extra: tempfile::TempDir,
    }

    impl EngineBed {
        async fn new() -> anyhow::Result<Self> {
            let registry = TestRegistry::start()?;
            let docker = TestDocker::new().await?;
            let image = TestImage::new("1.0.0").build(&docker).await?;
            image.push(&docker, &registry, "engine", &["v1"]).await?;
            docker.track_registry(&registry.docker_host());
            let engine = DockerEngine::connect().await?;
            engine.ping().await?;
            let instance = docker.name("engine-test");
            let digest = fleet_tests::image::manifest_digest(&registry, "engine", "v1").await?;
            let pinned = format!("{}/engine@{digest}", registry.docker_host());
            let data = tempfile::tempdir()?;
            nix_chown(data.path())?;
            let extra = tempfile::tempdir()?;
            std::fs::write(extra.path().join("hello.txt"), "hi")?;
            Ok(Self {
                registry,
                docker,
                engine,
                instance,
                pinned,
                data,
                extra,
            })
        }

        /// A bed whose image is on the engine.
        async fn pulled() -> anyhow::Result<Self> {
            let bed = Self::new().await?;
            bed.engine.pull(&bed.pinned, None, &|_| {}).await?;
            Ok(bed)
        }

        /// The labels that let `TestDocker` remove what a test made.
        fn labels(&self) -> BTreeMap<String, String> {
            self.docker.labels().into_iter().collect()
        }

        /// A container of the test app with every option fleet sets, on a network of its
        /// own and a free host port.
        async fn spec(&self) -> anyhow::Result<ContainerSpec> {
            let network = self.docker.name("enet");
            self.engine.ensure_network(&network, &self.labels()).await?;
            let mut labels = self.labels();
            labels.insert(LABEL_INSTANCE.into(), self.instance.clone());
            Ok(ContainerSpec {
                name: self.docker.name("engine"),
                image: self.pinned.clone(),
                env: [("INSTANCE_NAME".to_owned(), self.instance.clone())].into(),
                labels,
                ports: vec![PublishedPort {
                    container: 8080,
                    host_ip: "127.0.0.1".parse()?,
                    // A block of its own, below the kernel's ephemeral ports.
                    host: super::port_range()
                        .iter()
                        .find(|port| fleet_core::bindable(*port))
                        .context("no free port in the test's block")?,
                }],
                binds: vec![
                    Bind {
                        host: self.data.path().to_owned(),
                        container: "/data".into(),
                        read_only: false,
                    },
                    Bind {
                        host: self.extra.path().to_owned(),
                        container: "/extra".into(),
                        read_only: true,
                    },
                ],
                network: Some(network),
                memory_bytes: Some(64 * 1024 * 1024),
                nano_cpus: Some(500_000_000),
                restart: fleet_core::RestartPolicy::OnFailure(3),
                user: None,
                healthcheck: Some(DockerHealthcheck {
                    command: vec!["/fleet-testapp".into(), "healthcheck".into()],
                    interval: Duration::from_secs(1),
                    timeout: Duration::from_secs(2),
                    retries: 2,
                    start_period: Duration::from_secs(1),
                }),
            })
        }

        /// Creates and starts the container of [`Self::spec`]; returns its id and spec.
        async fn started(&self) -> anyhow::Result<(String, ContainerSpec)> {
            let spec = self.spec().await?;
            let id = self.engine.create_container(&spec).await?;
            self.engine.start_container(&id).await?;
            Ok((id, spec))
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn pull_fetches_by_digest_with_progress_and_a_missing_image_is_not_found()
    -> anyhow::Result<()> {
        let bed = EngineBed::new().await?;
        let engine = &bed.engine;
        assert!(!engine.has_image(&bed.pinned).await?);
        let seen = std::sync::Mutex::new(Vec::<PullProgress>::new());
        engine
            .pull(&bed.pinned, None, &|p| seen.lock().expect("lock").push(p))
            .await?;
        assert!(engine.has_image(&bed.pinned).await?);
        assert!(
            !seen.lock().expect("lock").is_empty(),
            "pull progress was reported"
        );
        assert_eq!(
            engine.image_user(&bed.pinned).await?.as_deref(),
            Some("10001:10001")
        );
        let missing = format!(
            "{}/engine@sha256:{}",
            bed.registry.docker_host(),
            "0".repeat(64)
        );
        let error = engine.pull(&missing, None, &|_| {}).await.unwrap_err();
        assert!(matches!(error, EngineError::NotFound { .. }), "{error:?}");
        Ok(())
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn ensure_network_creates_a_network_once() -> anyhow::Result<()> {
        let bed = EngineBed::new().await?;
        let network = bed.docker.name("enet");
        bed.engine.ensure_network(&network, &bed.labels()).await?;
        bed.engine.ensure_network(&network, &bed.labels()).await?;
        let inspect = bed.docker.docker().inspect_network(&network, None).await?;
        assert_eq!(inspect.name.as_deref(), Some(network.as_str()));
        Ok(())
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn create_and_start_give_the_daemon_what_the_spec_says_once_per_name()
    -> anyhow::Result<()> {
        let bed = EngineBed::pulled().await?;
        let spec = bed.spec().await?;
        let id = bed.engine.create_container(&spec).await?;
        let error = bed.engine.create_container(&spec).await.unwrap_err();
        assert!(
            matches!(error, EngineError::Conflict { .. }),
            "a second container of that name: {error:?}"
        );
        bed.engine.start_container(&id).await?;

        // The daemon's own view of what was asked.
        let inspect = bed.docker.docker().inspect_container(&id, None).await?;
        let host = inspect.host_config.clone().unwrap_or_default();
        assert_eq!(host.memory, Some(64 * 1024 * 1024));
        assert_eq!(host.nano_cpus, Some(500_000_000));
        let restart = host.restart_policy.unwrap_or_default();
        assert_eq!(
            (
                restart.name.map(|n| n.to_string()),
                restart.maximum_retry_count
            ),
            (Some("on-failure".into()), Some(3))
        );
        let binds = host.binds.unwrap_or_default();
        assert!(
            binds.contains(&format!("{}:/extra:ro", bed.extra.path().display())),
            "{binds:?}"
        );
        let env = inspect.config.and_then(|c| c.env).unwrap_or_default();
        assert!(
            env.contains(&format!("INSTANCE_NAME={}", bed.instance)),
            "{env:?}"
        );
        Ok(())
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn inspect_list_and_published_ports_see_the_running_container() -> anyhow::Result<()> {
        let bed = EngineBed::pulled().await?;
        let engine = &bed.engine;
        let (id, spec) = bed.started().await?;

        // Running, published, on the network, and Docker's HEALTHCHECK passes.
        let mut info = engine
            .inspect_container(&id)
            .await?
            .expect("the container exists");
        for _ in 0..100 {
            if info.docker_health.as_deref() == Some("healthy") {
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
            info = engine
                .inspect_container(&id)
                .await?
                .expect("the container exists");
        }
        assert_eq!(info.state, ContainerState::Running);
        assert_eq!(info.docker_health.as_deref(), Some("healthy"));
        assert_eq!(info.ports, spec.ports);
        let network = spec.network.clone().expect("a network");
        assert!(info.ips.contains_key(&network), "{:?}", info.ips);
        assert_eq!(info.name, spec.name);
        let host_port = spec.ports[0].host;
        let root = get_json(&format!("http://127.0.0.1:{host_port}/")).await?;
        assert_eq!(root["instance"], bed.instance.as_str());
        assert!(
            engine
                .published_ports()
                .await?
                .contains(&(host_port, spec.name.clone()))
        );
        let listed = engine
            .list_containers(&[(LABEL_INSTANCE, &bed.instance)])
            .await?;
        assert_eq!(
            listed.iter().map(|c| c.id.as_str()).collect::<Vec<_>>(),
            [id.as_str()]
        );
        Ok(())
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn logs_tail_and_a_follow_that_ends_when_the_container_stops() -> anyhow::Result<()> {
        let bed = EngineBed::pulled().await?;
        let engine = &bed.engine;
        let (id, _) = bed.started().await?;
        let text = |line: Result<fleet_core::engine::LogLine, EngineError>| {
            line.map(|l| l.text).unwrap_or_default()
        };

        // The app's last line once it listens: wait for it, then tail one line.
        let mut tail = Vec::new();
        for _ in 0..100 {
            tail = engine
                .logs(
                    &id,
                    LogOptions {
                        tail: Some(1),
                        follow: false,
                    },
                )
                .map(text)
                .collect()
                .await;
            if tail.iter().any(|l| l.contains("listening on")) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(tail.len(), 1, "{tail:?}");
        assert!(tail[0].contains("listening on 0.0.0.0:8080"), "{tail:?}");

        // A follow from the start has attached once its first line arrives; it goes on
        // until the container stops.
        let mut follow = engine.logs(
            &id,
            LogOptions {
                tail: None,
                follow: true,
            },
        );
        let first = tokio::time::timeout(Duration::from_secs(20), follow.next())
            .await
            .context("no line followed in 20 s")?
            .context("the follow ended before its first line")??;
        engine.stop_container(&id, Duration::from_secs(5)).await?;
        let rest: Vec<String> =
            tokio::time::timeout(Duration::from_secs(20), follow.map(text).collect())
                .await
                .context("the follow did not end when the container stopped")?;
        let followed = first.text + &rest.concat();
        assert!(
            followed.contains(&format!("starting: instance={}", bed.instance)),
            "{followed}"
        );
        assert!(followed.contains("listening on 0.0.0.0:8080"), "{followed}");
        Ok(())
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn stop_ends_the_container_cleanly_and_again_is_fine() -> anyhow::Result<()> {
        let bed = EngineBed::pulled().await?;
        let (id, _) = bed.started().await?;
        bed.engine
            .stop_container(&id, Duration::from_secs(5))
            .await?;
        // Stopping a stopped container is fine.
        bed.engine
            .stop_container(&id, Duration::from_secs(5))
            .await?;
        let stopped = bed
            .engine
            .inspect_container(&id)
            .await?
            .expect("still there");
        assert_eq!(
            (stopped.state, stopped.exit_code),
            (ContainerState::Exited, Some(0))
        );
        Ok(())
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn events_stream_the_start_and_stop_of_the_labelled_container() -> anyhow::Result<()> {
        let bed = EngineBed::pulled().await?;
        let mut events = bed.engine.events(&[(LABEL_INSTANCE, &bed.instance)]);
        let (id, _) = bed.started().await?;
        bed.engine
            .stop_container(&id, Duration::from_secs(5))
            .await?;
        let mut actions = Vec::new();
        while let Ok(Some(event)) =
            tokio::time::timeout(Duration::from_secs(5), events.next()).await
        {
            let event = event?;
            assert_eq!(event.id, id);
            actions.push(event.action);
            if actions.iter().any(|a| a == "stop") {
                break;
            }
        }
        assert!(
            actions.iter().any(|a| a == "start") && actions.iter().any(|a| a == "stop"),
            "{actions:?}"
        );
        Ok(())
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn remove_deletes_the_container_and_a_second_remove_is_not_found() -> anyhow::Result<()> {
        let bed = EngineBed::pulled().await?;
        let (id, _) = bed.started().await?;
        bed.engine
            .stop_container(&id, Duration::from_secs(5))
            .await?;
        bed.engine.remove_container(&id).await?;
        assert!(bed.engine.inspect_container(&id).await?.is_none());
        let error = bed.engine.remove_container(&id).await.unwrap_err();
        assert!(matches!(error, EngineError::NotFound { .. }), "{error:?}");
        Ok(())
    }
}

/// The test app runs as 10001 and writes its database under /data.
fn nix_chown(path: &Path) -> anyhow::Result<()> {
    let status = std::process::Command::new("chown")
        .arg("10001:10001")
        .arg(path)
        .status()?;
    anyhow::ensure!(status.success(), "chown failed");
    Ok(())
}

/// Regression (issue 14, item 12): two fleets on one engine with overlapping port ranges
/// raced on Docker's "port is already allocated": the create failed. Here another
/// program starts a container on the port fleet allocated, between allocation and start
/// (fleet reports `Creating` right after it allocated ports).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_port_taken_between_allocation_and_start_is_given_up_for_the_next() -> anyhow::Result<()>
{
    let bed = CoreBed::new().await?;
    let first = bed.range.first();
    let intruder = bed.docker.name("intruder");
    let image = bed.image("v1");
    let labels: Vec<String> = bed
        .docker
        .labels()
        .into_iter()
        .map(|(k, v)| format!("--label={k}={v}"))
        .collect();
    let started = std::sync::atomic::AtomicBool::new(false);
    let progress = |step: fleet_core::Progress| {
        if matches!(step, fleet_core::Progress::Creating { .. })
            && !started.swap(true, Ordering::SeqCst)
        {
            let status = std::process::Command::new("docker")
                .args(["run", "-d", "--name", &intruder])
                .args(&labels)
                .args(["-p", &format!("127.0.0.1:{first}:8080"), &image])
                .stdout(std::process::Stdio::null())
                .status()
                .expect("docker runs");
            assert!(status.success(), "the intruder starts");
        }
    };
    let alice = bed
        .fleet
        .create(bed.spec("alice", "v1"), CreateOptions::default(), &progress)
        .await?;
    assert!(started.load(Ordering::SeqCst), "the intruder ran");
    assert_eq!(alice.ports[0].host, first + 1, "the next port");
    let health = get_json(&format!("http://127.0.0.1:{}/api/health", first + 1)).await?;
    assert_eq!(health["version"], "1.0.0");
    let events = bed.fleet.events(Some(&"alice".parse()?), 10)?;
    assert!(
        events.iter().any(|e| e.message.starts_with(&format!(
            "host port {first} was taken before the container started"
        ))),
        "{events:?}"
    );
    Ok(())
}
