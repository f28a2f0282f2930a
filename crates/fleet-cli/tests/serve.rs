//! `fleet serve` and blue-green updates through the built `fleet` binary, on the real
//! Docker Engine with test app images in a real registry (issue 11): under continuous
//! load (keep-alive and new connections), an update, a version that never becomes
//! healthy, one that crashes and a rollback lose no request; a restarted `fleet serve`
//! serves the same routes at once; an instance created before it moves behind it at
//! its next update, the gap measured.
//!
//! Each test has its own state directory, registry, port range (10600 + 20 * k, used by
//! no other test file), network and container names, and its own `fleet serve` process,
//! all removed when it ends.

use std::path::Path;
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::{Duration, Instant};

use fleet_tests::cli::{CliBed, FAST_HEALTH, ServeProcess};
use fleet_tests::load::Load;

async fn bed() -> CliBed {
    static NEXT: AtomicU16 = AtomicU16::new(0);
    let first_port = 10600 + NEXT.fetch_add(1, Ordering::SeqCst) * 20;
    let bed = CliBed::new(Path::new(env!("CARGO_BIN_EXE_fleet")), first_port)
        .await
        .unwrap();
    bed.push_releases().await.unwrap();
    bed
}

fn start_serve(bed: &CliBed) -> ServeProcess {
    ServeProcess::start(&bed.binary, bed.state.path()).unwrap()
}

async fn get(port: u16, path: &str) -> serde_json::Value {
    fleet_tests::net::app_json(port, path, Duration::from_secs(20))
        .await
        .unwrap()
}

async fn version(port: u16) -> String {
    fleet_tests::net::app_version(port, Duration::from_secs(20))
        .await
        .unwrap()
}

/// The host ports a container publishes itself.
async fn published(bed: &CliBed, name: &str) -> usize {
    let state = fleet_core::FleetState::open(bed.state.path()).unwrap();
    let id = state
        .instance(&name.parse().unwrap())
        .unwrap()
        .and_then(|i| i.container_id)
        .unwrap();
    let inspect = bed
        .docker
        .docker()
        .inspect_container(&id, None)
        .await
        .unwrap();
    inspect
        .network_settings
        .and_then(|n| n.ports)
        .unwrap_or_default()
        .values()
        .filter(|bindings| bindings.as_ref().is_some_and(|b| !b.is_empty()))
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blue_green_updates_under_load_lose_no_request() {
    let bed = bed().await;
    let _serve = start_serve(&bed);
    let port = bed.create_on("alice", "v1.0", &FAST_HEALTH);
    assert_eq!(published(&bed, "alice").await, 0, "the proxy publishes it");
    for _ in 0..3 {
        fleet_tests::net::post(&format!("http://127.0.0.1:{port}/api/counter"))
            .await
            .unwrap();
    }
    let load = Load::start(&format!("http://127.0.0.1:{port}/api/version"), 4);
    tokio::time::sleep(Duration::from_millis(300)).await;

    let (code, report) = bed.update(&["alice", "--to", "v1.1.0"]);
    assert_eq!(code, 0, "{report:#}");
    assert_eq!(report["outcome"], "updated", "{report:#}");
    assert_eq!(report["downtime_ms"], 0, "{report:#}");
    assert_eq!(version(port).await, "1.1.0");

    let (code, report) = bed.update(&["alice", "--to", "v2.0.0"]);
    assert_eq!(code, 1, "{report:#}");
    assert_eq!(report["outcome"], "rolled_back", "{report:#}");
    assert_eq!(report["step"], "gate", "{report:#}");
    assert!(
        report["reason"]
            .as_str()
            .unwrap()
            .contains("the old version never stopped serving"),
        "{report:#}"
    );

    let (code, report) = bed.update(&["alice", "--to", "v3.0.0"]);
    assert_eq!(code, 1, "{report:#}");
    assert_eq!(report["outcome"], "rolled_back", "{report:#}");

    let (code, _, stderr) = bed.run(&["rollback", "alice"]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(version(port).await, "1.0.0");

    tokio::time::sleep(Duration::from_millis(300)).await;
    let seen = load.stop().await;
    assert_eq!(seen.failed, 0, "zero failed requests: {seen:?}");
    assert!(seen.ok > 200, "{seen:?}");
    let counter = get(port, "/api/counter").await;
    assert_eq!(counter["counter"], 3, "the data survived every step");
    let history = bed.json(&["history", "alice", "--json"]);
    assert!(
        history
            .as_array()
            .unwrap()
            .iter()
            .all(|d| d["strategy"] == "blue-green"),
        "{history:#}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_restarts_with_its_routes_and_takes_older_instances_at_their_update() {
    let bed = bed().await;
    // Created before fleet serve runs: it publishes its port itself.
    let early = bed.create_on("early", "v1.0", &FAST_HEALTH);
    assert_eq!(published(&bed, "early").await, 1);
    let serve = start_serve(&bed);
    let late = bed.create_on("late", "v1.0", &FAST_HEALTH);
    assert_eq!(version(early).await, "1.0.0");
    assert_eq!(version(late).await, "1.0.0");

    // Its next update moves it behind the proxy; the gap is measured and reported.
    let (code, report) = bed.update(&["early", "--to", "v1.1.0"]);
    assert_eq!(code, 0, "{report:#}");
    let gap = report["downtime_ms"].as_u64().unwrap();
    assert!(gap > 0, "{report:#}");
    assert_eq!(published(&bed, "early").await, 0);
    assert_eq!(version(early).await, "1.1.0");
    // fleet ls shows the same host port either way.
    let listed = bed.json(&["ls", "--json"]);
    let ports: Vec<u64> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["ports"][0]["host"].as_u64().unwrap())
        .collect();
    assert_eq!(ports, [u64::from(early), u64::from(late)]);

    // Stopped, it drains and exits 0; while it is down the proxied ports do not answer.
    let (code, stderr) = serve.stop(Duration::from_secs(60)).unwrap();
    assert_eq!(code, 0, "{stderr}");
    assert!(stderr.contains("stopped after draining"), "{stderr}");
    assert!(std::net::TcpStream::connect(("127.0.0.1", late)).is_err());
    // Started again, it serves the same routes at once.
    let _serve = start_serve(&bed);
    let started = Instant::now();
    assert_eq!(version(late).await, "1.0.0");
    assert_eq!(version(early).await, "1.1.0");
    assert!(started.elapsed() < Duration::from_secs(5));

    let (code, stdout, _) = bed.run(&["serve", "--print-systemd-unit"]);
    assert_eq!(code, 0);
    assert!(
        stdout.contains("ExecStart=") && stdout.contains(" serve"),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!("FLEET_STATE_DIR={}", bed.state.path().display())),
        "{stdout}"
    );
    // A second serve on the same state directory is refused.
    let (code, _, stderr) = bed.run(&["serve"]);
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("already runs"), "{stderr}");
}

