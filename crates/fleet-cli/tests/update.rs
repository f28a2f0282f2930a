//! `fleet update`, `rollback` and `history` through the built `fleet` binary, on the real
//! Docker Engine with test app images in a real registry (issue 11): an update under
//! continuous load, versions that never become healthy or crash rolled back with the old
//! version serving again, a rollback, the data kept throughout, and an update process
//! killed at each journaled step recovered by the next command.
//!
//! Strategy `recreate` (the proxy does not run in these tests): requests fail while the
//! container is replaced; the downtime is measured and reported, and the load proves
//! the app serves again after every step.
//!
//! Instances follow the channel `v1.0` (so v1.0.0), and updates name their target
//! with `--to`.
//!
//! Each test has its own state directory, registry, port range (10400 + 20 * k, used by
//! no other test file), network and container names, removed when it ends.

use std::path::Path;
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::Duration;

use fleet_tests::cli::{CliBed, FAST_HEALTH};
use fleet_tests::image::Behaviour;
use fleet_tests::load::Load;

async fn bed() -> CliBed {
    static NEXT: AtomicU16 = AtomicU16::new(0);
    let first_port = 10400 + NEXT.fetch_add(1, Ordering::SeqCst) * 20;
    let bed = CliBed::new(Path::new(env!("CARGO_BIN_EXE_fleet")), first_port)
        .await
        .unwrap();
    bed.push_releases().await.unwrap();
    bed
}

async fn get(port: u16, path: &str) -> serde_json::Value {
    fleet_tests::net::app_json(port, path, Duration::from_secs(20))
        .await
        .unwrap()
}

async fn counter(port: u16) -> i64 {
    get(port, "/api/counter").await["counter"].as_i64().unwrap()
}

