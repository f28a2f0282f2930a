//! `cargo xtask release`: fleet published with one command.
//!
//! The steps, each printed as it runs (and all of them, changing nothing, with
//! `--dry-run`):
//!
//! 1. The work tree is clean and the tests pass (`--skip-tests` skips them).
//! 2. The workspace version moves (`--version X.Y.Z` or `--bump`): `[workspace.package]`
//!    and every internal dependency's `version` (`version.rs`), then `Cargo.lock`.
//! 3. `CHANGELOG.md` gains a section from the commits since the last release tag
//!    (`changelog.rs`, release-plz's format).
//! 4. A commit `Release vX.Y.Z` and the annotated tag `vX.Y.Z` (`git.rs`).
//! 5. The image tags: fleet-registry's [`ReleaseTags`], against the tags already in the
//!    registry, so what is published is exactly what `v1` will find there.
//! 6. The images: one `docker buildx` build (`buildx.rs`) when buildx exists, else the
//!    daemonless builder (`image.rs`): static binaries packed into OCI layers, pushed
//!    with fleet-registry's client; pushed only with `--push`.
//! 7. With `--push`, the crates, in dependency order, skipping those already on the
//!    index (`publish.rs`; `--no-publish-crates` leaves them out).
//!
//! When HEAD already carries the tag of the version asked for (the release workflow runs
//! on a pushed tag), steps 2 to 4 are done: the release builds and pushes that commit.

pub(crate) mod buildx;
mod changelog;
mod git;
pub(crate) mod image;
pub(crate) mod publish;
mod version;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

use anyhow::{Context as _, bail};
use clap::Parser as _;
use fleet_registry::{CommitSha, ImageRef, Platform, ReleaseTags};
use semver::Version;

use self::git::Repo;
use self::version::Bump;

/// The repository's web address, for the changelog's links and the images' `source`.
const REPOSITORY: &str = "https://github.com/fleet-rs/fleet";

/// `cargo xtask release`'s command line.
#[derive(Debug, clap::Parser)]
#[command(
    name = "cargo xtask release",
    about = "Release fleet: versions, changelog, commit and tag, images, crates",
    after_help = "Without --push nothing leaves this machine: the commit and tag are local and the images are built, not pushed."
)]
struct Args {
    /// The version to release.
    #[arg(long, value_name = "X.Y.Z", conflicts_with = "bump")]
    version: Option<Version>,

    /// Which part of the current version moves.
    #[arg(long, value_enum)]
    bump: Option<Bump>,

    /// The image repository.
    #[arg(long, value_name = "REF", default_value = "ghcr.io/fleet-rs/fleet")]
    registry: String,

    /// The image platforms.
    #[arg(
        long,
        value_name = "PLATFORMS",
        value_delimiter = ',',
        default_value = "linux/amd64,linux/arm64"
    )]
    platforms: Vec<Platform>,

    /// Push the images and publish the crates.
    #[arg(long)]
    push: bool,

    /// Print the whole plan and change nothing.
    #[arg(long)]
    dry_run: bool,

    /// Do not run the tests first.
    #[arg(long)]
    skip_tests: bool,

    /// Do not publish the crates to crates.io.
    #[arg(long)]
    no_publish_crates: bool,

    /// How to build the images: buildx when `docker buildx` exists (auto), or without a
    /// daemon.
    #[arg(long, value_enum, default_value = "auto")]
    builder: BuilderChoice,

    /// A prebuilt static binary for a platform whose Rust target is not installed.
    #[arg(long = "binary", value_name = "PLATFORM=PATH", value_parser = parse_binary)]
    binaries: Vec<(Platform, PathBuf)>,

    /// Publish an index without the platforms that could not be built.
    #[arg(long)]
    allow_missing_platform: bool,

    /// The crates.io sparse index asked whether a crate version is already published.
    #[arg(long, value_name = "URL", default_value = "https://index.crates.io/")]
    crates_index: String,

    /// The cargo profile the daemonless builder compiles with.
    #[arg(long, value_name = "PROFILE", default_value = "release")]
    cargo_profile: String,

    /// The repository to release (default: this workspace).
    #[arg(long, value_name = "DIR", hide = true)]
    root: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum BuilderChoice {
    /// buildx when `docker buildx version` works, else daemonless.
    Auto,
    /// `docker buildx build`: one multi-platform build, as GitHub Actions does.
    Buildx,
    /// Static binaries packed into OCI layers and pushed by fleet-registry.
    Daemonless,
}

