//! The daemonless image builder: fleet's static binary for each platform packed into OCI
//! layers, one image per platform and one index, assembled with fleet-registry's
//! assembly code and pushed with its client. No Docker daemon and no `buildx` needed.
//!
//! The steps, each its own function:
//! 1. [`binary_sources`]: per platform, where its binary comes from: a path given on the
//!    command line (`--binary linux/arm64=PATH`), else `cargo build --target` when that
//!    target's standard library is installed, else missing (an error naming the platform
//!    unless `--allow-missing-platform`).
//! 2. [`binaries`]: builds (static: `+crt-static`, in a target directory of its own) or
//!    takes each binary, and checks it is an ELF executable for its platform that needs
//!    no dynamic loader.
//! 3. [`assemble`]: the layers (a base with `/etc/passwd`, `/etc/group` and the state
//!    directory owned by the `fleet` user; the binary), each platform's configuration
//!    (entrypoint, non-root user, environment, health check, `org.opencontainers.image.*`
//!    labels) and the index. Reading the binaries is its only I/O.
//! 4. [`push`]: every image by digest, then the index under each tag.
//!
//! Reproducible: every date in the layers and the configuration is `SOURCE_DATE_EPOCH`,
//! so the same binaries and epoch give the same digests, byte for byte. The layout is the
//! one the Dockerfile (the `buildx` path) builds.
//!
//! This module uses nothing else of xtask: `xtask/tests/image_builder.rs` compiles it
//! on its own (`#[path]`) to push real images to a real registry.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, UNIX_EPOCH};

use anyhow::{Context as _, bail};
use fleet_registry::{
    Client, Digest, Healthcheck, Image, ImageBuilder, ImageRef, Index, Layer, LayerBuilder,
    Platform,
};

/// The `fleet` user and group the image runs as (distroless's `nonroot` id).
pub(crate) const USER_ID: u32 = 65532;

/// The state directory inside the image, owned by the `fleet` user.
pub(crate) const STATE_DIR: &str = "/var/lib/fleet";

/// Where `fleet serve` answers its API inside the container (the health check asks it).
pub(crate) const SERVE_API: &str = "127.0.0.1:8090";

/// `org.opencontainers.image.description`.
pub(crate) const DESCRIPTION: &str =
    "Runs many isolated instances of one container image on a host, updated by version channel";

/// `org.opencontainers.image.licenses`: the workspace's licence.
pub(crate) const LICENSES: &str = "MIT OR Apache-2.0";

/// What a release's images are made from.
#[derive(Debug, Clone)]
pub(crate) struct ImageInputs {
    /// The workspace that builds the binary. Builds go to `<root>/target/release-images`,
    /// a target directory of their own (the static flags would invalidate the everyday
    /// build).
    pub(crate) root: PathBuf,
    /// The package and the binary target: `fleet-cli`, `fleet`.
    pub(crate) package: String,
    pub(crate) bin: String,
    /// The cargo profile: `release`.
    pub(crate) cargo_profile: String,
    /// The released version (`org.opencontainers.image.version`).
    pub(crate) version: semver::Version,
    /// The full commit sha (`org.opencontainers.image.revision`).
    pub(crate) revision: String,
    /// The repository URL (`org.opencontainers.image.source` and `.url`).
    pub(crate) source: String,
    /// `SOURCE_DATE_EPOCH`: every date in the images. Negative is an error when the
    /// images are assembled.
    pub(crate) source_date_epoch: i64,
    /// The platforms of the index, in its order.
    pub(crate) platforms: Vec<Platform>,
    /// Binaries given on the command line (`--binary linux/arm64=PATH`); they win over
    /// building.
    pub(crate) binaries: Vec<(Platform, PathBuf)>,
    /// Whether the index may leave out platforms that have no binary.
    pub(crate) allow_missing_platform: bool,
}

/// Where one platform's binary comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum BinarySource {
    /// `cargo build --target <target>`.
    Build { target: String },
    /// A file given on the command line.
    Given(PathBuf),
    /// Nowhere: why, and what to do about it.
    Missing { why: String },
}

/// The Rust targets that build a static binary for `platform`, best first: musl is
/// static by default; glibc is made static with `+crt-static`.
pub(crate) fn rust_targets(platform: &Platform) -> &'static [&'static str] {
    if platform.os() != "linux" {
        return &[];
    }
    match (platform.architecture(), platform.variant()) {
        ("amd64", None) => &["x86_64-unknown-linux-musl", "x86_64-unknown-linux-gnu"],
        ("arm64", None) => &["aarch64-unknown-linux-musl", "aarch64-unknown-linux-gnu"],
        ("arm", Some("v7")) => &[
            "armv7-unknown-linux-musleabihf",
            "armv7-unknown-linux-gnueabihf",
        ],
        ("riscv64", None) => &[
            "riscv64gc-unknown-linux-musl",
            "riscv64gc-unknown-linux-gnu",
        ],
        _ => &[],
    }
}

