//! `fleet export` through the built `fleet` binary, on the real Docker Engine with the
//! test app in a real registry (issue 12): the compose file it writes is accepted by
//! Debian's docker-compose (1.29) and, once the fleet instance is stopped, runs the same
//! app (same digest, same host port, same environment, volume and memory limit)
//! without fleet.
//!
//! Each test has its own state directory, registry, port range (11000 + 20 * k, used by
//! no other test file), network, container names and compose project, removed when it
//! ends, whether it passes or not.

use std::collections::HashMap;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::Duration;

use bollard::query_parameters::{ListContainersOptionsBuilder, ListNetworksOptionsBuilder};
use fleet_tests::cli::CliBed;

async fn bed() -> CliBed {
    static NEXT: AtomicU16 = AtomicU16::new(0);
    let first_port = 11000 + NEXT.fetch_add(1, Ordering::SeqCst) * 20;
    CliBed::new(Path::new(env!("CARGO_BIN_EXE_fleet")), first_port)
        .await
        .unwrap()
}

/// A compose project of the test: `docker-compose down` when dropped, so its containers
/// and network go even when the test fails half-way.
struct Project {
    compose: PathBuf,
    file: PathBuf,
    name: String,
}

impl Project {
    /// Runs `docker-compose -f FILE -p NAME ARGS…`: exit code, stdout, stderr.
    fn run(&self, args: &[&str]) -> (i32, String, String) {
        let output = Command::new(&self.compose)
            .arg("-f")
            .arg(&self.file)
            .args(["-p", &self.name])
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", self.compose.display()));
        (
            output.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&output.stdout).into_owned(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    }

    /// The filter that finds what compose made for this project.
    fn label(&self) -> String {
        format!("com.docker.compose.project={}", self.name)
    }
}

impl Drop for Project {
    fn drop(&mut self) {
        let _ = self.run(&["down", "--volumes", "--remove-orphans", "--timeout", "2"]);
    }
}

/// An environment variable as the app sees it.
async fn app_env(port: u16, name: &str) -> Option<String> {
    let url = format!("http://127.0.0.1:{port}/api/env?name={name}");
    let body = fleet_tests::net::wait_http_ok(&url, Duration::from_secs(30))
        .await
        .unwrap();
    let value: serde_json::Value = serde_json::from_str(&body).unwrap();
    value["value"].as_str().map(str::to_owned)
}

async fn version(port: u16) -> String {
    let url = format!("http://127.0.0.1:{port}/api/version");
    let body = fleet_tests::net::wait_http_ok(&url, Duration::from_secs(30))
        .await
        .unwrap();
    let value: serde_json::Value = serde_json::from_str(&body).unwrap();
    value["version"].as_str().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_exported_compose_file_runs_the_same_app_without_fleet() {
    let compose = fleet_tests::tools::require("docker-compose", "docker-compose").unwrap();
    let bed = bed().await;
    let shared = bed.state.path().join("shared");
    std::fs::create_dir(&shared).unwrap();
    let volume = format!("{}:/shared:ro", shared.display());
    // A `$` in a value must reach the app as it is, not be read by compose as a variable.
    let port = bed.create(
        "alice",
        &[
            "--env",
            "GREETING=hello $USER",
            "--volume",
            &volume,
            "--memory",
            "128m",
            "--cpus",
            "0.5",
        ],
    );
    let fleet_version = version(port).await;
    let digest = bed.json(&["ls", "--json"])[0]["digest"]
        .as_str()
        .unwrap()
        .to_owned();

    let out = bed.state.path().join("out.yml");
    let (code, stdout, stderr) = bed.run(&[
        "export",
        "alice",
        "--format",
        "compose",
        "-o",
        out.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(stdout, format!("exported alice to {}\n", out.display()));
    let mode = std::fs::metadata(&out).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "it holds environment values");
    let text = std::fs::read_to_string(&out).unwrap();
    assert!(text.contains(&format!("@{digest}\"")), "by digest: {text}");
    assert!(!text.contains("\"fleet."), "no fleet labels: {text}");

    let project = Project {
        compose,
        file: out.clone(),
        name: format!("fleetexport{}x{}", std::process::id(), bed.first_port),
    };
    let (code, config, stderr) = project.run(&["config"]);
    assert_eq!(
        code, 0,
        "docker-compose refused the export: {stderr}\n{text}"
    );
    assert!(config.contains("alice:"), "{config}");

    let (code, _, stderr) = bed.run(&["stop", "alice"]);
    assert_eq!(code, 0, "{stderr}");
    let (code, _, stderr) = project.run(&["up", "-d"]);
    assert_eq!(code, 0, "docker-compose up failed: {stderr}\n{text}");

    // The same app, on the same host port, with the same environment.
    assert_eq!(version(port).await, fleet_version);
    assert_eq!(
        app_env(port, "GREETING").await.as_deref(),
        Some("hello $USER")
    );
    assert_eq!(
        app_env(port, "FLEET_INSTANCE").await.as_deref(),
        Some("alice")
    );

    // The container compose made: the image by digest, the memory limit, the volume
    // read-only beside the data directory, and nothing that passes for fleet's.
    let docker = bed.docker.docker();
    let filters = HashMap::from([("label".to_owned(), vec![project.label()])]);
    let containers = docker
        .list_containers(Some(
            ListContainersOptionsBuilder::default()
                .all(true)
                .filters(&filters)
                .build(),
        ))
        .await
        .unwrap();
    assert_eq!(containers.len(), 1, "{containers:?}");
    let inspect = docker
        .inspect_container(containers[0].id.as_deref().unwrap(), None)
        .await
        .unwrap();
    let config = inspect.config.unwrap();
    assert!(
        config
            .image
            .as_deref()
            .unwrap()
            .ends_with(&format!("@{digest}")),
        "{:?}",
        config.image
    );
    // The test image's own labels (`fleet.testapp.run`) are the container's too.
    let image_labels = docker
        .inspect_image(config.image.as_deref().unwrap())
        .await
        .unwrap()
        .config
        .and_then(|c| c.labels)
        .unwrap_or_default();
    let labels = config.labels.unwrap_or_default();
    let forged: Vec<_> = labels
        .keys()
        .filter(|key| key.starts_with("fleet.") && !image_labels.contains_key(*key))
        .collect();
    assert!(
        forged.is_empty(),
        "an exported container must not pass for fleet's: {forged:?}"
    );
    let host = inspect.host_config.unwrap();
    assert_eq!(host.memory, Some(128 << 20));
    assert_eq!(host.nano_cpus, Some(500_000_000));
    let binds = host.binds.unwrap_or_default();
    assert!(
        binds.contains(&format!("{}:/shared:ro", shared.display())),
        "{binds:?}"
    );
    assert!(
        binds.contains(&format!("{}:/data:rw", bed.data_dir("alice").display())),
        "{binds:?}"
    );

    // `down` removes what compose made: its container and its network.
    let (code, _, stderr) = project.run(&["down", "--timeout", "2"]);
    assert_eq!(code, 0, "{stderr}");
    let left = docker
        .list_containers(Some(
            ListContainersOptionsBuilder::default()
                .all(true)
                .filters(&filters)
                .build(),
        ))
        .await
        .unwrap();
    assert!(left.is_empty(), "{left:?}");
    let networks = docker
        .list_networks(Some(
            ListNetworksOptionsBuilder::default()
                .filters(&filters)
                .build(),
        ))
        .await
        .unwrap();
    assert!(networks.is_empty(), "{networks:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_toml_export_is_what_fleet_apply_reads_as_the_same_instance() {
    let bed = bed().await;
    bed.create(
        "bob",
        &["--env", "TZ=UTC", "--memory", "64m", "--group", "prod"],
    );
    let (code, stdout, stderr) = bed.run(&["export", "--all", "--format", "toml"]);
    assert_eq!(code, 0, "{stderr}");
    let image = format!("image = \"{}\"", bed.image("v1"));
    for line in [
        "[instances.bob]",
        image.as_str(),
        "ports = [8080]",
        "health_path = \"/api/health\"",
        "memory = \"64m\"",
        "group = \"prod\"",
        "TZ = \"UTC\"",
    ] {
        assert!(stdout.lines().any(|l| l == line), "{line}: {stdout}");
    }

    // `fleet apply` reads the fragment back as the instance it has: nothing to change.
    let file = bed.state.path().join("fleet.toml");
    std::fs::write(&file, &stdout).unwrap();
    let plan = bed.json(&["apply", "-f", file.to_str().unwrap(), "--dry-run", "--json"]);
    assert_eq!(
        plan["plan"]["unchanged"],
        serde_json::json!(["bob"]),
        "{plan:#}\n{stdout}"
    );
    assert_eq!(
        plan["plan"]["change"],
        serde_json::json!([]),
        "{plan:#}\n{stdout}"
    );

    let json = bed.json(&["export", "bob", "--format", "compose", "--json"]);
    assert_eq!(json["format"], "compose");
    assert_eq!(json["instances"], serde_json::json!(["bob"]));
    assert_eq!(json["path"], serde_json::Value::Null);
    assert!(
        json["content"].as_str().unwrap().contains("  bob:\n"),
        "{json:#}"
    );

    let (code, _, stderr) = bed.run(&["export", "nobody", "--format", "compose"]);
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("no instance named nobody"), "{stderr}");
}

/// Usage errors exit 2 before any fleet is opened: no instance named, an unknown format.
#[test]
fn usage_errors_exit_2() {
    let state = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| {
        let output = Command::new(env!("CARGO_BIN_EXE_fleet"))
            .args(args)
            .env("NO_COLOR", "1")
            .env("FLEET_STATE_DIR", state.path())
            .output()
            .unwrap();
        (
            output.status.code(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    };
    let (code, stderr) = run(&["export", "--format", "compose"]);
    assert_eq!(code, Some(2), "{stderr}");
    let (code, stderr) = run(&["export", "alice", "--format", "yaml"]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains("compose") && stderr.contains("toml"),
        "{stderr}"
    );
    let (code, stderr) = run(&["export", "Alice", "--format", "toml"]);
    assert_eq!(code, Some(2), "{stderr}");
    let (code, stderr) = run(&["export", "alice", "--all", "--format", "toml"]);
    assert_eq!(code, Some(2), "{stderr}");
}

/// Every shape the compose writer has (a Docker healthcheck, CPU and memory limits,
/// labels, read-only volumes, a data directory whose path holds `:`, an IPv6 bind
/// address, values with `$`, quotes, line breaks and control characters, an empty
/// export) is one docker-compose 1.29 accepts, and reads back as written.
#[test]
fn docker_compose_accepts_every_shape_the_export_writes() {
    use fleet_core::export::{ExportedInstance, compose};
    use fleet_core::{InstanceSpec, PortMapping, PortSpec, RestartPolicy, http_health};

    let docker_compose = fleet_tests::tools::require("docker-compose", "docker-compose").unwrap();
    let mut spec = InstanceSpec::new(
        "alice".parse().unwrap(),
        "ghcr.io/acme/app:v1".parse().unwrap(),
    )
    .with_port(PortSpec::auto(8080))
    .with_health(http_health("/api/health"));
    spec.docker_healthcheck = Some(vec!["/app".into(), "healthcheck".into()]);
    spec.volumes = vec!["/srv/shared:/shared:ro".parse().unwrap()];
    spec.resources.memory_bytes = Some(3 << 29);
    spec.resources.cpus = Some(1.5);
    spec.restart = RestartPolicy::No;
    spec.user = Some("1000:1000".into());
    spec.labels.insert("com.acme.tier".into(), "gold".into());
    let env = [
        ("FLEET_INSTANCE", "alice"),
        ("PRICE", "5$ or ${HOME} or $$"),
        ("PEM", "-----BEGIN-----\n\"key\"\t\\\n-----END-----"),
        ("ODD", "\u{1}\u{7f}\u{85}\u{2028}é😀"),
        ("NO", "no"),
    ];
    let alice = ExportedInstance::new(
        spec,
        format!("ghcr.io/acme/app@sha256:{}", "0".repeat(64)),
        vec![PortMapping {
            container: 8080,
            host: 5001,
        }],
        "::1".parse().unwrap(),
        env.iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
        "/srv/alice:data".into(),
    );
    let dir = tempfile::tempdir().unwrap();
    for (name, instances) in [("one.yml", vec![alice]), ("none.yml", vec![])] {
        let file = dir.path().join(name);
        let text = compose(&instances);
        std::fs::write(&file, &text).unwrap();
        let output = Command::new(&docker_compose)
            .arg("-f")
            .arg(&file)
            .arg("config")
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(0), "{stderr}\n{text}");
        if instances.is_empty() {
            continue;
        }
        let config = yaml_to_json(&output.stdout);
        let alice = &config["services"]["alice"];
        for (key, value) in env {
            // `config` writes `$` as `$$` again, so its output can be read back.
            assert_eq!(
                alice["environment"][key].as_str(),
                Some(value.replace('$', "$$").as_str()),
                "{key}: {alice:#}"
            );
        }
        assert_eq!(alice["healthcheck"]["test"][1], "/app", "{alice:#}");
        assert_eq!(alice["restart"], "no", "{alice:#}");
        assert_eq!(alice["labels"]["com.acme.tier"], "gold", "{alice:#}");
    }
}

/// docker-compose's YAML as JSON, read by the PyYAML docker-compose itself runs on
/// (Debian's `docker-compose` depends on `python3-yaml`).
fn yaml_to_json(yaml: &[u8]) -> serde_json::Value {
    use std::io::Write as _;

    let mut child = Command::new("python3")
        .args([
            "-c",
            "import json, sys, yaml; json.dump(yaml.safe_load(sys.stdin), sys.stdout)",
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("python3, which docker-compose runs on");
    child.stdin.take().unwrap().write_all(yaml).unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "PyYAML could not read {}",
        String::from_utf8_lossy(yaml)
    );
    serde_json::from_slice(&output.stdout).unwrap()
}
