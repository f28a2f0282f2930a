//! Building with cargo, and asking cargo where it put the binaries.
//!
//! Paths are never assembled from `<repo>/target`: `CARGO_TARGET_DIR`, `build.target-dir`
//! and `build.target` all move the binaries, so xtask reads the `executable` cargo reports
//! for each binary it builds (`--message-format=json-render-diagnostics`).

use std::collections::BTreeMap;
use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context as _, bail};

use crate::{cargo, describe};

/// A binary target to build: its package and its name.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Bin {
    pub(crate) package: &'static str,
    pub(crate) name: &'static str,
}

/// The workspace's target directory, as `cargo metadata` reports it (so wherever
/// `CARGO_TARGET_DIR` or `build.target-dir` puts it).
pub(crate) fn target_dir() -> anyhow::Result<PathBuf> {
    target_dir_of(&metadata(&crate::workspace_root())?)
}

/// The target directory named in `cargo metadata`'s answer.
pub(crate) fn target_dir_of(metadata: &serde_json::Value) -> anyhow::Result<PathBuf> {
    metadata["target_directory"]
        .as_str()
        .map(PathBuf::from)
        .context("cargo metadata names no target directory")
}

/// `cargo metadata --no-deps` of the workspace at `root` (the packages, the members,
/// the target directory), read without the network.
pub(crate) fn metadata(root: &Path) -> anyhow::Result<serde_json::Value> {
    let mut command = cargo();
    command.current_dir(root).args([
        "metadata",
        "--format-version",
        "1",
        "--no-deps",
        "--offline",
    ]);
    let output = command
        .output()
        .with_context(|| format!("cannot run {}", describe(&command)))?;
    if !output.status.success() {
        bail!(
            "`{}` failed in {} ({}): {}",
            describe(&command),
            root.display(),
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    serde_json::from_slice(&output.stdout).context("cargo metadata printed no JSON")
}

/// Builds `bins` in one cargo run, showing cargo's progress and diagnostics as a plain
/// `cargo build` would, and returns the path of each binary by name.
pub(crate) fn build_bins(bins: &[Bin]) -> anyhow::Result<BTreeMap<String, PathBuf>> {
    let mut command = build_command(bins);
    eprintln!("xtask: $ {}", describe(&command));
    // Cargo writes its progress and the rendered diagnostics to stderr (inherited, so the
    // user sees them) and one JSON message per line to stdout (read here).
    let mut child = command
        .stdout(Stdio::piped())
        .spawn()
        .with_context(|| format!("cannot run {}", describe(&command)))?;
    let stdout = child.stdout.take().context("cargo's stdout is not piped")?;
    let mut found = BTreeMap::new();
    for line in BufReader::new(stdout).lines() {
        let line = line.context("cannot read cargo's output")?;
        if let Some((name, path)) = executable(&line)? {
            found.insert(name, path);
        }
    }
    let status = child.wait().context("cannot wait for cargo")?;
    if !status.success() {
        bail!("`{}` failed ({status})", describe(&command));
    }
    for bin in bins {
        if !found.contains_key(bin.name) {
            bail!(
                "cargo built package {} but did not report where the binary {} is",
                bin.package,
                bin.name
            );
        }
    }
    Ok(found)
}

/// `cargo build` of `bins`, reporting artifacts as JSON on stdout. Never `--quiet`: the
/// first build takes minutes, and cargo's progress is how the user knows it runs.
fn build_command(bins: &[Bin]) -> Command {
    let mut command = cargo();
    command.args(["build", "--message-format=json-render-diagnostics"]);
    for bin in bins {
        command.args(["--package", bin.package, "--bin", bin.name]);
    }
    command
}

/// The binary a line of cargo's JSON output reports, as `(target name, path)`: only
/// `compiler-artifact` messages of a `bin` target (not of its test harness) with an
/// `executable` report one. Lines that are not JSON objects are skipped.
pub(crate) fn executable(line: &str) -> anyhow::Result<Option<(String, PathBuf)>> {
    if !line.starts_with('{') {
        return Ok(None);
    }
    let message: serde_json::Value = serde_json::from_str(line)
        .with_context(|| format!("cannot read cargo's JSON message {line}"))?;
    let is_bin = message["target"]["kind"]
        .as_array()
        .is_some_and(|kinds| kinds.iter().any(|kind| kind == "bin"));
    if message["reason"] != "compiler-artifact" || !is_bin || message["profile"]["test"] != false {
        return Ok(None);
    }
    let (Some(name), Some(path)) = (
        message["target"]["name"].as_str(),
        message["executable"].as_str(),
    ) else {
        return Ok(None);
    };
    Ok(Some((name.to_owned(), PathBuf::from(path))))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(line: &str) -> String {
        match executable(line) {
            Ok(Some((name, path))) => format!("{name} at {}", path.display()),
            Ok(None) => "-".to_owned(),
            Err(e) => format!("error: {e:#}"),
        }
    }

    // Shortened from real `cargo build --message-format=json-render-diagnostics` output
    // with CARGO_TARGET_DIR=/tmp/fleet-tgt.
    const FLEET_BIN: &str = r#"{"reason":"compiler-artifact","package_id":"path+file:///work/main/crates/fleet-cli#fleet-cli@0.1.0","manifest_path":"/work/main/crates/fleet-cli/Cargo.toml","target":{"kind":["bin"],"crate_types":["bin"],"name":"fleet","src_path":"/work/main/crates/fleet-cli/src/main.rs","edition":"2024","doc":true,"doctest":false,"test":true},"profile":{"opt_level":"0","debuginfo":1,"debug_assertions":true,"overflow_checks":true,"test":false},"features":[],"filenames":["/tmp/fleet-tgt/debug/fleet"],"executable":"/tmp/fleet-tgt/debug/fleet","fresh":false}"#;
    const LIBRARY: &str = r#"{"reason":"compiler-artifact","package_id":"registry+https://github.com/rust-lang/crates.io-index#anyhow@1.0.100","manifest_path":"/root/.cargo/registry/src/anyhow-1.0.100/Cargo.toml","target":{"kind":["lib"],"crate_types":["lib"],"name":"anyhow","src_path":"/root/.cargo/registry/src/anyhow-1.0.100/src/lib.rs","edition":"2018","doc":true,"doctest":true,"test":true},"profile":{"opt_level":"2","debuginfo":0,"debug_assertions":true,"overflow_checks":true,"test":false},"features":["default","std"],"filenames":["/tmp/fleet-tgt/debug/deps/libanyhow-0b6f.rlib","/tmp/fleet-tgt/debug/deps/libanyhow-0b6f.rmeta"],"executable":null,"fresh":true}"#;
    const TEST_HARNESS: &str = r#"{"reason":"compiler-artifact","package_id":"path+file:///work/main/crates/fleet-cli#fleet-cli@0.1.0","manifest_path":"/work/main/crates/fleet-cli/Cargo.toml","target":{"kind":["bin"],"crate_types":["bin"],"name":"fleet","src_path":"/work/main/crates/fleet-cli/src/main.rs","edition":"2024","doc":true,"doctest":false,"test":true},"profile":{"opt_level":"0","debuginfo":1,"debug_assertions":true,"overflow_checks":true,"test":true},"features":[],"filenames":["/tmp/fleet-tgt/debug/deps/fleet-5c1d"],"executable":"/tmp/fleet-tgt/debug/deps/fleet-5c1d","fresh":true}"#;
    const FINISHED: &str = r#"{"reason":"build-finished","success":true}"#;

    #[test]
    fn the_executable_is_the_path_cargo_reports_wherever_the_target_dir_is() {
        // Regression (issue 14, item 13): the demo ran `<repo>/target/debug/fleet`, which
        // does not exist when CARGO_TARGET_DIR or build.target-dir is set.
        assert_eq!(check(FLEET_BIN), "fleet at /tmp/fleet-tgt/debug/fleet");
    }

    #[test]
    fn builds_the_user_waits_for_show_cargos_progress() {
        // Regression (issue 14, item 15): the first build ran with `--quiet` and showed
        // nothing for ten minutes.
        let command = build_command(&[Bin {
            package: "fleet-cli",
            name: "fleet",
        }]);
        let quiet = command
            .get_args()
            .any(|arg| arg == "--quiet" || arg == "-q");
        assert!(!quiet, "{}", crate::describe(&command));
        let config = std::fs::read_to_string(crate::workspace_root().join(".cargo/config.toml"))
            .expect(".cargo/config.toml is readable");
        let alias = config
            .lines()
            .find(|line| line.starts_with("xtask ="))
            .expect("the xtask alias");
        assert_eq!(
            alias,
            r#"xtask = "run --package xtask --no-default-features --""#
        );
    }

    #[test]
    fn messages_without_an_executable_report_none() {
        assert_eq!(check(LIBRARY), "-");
        assert_eq!(check(TEST_HARNESS), "-");
        assert_eq!(check(FINISHED), "-");
        assert_eq!(check(""), "-");
        assert_eq!(check("warning: some build script noise"), "-");
    }

    #[test]
    fn a_broken_json_message_is_an_error_quoting_it() {
        assert_eq!(
            check(r#"{"reason":"compiler-artifact""#),
            "error: cannot read cargo's JSON message {\"reason\":\"compiler-artifact\": \
             EOF while parsing an object at line 1 column 29"
        );
    }
}
