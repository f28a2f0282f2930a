//! The demo behind `cargo xtask demo`: a small fleet on the local Docker Engine.
//!
//! It starts a local OCI registry, builds the test app image (a static binary in a
//! `FROM scratch` image: nothing is pulled from the internet), pushes it, runs one
//! instance per customer from the registry with its own data directory, and prints each
//! instance's health. `--keep` leaves the fleet running until Ctrl-C.

// A terminal program.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::time::Duration;

use fleet_tests::docker::{RunSpec, TestDocker};
use fleet_tests::image::TestImage;
use fleet_tests::net::wait_http_ok;
use fleet_tests::registry::TestRegistry;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let keep = std::env::args().any(|arg| arg == "--keep");
    eprintln!("demo: starting a local registry");
    let registry = TestRegistry::start()?;
    let docker = TestDocker::new().await?;
    eprintln!("demo: building the app image (static binary, FROM scratch)");
    let image = TestImage::new("1.0.0").build(&docker).await?;
    let digest = image
        .push(&docker, &registry, "demo/app", &["v1.0.0", "v1", "latest"])
        .await?;
    let reference = format!("{}/demo/app:v1", registry.docker_host());
    eprintln!("demo: pushed {reference} ({digest})");
    docker.pull(&registry, &reference).await?;

    let data = tempfile::Builder::new().prefix("fleet-demo-").tempdir()?;
    println!(
        "{:<8} {:<24} {:<8} {:<8} DATA",
        "NAME", "URL", "VERSION", "HEALTH"
    );
    for name in ["alice", "bob"] {
        let dir = data.path().join(name);
        std::fs::create_dir_all(&dir)?;
        // The image runs as user 10001; the data directory must be theirs.
        std::process::Command::new("chown")
            .arg("10001:10001")
            .arg(&dir)
            .status()?;
        let spec = RunSpec::new(&reference, name)
            .env("INSTANCE_NAME", name)
            .bind(&format!("{}:/data", dir.display()));
        let container = docker.run(spec).await?;
        let health = wait_http_ok(
            &format!("{}/api/health", container.url()),
            Duration::from_secs(30),
        )
        .await?;
        let health: serde_json::Value = serde_json::from_str(&health)?;
        println!(
            "{:<8} {:<24} {:<8} {:<8} {}",
            name,
            container.url(),
            health["version"].as_str().unwrap_or("?"),
            health["status"].as_str().unwrap_or("?"),
            dir.display()
        );
    }
    if keep {
        eprintln!("demo: the fleet is running; press Ctrl-C to remove it");
        tokio::signal::ctrl_c().await?;
    }
    eprintln!("demo: removing the demo containers and registry");
    docker.cleanup().await?;
    Ok(())
}
