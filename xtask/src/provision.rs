//! Provisioning: the Debian packages the tests need, moto's S3 server (PyPI), the arm64
//! BusyBox of the image builder's test (Debian's `busybox-static:arm64`), and a Docker
//! Engine that answers.

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

/// Where `pip install --user` puts programs: `~/.local/bin`. The test bed looks there too
/// (`fleet_tests::s3`).
fn user_bin() -> Option<std::path::PathBuf> {
    let home = std::env::var_os("HOME").filter(|home| !home.is_empty())?;
    Some(Path::new(&home).join(".local/bin"))
}

fn moto_installed() -> bool {
    installed("moto_server") || user_bin().is_some_and(|dir| dir.join("moto_server").is_file())
}

/// A Python package the tests need, for [`pip_install`]: its requirement, and the words
/// the messages use for it.
pub(crate) struct PipInstall {
    /// What pip installs: `moto[server]`.
    pub(crate) requirement: &'static str,
    /// Who needs it: "the S3 tests need moto's server (`moto_server`)".
    pub(crate) needed_by: &'static str,
    /// What for, while it installs: "the S3 tests' server".
    pub(crate) used_for: &'static str,
    /// Its name in an error: "moto's server".
    pub(crate) name: &'static str,
}

/// Installs a package with `python3 -m pip install`; where the system Python refuses
/// installs of its own (PEP 668), into the user's site (`~/.local`) instead. Fails naming
/// the command to run by hand when pip is missing or the install fails.
pub(crate) fn pip_install(package: PipInstall) -> anyhow::Result<()> {
    let PipInstall {
        requirement,
        needed_by,
        used_for,
        name,
    } = package;
    let pip = Command::new("python3")
        .args(["-m", "pip", "--version"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success());
    if !pip {
        bail!(
            "{needed_by}, and pip is missing to install it: install python3 and pip \
             (`apt-get install python3-pip`), then run `python3 -m pip install '{requirement}'`"
        );
    }
    eprintln!("xtask: installing {requirement} from PyPI ({used_for}; once)");
    let install = |extra: &[&str]| -> anyhow::Result<std::process::Output> {
        let mut command = Command::new("python3");
        command
            .args(["-m", "pip", "install", "--quiet"])
            .args(extra)
            .arg(requirement);
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
            "cannot install {name} (`python3 -m pip install '{requirement}'` failed: {}); \
             install it by hand and run `cargo xtask test` again",
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(())
}

/// The S3 tests' server: moto's, from PyPI. Installed with
/// `python3 -m pip install --quiet 'moto[server]'` when `moto_server` is missing; where
/// the system Python refuses installs of its own (PEP 668, Debian's
/// externally-managed-environment), into the user's site (`~/.local`) instead.
pub(crate) fn ensure_moto_server() -> anyhow::Result<()> {
    if moto_installed() {
        return Ok(());
    }
    pip_install(PipInstall {
        requirement: "moto[server]",
        needed_by: "the S3 tests need moto's server (`moto_server`)",
        used_for: "the S3 tests' server",
        name: "moto's server",
    })?;
    if !moto_installed() {
        bail!(
            "`moto_server` is still not found after installing moto[server]: add the \
             directory pip put it in to the PATH"
        );
    }
    Ok(())
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

/// A cargo subcommand that xtask installs from crates.io when it is missing.
#[derive(Debug, Clone, Copy)]
pub(crate) struct CargoTool {
    /// The subcommand: `machete` runs as `cargo machete`.
    pub(crate) subcommand: &'static str,
    /// The crate that provides it.
    pub(crate) package: &'static str,
    /// The version installed when it is missing, so that new machines and CI run the same
    /// check.
    pub(crate) version: &'static str,
}

impl CargoTool {
    /// The arguments of the `cargo` command that installs the tool.
    pub(crate) fn install_args(self) -> [&'static str; 5] {
        [
            "install",
            "--locked",
            "--version",
            self.version,
            self.package,
        ]
    }

    /// `cargo <subcommand>`. Cargo finds `cargo-<subcommand>` on the `PATH` and in
    /// `$CARGO_HOME/bin`, where `cargo install` puts it.
    pub(crate) fn command(self) -> Command {
        let mut command = crate::cargo();
        command.arg(self.subcommand);
        // xtask runs under `cargo run`, which sets `CARGO_PKG_NAME`; cargo-machete (0.9)
        // takes that variable to mean it was run as `cargo run -- ARGS` rather than as
        // `cargo machete ARGS`, and reads `machete` as a path to check.
        command.env_remove("CARGO_PKG_NAME");
        command
    }

    /// Whether `cargo <subcommand>` runs.
    fn runs(self) -> bool {
        self.command()
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|status| status.success())
    }
}

/// Installs `tool` with `cargo install --locked` unless `cargo <subcommand>` already runs,
/// or fails naming the tool and the command that installs it.
pub(crate) fn ensure_cargo_tool(tool: CargoTool) -> anyhow::Result<()> {
    if tool.runs() {
        return Ok(());
    }
    eprintln!(
        "xtask: installing {} {} (needed by `cargo xtask test`; once, a few minutes)",
        tool.package, tool.version
    );
    let started = std::time::Instant::now();
    let installed = run_checked(crate::cargo().args(tool.install_args())).and_then(|()| {
        if tool.runs() {
            Ok(())
        } else {
            bail!("`cargo {}` still does not run", tool.subcommand)
        }
    });
    if installed.is_ok() {
        eprintln!(
            "xtask: installed {} in {} s",
            tool.package,
            started.elapsed().as_secs()
        );
    }
    installed.with_context(|| {
        format!(
            "`cargo xtask test` needs {}, which is missing and could not be installed; \
             install it (`cargo {}`) and run it again",
            tool.package,
            tool.install_args().join(" ")
        )
    })
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

/// The variable that names the test run to the test bed, which labels the test app images
/// it builds with it (`fleet_tests::image::RUN_ENV`).
pub(crate) const TESTAPP_RUN_ENV: &str = "FLEET_TESTAPP_RUN";

/// The label the test bed puts on the test app images it builds
/// (`fleet_tests::image::RUN_LABEL`).
const TESTAPP_RUN_LABEL: &str = "fleet.testapp.run";

/// A run id no other run on this engine uses: this process and the time.
pub(crate) fn test_image_run() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |since| since.as_nanos());
    format!("x{:x}{:x}", std::process::id(), nanos & 0xffff_ffff)
}

/// Removes the test app images of test run `run` that its test processes left behind
/// (a process removes its own when it exits, unless it was killed). Images of other runs
/// stay, even ones running at the same time.
pub(crate) fn remove_test_images(run: &str) {
    let listed = Command::new("docker")
        .args(["image", "ls", "--quiet", "--no-trunc", "--filter"])
        .arg(format!("label={TESTAPP_RUN_LABEL}={run}"))
        .stderr(Stdio::null())
        .output();
    let Ok(listed) = listed else { return };
    let mut ids: Vec<String> = String::from_utf8_lossy(&listed.stdout)
        .lines()
        .map(str::to_owned)
        .collect();
    ids.sort();
    ids.dedup();
    if ids.is_empty() {
        return;
    }
    eprintln!(
        "xtask: removing {} test app image(s) the run left behind",
        ids.len()
    );
    let _ = Command::new("docker")
        .args(["image", "rm", "--force"])
        .args(&ids)
        .stdout(Stdio::null())
        .status();
}

/// The Debian package whose binary is the arm64 payload of the image builder's test
/// (`xtask/tests/image_builder.rs`): no arm64 Rust standard library can be installed
/// here, and BusyBox is a genuinely arm64, static executable.
const ARM64_BUSYBOX_PACKAGE: &str = "busybox-static:arm64";

/// Where [`ensure_arm64_busybox`] puts the package's files, under cargo's target
/// directory; the test looks there (or at `FLEET_ARM64_BUSYBOX`).
const ARM64_BUSYBOX_DIR: &str = "busybox-static-arm64";

/// Provides the arm64 BusyBox of the image builder's test at
/// `<target dir>/busybox-static-arm64/bin/busybox`, unless it is there: as root on
/// Debian, `apt-get download`s [`ARM64_BUSYBOX_PACKAGE`] with apt state of its own (arm64
/// package lists in a private directory, so the system's architectures and lists stay as
/// they are) and unpacks it with `dpkg-deb -x`. Fails naming the package otherwise.
/// `FLEET_ARM64_BUSYBOX`, naming a file, stands in for it (the test reads it too).
pub(crate) fn ensure_arm64_busybox() -> anyhow::Result<std::path::PathBuf> {
    if let Some(given) = std::env::var_os("FLEET_ARM64_BUSYBOX").map(std::path::PathBuf::from)
        && given.is_file()
    {
        return Ok(given);
    }
    let dir = crate::artifacts::target_dir()?.join(ARM64_BUSYBOX_DIR);
    let busybox = dir.join("bin/busybox");
    if busybox.is_file() {
        return Ok(busybox);
    }
    if !is_root() || !Path::new("/usr/bin/apt-get").exists() {
        bail!(
            "the image builder's test needs an arm64 static binary, {busybox}, from Debian's \
             {ARM64_BUSYBOX_PACKAGE}: run `cargo xtask test` as root on Debian, which \
             downloads it, or unpack it there by hand (`apt-get download \
             {ARM64_BUSYBOX_PACKAGE}` after `dpkg --add-architecture arm64 && apt-get \
             update`, then `dpkg-deb -x busybox-static_*_arm64.deb {dir}`)",
            busybox = busybox.display(),
            dir = dir.display()
        );
    }
    eprintln!(
        "xtask: downloading {ARM64_BUSYBOX_PACKAGE} (the image builder test's arm64 binary; once)"
    );
    let apt = dir.with_extension("apt");
    for sub in ["lists/partial", "cache/archives/partial"] {
        std::fs::create_dir_all(apt.join(sub))
            .with_context(|| format!("cannot create {}", apt.join(sub).display()))?;
    }
    let apt_get = |args: &[&str]| {
        let mut command = Command::new("apt-get");
        command
            .current_dir(&apt)
            .args([
                "-qq",
                "-o",
                "APT::Architecture=arm64",
                "-o",
                "APT::Architectures::=arm64",
            ])
            .arg("-o")
            .arg(format!("Dir::State::Lists={}", apt.join("lists").display()))
            .arg("-o")
            .arg(format!("Dir::Cache={}", apt.join("cache").display()))
            // The download lands in a directory of root's; apt's sandbox user may not write it.
            .args(["-o", "APT::Sandbox::User=root"])
            .args(args);
        command
    };
    run_checked(&mut apt_get(&["update"])).with_context(|| {
        format!("cannot read the arm64 package lists for {ARM64_BUSYBOX_PACKAGE}")
    })?;
    run_checked(&mut apt_get(&["download", ARM64_BUSYBOX_PACKAGE]))?;
    let deb = std::fs::read_dir(&apt)
        .with_context(|| format!("cannot list {}", apt.display()))?
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .find(|path| {
            let name = path.file_name().unwrap_or_default().to_string_lossy();
            name.starts_with("busybox-static_") && name.ends_with("_arm64.deb")
        })
        .with_context(|| {
            format!(
                "apt-get download {ARM64_BUSYBOX_PACKAGE} left no .deb in {}",
                apt.display()
            )
        })?;
    // Unpacked beside, then renamed: an interrupted run leaves no half a package behind.
    let unpacked = dir.with_extension("partial");
    let _ = std::fs::remove_dir_all(&unpacked);
    run_checked(Command::new("dpkg-deb").arg("-x").arg(&deb).arg(&unpacked))?;
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::rename(&unpacked, &dir)
        .with_context(|| format!("cannot move {} to {}", unpacked.display(), dir.display()))?;
    let _ = std::fs::remove_dir_all(&apt);
    if !busybox.is_file() {
        bail!(
            "{ARM64_BUSYBOX_PACKAGE} has no bin/busybox (looked in {})",
            dir.display()
        );
    }
    Ok(busybox)
}
