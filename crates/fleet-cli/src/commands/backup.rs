//! `fleet backup NAME...|--all` and `fleet backups NAME`: archives of instances' data.

use std::process::ExitCode;

use fleet_core::{Backup, BackupReason, BackupRun, InstanceName};

use crate::cli::RegistryArgs;
use crate::commands::{Context, open_existing_fleet, runtime, short_digest};
use crate::output::usage;
use crate::progress::ProgressView;

#[derive(Debug, clap::Args)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub(crate) struct Args {
    #[command(subcommand)]
    action: Option<Action>,

    /// The instances to back up.
    #[arg(required_unless_present = "all", conflicts_with = "all")]
    names: Vec<String>,

    /// Back up every instance.
    #[arg(long)]
    all: bool,

    #[command(flatten)]
    registry: RegistryArgs,
}

#[derive(Debug, clap::Subcommand)]
enum Action {
    /// Apply the retention of `[backup]` in config.toml now.
    Prune(PruneArgs),
}

#[derive(Debug, clap::Args)]
struct PruneArgs {
    /// The instance (default: every instance).
    name: Option<String>,

    /// Say what would be deleted; delete nothing.
    #[arg(long)]
    dry_run: bool,

    #[command(flatten)]
    registry: RegistryArgs,
}

#[derive(Debug, clap::Args)]
pub(crate) struct VerifyArgs {
    /// An archive file, or an instance.
    target: String,

    /// The backup of the instance to check (default: its newest).
    id: Option<i64>,
}

#[derive(Debug, clap::Args)]
pub(crate) struct ListArgs {
    /// The instance.
    name: String,

    #[command(flatten)]
    registry: RegistryArgs,
}

/// A backup just taken in `--json` output: the backup's fields, plus how its data was
/// made consistent (`exec`, `downtime_ms`) and `duration_ms`.
#[derive(serde::Serialize)]
struct RunJson<'a> {
    #[serde(flatten)]
    backup: &'a Backup,
    #[serde(skip_serializing_if = "Option::is_none")]
    exec: Option<&'a fleet_core::ExecRun>,
    #[serde(skip_serializing_if = "Option::is_none")]
    downtime_ms: Option<u64>,
    duration_ms: u64,
}

fn run_json(run: &BackupRun) -> RunJson<'_> {
    RunJson {
        backup: &run.backup,
        exec: run.exec.as_ref(),
        downtime_ms: run.downtime_ms,
        duration_ms: run.duration_ms,
    }
}

/// `alice: /path (1.2 MiB, 12 files) in 0.3s`, and what the consistency hook did.
fn run_line(run: &BackupRun) -> String {
    let backup = &run.backup;
    let mut line = format!(
        "{}: {} ({}, {} files) in {:.1}s",
        backup.instance,
        backup.path.display(),
        indicatif::HumanBytes(backup.size),
        backup.files,
        run.duration_ms as f64 / 1000.0
    );
    if let Some(exec) = &run.exec {
        line.push_str(&format!(
            "; ran `{}` first ({:.1}s)",
            exec.command.join(" "),
            exec.duration_ms as f64 / 1000.0
        ));
    }
    if let Some(downtime) = run.downtime_ms {
        line.push_str(&format!(
            "; stopped for the copy: down {:.1}s",
            downtime as f64 / 1000.0
        ));
    }
    if let Some(key) = &backup.remote {
        line.push_str(&format!("; copied off-host to {key}"));
    }
    line
}

