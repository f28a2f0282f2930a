//! `fleet update`, `fleet rollback`, `fleet history` and `fleet promote`: deployments.

use std::num::NonZeroUsize;
use std::process::ExitCode;
use std::sync::Mutex;

use fleet_core::{
    Deployment, InstanceName, Outcome, Release, RollbackOptions, Strategy, UpdateOptions,
    UpdateReport, UpdateTarget,
};

use crate::cli::RegistryArgs;
use crate::commands::{Context, open_existing_fleet, runtime, short_digest};
use crate::output::usage;
use crate::progress::ProgressView;

#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// The instances to update.
    #[arg(required_unless_present_any = ["all", "group"], conflicts_with_all = ["all", "group"])]
    names: Vec<String>,

    /// Update every instance.
    #[arg(long, conflicts_with = "group")]
    all: bool,

    /// Update the instances of this group.
    #[arg(long, value_name = "G")]
    group: Option<String>,

    /// Deploy this tag or digest (`v1.4.2`, `sha256:…`) instead of what the channel
    /// resolves to.
    #[arg(long, value_name = "TAG|DIGEST")]
    to: Option<String>,

    #[command(flatten)]
    deploy: DeployArgs,

    /// Update at most N instances at once.
    #[arg(long, value_name = "N", default_value = "1")]
    parallel: NonZeroUsize,

    /// Update this instance first, alone; if it fails, touch no other.
    #[arg(long, value_name = "NAME")]
    canary: Option<String>,

    /// Say what would be deployed where; change nothing.
    #[arg(long)]
    dry_run: bool,

    #[command(flatten)]
    registry: RegistryArgs,
}

/// Flags shared by the commands that deploy.
#[derive(Debug, clap::Args)]
struct DeployArgs {
    /// How to replace the container: `blue-green` (needs `fleet serve`) or `recreate`
    /// (stops the old container first; the downtime is reported) [default: recreate].
    #[arg(long, value_name = "STRATEGY")]
    strategy: Option<String>,

    /// Take no backup first.
    #[arg(long)]
    no_backup: bool,
}

impl DeployArgs {
    fn options(&self) -> anyhow::Result<UpdateOptions> {
        let mut options = UpdateOptions::default();
        if let Some(strategy) = &self.strategy {
            options = options.strategy(strategy.parse::<Strategy>().map_err(usage)?);
        }
        if self.no_backup {
            options = options.no_backup();
        }
        Ok(options)
    }
}

#[derive(Debug, clap::Args)]
pub(crate) struct RollbackArgs {
    /// The instance.
    name: String,

    /// How to replace the container (as `fleet update --strategy`).
    #[arg(long, value_name = "STRATEGY", conflicts_with = "restore_data")]
    strategy: Option<String>,

    /// Also put back the data as it was before the deployment rolled back (its
    /// pre-update backup), for a version that migrated it; the container is recreated.
    #[arg(long)]
    restore_data: bool,

    #[command(flatten)]
    registry: RegistryArgs,
}

#[derive(Debug, clap::Args)]
#[command(group(clap::ArgGroup::new("changes").required(true).multiple(true).args(["set", "unset"])))]
pub(crate) struct EditArgs {
    /// The instance.
    name: String,

    /// Set a setting, named as in fleet.toml (`memory=1g`, `env.TZ=UTC`,
    /// `ports=[8080,9090]`); repeatable.
    #[arg(long, value_name = "KEY=VALUE")]
    set: Vec<String>,

    /// Remove a setting (`env.DEBUG`, `memory`); repeatable.
    #[arg(long, value_name = "KEY")]
    unset: Vec<String>,

    #[command(flatten)]
    deploy: DeployArgs,

    #[command(flatten)]
    registry: RegistryArgs,
}

#[derive(Debug, clap::Args)]
pub(crate) struct HistoryArgs {
    /// The instance.
    name: String,

    #[command(flatten)]
    registry: RegistryArgs,
}

#[derive(Debug, clap::Args)]
pub(crate) struct PromoteArgs {
    /// The group whose digest is deployed.
    #[arg(long, value_name = "GROUP")]
    from: String,

    /// The group it is deployed to.
    #[arg(long, value_name = "GROUP")]
    to: String,

    #[command(flatten)]
    deploy: DeployArgs,

    /// Update at most N instances at once.
    #[arg(long, value_name = "N", default_value = "1")]
    parallel: NonZeroUsize,

    #[command(flatten)]
    registry: RegistryArgs,
}

