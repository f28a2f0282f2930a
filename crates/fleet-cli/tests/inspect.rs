//! `fleet inspect` through the built `fleet` binary, on the real Docker Engine with the
//! test app in a real registry (issue 12): the stored spec, the environment as the
//! container gets it (templates rendered, secrets redacted unless `--show-secrets`),
//! the container, ports, a health probe made now and the last deployment; and `-q`,
//! which leaves stderr empty where `create` would show its progress.
//!
//! Each test has its own state directory, registry, port range (10900 + 20 * k, used by
//! no other test file), network and container names, removed when it ends.

use std::path::Path;
use std::sync::atomic::{AtomicU16, Ordering};

use fleet_tests::cli::CliBed;
use fleet_tests::image::Behaviour;

async fn bed() -> CliBed {
    static NEXT: AtomicU16 = AtomicU16::new(0);
    let first_port = 10900 + NEXT.fetch_add(1, Ordering::SeqCst) * 20;
    CliBed::new(Path::new(env!("CARGO_BIN_EXE_fleet")), first_port)
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inspect_shows_the_spec_the_container_its_health_and_last_deployment() {
    let bed = bed().await;
    let port = bed.create(
        "alice",
        &[
            "--env",
            "API_KEY=hunter2",
            "--env",
            "APP_URL=http://{{name}}.example:{{port}}",
            "--group",
            "prod",
        ],
    );
    let stored = fleet_core::FleetState::open(bed.state.path())
        .unwrap()
        .instance(&"alice".parse().unwrap())
        .unwrap()
        .unwrap();

    let inspect = bed.json(&["inspect", "alice", "--json"]);
    assert_eq!(inspect["name"], "alice", "{inspect:#}");
    assert_eq!(inspect["group"], "prod");
    assert_eq!(inspect["channel"], "v1");
    assert_eq!(inspect["tag"], "v1.0.0");
    assert_eq!(inspect["desired"], "running");
    assert_eq!(inspect["generation"], 1);
    assert_eq!(inspect["ports"][0]["host"], port);
    assert_eq!(inspect["ports"][0]["container"], 8080);
    assert_eq!(
        inspect["container"]["id"].as_str(),
        stored.container_id.as_deref()
    );
    assert!(
        inspect["container"]["name"]
            .as_str()
            .unwrap()
            .ends_with("alice.1"),
        "{inspect:#}"
    );
    assert_eq!(inspect["container"]["state"], "running");
    // Probed now, as `fleet status` does.
    assert_eq!(inspect["health"], "healthy");
    assert_eq!(inspect["version"], "1.0.0");
    assert_eq!(inspect["running_digest"], inspect["digest"]);
    assert_eq!(inspect["drift"], serde_json::json!([]));
    // `create` is no deployment.
    assert_eq!(inspect["last_deployment"], serde_json::Value::Null);
    // Secrets are redacted: the rendered environment, and the stored spec's.
    assert_eq!(inspect["secrets_shown"], false);
    assert_eq!(inspect["render_error"], serde_json::Value::Null);
    assert_eq!(
        inspect["env"],
        serde_json::json!({"API_KEY": null, "APP_URL": null})
    );
    assert_eq!(
        inspect["spec"]["env"],
        serde_json::json!({"API_KEY": null, "APP_URL": null})
    );
    assert_eq!(inspect["spec"]["image"], bed.image("v1"));
    assert_eq!(inspect["spec"]["ports"][0]["container"], 8080);
    assert_eq!(inspect["spec"]["health"]["path"], "/api/health");
    assert!(!inspect.to_string().contains("hunter2"), "{inspect:#}");

    let shown = bed.json(&["inspect", "alice", "--json", "--show-secrets"]);
    assert_eq!(shown["secrets_shown"], true);
    assert_eq!(shown["env"]["API_KEY"], "hunter2");
    // The environment as the container gets it, and the template as stored.
    assert_eq!(
        shown["env"]["APP_URL"],
        format!("http://alice.example:{port}")
    );
    assert_eq!(
        shown["spec"]["env"]["APP_URL"],
        "http://{{name}}.example:{{port}}"
    );

    let (code, text, stderr) = bed.run(&["inspect", "alice"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(text.contains("API_KEY=<redacted>"), "{text}");
    assert!(!text.contains("hunter2"), "{text}");
    assert!(text.contains(&format!("{port}->8080")), "{text}");
    assert!(
        text.lines()
            .any(|l| l.starts_with("health ") && l.contains("healthy")),
        "{text}"
    );

    // After an update, the last deployment is that update.
    bed.push("1.1.0", Behaviour::Healthy, &["v1.1.0", "v1"])
        .await
        .unwrap();
    let (code, _, stderr) = bed.run(&["update", "alice"]);
    assert_eq!(code, 0, "{stderr}");
    let inspect = bed.json(&["inspect", "alice", "--json"]);
    let last = &inspect["last_deployment"];
    assert_eq!(last["kind"], "update", "{inspect:#}");
    assert_eq!(last["outcome"], "updated", "{inspect:#}");
    assert_eq!(last["to"]["tag"], "v1.1.0", "{inspect:#}");
    assert_eq!(inspect["tag"], "v1.1.0");
    assert_eq!(inspect["version"], "1.1.0");
    assert_eq!(inspect["generation"], 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inspect_of_an_unknown_instance_fails_and_quiet_silences_progress() {
    let bed = bed().await;
    // `-q`: no progress, where a piped stderr otherwise gets a line per step.
    let image = bed.image("v1");
    let create = |quiet: bool, name: &'static str| {
        let mut args = vec!["create", name, "--image", &image, "--port", "8080"];
        if quiet {
            args.push("-q");
        }
        bed.run(&args)
    };
    let (code, _, stderr) = create(false, "alice");
    assert_eq!(code, 0, "{stderr}");
    assert!(stderr.contains("resolving"), "{stderr}");
    let (code, stdout, stderr) = create(true, "bob");
    assert_eq!((code, stderr.as_str()), (0, ""));
    assert!(stdout.contains("bob"), "{stdout}");

    let (code, stdout, stderr) = bed.run(&["inspect", "carol"]);
    assert_eq!(code, 1, "{stderr}");
    assert_eq!(stdout, "");
    assert!(stderr.starts_with("error: "), "{stderr}");
    assert!(stderr.contains("carol"), "{stderr}");
    assert!(
        stderr.contains("hint: `fleet ls` lists instances"),
        "{stderr}"
    );
    let (code, stdout, _) = bed.run(&["inspect", "carol", "--json"]);
    assert_eq!((code, stdout.as_str()), (1, ""));
    // An invalid name is a usage error.
    let (code, _, _) = bed.run(&["inspect", "Not A Name"]);
    assert_eq!(code, 2);
}
