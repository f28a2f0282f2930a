//! The daemonless image builder of `cargo xtask release`, end to end: a two-platform
//! index pushed to a real registry, read back with skopeo, run by the Docker Engine and
//! resolved by `fleet resolve`.
//!
//! The payloads:
//! - linux/amd64: `xtask/tests/fixtures/fleet-stub`, a tiny stand-in for fleet that
//!   prints `fleet 1.2.3` for `--version`, built by the builder itself (`cargo build
//!   --target x86_64-unknown-linux-gnu` with `+crt-static`), as it builds fleet.
//! - linux/arm64: no arm64 Rust standard library can be installed from the package
//!   registries this project reaches, so the arm64 binary is Debian's BusyBox from
//!   `busybox-static:arm64`, a genuinely arm64 static executable, given by path as
//!   `--binary linux/arm64=PATH` would give it. `cargo xtask test` downloads it
//!   (`provision::ensure_arm64_busybox`); without it the test fails naming the package.
//!
//! The builder's module is compiled into this test as it is (`#[path]`): it uses nothing
//! else of xtask, which is a binary and has no library to import.

// A test prints what it runs.
#![allow(clippy::print_stderr)]

#[path = "../src/release/image.rs"]
// xtask's `release` module uses what this test does not.
#[allow(dead_code)]
mod image;

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context as _, bail};
use fleet_registry::{Client, ClientConfig, ImageRef, Platform};
use fleet_tests::docker::TestDocker;
use fleet_tests::registry::TestRegistry;
use fleet_tests::tools;

use self::image::{BinarySource, ImageInputs};

/// The fixture's version (its `Cargo.toml`), which the image is released as.
const VERSION: &str = "1.2.3";

/// The tags a release of 1.2.3 publishes.
const TAGS: [&str; 4] = ["v1.2.3", "v1.2", "v1", "latest"];

/// A copy of the fixture crate in a directory of its own, so that its build
/// (`<root>/target/release-images`) stays out of the source tree.
fn fixture() -> anyhow::Result<tempfile::TempDir> {
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/fleet-stub");
    let root = tempfile::tempdir()?;
    for file in ["Cargo.toml", "Cargo.lock", "src/main.rs"] {
        let to = root.path().join(file);
        std::fs::create_dir_all(to.parent().context("a file has a parent")?)?;
        std::fs::copy(source.join(file), &to)
            .with_context(|| format!("cannot copy the fixture's {file}"))?;
    }
    Ok(root)
}

/// The arm64 payload: Debian's static BusyBox for arm64, where `cargo xtask test`
/// unpacks it (`FLEET_ARM64_BUSYBOX` overrides the path).
fn arm64_busybox() -> anyhow::Result<PathBuf> {
    let path = match std::env::var_os("FLEET_ARM64_BUSYBOX") {
        Some(path) => PathBuf::from(path),
        None => fleet_tests::testapp::target_dir()?.join("busybox-static-arm64/bin/busybox"),
    };
    if !path.is_file() {
        bail!(
            "the arm64 payload {} is missing: it is BusyBox from Debian's busybox-static:arm64 \
             package, which `cargo xtask test` downloads when run as root (or unpack it \
             there: `apt-get download busybox-static:arm64` after `dpkg --add-architecture \
             arm64 && apt-get update`, then `dpkg-deb -x` it into {}), or point \
             FLEET_ARM64_BUSYBOX at it",
            path.display(),
            path.parent()
                .and_then(Path::parent)
                .unwrap_or(&path)
                .display()
        );
    }
    Ok(path)
}

fn platform(text: &str) -> Platform {
    text.parse().expect("a platform")
}

/// A release of the fixture for linux/amd64 (built) and linux/arm64 (BusyBox, given).
fn release_inputs(root: &Path, busybox: &Path, source_date_epoch: i64) -> ImageInputs {
    ImageInputs {
        root: root.to_path_buf(),
        package: "fleet-stub".to_owned(),
        bin: "fleet".to_owned(),
        cargo_profile: "release".to_owned(),
        version: VERSION.parse().expect("a version"),
        revision: "0123456789abcdef0123456789abcdef01234567".to_owned(),
        source: "https://github.com/fleet-rs/fleet".to_owned(),
        source_date_epoch,
        platforms: vec![platform("linux/amd64"), platform("linux/arm64")],
        binaries: vec![(platform("linux/arm64"), busybox.to_path_buf())],
        allow_missing_platform: false,
    }
}

