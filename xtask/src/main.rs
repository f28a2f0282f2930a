//! Project automation for fleet, run as `cargo xtask <task>`.
//!
//! - `test [ARGS...]`: provisions what the tests need (Debian's `docker-registry`,
//!   `skopeo` and `zstd`; moto's S3 server from PyPI; `cargo-machete` from crates.io;
//!   Debian's arm64 BusyBox for the image builder's test), checks that no package declares
//!   a dependency it does not use (`unused_deps.rs`), that every library crate packages
//!   and builds from its package (`package.rs`) and that the Docker Engine answers, then
//!   runs `cargo test --workspace [ARGS...]` and removes the test app images the run
//!   built. (The test bed builds the static test app itself.)
//! - `demo [--keep]`: the main job on a fresh machine: a demo fleet on the local Docker
//!   Engine, built without pulling anything from the internet.
//! - `bench <name>`: runs the benchmark of one crate (`registry`, `health`, `backup`,
//!   `core`, `proxy`, `update`), which compares fleet against the tool a user would otherwise pick;
//!   `backup` also runs fleet-cli's `instance_backup` (`fleet backup` of a running
//!   instance under load); `update` runs fleet-cli's `update` (blue-green through
//!   `fleet serve` against recreate under load, and 20 instances four at a time).
//! - `man`: writes the man pages in `docs/man/` from fleet's clap definition (fleet-cli's
//!   test that checks them writes them when `FLEET_UPDATE_MAN` is set).
//! - `release`: releases fleet (`release/`, docs/releasing.md): versions, changelog,
//!   commit and tag, images (buildx, or the daemonless builder on fleet-registry), crates.
//!
//! xtask shells out to `cargo` (`cargo install` too), `git`, `apt-get` and `docker`, and
//! prints what it does. Builds show cargo's own progress; binaries are found where cargo
//! says it put them, so `CARGO_TARGET_DIR` and `build.target-dir` work. Errors are one
//! line: `xtask: error: ` and the chain of causes.

// This is a terminal program.
#![allow(clippy::print_stdout, clippy::print_stderr)]

mod artifacts;
mod package;
mod provision;
#[cfg(test)]
mod readme;
#[cfg(feature = "release")]
mod release;
mod unused_deps;
mod workflows;

use std::os::unix::process::CommandExt as _;
use std::path::PathBuf;
use std::process::{Command, ExitCode};

use anyhow::{Context as _, bail};

const USAGE: &str = "usage: cargo xtask <task>

tasks:
  test [ARGS...]   provision docker-registry + skopeo, check for unused dependencies and
                   Docker, run cargo test --workspace
  demo [--keep]    run a demo fleet on the local Docker Engine (no internet needed)
  bench <name>     run a benchmark: registry | health | backup | core | proxy | update
  man              write the man pages in docs/man/ from fleet's command line
  release [...]    release fleet: versions, changelog, tag, images, crates
                   (cargo xtask release --help)";

fn main() -> ExitCode {
    match run() {
        Ok(code) => code,
        Err(e) => {
            eprintln!("{}", error_line(&e));
            ExitCode::FAILURE
        }
    }
}

/// The one line an error prints: `xtask: error: ` and the whole chain of causes, never
/// `Error: ...` with a backtrace (which `{:?}`, and so returning an error from `main`,
/// would print whenever `RUST_BACKTRACE` is set).
fn error_line(error: &anyhow::Error) -> String {
    format!("xtask: error: {error:#}")
}