pub(crate) fn run(context: &Context, args: &Args) -> anyhow::Result<ExitCode> {
    let names = args
        .names
        .iter()
        .map(|n| n.parse::<InstanceName>().map_err(usage))
        .collect::<Result<Vec<_>, _>>()?;
    let canary = args
        .canary
        .as_deref()
        .map(|n| n.parse::<InstanceName>().map_err(usage))
        .transpose()?;
    let mut options = args.deploy.options()?;
    if let Some(to) = &args.to {
        options = options.to(to.parse::<UpdateTarget>().map_err(usage)?);
    }
    let reports = runtime()?.block_on(async {
        let fleet = open_existing_fleet(context, &args.registry).await?;
        fleet.strategy(options.strategy).await?;
        let names = if args.all {
            fleet.list()?.into_iter().map(|i| i.name).collect()
        } else if let Some(group) = &args.group {
            fleet.group(group)?
        } else {
            names
        };
        if args.dry_run {
            let mut lines = Vec::new();
            for name in &names {
                let (from, to) = fleet.plan_update(name, &options.target).await?;
                lines.push(if from.digest == to.digest {
                    format!("{name}: up to date ({})", describe(&from))
                } else {
                    format!("{name}: {} -> {}", describe(&from), describe(&to))
                });
            }
            context.out.lines(&lines)?;
            return anyhow::Ok(None);
        }
        // Ctrl-C stops each update at its next step (or in its health gate) and rolls
        // it back: the old version keeps serving.
        let cancel = tokio_util::sync::CancellationToken::new();
        let options = options.clone().cancel_on(cancel.clone());
        let interrupt = tokio::spawn({
            let cancel = cancel.clone();
            async move {
                if tokio::signal::ctrl_c().await.is_ok() {
                    cancel.cancel();
                }
            }
        });
        let view = Mutex::new(None::<(InstanceName, ProgressView)>);
        let reports = fleet
            .update_many(
                &names,
                &options,
                args.parallel,
                canary.as_ref(),
                &|name, step| {
                    let mut view = view.lock().unwrap_or_else(|e| e.into_inner());
                    if view.as_ref().is_none_or(|(shown, _)| shown != name) {
                        if let Some((_, old)) = view.take() {
                            old.finish();
                        }
                        *view = Some((
                            name.clone(),
                            ProgressView::new(context.out, &format!("updating {name}")),
                        ));
                    }
                    if let Some((_, progress)) = view.as_ref() {
                        progress.show(step);
                    }
                },
            )
            .await;
        interrupt.abort();
        if let Some((_, progress)) = view.into_inner().unwrap_or_else(|e| e.into_inner()) {
            progress.finish();
        }
        anyhow::Ok(Some(reports))
    })?;
    let Some(reports) = reports else {
        return Ok(ExitCode::SUCCESS);
    };
    show(context, &reports)
}

pub(crate) fn rollback(context: &Context, args: &RollbackArgs) -> anyhow::Result<ExitCode> {
    let name: InstanceName = args.name.parse().map_err(usage)?;
    let strategy = args
        .strategy
        .as_deref()
        .map(|s| s.parse::<Strategy>().map_err(usage))
        .transpose()?;
    let report = runtime()?.block_on(async {
        let fleet = open_existing_fleet(context, &args.registry).await?;
        let progress = ProgressView::new(context.out, &format!("rolling back {name}"));
        let mut options = RollbackOptions::default().strategy(strategy);
        if args.restore_data {
            options = options.restore_data();
        }
        let report = fleet
            .rollback(&name, &options, &|step| progress.show(step))
            .await;
        progress.finish();
        anyhow::Ok(report?)
    })?;
    show(context, std::slice::from_ref(&report))
}