/// The targets whose standard library the toolchain that builds `root` has
/// (`<sysroot>/lib/rustlib/<target>/lib`): what `cargo build --target` can build without
/// downloading anything.
pub(crate) fn installed_targets(root: &Path) -> anyhow::Result<BTreeSet<String>> {
    let mut command = Command::new(std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into()));
    command.args(["--print", "sysroot"]).current_dir(root);
    let output = command
        .output()
        .with_context(|| format!("cannot run {}", describe(&command)))?;
    if !output.status.success() {
        bail!(
            "`{}` failed ({}): {}",
            describe(&command),
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    let sysroot = PathBuf::from(String::from_utf8_lossy(&output.stdout).trim());
    let rustlib = sysroot.join("lib/rustlib");
    let entries = std::fs::read_dir(&rustlib)
        .with_context(|| format!("cannot list {}", rustlib.display()))?;
    let mut targets = BTreeSet::new();
    for entry in entries {
        let entry = entry.with_context(|| format!("cannot list {}", rustlib.display()))?;
        if entry.path().join("lib").is_dir() {
            targets.insert(entry.file_name().to_string_lossy().into_owned());
        }
    }
    Ok(targets)
}

/// Step 1: where each platform's binary comes from, in the order of
/// `inputs.platforms`. Fails naming every platform without a binary, unless
/// `inputs.allow_missing_platform` (then they are [`BinarySource::Missing`]).
pub(crate) fn binary_sources(
    inputs: &ImageInputs,
) -> anyhow::Result<Vec<(Platform, BinarySource)>> {
    sources(inputs, &installed_targets(&inputs.root)?)
}

/// [`binary_sources`] given the installed targets.
fn sources(
    inputs: &ImageInputs,
    installed: &BTreeSet<String>,
) -> anyhow::Result<Vec<(Platform, BinarySource)>> {
    if let Some((platform, _)) = inputs
        .binaries
        .iter()
        .find(|(platform, _)| !inputs.platforms.contains(platform))
    {
        let platforms: Vec<String> = inputs.platforms.iter().map(ToString::to_string).collect();
        bail!(
            "--binary {platform}=...: {platform} is not one of the release's platforms ({})",
            platforms.join(", ")
        );
    }
    let decided: Vec<(Platform, BinarySource)> = inputs
        .platforms
        .iter()
        .map(|platform| (platform.clone(), source(inputs, installed, platform)))
        .collect();
    let missing: Vec<String> = decided
        .iter()
        .filter_map(|(platform, source)| match source {
            BinarySource::Missing { why } => Some(format!("{platform}: {why}")),
            _ => None,
        })
        .collect();
    if !missing.is_empty() && !inputs.allow_missing_platform {
        bail!(
            "cannot build the image of every platform, and an index without one is not \
             published unless --allow-missing-platform is given:\n  {}",
            missing.join("\n  ")
        );
    }
    Ok(decided)
}

fn source(inputs: &ImageInputs, installed: &BTreeSet<String>, platform: &Platform) -> BinarySource {
    if let Some((_, path)) = inputs.binaries.iter().find(|(given, _)| given == platform) {
        return BinarySource::Given(path.clone());
    }
    let targets = rust_targets(platform);
    if let Some(target) = targets.iter().find(|target| installed.contains(**target)) {
        return BinarySource::Build {
            target: (*target).to_owned(),
        };
    }
    let why = match targets {
        [] => format!("fleet knows no Rust target for {platform}"),
        [best, ..] => format!(
            "the Rust standard library for {} is not installed (`rustup target add {best}`)",
            targets.join(" or ")
        ),
    };
    BinarySource::Missing {
        why: format!("{why}; give a static binary with `--binary {platform}=PATH`"),
    }
}

/// Step 2: each platform's binary, built or given, and checked (ELF for the platform's
/// machine, static). Platforms left out (allowed) are reported on stderr.
pub(crate) fn binaries(inputs: &ImageInputs) -> anyhow::Result<Vec<(Platform, PathBuf)>> {
    let mut found = Vec::new();
    for (platform, source) in binary_sources(inputs)? {
        let path = match source {
            BinarySource::Build { target } => build(inputs, &target)
                .with_context(|| format!("cannot build the binary for {platform}"))?,
            BinarySource::Given(path) => path,
            BinarySource::Missing { why } => {
                #[allow(clippy::print_stderr)] // The user must see what the index lacks.
                {
                    eprintln!("xtask: warning: the release leaves {platform} out: {why}");
                }
                continue;
            }
        };
        check_binary(&platform, &path)?;
        found.push((platform, path));
    }
    if found.is_empty() {
        bail!("no platform has a binary: there is no image to publish");
    }
    Ok(found)
}

/// `cargo build` of the static binary for `target` into the release target directory.
pub(crate) fn build_command(inputs: &ImageInputs, target: &str) -> Command {
    let profile_env = inputs.cargo_profile.to_ascii_uppercase().replace('-', "_");
    let mut command = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    command
        .current_dir(&inputs.root)
        .args(["build", "--locked", "--target", target, "--profile"])
        .arg(&inputs.cargo_profile)
        .args(["--package", &inputs.package, "--bin", &inputs.bin])
        .arg("--target-dir")
        .arg(target_dir(inputs))
        // Cargo takes the first of CARGO_ENCODED_RUSTFLAGS and RUSTFLAGS, and ignores
        // target rustflags when either is set: the static flag goes in the first.
        .env_remove("RUSTFLAGS")
        .env("CARGO_ENCODED_RUSTFLAGS", static_rustflags(target))
        .env(format!("CARGO_PROFILE_{profile_env}_STRIP"), "true");
    command
}

/// The user's rustflags (`CARGO_ENCODED_RUSTFLAGS` or `RUSTFLAGS`), then `+crt-static`
/// for a glibc target (musl targets are static already), encoded for
/// `CARGO_ENCODED_RUSTFLAGS`.
fn static_rustflags(target: &str) -> String {
    let mut flags: Vec<String> = match std::env::var("CARGO_ENCODED_RUSTFLAGS") {
        Ok(encoded) if !encoded.is_empty() => encoded.split('\x1f').map(str::to_owned).collect(),
        _ => std::env::var("RUSTFLAGS")
            .unwrap_or_default()
            .split_whitespace()
            .map(str::to_owned)
            .collect(),
    };
    if target.contains("-gnu") {
        flags.extend(["-C".to_owned(), "target-feature=+crt-static".to_owned()]);
    }
    flags.join("\x1f")
}

/// The release builds' own target directory.
fn target_dir(inputs: &ImageInputs) -> PathBuf {
    inputs.root.join("target/release-images")
}

/// Where cargo puts the binary [`build_command`] builds (its `--target-dir` is given, so
/// no configuration moves it).
fn built_binary(inputs: &ImageInputs, target: &str) -> PathBuf {
    let profile_dir = match inputs.cargo_profile.as_str() {
        "dev" | "test" => "debug",
        "bench" => "release",
        other => other,
    };
    target_dir(inputs)
        .join(target)
        .join(profile_dir)
        .join(&inputs.bin)
}

fn build(inputs: &ImageInputs, target: &str) -> anyhow::Result<PathBuf> {
    let mut command = build_command(inputs, target);
    #[allow(clippy::print_stderr)] // Cargo's progress follows; the user sees what runs.
    {
        eprintln!("xtask: $ {}", describe(&command));
    }
    let status = command
        .status()
        .with_context(|| format!("cannot run {}", describe(&command)))?;
    if !status.success() {
        bail!("`{}` failed ({status})", describe(&command));
    }
    let path = built_binary(inputs, target);
    if !path.is_file() {
        bail!("cargo succeeded but {} is missing", path.display());
    }
    Ok(path)
}

/// The ELF machine (`e_machine`) of `platform`'s executables, where fleet knows it.
fn elf_machine(platform: &Platform) -> Option<(u16, &'static str)> {
    match (platform.architecture(), platform.variant()) {
        ("amd64", _) => Some((62, "x86-64")),
        ("arm64", _) => Some((183, "AArch64")),
        ("arm", _) => Some((40, "ARM")),
        ("386", _) => Some((3, "x86")),
        ("riscv64", _) => Some((243, "RISC-V")),
        ("ppc64le", _) => Some((21, "PowerPC64")),
        ("s390x", _) => Some((22, "S/390")),
        _ => None,
    }
}

/// What the image needs to know of an ELF file: its machine, and whether it names an
/// interpreter (a dynamic loader, which an image without libc lacks).
#[derive(Debug, PartialEq, Eq)]
struct Elf {
    machine: u16,
    interpreter: bool,
}

fn read_elf(bytes: &[u8]) -> Result<Elf, &'static str> {
    const PT_INTERP: u32 = 3;
    if bytes.get(..4) != Some(b"\x7fELF") {
        return Err("not an ELF executable");
    }
    let wide = match bytes.get(4) {
        Some(1) => false,
        Some(2) => true,
        _ => return Err("an ELF file of unknown class"),
    };
    let big_endian = bytes.get(5) == Some(&2);
    let number = |at: usize, len: usize| -> Result<u64, &'static str> {
        let field = bytes.get(at..at + len).ok_or("a truncated ELF file")?;
        let mut value = 0u64;
        for i in 0..len {
            let byte = if big_endian {
                field[i]
            } else {
                field[len - 1 - i]
            };
            value = value << 8 | u64::from(byte);
        }
        Ok(value)
    };
    let machine = number(18, 2)? as u16;
    let (phoff, phentsize, phnum) = if wide {
        (number(32, 8)?, number(54, 2)?, number(56, 2)?)
    } else {
        (number(28, 4)?, number(42, 2)?, number(44, 2)?)
    };
    let mut interpreter = false;
    for i in 0..phnum {
        let at = usize::try_from(phoff + i * phentsize).map_err(|_| "a truncated ELF file")?;
        interpreter |= number(at, 4)? == u64::from(PT_INTERP);
    }
    Ok(Elf {
        machine,
        interpreter,
    })
}

