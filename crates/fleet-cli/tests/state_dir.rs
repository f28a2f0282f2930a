//! The state directory through the built `fleet` binary: it is private whatever the
//! umask, read commands never create a fleet, a file that holds no fleet is refused, and
//! read commands work where the state directory cannot be written.
//!
//! Tests run as root, which permission bits do not stop: a read-only state directory is
//! a read-only bind mount (in a mount namespace of the command's own), or a directory
//! that `nobody` can read but not write.

use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};
use std::process::Command;

use std::sync::Arc;

use fleet_core::engine::fake::FakeEngine;
use fleet_core::{
    CreateOptions, Fleet, FleetConfig, FleetState, InstanceSpec, PortRange, PortSpec, StateDir,
    StaticResolver,
};

const FLEET: &str = env!("CARGO_BIN_EXE_fleet");

/// Runs `command` through `sh -c 'PREFIX "$@"'` (after a umask, in a mount namespace, as
/// another user), with `state` as the state directory.
fn run(state: &Path, prefix: &str, command: &[&str]) -> (i32, String, String) {
    let output = Command::new("sh")
        .arg("-c")
        .arg(format!("{prefix} \"$@\""))
        .arg("sh")
        .args(command)
        .env("NO_COLOR", "1")
        .env("FLEET_LOG", "off")
        .env("FLEET_STATE_DIR", state)
        .env("DOCKER_CONFIG", "/nonexistent")
        .output()
        .unwrap();
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// Runs `fleet ARGS` as [`run`] does.
fn fleet(state: &Path, prefix: &str, args: &[&str]) -> (i32, String, String) {
    let command: Vec<&str> = std::iter::once(FLEET).chain(args.iter().copied()).collect();
    run(state, prefix, &command)
}

fn mode(path: &Path) -> String {
    format!(
        "{:o}",
        std::fs::symlink_metadata(path)
            .unwrap()
            .permissions()
            .mode()
            & 0o7777
    )
}

fn set_mode(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// A fleet in `state` whose store holds the instance `alice`, created (not started)
/// through the API on the fake engine, with host port 27001 allocated to it.
fn fleet_with_alice(state: &Path) -> PathBuf {
    const DIGEST: &str = "sha256:1111111111111111111111111111111111111111111111111111111111111111";
    let engine = Arc::new(FakeEngine::new());
    engine.add_image(&format!("127.0.0.1:5000/app@{DIGEST}"), None);
    let resolver = Arc::new(StaticResolver::new());
    resolver.set(
        "127.0.0.1:5000/app:v1",
        Some("v1.0.0"),
        &DIGEST.parse().unwrap(),
    );
    let mut config = FleetConfig::default();
    config.ports = PortRange::new(27001, 27010, 1).unwrap();
    let spec = InstanceSpec::new(
        "alice".parse().unwrap(),
        "127.0.0.1:5000/app:v1".parse().unwrap(),
    )
    .with_port(PortSpec::auto(8080));
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        let fleet = Fleet::builder(state)
            .config(config)
            .engine(engine)
            .resolver(resolver)
            .open()
            .await
            .unwrap();
        fleet
            .create(spec, CreateOptions::default().no_start(), &|_| {})
            .await
            .unwrap();
    });
    StateDir::new(state).database()
}

/// Regression: under umask 000 the state directory was 0777 and fleet.db 0666, so every
/// local user could read the environment values stored in it.
#[test]
fn a_new_fleet_is_private_under_umask_000() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let (code, _, stderr) = fleet(&state, "umask 000 &&", &["reconcile"]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(mode(&state), "700");
    assert_eq!(mode(&state.join("fleet.db")), "600");
    for entry in std::fs::read_dir(&state).unwrap() {
        let path = entry.unwrap().path();
        assert_eq!(mode(&path), "600", "{}", path.display());
    }
}

