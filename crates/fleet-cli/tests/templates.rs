//! Settings templated from the allocation (issue 12) through the built `fleet` binary, on
//! the real Docker Engine with the test app in a real registry: the app reads env
//! values rendered from its allocated port, its name and vars; a key without a value
//! fails `fleet create` with exit 2, naming the key and the instance, and leaves nothing.
//!
//! Each test has its own state directory, registry, port range (10800 + 20 * k, used by
//! no other test file), network and container names, removed when it ends.

use std::io::Write as _;
use std::path::Path;
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::Duration;

use fleet_tests::cli::CliBed;

/// A bed whose `config.toml` also holds fleet-wide and group vars.
async fn bed() -> CliBed {
    static NEXT: AtomicU16 = AtomicU16::new(0);
    let first_port = 10800 + NEXT.fetch_add(1, Ordering::SeqCst) * 20;
    let bed = CliBed::new(Path::new(env!("CARGO_BIN_EXE_fleet")), first_port)
        .await
        .unwrap();
    let mut config = std::fs::OpenOptions::new()
        .append(true)
        .open(bed.state.path().join("config.toml"))
        .unwrap();
    config
        .write_all(
            b"\n[vars]\ndomain = \"example.com\"\nregion = \"eu\"\n\n[vars.group.staging]\ndomain = \"staging.example.com\"\n",
        )
        .unwrap();
    bed
}

/// The value of `name` in the app's environment, as the app reads it.
async fn app_env(port: u16, name: &str) -> serde_json::Value {
    let url = format!("http://127.0.0.1:{port}/api/env?name={name}");
    let body = fleet_tests::net::wait_http_ok(&url, Duration::from_secs(10))
        .await
        .unwrap();
    let answer: serde_json::Value = serde_json::from_str(&body).unwrap();
    answer["value"].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_app_reads_env_values_rendered_from_its_allocation_and_vars() {
    let bed = bed().await;
    let port = bed.create(
        "alice",
        &[
            "--group",
            "staging",
            "-e",
            "APP_URL=https://{{name}}.{{domain}}:{{port}}",
            "-e",
            "WHERE={{region}} {{port:8080}} {{tier|standard}} {{{{literal}}",
            "--var",
            "region=us",
        ],
    );
    assert_eq!(
        app_env(port, "APP_URL").await,
        format!("https://alice.staging.example.com:{port}"),
        "the group's domain, the allocated port"
    );
    assert_eq!(
        app_env(port, "WHERE").await,
        format!("us {port} standard {{{{literal}}}}"),
        "the instance's var over the fleet's, a default, an escaped brace"
    );
    // The store keeps the templates, not their values.
    let shown = bed.json(&["ls", "--json"]);
    let text = shown.to_string();
    assert!(!text.contains("alice.staging.example.com"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_without_a_value_fails_create_with_exit_2_and_leaves_nothing() {
    let bed = bed().await;
    let image = bed.image("v1");
    let (code, stdout, stderr) = bed.run(&[
        "create",
        "bob",
        "--image",
        &image,
        "--port",
        "8080",
        "-e",
        "APP_URL=https://{{name}}.{{customer_domain}}:{{port}}",
    ]);
    assert_eq!(code, 2, "{stdout}{stderr}");
    assert!(
        stderr.contains("instance bob: env APP_URL: {{customer_domain}} has no value"),
        "{stderr}"
    );
    assert!(stderr.contains("--var customer_domain=VALUE"), "{stderr}");
    assert_eq!(bed.json(&["ls", "--json"]), serde_json::json!([]));
    assert_eq!(bed.json(&["ports", "--json"]), serde_json::json!([]));
    let filters = std::collections::HashMap::from([(
        "label".to_owned(),
        vec![
            format!("{}={}", fleet_tests::docker::RUN_LABEL, bed.docker.run_id()),
            "fleet.instance=bob".to_owned(),
        ],
    )]);
    let ours = bed
        .docker
        .docker()
        .list_containers(Some(
            bollard::query_parameters::ListContainersOptionsBuilder::default()
                .all(true)
                .filters(&filters)
                .build(),
        ))
        .await
        .unwrap();
    assert!(ours.is_empty(), "no container is left: {ours:?}");
    assert!(!bed.data_dir("bob").exists(), "no data directory is left");

    // With the var, the same create succeeds. (That the failed create gave its port back
    // is `ports --json` above; the next free port may be another one when some other
    // process on this host holds the first at that moment, as the allocator checks.)
    let port = bed.create(
        "bob",
        &[
            "-e",
            "APP_URL=https://{{name}}.{{customer_domain}}:{{port}}",
            "--var",
            "customer_domain=acme.test",
        ],
    );
    assert!(
        (bed.first_port..bed.first_port + 20).contains(&port),
        "{port} is in the bed's range"
    );
    assert_eq!(
        app_env(port, "APP_URL").await,
        format!("https://bob.acme.test:{port}")
    );
}
