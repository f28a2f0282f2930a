//! The test app's static binary (`tests/testapp`), built once per test process.

use std::path::PathBuf;
use std::process::Command;
use std::sync::Mutex;

use anyhow::{Context as _, bail};

/// The target triple the test app is built for (static glibc, no base image needed).
pub const TARGET: &str = "x86_64-unknown-linux-gnu";

static BINARY: Mutex<Option<PathBuf>> = Mutex::new(None);

/// The path of the static test app binary, building it on first use.
///
/// `FLEET_TESTAPP_BIN` overrides the path (`cargo xtask test` builds it once up front).
/// Otherwise `cargo build --release -p fleet-testapp` runs with `+crt-static` into its own
/// target directory (`target/testapp`), so the flags never invalidate the main build.
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

/// The command that builds the static test app; `cargo xtask test` runs the same one.
pub fn build_command() -> Command {
    let root = crate::workspace_root();
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut command = Command::new(cargo);
    command
        .current_dir(&root)
        .args([
            "build",
            "--quiet",
            "--release",
            "--package",
            "fleet-testapp",
            "--target",
            TARGET,
        ])
        .arg("--target-dir")
        .arg(root.join("target/testapp"))
        .env(
            "CARGO_TARGET_X86_64_UNKNOWN_LINUX_GNU_RUSTFLAGS",
            "-C target-feature=+crt-static",
        )
        .env("CARGO_PROFILE_RELEASE_STRIP", "true");
    command
}

/// Where [`build_command`] leaves the binary.
pub fn built_path() -> PathBuf {
    crate::workspace_root()
        .join("target/testapp")
        .join(TARGET)
        .join("release/fleet-testapp")
}

fn build() -> anyhow::Result<PathBuf> {
    let status = build_command()
        .status()
        .context("cannot run cargo to build the test app")?;
    if !status.success() {
        bail!("building the static test app failed ({status}); see the cargo output above");
    }
    Ok(built_path())
}
