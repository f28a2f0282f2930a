//! `fleet serve`: fleet's proxy for the state directory, in the foreground.

use std::process::ExitCode;
use std::sync::Arc;

use crate::cli::RegistryArgs;
use crate::commands::{Context, open_fleet};

#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Print a systemd unit that runs `fleet serve` for this state directory, and exit.
    #[arg(long)]
    print_systemd_unit: bool,

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
        let report = fleet.serve(stop_signal()).await?;
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
