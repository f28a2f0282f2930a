//! `fleet restore` and the backup consistency hooks through the built `fleet` binary, on
//! the real Docker Engine with the test app in a real registry (issue 10): a restore
//! brings a backup's data back into a running instance and is undone by restoring the
//! pre-restore backup; damaged and malicious archives are refused before anything
//! changes; a restored instance that does not come back gets its previous data back;
//! `backup.exec` runs in the container and `backup.stop` measures its downtime.
//!
//! Each test has its own state directory, registry, port range (10200 + 20 * k, used by
//! no other test file), network and container names, removed when it ends.

use std::path::Path;
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::Duration;

use fleet_tests::archive::{entry, file_entry, manifest, tar_bytes, write_archive};
use fleet_tests::cli::CliBed;

async fn bed() -> CliBed {
    static NEXT: AtomicU16 = AtomicU16::new(0);
    let first_port = 10200 + NEXT.fetch_add(1, Ordering::SeqCst) * 20;
    CliBed::new(Path::new(env!("CARGO_BIN_EXE_fleet")), first_port)
        .await
        .unwrap()
}

/// The app's counter, once it answers.
async fn counter(port: u16) -> i64 {
    let url = format!("http://127.0.0.1:{port}/api/counter");
    let body = fleet_tests::net::wait_http_ok(&url, Duration::from_secs(10))
        .await
        .unwrap();
    let value: serde_json::Value = serde_json::from_str(&body).unwrap();
    value["counter"].as_i64().unwrap()
}

async fn bump(port: u16, times: usize) {
    for _ in 0..times {
        fleet_tests::net::post(&format!("http://127.0.0.1:{port}/api/counter"))
            .await
            .unwrap();
    }
}