/// `fleet edit NAME --set KEY=VALUE --unset KEY`: one setting changed, through the
/// update path.
pub(crate) fn edit(context: &Context, args: &EditArgs) -> anyhow::Result<ExitCode> {
    let name: InstanceName = args.name.parse().map_err(usage)?;
    let set = args
        .set
        .iter()
        .map(|pair| {
            pair.split_once('=')
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .ok_or_else(|| {
                    usage(std::io::Error::other(format!(
                        "--set {pair:?} is not KEY=VALUE"
                    )))
                })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let options = args.deploy.options()?;
    let report = runtime()?.block_on(async {
        let fleet = open_existing_fleet(context, &args.registry).await?;
        let current = fleet.get(&name)?.spec;
        let settings =
            fleet_core::fleetfile::InstanceSettings::from_spec(&current).edit(&set, &args.unset)?;
        let spec = settings.to_spec(&name, &std::env::current_dir()?)?;
        let progress = ProgressView::new(context.out, &format!("editing {name}"));
        let report = fleet
            .reconfigure(spec, &options, &|step| progress.show(step))
            .await;
        progress.finish();
        anyhow::Ok(report?)
    })?;
    show(context, std::slice::from_ref(&report))
}

pub(crate) fn promote(context: &Context, args: &PromoteArgs) -> anyhow::Result<ExitCode> {
    let options = args.deploy.options()?;
    let reports = runtime()?.block_on(async {
        let fleet = open_existing_fleet(context, &args.registry).await?;
        anyhow::Ok(
            fleet
                .promote(&args.from, &args.to, &options, args.parallel, &|_, _| {})
                .await?,
        )
    })?;
    show(context, &reports)
}

pub(crate) fn history(context: &Context, args: &HistoryArgs) -> anyhow::Result<ExitCode> {
    let name: InstanceName = args.name.parse().map_err(usage)?;
    let deployments = runtime()?.block_on(async {
        let fleet = open_existing_fleet(context, &args.registry).await?;
        anyhow::Ok(fleet.history(&name)?)
    })?;
    if context.out.is_json() {
        context.out.json(&deployments)?;
        return Ok(ExitCode::SUCCESS);
    }
    let rows = deployments.iter().map(history_row).collect();
    context.out.table(
        &[
            "ID", "STARTED", "KIND", "FROM", "TO", "OUTCOME", "STEP", "DOWNTIME", "BACKUP",
        ],
        rows,
    )?;
    Ok(ExitCode::SUCCESS)
}

fn history_row(d: &Deployment) -> Vec<String> {
    vec![
        d.id.to_string(),
        d.started_at.to_string(),
        format!("{:?}", d.kind).to_lowercase(),
        describe(&d.from),
        describe(&d.to),
        d.outcome.to_string(),
        if d.outcome == Outcome::Updated {
            "-".to_owned()
        } else {
            d.step.to_string()
        },
        d.downtime_ms.map_or_else(
            || "-".to_owned(),
            |ms| format!("{:.1}s", ms as f64 / 1000.0),
        ),
        d.backup.map_or_else(|| "-".to_owned(), |id| id.to_string()),
    ]
}

/// One line per instance (or the JSON array); exit 1 when any did not end on its target.
fn show(context: &Context, reports: &[UpdateReport]) -> anyhow::Result<ExitCode> {
    if context.out.is_json() {
        context.out.json(&reports)?;
    } else {
        let lines: Vec<String> = reports.iter().map(line).collect();
        context.out.lines(&lines)?;
    }
    let failed: Vec<&str> = reports
        .iter()
        .filter(|r| !r.outcome.is_success())
        .map(|r| r.instance.as_str())
        .collect();
    if failed.is_empty() {
        return Ok(ExitCode::SUCCESS);
    }
    if !context.out.is_json() {
        context.out.note(&format!(
            "not updated: {} (each still runs its previous version unless its line says otherwise)",
            failed.join(", ")
        ));
    }
    Ok(ExitCode::FAILURE)
}

/// `alice: v1.0.0 -> v1.1.0 updated in 3.2s (down 1.1s; backup 4)`.
fn line(report: &UpdateReport) -> String {
    let name = &report.instance;
    let seconds = |ms: u64| format!("{:.1}s", ms as f64 / 1000.0);
    match report.outcome {
        Outcome::Unchanged => format!("{name}: up to date ({})", describe(&report.to)),
        Outcome::Updated => {
            let mut details = Vec::new();
            match report.downtime_ms {
                Some(0) => details.push("no downtime".to_owned()),
                Some(down) => details.push(format!("down {}", seconds(down))),
                None => {}
            }
            if let Some(backup) = report.backup {
                details.push(format!("backup {backup}"));
            }
            let details = if details.is_empty() {
                String::new()
            } else {
                format!(" ({})", details.join("; "))
            };
            format!(
                "{name}: {} -> {} updated in {}{details}",
                describe(&report.from),
                describe(&report.to),
                seconds(report.duration_ms)
            )
        }
        Outcome::RolledBack => format!(
            "{name}: {} -> {} rolled back at step {}: {}",
            describe(&report.from),
            describe(&report.to),
            report
                .step
                .map_or_else(|| "?".to_owned(), |s| s.to_string()),
            report.reason.as_deref().unwrap_or_default()
        ),
        _ => format!(
            "{name}: {}: {}",
            report.outcome,
            report.reason.as_deref().unwrap_or_default()
        ),
    }
}

/// `v1.1.0 (sha256:1a2b3c4d5e6f)`, or the digest alone.
fn describe(release: &Release) -> String {
    let digest = release.digest.as_ref().map_or_else(
        || "nothing".to_owned(),
        |d| short_digest(d.as_str()).to_owned(),
    );
    match &release.tag {
        Some(tag) => format!("{tag} ({digest})"),
        None => digest,
    }
}