/// Fails unless `path` is a static ELF executable for `platform`: a binary for another
/// machine, or one that needs a dynamic loader, would not run in the image.
fn check_binary(platform: &Platform, path: &Path) -> anyhow::Result<()> {
    let bytes = std::fs::read(path)
        .with_context(|| format!("cannot read the binary for {platform}: {}", path.display()))?;
    let elf = read_elf(&bytes).map_err(|what| {
        anyhow::anyhow!("the binary for {platform}, {}, is {what}", path.display())
    })?;
    if let Some((machine, name)) = elf_machine(platform)
        && elf.machine != machine
    {
        bail!(
            "the binary for {platform}, {}, is not an {name} executable (ELF machine {})",
            path.display(),
            elf.machine
        );
    }
    if elf.interpreter {
        bail!(
            "the binary for {platform}, {}, is dynamically linked, and the image has no \
             libc: give a static one (a musl target, or `-C target-feature=+crt-static`)",
            path.display()
        );
    }
    Ok(())
}

/// The release's images and their index, ready to push.
#[derive(Debug, Clone)]
pub(crate) struct Assembled {
    /// One image per platform, in the index's order.
    pub(crate) images: Vec<Image>,
    pub(crate) index: Index,
}

/// Step 3: the images of `binaries` and their index. Fails if a platform of the release
/// has no binary, unless `inputs.allow_missing_platform`.
pub(crate) fn assemble(
    inputs: &ImageInputs,
    binaries: &[(Platform, PathBuf)],
) -> anyhow::Result<Assembled> {
    let missing: Vec<String> = inputs
        .platforms
        .iter()
        .filter(|platform| !binaries.iter().any(|(given, _)| given == *platform))
        .map(ToString::to_string)
        .collect();
    if !missing.is_empty() && !inputs.allow_missing_platform {
        bail!(
            "no binary for {}: the index would lack it (--allow-missing-platform allows that)",
            missing.join(", ")
        );
    }
    let epoch = epoch(inputs)?;
    let base = base_layer(epoch)?;
    let labels = labels(inputs)?;
    let mut images = Vec::new();
    // The index's order is the release's order of platforms.
    for platform in &inputs.platforms {
        let Some((_, path)) = binaries.iter().find(|(given, _)| given == platform) else {
            continue;
        };
        let contents = std::fs::read(path).with_context(|| {
            format!("cannot read the binary for {platform}: {}", path.display())
        })?;
        let binary = binary_layer(&inputs.bin, contents, epoch)?;
        let image = image_builder(inputs, platform, epoch, &labels)
            .layer(base.clone())
            .layer(binary)
            .build()
            .with_context(|| format!("cannot assemble the image for {platform}"))?;
        images.push(image);
    }
    let index = Index::new(&images).context("cannot assemble the image index")?;
    Ok(Assembled { images, index })
}

