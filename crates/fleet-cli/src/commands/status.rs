//! `fleet status [NAME...]`: engine state, a health probe made now, and drift.

use std::process::ExitCode;

use fleet_core::InstanceName;

use crate::cli::RegistryArgs;
use crate::commands::{Context, open_existing_fleet, runtime, short_digest};
use crate::output::usage;

#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Instances to check [default: all].
    names: Vec<String>,

    #[command(flatten)]
    registry: RegistryArgs,
}

/// `--json`: the contract of `docs/cli.md`.
#[derive(serde::Serialize)]
struct Json<'a> {
    instances: Vec<InstanceJson<'a>>,
    drift: Vec<&'a fleet_core::Drift>,
}

#[derive(serde::Serialize)]
struct InstanceJson<'a> {
    name: &'a str,
    state: Option<fleet_core::engine::ContainerState>,
    health: fleet_core::Health,
    reason: Option<&'a str>,
    version: Option<&'a str>,
    latency_ms: Option<u128>,
    digest: Option<&'a str>,
    running_digest: Option<&'a str>,
    docker_health: Option<&'a str>,
    drift: &'a [fleet_core::Drift],
}

pub(crate) fn run(context: &Context, args: &Args) -> anyhow::Result<ExitCode> {
    let names = args
        .names
        .iter()
        .map(|n| n.parse::<InstanceName>().map_err(usage))
        .collect::<Result<Vec<_>, _>>()?;
    let status = runtime()?.block_on(async {
        let fleet = open_existing_fleet(context, &args.registry).await?;
        anyhow::Ok(fleet.status(&names).await?)
    })?;
    if context.out.is_json() {
        let instances = status
            .instances
            .iter()
            .map(|s| InstanceJson {
                name: s.instance.name.as_str(),
                state: s.state,
                health: s.health,
                reason: s.probe.as_ref().and_then(|p| p.reason.as_deref()),
                version: s.probe.as_ref().and_then(|p| p.version.as_deref()),
                latency_ms: s.probe.as_ref().map(|p| p.latency.as_millis()),
                digest: s
                    .instance
                    .digest
                    .as_ref()
                    .map(fleet_registry::Digest::as_str),
                running_digest: s
                    .running_digest
                    .as_ref()
                    .map(fleet_registry::Digest::as_str),
                docker_health: s.docker_health.as_deref(),
                drift: &s.drift,
            })
            .collect();
        context.out.json(&Json {
            instances,
            drift: status.drift().collect(),
        })?;
        return Ok(ExitCode::SUCCESS);
    }
    let rows = status
        .instances
        .iter()
        .map(|s| {
            let probe = s.probe.as_ref();
            vec![
                s.instance.name.to_string(),
                s.state
                    .map_or_else(|| "missing".to_owned(), |state| state.to_string()),
                s.health.to_string(),
                probe
                    .and_then(|p| p.version.clone())
                    .unwrap_or_else(|| "-".into()),
                probe.map_or_else(
                    || "-".to_owned(),
                    |p| format!("{}ms", p.latency.as_millis()),
                ),
                s.running_digest
                    .as_ref()
                    .map(|d| short_digest(d.as_str()))
                    .unwrap_or("-")
                    .to_owned(),
                probe.and_then(|p| p.reason.clone()).unwrap_or_default(),
            ]
        })
        .collect();
    context.out.table(
        &[
            "NAME", "STATE", "HEALTH", "VERSION", "LATENCY", "DIGEST", "DETAIL",
        ],
        rows,
    )?;
    let drift: Vec<String> = status.drift().map(|d| format!("drift: {d}")).collect();
    if !drift.is_empty() {
        context.out.lines(&drift)?;
        context.out.hint("`fleet reconcile` repairs drift");
    }
    Ok(ExitCode::SUCCESS)
}