/// The instance's container and when it last started: a container that was stopped or
/// restarted has another start time.
async fn container(bed: &CliBed, name: &str) -> (String, String) {
    let state = fleet_core::FleetState::open(bed.state.path()).unwrap();
    let id = state
        .instance(&name.parse().unwrap())
        .unwrap()
        .and_then(|instance| instance.container_id)
        .unwrap_or_else(|| panic!("{name} has no container"));
    let inspect = bed
        .docker
        .docker()
        .inspect_container(&id, None)
        .await
        .unwrap();
    let started = inspect.state.and_then(|s| s.started_at).unwrap_or_default();
    (id, started)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restore_brings_a_backup_back_and_the_pre_restore_backup_undoes_it() {
    let bed = bed().await;
    let port = bed.create("alice", &[]);
    bump(port, 3).await;
    let backup = bed.json(&["backup", "alice", "--json"]);
    bump(port, 2).await;
    assert_eq!(counter(port).await, 5);

    let (code, stdout, stderr) = bed.run(&["restore", "alice", "latest"]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(counter(port).await, 3, "the backup's data serves");
    assert!(
        stdout.contains(&format!("restored backup {}", backup["id"])),
        "{stdout}"
    );
    assert!(stdout.contains("running and healthy again"), "{stdout}");
    assert!(stdout.contains("undoes this restore"), "{stdout}");
    // Progress went to stderr, step by step.
    assert!(stderr.contains("verifying"), "{stderr}");
    assert!(stderr.contains("restoring"), "{stderr}");

    let backups = bed.json(&["backups", "alice", "--json"]);
    let pre_restore = &backups[0];
    assert_eq!(pre_restore["reason"], "pre-restore", "{backups:#}");
    let undo = bed.json(&["restore", "alice", &pre_restore["id"].to_string(), "--json"]);
    assert_eq!(undo["backup"]["id"], pre_restore["id"], "{undo:#}");
    assert_eq!(undo["pre_restore"]["reason"], "pre-restore", "{undo:#}");
    assert_eq!(undo["restarted"], true, "{undo:#}");
    assert_eq!(counter(port).await, 5, "the restore is undone");
    // Only the data directory is beside the data directory: nothing left over.
    let parent = bed.data_dir("alice").parent().unwrap().to_owned();
    let beside: Vec<_> = std::fs::read_dir(parent)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(beside, ["data"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn damaged_and_malicious_archives_are_refused_and_nothing_changes() {
    let bed = bed().await;
    let port = bed.create("alice", &[]);
    bump(port, 2).await;
    let backup = bed.json(&["backup", "alice", "--json"]);
    bump(port, 1).await;
    let before = container(&bed, "alice").await;
    let path = backup["path"].as_str().unwrap().to_owned();

    // A truncated copy, a recorded archive changed since, and archives crafted to write
    // outside the data directory.
    let truncated = bed.state.path().join("truncated.tar.zst");
    let bytes = std::fs::read(&path).unwrap();
    std::fs::write(&truncated, &bytes[..bytes.len() * 2 / 3]).unwrap();
    let traversal = bed.state.path().join("traversal.tar.zst");
    write_archive(
        &traversal,
        &tar_bytes(
            &manifest(serde_json::json!([file_entry("../evil", b"x")])),
            &[entry(
                "data/../evil",
                fleet_tests::archive::EntryType::Regular,
                b"x",
                None,
            )],
        ),
    );
    let absolute = bed.state.path().join("absolute.tar.zst");
    write_archive(
        &absolute,
        &tar_bytes(
            &manifest(serde_json::json!([file_entry("/tmp/fleet-evil", b"x")])),
            &[],
        ),
    );
    let escape = bed.state.path().join("escape.tar.zst");
    write_archive(
        &escape,
        &tar_bytes(
            &manifest(serde_json::json!([fleet_tests::archive::symlink_entry(
                "out", "../../.."
            )])),
            &[entry(
                "data/out",
                fleet_tests::archive::EntryType::Symlink,
                b"",
                Some("../../.."),
            )],
        ),
    );
    for (archive, problem) in [
        (truncated.display().to_string(), "archive"),
        (traversal.display().to_string(), "path contains `..`"),
        (absolute.display().to_string(), "absolute path"),
        (escape.display().to_string(), "out"),
    ] {
        let (code, _, stderr) = bed.run(&["restore", "alice", &archive]);
        assert_eq!(code, 1, "{archive}: {stderr}");
        assert!(stderr.contains("untouched"), "{archive}: {stderr}");
        assert!(stderr.contains(problem), "{archive}: {stderr}");
    }
    let mut changed = bytes.clone();
    let last = changed.len() - 1;
    changed[last] ^= 0xff;
    std::fs::write(&path, changed).unwrap();
    let (code, _, stderr) = bed.run(&["restore", "alice", "latest"]);
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("not the backup fleet recorded"), "{stderr}");
    let (code, _, stderr) = bed.run(&["restore", "alice", "999"]);
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("no backup with id 999"), "{stderr}");
    let (code, _, stderr) = bed.run(&["restore", "nobody", "latest"]);
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("nobody"), "{stderr}");

    // The data, the container and the list of backups are as they were.
    assert_eq!(counter(port).await, 3);
    assert_eq!(
        container(&bed, "alice").await,
        before,
        "the container was not restarted"
    );
    assert_eq!(
        bed.json(&["backups", "alice", "--json"])
            .as_array()
            .unwrap()
            .len(),
        1
    );
    assert!(!Path::new("/tmp/fleet-evil").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restored_instance_that_fails_gets_its_previous_data_back() {
    let bed = bed().await;
    let port = bed.create("alice", &[]);
    bump(port, 4).await;
    // A well-formed archive whose database is not a database: the app exits at start.
    let poisoned = bed.state.path().join("poisoned.tar.zst");
    let garbage = b"this is not an SQLite database, whatever its name says".repeat(100);
    write_archive(
        &poisoned,
        &tar_bytes(
            &manifest(serde_json::json!([file_entry("testapp.db", &garbage)])),
            &[entry(
                "data/testapp.db",
                fleet_tests::archive::EntryType::Regular,
                &garbage,
                None,
            )],
        ),
    );

    let (code, _, stderr) = bed.run(&["restore", "alice", &poisoned.display().to_string()]);

    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("did not become healthy"), "{stderr}");
    assert!(
        stderr.contains("its previous data is back and it runs as before"),
        "{stderr}"
    );
    assert_eq!(counter(port).await, 4, "the previous data serves again");
    let backups = bed.json(&["backups", "alice", "--json"]);
    assert_eq!(backups[0]["reason"], "pre-restore", "{backups:#}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backup_exec_runs_in_the_container_and_backup_stop_reports_its_downtime() {
    let bed = bed().await;
    bed.create(
        "alice",
        &["--backup-exec", "/fleet-testapp dump /data/dump.json"],
    );
    let port = bed.create("bob", &["--backup-stop"]);
    bed.create("carol", &["--backup-exec", "/fleet-testapp fail-dump"]);

    let run = bed.json(&["backup", "alice", "--json"]);
    assert_eq!(run["exec"]["exit_code"], 0, "{run:#}");
    assert_eq!(
        run["exec"]["command"],
        serde_json::json!(["/fleet-testapp", "dump", "/data/dump.json"])
    );
    // The dump was written before the copy: it is in the archive.
    let archive = Path::new(run["path"].as_str().unwrap());
    let manifest = fleet_backup::verify(archive, &mut |_| {}).unwrap().manifest;
    assert!(
        manifest.entries.iter().any(|e| e.path == "dump.json"),
        "{:?}",
        manifest.entries.iter().map(|e| &e.path).collect::<Vec<_>>()
    );
    assert_eq!(
        manifest.metadata.get("exec.output").map(String::as_str),
        run["exec"]["output"].as_str()
    );

    let run = bed.json(&["backup", "bob", "--json"]);
    let downtime = run["downtime_ms"].as_u64().expect("downtime reported");
    assert!(downtime > 0, "{run:#}");
    assert!(run["exec"].is_null(), "{run:#}");
    counter(port).await;
    let (code, stdout, _) = bed.run(&["backup", "bob"]);
    assert_eq!(code, 0);
    assert!(stdout.contains("stopped for the copy: down"), "{stdout}");

    let (code, _, stderr) = bed.run(&["backup", "carol"]);
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("fail-dump"), "{stderr}");
    assert!(stderr.contains("exited with 3"), "{stderr}");
    assert!(
        bed.json(&["backups", "carol", "--json"])
            .as_array()
            .unwrap()
            .is_empty()
    );
}

/// `[backup.remote]`: each backup is copied off-host; an instance whose local archive is
/// lost is restored from the copy (downloaded and verified); a store that refuses the
/// credentials fails the backup with exit 1, naming what was wrong, and keeps the
/// local archive.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backups_are_copied_off_host_and_restored_from_there() {
    let bed = bed().await;
    let s3 = fleet_tests::s3::TestS3::start().await.unwrap();
    let credentials = s3
        .write_credentials_file(bed.state.path(), "fleet")
        .unwrap();
    let config = bed.state.path().join("config.toml");
    let mut text = std::fs::read_to_string(&config).unwrap();
    text.push_str(&format!(
        "\n[backup.remote]\nurl = \"{}\"\nendpoint = \"{}\"\nregion = \"us-east-1\"\nprofile = \"fleet\"\ncredentials_file = \"{}\"\n",
        s3.url("fleet"),
        s3.endpoint(),
        credentials.display()
    ));
    std::fs::write(&config, text).unwrap();
    let port = bed.create("alice", &[]);
    bump(port, 2).await;

    let (code, stdout, stderr) = bed.run(&["backup", "alice"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stdout.contains("copied off-host to fleet/alice/"),
        "{stdout}"
    );
    let backup = &bed.json(&["backups", "alice", "--json"])[0];
    let key = backup["remote"].as_str().unwrap().to_owned();
    assert!(key.starts_with("fleet/alice/alice-"), "{key}");
    bump(port, 5).await;

    // The local archive is lost: the restore fetches the copy and verifies it.
    std::fs::remove_file(backup["path"].as_str().unwrap()).unwrap();
    let (code, stdout, stderr) = bed.run(&["restore", "alice", "latest"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("restored backup"), "{stdout}");
    assert_eq!(counter(port).await, 2, "the off-host copy's data serves");
    // The downloaded copy is not left behind.
    let tmp = bed.state.path().join("tmp");
    let left: Vec<_> = std::fs::read_dir(&tmp)
        .map(|d| d.map(|e| e.unwrap().path()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "{left:?}");

    // Credentials the store refuses (a store that checks them): exit 1, the reason
    // named, the local archive kept.
    let strict = fleet_tests::s3::TestS3::start_enforcing_auth()
        .await
        .unwrap();
    let wrong = strict
        .write_credentials_with(bed.state.path(), "wrong", "AKIAWRONG", "wrong-secret")
        .unwrap();
    let text = std::fs::read_to_string(&config).unwrap();
    let text = text[..text.find("[backup.remote]").unwrap()].to_owned()
        + &format!(
            "[backup.remote]\nurl = \"{}\"\nendpoint = \"{}\"\nregion = \"us-east-1\"\nprofile = \"wrong\"\ncredentials_file = \"{}\"\n",
            strict.url("fleet"),
            strict.endpoint(),
            wrong.display()
        );
    std::fs::write(&config, text).unwrap();
    let (code, _, stderr) = bed.run(&["backup", "alice"]);
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains(strict.bucket()), "{stderr}");
    assert!(stderr.contains("InvalidAccessKeyId"), "{stderr}");
    let listed = bed.json(&["backups", "alice", "--json"]);
    assert!(
        listed
            .as_array()
            .unwrap()
            .iter()
            .any(|b| b["remote"].is_null() && b["reason"] == "manual"),
        "the local backup is kept: {listed:#}"
    );
}
