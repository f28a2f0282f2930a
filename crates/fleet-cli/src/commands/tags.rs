//! `fleet tags VERSION [--sha SHA] [--existing-from REF]`: the tags a release publishes.

use std::process::ExitCode;

use fleet_registry::{CommitSha, ImageRef, ReleaseTags, Version};

use crate::cli::RegistryArgs;
use crate::commands::{Context, runtime};
use crate::output::usage;

#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// The release version: `1.4.2`, `v1.4.2`, `2.0.0-rc.1`.
    #[arg(value_name = "VERSION")]
    release: String,

    /// The release commit; adds `sha-<first 7 digits>`.
    #[arg(long, value_name = "SHA")]
    sha: Option<String>,

    /// Read the tags already in this repository, so that an older patch release does
    /// not move `v1` or `latest` away from a newer one.
    #[arg(long, value_name = "REF")]
    existing_from: Option<String>,

    #[command(flatten)]
    registry: RegistryArgs,
}

pub(crate) fn run(context: &Context, args: &Args) -> anyhow::Result<ExitCode> {
    let version = Version::from_tag(&args.release)
        .and_then(|version| version.to_semver())
        .ok_or_else(|| {
            usage(fleet_registry::Error::InvalidVersion {
                input: args.release.clone(),
                reason: "a release needs a full version: `1.4.2`, `v1.4.2`, `2.0.0-rc.1`"
                    .to_owned(),
            })
        })?;
    let sha = args
        .sha
        .as_deref()
        .map(str::parse::<CommitSha>)
        .transpose()
        .map_err(usage)?;
    let existing = match &args.existing_from {
        None => Vec::new(),
        Some(reference) => {
            let image: ImageRef = reference.parse().map_err(usage)?;
            let client = args.registry.client()?;
            match runtime()?.block_on(client.fetch_tags(&image)) {
                Ok(tags) => tags,
                Err(fleet_registry::Error::RepositoryNotFound { .. }) => {
                    context.out.note(&format!(
                        "{} does not exist yet: no tags to keep",
                        image.name()
                    ));
                    Vec::new()
                }
                Err(error) => {
                    return Err(anyhow::Error::new(error).context("cannot read the existing tags"));
                }
            }
        }
    };
    let release = ReleaseTags::compute(&version, sha.as_ref(), &existing);
    for held in release.held_back() {
        context.out.note(&format!(
            "{} stays on {}, a newer release",
            held.tag, held.newer
        ));
    }
    if context.out.is_json() {
        context.out.json(&release.tags())?;
    } else {
        context.out.lines(release.tags())?;
    }
    Ok(ExitCode::SUCCESS)
}
