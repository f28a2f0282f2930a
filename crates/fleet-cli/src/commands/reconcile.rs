//! `fleet reconcile`: make the engine agree with the store again.

use std::process::ExitCode;

use fleet_core::Drift;

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
    } else {
        let mut lines: Vec<String> = Vec::new();
        lines.extend(
            report
                .repaired
                .iter()
                .map(|r| format!("{}: {}", r.drift, r.action)),
        );
        lines.extend(
            report
                .skipped
                .iter()
                .map(|r| format!("{}: {}", r.drift, r.action)),
        );
        lines.extend(
            report
                .failed
                .iter()
                .map(|f| format!("{}: not repaired: {}", f.drift, f.error)),
        );
        if lines.is_empty() {
            lines.push("nothing to repair: the engine agrees with the store".to_owned());
        }
        context.out.lines(&lines)?;
    }
    if !report.skipped.is_empty() {
        context.out.note(&format!(
            "{} left alone because another operation holds them; run reconcile again when it ends",
            count(report.skipped.len(), "drift")
        ));
    }
    if report.failed.is_empty() {
        return Ok(ExitCode::SUCCESS);
    }
    let mut instances: Vec<String> = report
        .failed
        .iter()
        .map(|f| match &f.drift {
            Drift::StrayContainer { container, .. } => format!("container {container}"),
            drift => drift.instance().unwrap_or_default().to_owned(),
        })
        .collect();
    instances.dedup();
    anyhow::bail!(
        "{} not repaired: {}",
        count(report.failed.len(), "drift"),
        instances.join(", ")
    )
}

fn count(n: usize, what: &str) -> String {
    if n == 1 {
        format!("1 {what}")
    } else {
        format!("{n} {what}s")
    }
}
