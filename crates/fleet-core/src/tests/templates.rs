//! Settings templated from the allocation (issue 12) on the fake engine: the container
//! gets the rendered values, and a key without a value fails the create before anything
//! is left behind. `crates/fleet-cli/tests/templates.rs` runs it on the real daemon.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use futures::stream::BoxStream;

use super::{DIGEST_1, IMAGE, assert_nothing_left, create, spec};
use crate::engine::fake::FakeEngine;
use crate::engine::{
    ContainerInfo, ContainerSpec, Engine, EngineEvent, ExecOutput, LogLine, LogOptions,
    PullProgress, RegistryAuth,
};
use crate::error::EngineError;
use crate::spec::template::FleetVars;
use crate::{Error, Fleet, FleetConfig, PortRange, PortSpec, StaticResolver, VolumeSpec};

/// The fake engine, remembering the spec of every container it was asked to create.
#[derive(Debug, Default)]
struct Recording {
    inner: Arc<FakeEngine>,
    created: Mutex<Vec<ContainerSpec>>,
}

impl Recording {
    fn created(&self, name: &str) -> ContainerSpec {
        let created = self.created.lock().unwrap();
        let spec = created.iter().find(|c| c.name == name);
        spec.unwrap_or_else(|| panic!("no container {name} was created"))
            .clone()
    }
}

#[async_trait]
impl Engine for Recording {
    fn host(&self) -> &str {
        self.inner.host()
    }
    async fn ping(&self) -> Result<(), EngineError> {
        self.inner.ping().await
    }
    async fn pull(
        &self,
        image: &str,
        auth: Option<&RegistryAuth>,
        progress: &(dyn Fn(PullProgress) + Send + Sync),
    ) -> Result<(), EngineError> {
        self.inner.pull(image, auth, progress).await
    }
    async fn has_image(&self, image: &str) -> Result<bool, EngineError> {
        self.inner.has_image(image).await
    }
    async fn image_user(&self, image: &str) -> Result<Option<String>, EngineError> {
        self.inner.image_user(image).await
    }
    async fn ensure_network(
        &self,
        name: &str,
        labels: &BTreeMap<String, String>,
    ) -> Result<(), EngineError> {
        self.inner.ensure_network(name, labels).await
    }
    async fn create_container(&self, spec: &ContainerSpec) -> Result<String, EngineError> {
        self.created.lock().unwrap().push(spec.clone());
        self.inner.create_container(spec).await
    }
    async fn start_container(&self, id: &str) -> Result<(), EngineError> {
        self.inner.start_container(id).await
    }
    async fn stop_container(&self, id: &str, grace: Duration) -> Result<(), EngineError> {
        self.inner.stop_container(id, grace).await
    }
    async fn remove_container(&self, id: &str) -> Result<(), EngineError> {
        self.inner.remove_container(id).await
    }
    async fn inspect_container(&self, id: &str) -> Result<Option<ContainerInfo>, EngineError> {
        self.inner.inspect_container(id).await
    }
    async fn list_containers(
        &self,
        labels: &[(&str, &str)],
    ) -> Result<Vec<ContainerInfo>, EngineError> {
        self.inner.list_containers(labels).await
    }
    async fn published_ports(&self) -> Result<Vec<(u16, String)>, EngineError> {
        self.inner.published_ports().await
    }
    async fn exec(&self, id: &str, command: &[String]) -> Result<ExecOutput, EngineError> {
        self.inner.exec(id, command).await
    }
    fn logs(
        &self,
        id: &str,
        options: LogOptions,
    ) -> BoxStream<'static, Result<LogLine, EngineError>> {
        self.inner.logs(id, options)
    }
    fn events(
        &self,
        labels: &[(&str, &str)],
    ) -> BoxStream<'static, Result<EngineEvent, EngineError>> {
        self.inner.events(labels)
    }
}

/// The usual bed (`super::bed`), on the recording engine, with `[vars]` set.
async fn bed() -> (super::Bed, Arc<Recording>) {
    let serial = super::serial().await;
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_owned();
    let engine = Arc::new(Recording::default());
    engine.inner.add_image(
        &format!("localhost:5000/app@{DIGEST_1}"),
        Some("10001:10001"),
    );
    let resolver = Arc::new(StaticResolver::new());
    resolver.set(IMAGE, Some("v1.0.0"), &DIGEST_1.parse().unwrap());
    let mut vars: FleetVars = toml::from_str(
        "domain = \"example.com\"\nregion = \"eu\"\n[group.staging]\ndomain = \"staging.example.com\"\n",
    )
    .unwrap();
    vars.fleet.insert("tier".into(), "fleet".into());
    let config = FleetConfig {
        ports: PortRange::new(30000, 30999, 1).unwrap(),
        vars,
        ..FleetConfig::default()
    };
    let fleet = Fleet::builder(&root)
        .config(config)
        .engine(engine.clone())
        .resolver(resolver.clone())
        .open()
        .await
        .unwrap();
    let bed = super::Bed {
        _serial: serial,
        _dir: dir,
        root,
        engine: engine.inner.clone(),
        resolver,
        fleet,
    };
    (bed, engine)
}

