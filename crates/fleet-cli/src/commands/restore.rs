//! `fleet restore NAME latest|ID|PATH`: an instance's data from one of its backups.

use std::process::ExitCode;

use fleet_core::{InstanceName, RestoreSource};

use crate::cli::RegistryArgs;
use crate::commands::{Context, open_existing_fleet, runtime};
use crate::output::usage;
use crate::progress::ProgressView;

#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// The instance.
    name: String,

    /// `latest`, a backup id (see `fleet backups NAME`), or an archive file.
    #[arg(value_name = "latest|ID|PATH")]
    source: String,

    #[command(flatten)]
    registry: RegistryArgs,
}

pub(crate) fn run(context: &Context, args: &Args) -> anyhow::Result<ExitCode> {
    let name: InstanceName = args.name.parse().map_err(usage)?;
    let source: RestoreSource = args.source.parse().map_err(usage)?;
    let restored = runtime()?.block_on(async {
        let fleet = open_existing_fleet(context, &args.registry).await?;
        let progress = ProgressView::new(context.out, &format!("restoring {name}"));
        let restored = fleet
            .restore(&name, &source, &|step| progress.show(step))
            .await;
        progress.finish();
        anyhow::Ok(restored?)
    })?;
    if context.out.is_json() {
        context.out.json(&restored)?;
        return Ok(ExitCode::SUCCESS);
    }
    let from = match &restored.backup {
        Some(backup) => format!("backup {} ({})", backup.id, backup.created_at),
        None => restored.archive.display().to_string(),
    };
    let mut lines = vec![format!("{name}: restored {from}, {} files", restored.files)];
    if restored.restarted {
        lines.push(format!(
            "{name} is running and healthy again after {:.1}s down",
            restored.downtime_ms as f64 / 1000.0
        ));
    }
    lines.push(format!(
        "the replaced data is backup {}: `fleet restore {name} {}` undoes this restore",
        restored.pre_restore.id, restored.pre_restore.id
    ));
    context.out.lines(&lines)?;
    Ok(ExitCode::SUCCESS)
}
