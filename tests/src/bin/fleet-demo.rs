//! The demo behind `cargo xtask demo`: a small fleet on the local Docker Engine, driven
//! through the `fleet` command.
//!
//! It starts a local OCI registry, builds the demo app image (a static binary in a
//! `FROM scratch` image: nothing is pulled from the internet) and pushes it as
//! `demo/app:v1.0.0`, `v1` and `latest`. It starts `fleet serve` (fleet's proxy), runs
//! `fleet create` for three customers, each with its own port and data directory, shows
//! `fleet ls` and `fleet status` and asks each instance who it is. Then, under load on all
//! three (every request counted), it publishes v1.1.0 and updates the fleet, tries a
//! version that never becomes healthy (rolled back automatically), rolls one customer
//! back, and shows that no request failed. Finally it removes everything again.
//! `--keep` leaves the fleet running until Ctrl-C; the teardown then removes the instances
//! the fleet has at that moment (the operator may have removed or added some meanwhile).
//!
//! Its containers and network carry its own names and label (`fleet-demo-...`,
//! `fleet.demo.run`), and the image it built is removed when it exits. Errors are one line,
//! `demo: error: ` and the chain of causes.
//!
//! `FLEET_BIN` names the `fleet` binary (`cargo xtask demo` builds it first).

// A terminal program.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Output};
use std::time::Duration;

use anyhow::{Context as _, bail};
use fleet_tests::cli::ServeProcess;
use fleet_tests::docker::TestDocker;
use fleet_tests::image::{Behaviour, TestImage};
use fleet_tests::load::Load;
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
    let output = fleet_output(bin, state, args)?;
    eprint!("{}", String::from_utf8_lossy(&output.stderr));
    if !output.status.success() {
        bail!("`fleet {}` failed ({})", args.join(" "), output.status);
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// Runs `fleet ARGS` and returns what it printed, whatever its exit status.
fn fleet_output(bin: &Path, state: &Path, args: &[&str]) -> anyhow::Result<Output> {
    Command::new(bin)
        .args(args)
        .env("FLEET_STATE_DIR", state)
        .output()
        .with_context(|| format!("cannot run {}", bin.display()))
}

/// The names of the instances the demo's fleet has now.
fn instance_names(bin: &Path, state: &Path) -> anyhow::Result<Vec<String>> {
    let listed: serde_json::Value =
        serde_json::from_str(&fleet_quiet(bin, state, &["ls", "--json"])?)
            .context("cannot read `fleet ls --json`")?;
    Ok(listed
        .as_array()
        .context("`fleet ls --json` is not an array")?
        .iter()
        .filter_map(|instance| instance["name"].as_str().map(str::to_owned))
        .collect())
}

/// The one line an error prints: `demo: error: ` and the chain of causes, never `Error:`
/// and a backtrace (as returning the error from `main` would with `RUST_BACKTRACE` set).
fn error_line(error: &anyhow::Error) -> String {
    format!("demo: error: {error:#}")
}

fn main() -> ExitCode {
    let result = tokio::runtime::Runtime::new()
        .context("cannot start the async runtime")
        .and_then(|runtime| runtime.block_on(run()));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{}", error_line(&e));
            ExitCode::FAILURE
        }
    }
}

async fn run() -> anyhow::Result<()> {
    let keep = std::env::args().any(|arg| arg == "--keep");
    let bin = PathBuf::from(
        std::env::var_os("FLEET_BIN")
            .context("FLEET_BIN must name the fleet binary (`cargo xtask demo` sets it)")?,
    );
    eprintln!("demo: starting a local registry");
    let registry = TestRegistry::start()?;
    let docker = TestDocker::for_demo().await?;
    eprintln!("demo: building the app image (a static binary in a FROM scratch image)");
    let image = TestImage::new("1.0.0").build(&docker).await?;
    eprintln!(
        "demo: built {} (removed when the demo ends)",
        image.local_tag
    );
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

    eprintln!("demo: starting `fleet serve` (fleet's proxy) for the demo's state directory");
    let serve = ServeProcess::start(&bin, state_dir)?;
    let shown = match show(&bin, state_dir, &reference, keep).await {
        Ok(ports) => updates(&bin, state_dir, &docker, &registry, &ports).await,
        Err(error) => Err(error),
    };
    // Whatever happened, remove what the fleet has: a failed step leaves nothing behind.
    let removed = teardown(&bin, state_dir);
    eprintln!("demo: stopping `fleet serve`");
    let stopped = serve
        .stop(Duration::from_secs(60))
        .and_then(|(code, stderr)| {
            eprint!("{stderr}");
            if code == 0 {
                Ok(())
            } else {
                bail!("`fleet serve` exited with {code}")
            }
        });
    eprintln!("demo: removing the registry and the demo network");
    let cleaned = docker.cleanup().await;
    shown?;
    removed?;
    stopped?;
    cleaned
}

