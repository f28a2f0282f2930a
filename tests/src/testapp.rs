//! The test app's static binary (`tests/testapp`), built once per test process.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

use anyhow::{Context as _, bail};

/// The target triple the test app is built for (static glibc, no base image needed).
pub const TARGET: &str = "x86_64-unknown-linux-gnu";

static BINARY: Mutex<Option<PathBuf>> = Mutex::new(None);

/// The path of the static test app binary, building it on first use.
///
/// `FLEET_TESTAPP_BIN` overrides the path. Otherwise `cargo build --release -p
/// fleet-testapp` runs with `+crt-static` into a target directory of its own,
/// `<target dir>/testapp` (so the flags never invalidate the main build), where the target
/// directory is the one cargo reports: `CARGO_TARGET_DIR` and `build.target-dir` are
/// honoured. Cargo's progress shows on stderr, as the first build takes a while.
pub fn binary() -> anyhow::Result<PathBuf> {
    let mut cached = BINARY.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(path) = cached.as_ref() {
        return Ok(path.clone());
    }
    let path = match std::env::var_os("FLEET_TESTAPP_BIN") {
        Some(path) => PathBuf::from(path),
        None => build()?,
    };
    if !path.is_file() {
        bail!("the test app binary {} does not exist", path.display());
    }
    *cached = Some(path.clone());
    Ok(path)
}

fn cargo() -> Command {
    let mut command = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    command.current_dir(crate::workspace_root());
    command
}

/// The workspace's target directory, as `cargo metadata` reports it (so wherever
/// `CARGO_TARGET_DIR` or `build.target-dir` puts it), rather than `<workspace>/target`.
pub fn target_dir() -> anyhow::Result<PathBuf> {
    let output = cargo()
        .args([
            "metadata",
            "--format-version",
            "1",
            "--no-deps",
            "--offline",
        ])
        .output()
        .context("cannot run cargo metadata")?;
    if !output.status.success() {
        bail!(
            "cargo metadata failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    let metadata: serde_json::Value =
        serde_json::from_slice(&output.stdout).context("cannot read cargo metadata's output")?;
    let dir = metadata["target_directory"]
        .as_str()
        .context("cargo metadata reports no target_directory")?;
    Ok(PathBuf::from(dir))
}

/// Where the test app's build keeps its own target directory: `<target dir>/testapp`.
pub fn testapp_target_dir(target_dir: &Path) -> PathBuf {
    target_dir.join("testapp")
}

/// The command that builds the static test app into `testapp_target_dir`.
fn build_command(testapp_target_dir: &Path) -> Command {
    let mut command = cargo();
    command
        .args([
            "build",
            "--release",
            "--package",
            "fleet-testapp",
            "--target",
            TARGET,
        ])
        .arg("--target-dir")
        .arg(testapp_target_dir)
        .env_remove("RUSTFLAGS")
        .env("CARGO_ENCODED_RUSTFLAGS", static_rustflags())
        .env("CARGO_PROFILE_RELEASE_STRIP", "true");
    command
}

/// The rustflags of the test app build, encoded as `CARGO_ENCODED_RUSTFLAGS`: the user's
/// own (`CARGO_ENCODED_RUSTFLAGS` or `RUSTFLAGS`) and `+crt-static`. Cargo takes the first
/// of those variables and ignores `target.<triple>.rustflags` when either is set, so with
/// `RUSTFLAGS=-D warnings` (as CI sets) a target rustflag would be dropped and the binary
/// would not be static: a `FROM scratch` image cannot run it.
pub(crate) fn static_rustflags() -> String {
    let mut flags: Vec<String> = match std::env::var("CARGO_ENCODED_RUSTFLAGS") {
        Ok(encoded) if !encoded.is_empty() => encoded.split('\x1f').map(str::to_owned).collect(),
        _ => std::env::var("RUSTFLAGS")
            .unwrap_or_default()
            .split_whitespace()
            .map(str::to_owned)
            .collect(),
    };
    flags.extend(["-C".to_owned(), "target-feature=+crt-static".to_owned()]);
    flags.join("\x1f")
}

fn build() -> anyhow::Result<PathBuf> {
    let dir = testapp_target_dir(&target_dir()?);
    #[allow(clippy::print_stderr)] // A build the user waits for says what it is.
    {
        eprintln!(
            "test bed: building the static test app into {}",
            dir.display()
        );
    }
    let status = build_command(&dir)
        .status()
        .context("cannot run cargo to build the test app")?;
    if !status.success() {
        bail!("building the static test app failed ({status}); see the cargo output above");
    }
    Ok(dir.join(TARGET).join("release/fleet-testapp"))
}
