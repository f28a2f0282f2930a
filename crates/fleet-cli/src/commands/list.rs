//! `fleet ls`: every instance, with its container's state and last known health.

use std::process::ExitCode;

use crate::cli::RegistryArgs;
use crate::commands::{
    Context, instance_json, open_existing_fleet, ports_text, runtime, short_digest,
};

#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    #[command(flatten)]
    registry: RegistryArgs,
}

pub(crate) fn run(context: &Context, args: &Args) -> anyhow::Result<ExitCode> {
    let overview = runtime()?.block_on(async {
        let fleet = open_existing_fleet(context, &args.registry).await?;
        anyhow::Ok(fleet.overview().await?)
    })?;
    if context.out.is_json() {
        let entries: Vec<_> = overview
            .iter()
            .map(|o| instance_json(&o.instance, o.state, o.health))
            .collect();
        context.out.json(&entries)?;
        return Ok(ExitCode::SUCCESS);
    }
    let rows = overview
        .iter()
        .map(|o| {
            let i = &o.instance;
            vec![
                i.name.to_string(),
                i.group.clone().unwrap_or_else(|| "-".into()),
                i.image.clone(),
                i.channel.clone(),
                i.tag.clone().unwrap_or_else(|| "-".into()),
                i.digest
                    .as_ref()
                    .map(|d| short_digest(d.as_str()))
                    .unwrap_or("-")
                    .to_owned(),
                o.state
                    .map_or_else(|| "missing".to_owned(), |s| s.to_string()),
                o.health.map_or_else(|| "-".into(), |h| h.to_string()),
                ports_text(&i.ports),
            ]
        })
        .collect();
    context.out.table(
        &[
            "NAME", "GROUP", "IMAGE", "CHANNEL", "TAG", "DIGEST", "STATE", "HEALTH", "PORTS",
        ],
        rows,
    )?;
    Ok(ExitCode::SUCCESS)
}
