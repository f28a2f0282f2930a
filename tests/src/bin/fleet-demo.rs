//! The demo behind `cargo xtask demo`: a small fleet on the local Docker Engine, driven
//! through the `fleet` command.
//!
//! It starts a local OCI registry, builds the demo app image (a static binary in a
//! `FROM scratch` image: nothing is pulled from the internet) and pushes it as
//! `demo/app:v1.0.0`, `v1` and `latest`. Then it runs `fleet create` for three
//! customers, each with its own port and data directory, shows `fleet ls` and
//! `fleet status`, asks each instance who it is, and removes everything again.
//! `--keep` leaves the fleet running until Ctrl-C.
//!
//! `FLEET_BIN` names the `fleet` binary (`cargo xtask demo` builds it first).

// A terminal program.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{Context as _, bail};
use fleet_tests::docker::TestDocker;
use fleet_tests::image::TestImage;
use fleet_tests::registry::TestRegistry;

const CUSTOMERS: [&str; 3] = ["alice", "bob", "carol"];

/// Runs `fleet ARGS` in the demo's state directory, echoing the command and its output.
fn fleet(bin: &Path, state: &Path, args: &[&str]) -> anyhow::Result<String> {
    println!("\n$ fleet {}", args.join(" "));
    let stdout = fleet_quiet(bin, state, args)?;
    print!("{stdout}");
    Ok(stdout)
}

/// Runs `fleet ARGS` and returns its stdout, showing only its stderr.
fn fleet_quiet(bin: &Path, state: &Path, args: &[&str]) -> anyhow::Result<String> {
    let output = Command::new(bin)
        .args(args)
        .env("FLEET_STATE_DIR", state)
        .output()
        .with_context(|| format!("cannot run {}", bin.display()))?;
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    eprint!("{}", String::from_utf8_lossy(&output.stderr));
    if !output.status.success() {
        bail!("`fleet {}` failed ({})", args.join(" "), output.status);
    }
    Ok(stdout)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let keep = std::env::args().any(|arg| arg == "--keep");
    let bin = PathBuf::from(
        std::env::var_os("FLEET_BIN").context("FLEET_BIN must name the fleet binary")?,
    );
    eprintln!("demo: starting a local registry");
    let registry = TestRegistry::start()?;
    let docker = TestDocker::new().await?;
    eprintln!("demo: building the app image (a static binary in a FROM scratch image)");
    let image = TestImage::new("1.0.0").build(&docker).await?;
    let digest = image
        .push(&docker, &registry, "demo/app", &["v1.0.0", "v1", "latest"])
        .await?;
    docker.track_registry(&registry.docker_host());
    let reference = format!("{}/demo/app:v1", registry.docker_host());
    eprintln!(
        "demo: pushed {} as v1.0.0, v1 and latest ({digest})",
        registry.docker_host()
    );

    // The demo's own state directory, port range and labels (so clean-up is exact).
    let state = tempfile::Builder::new().prefix("fleet-demo-").tempdir()?;
    std::fs::write(
        state.path().join("config.toml"),
        docker.fleet_config("fleet-demo-", 5001, 5999),
    )?;
    let state_dir = state.path();

    for customer in CUSTOMERS {
        fleet(
            &bin,
            state_dir,
            &[
                "create",
                customer,
                "--image",
                &reference,
                "--port",
                "8080",
                "--health-path",
                "/api/health",
                "--group",
                "demo",
            ],
        )?;
    }
    fleet(&bin, state_dir, &["ls"])?;
    fleet(&bin, state_dir, &["status"])?;

    let listed: serde_json::Value =
        serde_json::from_str(&fleet_quiet(&bin, state_dir, &["ls", "--json"])?)?;
    println!();
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()?;
    for instance in listed.as_array().context("ls --json is an array")? {
        let port = &instance["ports"][0]["host"];
        let url = format!("http://127.0.0.1:{port}/");
        let answer: serde_json::Value = client.get(&url).send().await?.json().await?;
        println!(
            "GET {url} -> instance {} version {} (hits {})",
            answer["instance"], answer["version"], answer["hits"]
        );
    }

    if keep {
        eprintln!(
            "\ndemo: the fleet is running (state in {}); press Ctrl-C to remove it",
            state_dir.display()
        );
        tokio::signal::ctrl_c().await?;
    }
    for customer in CUSTOMERS {
        fleet(&bin, state_dir, &["rm", customer, "--purge-data", "--yes"])?;
    }
    eprintln!("demo: removing the registry and the demo network");
    docker.cleanup().await?;
    Ok(())
}
