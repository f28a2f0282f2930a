//! `fleet reconcile`: make the engine agree with the store again.

use std::process::ExitCode;

use crate::cli::RegistryArgs;
use crate::commands::{Context, open_fleet, runtime};

#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    #[command(flatten)]
    registry: RegistryArgs,
}

pub(crate) fn run(context: &Context, args: &Args) -> anyhow::Result<ExitCode> {
    let report = runtime()?.block_on(async {
        let fleet = open_fleet(context, &args.registry).await?;
        anyhow::Ok(fleet.reconcile().await?)
    })?;
    if context.out.is_json() {
        context.out.json(&report)?;
    } else if report.repaired.is_empty() {
        context
            .out
            .lines(&["nothing to repair: the engine agrees with the store"])?;
    } else {
        let lines: Vec<String> = report
            .repaired
            .iter()
            .map(|r| format!("{}: {}", r.drift, r.action))
            .collect();
        context.out.lines(&lines)?;
    }
    Ok(ExitCode::SUCCESS)
}
