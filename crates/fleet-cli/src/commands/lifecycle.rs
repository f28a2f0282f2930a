//! `fleet start|stop|restart NAME...`.

use std::process::ExitCode;

use fleet_core::InstanceName;

use crate::cli::RegistryArgs;
use crate::commands::{Context, instance_json, open_fleet, runtime};
use crate::output::usage;

#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// The instances.
    #[arg(required = true)]
    names: Vec<String>,

    #[command(flatten)]
    registry: RegistryArgs,
}

/// What to do to each instance.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Action {
    Start,
    Stop,
    Restart,
}

pub(crate) fn run(context: &Context, args: &Args, action: Action) -> anyhow::Result<ExitCode> {
    let names = args
        .names
        .iter()
        .map(|n| n.parse::<InstanceName>().map_err(usage))
        .collect::<Result<Vec<_>, _>>()?;
    let instances = runtime()?.block_on(async {
        let fleet = open_fleet(context, &args.registry).await?;
        let mut done = Vec::new();
        for name in &names {
            let instance = match action {
                Action::Start => fleet.start(name).await,
                Action::Stop => fleet.stop(name).await,
                Action::Restart => fleet.restart(name).await,
            }?;
            if !context.out.is_json() {
                let verb = match action {
                    Action::Start => "started",
                    Action::Stop => "stopped",
                    Action::Restart => "restarted",
                };
                context.out.lines(&[format!("{verb} {name}")])?;
            }
            done.push(instance);
        }
        anyhow::Ok(done)
    })?;
    if context.out.is_json() {
        let entries: Vec<_> = instances
            .iter()
            .map(|i| instance_json(i, None, None))
            .collect();
        context.out.json(&entries)?;
    }
    Ok(ExitCode::SUCCESS)
}
