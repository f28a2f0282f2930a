//! Provisioning: the Debian packages the tests need, and a Docker Engine that answers.

use std::path::Path;
use std::process::{Command, Stdio};

use anyhow::{Context as _, bail};

use crate::run_checked;

/// Finds `binary` on the `PATH` or in the sbin directories.
fn installed(binary: &str) -> bool {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin".into(), "/sbin".into()])
        .any(|dir| dir.join(binary).is_file())
}

fn is_root() -> bool {
    // `id -u` keeps xtask free of libc bindings.
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|out| String::from_utf8_lossy(&out.stdout).trim() == "0")
}

/// Installs the missing `(binary, package)` pairs with apt-get when running as root
/// (one `apt-get update` first), or fails naming the packages to install.
pub(crate) fn ensure_packages(wanted: &[(&str, &str)]) -> anyhow::Result<()> {
    let missing: Vec<&str> = wanted
        .iter()
        .filter(|(binary, _)| !installed(binary))
        .map(|(_, package)| *package)
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    let list = missing.join(" ");
    if !is_root() || !Path::new("/usr/bin/apt-get").exists() {
        bail!(
            "the tests need Debian's packages {list}, which are not installed; install them \
             (`sudo apt-get install {list}`) or run `cargo xtask test` as root on Debian"
        );
    }
    eprintln!("xtask: installing {list} (needed by the tests)");
    run_checked(Command::new("apt-get").args(["update", "-qq"]))?;
    run_checked(
        Command::new("apt-get")
            .args(["install", "-y", "-qq", "--no-install-recommends"])
            .args(&missing)
            .env("DEBIAN_FRONTEND", "noninteractive"),
    )?;
    for (binary, package) in wanted {
        if !installed(binary) {
            bail!("`{binary}` is still missing after installing {package}");
        }
    }
    Ok(())
}

/// Fails clearly unless a Docker Engine answers (`docker info`).
pub(crate) fn ensure_docker() -> anyhow::Result<()> {
    let answers = Command::new("docker")
        .args(["info", "--format", "{{.ServerVersion}}"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .context(
            "the `docker` command is missing: the tests need a running Docker Engine \
             (Debian's `docker.io` package; `bash .ci/run` installs and starts one)",
        )?
        .success();
    if !answers {
        bail!(
            "the Docker Engine does not answer (`docker info` failed): start `dockerd` or set \
             DOCKER_HOST; `bash .ci/run` installs Debian's `docker.io` and starts it when needed"
        );
    }
    Ok(())
}

/// Removes test app images left untagged when a newer build took their tag. Only
/// dangling images carrying the test app's label go: the engine's other images stay.
pub(crate) fn prune_test_images() {
    let _ = Command::new("docker")
        .args([
            "image",
            "prune",
            "--force",
            "--filter",
            "label=org.opencontainers.image.title=fleet-testapp",
        ])
        .stdout(Stdio::null())
        .status();
}