/// `SOURCE_DATE_EPOCH`, which must not be before 1970.
fn epoch(inputs: &ImageInputs) -> anyhow::Result<u64> {
    u64::try_from(inputs.source_date_epoch)
        .ok()
        .with_context(|| {
            format!(
                "SOURCE_DATE_EPOCH {} is before 1970",
                inputs.source_date_epoch
            )
        })
}

/// What every platform shares: the users, and the state directory owned by `fleet`.
fn base_layer(epoch: u64) -> anyhow::Result<Layer> {
    let passwd = format!(
        "root:x:0:0:root:/root:/sbin/nologin\nfleet:x:{USER_ID}:{USER_ID}:fleet:{STATE_DIR}:/sbin/nologin\n"
    );
    let group = format!("root:x:0:\nfleet:x:{USER_ID}:\n");
    LayerBuilder::new()
        .file("etc/passwd", passwd.into_bytes(), 0o644)
        .file("etc/group", group.into_bytes(), 0o644)
        .directory(STATE_DIR, 0o700)
        .owner(STATE_DIR, USER_ID.into(), USER_ID.into())
        .mtime(epoch)
        .build()
        .context("cannot assemble the base layer")
}

/// The binary, at `/usr/local/bin/<bin>`.
fn binary_layer(bin: &str, contents: Vec<u8>, epoch: u64) -> anyhow::Result<Layer> {
    LayerBuilder::new()
        .file(&format!("usr/local/bin/{bin}"), contents, 0o755)
        .mtime(epoch)
        .build()
        .context("cannot assemble the binary's layer")
}

