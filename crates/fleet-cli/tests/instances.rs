//! The instance commands through the built `fleet` binary, on the real Docker Engine with
//! test app images in a real registry: `create`, `ls`, `status`, `stop`, `start`,
//! `restart`, `logs`, `ports`, `rm`, `reconcile`, their tables, `--json` shapes, errors,
//! hints and exit codes. Ports, digests, times and paths are masked in snapshots.

use std::process::Command;
use std::sync::atomic::{AtomicU16, Ordering};

use fleet_tests::docker::TestDocker;
use fleet_tests::image::{Behaviour, TestImage};
use fleet_tests::registry::TestRegistry;

/// A state directory whose `config.toml` gives this test its own port range, network,
/// container names and labels (so `TestDocker` removes what fleet created).
struct Bed {
    registry: TestRegistry,
    docker: TestDocker,
    state: tempfile::TempDir,
    first_port: u16,
}

impl Bed {
    async fn new() -> Bed {
        static NEXT: AtomicU16 = AtomicU16::new(0);
        let first_port = 26000 + NEXT.fetch_add(1, Ordering::SeqCst) * 20;
        let registry = TestRegistry::start().unwrap();
        let docker = TestDocker::new().await.unwrap();
        let image = TestImage::new("1.0.0").build(&docker).await.unwrap();
        image
            .push(&docker, &registry, "app", &["v1.0.0", "v1"])
            .await
            .unwrap();
        let broken = TestImage::new("2.0.0")
            .behaviour(Behaviour::Crash)
            .build(&docker)
            .await
            .unwrap();
        broken
            .push(&docker, &registry, "app", &["v2.0.0"])
            .await
            .unwrap();
        docker.track_registry(&registry.docker_host());
        let state = tempfile::tempdir().unwrap();
        std::fs::write(
            state.path().join("config.toml"),
            docker.fleet_config(&docker.name(""), first_port, first_port + 19),
        )
        .unwrap();
        Bed {
            registry,
            docker,
            state,
            first_port,
        }
    }

    fn image(&self, channel: &str) -> String {
        format!("{}/app:{channel}", self.registry.docker_host())
    }

    fn run(&self, args: &[&str]) -> (i32, String, String) {
        self.run_with(args, &[])
    }

    /// Runs `fleet` with extra environment variables (`FLEET_LOG`, `DOCKER_HOST`).
    fn run_with(&self, args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
        self.output(Command::new(env!("CARGO_BIN_EXE_fleet")).args(args), env)
    }

    /// Runs `fleet` under `umask 000`.
    fn run_under_umask_000(&self, args: &[&str]) -> (i32, String, String) {
        self.output(
            Command::new("sh")
                .args(["-c", "umask 000 && exec \"$0\" \"$@\""])
                .arg(env!("CARGO_BIN_EXE_fleet"))
                .args(args),
            &[],
        )
    }