/// With `fleet serve` running, the update process is killed right after journaling each
/// blue-green step in turn, under load; the next command recovers: the route points at
/// the one container left, which serves the expected version, and no request failed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blue_green_update_killed_at_any_step_is_recovered_without_a_failed_request() {
    let bed = bed().await;
    let _serve = start_serve(&bed);
    let port = bed.create_on("alice", "v1.0", &FAST_HEALTH);
    let load = Load::start(&format!("http://127.0.0.1:{port}/api/version"), 4);
    let mut running = "1.0.0";
    for (step, finished) in [
        ("backup", false),
        ("pull", false),
        ("start", false),
        ("gate", false),
        ("switch", true),
        ("retire", true),
        ("record", true),
    ] {
        let (target, next) = if running == "1.0.0" {
            ("v1.1.0", "1.1.0")
        } else {
            ("v1.0.0", "1.0.0")
        };
        let (code, _, stderr) = bed.run_with(
            &["update", "alice", "--to", target],
            &[("FLEET_TEST_CRASH_AT", step)],
        );
        assert_ne!(code, 0, "{step}: the process was killed: {stderr}");
        let (code, _, stderr) = bed.run(&["start", "alice"]);
        assert_eq!(code, 0, "{step}: {stderr}");
        if finished {
            running = next;
        }
        assert_eq!(version(port).await, running, "{step}");
        let history = bed.json(&["history", "alice", "--json"]);
        let expected = if finished { "updated" } else { "rolled_back" };
        assert_eq!(history[0]["outcome"], expected, "{step}: {history:#}");
        let containers = bed
            .docker
            .docker()
            .list_containers(Some(
                bollard::query_parameters::ListContainersOptionsBuilder::default()
                    .all(true)
                    .filters(&std::collections::HashMap::from([(
                        "name".to_owned(),
                        vec![bed.docker.name("alice")],
                    )]))
                    .build(),
            ))
            .await
            .unwrap();
        assert_eq!(containers.len(), 1, "{step}: {containers:#?}");
    }
    let seen = load.stop().await;
    assert_eq!(seen.failed, 0, "zero failed requests: {seen:?}");
    assert!(seen.ok > 100, "{seen:?}");
}