/// The run configuration of one platform's image, without its layers.
fn image_builder(
    inputs: &ImageInputs,
    platform: &Platform,
    epoch: u64,
    labels: &BTreeMap<&'static str, String>,
) -> ImageBuilder {
    let binary = format!("/usr/local/bin/{}", inputs.bin);
    let mut check = Healthcheck::new(&[&binary, "serve", "--check"]);
    check.interval = Duration::from_secs(10);
    check.timeout = Duration::from_secs(3);
    check.start_period = Duration::from_secs(5);
    check.retries = 3;
    let mut image = ImageBuilder::new(platform.clone())
        .entrypoint(&[&binary])
        .cmd(&["serve"])
        .env("FLEET_STATE_DIR", STATE_DIR)
        .env("FLEET_SERVE_API", SERVE_API)
        .user(&format!("{USER_ID}:{USER_ID}"))
        .healthcheck(check)
        .created(UNIX_EPOCH + Duration::from_secs(epoch));
    for (key, value) in labels {
        image = image.label(key, value);
    }
    image
}

/// The `org.opencontainers.image.*` labels of every image (the `buildx` path passes the
/// same ones).
pub(crate) fn labels(inputs: &ImageInputs) -> anyhow::Result<BTreeMap<&'static str, String>> {
    let created = jiff::Timestamp::from_second(inputs.source_date_epoch).with_context(|| {
        format!(
            "SOURCE_DATE_EPOCH {} is not a date",
            inputs.source_date_epoch
        )
    })?;
    Ok(BTreeMap::from([
        ("org.opencontainers.image.title", inputs.bin.clone()),
        (
            "org.opencontainers.image.description",
            DESCRIPTION.to_owned(),
        ),
        ("org.opencontainers.image.source", inputs.source.clone()),
        ("org.opencontainers.image.url", inputs.source.clone()),
        ("org.opencontainers.image.revision", inputs.revision.clone()),
        (
            "org.opencontainers.image.version",
            inputs.version.to_string(),
        ),
        ("org.opencontainers.image.created", created.to_string()),
        ("org.opencontainers.image.licenses", LICENSES.to_owned()),
    ]))
}

/// Step 4: pushes every image by digest, then the index under each of `tags` (the first
/// one first); returns the index's digest.
pub(crate) async fn push(
    client: &Client,
    repository: &ImageRef,
    assembled: &Assembled,
    tags: &[String],
) -> anyhow::Result<Digest> {
    let Some((first, rest)) = tags.split_first() else {
        bail!("a release needs at least one tag");
    };
    let tagged = repository.with_tag(first)?;
    let digest = client
        .push_index(&tagged, &assembled.index, &assembled.images)
        .await
        .with_context(|| format!("cannot push {tagged}"))?;
    for tag in rest {
        let tagged = repository.with_tag(tag)?;
        client
            .push_manifest(
                &tagged,
                fleet_registry::oci::OCI_IMAGE_INDEX_MEDIA_TYPE,
                assembled.index.bytes().clone(),
            )
            .await
            .with_context(|| format!("cannot push {tagged}"))?;
    }
    Ok(digest)
}

