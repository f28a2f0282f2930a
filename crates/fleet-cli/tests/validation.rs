//! `fleet create`'s input validation and output through the built binary: bad input is
//! a usage error (exit 2) that names the value, before anything is resolved, pulled or
//! created; the progress lines of a happy create; hints that fit the command.
//!
//! The validation tests need no engine: each runs against a state directory of its own
//! and a registry on port 1, where nothing listens, so code that got past validation
//! would fail with exit 1 instead.

use std::process::Command;

use fleet_tests::docker::TestDocker;
use fleet_tests::image::{Behaviour, TestImage};
use fleet_tests::registry::TestRegistry;

/// An image on a registry that is never reached when validation works.
const IMAGE: &str = "127.0.0.1:1/app:v1";

/// Runs `fleet` with its own state directory and shows exit code, stdout and stderr.
fn fleet_in(state: &std::path::Path, args: &[&str]) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_fleet"))
        .args(args)
        .env("NO_COLOR", "1")
        .env("FLEET_LOG", "off")
        .env("FLEET_STATE_DIR", state)
        .env("DOCKER_CONFIG", state.join("docker"))
        .env_remove("FLEET_INSECURE_REGISTRIES")
        .output()
        .unwrap();
    let text = format!(
        "exit: {}\n--- stdout\n{}--- stderr\n{}",
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    text.replace(&state.display().to_string(), "[state]")
}

/// `fleet create alice --image IMAGE --port 8080 <args>` in a fresh state directory.
fn create(args: &[&str]) -> String {
    let state = tempfile::tempdir().unwrap();
    let mut all = vec!["create", "alice", "--image", IMAGE, "--port", "8080"];
    all.extend_from_slice(args);
    fleet_in(state.path(), &all)
}

