//! `fleet resolve REF[:CHANNEL] [--platform P]`: a channel resolved to a digest.

use std::process::ExitCode;

use fleet_registry::{ChannelRef, Platform, ResolveOptions};

use crate::cli::RegistryArgs;
use crate::commands::reference::describe;
use crate::commands::{Context, runtime};
use crate::output::usage;

#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// A repository and channel: `nginx` (latest), `owner/app:v1`, `ghcr.io/o/app:^1.2`,
    /// `app:sha-1a2b3c4`, `app@sha256:…`.
    #[arg(value_name = "REF[:CHANNEL]")]
    reference: String,

    /// Also give the digest of this platform's manifest: `linux/amd64`, `linux/arm64`,
    /// `linux/arm/v7`.
    #[arg(long, value_name = "OS/ARCH[/VARIANT]")]
    platform: Option<String>,

    /// Let version channels pick prereleases (`v2` may then resolve to `v2.0.0-rc.1`).
    #[arg(long)]
    prereleases: bool,

    #[command(flatten)]
    registry: RegistryArgs,
}

/// `--json`: the contract of `docs/cli.md`.
#[derive(serde::Serialize)]
struct Json {
    reference: String,
    channel: String,
    tag: Option<String>,
    digest: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    platform: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    platform_digest: Option<String>,
}

pub(crate) fn run(context: &Context, args: &Args) -> anyhow::Result<ExitCode> {
    let tracked: ChannelRef = args.reference.parse().map_err(usage)?;
    let platform = args
        .platform
        .as_deref()
        .map(str::parse::<Platform>)
        .transpose()
        .map_err(usage)?;
    let options = ResolveOptions::default().with_prereleases(args.prereleases);
    let client = args.registry.client()?;
    let (resolved, platform_digest) = runtime()?.block_on(async {
        let resolved = client.resolve(&tracked, options).await?;
        let platform_digest = match &platform {
            Some(platform) => Some(client.platform_digest(&resolved.pinned(), platform).await?),
            None => None,
        };
        anyhow::Ok((resolved, platform_digest))
    })?;
    if context.out.is_json() {
        context.out.json(&Json {
            reference: resolved.image.to_string(),
            channel: resolved.channel.to_string(),
            tag: resolved.tag.clone(),
            digest: resolved.digest.to_string(),
            platform: platform.as_ref().map(ToString::to_string),
            platform_digest: platform_digest.as_ref().map(ToString::to_string),
        })?;
    } else {
        let mut fields = vec![
            ("reference", Some(resolved.image.to_string())),
            ("channel", Some(describe(&resolved.channel))),
            ("tag", resolved.tag.clone()),
            ("digest", Some(resolved.digest.to_string())),
        ];
        if let (Some(platform), Some(digest)) = (&platform, &platform_digest) {
            fields.push(("platform", Some(platform.to_string())));
            fields.push(("platform digest", Some(digest.to_string())));
        }
        context.out.fields(&fields)?;
    }
    Ok(ExitCode::SUCCESS)
}