/// The workspace's `fleet` binary: the one `cargo test --workspace` built beside this
/// test's profile directory (fleet-cli's tests need it), else built now. Building it
/// while other test binaries run `fleet` could replace it under them (a `-p fleet-cli`
/// build may resolve features differently and relink it), so the built one is preferred.
fn fleet_binary() -> anyhow::Result<PathBuf> {
    let profile_dir = std::env::current_exe()?
        .parent()
        .and_then(Path::parent)
        .map(Path::to_path_buf);
    if let Some(built) = profile_dir.map(|dir| dir.join("fleet"))
        && built.is_file()
    {
        return Ok(built);
    }
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let output = Command::new(cargo)
        .current_dir(fleet_tests::workspace_root())
        .args([
            "build",
            "--package",
            "fleet-cli",
            "--bin",
            "fleet",
            "--message-format=json-render-diagnostics",
        ])
        .stderr(std::process::Stdio::inherit())
        .output()
        .context("cannot run cargo build")?;
    if !output.status.success() {
        bail!("cargo build --package fleet-cli failed ({})", output.status);
    }
    for line in String::from_utf8_lossy(&output.stdout).lines() {
        let Ok(message) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        if message["reason"] == "compiler-artifact"
            && message["target"]["name"] == "fleet"
            && message["profile"]["test"] == false
            && let Some(path) = message["executable"].as_str()
        {
            return Ok(PathBuf::from(path));
        }
    }
    bail!("cargo built fleet-cli but reported no `fleet` executable")
}