/// Regression (issue 14, item 2): `--label fleet.scope=<another fleet's scope>` made
/// the other fleet's reconcile remove this container as a stray. `fleet.*` labels and
/// `FLEET_*` variables are fleet's own.
#[test]
fn reserved_labels_and_env_keys_are_usage_errors() {
    insta::assert_snapshot!(create(&["--label", "fleet.scope=0123abcd"]), @r#"
        exit: 2
        --- stdout
        --- stderr
        error: invalid spec for instance alice: label "fleet.scope" is reserved: fleet.* labels are set by fleet; choose another key
    "#);
    insta::assert_snapshot!(create(&["--label", "fleet.instance=bob"]), @r#"
        exit: 2
        --- stdout
        --- stderr
        error: invalid spec for instance alice: label "fleet.instance" is reserved: fleet.* labels are set by fleet; choose another key
    "#);
    insta::assert_snapshot!(create(&["--env", "FLEET_INSTANCE=bob"]), @r"
        exit: 2
        --- stdout
        --- stderr
        error: invalid spec for instance alice: environment variable FLEET_INSTANCE is reserved: FLEET_* variables are set by fleet; choose another name
    ");
    let state = tempfile::tempdir().unwrap();
    let env_file = state.path().join("app.env");
    std::fs::write(&env_file, "TZ=UTC\nFLEET_INSTANCE=bob\n").unwrap();
    insta::assert_snapshot!(fleet_in(state.path(), &["create", "alice", "--image", IMAGE, "--env-file", env_file.to_str().unwrap()]), @r"
        exit: 2
        --- stdout
        --- stderr
        error: environment file [state]/app.env: line 2: environment variable FLEET_INSTANCE is reserved: FLEET_* variables are set by fleet; choose another name
    ");
}

/// Regression (issue 14, item 10): a NUL byte in an env file reached the engine, whose
/// error echoed the value. It is refused, and the value is not shown.
#[test]
fn a_nul_byte_in_an_env_file_is_refused_without_showing_the_value() {
    let state = tempfile::tempdir().unwrap();
    let env_file = state.path().join("app.env");
    std::fs::write(&env_file, "API_KEY=hunter2\0tail\n").unwrap();
    let shown = fleet_in(
        state.path(),
        &[
            "create",
            "alice",
            "--image",
            IMAGE,
            "--env-file",
            env_file.to_str().unwrap(),
        ],
    );
    assert!(!shown.contains("hunter2"), "{shown}");
    insta::assert_snapshot!(shown, @r"
        exit: 2
        --- stdout
        --- stderr
        error: environment file [state]/app.env: line 1: environment variable API_KEY holds a NUL byte, which no process environment can carry
    ");
}

/// Regression (issue 14, item 9): `--health-path` without `--port` was accepted, then
/// dropped: the instance had no health check at all.
#[test]
fn a_health_check_without_a_port_is_a_usage_error() {
    let state = tempfile::tempdir().unwrap();
    insta::assert_snapshot!(fleet_in(state.path(), &["create", "alice", "--image", IMAGE, "--health-path", "/x"]), @r"
        exit: 2
        --- stdout
        --- stderr
        error: invalid spec for instance alice: its health check needs a port, and it publishes none
        hint: publish the port the app listens on with --port CPORT: health is probed there
    ");
    insta::assert_snapshot!(fleet_in(state.path(), &["create", "alice", "--image", IMAGE, "--health-port", "8080"]), @r"
        exit: 2
        --- stdout
        --- stderr
        error: invalid spec for instance alice: health port 8080 is not one of the instance's ports
        hint: publish the port the app listens on with --port CPORT: health is probed there
    ");
    // `--no-health` without a port is fine (it fails later, at the registry).
    assert!(
        fleet_in(state.path(), &["create", "alice", "--image", IMAGE]).starts_with("exit: 1\n")
    );
}

/// Regression (issue 14, item 10): these reached the engine, and failed there with exit
/// 1 (or, for the memory size, were sent as a negative number).
#[test]
fn limits_users_and_references_are_checked_before_anything_runs() {
    insta::assert_snapshot!(create(&["--memory", "9000000000g"]), @r#"
        exit: 2
        --- stdout
        --- stderr
        error: invalid memory size "9000000000g": it is more than the 8 EiB Docker accepts
    "#);
    insta::assert_snapshot!(create(&["--user=-5"]), @r#"
        exit: 2
        --- stdout
        --- stderr
        error: invalid spec for instance alice: user "-5" is neither a numeric id nor a name
    "#);
    insta::assert_snapshot!(create(&["--user", "99999999999"]), @r"
        exit: 2
        --- stdout
        --- stderr
        error: invalid spec for instance alice: user id 99999999999 is more than 4294967294
    ");
    insta::assert_snapshot!(create(&["--user", "1000:"]), @r#"
        exit: 2
        --- stdout
        --- stderr
        error: invalid spec for instance alice: user "1000:" has an empty group; write uid[:gid] (1000:1000) or a name
    "#);
    let cpus = format!("the host's {} CPUs", host_cpus());
    insta::assert_snapshot!(create(&["--cpus", "9999"]).replace(&cpus, "the host's [n] CPUs"), @r"
        exit: 2
        --- stdout
        --- stderr
        error: invalid spec for instance alice: CPU limit 9999 is more than the host's [n] CPUs
    ");
    let state = tempfile::tempdir().unwrap();
    insta::assert_snapshot!(fleet_in(state.path(), &["create", "alice", "--image", "127.0.0.1:99999/x"]), @r#"
        exit: 2
        --- stdout
        --- stderr
        error: invalid image reference "127.0.0.1:99999/x": registry "127.0.0.1:99999" has port 99999, which is not a port from 1 to 65535
        hint: references look like `nginx`, `owner/app:v1`, `ghcr.io/owner/app@sha256:…`
    "#);
    // Docker takes user names, looked up in the image: so does fleet.
    assert!(create(&["--user", "app"]).starts_with("exit: 1\n"));
}

/// Memory sizes, restart policies and volumes are parsed by fleet-core, whose typed
/// errors name the value and what is wrong with it; `create` reports them as usage
/// errors.
#[test]
fn values_fleet_core_cannot_parse_are_usage_errors() {
    insta::assert_snapshot!(create(&["--memory", "12x"]), @r#"
        exit: 2
        --- stdout
        --- stderr
        error: invalid memory size "12x": its unit "x" is not one of k, m, g, t
    "#);
    insta::assert_snapshot!(create(&["--restart", "sometimes"]), @r#"
        exit: 2
        --- stdout
        --- stderr
        error: invalid restart policy "sometimes": it is not one of no, always, unless-stopped, on-failure[:N]
    "#);
    insta::assert_snapshot!(create(&["--restart", "on-failure:x"]), @r#"
        exit: 2
        --- stdout
        --- stderr
        error: invalid restart policy "on-failure:x": "x" is not a count
    "#);
    insta::assert_snapshot!(create(&["--volume", "/srv/x"]), @r#"
        exit: 2
        --- stdout
        --- stderr
        error: invalid volume "/srv/x": it is not HOST:CONTAINER[:ro|rw]
    "#);
    insta::assert_snapshot!(create(&["--volume", "/srv/x:/x:rx"]), @r#"
        exit: 2
        --- stdout
        --- stderr
        error: invalid volume "/srv/x:/x:rx": its mode "rx" is neither ro nor rw
    "#);
}

fn host_cpus() -> String {
    std::thread::available_parallelism()
        .unwrap()
        .get()
        .to_string()
}

/// A registry holding `app:v1.0.0` and `app:v1`, an app whose health endpoint answers
/// 503 for its first 2 seconds, and a state directory with its own ports and names.
struct Bed {
    registry: TestRegistry,
    docker: TestDocker,
    state: tempfile::TempDir,
}

impl Bed {
    async fn new() -> Bed {
        let registry = TestRegistry::start().unwrap();
        let docker = TestDocker::new().await.unwrap();
        let image = TestImage::new("1.0.0")
            .behaviour(Behaviour::SlowStart(2))
            .build(&docker)
            .await
            .unwrap();
        image
            .push(&docker, &registry, "app", &["v1.0.0", "v1"])
            .await
            .unwrap();
        docker.track_registry(&registry.docker_host());
        let state = tempfile::tempdir().unwrap();
        std::fs::write(
            state.path().join("config.toml"),
            docker.fleet_config(&docker.name(""), 27500, 27519),
        )
        .unwrap();
        Bed {
            registry,
            docker,
            state,
        }
    }

    fn run(&self, args: &[&str]) -> String {
        fleet_in(self.state.path(), args)
            .replace(&self.registry.docker_host(), "[registry]")
            .replace(&self.docker.name(""), "[prefix]")
    }
}

/// Regression (issue 14, items 17 and 18): a happy create printed `health probe 1:
/// unhealthy: …` while the app was starting; and a channel no tag matches hinted at
/// `--prereleases`, which `create` does not have.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_says_starting_and_hints_what_create_can_do() {
    let bed = Bed::new().await;
    let image = format!("{}/app:v1", bed.registry.docker_host());
    let shown = bed.run(&[
        "create",
        "alice",
        "--image",
        &image,
        "--port",
        "8080",
        "--health-path",
        "/api/health",
    ]);
    // The app answers 503 for 2 s: probes every 250 ms see it starting, not unhealthy.
    assert!(shown.starts_with("exit: 0\n"), "{shown}");
    assert!(!shown.contains("unhealthy"), "{shown}");
    let probes: Vec<&str> = shown
        .lines()
        .filter(|line| line.starts_with("health probe "))
        .map(|line| &line[line.find(':').unwrap_or(0)..])
        .collect();
    assert_eq!(probes, [": starting…", ": healthy"], "{shown}");

    let missing = format!("{}/app:v9", bed.registry.docker_host());
    insta::assert_snapshot!(bed.run(&["create", "bob", "--image", &missing, "--port", "8080"]), @r"
        exit: 1
        --- stdout
        --- stderr
        resolving [registry]/app:v9
        error: image [registry]/app:v9: no tag of [registry]/app matches channel v9 (2 tags listed)
        hint: version channels pick stable versions only; to follow prereleases, name one in the channel (`:v2.0.0-rc.1`, `:>=2.0.0-rc.1`)
    ");
}
