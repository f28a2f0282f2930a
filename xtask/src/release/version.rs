//! The workspace version: read from `[workspace.package]`, chosen by `--version` or
//! `--bump`, and written back with the `version` of every internal dependency, keeping
//! the manifest's formatting and comments (toml_edit).

use std::path::Path;

use anyhow::{Context as _, bail};
use semver::{Prerelease, Version};

/// `--bump`: which part of the version moves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Bump {
    /// `1.4.2` → `2.0.0`.
    Major,
    /// `1.4.2` → `1.5.0`.
    Minor,
    /// `1.4.2` → `1.4.3`; `1.5.0-rc.2` → `1.5.0`.
    Patch,
    /// `1.4.2` → `1.4.3-rc.1`; `1.5.0-rc.2` → `1.5.0-rc.3`.
    Prerelease,
}

impl Bump {
    /// The version after `current`.
    pub(crate) fn apply(self, current: &Version) -> anyhow::Result<Version> {
        let mut next = Version::new(current.major, current.minor, current.patch);
        match self {
            Bump::Major => next = Version::new(current.major + 1, 0, 0),
            Bump::Minor => next = Version::new(current.major, current.minor + 1, 0),
            // A prerelease of X.Y.Z becomes X.Y.Z itself.
            Bump::Patch if !current.pre.is_empty() => {}
            Bump::Patch => next.patch += 1,
            Bump::Prerelease if current.pre.is_empty() => {
                next.patch += 1;
                next.pre = Prerelease::new("rc.1")?;
            }
            Bump::Prerelease => next.pre = next_prerelease(&current.pre)?,
        }
        Ok(next)
    }
}

/// `rc.2` → `rc.3`, `beta` → `beta.1`.
fn next_prerelease(pre: &Prerelease) -> anyhow::Result<Prerelease> {
    let text = pre.as_str();
    let next = match text.rsplit_once('.') {
        Some((label, number)) if number.parse::<u64>().is_ok() => {
            format!("{label}.{}", number.parse::<u64>()? + 1)
        }
        _ => format!("{text}.1"),
    };
    Ok(Prerelease::new(&next)?)
}

/// The version in `<root>/Cargo.toml`'s `[workspace.package]`.
pub(crate) fn read(root: &Path) -> anyhow::Result<Version> {
    let path = root.join("Cargo.toml");
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("cannot read {}", path.display()))?;
    let manifest: toml_edit::DocumentMut = text
        .parse()
        .with_context(|| format!("{} is not valid TOML", path.display()))?;
    let version = manifest
        .get("workspace")
        .and_then(|workspace| workspace.get("package"))
        .and_then(|package| package.get("version"))
        .and_then(|version| version.as_str())
        .with_context(|| {
            format!(
                "{} has no [workspace.package] version: the release moves one version for every crate",
                path.display()
            )
        })?;
    Version::parse(version).with_context(|| {
        format!(
            "{}: [workspace.package] version {version:?} is not a semantic version",
            path.display()
        )
    })
}

/// Writes `version` into `<root>/Cargo.toml`: `[workspace.package] version` and the
/// `version` of every `[workspace.dependencies]` entry with a `path` (the workspace's
/// own crates, which the members depend on by that version when published).
pub(crate) fn write(root: &Path, version: &Version) -> anyhow::Result<()> {
    let path = root.join("Cargo.toml");
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("cannot read {}", path.display()))?;
    let updated =
        set(&text, version).with_context(|| format!("cannot update {}", path.display()))?;
    std::fs::write(&path, updated).with_context(|| format!("cannot write {}", path.display()))
}

/// [`write()`] on a manifest's text.
fn set(text: &str, version: &Version) -> anyhow::Result<String> {
    let mut manifest: toml_edit::DocumentMut = text.parse()?;
    let version = version.to_string();
    let Some(package_version) = manifest
        .get_mut("workspace")
        .and_then(|workspace| workspace.get_mut("package"))
        .and_then(|package| package.get_mut("version"))
    else {
        bail!("no [workspace.package] version");
    };
    set_string(package_version, &version);
    if let Some(dependencies) = manifest
        .get_mut("workspace")
        .and_then(|workspace| workspace.get_mut("dependencies"))
        .and_then(|dependencies| dependencies.as_table_like_mut())
    {
        for (_, dependency) in dependencies.iter_mut() {
            let Some(dependency) = dependency.as_table_like_mut() else {
                continue;
            };
            if dependency.contains_key("path")
                && let Some(dependency_version) = dependency.get_mut("version")
            {
                set_string(dependency_version, &version);
            }
        }
    }
    Ok(manifest.to_string())
}

/// Replaces a string value, keeping the spaces and comments around it.
fn set_string(item: &mut toml_edit::Item, text: &str) {
    match item.as_value_mut() {
        Some(value) => {
            let decor = value.decor().clone();
            *value = toml_edit::Value::from(text);
            *value.decor_mut() = decor;
        }
        None => *item = toml_edit::value(text),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bump(bump: Bump, from: &str) -> String {
        bump.apply(&Version::parse(from).unwrap())
            .unwrap()
            .to_string()
    }

    #[test]
    fn bumps_follow_semver() {
        assert_eq!(bump(Bump::Major, "1.4.2"), "2.0.0");
        assert_eq!(bump(Bump::Minor, "1.4.2"), "1.5.0");
        assert_eq!(bump(Bump::Patch, "1.4.2"), "1.4.3");
        assert_eq!(bump(Bump::Patch, "1.5.0-rc.2"), "1.5.0");
        assert_eq!(bump(Bump::Minor, "1.5.0-rc.2"), "1.6.0");
        assert_eq!(bump(Bump::Prerelease, "1.4.2"), "1.4.3-rc.1");
        assert_eq!(bump(Bump::Prerelease, "2.0.0-rc.1"), "2.0.0-rc.2");
        assert_eq!(bump(Bump::Prerelease, "2.0.0-beta"), "2.0.0-beta.1");
        assert_eq!(bump(Bump::Major, "0.1.0+build.5"), "1.0.0");
    }

    #[test]
    fn writing_moves_the_workspace_and_internal_dependency_versions_and_keeps_the_rest() {
        let before = r#"[workspace]
members = ["crates/*"]

[workspace.package]
version = "0.1.0" # moved by cargo xtask release
edition = "2024"

[workspace.dependencies]
# Internal crates.
fleet-registry = { path = "crates/fleet-registry", version = "0.1.0" }
fleet-tests = { path = "tests" }
serde = { version = "1", features = ["derive"] }
"#;
        let after = set(before, &Version::parse("1.2.0").unwrap()).unwrap();
        assert_eq!(
            after,
            r#"[workspace]
members = ["crates/*"]

[workspace.package]
version = "1.2.0" # moved by cargo xtask release
edition = "2024"

[workspace.dependencies]
# Internal crates.
fleet-registry = { path = "crates/fleet-registry", version = "1.2.0" }
fleet-tests = { path = "tests" }
serde = { version = "1", features = ["derive"] }
"#
        );
    }

    #[test]
    fn the_real_workspace_has_a_version_to_release() {
        let root = crate::workspace_root();
        let version = read(&root).unwrap();
        let text = std::fs::read_to_string(root.join("Cargo.toml")).unwrap();
        // Writing the same version changes nothing.
        assert_eq!(set(&text, &version).unwrap(), text);
    }
}
