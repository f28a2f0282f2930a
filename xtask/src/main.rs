//! Project automation for fleet, run as `cargo xtask <task>`.
//!
//! - `test [ARGS...]`: provisions what the tests need (Debian's `docker-registry` and
//!   `skopeo`), checks that the Docker Engine answers, then runs
//!   `cargo test --workspace [ARGS...]`. (The test bed builds the static test app itself.)
//! - `demo [--keep]`: the main job on a fresh machine: a demo fleet on the local Docker
//!   Engine, built without pulling anything from the internet.
//! - `bench <name>`: runs the benchmark of one crate (`registry`, `health`, `backup`,
//!   `core`), which compares fleet against the tool a user would otherwise pick.
//!
//! xtask has no dependencies beyond `anyhow`: it shells out to `cargo`, `apt-get` and
//! `docker`, and prints what it does.

// This is a terminal program.
#![allow(clippy::print_stdout, clippy::print_stderr)]

mod provision;

use std::path::PathBuf;
use std::process::{Command, ExitCode};

use anyhow::{Context as _, bail};

const USAGE: &str = "usage: cargo xtask <task>

tasks:
  test [ARGS...]   provision docker-registry + skopeo, check Docker, run cargo test --workspace
  demo [--keep]    run a demo fleet on the local Docker Engine (no internet needed)
  bench <name>     run a benchmark: registry | health | backup | core";

fn main() -> ExitCode {
    match run() {
        Ok(code) => code,
        Err(e) => {
            eprintln!("xtask: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> anyhow::Result<ExitCode> {
    let mut args = std::env::args().skip(1);
    let task = args.next();
    let rest: Vec<String> = args.collect();
    match task.as_deref() {
        Some("test") => test(&rest),
        Some("demo") => demo(&rest),
        Some("bench") => bench(&rest),
        Some("-h" | "--help" | "help") => {
            println!("{USAGE}");
            Ok(ExitCode::SUCCESS)
        }
        _ => {
            eprintln!("{USAGE}");
            Ok(ExitCode::from(2))
        }
    }
}

fn workspace_root() -> PathBuf {
    let xtask_dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    xtask_dir.parent().map(PathBuf::from).unwrap_or(xtask_dir)
}

fn cargo() -> Command {
    let mut command = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    command.current_dir(workspace_root());
    command
}

/// Runs a command, echoing it, and fails unless it succeeds.
fn run_checked(command: &mut Command) -> anyhow::Result<()> {
    eprintln!("xtask: $ {}", describe(command));
    let status = command
        .status()
        .with_context(|| format!("cannot run {}", describe(command)))?;
    if !status.success() {
        bail!("`{}` failed ({status})", describe(command));
    }
    Ok(())
}

fn describe(command: &Command) -> String {
    std::iter::once(command.get_program())
        .chain(command.get_args())
        .map(|part| part.to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join(" ")
}

fn test(args: &[String]) -> anyhow::Result<ExitCode> {
    provision::ensure_packages(&[
        ("docker-registry", "docker-registry"),
        ("skopeo", "skopeo"),
        ("zstd", "zstd"),
    ])?;
    provision::ensure_docker()?;
    let status = cargo()
        .args(["test", "--workspace"])
        .args(args)
        .status()
        .context("cannot run cargo test")?;
    provision::prune_test_images();
    Ok(if status.success() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn demo(args: &[String]) -> anyhow::Result<ExitCode> {
    provision::ensure_packages(&[("docker-registry", "docker-registry")])?;
    provision::ensure_docker()?;
    run_checked(cargo().args(["build", "--quiet", "--package", "fleet-cli"]))?;
    let status = cargo()
        .args([
            "run",
            "--quiet",
            "--package",
            "fleet-tests",
            "--bin",
            "fleet-demo",
            "--",
        ])
        .args(args)
        .env("FLEET_BIN", workspace_root().join("target/debug/fleet"))
        .status()
        .context("cannot run the demo")?;
    Ok(if status.success() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn bench(args: &[String]) -> anyhow::Result<ExitCode> {
    const BENCHES: [&str; 4] = ["registry", "health", "backup", "core"];
    let Some(name) = args.first().filter(|name| BENCHES.contains(&name.as_str())) else {
        bail!("which benchmark? one of: {}", BENCHES.join(", "));
    };
    if name == "registry" || name == "core" {
        provision::ensure_packages(&[
            ("docker-registry", "docker-registry"),
            ("skopeo", "skopeo"),
        ])?;
        provision::ensure_docker()?;
    }
    let package = format!("fleet-{name}");
    let status = cargo()
        .args(["bench", "--package", &package, "--bench", name, "--"])
        .args(&args[1..])
        .status()
        .context("cannot run cargo bench")?;
    Ok(if status.success() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
