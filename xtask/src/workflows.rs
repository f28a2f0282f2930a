//! The tool that checks `.github/workflows/*.yml` (`xtask/tests/workflows.rs`):
//! `check-jsonschema`, from PyPI, which validates each file against the GitHub workflow
//! schema it vendors (`--builtin-schema vendor.github-workflows`), offline.
//!
//! actionlint would check more (expressions, shell scripts), but it is a Go program,
//! and its PyPI wrapper downloads the binary from GitHub when it is installed.

use std::path::{Path, PathBuf};

use anyhow::bail;

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
    crate::provision::pip_install(crate::provision::PipInstall {
        requirement: CHECK_JSONSCHEMA,
        needed_by: "the workflow test needs `check-jsonschema`",
        used_for: "the workflow test's checker",
        name: "check-jsonschema",
    })?;
    if find().is_none() {
        bail!(
            "`check-jsonschema` is still not found after installing it: add the directory \
             pip put it in to the PATH"
        );
    }
    Ok(())
}
