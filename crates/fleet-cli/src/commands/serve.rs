//! `fleet serve`: fleet's proxy for the state directory, in the foreground.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::bail;
use fleet_core::serve::ApiCheck;

use crate::cli::RegistryArgs;
use crate::commands::{Context, open_fleet};

#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Print a systemd unit that runs `fleet serve` for this state directory, and exit.
    #[arg(long)]
    print_systemd_unit: bool,

    /// Also answer `GET /api/health` over HTTP on this address (`127.0.0.1:8090`);
    /// `[serve] api` in config.toml otherwise, off without either.
    #[arg(long, env = "FLEET_SERVE_API", value_name = "ADDR")]
    api: Option<SocketAddr>,

    /// Ask the API of a running `fleet serve` (at `--api`) whether it is healthy, and
    /// exit: 0 when it answers 200, 1 otherwise (a container's HEALTHCHECK).
    #[arg(long, conflicts_with = "print_systemd_unit")]
    check: bool,

    #[command(flatten)]
    registry: RegistryArgs,
}

pub(crate) fn run(context: &Context, args: &Args) -> anyhow::Result<ExitCode> {
    if args.print_systemd_unit {
        let exe = std::env::current_exe()?;
        let state = std::path::absolute(&context.state_dir)?;
        context.out.lines(&[systemd_unit(&exe, &state)])?;
        return Ok(ExitCode::SUCCESS);
    }
    let api = match args.api {
        Some(addr) => Some(addr),
        None => fleet_core::FleetConfig::load(&context.state_dir)?.serve.api,
    };
    if args.check {
        return check(context, api);
    }
    // The proxy serves on every core.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let report = runtime.block_on(async {
        let fleet = Arc::new(open_fleet(context, &args.registry).await?);
        let routes = fleet.state().routes()?;
        context.out.note(&format!(
            "serving {} route{} for {}; control socket {}",
            routes,
            if routes == 1 { "" } else { "s" },
            context.state_dir.display(),
            context.state_dir.join(fleet_core::serve::SOCKET).display()
        ));
        if let Some(addr) = api {
            context.out.note(&format!(
                "API on http://{addr}{}",
                fleet_core::serve::HEALTH_PATH
            ));
        }
        let report = fleet.serve(api, stop_signal()).await?;
        anyhow::Ok(report)
    })?;
    context.out.note(&format!(
        "stopped after draining for {:.1}s: {} connection(s) and {} upgraded connection(s) closed at the deadline",
        report.shutdown.waited.as_secs_f64(),
        report.shutdown.connections_closed,
        report.shutdown.upgraded_closed
    ));
    Ok(ExitCode::SUCCESS)
}

/// How long `--check` waits for the answer: well within a HEALTHCHECK's timeout.
const CHECK_TIMEOUT: Duration = Duration::from_secs(2);

/// `fleet serve --check`: exit 0 when the API at `api` answers healthy, 1 otherwise.
fn check(context: &Context, api: Option<SocketAddr>) -> anyhow::Result<ExitCode> {
    let Some(api) = api else {
        bail!(
            "no API address to check: set FLEET_SERVE_API (or --api, or [serve] api in \
             config.toml) to the address `fleet serve` answers on"
        );
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    match runtime.block_on(fleet_core::serve::check(api, CHECK_TIMEOUT)) {
        ApiCheck::Healthy(health) => {
            if context.out.is_json() {
                context.out.json(&health)?;
            } else {
                context.out.lines(&[format!(
                    "healthy: fleet {} serving {} route{}",
                    health.version,
                    health.routes,
                    if health.routes == 1 { "" } else { "s" }
                )])?;
            }
            Ok(ExitCode::SUCCESS)
        }
        ApiCheck::Unhealthy { reason } => bail!("fleet serve is not healthy: {reason}"),
        _ => bail!("fleet serve is not healthy"),
    }
}

/// Resolves on SIGTERM or SIGINT (Ctrl-C).
async fn stop_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        // Without signal handlers, run until killed.
        return std::future::pending().await;
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
}

/// A unit that keeps `fleet serve` running across crashes and reboots.
fn systemd_unit(exe: &std::path::Path, state: &std::path::Path) -> String {
    format!(
        "[Unit]
Description=fleet serve: the proxy in front of the instances of {state}
Documentation=https://github.com/fleet-rs/fleet/blob/main/docs/cli.md
After=docker.service network-online.target
Wants=network-online.target
Requires=docker.service

[Service]
Type=simple
Environment=FLEET_STATE_DIR={state}
ExecStart={exe} serve
Restart=always
RestartSec=1
# SIGTERM drains: requests in flight finish (drain_timeout in config.toml, 30s).
KillSignal=SIGTERM
TimeoutStopSec=45

[Install]
WantedBy=multi-user.target",
        state = state.display(),
        exe = exe.display()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_unit_runs_serve_for_the_state_directory() {
        let unit = systemd_unit(
            std::path::Path::new("/usr/local/bin/fleet"),
            std::path::Path::new("/var/lib/fleet"),
        );
        insta::assert_snapshot!(unit);
    }
}
