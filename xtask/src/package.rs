//! The packaging check of `cargo xtask test` (and of CI): every library crate packages for
//! crates.io and builds from its packaged sources alone, so a crate that could not be
//! published is caught the day it breaks, not on release day.
//!
//! It runs `cargo package --workspace` with verification, leaving out the members that
//! are never published (`publish = false`: xtask, the test bed, the test app), which
//! `cargo metadata` names. `--allow-dirty`: the check runs on work trees with changes
//! (that is when it is useful); a release publishes from a clean tree, where
//! `cargo publish` refuses a dirty one itself.
//!
//! The verification builds go to `<target>/package-check`, a target directory of its
//! own kept between runs (cargo would otherwise build each packaged crate under
//! `target/package/`, which it deletes on the next run), unoptimised and without debug
//! info (`VERIFY_PROFILE`): each packaged crate resolves its dependencies' features by
//! itself, not as the workspace unifies them, so the workspace's build could not be
//! reused anyway (measured: reusing its profile rebuilt most dependencies at opt-level
//! 2, 6.9 min cold; this profile builds them all in about 3.5 min cold, and only the
//! fleet crates on later runs). `cargo xtask test` runs it beside the tests, at a lower
//! priority. The fleet crates themselves are built from their packages every run: cargo
//! unpacks them afresh (and so must the local registry through which the packaged crates
//! see each other, see [`remove_unpacked_packages`] and [`forget_packaged_builds`]).

use std::io::{BufRead as _, BufReader, IsTerminal as _};
use std::path::Path;
use std::process::Stdio;
use std::time::Instant;

use anyhow::{Context as _, bail};

use crate::{cargo, describe};

/// The profile of the verification builds: unoptimised and without debug info, the
/// cheapest build that proves a crate compiles from its package. They go to a target
/// directory of their own (`<target>/package-check`, kept between runs): their features
/// are resolved per packaged crate, not as the workspace unifies them, so they could not
/// reuse the workspace's build anyway.
const VERIFY_PROFILE: [&str; 3] = [
    "profile.dev.debug=false",
    r#"profile.dev.package."*".debug=false"#,
    r#"profile.dev.package."*".opt-level=0"#,
];

