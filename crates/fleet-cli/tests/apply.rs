//! `fleet apply -f fleet.toml` through the built `fleet` binary, on the real Docker Engine
//! with the test app in a real registry (issue 12): a three-instance file applied, the
//! same file again (nothing to change), one instance's env changed (one update, the
//! others untouched), one instance dropped from the file and `--prune`; and a file with
//! mistakes refused before anything changes.
//!
//! Each test has its own state directory, registry, port range (11100 + 20 * k, used by
//! no other test file), network and container names, removed when it ends.

use std::path::Path;
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::Duration;

use fleet_tests::cli::CliBed;

async fn bed() -> CliBed {
    static NEXT: AtomicU16 = AtomicU16::new(0);
    let first_port = 11100 + NEXT.fetch_add(1, Ordering::SeqCst) * 20;
    CliBed::new(Path::new(env!("CARGO_BIN_EXE_fleet")), first_port)
        .await
        .unwrap()
}

fn fleet_file(bed: &CliBed, instances: &[(&str, &str)]) -> std::path::PathBuf {
    let mut text = format!(
        "[defaults]\nimage = \"{}\"\nports = [8080]\nhealth_path = \"/api/health\"\nhealth_start_period = \"3s\"\nhealth_interval = \"500ms\"\nenv = {{ TZ = \"UTC\" }}\n",
        bed.image("v1.0")
    );
    for (name, greeting) in instances {
        text.push_str(&format!(
            "\n[instances.{name}]\nenv = {{ GREETING = \"{greeting}\" }}\n"
        ));
    }
    let path = bed.state.path().join("fleet.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// Each instance's container id, by name.
fn containers(bed: &CliBed) -> Vec<(String, String)> {
    let Ok(state) = fleet_core::FleetState::open(bed.state.path()) else {
        // A file refused before the fleet was even opened: there is no fleet yet.
        return Vec::new();
    };
    state
        .instances()
        .unwrap()
        .into_iter()
        .map(|r| (r.spec.name.to_string(), r.container_id.unwrap_or_default()))
        .collect()
}

async fn env(port: u64, name: &str) -> String {
    let url = format!("http://127.0.0.1:{port}/api/env?name={name}");
    let body = fleet_tests::net::wait_http_ok(&url, Duration::from_secs(20))
        .await
        .unwrap();
    let value: serde_json::Value = serde_json::from_str(&body).unwrap();
    value["value"].as_str().unwrap_or_default().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apply_converges_the_fleet_to_its_file() {
    let bed = bed().await;
    let file = fleet_file(&bed, &[("alice", "hi"), ("bob", "hello"), ("carol", "hey")]);
    let file_arg = file.display().to_string();

    let (code, stdout, stderr) = bed.run(&["apply", "-f", &file_arg]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("+ alice (create)"), "{stdout}");
    assert!(stdout.contains("carol: created"), "{stdout}");
    let first = containers(&bed);
    assert_eq!(first.len(), 3);

    // The same file again: nothing to change, and it says so.
    let (code, stdout, stderr) = bed.run(&["apply", "-f", &file_arg]);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stdout.contains("nothing to change: 3 instance(s)"),
        "{stdout}"
    );
    assert_eq!(containers(&bed), first);

    // bob's env changes: one update through the update path, the others untouched.
    fleet_file(
        &bed,
        &[("alice", "hi"), ("bob", "good day"), ("carol", "hey")],
    );
    let (code, stdout, _) = bed.run(&["apply", "-f", &file_arg, "--dry-run"]);
    assert_eq!(code, 0);
    assert!(
        stdout.contains("~ bob: env.GREETING: \"hello\" -> \"good day\""),
        "{stdout}"
    );
    assert_eq!(containers(&bed), first, "a dry run changes nothing");
    let applied = bed.json(&["apply", "-f", &file_arg, "--json"]);
    assert_eq!(
        applied["plan"]["change"][0]["instance"], "bob",
        "{applied:#}"
    );
    assert_eq!(applied["applied"][0]["outcome"], "updated", "{applied:#}");
    let second = containers(&bed);
    assert_eq!(second[0], first[0], "alice untouched");
    assert_ne!(second[1], first[1], "bob has a new container");
    assert_eq!(second[2], first[2], "carol untouched");
    let listed = bed.json(&["ls", "--json"]);
    let bob_port = listed[1]["ports"][0]["host"].as_u64().unwrap();
    assert_eq!(env(bob_port, "GREETING").await, "good day");
    assert_eq!(env(bob_port, "TZ").await, "UTC");

    // carol leaves the file: kept without --prune, removed with it.
    fleet_file(&bed, &[("alice", "hi"), ("bob", "good day")]);
    let (code, stdout, _) = bed.run(&["apply", "-f", &file_arg]);
    assert_eq!(code, 0);
    assert!(
        stdout.contains("carol is not in the file (kept"),
        "{stdout}"
    );
    assert_eq!(containers(&bed).len(), 3);
    let (code, stdout, stderr) = bed.run(&["apply", "-f", &file_arg, "--prune"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("carol: removed"), "{stdout}");
    assert_eq!(containers(&bed).len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_with_mistakes_is_refused_before_anything_changes() {
    let bed = bed().await;
    let path = bed.state.path().join("fleet.toml");
    let arg = path.display().to_string();
    let image = bed.image("v1.0");
    for (text, expected) in [
        (
            format!("[instances.alice]\nimage = \"{image}\"\nportz = [8080]\n"),
            "line 3, column 1",
        ),
        (
            format!(
                "[defaults]\nimage = \"{image}\"\nports = [8080]\n[instances.a]\nhost_port = 5999\n[instances.b]\nhost_port = 5999\n"
            ),
            "both publish host port 5999",
        ),
        (
            format!("[instances.alice]\nimage = \"{image}\"\nenv_file = \"missing.env\"\n"),
            "missing.env",
        ),
        (
            "[instances.alice]\nimage = \"not an image!\"\n".to_owned(),
            "not an image!",
        ),
        (
            format!(
                "[defaults]\nimage = \"{image}\"\nports = [8080]\n[instances.a]\n[instances.b]\nenv = {{ URL = \"https://{{{{customer}}}}.example.com:{{{{port}}}}\" }}\n"
            ),
            "{{customer}} has no value",
        ),
    ] {
        std::fs::write(&path, &text).unwrap();
        let (code, stdout, stderr) = bed.run(&["apply", "-f", &arg]);
        assert_eq!(code, 2, "{text}\n{stdout}{stderr}");
        assert!(stderr.contains(expected), "{text}\n{stderr}");
        assert!(containers(&bed).is_empty(), "{text}");
    }
}

/// `fleet edit`: one setting changed through the update path (a new container that
/// passes the gate), mistakes refused with nothing changed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edit_changes_one_setting_through_the_update_path() {
    let bed = bed().await;
    let port = bed.create_on("alice", "v1.0", &["-e", "GREETING=hi"]);
    let before = containers(&bed);

    let (code, stdout, stderr) = bed.run(&["edit", "alice", "--set", "env.GREETING=good day"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stdout.contains("alice:") && stdout.contains("updated"),
        "{stdout}"
    );
    assert_eq!(env(u64::from(port), "GREETING").await, "good day");
    let after = containers(&bed);
    assert_ne!(after, before, "a new container");
    let history = bed.json(&["history", "alice", "--json"]);
    assert_eq!(history[0]["kind"], "reconfigure", "{history:#}");

    for (args, expected) in [
        (vec!["edit", "alice", "--set", "memroy=1g"], "memroy"),
        (
            vec!["edit", "alice", "--set", "ports=[9090]"],
            "ports or data directory",
        ),
        (vec!["edit", "alice", "--unset", "user"], "user is not set"),
    ] {
        let (code, _, stderr) = bed.run(&args);
        assert_eq!(code, 2, "{args:?}: {stderr}");
        assert!(stderr.contains(expected), "{args:?}: {stderr}");
    }
    assert_eq!(containers(&bed), after, "nothing changed");
}
