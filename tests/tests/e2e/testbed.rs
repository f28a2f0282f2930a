//! The test bed itself: registry harness, test app images, containers, clean-up.
//!
//! Every later scenario stands on these parts, so each is checked against an independent
//! client (the registry's HTTP API, `skopeo`, plain HTTP to the container).

use std::collections::BTreeSet;
use std::time::Duration;

use anyhow::Context as _;
use bollard::query_parameters::{InspectContainerOptions, ListContainersOptionsBuilder};
use fleet_tests::docker::{RUN_LABEL, RunSpec, TestDocker};
use fleet_tests::image::{Behaviour, TestImage};
use fleet_tests::net::wait_http_ok;
use fleet_tests::registry::TestRegistry;
use fleet_tests::tools::require;

async fn tags_via_api(
    registry: &TestRegistry,
    repository: &str,
) -> anyhow::Result<BTreeSet<String>> {
    let url = format!("{}/v2/{repository}/tags/list", registry.url());
    let mut request = reqwest::Client::new().get(&url);
    if let Some(auth) = registry.basic_auth_header() {
        request = request.header("authorization", auth);
    }
    let body: serde_json::Value = request.send().await?.error_for_status()?.json().await?;
    let tags = body["tags"]
        .as_array()
        .with_context(|| format!("no tags in {body}"))?;
    Ok(tags
        .iter()
        .filter_map(|t| t.as_str().map(String::from))
        .collect())
}