    fn output(&self, command: &mut Command, env: &[(&str, &str)]) -> (i32, String, String) {
        let output = command
            .env("NO_COLOR", "1")
            .env("FLEET_LOG", "off")
            .env("FLEET_STATE_DIR", self.state.path())
            .env("DOCKER_CONFIG", self.state.path().join("docker"))
            .envs(env.iter().copied())
            .output()
            .unwrap();
        (
            output.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&output.stdout).into_owned(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    }

    /// Everything `fleet` did, masked for snapshots.
    fn shown(&self, args: &[&str]) -> String {
        let (code, stdout, stderr) = self.run(args);
        let text = format!("exit: {code}\n--- stdout\n{stdout}--- stderr\n{stderr}");
        self.mask(&text)
    }

    fn json(&self, args: &[&str]) -> serde_json::Value {
        let (code, stdout, stderr) = self.run(args);
        assert_eq!(code, 0, "{stderr}");
        serde_json::from_str(&stdout)
            .unwrap_or_else(|e| panic!("not one JSON document ({e}): {stdout}"))
    }

    fn mask(&self, text: &str) -> String {
        let mut text = text
            .replace(&self.state.path().display().to_string(), "[state]")
            .replace(&self.registry.docker_host(), "[registry]")
            .replace(&self.docker.name(""), "[prefix]");
        for offset in 0..20 {
            let port = self.first_port + offset;
            text = text.replace(&port.to_string(), &format!("[port{offset}]"));
        }
        let digest = regex_lite_replace(&text, "sha256:", 64);
        let digest = regex_lite_replace(&digest, "sha256:", 12);
        // How many probes an app needs before it answers depends on the machine: keep
        // the verdict, drop the attempts before it.
        let probes: Vec<&str> = digest
            .lines()
            .filter(|line| !line.starts_with("health probe ") || line.ends_with(": healthy"))
            .collect();
        let mut probes = probes.join("\n");
        probes.push('\n');
        let probes = probes
            .lines()
            .map(|line| match line.strip_prefix("health probe ") {
                Some(rest) => format!("health probe [n]{}", &rest[rest.find(':').unwrap_or(0)..]),
                None => line.to_owned(),
            })
            .collect::<Vec<_>>()
            .join("\n")
            + "\n";
        mask_times(&probes)
    }
}

/// Replaces `prefix` followed by exactly `len` hex digits with `prefix[digest]`.
fn regex_lite_replace(text: &str, prefix: &str, len: usize) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(start) = rest.find(prefix) {
        out.push_str(&rest[..start + prefix.len()]);
        let after = &rest[start + prefix.len()..];
        let hex = after.chars().take_while(char::is_ascii_hexdigit).count();
        if hex == len {
            out.push_str("[digest]");
            rest = &after[len..];
        } else {
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

/// Masks RFC 3339 timestamps (`2026-11-23T13:45:01.123Z`) and latencies (`12ms`),
/// keeping table columns where they were whatever the value's width.
fn mask_times(text: &str) -> String {
    let is_time = |word: &str| {
        word.len() >= 20
            && word.as_bytes().get(4) == Some(&b'-')
            && word.contains('T')
            && word.ends_with('Z')
    };
    let is_latency = |word: &str| {
        word.len() > 2
            && word.ends_with("ms")
            && word[..word.len() - 2].chars().all(|c| c.is_ascii_digit())
    };
    let mut out = String::new();
    for line in text.split_inclusive('\n') {
        let mut rest = line;
        while !rest.is_empty() {
            let spaces = rest.len() - rest.trim_start_matches(' ').len();
            out.push_str(&rest[..spaces]);
            rest = &rest[spaces..];
            let word_len = rest.find([' ', '\n']).unwrap_or(rest.len());
            let (word, after) = rest.split_at(word_len);
            let mask = if is_time(word) {
                Some("[time]")
            } else if is_latency(word) {
                Some("[latency]")
            } else {
                None
            };
            match mask {
                Some(mask) => {
                    // The word and the spaces after it keep their width (at least 2 spaces).
                    let gap = after.len() - after.trim_start_matches(' ').len();
                    out.push_str(mask);
                    if gap > 0 {
                        out.push_str(
                            &" ".repeat((word_len + gap).saturating_sub(mask.len()).max(2)),
                        );
                    }
                    rest = &after[gap..];
                }
                None => {
                    out.push_str(word);
                    rest = after;
                }
            }
            if rest.starts_with('\n') {
                out.push('\n');
                rest = &rest[1..];
            }
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_instance_from_create_to_rm() {
    let bed = Bed::new().await;
    let image = bed.image("v1");
    insta::assert_snapshot!(bed.shown(&["create", "alice", "--image", &image, "--port", "8080", "--health-path", "/api/health", "--group", "prod"]), @r"
    exit: 0
    --- stdout
    alice running: [registry]/app:v1 -> v1.0.0 (sha256:[digest]), ports [port0]->8080
    --- stderr
    resolving [registry]/app:v1
    resolved to v1.0.0 (sha256:[digest])
    creating container [prefix]alice.1
    starting alice
    health probe [n]: healthy
    ");
    let created = bed.json(&[
        "create", "bob", "--image", &image, "--port", "8080", "--json",
    ]);
    assert_eq!(created["name"], "bob");
    assert_eq!(created["ports"][0]["host"], bed.first_port + 1);

    insta::assert_snapshot!(bed.shown(&["ls"]), @"
    exit: 0
    --- stdout
    NAME   GROUP  IMAGE                CHANNEL  TAG     DIGEST               STATE    HEALTH   PORTS
    alice  prod   [registry]/app  v1       v1.0.0  sha256:[digest]  running  healthy  [port0]->8080
    bob    -      [registry]/app  v1       v1.0.0  sha256:[digest]  running  healthy  [port1]->8080
    --- stderr
    ");
    let listed = bed.json(&["ls", "--json"]);
    let keys: Vec<&str> = listed[0]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    let mut expected = [
        "name", "group", "image", "channel", "tag", "digest", "state", "health", "ports",
    ];
    expected.sort_unstable();
    assert_eq!(keys, expected);
    assert_eq!(
        listed[0]["ports"],
        serde_json::json!([{ "container": 8080, "host": bed.first_port }])
    );
    assert_eq!(
        (listed[0]["state"].as_str(), listed[0]["health"].as_str()),
        (Some("running"), Some("healthy"))
    );

    insta::assert_snapshot!(bed.shown(&["status", "alice"]), @"
    exit: 0
    --- stdout
    NAME   STATE    HEALTH   VERSION  LATENCY  DIGEST               DETAIL
    alice  running  healthy  1.0.0    [latency]  sha256:[digest]
    --- stderr
    ");
    let status = bed.json(&["status", "--json"]);
    assert_eq!(status["instances"][1]["health"], "healthy");
    assert_eq!(status["instances"][0]["version"], "1.0.0");
    assert_eq!(status["drift"], serde_json::json!([]));

    insta::assert_snapshot!(bed.shown(&["stop", "alice"]), @r"
    exit: 0
    --- stdout
    stopped alice
    --- stderr
    ");
    assert_eq!(
        bed.json(&["status", "alice", "--json"])["instances"][0]["health"],
        "stopped"
    );
    insta::assert_snapshot!(bed.shown(&["start", "alice"]), @r"
    exit: 0
    --- stdout
    started alice
    --- stderr
    ");
    let (code, stdout, _) = bed.run(&["logs", "alice", "--tail", "4"]);
    assert_eq!(code, 0);
    assert!(
        stdout.contains("fleet-testapp 1.0.0 starting: instance=alice"),
        "{stdout}"
    );
    let logs = bed.json(&["logs", "alice", "--json"]);
    assert!(
        logs.as_array()
            .unwrap()
            .iter()
            .all(|l| l["stream"] == "stdout")
    );

    insta::assert_snapshot!(bed.shown(&["ports"]), @"
    exit: 0
    --- stdout
    PORT   INSTANCE  CONTAINER PORT  ALLOCATED
    [port0]  alice     8080            [time]
    [port1]  bob       8080            [time]
    --- stderr
    ");

    // Without a terminal and without --yes, purging is refused and nothing happens.
    insta::assert_snapshot!(bed.shown(&["rm", "alice", "--purge-data"]), @r"
    exit: 1
    --- stdout
    --- stderr
    error: removing instance alice with its data ([state]/instances/alice/data) needs confirmation
    hint: pass --yes to delete the data without asking
    ");
    insta::assert_snapshot!(bed.shown(&["rm", "alice", "--purge-data", "--yes"]), @r"
    exit: 0
    --- stdout
    removed alice and its data
    --- stderr
    ");
    assert!(!bed.state.path().join("instances/alice").exists());
    insta::assert_snapshot!(bed.shown(&["rm", "bob"]), @r"
    exit: 0
    --- stdout
    removed bob; its data stays in [state]/instances/bob/data
    --- stderr
    ");
    insta::assert_snapshot!(bed.shown(&["ls"]), @r"
    exit: 0
    --- stdout
    NAME  GROUP  IMAGE  CHANNEL  TAG  DIGEST  STATE  HEALTH  PORTS
    --- stderr
    ");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_name_the_instance_and_say_what_to_do() {
    let bed = Bed::new().await;
    let image = bed.image("v1");
    insta::assert_snapshot!(bed.shown(&["create", "Alice", "--image", &image]), @r#"
    exit: 2
    --- stdout
    --- stderr
    error: invalid instance name "Alice": only lower-case letters, digits and '-' are allowed
    "#);
    bed.run(&["create", "alice", "--image", &image, "--port", "8080"]);
    let taken = (bed.first_port).to_string();
    insta::assert_snapshot!(bed.shown(&["create", "bob", "--image", &image, "--port", "8080", "--host-port", &taken]), @r"
    exit: 1
    --- stdout
    --- stderr
    resolving [registry]/app:v1
    resolved to v1.0.0 (sha256:[digest])
    error: host port [port0] is already in use by fleet instance alice
    hint: instance alice holds it (`fleet ports`); omit --host-port to get a free port
    ");
    insta::assert_snapshot!(bed.shown(&["create", "alice", "--image", &image]), @r"
    exit: 1
    --- stdout
    --- stderr
    error: instance alice already exists
    hint: `fleet ls` lists instances; choose another name or `fleet rm` the old one
    ");
    insta::assert_snapshot!(bed.shown(&["stop", "nobody"]), @r"
    exit: 1
    --- stdout
    --- stderr
    error: no instance named nobody
    hint: `fleet ls` lists instances
    ");
    let (code, _, stderr) = bed.run(&[
        "create",
        "carol",
        "--image",
        &bed.image("v2.0.0"),
        "--port",
        "8080",
        "--health-path",
        "/api/health",
    ]);
    assert_eq!(code, 1);
    let stderr = bed.mask(&stderr);
    assert!(
        stderr.contains(
            "error: instance carol did not become healthy: its container exited with code 1"
        ) && stderr.contains("; its last output:"),
        "{stderr}"
    );
    assert!(
        stderr.contains("  | fleet-testapp: crashing on start (TESTAPP_BEHAVIOUR=crash)"),
        "{stderr}"
    );
    assert!(
        stderr.contains("hint: nothing was left behind; fix the image or its settings"),
        "{stderr}"
    );
    assert_eq!(
        bed.json(&["ls", "--json"]).as_array().unwrap().len(),
        1,
        "carol was not left behind"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconcile_through_the_cli() {
    let bed = Bed::new().await;
    let image = bed.image("v1");
    let created = bed.json(&[
        "create", "alice", "--image", &image, "--port", "8080", "--json",
    ]);
    assert_eq!(created["name"], "alice");
    // Remove the container behind fleet's back.
    let container = format!("{}alice.1", bed.docker.name(""));
    let engine = fleet_core::engine::DockerEngine::connect().await.unwrap();
    fleet_core::engine::Engine::remove_container(&engine, &container)
        .await
        .unwrap();
    insta::assert_snapshot!(bed.shown(&["status"]), @r"
    exit: 0
    --- stdout
    NAME   STATE    HEALTH   VERSION  LATENCY  DIGEST  DETAIL
    alice  missing  missing  -        -        -
    drift: alice: container missing
    --- stderr
    hint: `fleet reconcile` repairs drift
    ");
    insta::assert_snapshot!(bed.shown(&["reconcile"]), @r"
    exit: 0
    --- stdout
    alice: container missing: recreated container [prefix]alice.2, started it
    --- stderr
    ");
    insta::assert_snapshot!(bed.shown(&["reconcile"]), @r"
    exit: 0
    --- stdout
    nothing to repair: the engine agrees with the store
    --- stderr
    ");
}

/// Removes a container behind fleet's back.
async fn remove_behind_the_back(container: &str) {
    let engine = fleet_core::engine::DockerEngine::connect().await.unwrap();
    fleet_core::engine::Engine::remove_container(&engine, container)
        .await
        .unwrap();
}

/// Regression (issue 14, item 1): `fleet rm NAME --purge-data --yes` deleted whatever
/// directory was given as `--data-dir`, and `/` or `/etc` were accepted as one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn purge_never_deletes_what_fleet_did_not_make() {
    use std::os::unix::fs::PermissionsExt as _;

    let bed = Bed::new().await;
    let image = bed.image("v1");
    let outside = tempfile::tempdir().unwrap();
    let precious = outside.path().join("precious");
    std::fs::create_dir(&precious).unwrap();
    std::fs::write(precious.join("f"), "important").unwrap();
    // The app runs as its own user and writes its data directory.
    std::fs::set_permissions(&precious, std::fs::Permissions::from_mode(0o777)).unwrap();
    let precious_text = precious.display().to_string();
    let (code, _, stderr) = bed.run(&[
        "create",
        "a",
        "--image",
        &image,
        "--port",
        "8080",
        "--data-dir",
        &precious_text,
    ]);
    assert_eq!(code, 0, "{stderr}");
    let shown = bed
        .shown(&["rm", "a", "--purge-data", "--yes"])
        .replace(&precious_text, "[precious]");
    insta::assert_snapshot!(shown, @r"
    exit: 2
    --- stdout
    --- stderr
    error: will not delete data directory [precious] of instance a: fleet did not create it: it was given as the data directory of a and belongs to whoever made it
    hint: nothing was removed; `fleet rm a` without --purge-data removes the instance and keeps [precious]; delete it yourself if you mean to
    ");
    assert_eq!(
        std::fs::read_to_string(precious.join("f")).unwrap(),
        "important"
    );
    assert_eq!(bed.json(&["ls", "--json"]).as_array().unwrap().len(), 1);

    // A directory that fleet made is fleet's to delete.
    let made = outside.path().join("made/by/fleet");
    let made_text = made.display().to_string();
    let (code, _, stderr) = bed.run(&[
        "create",
        "b",
        "--image",
        &image,
        "--port",
        "8080",
        "--data-dir",
        &made_text,
    ]);
    assert_eq!(code, 0, "{stderr}");
    let (code, stdout, stderr) = bed.run(&["rm", "b", "--purge-data", "--yes"]);
    assert_eq!(
        (code, stdout.as_str()),
        (0, "removed b and its data\n"),
        "{stderr}"
    );
    assert!(!made.exists());

    // A fixed host port outside the configured range works, with a note.
    // From 25900-25999: no test's range, and below the kernel's ephemeral ports (a port
    // the kernel hands out could be taken by an outgoing connection before `create`).
    let outside_range = (25900..=25999)
        .find(|port| fleet_core::bindable(*port))
        .expect("a free port in 25900-25999")
        .to_string();
    let (code, _, stderr) = bed.run(&[
        "create",
        "d",
        "--image",
        &image,
        "--port",
        "8080",
        "--host-port",
        &outside_range,
        "--no-start",
    ]);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stderr.contains(&format!(
            "note: host port {outside_range} is outside the range fleet allocates from ({}-{}, [ports] in {}/config.toml); it is used as given",
            bed.first_port,
            bed.first_port + 19,
            bed.state.path().display()
        )),
        "{stderr}"
    );
    bed.run(&["rm", "d"]);

    let state_parent = bed.state.path().parent().unwrap().display().to_string();
    for dir in ["/", "/etc", "/usr/local", state_parent.as_str()] {
        let (code, _, stderr) = bed.run(&[
            "create",
            "c",
            "--image",
            &image,
            "--port",
            "8080",
            "--data-dir",
            dir,
        ]);
        assert_eq!(code, 2, "{dir}: {stderr}");
        assert!(
            stderr.contains(&format!(
                "error: data directory {dir} of instance c is refused: "
            )),
            "{stderr}"
        );
    }
    assert_eq!(
        bed.json(&["ls", "--json"]).as_array().unwrap().len(),
        1,
        "nothing was created"
    );
    assert!(precious.join("f").exists());
}

/// Regression (issue 14, items 4 and 5): reconcile stopped at the first instance it
/// could not repair without naming it, and said "nothing to repair" when it had left
/// busy instances alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconcile_repairs_what_it_can_and_says_what_it_left() {
    let bed = Bed::new().await;
    let image = bed.image("v1");
    let env_file = bed.state.path().join("alice.env");
    std::fs::write(&env_file, "A=1\n").unwrap();
    let env_file_text = env_file.display().to_string();
    for (name, extra) in [
        ("alice", &["--env-file", env_file_text.as_str()][..]),
        ("bob", &[][..]),
        ("carol", &[][..]),
    ] {
        let mut args = vec!["create", name, "--image", &image, "--port", "8080"];
        args.extend(extra);
        let (code, _, stderr) = bed.run(&args);
        assert_eq!(code, 0, "{stderr}");
        remove_behind_the_back(&format!("{}{name}.1", bed.docker.name(""))).await;
    }
    std::fs::remove_file(&env_file).unwrap();
    // Another process holds carol (an update in progress).
    fleet_core::test_util::hold_lease(
        bed.state.path(),
        &"carol".parse().unwrap(),
        "otherhost:42:abc",
        "update",
        std::time::Duration::from_secs(300),
    )
    .unwrap();
    insta::assert_snapshot!(bed.shown(&["reconcile"]), @r"
    exit: 1
    --- stdout
    bob: container missing: recreated container [prefix]bob.2, started it
    carol: container missing: left alone: carol is busy (update by otherhost:42:abc)
    alice: container missing: not repaired: environment file [state]/alice.env: cannot read it: No such file or directory (os error 2)
    --- stderr
    note: 1 drift left alone because another operation holds them; run reconcile again when it ends
    error: 1 drift not repaired: alice
    ");
    let report = {
        let (code, stdout, _) = bed.run(&["reconcile", "--json"]);
        assert_eq!(code, 1);
        serde_json::from_str::<serde_json::Value>(&stdout).unwrap()
    };
    assert_eq!(report["failed"][0]["drift"]["instance"], "alice");
    assert_eq!(report["skipped"][0]["drift"]["instance"], "carol");
}

/// Regression (issue 14, items 7 and 19): `FLEET_LOG=debug` logged the container's
/// environment, and `ls` showed health recorded for a container that had stopped, or
/// from before a recreate.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_keep_secrets_and_ls_shows_only_current_health() {
    let bed = Bed::new().await;
    let image = bed.image("v1");
    // The instance's own directory in the state directory is private whatever the umask.
    let (code, _, stderr) =
        bed.run_under_umask_000(&["create", "bob", "--image", &image, "--no-start"]);
    assert_eq!(code, 0, "{stderr}");
    let mode = |path: &std::path::Path| {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::metadata(path).unwrap().permissions().mode() & 0o777
    };
    assert_eq!(mode(&bed.state.path().join("instances/bob")), 0o700);
    let secret = "s3cret-4f9a1c";
    let env = format!("API_KEY={secret}");
    for command in [
        &[
            "create",
            "alice",
            "--image",
            &image,
            "--port",
            "8080",
            "--health-path",
            "/api/health",
            "-e",
            &env,
        ][..],
        &["ls"][..],
        &["status"][..],
    ] {
        let (code, stdout, stderr) = bed.run_with(command, &[("FLEET_LOG", "trace")]);
        assert_eq!(code, 0, "{stderr}");
        assert!(
            stderr.contains("state directory"),
            "debug logs are on: {stderr}"
        );
        assert!(
            !stderr.contains(secret) && !stdout.contains(secret),
            "{command:?} logged the secret: {stderr}"
        );
    }
    let row = |bed: &Bed| {
        let listed = bed.json(&["ls", "--json"]);
        (
            listed[0]["state"].as_str().map(str::to_owned),
            listed[0]["health"].as_str().map(str::to_owned),
        )
    };
    assert_eq!(row(&bed), (Some("running".into()), Some("healthy".into())));
    bed.run(&["stop", "alice"]);
    assert_eq!(row(&bed), (Some("exited".into()), None));
    bed.run(&["start", "alice"]);
    remove_behind_the_back(&format!("{}alice.1", bed.docker.name(""))).await;
    // status records "missing"; once reconcile recreated the container, that is stale.
    bed.run(&["status"]);
    assert_eq!(row(&bed), (None, None));
    let (code, _, stderr) = bed.run(&["reconcile"]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(row(&bed), (Some("running".into()), None));
}

/// Regression (issue 14, item 8): a container that crashed at once was often reported as
/// "its container has no address on the fleet network", with no hint and no output.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_container_that_crashes_at_once_is_reported_as_crashed() {
    let bed = Bed::new().await;
    let env_file = bed.state.path().join("big.env");
    std::fs::write(&env_file, format!("BIG={}\n", "x".repeat(1 << 20))).unwrap();
    let env_file = env_file.display().to_string();
    let image = bed.image("v2.0.0");
    for attempt in 0..3 {
        let name = format!("crash{attempt}");
        let (code, _, stderr) = bed.run(&[
            "create",
            &name,
            "--image",
            &image,
            "--port",
            "8080",
            "--env-file",
            &env_file,
        ]);
        assert_eq!(code, 1, "{stderr}");
        // The kernel refuses a 1 MiB variable at exec (E2BIG): the quickest crash there
        // is, and what the operator must see.
        assert!(
            stderr.contains(&format!(
                "error: instance {name} did not become healthy: its container exited with code 1"
            )) && stderr
                .contains("; its last output:\n  | exec /fleet-testapp: argument list too long"),
            "{stderr}"
        );
        assert!(!stderr.contains("no address"), "{stderr}");
        assert!(stderr.contains("hint: nothing was left behind"), "{stderr}");
    }
    // Regression (issue 9): after a failed `start` the hint said "nothing was left
    // behind … create it again", which is false there: the instance is still there.
    let (code, _, stderr) = bed.run(&[
        "create",
        "later",
        "--image",
        &image,
        "--port",
        "8080",
        "--no-start",
    ]);
    assert_eq!(code, 0, "{stderr}");
    let (code, _, stderr) = bed.run(&["start", "later"]);
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains(
            "error: instance later did not become healthy: its container exited with code 1"
        ) && stderr.contains("hint: later is left as it is: `fleet logs later` shows its output")
            && !stderr.contains("nothing was left behind"),
        "{stderr}"
    );
}

/// Regression (issue 14, item 11): a hung engine took two minutes to fail, and
/// permission denied on the socket read as "does not answer" with the hint to start it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn engine_errors_say_what_is_wrong() {
    use std::os::unix::fs::PermissionsExt as _;

    let bed = Bed::new().await;
    let image = bed.image("v1");
    // An engine that accepts connections and never answers.
    let hung = tempfile::tempdir().unwrap();
    let socket = hung.path().join("docker.sock");
    let _listener = std::os::unix::net::UnixListener::bind(&socket).unwrap();
    let config = bed.state.path().join("config.toml");
    let mut text = std::fs::read_to_string(&config).unwrap();
    text.push_str("\n[engine]\nconnect_timeout = \"1s\"\n");
    std::fs::write(&config, text).unwrap();
    let host = format!("unix://{}", socket.display());
    let (code, _, stderr) = bed.run_with(
        &["create", "a", "--image", &image, "--port", "8080"],
        &[("DOCKER_HOST", &host)],
    );
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains(&format!("the engine at {host} did not answer within 1s"))
            && stderr.contains("hint: the engine is overloaded or hung"),
        "{stderr}"
    );

    // Permission denied on the socket, as a user who is not in the docker group.
    let nobody = tempfile::tempdir().unwrap();
    std::fs::set_permissions(nobody.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    let output = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(env!("CARGO_BIN_EXE_fleet"))
        .args(["create", "a", "--image", &image, "--port", "8080"])
        .env("NO_COLOR", "1")
        .env("FLEET_STATE_DIR", nobody.path().join("state"))
        .env_remove("DOCKER_HOST")
        .output()
        .expect("setpriv (util-linux) runs fleet as nobody");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("permission denied on the engine's socket at unix:///var/run/docker.sock")
            && stderr.contains("hint: run fleet as root, or as a member of the group"),
        "{stderr}"
    );
    assert!(!stderr.contains("start the Docker Engine"), "{stderr}");
}

/// Issue 10, first part: `fleet backup` archives a running instance's data directory
/// (its SQLite database as a consistent snapshot), records what ran, and `fleet
/// backups` lists the archives, newest first.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backup_archives_the_data_and_records_what_ran() {
    use std::os::unix::fs::PermissionsExt as _;

    let bed = Bed::new().await;
    let image = bed.image("v1");
    for name in ["alice", "bob"] {
        let (code, _, stderr) = bed.run(&[
            "create",
            name,
            "--image",
            &image,
            "--port",
            "8080",
            "--health-path",
            "/api/health",
        ]);
        assert_eq!(code, 0, "{stderr}");
    }
    let backup = bed.json(&["backup", "alice", "--json"]);
    assert_eq!(
        (
            backup["instance"].as_str(),
            backup["reason"].as_str(),
            backup["tag"].as_str(),
            backup["version"].as_str(),
            backup["generation"].as_u64(),
            backup["remote"].as_str(),
        ),
        (
            Some("alice"),
            Some("manual"),
            Some("v1.0.0"),
            Some("1.0.0"),
            Some(1),
            None
        ),
        "{backup:#}"
    );
    assert_eq!(
        backup["image"],
        format!("{}/app", bed.registry.docker_host())
    );
    assert!(backup["digest"].as_str().unwrap().starts_with("sha256:"));
    let path = std::path::PathBuf::from(backup["path"].as_str().unwrap());
    assert!(
        path.starts_with(bed.state.path().join("backups/alice")),
        "{}",
        path.display()
    );
    let metadata = std::fs::metadata(&path).unwrap();
    assert_eq!(backup["size"].as_u64(), Some(metadata.len()));
    assert_eq!(
        metadata.permissions().mode() & 0o777,
        0o600,
        "the archive is private"
    );
    // The recorded SHA-256 is the archive file's own, as sha256sum prints it.
    let sha256sum = Command::new("sha256sum").arg(&path).output().unwrap();
    let printed = String::from_utf8_lossy(&sha256sum.stdout);
    assert_eq!(
        backup["sha256"].as_str(),
        printed.split_whitespace().next(),
        "{printed}"
    );
    // The archive verifies end to end, and holds the app's SQLite database as a snapshot.
    let verified = fleet_backup::verify(&path, &mut |_| {}).unwrap();
    let summary = verified.manifest.summary();
    assert_eq!(Some(summary.files), backup["files"].as_u64());
    assert!(summary.sqlite >= 1, "{summary:?}");

    let all = bed.json(&["backup", "--all", "--json"]);
    let instances: Vec<&str> = all
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["instance"].as_str().unwrap())
        .collect();
    assert_eq!(instances, ["alice", "bob"]);
    let listed = bed.json(&["backups", "alice", "--json"]);
    let ids: Vec<i64> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["id"].as_i64().unwrap())
        .collect();
    assert_eq!(ids.len(), 2);
    assert!(ids[0] > ids[1], "newest first: {ids:?}");
    assert_eq!(ids[1], backup["id"].as_i64().unwrap());
    let (code, table, stderr) = bed.run(&["backups", "alice"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        table.starts_with("ID  CREATED") && table.contains("manual") && table.contains("v1.0.0"),
        "{table}"
    );

    // Retention: keep the newest 2; the next backup of alice deletes the oldest.
    let config = bed.state.path().join("config.toml");
    let mut text = std::fs::read_to_string(&config).unwrap();
    text.push_str("\n[backup]\nkeep_last = 2\n");
    std::fs::write(&config, &text).unwrap();
    let third = bed.json(&["backup", "alice", "--json"]);
    let listed = bed.json(&["backups", "alice", "--json"]);
    let ids: Vec<i64> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["id"].as_i64().unwrap())
        .collect();
    assert_eq!(
        ids,
        [
            third["id"].as_i64().unwrap(),
            all[0]["id"].as_i64().unwrap()
        ],
        "the newest two: the third backup and the one --all took"
    );
    assert!(
        !path.exists(),
        "the oldest archive was deleted with its record"
    );
    // `backup prune` applies a changed retention now; --dry-run deletes nothing.
    std::fs::write(&config, text.replace("keep_last = 2", "keep_last = 1")).unwrap();
    let older = std::path::PathBuf::from(listed[1]["path"].as_str().unwrap());
    let (code, stdout, stderr) = bed.run(&["backup", "prune", "alice", "--dry-run"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stdout.starts_with(&format!("would delete alice: {}", older.display())),
        "{stdout}"
    );
    assert!(older.exists());
    let (code, stdout, stderr) = bed.run(&["backup", "prune", "alice"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.starts_with("deleted alice: "), "{stdout}");
    assert!(!older.exists());
    assert_eq!(
        bed.json(&["backups", "alice", "--json"])
            .as_array()
            .unwrap()
            .len(),
        1
    );

    // `verify` checks an instance's newest backup, or any archive file; a damaged one
    // fails with what is wrong.
    let (code, stdout, stderr) = bed.run(&["verify", "alice"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.starts_with("ok: "), "{stdout}");
    let damaged = bed.state.path().join("damaged.tar.zst");
    let bytes = std::fs::read(third["path"].as_str().unwrap()).unwrap();
    std::fs::write(&damaged, &bytes[..bytes.len() / 2]).unwrap();
    let (code, _, stderr) = bed.run(&["verify", damaged.to_str().unwrap()]);
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.starts_with("error: "), "{stderr}");
    let (code, _, stderr) = bed.run(&["verify", "alice", "999999"]);
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains("error: instance alice has no backup with id 999999"),
        "{stderr}"
    );

    // Another operation holds bob: no backup meanwhile.
    fleet_core::test_util::hold_lease(
        bed.state.path(),
        &"bob".parse().unwrap(),
        "otherhost:42:abc",
        "update",
        std::time::Duration::from_secs(300),
    )
    .unwrap();
    let (code, _, stderr) = bed.run(&["backup", "bob"]);
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains("error: instance bob is busy: update by otherhost:42:abc"),
        "{stderr}"
    );
    let (code, _, stderr) = bed.run(&["backup", "nobody"]);
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains("error: no instance named nobody"),
        "{stderr}"
    );
}
