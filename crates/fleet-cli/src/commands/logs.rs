//! `fleet logs NAME [-f] [--tail N]`: the container's output (stderr to stderr).

use std::io::Write as _;
use std::process::ExitCode;

use fleet_core::InstanceName;
use fleet_core::engine::LogOptions;
use futures::StreamExt as _;

use crate::cli::RegistryArgs;
use crate::commands::{Context, open_existing_fleet, runtime};
use crate::output::usage;

#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// The instance.
    name: String,

    /// Keep printing new output.
    #[arg(long, short = 'f')]
    follow: bool,

    /// Only the last N lines.
    #[arg(long, value_name = "N")]
    tail: Option<usize>,

    #[command(flatten)]
    registry: RegistryArgs,
}

pub(crate) fn run(context: &Context, args: &Args) -> anyhow::Result<ExitCode> {
    let name: InstanceName = args.name.parse().map_err(usage)?;
    if context.out.is_json() && args.follow {
        return Err(usage(std::io::Error::other(
            "--json prints one document and cannot --follow; use --tail",
        )));
    }
    runtime()?.block_on(async {
        let fleet = open_existing_fleet(context, &args.registry).await?;
        let mut lines = fleet.logs(
            &name,
            LogOptions {
                tail: args.tail,
                follow: args.follow,
            },
        )?;
        let mut collected = Vec::new();
        while let Some(line) = lines.next().await {
            let line = line?;
            if context.out.is_json() {
                collected.push(line);
            } else if line.stream == "stderr" {
                std::io::stderr().lock().write_all(line.text.as_bytes())?;
            } else {
                let mut stdout = std::io::stdout().lock();
                stdout.write_all(line.text.as_bytes())?;
                stdout.flush()?;
            }
        }
        if context.out.is_json() {
            context.out.json(&collected)?;
        }
        anyhow::Ok(())
    })?;
    Ok(ExitCode::SUCCESS)
}