fn describe(command: &Command) -> String {
    std::iter::once(command.get_program())
        .chain(command.get_args())
        .map(|part| part.to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn platform(text: &str) -> Platform {
        text.parse().unwrap()
    }

    fn inputs() -> ImageInputs {
        ImageInputs {
            root: PathBuf::from("/src/fleet"),
            package: "fleet-cli".to_owned(),
            bin: "fleet".to_owned(),
            cargo_profile: "release".to_owned(),
            version: semver::Version::new(1, 4, 2),
            revision: "0123456789abcdef0123456789abcdef01234567".to_owned(),
            source: "https://github.com/fleet-rs/fleet".to_owned(),
            source_date_epoch: 1_700_000_000,
            platforms: vec![platform("linux/amd64"), platform("linux/arm64")],
            binaries: Vec::new(),
            allow_missing_platform: false,
        }
    }

    /// The sources for `inputs` on a machine with `installed` targets, one line each.
    fn check(inputs: &ImageInputs, installed: &[&str]) -> String {
        let installed = installed.iter().map(|t| (*t).to_owned()).collect();
        match sources(inputs, &installed) {
            Ok(decided) => decided
                .iter()
                .map(|(platform, source)| match source {
                    BinarySource::Build { target } => format!("{platform}: build {target}"),
                    BinarySource::Given(path) => format!("{platform}: {}", path.display()),
                    BinarySource::Missing { why } => format!("{platform}: missing: {why}"),
                })
                .collect::<Vec<_>>()
                .join("\n"),
            Err(error) => format!("error: {error:#}"),
        }
    }

    #[test]
    fn installed_targets_build_and_given_binaries_win() {
        let gnu = "x86_64-unknown-linux-gnu";
        let mut inputs = inputs();
        inputs.binaries = vec![(platform("linux/arm64"), "/tmp/busybox".into())];
        insta::assert_snapshot!(check(&inputs, &[gnu]), @r"
        linux/amd64: build x86_64-unknown-linux-gnu
        linux/arm64: /tmp/busybox
        ");
        insta::assert_snapshot!(check(&inputs, &[gnu, "x86_64-unknown-linux-musl"]), @r"
        linux/amd64: build x86_64-unknown-linux-musl
        linux/arm64: /tmp/busybox
        ");
        inputs.binaries = vec![(platform("linux/amd64"), "/tmp/fleet".into())];
        inputs.platforms = vec![platform("linux/amd64")];
        insta::assert_snapshot!(check(&inputs, &[gnu]), @"linux/amd64: /tmp/fleet");
    }

    #[test]
    fn a_platform_without_a_binary_is_an_error_naming_it_and_the_flag() {
        insta::assert_snapshot!(check(&inputs(), &["x86_64-unknown-linux-gnu"]), @r"
        error: cannot build the image of every platform, and an index without one is not published unless --allow-missing-platform is given:
          linux/arm64: the Rust standard library for aarch64-unknown-linux-musl or aarch64-unknown-linux-gnu is not installed (`rustup target add aarch64-unknown-linux-musl`); give a static binary with `--binary linux/arm64=PATH`
        ");
        let mut inputs = inputs();
        inputs.platforms.push(platform("linux/s390x"));
        insta::assert_snapshot!(check(&inputs, &[]), @r"
        error: cannot build the image of every platform, and an index without one is not published unless --allow-missing-platform is given:
          linux/amd64: the Rust standard library for x86_64-unknown-linux-musl or x86_64-unknown-linux-gnu is not installed (`rustup target add x86_64-unknown-linux-musl`); give a static binary with `--binary linux/amd64=PATH`
          linux/arm64: the Rust standard library for aarch64-unknown-linux-musl or aarch64-unknown-linux-gnu is not installed (`rustup target add aarch64-unknown-linux-musl`); give a static binary with `--binary linux/arm64=PATH`
          linux/s390x: fleet knows no Rust target for linux/s390x; give a static binary with `--binary linux/s390x=PATH`
        ");
    }

    #[test]
    fn allowed_missing_platforms_are_left_out() {
        let mut inputs = inputs();
        inputs.allow_missing_platform = true;
        insta::assert_snapshot!(check(&inputs, &["x86_64-unknown-linux-gnu"]), @r"
        linux/amd64: build x86_64-unknown-linux-gnu
        linux/arm64: missing: the Rust standard library for aarch64-unknown-linux-musl or aarch64-unknown-linux-gnu is not installed (`rustup target add aarch64-unknown-linux-musl`); give a static binary with `--binary linux/arm64=PATH`
        ");
    }

    #[test]
    fn a_binary_for_a_platform_the_release_lacks_is_an_error() {
        let mut inputs = inputs();
        inputs.binaries = vec![(platform("linux/arm/v7"), "/tmp/fleet".into())];
        insta::assert_snapshot!(
            check(&inputs, &["x86_64-unknown-linux-gnu"]),
            @"error: --binary linux/arm/v7=...: linux/arm/v7 is not one of the release's platforms (linux/amd64, linux/arm64)"
        );
    }

    #[test]
    fn the_build_is_static_in_its_own_target_dir() {
        let command = build_command(&inputs(), "x86_64-unknown-linux-gnu");
        assert_eq!(
            describe(&command).replace(&describe(&Command::new(command.get_program())), "cargo"),
            "cargo build --locked --target x86_64-unknown-linux-gnu --profile release --package \
             fleet-cli --bin fleet --target-dir /src/fleet/target/release-images"
        );
        let env: BTreeMap<String, Option<String>> = command
            .get_envs()
            .map(|(key, value)| {
                let value = value.map(|v| v.to_string_lossy().into_owned());
                (key.to_string_lossy().into_owned(), value)
            })
            .collect();
        assert_eq!(env["RUSTFLAGS"], None);
        assert!(
            env["CARGO_ENCODED_RUSTFLAGS"]
                .as_deref()
                .unwrap()
                .ends_with("-C\x1ftarget-feature=+crt-static")
        );
        assert_eq!(env["CARGO_PROFILE_RELEASE_STRIP"].as_deref(), Some("true"));
        assert_eq!(
            built_binary(&inputs(), "x86_64-unknown-linux-gnu"),
            Path::new("/src/fleet/target/release-images/x86_64-unknown-linux-gnu/release/fleet")
        );
        assert!(!static_rustflags("x86_64-unknown-linux-musl").contains("crt-static"));
    }

    /// A minimal ELF header with one program header of type `ptype`.
    fn elf(class: u8, machine: u16, ptype: u32) -> Vec<u8> {
        let mut bytes = vec![0u8; 128];
        bytes[..4].copy_from_slice(b"\x7fELF");
        bytes[4] = class;
        bytes[5] = 1;
        bytes[18..20].copy_from_slice(&machine.to_le_bytes());
        if class == 2 {
            bytes[32..40].copy_from_slice(&64u64.to_le_bytes());
            bytes[54..56].copy_from_slice(&56u16.to_le_bytes());
            bytes[56..58].copy_from_slice(&1u16.to_le_bytes());
        } else {
            bytes[28..32].copy_from_slice(&64u32.to_le_bytes());
            bytes[42..44].copy_from_slice(&32u16.to_le_bytes());
            bytes[44..46].copy_from_slice(&1u16.to_le_bytes());
        }
        bytes[64..68].copy_from_slice(&ptype.to_le_bytes());
        bytes
    }

    #[test]
    fn binaries_are_checked_for_their_machine_and_for_a_dynamic_loader() {
        let dir = tempfile::tempdir().unwrap();
        let check = |name: &str, platform_text: &str, bytes: &[u8]| {
            let path = dir.path().join(name);
            std::fs::write(&path, bytes).unwrap();
            match check_binary(&platform(platform_text), &path) {
                Ok(()) => "ok".to_owned(),
                Err(error) => format!("{error:#}").replace(&dir.path().display().to_string(), "D"),
            }
        };
        assert_eq!(check("a", "linux/arm64", &elf(2, 183, 1)), "ok");
        assert_eq!(check("b", "linux/arm/v7", &elf(1, 40, 1)), "ok");
        assert_eq!(
            check("c", "linux/arm64", &elf(2, 62, 1)),
            "the binary for linux/arm64, D/c, is not an AArch64 executable (ELF machine 62)"
        );
        assert_eq!(
            check("d", "linux/amd64", &elf(2, 62, 3)),
            "the binary for linux/amd64, D/d, is dynamically linked, and the image has no libc: \
             give a static one (a musl target, or `-C target-feature=+crt-static`)"
        );
        assert_eq!(
            check("e", "linux/amd64", b"#!/bin/sh\n"),
            "the binary for linux/amd64, D/e, is not an ELF executable"
        );
        assert_eq!(
            check("f", "linux/amd64", &elf(2, 62, 1)[..40]),
            "the binary for linux/amd64, D/f, is a truncated ELF file"
        );
    }

    #[test]
    fn a_platform_without_a_binary_is_not_assembled_unless_allowed() {
        let dir = tempfile::tempdir().unwrap();
        let amd64 = dir.path().join("fleet");
        std::fs::write(&amd64, elf(2, 62, 1)).unwrap();
        let binaries = [(platform("linux/amd64"), amd64)];
        let error = assemble(&inputs(), &binaries).unwrap_err();
        assert_eq!(
            format!("{error:#}"),
            "no binary for linux/arm64: the index would lack it (--allow-missing-platform allows that)"
        );
        let mut inputs = inputs();
        inputs.allow_missing_platform = true;
        let assembled = assemble(&inputs, &binaries).unwrap();
        assert_eq!(assembled.images.len(), 1);
        inputs.source_date_epoch = -1;
        let error = assemble(&inputs, &binaries).unwrap_err();
        assert_eq!(format!("{error:#}"), "SOURCE_DATE_EPOCH -1 is before 1970");
    }

    #[test]
    fn the_configuration_and_the_layers() {
        let dir = tempfile::tempdir().unwrap();
        let binaries: Vec<(Platform, PathBuf)> = [("linux/amd64", 62), ("linux/arm64", 183)]
            .into_iter()
            .map(|(text, machine)| {
                let path = dir.path().join(machine.to_string());
                std::fs::write(&path, elf(2, machine, 1)).unwrap();
                (platform(text), path)
            })
            .collect();
        let assembled = assemble(&inputs(), &binaries).unwrap();
        let platforms: Vec<String> = assembled
            .images
            .iter()
            .map(|image| image.platform().to_string())
            .collect();
        assert_eq!(platforms, ["linux/amd64", "linux/arm64"]);
        let mut config: serde_json::Value =
            serde_json::from_slice(assembled.images[1].config()).unwrap();
        config["rootfs"]["diff_ids"] = serde_json::json!(["[base]", "[binary]"]);
        insta::assert_json_snapshot!(config, @r#"
        {
          "architecture": "arm64",
          "config": {
            "Cmd": [
              "serve"
            ],
            "Entrypoint": [
              "/usr/local/bin/fleet"
            ],
            "Env": [
              "FLEET_STATE_DIR=/var/lib/fleet",
              "FLEET_SERVE_API=127.0.0.1:8090"
            ],
            "Healthcheck": {
              "Interval": 10000000000,
              "Retries": 3,
              "StartPeriod": 5000000000,
              "Test": [
                "CMD",
                "/usr/local/bin/fleet",
                "serve",
                "--check"
              ],
              "Timeout": 3000000000
            },
            "Labels": {
              "org.opencontainers.image.created": "2023-11-14T22:13:20Z",
              "org.opencontainers.image.description": "Runs many isolated instances of one container image on a host, updated by version channel",
              "org.opencontainers.image.licenses": "MIT OR Apache-2.0",
              "org.opencontainers.image.revision": "0123456789abcdef0123456789abcdef01234567",
              "org.opencontainers.image.source": "https://github.com/fleet-rs/fleet",
              "org.opencontainers.image.title": "fleet",
              "org.opencontainers.image.url": "https://github.com/fleet-rs/fleet",
              "org.opencontainers.image.version": "1.4.2"
            },
            "User": "65532:65532"
          },
          "created": "2023-11-14T22:13:20Z",
          "os": "linux",
          "rootfs": {
            "diff_ids": [
              "[base]",
              "[binary]"
            ],
            "type": "layers"
          }
        }
        "#);
        insta::assert_snapshot!(listing(&base_layer(1_700_000_000).unwrap()), @r#"
        etc/ 755 0:0 mtime=1700000000 ""
        etc/group 644 0:0 mtime=1700000000 "root:x:0:\nfleet:x:65532:\n"
        etc/passwd 644 0:0 mtime=1700000000 "root:x:0:0:root:/root:/sbin/nologin\nfleet:x:65532:65532:fleet:/var/lib/fleet:/sbin/nologin\n"
        var/ 755 0:0 mtime=1700000000 ""
        var/lib/ 755 0:0 mtime=1700000000 ""
        var/lib/fleet/ 700 65532:65532 mtime=1700000000 ""
        "#);
        let binary = binary_layer("fleet", b"ELF".to_vec(), 1_700_000_000).unwrap();
        insta::assert_snapshot!(listing(&binary), @r#"
        usr/ 755 0:0 mtime=1700000000 ""
        usr/local/ 755 0:0 mtime=1700000000 ""
        usr/local/bin/ 755 0:0 mtime=1700000000 ""
        usr/local/bin/fleet 755 0:0 mtime=1700000000 "ELF"
        "#);
    }

    /// A layer's entries, one line each: path, mode, owner, date.
    fn listing(layer: &Layer) -> String {
        use std::io::Read as _;
        let mut tar = Vec::new();
        flate2::read::GzDecoder::new(layer.blob().as_ref())
            .read_to_end(&mut tar)
            .unwrap();
        let mut archive = tar::Archive::new(tar.as_slice());
        let mut out = Vec::new();
        for entry in archive.entries().unwrap() {
            let mut entry = entry.unwrap();
            let header = entry.header().clone();
            let mut contents = String::new();
            entry.read_to_string(&mut contents).unwrap();
            out.push(format!(
                "{} {:o} {}:{} mtime={} {contents:?}",
                entry.path().unwrap().display(),
                header.mode().unwrap(),
                header.uid().unwrap(),
                header.gid().unwrap(),
                header.mtime().unwrap(),
            ));
        }
        out.join("\n")
    }

    #[test]
    fn the_same_inputs_give_the_same_digests_and_another_epoch_others() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("fleet");
        std::fs::write(&path, elf(2, 62, 1)).unwrap();
        let mut inputs = inputs();
        inputs.platforms.truncate(1);
        let binaries = [(platform("linux/amd64"), path)];
        let first = assemble(&inputs, &binaries).unwrap();
        let again = assemble(&inputs, &binaries).unwrap();
        assert_eq!(first.index.bytes(), again.index.bytes());
        inputs.source_date_epoch += 1;
        let later = assemble(&inputs, &binaries).unwrap();
        assert_ne!(first.index.digest(), later.index.digest());
    }
}