/// Regression: a state directory made open by an older fleet (or a umask) stayed open.
#[test]
fn an_existing_state_directory_is_tightened_at_open() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let database = fleet_with_alice(&state);
    // Keep the store open, so that its WAL files exist while fleet runs.
    let store = FleetState::open(&state).unwrap();
    store.ports().unwrap();
    let wal = state.join("fleet.db-wal");
    let shm = state.join("fleet.db-shm");
    let archive = state.join("backups/alice/1.tar.zst");
    let data = state.join("instances/alice/data");
    std::fs::create_dir_all(archive.parent().unwrap()).unwrap();
    std::fs::create_dir_all(&data).unwrap();
    std::fs::write(&archive, b"").unwrap();
    std::fs::write(state.join("config.toml"), b"").unwrap();
    for path in [&state, &state.join("backups"), &state.join("backups/alice")] {
        set_mode(path, 0o777);
    }
    for path in [
        &state.join("instances"),
        &state.join("instances/alice"),
        &data,
    ] {
        set_mode(path, 0o777);
    }
    for path in [&database, &wal, &shm, &archive, &state.join("config.toml")] {
        set_mode(path, 0o666);
    }

    let (code, stdout, stderr) = fleet(&state, "umask 000 &&", &["ls"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("alice"), "{stdout}");
    let modes: Vec<String> = [
        "",
        "fleet.db",
        "fleet.db-wal",
        "fleet.db-shm",
        "config.toml",
        "backups",
        "backups/alice",
        "backups/alice/1.tar.zst",
        "instances",
        "instances/alice",
        "instances/alice/data",
    ]
    .iter()
    .map(|p| format!("{} {p}", mode(&state.join(p))))
    .collect();
    assert_eq!(
        modes,
        [
            "700 ",
            "600 fleet.db",
            "600 fleet.db-wal",
            "600 fleet.db-shm",
            "600 config.toml",
            "700 backups",
            "700 backups/alice",
            "600 backups/alice/1.tar.zst",
            "700 instances",
            "700 instances/alice",
            // The data directory belongs to the container's user: left alone.
            "777 instances/alice/data",
        ]
    );
    drop(store);
}

/// Regression: `fleet ls` with a mistyped FLEET_STATE_DIR created it and an empty
/// fleet, and said nothing.
#[test]
fn read_commands_on_a_missing_state_directory_say_there_is_no_fleet() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("typo");
    for args in [
        &["ls"][..],
        &["--json", "ls"],
        &["status"],
        &["ports"],
        &["logs", "alice"],
    ] {
        let (code, stdout, stderr) = fleet(&state, "", args);
        assert_eq!(
            (code, stdout.as_str(), stderr.as_str()),
            (
                1,
                "",
                format!(
                    "error: no fleet at {}\nhint: the state directory is --state-dir, else FLEET_STATE_DIR, else the default; check them for a typo, or `fleet create` a first instance there\n",
                    state.display()
                )
                .as_str()
            ),
            "{args:?}"
        );
        assert!(!state.exists(), "{args:?} created the state directory");
    }
    // A state directory without a store is no fleet either.
    std::fs::create_dir(&state).unwrap();
    let (code, _, stderr) = fleet(&state, "", &["ls"]);
    assert_eq!(code, 1);
    assert!(stderr.starts_with("error: no fleet at "), "{stderr}");
    assert_eq!(std::fs::read_dir(&state).unwrap().count(), 0);
}

/// Regression: a zero-byte fleet.db silently became a new fleet with a new scope, so the
/// containers labelled with the old scope were orphaned.
#[test]
fn a_zero_byte_store_is_refused_with_how_to_recover() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    std::fs::create_dir(&state).unwrap();
    let database = state.join("fleet.db");
    std::fs::write(&database, b"").unwrap();
    for args in [&["ls"][..], &["ports"], &["reconcile"]] {
        let (code, stdout, stderr) = fleet(&state, "", args);
        assert_eq!(
            (code, stdout.as_str(), stderr.as_str()),
            (
                1,
                "",
                format!(
                    "error: state store {} holds no fleet (the file is empty); restore it from a backup, or remove it to start a new fleet, leaving the old fleet's containers (labelled with its scope) as strays\nhint: `docker ps -a --filter label=fleet.scope` lists the containers of every fleet on this engine\n",
                    database.display()
                )
                .as_str()
            ),
            "{args:?}"
        );
    }
    assert_eq!(std::fs::metadata(&database).unwrap().len(), 0);
}