fn parse_binary(text: &str) -> Result<(Platform, PathBuf), String> {
    let (platform, path) = text
        .split_once('=')
        .ok_or_else(|| format!("{text:?}: expected PLATFORM=PATH, as linux/arm64=dist/fleet"))?;
    let platform = platform
        .parse()
        .map_err(|error| format!("{platform:?} is not a platform: {error}"))?;
    Ok((platform, PathBuf::from(path)))
}

/// Runs the release task with its arguments.
pub(crate) fn run(args: &[String]) -> anyhow::Result<ExitCode> {
    let args = match Args::try_parse_from(
        std::iter::once("cargo xtask release".to_owned()).chain(args.iter().cloned()),
    ) {
        Ok(args) => args,
        Err(error) => {
            let code = if error.use_stderr() { 2 } else { 0 };
            let _ = error.print();
            return Ok(ExitCode::from(code));
        }
    };
    let mut plan = plan(&args)?;
    print!("{}", plan.describe());
    if args.dry_run {
        println!("\ndry run: nothing was changed");
        let mut blockers = std::mem::take(&mut plan.blockers);
        return match blockers.len() {
            0 => Ok(ExitCode::SUCCESS),
            1 => Err(blockers.remove(0).context("the release would stop")),
            _ => {
                let all: Vec<String> = blockers.iter().map(|error| format!("{error:#}")).collect();
                bail!("the release would stop:\n- {}", all.join("\n- "))
            }
        };
    }
    execute(&args, &plan)?;
    Ok(ExitCode::SUCCESS)
}