/// Fails, after cargo's own messages, when a library crate cannot be packaged or does not
/// build from its package; the error names the crate. With `nice`, cargo runs at a lower
/// priority (`cargo xtask test` runs this beside the tests).
pub(crate) fn check(nice: bool) -> anyhow::Result<()> {
    let started = Instant::now();
    let metadata = crate::artifacts::metadata(&crate::workspace_root())?;
    remove_unpacked_packages(&metadata)?;
    let target = crate::artifacts::target_dir_of(&metadata)?.join("package-check");
    forget_packaged_builds(&target, &metadata)?;
    let mut command = if nice {
        let mut command = std::process::Command::new("nice");
        command
            .args(["-n", "10"])
            .arg(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
            .current_dir(crate::workspace_root());
        command
    } else {
        cargo()
    };
    command.args(["package", "--workspace", "--allow-dirty"]);
    for name in unpublished_members(&metadata) {
        command.args(["--exclude", &name]);
    }
    for value in VERIFY_PROFILE {
        command.args(["--config", value]);
    }
    command.env("CARGO_TARGET_DIR", &target);
    if std::io::stderr().is_terminal() {
        command.arg("--color=always");
    }
    eprintln!("xtask: $ {}", describe(&command));
    let mut child = command
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("cannot run {}", describe(&command)))?;
    // cargo's messages go on to the terminal as they come; the last crate it named is
    // the one an error is about.
    let mut current: Option<String> = None;
    if let Some(stderr) = child.stderr.take() {
        for line in BufReader::new(stderr).lines() {
            let line = line.context("cannot read cargo's messages")?;
            eprintln!("{line}");
            if let Some(name) = crate_named(&line) {
                current = Some(name);
            }
        }
    }
    let status = child
        .wait()
        .with_context(|| format!("cannot run {}", describe(&command)))?;
    if !status.success() {
        match current {
            Some(name) => bail!(
                "{name} cannot be published: `cargo package` failed on it (cargo's messages \
                 above say why)"
            ),
            None => bail!("`{}` failed ({status})", describe(&command)),
        }
    }
    eprintln!(
        "xtask: every library crate packages and builds from its package ({:.1} s)",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Removes the copies of the workspace's packages that an earlier run unpacked into
/// cargo's source cache. `cargo package --workspace` serves the packaged crates to each
/// other from a local registry, whose crates cargo unpacks into
/// `$CARGO_HOME/registry/src/-HASH/NAME-VERSION` once and reuses while the version does
/// not change: without this, fleet-cli would be verified against the fleet-core of the
/// first run.
fn remove_unpacked_packages(metadata: &serde_json::Value) -> anyhow::Result<()> {
    let cargo_home = match std::env::var_os("CARGO_HOME") {
        Some(home) => std::path::PathBuf::from(home),
        None => match std::env::var_os("HOME") {
            Some(home) => Path::new(&home).join(".cargo"),
            None => return Ok(()),
        },
    };
    let Ok(sources) = std::fs::read_dir(cargo_home.join("registry/src")) else {
        return Ok(());
    };
    let packages: Vec<String> = metadata["packages"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|package| {
            Some(format!(
                "{}-{}",
                package["name"].as_str()?,
                package["version"].as_str()?
            ))
        })
        .collect();
    // The local registry has no host name: its directory is `-HASH`; crates.io's is
    // `index.crates.io-HASH` and is left alone.
    for source in sources.flatten() {
        if !source.file_name().to_string_lossy().starts_with('-') {
            continue;
        }
        for package in &packages {
            let unpacked = source.path().join(package);
            if unpacked.is_dir() {
                std::fs::remove_dir_all(&unpacked)
                    .with_context(|| format!("cannot remove {}", unpacked.display()))?;
            }
        }
    }
    Ok(())
}

/// Makes cargo rebuild the workspace crates that an earlier verification built as
/// registry crates (fleet-core, as fleet-cli's dependency, comes from the local registry
/// above). Cargo never checks a registry crate's sources for changes, only its version,
/// so in a shared target directory fleet-cli would be verified against an old fleet-core.
/// Their fingerprints are the ones of a workspace crate's name whose dependency file
/// lists no source file (a path crate's lists every one); removing one forces that one
/// build again and leaves the workspace's own builds alone.
fn forget_packaged_builds(target: &Path, metadata: &serde_json::Value) -> anyhow::Result<()> {
    let names: Vec<&str> = metadata["packages"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|package| package["name"].as_str())
        .collect();
    let Ok(fingerprints) = std::fs::read_dir(target.join("debug/.fingerprint")) else {
        return Ok(());
    };
    for fingerprint in fingerprints.flatten() {
        let dir_name = fingerprint.file_name().to_string_lossy().into_owned();
        let Some((name, _hash)) = dir_name.rsplit_once('-') else {
            continue;
        };
        if !names.contains(&name) {
            continue;
        }
        let dep_info = fingerprint
            .path()
            .join(format!("dep-lib-{}", name.replace('-', "_")));
        let Ok(contents) = std::fs::read(&dep_info) else {
            continue;
        };
        let lists_sources = contents.windows(3).any(|window| window == b".rs");
        if !lists_sources {
            std::fs::remove_dir_all(fingerprint.path())
                .with_context(|| format!("cannot remove {}", fingerprint.path().display()))?;
        }
    }
    Ok(())
}

/// The workspace members with `publish = false` (`"publish": []` in cargo metadata).
fn unpublished_members(metadata: &serde_json::Value) -> Vec<String> {
    metadata["packages"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|package| package["publish"].as_array().is_some_and(Vec::is_empty))
        .filter_map(|package| package["name"].as_str())
        .map(str::to_owned)
        .collect()
}

/// The crate a status line of `cargo package` is about: `Packaging NAME vX (path)` and
/// `Verifying NAME vX (path)`, colours removed.
fn crate_named(line: &str) -> Option<String> {
    let plain = strip_ansi(line);
    let mut words = plain.split_whitespace();
    match words.next()? {
        "Packaging" | "Verifying" => {
            let name = words.next()?;
            let version = words.next().unwrap_or_default();
            Some(format!("{name} {version}").trim_end().to_owned())
        }
        _ => None,
    }
}

/// `text` without the ANSI escape sequences `--color=always` adds.
fn strip_ansi(text: &str) -> String {
    let mut plain = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            // ESC [ parameters final-byte: skip up to the final byte (a letter).
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            plain.push(c);
        }
    }
    plain
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check_line(line: &str) -> String {
        crate_named(line).unwrap_or_else(|| "-".to_owned())
    }

    #[test]
    fn the_crate_an_error_is_about_is_the_last_one_cargo_named() {
        let cases = [
            (
                "   Packaging fleet-core v0.1.0 (/w/crates/fleet-core)",
                "fleet-core v0.1.0",
            ),
            (
                "   Verifying fleet-cli v0.1.0 (/w/crates/fleet-cli)",
                "fleet-cli v0.1.0",
            ),
            (
                "\u{1b}[1m\u{1b}[92m   Verifying\u{1b}[0m fleet-proxy v0.1.0 (/w)",
                "fleet-proxy v0.1.0",
            ),
            ("   Compiling tokio v1.54.0", "-"),
            ("    Packaged 42 files, 120.0KiB (30.0KiB compressed)", "-"),
            ("error: failed to verify package tarball", "-"),
        ];
        for (line, expected) in cases {
            assert_eq!(check_line(line), expected, "{line:?}");
        }
    }
}
