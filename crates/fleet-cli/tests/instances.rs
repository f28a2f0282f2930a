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
        let output = Command::new(env!("CARGO_BIN_EXE_fleet"))
            .args(args)
            .env("NO_COLOR", "1")
            .env("FLEET_LOG", "off")
            .env("FLEET_STATE_DIR", self.state.path())
            .env("DOCKER_CONFIG", self.state.path().join("docker"))
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