/// Regression: read commands failed on a read-only state directory, as opening the store
/// switched on WAL (a write). Here it is a read-only bind mount, which stops root too.
#[test]
fn read_commands_work_on_a_read_only_mount() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let database = fleet_with_alice(&state);
    let before = std::fs::read(&database).unwrap();
    // Its own mount namespace, where the state directory is a read-only bind mount.
    let read_only = format!(
        "exec unshare -m sh -c 'mount --bind {0} {0} && mount -o remount,ro,bind {0} && exec \"$@\"' sh",
        state.display()
    );
    let (code, _, stderr) = run(
        &state,
        &read_only,
        &["touch", &format!("{}/x", state.display())],
    );
    assert_ne!(code, 0, "the mount is not read-only: {stderr}");
    assert!(stderr.contains("Read-only file system"), "{stderr}");

    for args in [
        &["ls"][..],
        &["--json", "ls"],
        &["status"],
        &["--json", "status"],
        &["ports"],
    ] {
        let (code, stdout, stderr) = fleet(&state, &read_only, args);
        assert_eq!(code, 0, "{args:?}: {stderr}");
        assert!(
            stdout.contains("alice") || args == ["ports"],
            "{args:?}: {stdout}"
        );
    }
    // A command that writes says why it cannot.
    let (code, _, stderr) = fleet(&state, &read_only, &["stop", "alice"]);
    assert_eq!(
        (code, stderr),
        (
            1,
            format!(
                "error: state store {} is read-only: cannot open it for writing\nhint: this command changes the fleet: run it where the state directory is writable\n",
                database.display()
            )
        )
    );
    assert_eq!(std::fs::read(&database).unwrap(), before);
}

/// The same for a user who can read the state directory but not write it: `fleet ports`
/// (which needs no engine, so `nobody` can run it) as `nobody`.
#[test]
fn read_commands_work_for_a_user_who_cannot_write_the_state_directory() {
    let dir = tempfile::tempdir().unwrap();
    set_mode(dir.path(), 0o755);
    let state = dir.path().join("state");
    let database = fleet_with_alice(&state);
    for entry in std::fs::read_dir(&state).unwrap() {
        let path = entry.unwrap().path();
        std::os::unix::fs::lchown(&path, Some(65534), Some(65534)).unwrap();
        set_mode(&path, 0o400);
    }
    std::os::unix::fs::lchown(&state, Some(65534), Some(65534)).unwrap();
    set_mode(&state, 0o500);
    let before = std::fs::read(&database).unwrap();

    let nobody = "exec setpriv --reuid=65534 --regid=65534 --clear-groups";
    let (code, _, stderr) = run(
        &state,
        nobody,
        &["touch", &format!("{}/x", state.display())],
    );
    assert_ne!(code, 0, "nobody can write the state directory: {stderr}");
    let (code, stdout, stderr) = fleet(&state, nobody, &["ports"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stdout.contains("27001") && stdout.contains("alice"),
        "{stdout}"
    );
    assert_eq!(std::fs::read(&database).unwrap(), before);
    assert_eq!(std::fs::metadata(&database).unwrap().uid(), 65534);
}

/// Host ports in the kernel's ephemeral range get a note at `create`: an outgoing
/// connection can hold one while the instance restarts (this project's own tests lost
/// a recreate update that way), so the operator hears of it before it happens.
#[test]
fn ports_in_the_kernel_ephemeral_range_get_a_note_at_create() {
    let kernel = fleet_core::ephemeral_ports().expect("this Linux has ip_local_port_range");
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    std::fs::create_dir(&state).unwrap();
    // `fleet create` with `[ports]` first..=last. Nothing listens on port 1: the create
    // fails at resolving, after any note.
    let create = |first: u16, last: u16| {
        std::fs::write(
            state.join("config.toml"),
            format!("[ports]\nfirst = {first}\nlast = {last}\n"),
        )
        .unwrap();
        let (code, _, stderr) = fleet(
            &state,
            "",
            &[
                "create",
                "alice",
                "--image",
                "127.0.0.1:1/app:v1",
                "--port",
                "8080",
                "--no-start",
            ],
        );
        assert_eq!(code, 1, "{stderr}");
        stderr
    };

    let (first, last) = (*kernel.start(), kernel.start() + 9);
    let stderr = create(first, last);
    assert!(
        stderr.contains(&format!(
            "note: host ports {first}-{last} of [ports] in {}/config.toml are in the kernel's ephemeral port range {}-{} (net.ipv4.ip_local_port_range)",
            state.display(),
            kernel.start(),
            kernel.end()
        )),
        "{stderr}"
    );
    assert!(stderr.contains("the default is 5001-5999"), "{stderr}");

    // Outside it, no note.
    let stderr = create(first - 10, first - 1);
    assert!(!stderr.contains("ephemeral"), "{stderr}");
}