fn tags_via_skopeo(registry: &TestRegistry, repository: &str) -> anyhow::Result<BTreeSet<String>> {
    let skopeo = require("skopeo", "skopeo")?;
    let output = std::process::Command::new(skopeo)
        .args(["list-tags", "--tls-verify=false"])
        .arg(format!("docker://{}/{repository}", registry.host()))
        .output()?;
    anyhow::ensure!(
        output.status.success(),
        "skopeo failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let body: serde_json::Value = serde_json::from_slice(&output.stdout)?;
    Ok(body["Tags"]
        .as_array()
        .context("no Tags")?
        .iter()
        .filter_map(|t| t.as_str().map(String::from))
        .collect())
}

#[tokio::test]
async fn images_pushed_under_several_tags_are_listed_back_by_the_registry_and_skopeo()
-> anyhow::Result<()> {
    let registry = TestRegistry::start()?;
    let docker = TestDocker::new().await?;
    let mut digests = Vec::new();
    for (version, tags) in [
        ("1.0.0", &["v1.0.0"][..]),
        ("1.1.0", &["v1.1.0"][..]),
        ("1.2.0-rc.1", &["v1.2.0-rc.1"][..]),
        ("2.0.0", &["v2.0.0", "latest", "sha-1a2b3c4"][..]),
    ] {
        let image = TestImage::new(version).build(&docker).await?;
        digests.push(image.push(&docker, &registry, "app", tags).await?);
    }
    let expected: BTreeSet<String> = [
        "v1.0.0",
        "v1.1.0",
        "v1.2.0-rc.1",
        "v2.0.0",
        "latest",
        "sha-1a2b3c4",
    ]
    .map(String::from)
    .into();
    assert_eq!(tags_via_api(&registry, "app").await?, expected);
    assert_eq!(tags_via_skopeo(&registry, "app")?, expected);
    // Different versions are different images; tags of one push share its digest.
    assert_eq!(
        digests.iter().collect::<BTreeSet<_>>().len(),
        4,
        "{digests:?}"
    );
    let latest = fleet_tests::image::manifest_digest(&registry, "app", "latest").await?;
    let sha = fleet_tests::image::manifest_digest(&registry, "app", "sha-1a2b3c4").await?;
    assert_eq!(
        (latest.as_str(), sha.as_str()),
        (digests[3].as_str(), digests[3].as_str())
    );
    Ok(())
}

#[tokio::test]
async fn a_container_pulled_from_the_registry_answers_health_version_and_its_name()
-> anyhow::Result<()> {
    let registry = TestRegistry::start()?;
    let docker = TestDocker::new().await?;
    let image = TestImage::new("1.4.2").build(&docker).await?;
    image.push(&docker, &registry, "app", &["v1.4.2"]).await?;
    let reference = format!("{}/app:v1.4.2", registry.docker_host());
    docker.pull(&registry, &reference).await?;
    let network = docker.network("net").await?;
    let container = docker
        .run(
            RunSpec::new(&reference, "web")
                .env("INSTANCE_NAME", "alice")
                .network(&network),
        )
        .await?;

    let health: serde_json::Value = serde_json::from_str(
        &wait_http_ok(
            &format!("{}/api/health", container.url()),
            Duration::from_secs(20),
        )
        .await?,
    )?;
    assert_eq!(health["status"], "healthy");
    assert_eq!(health["version"], "1.4.2");
    assert_eq!(health["checks"]["database"]["status"], "healthy");

    let client = reqwest::Client::new();
    let version: serde_json::Value = client
        .get(format!("{}/api/version", container.url()))
        .send()
        .await?
        .json()
        .await?;
    assert_eq!(version["version"], "1.4.2");
    let root: serde_json::Value = client.get(container.url()).send().await?.json().await?;
    assert_eq!(root["instance"], "alice");

    // The counter lives in SQLite under /data.
    for expected in 1..=3 {
        let counter: serde_json::Value = client
            .post(format!("{}/api/counter", container.url()))
            .send()
            .await?
            .json()
            .await?;
        assert_eq!(counter["counter"], expected);
    }

    // The container is also reachable by its IP on the test network.
    let by_ip = wait_http_ok(
        &format!("http://{}:8080/api/health", container.ip),
        Duration::from_secs(10),
    )
    .await?;
    assert!(by_ip.contains("\"healthy\""), "{by_ip}");
    Ok(())
}

#[tokio::test]
async fn an_htpasswd_registry_refuses_anonymous_access_and_accepts_its_credentials()
-> anyhow::Result<()> {
    let registry = TestRegistry::start_with_auth("fleet", "s3cret-pass")?;
    let docker = TestDocker::new().await?;
    let image = TestImage::new("1.0.0").build(&docker).await?;

    // Anonymous requests are refused with a Basic challenge...
    let client = reqwest::Client::new();
    let upload = client
        .post(format!("{}/v2/app/blobs/uploads/", registry.url()))
        .send()
        .await?;
    assert_eq!(upload.status(), reqwest::StatusCode::UNAUTHORIZED);
    let challenge = upload
        .headers()
        .get("www-authenticate")
        .context("no challenge")?
        .to_str()?
        .to_owned();
    assert!(challenge.starts_with("Basic realm="), "{challenge}");

    // ...and so is an anonymous push through the Docker Engine.
    let anonymous_push = anonymous_docker_push(&docker, &registry, &image.local_tag).await;
    let error = format!(
        "{:#}",
        anonymous_push.expect_err("an anonymous push must be refused")
    );
    assert!(
        error.contains("basic auth") || error.contains("unauthorized"),
        "{error}"
    );
    assert!(
        tags_via_api(&registry, "app").await.is_err(),
        "nothing may have been pushed"
    );

    // With the credentials, push and list work.
    image.push(&docker, &registry, "app", &["v1.0.0"]).await?;
    assert_eq!(
        tags_via_api(&registry, "app").await?,
        BTreeSet::from(["v1.0.0".to_owned()])
    );
    Ok(())
}

async fn anonymous_docker_push(
    docker: &TestDocker,
    registry: &TestRegistry,
    local_tag: &str,
) -> anyhow::Result<()> {
    use bollard::query_parameters::{
        PushImageOptionsBuilder, RemoveImageOptionsBuilder, TagImageOptionsBuilder,
    };
    use futures::StreamExt as _;
    let remote = format!("{}/app", registry.docker_host());
    let engine = docker.docker();
    engine
        .tag_image(
            local_tag,
            Some(
                TagImageOptionsBuilder::default()
                    .repo(&remote)
                    .tag("anon")
                    .build(),
            ),
        )
        .await?;
    let mut stream = engine.push_image(
        &remote,
        Some(PushImageOptionsBuilder::default().tag("anon").build()),
        None,
    );
    let mut result = Ok(());
    while let Some(item) = stream.next().await {
        match item {
            Ok(info) => {
                if let Some(message) = info.error_detail.and_then(|e| e.message) {
                    result = Err(anyhow::anyhow!(message));
                }
            }
            Err(e) => result = Err(e.into()),
        }
    }
    engine
        .remove_image(
            &format!("{remote}:anon"),
            Some(RemoveImageOptionsBuilder::default().noprune(true).build()),
            None,
        )
        .await?;
    result
}

#[tokio::test]
async fn each_test_app_behaviour_does_what_it_promises() -> anyhow::Result<()> {
    let docker = TestDocker::new().await?;
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()?;
    let health_status = |url: String| {
        let client = client.clone();
        async move {
            anyhow::Ok(
                client
                    .get(format!("{url}/api/health"))
                    .send()
                    .await?
                    .status()
                    .as_u16(),
            )
        }
    };

    // never-healthy: serves, but health is 503.
    let image = TestImage::new("1.0.0")
        .behaviour(Behaviour::NeverHealthy)
        .build(&docker)
        .await?;
    let never = docker.run(RunSpec::new(&image.local_tag, "never")).await?;
    wait_http_ok(
        &format!("{}/api/version", never.url()),
        Duration::from_secs(20),
    )
    .await?;
    assert_eq!(health_status(never.url()).await?, 503);

    // flap: alternates.
    let image = TestImage::new("1.0.0")
        .behaviour(Behaviour::Flap)
        .build(&docker)
        .await?;
    let flap = docker.run(RunSpec::new(&image.local_tag, "flap")).await?;
    wait_http_ok(
        &format!("{}/api/version", flap.url()),
        Duration::from_secs(20),
    )
    .await?;
    let statuses = [
        health_status(flap.url()).await?,
        health_status(flap.url()).await?,
        health_status(flap.url()).await?,
        health_status(flap.url()).await?,
    ];
    assert_eq!(statuses, [200, 503, 200, 503]);

    // slow-start: 503 first, healthy later.
    let image = TestImage::new("1.0.0")
        .behaviour(Behaviour::SlowStart(3))
        .build(&docker)
        .await?;
    let slow = docker.run(RunSpec::new(&image.local_tag, "slow")).await?;
    wait_http_ok(
        &format!("{}/api/version", slow.url()),
        Duration::from_secs(20),
    )
    .await?;
    assert_eq!(health_status(slow.url()).await?, 503);
    wait_http_ok(
        &format!("{}/api/health", slow.url()),
        Duration::from_secs(20),
    )
    .await?;

    // crash: the container exits with status 1 and says why.
    let image = TestImage::new("1.0.0")
        .behaviour(Behaviour::Crash)
        .build(&docker)
        .await?;
    let crash = docker.run(RunSpec::new(&image.local_tag, "crash")).await;
    // Start may already report the port missing because the container is gone; either way it exits 1.
    let name = docker.name("crash");
    let mut exit_code = None;
    for _ in 0..100 {
        let state = docker
            .docker()
            .inspect_container(&name, None::<InspectContainerOptions>)
            .await?
            .state;
        if let Some(state) = state.filter(|s| s.running == Some(false)) {
            exit_code = state.exit_code;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(exit_code, Some(1), "crash container: {crash:?}");
    Ok(())
}

#[tokio::test]
async fn dropping_a_test_docker_removes_its_containers_and_networks() -> anyhow::Result<()> {
    let docker = TestDocker::new().await?;
    let run_id = docker.run_id().to_owned();
    let image = TestImage::new("1.0.0").build(&docker).await?;
    let network = docker.network("net").await?;
    docker
        .run(RunSpec::new(&image.local_tag, "a").network(&network))
        .await?;
    docker.run(RunSpec::new(&image.local_tag, "b")).await?;
    drop(docker);

    let engine = fleet_tests::docker::connect().await?;
    let filters = std::collections::HashMap::from([(
        "label".to_owned(),
        vec![format!("{RUN_LABEL}={run_id}")],
    )]);
    let left = engine
        .list_containers(Some(
            ListContainersOptionsBuilder::default()
                .all(true)
                .filters(&filters)
                .build(),
        ))
        .await?;
    assert!(left.is_empty(), "containers left behind: {left:?}");
    let networks = engine
        .list_networks(Some(
            bollard::query_parameters::ListNetworksOptionsBuilder::default()
                .filters(&filters)
                .build(),
        ))
        .await?;
    assert!(networks.is_empty(), "networks left behind: {networks:?}");
    Ok(())
}

#[test]
fn a_missing_program_is_an_error_naming_the_package_to_install() {
    let error = require("fleet-no-such-program", "fleet-no-such-package").expect_err("must fail");
    let message = error.to_string();
    assert!(
        message.contains("apt-get install fleet-no-such-package"),
        "{message}"
    );
}

/// What a child process of the tests below does. Those tests run this test binary again,
/// with `FLEET_TESTBED_CHILD` naming the task and this test's exact name as the filter, to
/// see what a whole process leaves behind when it exits. In a normal run it does nothing.
#[tokio::test]
#[allow(clippy::print_stdout)] // What it prints is its answer to the parent test.
async fn child_process() -> anyhow::Result<()> {
    match std::env::var("FLEET_TESTBED_CHILD").as_deref() {
        Ok("build-image") => {
            let docker = TestDocker::new().await?;
            // Two tests building one image at once may build it twice: one untagged.
            let spec = TestImage::new("0.0.1");
            let (image, again) = tokio::join!(spec.build(&docker), spec.build(&docker));
            let (image, _) = (image?, again?);
            docker.docker().inspect_image(&image.local_tag).await?;
            println!("\nchild-built={}", image.local_tag);
            println!("child-run={}", fleet_tests::image::run());
        }
        Ok("target-dir") => {
            let dir = fleet_tests::testapp::target_dir()?;
            println!("\nchild-target-dir={}", dir.display());
        }
        _ => {}
    }
    Ok(())
}

/// Runs [`child_process`] in a process of its own (a run of its own) with `task` and
/// `envs`, and returns what it printed.
fn run_child(task: &str, envs: &[(&str, &str)]) -> anyhow::Result<String> {
    let output = std::process::Command::new(std::env::current_exe()?)
        .args([
            "--exact",
            "testbed::child_process",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("FLEET_TESTBED_CHILD", task)
        .env_remove(fleet_tests::image::RUN_ENV)
        .envs(envs.iter().copied())
        .output()?;
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    anyhow::ensure!(
        output.status.success(),
        "the child process failed ({}):\n{stdout}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    Ok(stdout)
}

/// The rest of the first line of `stdout` that starts with `key`.
fn printed<'a>(stdout: &'a str, key: &str) -> anyhow::Result<&'a str> {
    stdout
        .lines()
        .find_map(|line| line.strip_prefix(key))
        .with_context(|| format!("the child printed no `{key}` line:\n{stdout}"))
}

/// Regression (issue 14, item 21): every test run left its test app images tagged in the
/// engine (`fleet-testapp:1.0.0-healthy` and a dozen more), and the demo its own.
#[tokio::test]
async fn the_test_app_images_a_process_built_are_removed_when_it_exits() -> anyhow::Result<()> {
    let stdout = run_child("build-image", &[])?;
    let tag = printed(&stdout, "child-built=")?;
    let run = printed(&stdout, "child-run=")?;
    assert!(
        tag.ends_with(&format!("-{run}")),
        "{tag} is not tagged for {run}"
    );

    let engine = fleet_tests::docker::connect().await?;
    let inspected = engine.inspect_image(tag).await;
    assert!(
        matches!(
            inspected,
            Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 404,
                ..
            })
        ),
        "{tag} outlived the process that built it: {inspected:?}"
    );
    let filters = std::collections::HashMap::from([(
        "label".to_owned(),
        vec![format!("{}={run}", fleet_tests::image::RUN_LABEL)],
    )]);
    let left = engine
        .list_images(Some(
            bollard::query_parameters::ListImagesOptionsBuilder::default()
                .all(true)
                .filters(&filters)
                .build(),
        ))
        .await?;
    assert!(left.is_empty(), "images of run {run} left behind: {left:?}");
    Ok(())
}

/// Regression (issue 14, item 13): the test app was built into `<repo>/target/testapp`
/// even when CARGO_TARGET_DIR (or `build.target-dir`) moved the target directory.
#[test]
fn the_test_app_is_built_under_the_target_directory_cargo_reports() -> anyhow::Result<()> {
    let elsewhere = std::env::temp_dir().join(format!(
        "fleet-testbed-target-{}",
        fleet_tests::unique_suffix()
    ));
    let stdout = run_child(
        "target-dir",
        &[("CARGO_TARGET_DIR", &elsewhere.to_string_lossy())],
    )?;
    assert_eq!(
        printed(&stdout, "child-target-dir=")?,
        elsewhere.to_string_lossy()
    );
    assert_eq!(
        fleet_tests::testapp::testapp_target_dir(&elsewhere),
        elsewhere.join("testapp")
    );
    Ok(())
}

/// Regression (issue 14, item 14): the demo returned its error from `main`, which printed
/// `Error: ...` and, with RUST_BACKTRACE=1, a backtrace of 33 frames.
#[test]
fn the_demo_reports_an_error_in_one_line_without_a_backtrace() -> anyhow::Result<()> {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_fleet-demo"))
        .env_remove("FLEET_BIN")
        .env("RUST_BACKTRACE", "1")
        .output()?;
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&output.stderr),
        "demo: error: FLEET_BIN must name the fleet binary (`cargo xtask demo` sets it)\n"
    );
    Ok(())
}

/// Regression (issue 14, item 21): the demo's network and labels used the tests' names
/// (`fleet-test-...-net`, `fleet.test.run`).
#[tokio::test]
async fn the_demo_names_its_network_and_labels_apart_from_the_tests() -> anyhow::Result<()> {
    let demo = TestDocker::for_demo().await?;
    let config = demo.fleet_config("fleet-demo-", 5001, 5999);
    assert!(
        config.contains(&format!("network = \"fleet-demo-{}-net\"", demo.run_id())),
        "{config}"
    );
    assert!(
        config.contains(&format!("\"fleet.demo.run\" = \"{}\"", demo.run_id())),
        "{config}"
    );
    assert!(!config.contains("fleet-test"), "{config}");
    assert!(!config.contains(RUN_LABEL), "{config}");
    Ok(())
}
