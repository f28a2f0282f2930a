//! `fleet ports`: every host port fleet holds, and for whom.

use std::process::ExitCode;

use fleet_core::FleetState;

use crate::commands::Context;

#[derive(Debug, clap::Args)]
pub(crate) struct Args {}

pub(crate) fn run(context: &Context, _args: &Args) -> anyhow::Result<ExitCode> {
    // The store alone: listing ports asks no engine.
    let ports = FleetState::open(&context.state_dir)?.ports()?;
    if context.out.is_json() {
        context.out.json(&ports)?;
        return Ok(ExitCode::SUCCESS);
    }
    let rows = ports
        .iter()
        .map(|p| {
            vec![
                p.host.to_string(),
                p.instance.to_string(),
                p.container.to_string(),
                p.allocated_at.to_string(),
            ]
        })
        .collect();
    context
        .out
        .table(&["PORT", "INSTANCE", "CONTAINER PORT", "ALLOCATED"], rows)?;
    Ok(ExitCode::SUCCESS)
}