fn run() -> anyhow::Result<ExitCode> {
    let mut args = std::env::args().skip(1);
    let task = args.next();
    let rest: Vec<String> = args.collect();
    match task.as_deref() {
        Some("test") => test(&rest),
        Some("demo") => demo(&rest),
        Some("bench") => bench(&rest),
        Some("man") => man(),
        Some("release") => release(&rest),
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

/// `cargo xtask release`: the release module, or (in the `cargo xtask` build, which leaves
/// it out) xtask built with it, in this process's place.
fn release(args: &[String]) -> anyhow::Result<ExitCode> {
    #[cfg(feature = "release")]
    {
        release::run(args)
    }
    #[cfg(not(feature = "release"))]
    {
        let mut command = cargo();
        command
            // Not --quiet: the first build with the feature takes minutes, shown by cargo.
            .args(["run", "--package", "xtask", "--features", "release", "--"])
            .arg("release")
            .args(args);
        let error = command.exec();
        Err(error).with_context(|| format!("cannot run {}", describe(&command)))
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
        ("docker-compose", "docker-compose"),
    ])?;
    provision::ensure_moto_server()?;
    // The GitHub workflow schema check of xtask/tests/workflows.rs.
    workflows::ensure_check_jsonschema()?;
    // The arm64 payload of the release image builder's test.
    provision::ensure_arm64_busybox()?;
    // First: it takes seconds, and an unused dependency fails the run whatever the tests say.
    unused_deps::check()?;
    provision::ensure_docker()?;
    // Every test process removes the test app images it built when it exits; the run's
    // label also lets the images of a process killed mid-run go at the end.
    let run = provision::test_image_run();
    let test_command = || {
        let mut command = cargo();
        command
            // Every test binary runs even when one fails: one run shows every failure.
            .args(["test", "--workspace", "--no-fail-fast"])
            .args(args)
            .env(provision::TESTAPP_RUN_ENV, &run);
        command
    };
    // The test binaries first: then two builds that need no test result go on beside the
    // tests, which mostly wait on containers, at a lower priority.
    let mut compile = test_command();
    compile.arg("--no-run");
    run_checked(&mut compile)?;
    let beside = std::thread::spawn(builds_beside_the_tests);
    let mut command = test_command();
    eprintln!("xtask: $ {}", describe(&command));
    let status = command.status().context("cannot run cargo test")?;
    provision::remove_test_images(&run);
    let beside = beside
        .join()
        .unwrap_or_else(|_| Err(anyhow::anyhow!("the builds beside the tests panicked")));
    if let Err(error) = &beside {
        eprintln!("{}", error_line(error));
    }
    Ok(if status.success() && beside.is_ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// What `cargo xtask test` builds while the tests run (each in a target directory of its
/// own, so neither waits on the tests' cargo nor they on it):
/// - the static `fleet` of the container test (`fleet-static-build`, from the test bed;
///   the test waits for it on cargo's lock and finds it built);
/// - every library crate packaged and built from its package alone, so a crate that could
///   not be published fails the run the day it breaks (`package.rs`).
fn builds_beside_the_tests() -> anyhow::Result<()> {
    let target = artifacts::target_dir()?;
    let static_build = target.join("debug/fleet-static-build");
    let built = run_checked(
        Command::new("nice")
            .args(["-n", "10"])
            .arg(&static_build)
            .current_dir(workspace_root())
            .stdout(std::process::Stdio::null()),
    );
    let packaged = package::check(true);
    built.context("the static fleet of the container test")?;
    packaged
}

fn demo(args: &[String]) -> anyhow::Result<ExitCode> {
    provision::ensure_packages(&[("docker-registry", "docker-registry")])?;
    provision::ensure_docker()?;
    let bins = artifacts::build_bins(&[
        artifacts::Bin {
            package: "fleet-cli",
            name: "fleet",
        },
        artifacts::Bin {
            package: "fleet-tests",
            name: "fleet-demo",
        },
    ])?;
    let mut command = Command::new(&bins["fleet-demo"]);
    command
        .args(args)
        .env("FLEET_BIN", &bins["fleet"])
        .current_dir(workspace_root());
    eprintln!("xtask: $ {}", describe(&command));
    // The demo takes xtask's place, so that Ctrl-C (which ends `--keep`) reaches the demo
    // alone and the shell waits for its teardown.
    let error = command.exec();
    Err(error).with_context(|| format!("cannot run {}", describe(&command)))
}

/// Regenerates `docs/man/`: fleet-cli's man page test renders the pages from the clap
/// definition (which only fleet-cli sees) and, told so, writes them instead of comparing.
fn man() -> anyhow::Result<ExitCode> {
    run_checked(
        cargo()
            .args([
                "test",
                "--package",
                "fleet-cli",
                "--bin",
                "fleet",
                "--",
                "--exact",
            ])
            .arg("man::the_man_pages_in_docs_man_are_up_to_date")
            .env("FLEET_UPDATE_MAN", "1"),
    )?;
    eprintln!(
        "xtask: wrote {}",
        workspace_root().join("docs/man").display()
    );
    Ok(ExitCode::SUCCESS)
}

fn bench(args: &[String]) -> anyhow::Result<ExitCode> {
    const BENCHES: [&str; 6] = ["registry", "health", "backup", "core", "proxy", "update"];
    let Some(name) = args.first().filter(|name| BENCHES.contains(&name.as_str())) else {
        bail!("which benchmark? one of: {}", BENCHES.join(", "));
    };
    if name == "registry" || name == "core" || name == "backup" || name == "update" {
        provision::ensure_packages(&[
            ("docker-registry", "docker-registry"),
            ("skopeo", "skopeo"),
            // The backup benchmarks compare with `tar -I 'zstd -T0 -3'`.
            ("zstd", "zstd"),
        ])?;
        provision::ensure_docker()?;
    }
    // Each crate's own benchmark; `backup` also backs up a running instance under load
    // through the `fleet` binary (which only a benchmark of fleet-cli can run).
    let mut benches = vec![(format!("fleet-{name}"), name.as_str())];
    if name == "backup" {
        benches.push(("fleet-cli".to_owned(), "instance_backup"));
    }
    // Updates are measured through the `fleet` binary and `fleet serve`.
    if name == "update" {
        benches = vec![("fleet-cli".to_owned(), "update")];
    }
    for (package, bench) in &benches {
        let mut command = cargo();
        command
            .args(["bench", "--package", package, "--bench", bench, "--"])
            .args(&args[1..]);
        eprintln!("xtask: $ {}", describe(&command));
        let status = command.status().context("cannot run cargo bench")?;
        if !status.success() {
            return Ok(ExitCode::FAILURE);
        }
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_error_is_one_line_with_its_causes_and_no_backtrace() {
        // Regression (issue 14, item 14): errors printed `Error: ...`, then a backtrace
        // when RUST_BACKTRACE was set.
        let error = Err::<(), _>(std::io::Error::from(std::io::ErrorKind::NotFound))
            .context("cannot run /tmp/fleet-tgt/debug/fleet")
            .context("the demo failed")
            .unwrap_err();
        assert_eq!(
            error_line(&error),
            "xtask: error: the demo failed: cannot run /tmp/fleet-tgt/debug/fleet: entity not found"
        );
    }
}
