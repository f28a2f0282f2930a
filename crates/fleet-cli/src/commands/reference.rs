//! `fleet ref REF`: how a reference is read, offline.

use std::process::ExitCode;

use fleet_registry::{Channel, ImageRef};

use crate::commands::Context;
use crate::output::usage;

#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// An image reference: `nginx`, `owner/app:v1`, `ghcr.io/owner/app@sha256:…`.
    #[arg(value_name = "REF")]
    reference: String,
}

/// `--json`: the contract of `docs/cli.md`.
#[derive(serde::Serialize)]
struct Json<'a> {
    registry: &'a str,
    repository: &'a str,
    tag: Option<&'a str>,
    digest: Option<String>,
    normalized: String,
}

pub(crate) fn run(context: &Context, args: &Args) -> anyhow::Result<ExitCode> {
    let image: ImageRef = args.reference.parse().map_err(usage)?;
    if context.out.is_json() {
        context.out.json(&Json {
            registry: image.registry(),
            repository: image.repository(),
            tag: image.tag(),
            digest: image.digest().map(ToString::to_string),
            normalized: image.to_string(),
        })?;
    } else {
        context.out.fields(&[
            ("normalized", Some(image.to_string())),
            ("familiar", Some(image.familiar())),
            ("registry", Some(image.registry().to_owned())),
            ("repository", Some(image.repository().to_owned())),
            ("tag", image.tag().map(str::to_owned)),
            ("digest", image.digest().map(ToString::to_string)),
            ("channel", Some(describe(&Channel::from_image(&image)))),
        ])?;
    }
    Ok(ExitCode::SUCCESS)
}

/// A channel and what it follows, for people.
pub(crate) fn describe(channel: &Channel) -> String {
    let meaning = match channel {
        Channel::Latest => "the tag `latest`".to_owned(),
        Channel::Series(version) => match version.minor() {
            Some(minor) => format!("the newest stable {}.{minor}.x", version.major()),
            None => format!("the newest stable {}.x.y", version.major()),
        },
        Channel::Exact(version) => format!("exactly version {version}"),
        Channel::Range(range) => format!("the newest stable version matching {range}"),
        Channel::Tag(_) => "exactly this tag".to_owned(),
        Channel::Digest(_) => "exactly this manifest".to_owned(),
        _ => "a channel".to_owned(),
    };
    format!("{channel} ({meaning})")
}
