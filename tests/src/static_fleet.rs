//! A static `fleet` (glibc linked in with `+crt-static`), for tests that run fleet itself
//! in a `FROM scratch` image (`crates/fleet-cli/tests/container.rs`).
//!
//! It is built into `<target dir>/static-fleet`, a target directory of its own (the static
//! flag would rebuild every dependency of the everyday build), with dependencies
//! unoptimised and no debug info: the cheapest build that runs. `cargo xtask test` starts
//! this build (the `fleet-static-build` binary) beside the other tests, so the test that
//! needs it waits for cargo's lock on that directory and finds it done.

use std::path::PathBuf;
use std::process::Command;

use anyhow::{Context as _, bail};

// The user's rustflags and `+crt-static`, as the test app's build has them.
use crate::testapp::{static_rustflags, target_dir};

/// The target the static binary is built for.
pub const TARGET: &str = "x86_64-unknown-linux-gnu";

/// Builds the static `fleet` (or finds it up to date) and returns its path.
pub fn build() -> anyhow::Result<PathBuf> {
    let dir = target_dir()?.join("static-fleet");
    #[allow(clippy::print_stderr)] // A build the user waits for says what it is.
    {
        eprintln!("test bed: building a static fleet into {}", dir.display());
    }
    let status = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
        .current_dir(crate::workspace_root())
        .args(["build", "--package", "fleet-cli", "--bin", "fleet"])
        .args(["--target", TARGET])
        .arg("--target-dir")
        .arg(&dir)
        // Unoptimised, without debug info and stripped: the cheapest build that runs.
        .args(["--config", "profile.dev.package.\"*\".opt-level=0"])
        .args(["--config", "profile.dev.debug=false"])
        .args(["--config", "profile.dev.strip=true"])
        .env_remove("RUSTFLAGS")
        .env("CARGO_ENCODED_RUSTFLAGS", static_rustflags())
        .status()
        .context("cannot run cargo to build a static fleet")?;
    if !status.success() {
        bail!("the static build of fleet failed ({status}); see cargo's output above");
    }
    Ok(dir.join(TARGET).join("debug/fleet"))
}