/// Under load on every customer: v1.1.0 published and the fleet updated, a version that
/// never becomes healthy rolled back automatically, one customer rolled back by hand.
async fn updates(
    bin: &Path,
    state_dir: &Path,
    docker: &TestDocker,
    registry: &TestRegistry,
    ports: &[u16],
) -> anyhow::Result<()> {
    let loads: Vec<Load> = ports
        .iter()
        .map(|port| Load::start(&format!("http://127.0.0.1:{port}/api/version"), 2))
        .collect();
    println!(
        "
# load: every customer is requested back to back from now on"
    );

    let v110 = TestImage::new("1.1.0").build(docker).await?;
    v110.push(docker, registry, "demo/app", &["v1.1.0", "v1", "latest"])
        .await?;
    println!(
        "
# v1.1.0 is published as v1.1.0, v1 and latest"
    );
    fleet(bin, state_dir, &["update", "--all", "--dry-run"])?;
    fleet(
        bin,
        state_dir,
        &["update", "--group", "demo", "--parallel", "3"],
    )?;

    let broken = TestImage::new("2.0.0")
        .behaviour(Behaviour::NeverHealthy)
        .build(docker)
        .await?;
    broken
        .push(docker, registry, "demo/app", &["v2.0.0"])
        .await?;
    println!(
        "
# v2.0.0 never becomes healthy: tried, and rolled back automatically"
    );
    let args = ["update", "alice", "--to", "v2.0.0"];
    println!(
        "
$ fleet {}",
        args.join(" ")
    );
    let output = fleet_output(bin, state_dir, &args)?;
    print!("{}", String::from_utf8_lossy(&output.stdout));
    eprint!("{}", String::from_utf8_lossy(&output.stderr));
    if output.status.code() != Some(1) {
        bail!(
            "the broken update should have been rolled back (exit 1), not {}",
            output.status
        );
    }

    fleet(bin, state_dir, &["rollback", "bob"])?;
    fleet(bin, state_dir, &["history", "alice"])?;
    let mut ok = 0;
    let mut failed = 0;
    for load in loads {
        let seen = load.stop().await;
        ok += seen.ok;
        failed += seen.failed;
    }
    println!(
        "
# requests during all of this: {ok} answered, {failed} failed"
    );
    if failed > 0 {
        bail!("{failed} requests failed during the updates");
    }
    Ok(())
}

/// Creates the customers' instances, lists and probes them, asks each who it is, and with
/// `keep`, waits for Ctrl-C. Returns their host ports.
async fn show(
    bin: &Path,
    state_dir: &Path,
    reference: &str,
    keep: bool,
) -> anyhow::Result<Vec<u16>> {
    for customer in CUSTOMERS {
        fleet(
            bin,
            state_dir,
            &[
                "create",
                customer,
                "--image",
                reference,
                "--port",
                "8080",
                "--health-path",
                "/api/health",
                // A version that never becomes healthy is given up in seconds.
                "--health-start-period",
                "3s",
                "--health-deadline",
                "15s",
                "--group",
                "demo",
            ],
        )?;
    }
    fleet(bin, state_dir, &["ls"])?;
    fleet(bin, state_dir, &["status"])?;

    let listed: serde_json::Value =
        serde_json::from_str(&fleet_quiet(bin, state_dir, &["ls", "--json"])?)?;
    println!();
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()?;
    let mut ports = Vec::new();
    for instance in listed.as_array().context("ls --json is an array")? {
        let port = &instance["ports"][0]["host"];
        ports.push(
            port.as_u64()
                .and_then(|p| u16::try_from(p).ok())
                .context("ls --json shows no host port")?,
        );
        let url = format!("http://127.0.0.1:{port}/");
        let answer: serde_json::Value = client.get(&url).send().await?.json().await?;
        println!(
            "GET {url} -> instance {} version {} (hits {})",
            answer["instance"], answer["version"], answer["hits"]
        );
    }

    if keep {
        eprintln!(
            "\ndemo: the fleet is running; `FLEET_STATE_DIR={} {} ls` shows it. Press Ctrl-C \
             to remove it",
            state_dir.display(),
            bin.display()
        );
        tokio::signal::ctrl_c().await?;
    }
    Ok(ports)
}

/// Removes every instance the fleet has now, with its data. The operator may have removed
/// some while the demo ran (`--keep`): those are not an error; neither is one removed
/// between the listing and its `fleet rm`.
fn teardown(bin: &Path, state_dir: &Path) -> anyhow::Result<()> {
    let mut failures = Vec::new();
    for name in instance_names(bin, state_dir)? {
        let args = ["rm", name.as_str(), "--purge-data", "--yes"];
        println!("\n$ fleet {}", args.join(" "));
        let output = fleet_output(bin, state_dir, &args)?;
        if output.status.success() {
            print!("{}", String::from_utf8_lossy(&output.stdout));
            eprint!("{}", String::from_utf8_lossy(&output.stderr));
        } else if instance_names(bin, state_dir)?.contains(&name) {
            eprint!("{}", String::from_utf8_lossy(&output.stderr));
            failures.push(format!(
                "`fleet {}` failed ({})",
                args.join(" "),
                output.status
            ));
        } else {
            println!("{name} is already gone");
        }
    }
    if !failures.is_empty() {
        bail!("the teardown failed: {}", failures.join("; "));
    }
    Ok(())
}