/// Runs `command`, which must succeed; its stdout.
fn stdout(command: &mut Command) -> anyhow::Result<String> {
    let output = command
        .output()
        .with_context(|| format!("cannot run {command:?}"))?;
    if !output.status.success() {
        bail!(
            "{command:?} failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

#[tokio::test(flavor = "multi_thread")]
async fn the_daemonless_builder_pushes_an_index_that_docker_runs_and_fleet_resolves()
-> anyhow::Result<()> {
    let busybox = arm64_busybox()?;
    let registry = TestRegistry::start()?;
    let docker = TestDocker::new().await?;
    // The images pulled from the registry go when the test ends.
    docker.track_registry(&registry.docker_host());
    let root = fixture()?;
    let inputs = release_inputs(root.path(), &busybox, 1_700_000_000);

    // This machine has the x86_64 glibc target only: amd64 is built, arm64 is given.
    let sources = image::binary_sources(&inputs)?;
    assert_eq!(
        sources,
        [
            (
                platform("linux/amd64"),
                BinarySource::Build {
                    target: "x86_64-unknown-linux-gnu".to_owned()
                }
            ),
            (
                platform("linux/arm64"),
                BinarySource::Given(busybox.clone())
            ),
        ]
    );
    let binaries = image::binaries(&inputs)?;
    let assembled = image::assemble(&inputs, &binaries)?;
    let client = Client::new(ClientConfig::default())?;
    let repository: ImageRef = format!("{}/fleet", registry.host()).parse()?;
    let tags = TAGS.map(str::to_owned);
    let digest = image::push(&client, &repository, &assembled, &tags).await?;
    assert_eq!(digest, *assembled.index.digest());

    // skopeo reads an OCI index with both platforms, under every tag.
    let skopeo = tools::require("skopeo", "skopeo")?;
    for tag in TAGS {
        let raw = stdout(
            Command::new(&skopeo)
                .args(["inspect", "--raw", "--tls-verify=false"])
                .arg(format!("docker://{}/fleet:{tag}", registry.host())),
        )?;
        let index: serde_json::Value = serde_json::from_str(&raw)?;
        assert_eq!(
            index["mediaType"], "application/vnd.oci.image.index.v1+json",
            "{raw}"
        );
        let entries: Vec<String> = index["manifests"]
            .as_array()
            .context("the index lists manifests")?
            .iter()
            .map(|entry| {
                let platform = &entry["platform"];
                format!(
                    "{}/{} {}",
                    platform["os"].as_str().unwrap_or("?"),
                    platform["architecture"].as_str().unwrap_or("?"),
                    entry["digest"].as_str().unwrap_or("?")
                )
            })
            .collect();
        let expected: Vec<String> = assembled
            .images
            .iter()
            .map(|image| format!("{} {}", image.platform(), image.digest()))
            .collect();
        assert_eq!(entries, expected, "{tag}: {raw}");
    }

    // The Docker Engine pulls the amd64 image and runs it as the release.
    let reference = format!("{}/fleet:v{VERSION}", registry.docker_host());
    docker.pull(&registry, &reference).await?;
    let version = stdout(Command::new("docker").args(["run", "--rm", &reference, "--version"]))?;
    assert_eq!(version.trim(), format!("fleet {VERSION}"));
    let config = stdout(Command::new("docker").args([
        "image",
        "inspect",
        "--format",
        "{{.Architecture}} {{.Config.User}} {{json .Config.Entrypoint}} {{json .Config.Healthcheck.Test}} {{index .Config.Labels \"org.opencontainers.image.version\"}} {{.Created}}",
        &reference,
    ]))?;
    assert_eq!(
        config.trim(),
        format!(
            "amd64 65532:65532 [\"/usr/local/bin/fleet\"] [\"CMD\",\"/usr/local/bin/fleet\",\"serve\",\"--check\"] {VERSION} 2023-11-14T22:13:20Z"
        )
    );

    // Built again from scratch (another checkout, another target directory) with the
    // same SOURCE_DATE_EPOCH: the same digests, byte for byte; another epoch, others.
    let again_root = fixture()?;
    let again = release_inputs(again_root.path(), &busybox, 1_700_000_000);
    let rebuilt = image::assemble(&again, &image::binaries(&again)?)?;
    assert_eq!(rebuilt.index.bytes(), assembled.index.bytes());
    assert_eq!(
        image::push(&client, &repository, &rebuilt, &tags).await?,
        digest
    );
    let later = release_inputs(again_root.path(), &busybox, 1_700_000_001);
    let redated = image::assemble(&later, &image::binaries(&later)?)?;
    assert_ne!(redated.index.digest(), &digest);

    // `fleet resolve` finds the release just pushed, and the arm64 manifest by platform.
    let fleet = fleet_binary()?;
    let state = tempfile::tempdir()?;
    let resolve = |extra: &[&str]| -> anyhow::Result<serde_json::Value> {
        let out = stdout(
            Command::new(&fleet)
                .arg("resolve")
                .arg(format!("{}/fleet:v1", registry.host()))
                .args(extra)
                .arg("--json")
                .env("FLEET_STATE_DIR", state.path())
                .env("DOCKER_CONFIG", state.path().join("docker"))
                .env("FLEET_LOG", "off")
                .env("NO_COLOR", "1"),
        )?;
        serde_json::from_str(&out).with_context(|| format!("not JSON: {out}"))
    };
    let resolved = resolve(&[])?;
    assert_eq!(resolved["tag"], format!("v{VERSION}"), "{resolved}");
    assert_eq!(resolved["digest"], digest.to_string(), "{resolved}");
    let arm64 = resolve(&["--platform", "linux/arm64"])?;
    assert_eq!(
        arm64["platform_digest"],
        assembled.images[1].digest().to_string(),
        "{arm64}"
    );
    assert_eq!(assembled.images[1].platform(), &platform("linux/arm64"));

    docker.cleanup().await?;
    Ok(())
}

#[test]
fn a_missing_arm64_binary_fails_naming_the_platform_and_the_flag() -> anyhow::Result<()> {
    let root = fixture()?;
    let mut inputs = release_inputs(root.path(), Path::new("/nonexistent"), 0);
    inputs.binaries.clear();
    let error = image::binary_sources(&inputs).expect_err("arm64 has no binary");
    let message = format!("{error:#}");
    assert!(message.contains("linux/arm64: "), "{message}");
    assert!(message.contains("`--binary linux/arm64=PATH`"), "{message}");
    assert!(!message.contains("linux/amd64"), "{message}");
    inputs.allow_missing_platform = true;
    let sources = image::binary_sources(&inputs)?;
    assert!(
        matches!(sources[1], (ref p, BinarySource::Missing { .. }) if *p == platform("linux/arm64"))
    );
    Ok(())
}