/// `[serve] shared_port` and `domain`: instances behind the proxy also answer on one
/// shared port, told apart by host name; an unknown host name gets a 404.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instances_share_one_port_by_host_name() {
    let bed = bed().await;
    // The last port of the bed's range becomes the shared port, outside [ports].
    let shared = bed.first_port + 19;
    let config = bed.state.path().join("config.toml");
    let text = std::fs::read_to_string(&config).unwrap().replace(
        &format!("last = {shared}"),
        &format!("last = {}", shared - 1),
    );
    std::fs::write(
        &config,
        format!("{text}\n[serve]\nshared_port = {shared}\ndomain = \"test.lan\"\n"),
    )
    .unwrap();
    let _serve = start_serve(&bed);
    bed.create_on("alice", "v1.0", &[]);
    bed.create_on("bob", "v1.1.0", &[]);

    let ask = |host: &'static str| async move {
        fleet_tests::net::get_with_host(&format!("http://127.0.0.1:{shared}/api/version"), host)
            .await
            .unwrap()
    };
    let (status, body) = ask("alice.test.lan").await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"1.0.0\""), "{body}");
    let (status, body) = ask("BOB.test.lan").await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"1.1.0\""), "{body}");
    let (status, _) = ask("carol.test.lan").await;
    assert_eq!(status, 404);
    // After an update, the shared port follows the new container too.
    let (code, report) = bed.update(&["alice", "--to", "v1.1.0"]);
    assert_eq!(code, 0, "{report:#}");
    let (_, body) = ask("alice.test.lan").await;
    assert!(body.contains("\"1.1.0\""), "{body}");
}

/// Runs `fleet serve --check` (on `state`, with `env`): exit code, stdout, stderr.
fn check(state: &Path, args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_fleet"))
        .args(["serve", "--check"])
        .args(args)
        .env_remove("FLEET_SERVE_API")
        .envs(env.iter().copied())
        .env("FLEET_STATE_DIR", state)
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// `fleet serve` answers `GET /api/health` on `[serve] api`, and `fleet serve --check`
/// (the container image's HEALTHCHECK) exits 0 while it does and 1 once it stopped, or
/// when no address is set.
#[test]
fn serve_check_exits_0_while_the_api_answers_and_1_otherwise() {
    let state = tempfile::tempdir().unwrap();
    let port = fleet_tests::net::free_port().unwrap();
    let api = format!("127.0.0.1:{port}");
    std::fs::write(
        state.path().join("config.toml"),
        format!("[serve]\napi = \"{api}\"\n"),
    )
    .unwrap();
    let serve = ServeProcess::start(Path::new(env!("CARGO_BIN_EXE_fleet")), state.path()).unwrap();

    // The address from config.toml, from --api, from FLEET_SERVE_API.
    let elsewhere = tempfile::tempdir().unwrap();
    for (dir, args, env) in [
        (state.path(), &[][..], &[][..]),
        (elsewhere.path(), &["--api", api.as_str()][..], &[][..]),
        (
            elsewhere.path(),
            &[][..],
            &[("FLEET_SERVE_API", api.as_str())][..],
        ),
    ] {
        let (code, stdout, stderr) = check(dir, args, env);
        assert_eq!(code, 0, "{args:?} {env:?}: {stderr}");
        assert_eq!(
            stdout,
            format!(
                "healthy: fleet {} serving 0 routes\n",
                env!("CARGO_PKG_VERSION")
            )
        );
    }
    let (code, stdout, _) = check(state.path(), &["--json"], &[]);
    assert_eq!(code, 0);
    let health: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(
        health,
        serde_json::json!({"status": "ok", "version": env!("CARGO_PKG_VERSION"), "routes": 0})
    );

    // A second serve whose API address is taken does not start, and says why.
    let other = tempfile::tempdir().unwrap();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_fleet"))
        .args(["serve", "--api", &api])
        .env("FLEET_STATE_DIR", other.path())
        .env("FLEET_LOG", "off")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!("cannot serve its API on {api}: ")),
        "{stderr}"
    );
    assert!(!other.path().join("serve.sock").exists());

    let (code, _) = serve.stop(Duration::from_secs(30)).unwrap();
    assert_eq!(code, 0);
    let (code, stdout, stderr) = check(state.path(), &[], &[]);
    assert_eq!(code, 1, "{stdout}");
    assert_eq!(stdout, "");
    assert!(
        stderr.starts_with(&format!(
            "error: fleet serve is not healthy: cannot connect to http://{api}/api/health: "
        )),
        "{stderr}"
    );
    assert_eq!(stderr.lines().count(), 1, "one line: {stderr}");

    let (code, _, stderr) = check(elsewhere.path(), &[], &[]);
    assert_eq!(code, 1);
    assert!(
        stderr.starts_with("error: no API address to check: set FLEET_SERVE_API"),
        "{stderr}"
    );
}