/// What a release will do, decided before anything changes.
#[derive(Debug)]
struct Plan {
    root: PathBuf,
    current: Version,
    version: Version,
    /// HEAD already carries `vX.Y.Z`: only images and crates remain.
    tagged: Option<String>,
    previous_tag: Option<String>,
    commits: usize,
    changelog: String,
    run_tests: bool,
    repository: ImageRef,
    existing_tags: Vec<String>,
    /// Whether the work tree has changes (a dry run goes on).
    dirty: bool,
    /// Why the release would stop (a dry run shows the plan, then fails with these).
    blockers: Vec<anyhow::Error>,
    /// Why the registry's tags or the crates index could not be read (a dry run goes
    /// on without them; a release stops).
    unknown: Vec<String>,
    tags: ReleaseTags,
    builder: Builder,
    sources: Vec<(Platform, image::BinarySource)>,
    crates: CratesStep,
    push: bool,
    cargo_profile: String,
    allow_missing_platform: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Builder {
    Buildx,
    Daemonless,
}

#[derive(Debug)]
enum CratesStep {
    Publish(Vec<publish::CrateRelease>),
    /// A dry run that could not read the index: the crates, in order.
    Unknown(Vec<String>),
    Skipped(&'static str),
}

fn plan(args: &Args) -> anyhow::Result<Plan> {
    let root = match &args.root {
        Some(root) => std::path::absolute(root)?,
        None => crate::workspace_root(),
    };
    let repo = Repo::open(&root)?;
    // A dry run shows the plan of a tree with changes too, then fails as the release would.
    let mut blockers = Vec::new();
    let dirty = match repo.ensure_clean() {
        Ok(()) => false,
        Err(error) if args.dry_run => {
            blockers.push(error);
            true
        }
        Err(error) => return Err(error),
    };
    let current = version::read(&root)?;
    let version = match (&args.version, args.bump) {
        (Some(version), _) => version.clone(),
        (None, Some(bump)) => bump.apply(&current)?,
        (None, None) => bail!(
            "which version? give --version X.Y.Z or --bump major|minor|patch|prerelease (the workspace is at {current})"
        ),
    };
    let tag = format!("v{version}");
    let head = repo.head()?;
    let tagged = match repo.tag_commit(&tag)? {
        Some(commit) if commit == head && version == current => Some(commit),
        Some(commit) => bail!(
            "the tag {tag} already exists (at {}); a release is never made twice: choose another version",
            &commit[..7]
        ),
        None if version < current => bail!(
            "{version} is not after the workspace's version {current}: a release moves the version forward (an older line is released from its own branch, where the version is older)"
        ),
        None => None,
    };
    // The changelog's commits: those since the release before this one.
    let previous_tag = match &tagged {
        Some(_) => repo.last_release_tag_before(&tag)?,
        None => repo.last_release_tag()?,
    };
    let commits = match &tagged {
        Some(_) => repo.commits_between(previous_tag.as_deref(), &tag)?,
        None => repo.commits_between(previous_tag.as_deref(), "HEAD")?,
    };
    let date = release_date()?;
    let changelog = changelog::section(
        &changelog::Release {
            version: &version,
            previous_tag: previous_tag.as_deref(),
            date: &date,
            repository: REPOSITORY,
        },
        &commits,
    );

    let repository: ImageRef = args
        .registry
        .parse()
        .with_context(|| format!("--registry {}: not an image repository", args.registry))?;
    let mut unknown = Vec::new();
    let existing_tags = match registry_tags(&repository) {
        Ok(tags) => tags,
        Err(error) if args.dry_run => {
            unknown.push(format!(
                "{error:#}: the tags below assume an empty repository"
            ));
            Vec::new()
        }
        Err(error) => return Err(error),
    };
    let sha = tagged
        .as_deref()
        .map(|commit| commit.parse::<CommitSha>())
        .transpose()
        .context("HEAD's hash")?;
    let tags = ReleaseTags::compute(&version, sha.as_ref(), &existing_tags);

    let builder = match args.builder {
        BuilderChoice::Buildx => Builder::Buildx,
        BuilderChoice::Daemonless => Builder::Daemonless,
        BuilderChoice::Auto if buildx::available() => Builder::Buildx,
        BuilderChoice::Auto => Builder::Daemonless,
    };
    // Fails naming each platform without a binary, unless --allow-missing-platform.
    let sources = match builder {
        Builder::Daemonless => {
            let mut inputs = image_inputs(args, &root, &version, "", 0);
            match image::binary_sources(&inputs) {
                Ok(sources) => sources,
                // A dry run shows every platform, then fails naming the missing ones.
                Err(error) if args.dry_run => {
                    blockers.push(error);
                    inputs.allow_missing_platform = true;
                    image::binary_sources(&inputs)?
                }
                Err(error) => return Err(error),
            }
        }
        Builder::Buildx => Vec::new(),
    };

    let crates = if args.no_publish_crates {
        CratesStep::Skipped("--no-publish-crates")
    } else {
        match publish::plan(&root, &version, &args.crates_index) {
            Ok(crates) => CratesStep::Publish(crates),
            Err(error) if args.dry_run => {
                unknown.push(format!(
                    "{error:#}: whether each crate is already published is not known"
                ));
                CratesStep::Unknown(publish::publish_order(&root)?)
            }
            Err(error) => return Err(error),
        }
    };

    Ok(Plan {
        root,
        current,
        version,
        tagged,
        previous_tag,
        commits: commits.len(),
        changelog,
        run_tests: !args.skip_tests,
        repository,
        existing_tags,
        dirty,
        blockers,
        unknown,
        tags,
        builder,
        sources,
        crates,
        push: args.push,
        cargo_profile: args.cargo_profile.clone(),
        allow_missing_platform: args.allow_missing_platform,
    })
}

/// The release date: `SOURCE_DATE_EPOCH`'s day when it is set, else today (UTC).
fn release_date() -> anyhow::Result<String> {
    let now = match source_date_epoch_env()? {
        Some(seconds) => jiff::Timestamp::from_second(seconds)?,
        None => jiff::Timestamp::now(),
    };
    Ok(jiff::tz::TimeZone::UTC.to_datetime(now).date().to_string())
}

fn source_date_epoch_env() -> anyhow::Result<Option<i64>> {
    match std::env::var("SOURCE_DATE_EPOCH") {
        Ok(text) if !text.trim().is_empty() => {
            Ok(Some(text.trim().parse().with_context(|| {
                format!("SOURCE_DATE_EPOCH={text:?} is not a number of seconds")
            })?))
        }
        _ => Ok(None),
    }
}

/// The tags already in the repository (none when it does not exist yet).
fn registry_tags(repository: &ImageRef) -> anyhow::Result<Vec<String>> {
    runtime()?.block_on(async {
        let client = registry_client()?;
        match client.fetch_tags(repository).await {
            Ok(tags) => Ok(tags),
            Err(fleet_registry::Error::RepositoryNotFound { .. }) => Ok(Vec::new()),
            Err(error) => Err(anyhow::Error::new(error).context(format!(
                "cannot list the tags of {repository}: the tag set depends on them"
            ))),
        }
    })
}

fn registry_client() -> anyhow::Result<fleet_registry::Client> {
    Ok(fleet_registry::Client::new(
        fleet_registry::ClientConfig::default(),
    )?)
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?)
}

fn image_inputs(
    args: &Args,
    root: &Path,
    version: &Version,
    revision: &str,
    source_date_epoch: i64,
) -> image::ImageInputs {
    image::ImageInputs {
        root: root.to_path_buf(),
        package: "fleet-cli".to_owned(),
        bin: "fleet".to_owned(),
        version: version.clone(),
        revision: revision.to_owned(),
        source: REPOSITORY.to_owned(),
        source_date_epoch,
        platforms: args.platforms.clone(),
        binaries: args.binaries.clone(),
        allow_missing_platform: args.allow_missing_platform,
        cargo_profile: args.cargo_profile.clone(),
    }
}

impl Plan {
    /// The plan, as printed before a release and by `--dry-run`.
    fn describe(&self) -> String {
        let mut out = String::new();
        let tag = format!("v{}", self.version);
        let _ = writeln!(
            out,
            "release fleet {} (the workspace is at {}) from {}",
            self.version,
            self.current,
            self.root.display()
        );
        let tests = if self.run_tests {
            "the tests run first"
        } else {
            "tests skipped (--skip-tests)"
        };
        let clean = if self.dirty {
            "the work tree has changes (the release would stop here)"
        } else {
            "the work tree is clean"
        };
        let _ = writeln!(out, "  checks     {clean}; {tests}");
        match &self.tagged {
            Some(commit) => {
                let _ = writeln!(
                    out,
                    "  git        HEAD ({}) is already tagged {tag}: versions, changelog, commit and tag are done",
                    &commit[..7]
                );
            }
            None => {
                let _ = writeln!(
                    out,
                    "  versions   Cargo.toml ([workspace.package] and internal dependencies) and Cargo.lock: {} -> {}",
                    self.current, self.version
                );
                let since = self
                    .previous_tag
                    .as_deref()
                    .map_or("the first commit".to_owned(), |tag| tag.to_owned());
                let _ = writeln!(
                    out,
                    "  changelog  CHANGELOG.md: a section for {} commit(s) since {since} (below)",
                    self.commits
                );
                let _ = writeln!(
                    out,
                    "  git        commit \"Release {tag}\" (Cargo.toml, Cargo.lock, CHANGELOG.md) and annotated tag {tag}"
                );
            }
        }
        let mut tags = self.tags.tags().to_vec();
        if self.tagged.is_none() {
            tags.push("sha-<release commit>".to_owned());
        }
        let _ = writeln!(
            out,
            "  tags       {}: {} ({} tag(s) in the registry now)",
            self.repository,
            tags.join(", "),
            self.existing_tags.len()
        );
        for held in self.tags.held_back() {
            let _ = writeln!(
                out,
                "             held back: {} stays on {}, which is newer",
                held.tag, held.newer
            );
        }
        match self.builder {
            Builder::Buildx => {
                let _ = writeln!(
                    out,
                    "  images     docker buildx build of the Dockerfile, one multi-platform build"
                );
            }
            Builder::Daemonless => {
                let _ = writeln!(
                    out,
                    "  images     daemonless builder: static binaries in OCI layers, SOURCE_DATE_EPOCH = {}",
                    if std::env::var_os("SOURCE_DATE_EPOCH").is_some() {
                        "the environment's"
                    } else {
                        "the release commit's time"
                    }
                );
                for (platform, source) in &self.sources {
                    let source = match source {
                        image::BinarySource::Build { target } => format!(
                            "cargo build --profile {} --target {target} (static)",
                            self.cargo_profile
                        ),
                        image::BinarySource::Given(path) => format!("{} (given)", path.display()),
                        image::BinarySource::Missing { .. } if self.allow_missing_platform => {
                            "no binary: left out (--allow-missing-platform)".to_owned()
                        }
                        image::BinarySource::Missing { .. } => {
                            "no binary: the release would stop (below)".to_owned()
                        }
                    };
                    let _ = writeln!(out, "             {platform}: {source}");
                }
            }
        }
        let push = if self.push {
            "pushed under every tag above"
        } else {
            "built, not pushed (no --push)"
        };
        let _ = writeln!(out, "             {push}");
        match &self.crates {
            CratesStep::Skipped(why) => {
                let _ = writeln!(out, "  crates     not published ({why})");
            }
            CratesStep::Unknown(names) => {
                let _ = writeln!(
                    out,
                    "  crates     in this order, each unless the index has {} already: {}",
                    self.version,
                    names.join(", ")
                );
            }
            CratesStep::Publish(crates) => {
                let when = if self.push {
                    "published in this order"
                } else {
                    "would be published in this order with --push"
                };
                let _ = writeln!(out, "  crates     {when}:");
                for release in crates {
                    let _ = writeln!(
                        out,
                        "             {} {}{}",
                        release.name,
                        release.version,
                        match release.action {
                            publish::PublishAction::Publish => "",
                            publish::PublishAction::AlreadyPublished =>
                                " (already published: skipped)",
                        }
                    );
                }
            }
        }
        for what in &self.unknown {
            let _ = writeln!(out, "  unknown    {what}");
        }
        if self.tagged.is_none() {
            out.push_str("\nchangelog section:\n\n");
            out.push_str(&self.changelog);
        }
        out
    }
}

fn execute(args: &Args, plan: &Plan) -> anyhow::Result<()> {
    let repo = Repo::open(&plan.root)?;
    if plan.run_tests {
        run_tests(&plan.root)?;
    }
    let tag = format!("v{}", plan.version);
    let commit = match &plan.tagged {
        Some(commit) => commit.clone(),
        None => {
            step(&format!("versions: {} -> {}", plan.current, plan.version));
            version::write(&plan.root, &plan.version)?;
            crate::run_checked(
                Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
                    .current_dir(&plan.root)
                    .args(["update", "--workspace", "--offline", "--quiet"]),
            )
            .context("cannot update Cargo.lock to the new version")?;
            step("changelog: CHANGELOG.md");
            let path = plan.root.join("CHANGELOG.md");
            let existing = match std::fs::read_to_string(&path) {
                Ok(text) => Some(text),
                Err(error) if error.kind() == std::io::ErrorKind::NotFound => None,
                Err(error) => {
                    return Err(error).with_context(|| format!("cannot read {}", path.display()));
                }
            };
            std::fs::write(
                &path,
                changelog::prepend(existing.as_deref(), &plan.changelog),
            )
            .with_context(|| format!("cannot write {}", path.display()))?;
            let commit = repo.commit(
                &["Cargo.toml", "Cargo.lock", "CHANGELOG.md"],
                &format!("Release {tag}"),
            )?;
            repo.tag(
                &tag,
                &format!("fleet {}\n\n{}", plan.version, plan.changelog),
            )?;
            step(&format!("git: commit {} tagged {tag}", &commit[..7]));
            commit
        }
    };
    let sha: CommitSha = commit.parse().context("the release commit's hash")?;
    let tags = ReleaseTags::compute(&plan.version, Some(&sha), &plan.existing_tags);
    step(&format!("tags: {}", tags.tags().join(", ")));
    let source_date_epoch = match source_date_epoch_env()? {
        Some(seconds) => seconds,
        None => repo.head_time()?,
    };
    let inputs = image_inputs(args, &plan.root, &plan.version, &commit, source_date_epoch);
    match plan.builder {
        Builder::Buildx => {
            let mut command = buildx::command(&inputs, &plan.repository, tags.tags(), plan.push)?;
            crate::run_checked(&mut command)?;
        }
        Builder::Daemonless => {
            let binaries = image::binaries(&inputs)?;
            let assembled = image::assemble(&inputs, &binaries)?;
            step(&format!("images: index {}", assembled.index.digest()));
            if plan.push {
                let digest = runtime()?.block_on(async {
                    let client = registry_client()?;
                    image::push(&client, &plan.repository, &assembled, tags.tags()).await
                })?;
                step(&format!(
                    "images: pushed {}@{digest} as {}",
                    plan.repository,
                    tags.tags().join(", ")
                ));
            }
        }
    }
    if plan.push
        && let CratesStep::Publish(crates) = &plan.crates
    {
        publish::publish(&plan.root, crates, None)?;
    }
    step(&format!("released fleet {}", plan.version));
    if !plan.push {
        step(&format!(
            "nothing was pushed: `git push origin HEAD {tag}` starts the release workflow, which runs this with --push"
        ));
    }
    Ok(())
}

fn step(what: &str) {
    eprintln!("xtask: release: {what}");
}

/// The tests of the repository released: `cargo xtask test` where there is an xtask,
/// `cargo test --workspace` elsewhere.
fn run_tests(root: &Path) -> anyhow::Result<()> {
    let mut command = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    command.current_dir(root);
    if root.join("xtask").is_dir() {
        command.args(["xtask", "test"]);
    } else {
        command.args(["test", "--workspace"]);
    }
    crate::run_checked(&mut command).context("the tests failed: nothing was released")
}
