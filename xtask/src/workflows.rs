//! The tool that checks `.github/workflows/*.yml` (`xtask/tests/workflows.rs`):
//! `check-jsonschema`, from PyPI, which validates each file against the GitHub workflow
//! schema it vendors (`--builtin-schema vendor.github-workflows`), offline.
//!
//! actionlint would check more (expressions, shell scripts), but it is a Go program,
//! and its PyPI wrapper downloads the binary from GitHub when it is installed.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context as _, bail};

/// The version installed: the schema is vendored, so a newer one may judge the same
/// workflows differently; move it on purpose.
const CHECK_JSONSCHEMA: &str = "check-jsonschema==0.39.0";

/// Where `check-jsonschema` is: on the `PATH`, or in `~/.local/bin` (where
/// `pip install --user` puts it; the test looks there too).
fn find() -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let user_bin = std::env::var_os("HOME")
        .filter(|home| !home.is_empty())
        .map(|home| Path::new(&home).join(".local/bin"));
    std::env::split_paths(&path)
        .chain(user_bin)
        .map(|dir| dir.join("check-jsonschema"))
        .find(|candidate| candidate.is_file())
}

/// Installs `check-jsonschema` with `python3 -m pip install` when it is missing; where
/// the system Python refuses installs of its own (PEP 668), into the user's site
/// (`~/.local`) instead.
pub(crate) fn ensure_check_jsonschema() -> anyhow::Result<()> {
    if find().is_some() {
        return Ok(());
    }
    let pip = Command::new("python3")
        .args(["-m", "pip", "--version"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success());
    if !pip {
        bail!(
            "the workflow test needs `check-jsonschema`, and pip is missing to install it: \
             install python3 and pip (`apt-get install python3-pip`), then run \
             `python3 -m pip install '{CHECK_JSONSCHEMA}'`"
        );
    }
    eprintln!("xtask: installing {CHECK_JSONSCHEMA} from PyPI (the workflow test's checker; once)");
    let install = |extra: &[&str]| -> anyhow::Result<std::process::Output> {
        let mut command = Command::new("python3");
        command
            .args(["-m", "pip", "install", "--quiet"])
            .args(extra)
            .arg(CHECK_JSONSCHEMA);
        eprintln!("xtask: $ {}", crate::describe(&command));
        command
            .output()
            .with_context(|| format!("cannot run {}", crate::describe(&command)))
    };
    let mut output = install(&[])?;
    if !output.status.success()
        && String::from_utf8_lossy(&output.stderr).contains("externally-managed-environment")
    {
        output = install(&["--user", "--break-system-packages"])?;
    }
    if !output.status.success() {
        bail!(
            "cannot install check-jsonschema (`python3 -m pip install '{CHECK_JSONSCHEMA}'` \
             failed: {}); install it by hand and run `cargo xtask test` again",
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    if find().is_none() {
        bail!(
            "`check-jsonschema` is still not found after installing it: add the directory \
             pip put it in to the PATH"
        );
    }
    Ok(())
}