pub(crate) fn run(context: &Context, args: &Args) -> anyhow::Result<ExitCode> {
    if let Some(Action::Prune(prune_args)) = &args.action {
        return prune(context, prune_args);
    }
    let names = args
        .names
        .iter()
        .map(|n| n.parse::<InstanceName>().map_err(usage))
        .collect::<Result<Vec<_>, _>>()?;
    let backups = runtime()?.block_on(async {
        let fleet = open_existing_fleet(context, &args.registry).await?;
        let names = if args.all {
            fleet.list()?.into_iter().map(|i| i.name).collect()
        } else {
            // Every name is checked before anything is archived: a typo must not leave
            // the other backups taken and unreported.
            for name in &names {
                fleet.get(name)?;
            }
            names
        };
        let mut done = Vec::new();
        for name in &names {
            let progress = ProgressView::new(context.out, &format!("backing up {name}"));
            let run = fleet
                .backup_with_progress(name, BackupReason::Manual, &|step| progress.show(step))
                .await;
            progress.finish();
            let run = run?;
            if !context.out.is_json() {
                context.out.lines(&[run_line(&run)])?;
            }
            done.push(run);
        }
        anyhow::Ok(done)
    })?;
    if context.out.is_json() {
        if !args.all && backups.len() == 1 {
            context.out.json(&run_json(&backups[0]))?;
        } else {
            let entries: Vec<_> = backups.iter().map(run_json).collect();
            context.out.json(&entries)?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub(crate) fn list(context: &Context, args: &ListArgs) -> anyhow::Result<ExitCode> {
    let name: InstanceName = args.name.parse().map_err(usage)?;
    let backups = runtime()?.block_on(async {
        let fleet = open_existing_fleet(context, &args.registry).await?;
        match fleet.all_backups(&name).await {
            Ok(backups) => anyhow::Ok(backups),
            // The store off-host is unreachable or refuses: show what this host has.
            Err(error @ fleet_core::Error::Remote { .. }) => {
                context.out.note(&format!(
                    "off-host copies not listed: {:#}",
                    anyhow::Error::from(error)
                ));
                anyhow::Ok(fleet.backups(&name)?)
            }
            Err(error) => Err(error.into()),
        }
    })?;
    if context.out.is_json() {
        context.out.json(&backups)?;
        return Ok(ExitCode::SUCCESS);
    }
    let rows = backups
        .iter()
        .map(|b| {
            vec![
                if b.is_remote_only() {
                    "-".to_owned()
                } else {
                    b.id.to_string()
                },
                b.created_at.to_string(),
                b.reason.to_string(),
                indicatif::HumanBytes(b.size).to_string(),
                b.files.to_string(),
                b.tag.clone().unwrap_or_else(|| "-".into()),
                b.digest
                    .as_ref()
                    .map_or_else(|| "-".to_owned(), |d| short_digest(d.as_str()).to_owned()),
                b.version.clone().unwrap_or_else(|| "-".into()),
                match (&b.remote, b.is_remote_only()) {
                    (Some(key), true) => format!("remote only: {key}"),
                    (Some(_), false) => format!("{} (+ off-host)", b.path.display()),
                    _ => b.path.display().to_string(),
                },
            ]
        })
        .collect();
    context.out.table(
        &[
            "ID", "CREATED", "REASON", "SIZE", "FILES", "TAG", "DIGEST", "VERSION", "PATH",
        ],
        rows,
    )?;
    Ok(ExitCode::SUCCESS)
}

fn prune(context: &Context, args: &PruneArgs) -> anyhow::Result<ExitCode> {
    let name = args
        .name
        .as_deref()
        .map(|n| n.parse::<InstanceName>().map_err(usage))
        .transpose()?;
    let deleted = runtime()?.block_on(async {
        let fleet = open_existing_fleet(context, &args.registry).await?;
        let names = match name {
            Some(name) => vec![name],
            None => fleet.list()?.into_iter().map(|i| i.name).collect(),
        };
        let mut deleted = Vec::new();
        for name in &names {
            deleted.extend(fleet.prune_backups(name, args.dry_run).await?);
        }
        anyhow::Ok(deleted)
    })?;
    if context.out.is_json() {
        context.out.json(&deleted)?;
        return Ok(ExitCode::SUCCESS);
    }
    let verb = if args.dry_run {
        "would delete"
    } else {
        "deleted"
    };
    let mut lines: Vec<String> = deleted
        .iter()
        .map(|b| {
            format!(
                "{verb} {}: {} ({})",
                b.instance,
                b.path.display(),
                b.created_at
            )
        })
        .collect();
    if lines.is_empty() {
        lines.push("nothing to prune: every backup is within the retention".to_owned());
    }
    context.out.lines(&lines)?;
    Ok(ExitCode::SUCCESS)
}

/// `fleet verify PATH | NAME [ID]`: checks an archive end to end.
pub(crate) fn verify(context: &Context, args: &VerifyArgs) -> anyhow::Result<ExitCode> {
    let path = std::path::Path::new(&args.target);
    let archive = if args.id.is_none() && path.is_file() {
        path.to_owned()
    } else {
        let name: InstanceName = args.target.parse().map_err(usage)?;
        let state = fleet_core::FleetState::open(&context.state_dir)?;
        let backups = state.backups(&name)?;
        let backup = match args.id {
            Some(id) => backups.into_iter().find(|b| b.id == id),
            None => backups.into_iter().next(),
        };
        let backup = backup.ok_or_else(|| fleet_core::Error::NoSuchBackup {
            instance: name.to_string(),
            id: args.id,
        })?;
        backup.path
    };
    let verified = fleet_backup::verify(&archive, &mut |_| {})?;
    let summary = verified.manifest.summary();
    if context.out.is_json() {
        context.out.json(&serde_json::json!({
            "path": archive,
            "ok": true,
            "size": verified.archive_bytes,
            "files": summary.files,
            "sqlite": summary.sqlite,
        }))?;
    } else {
        context.out.lines(&[format!(
            "ok: {} ({}, {} files, {} SQLite snapshots)",
            archive.display(),
            indicatif::HumanBytes(verified.archive_bytes),
            summary.files,
            summary.sqlite
        )])?;
    }
    Ok(ExitCode::SUCCESS)
}