#[tokio::test]
async fn the_container_gets_env_values_and_volume_paths_rendered_from_its_allocation() {
    let (bed, engine) = bed().await;
    let mut alice = spec("alice")
        .with_port(PortSpec::auto(9090))
        .with_group("staging")
        .with_env("APP_URL", "https://{{name}}.example.com:{{port}}")
        .with_env("ADMIN", "{{port:9090}} {{group}} {{domain}} {{region}}")
        .with_env("LITERAL", "{{{{name}} {{missing|fallback}}")
        .with_var("region", "us");
    alice.volumes.push(VolumeSpec {
        host: bed.root.join("logs").join("{{name}}-{{region}}"),
        container: "/logs".into(),
        read_only: false,
    });
    let env_file = bed.root.join("alice.env");
    std::fs::write(&env_file, "FROM_FILE={{data_dir}}|{{state_dir}}\n").unwrap();
    alice.env_file = Some(env_file);
    let created = create(&bed, alice).await.unwrap();
    assert_eq!(
        created
            .ports
            .iter()
            .map(|p| (p.container, p.host))
            .collect::<Vec<_>>(),
        [(8080, 30000), (9090, 30001)]
    );

    let container = engine.created("fleet-alice.1");
    let root = bed.root.display();
    assert_eq!(container.env["APP_URL"], "https://alice.example.com:30000");
    // The group's var wins over the fleet's, the instance's over both.
    assert_eq!(
        container.env["ADMIN"],
        "30001 staging staging.example.com us"
    );
    assert_eq!(container.env["LITERAL"], "{{name}} fallback");
    assert_eq!(
        container.env["FROM_FILE"],
        format!("{root}/instances/alice/data|{root}")
    );
    assert_eq!(
        container.binds[1].host,
        bed.root.join("logs").join("alice-us")
    );
    // The store keeps the templates: the next container is rendered again.
    let stored = bed.fleet.get(&super::name("alice")).unwrap();
    assert_eq!(
        stored.spec.env["APP_URL"],
        "https://{{name}}.example.com:{{port}}"
    );
}

#[tokio::test]
async fn a_key_without_a_value_fails_the_create_naming_it_and_leaves_nothing() {
    let (bed, engine) = bed().await;
    let bob = spec("bob").with_env("APP_URL", "https://{{name}}.{{customer_domain}}:{{port}}");
    let error = create(&bed, bob).await.unwrap_err();
    assert!(matches!(error, Error::Template { .. }), "{error:?}");
    assert!(error.is_invalid_input());
    insta::assert_snapshot!(error, @"instance bob: env APP_URL: {{customer_domain}} has no value and no default: set var customer_domain for the instance (fleet create --var customer_domain=VALUE), its group ([vars.group.GROUP] in config.toml) or the fleet ([vars]), or write {{customer_domain|default}}");
    assert!(
        engine.created.lock().unwrap().is_empty(),
        "no container was asked for"
    );
    assert!(engine.inner.containers().is_empty(), "no container");
    assert_nothing_left(&bed, "bob");

    // A templated volume path that renders relative is refused the same way.
    let mut carol = spec("carol");
    carol.volumes.push(VolumeSpec {
        host: "{{relative|logs}}/carol".into(),
        container: "/logs".into(),
        read_only: false,
    });
    let error = create(&bed, carol).await.unwrap_err();
    insta::assert_snapshot!(error, @"invalid spec for instance carol: volume {{relative|logs}}/carol: volume source logs/carol must be an absolute path");
    assert_nothing_left(&bed, "carol");

    // The ports are free again.
    let dave = create(&bed, spec("dave").with_var("customer_domain", "acme.test"))
        .await
        .unwrap();
    assert_eq!(dave.ports[0].host, 30000);
}

/// Syntax errors are found before anything is resolved: `validate` refuses them.
#[tokio::test]
async fn an_unclosed_placeholder_or_a_bad_var_is_refused_by_validation() {
    let (bed, _engine) = bed().await;
    let error = create(&bed, spec("erin").with_env("URL", "https://{{name"))
        .await
        .unwrap_err();
    insta::assert_snapshot!(error, @"instance erin: env URL: `{{` at byte 8 has no closing `}}` (a literal `{{` is written `{{{{`)");
    let error = create(&bed, spec("erin").with_var("port", "1"))
        .await
        .unwrap_err();
    insta::assert_snapshot!(error, @r#"invalid spec for instance erin: var "port" is reserved: {{port}} is filled in by fleet; choose another name"#);
    assert_nothing_left(&bed, "erin");
}