async fn version(port: u16) -> String {
    fleet_tests::net::app_version(port, Duration::from_secs(20))
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn updates_under_load_roll_back_bad_versions_and_keep_the_data() {
    let bed = bed().await;
    let port = bed.create_on("alice", "v1.0", &FAST_HEALTH);
    for _ in 0..3 {
        fleet_tests::net::post(&format!("http://127.0.0.1:{port}/api/counter"))
            .await
            .unwrap();
    }
    let load = Load::start(&format!("http://127.0.0.1:{port}/api/version"), 4);

    // 1. v1.0.0 -> v1.1.0.
    let (code, report) = bed.update(&["alice", "--to", "v1.1.0"]);
    assert_eq!(code, 0, "{report:#}");
    assert_eq!(report["outcome"], "updated", "{report:#}");
    assert_eq!(report["from"]["version"], "1.0.0", "{report:#}");
    assert_eq!(report["to"]["version"], "1.1.0", "{report:#}");
    assert!(report["downtime_ms"].as_u64().unwrap() > 0, "{report:#}");
    assert!(report["backup"].as_i64().is_some(), "{report:#}");
    assert_eq!(version(port).await, "1.1.0");
    assert_eq!(counter(port).await, 3, "the data survived the update");

    // 2. A version that never becomes healthy: tried, rolled back, v1.1.0 serves.
    let (code, report) = bed.update(&["alice", "--to", "v2.0.0"]);
    assert_eq!(code, 1, "{report:#}");
    assert_eq!(report["outcome"], "rolled_back", "{report:#}");
    assert_eq!(report["step"], "gate", "{report:#}");
    let reason = report["reason"].as_str().unwrap();
    assert!(reason.contains("did not become healthy"), "{reason}");
    assert!(reason.contains("the old version runs again"), "{reason}");
    assert_eq!(version(port).await, "1.1.0");

    // 3. A version that crashes on start: its output is in the reason.
    let (code, report) = bed.update(&["alice", "--to", "v3.0.0"]);
    assert_eq!(code, 1, "{report:#}");
    assert_eq!(report["outcome"], "rolled_back", "{report:#}");
    let reason = report["reason"].as_str().unwrap();
    assert!(reason.contains("exited with code 1"), "{reason}");
    assert!(reason.contains("its last output"), "{reason}");
    assert_eq!(version(port).await, "1.1.0");

    // 4. Rollback: back to v1.0.0, the data still there.
    let (code, stdout, stderr) = bed.run(&["rollback", "alice"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stdout.contains("v1.1.0") && stdout.contains("-> v1.0.0"),
        "{stdout}"
    );
    assert_eq!(version(port).await, "1.0.0");
    assert_eq!(counter(port).await, 3);

    let seen = load.stop().await;
    // Recreate loses requests while the container is replaced, but the app answered
    // between every step (the assertions above read it) and the load got through.
    assert!(seen.ok > 100, "{seen:?}");

    let history = bed.json(&["history", "alice", "--json"]);
    let outcomes: Vec<(&str, &str)> = history
        .as_array()
        .unwrap()
        .iter()
        .map(|d| (d["kind"].as_str().unwrap(), d["outcome"].as_str().unwrap()))
        .collect();
    assert_eq!(
        outcomes,
        [
            ("rollback", "updated"),
            ("update", "rolled_back"),
            ("update", "rolled_back"),
            ("update", "updated")
        ]
    );
    // Exactly one container of alice is left, the current one.
    let containers = bed
        .docker
        .docker()
        .list_containers(Some(bollard_list_options(&bed.docker.name("alice"))))
        .await
        .unwrap();
    assert_eq!(containers.len(), 1, "{containers:#?}");
    let (code, table, _) = bed.run(&["history", "alice"]);
    assert_eq!(code, 0);
    assert!(table.starts_with("ID  STARTED"), "{table}");
}

fn bollard_list_options(name: &str) -> bollard::query_parameters::ListContainersOptions {
    bollard::query_parameters::ListContainersOptionsBuilder::default()
        .all(true)
        .filters(&std::collections::HashMap::from([(
            "name".to_owned(),
            vec![name.to_owned()],
        )]))
        .build()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dry_run_plans_and_up_to_date_changes_nothing() {
    let bed = bed().await;
    bed.create_on("alice", "v1.0", &[]);
    let (code, stdout, stderr) = bed.run(&["update", "alice", "--dry-run"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.starts_with("alice: up to date (v1.0.0"), "{stdout}");
    let (code, stdout, _) = bed.run(&["update", "alice", "--dry-run", "--to", "v1.1.0"]);
    assert_eq!(code, 0);
    assert!(
        stdout.contains("v1.0.0 (sha256:") && stdout.contains("-> v1.1.0"),
        "{stdout}"
    );
    let (code, report) = bed.update(&["alice"]);
    assert_eq!(code, 0);
    assert_eq!(report["outcome"], "unchanged");
    assert!(
        bed.json(&["history", "alice", "--json"])
            .as_array()
            .unwrap()
            .is_empty()
    );
    let (code, _, stderr) = bed.run(&["update", "alice", "--strategy", "blue-green"]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("fleet serve"), "{stderr}");
    let (code, _, stderr) = bed.run(&["rollback", "alice"]);
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("no earlier deployment"), "{stderr}");

    // An image whose own Docker HEALTHCHECK fails, though the app answers healthy: the
    // gate waits for Docker's verdict too, and rolls back.
    let image = fleet_tests::image::TestImage::new("1.2.0")
        .behaviour(Behaviour::DockerUnhealthy)
        .healthcheck(true)
        .build(&bed.docker)
        .await
        .unwrap();
    image
        .push(&bed.docker, &bed.registry, "app", &["v1.2.0"])
        .await
        .unwrap();
    let (code, report) = bed.update(&["alice", "--to", "v1.2.0"]);
    assert_eq!(code, 1, "{report:#}");
    assert_eq!(report["outcome"], "rolled_back", "{report:#}");
    assert!(
        report["reason"]
            .as_str()
            .unwrap()
            .contains("Docker's HEALTHCHECK says unhealthy"),
        "{report:#}"
    );
}

/// The update process is killed right after journaling each step in turn; the next
/// command recovers: one container of alice runs and serves, no candidate is left, and
/// the deployment is marked rolled back (killed before the gate passed) or updated.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_update_killed_at_any_step_is_recovered_by_the_next_command() {
    let bed = bed().await;
    let port = bed.create_on("alice", "v1.0", &FAST_HEALTH);
    let mut expected_version = "1.0.0";
    for (step, target, outcome) in [
        ("backup", "v1.1.0", "rolled_back"),
        ("pull", "v1.1.0", "rolled_back"),
        ("stop_old", "v1.1.0", "rolled_back"),
        ("start", "v1.1.0", "rolled_back"),
        ("gate", "v1.1.0", "rolled_back"),
        ("retire", "v1.1.0", "updated"),
        ("record", "v1.0.0", "updated"),
    ] {
        let (code, _, stderr) = bed.run_with(
            &["update", "alice", "--to", target],
            &[("FLEET_TEST_CRASH_AT", step)],
        );
        assert_ne!(code, 0, "{step}: the process was killed: {stderr}");
        // Any command that takes alice's lease recovers her first.
        let (code, _, stderr) = bed.run(&["start", "alice"]);
        assert_eq!(code, 0, "{step}: {stderr}");
        if outcome == "updated" {
            expected_version = if target == "v1.1.0" { "1.1.0" } else { "1.0.0" };
        }
        assert_eq!(version(port).await, expected_version, "{step}");
        let history = bed.json(&["history", "alice", "--json"]);
        assert_eq!(history[0]["outcome"], outcome, "{step}: {history:#}");
        assert!(
            history[0]["reason"]
                .as_str()
                .unwrap()
                .starts_with(&format!("interrupted at step {step}")),
            "{step}: {history:#}"
        );
        let containers = bed
            .docker
            .docker()
            .list_containers(Some(bollard_list_options(&bed.docker.name("alice"))))
            .await
            .unwrap();
        assert_eq!(containers.len(), 1, "{step}: {containers:#?}");
    }
}

/// Ctrl-C while the new version is being gated: the update stops and rolls back, the
/// old version serves again, no candidate is left.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctrl_c_during_an_update_rolls_it_back() {
    let bed = bed().await;
    let port = bed.create_on("alice", "v1.0", &FAST_HEALTH);
    let child = std::process::Command::new(&bed.binary)
        .args(["update", "alice", "--to", "v2.0.0", "--json"])
        .env("FLEET_STATE_DIR", bed.state.path())
        .env("DOCKER_CONFIG", bed.state.path().join("docker"))
        .env("FLEET_LOG", "off")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Wait until the candidate is in its health gate.
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let history = bed.json(&["history", "alice", "--json"]);
        if history[0]["step"] == "gate" {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{history:#}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    let output = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(1), "{stdout}");
    let report: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(report[0]["outcome"], "rolled_back", "{report:#}");
    assert!(
        report[0]["reason"]
            .as_str()
            .unwrap()
            .starts_with("cancelled at step gate"),
        "{report:#}"
    );
    assert_eq!(version(port).await, "1.0.0");
    let containers = bed
        .docker
        .docker()
        .list_containers(Some(bollard_list_options(&bed.docker.name("alice"))))
        .await
        .unwrap();
    assert_eq!(containers.len(), 1, "{containers:#?}");
}

/// Two `fleet update` processes on one instance at once: one deploys, the other is
/// refused as busy and changes nothing. Never two candidates.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_updates_of_one_instance_at_once_never_deploy_twice() {
    let bed = bed().await;
    let port = bed.create_on("alice", "v1.0", &FAST_HEALTH);
    let spawn = || {
        std::process::Command::new(&bed.binary)
            .args(["update", "alice", "--to", "v1.1.0", "--json"])
            .env("FLEET_STATE_DIR", bed.state.path())
            .env("DOCKER_CONFIG", bed.state.path().join("docker"))
            .env("FLEET_LOG", "off")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    };
    let (first, second) = (spawn(), spawn());
    let outcomes: Vec<(Option<i32>, String)> = [first, second]
        .into_iter()
        .map(|child| {
            let output = child.wait_with_output().unwrap();
            let report: serde_json::Value =
                serde_json::from_slice(&output.stdout).unwrap_or_default();
            (
                output.status.code(),
                format!("{} {}", report[0]["outcome"], report[0]["reason"]),
            )
        })
        .collect();
    let updated = outcomes
        .iter()
        .filter(|(code, text)| *code == Some(0) && text.starts_with("\"updated\""))
        .count();
    let refused = outcomes
        .iter()
        .filter(|(code, text)| *code == Some(1) && text.contains("busy"))
        .count();
    assert_eq!((updated, refused), (1, 1), "{outcomes:#?}");
    assert_eq!(version(port).await, "1.1.0");
    let history = bed.json(&["history", "alice", "--json"]);
    assert_eq!(history.as_array().unwrap().len(), 1, "{history:#}");
}

/// `fleet rollback --restore-data`: the version goes back, and so does the data, to how
/// it was before the update (its pre-update backup).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rollback_with_restore_data_brings_back_the_data_of_before_the_update() {
    let bed = bed().await;
    let port = bed.create_on("alice", "v1.0", &FAST_HEALTH);
    let bump = |times: usize| async move {
        for _ in 0..times {
            fleet_tests::net::post(&format!("http://127.0.0.1:{port}/api/counter"))
                .await
                .unwrap();
        }
    };
    bump(3).await;
    let (code, report) = bed.update(&["alice", "--to", "v1.1.0"]);
    assert_eq!(code, 0, "{report:#}");
    bump(2).await;
    assert_eq!(counter(port).await, 5);

    let (code, stdout, stderr) = bed.run(&["rollback", "alice", "--restore-data"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("-> v1.0.0"), "{stdout}");
    assert_eq!(version(port).await, "1.0.0");
    assert_eq!(counter(port).await, 3, "the data of before the update");
    let history = bed.json(&["history", "alice", "--json"]);
    assert_eq!(history[0]["restored"], report["backup"], "{history:#}");
}

/// Ten instances updated four at a time after a canary; a failing canary leaves the
/// other nine untouched.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_instances_update_in_parallel_after_their_canary() {
    let bed = bed().await;
    let names: Vec<String> = (0..10).map(|i| format!("c{i}")).collect();
    for name in &names {
        bed.create_on(name, "v1.0", &FAST_HEALTH);
    }
    let versions = |bed: &CliBed| {
        bed.json(&["ls", "--json"])
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["tag"].as_str().unwrap().to_owned())
            .collect::<Vec<_>>()
    };

    // A canary that crashes: it is rolled back, and nothing else is touched.
    let (code, stdout, stderr) = bed.run(&[
        "update",
        "--all",
        "--to",
        "v3.0.0",
        "--parallel",
        "4",
        "--canary",
        "c3",
        "--json",
    ]);
    assert_eq!(code, 1, "{stdout}\n{stderr}");
    let reports: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let outcomes: Vec<&str> = reports
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["outcome"].as_str().unwrap())
        .collect();
    assert_eq!(outcomes.len(), 10);
    assert_eq!(outcomes[3], "rolled_back", "{reports:#}");
    assert_eq!(
        outcomes.iter().filter(|o| **o == "skipped").count(),
        9,
        "{reports:#}"
    );
    assert!(versions(&bed).iter().all(|tag| tag == "v1.0.0"));

    // A good version: the canary, then the rest four at a time.
    let (code, stdout, stderr) = bed.run(&[
        "update",
        "--all",
        "--to",
        "v1.1.0",
        "--parallel",
        "4",
        "--canary",
        "c3",
    ]);
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    assert_eq!(stdout.lines().count(), 10, "{stdout}");
    assert!(stdout.lines().all(|l| l.contains("updated in")), "{stdout}");
    assert!(versions(&bed).iter().all(|tag| tag == "v1.1.0"));
}
