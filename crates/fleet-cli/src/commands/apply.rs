//! `fleet apply -f fleet.toml`: show what differs from the file, then converge to it.

use std::num::NonZeroUsize;
use std::path::PathBuf;
use std::process::ExitCode;

use fleet_core::fleetfile::{ApplyPlan, FleetFile};
use fleet_core::{Applied, ApplyOptions, Outcome};

use crate::cli::RegistryArgs;
use crate::commands::{Context, open_fleet, runtime};

#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// The fleet file.
    #[arg(
        short = 'f',
        long = "file",
        value_name = "FILE",
        default_value = "fleet.toml"
    )]
    file: PathBuf,

    /// Show the plan; change nothing.
    #[arg(long)]
    dry_run: bool,

    /// Remove the instances the file no longer names (their data stays).
    #[arg(long)]
    prune: bool,

    /// With --prune, delete the removed instances' data too (fleet's own directories only).
    #[arg(long, requires = "prune")]
    purge_data: bool,

    /// Change at most N instances at once.
    #[arg(long, value_name = "N", default_value = "1")]
    parallel: NonZeroUsize,

    /// Take no backup before changing an instance.
    #[arg(long)]
    no_backup: bool,

    #[command(flatten)]
    registry: RegistryArgs,
}

/// `--json`: the plan, and what each instance's action did.
#[derive(serde::Serialize)]
struct ApplyJson<'a> {
    plan: &'a ApplyPlan,
    applied: &'a [Applied],
}

pub(crate) fn run(context: &Context, args: &Args) -> anyhow::Result<ExitCode> {
    let file = FleetFile::load(&args.file)?;
    let (plan, applied) = runtime()?.block_on(async {
        let fleet = open_fleet(context, &args.registry).await?;
        super::note_ephemeral_ports(context, &fleet.config().ports);
        let plan = fleet.plan_apply(&file, &args.file)?;
        if !context.out.is_json() {
            context.out.lines(&plan_lines(&plan, args.prune))?;
        }
        if args.dry_run || plan.is_empty(args.prune) {
            return anyhow::Ok((plan, Vec::new()));
        }
        let cancel = tokio_util::sync::CancellationToken::new();
        let interrupt = tokio::spawn({
            let cancel = cancel.clone();
            async move {
                if tokio::signal::ctrl_c().await.is_ok() {
                    cancel.cancel();
                }
            }
        });
        let mut options = ApplyOptions::default();
        options.prune = args.prune;
        options.purge_data = args.purge_data;
        options.parallel = args.parallel;
        options.no_backup = args.no_backup;
        options.cancel = Some(cancel);
        let applied = fleet.apply(&plan, &options, &|_, _| {}).await;
        interrupt.abort();
        anyhow::Ok((plan, applied))
    })?;
    if context.out.is_json() {
        context.out.json(&ApplyJson {
            plan: &plan,
            applied: &applied,
        })?;
    } else if !applied.is_empty() {
        let lines: Vec<String> = applied.iter().map(applied_line).collect();
        context.out.lines(&lines)?;
    }
    let failed: Vec<&str> = applied
        .iter()
        .filter(|a| a.outcome != Outcome::Updated && a.outcome != Outcome::Unchanged)
        .map(|a| a.instance.as_str())
        .collect();
    if failed.is_empty() {
        return Ok(ExitCode::SUCCESS);
    }
    if !context.out.is_json() {
        context.out.note(&format!(
            "not converged: {} (run `fleet apply` again once fixed; each is as it was or as the file says)",
            failed.join(", ")
        ));
    }
    Ok(ExitCode::FAILURE)
}

/// `+ alice (create)`, `~ bob: env.TZ: "UTC" -> "Europe/Paris"`, `- carol (remove)`.
fn plan_lines(plan: &ApplyPlan, prune: bool) -> Vec<String> {
    let mut lines = Vec::new();
    for name in &plan.create {
        lines.push(format!("+ {name} (create)"));
    }
    for change in &plan.change {
        let keys: Vec<String> = change
            .keys
            .iter()
            .map(|k| format!("{}: {} -> {}", k.key, k.old, k.new))
            .collect();
        lines.push(format!("~ {}: {}", change.instance, keys.join("; ")));
    }
    for name in &plan.remove {
        lines.push(if prune {
            format!("- {name} (remove; its data stays unless --purge-data)")
        } else {
            format!("  {name} is not in the file (kept; --prune removes it)")
        });
    }
    if plan.is_empty(prune) {
        lines.push(format!(
            "nothing to change: {} instance(s) as the file says",
            plan.unchanged.len()
        ));
    }
    lines
}

fn applied_line(applied: &Applied) -> String {
    let verb = match (applied.action, applied.outcome) {
        ("create", Outcome::Updated) => "created".to_owned(),
        ("change", Outcome::Updated) => "changed".to_owned(),
        ("remove", Outcome::Updated) => "removed".to_owned(),
        (action, outcome) => format!("{action} {outcome}"),
    };
    match &applied.reason {
        Some(reason) => format!("{}: {verb}: {reason}", applied.instance),
        None => format!("{}: {verb}", applied.instance),
    }
}
