//! One module per command. Each has `Args` (clap) and `run(&Context, &Args)`.

pub(crate) mod reference;
pub(crate) mod resolve;
pub(crate) mod tags;

use std::path::PathBuf;
use std::process::ExitCode;

use crate::cli::{Cli, Command};
use crate::output::Output;

/// What every command gets.
pub(crate) struct Context {
    pub(crate) out: Output,
    /// The state directory (`--state-dir`, `FLEET_STATE_DIR`, or the default). No
    /// command reads it yet; the state-store commands will.
    #[allow(dead_code)]
    pub(crate) state_dir: PathBuf,
}

pub(crate) fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let state_dir = cli.global.state_dir.unwrap_or_else(default_state_dir);
    tracing::debug!(state_dir = %state_dir.display(), "state directory");
    let context = Context {
        out: Output::new(cli.global.json),
        state_dir,
    };
    match &cli.command {
        Command::Ref(args) => reference::run(&context, args),
        Command::Tags(args) => tags::run(&context, args),
        Command::Resolve(args) => resolve::run(&context, args),
    }
}

/// `/var/lib/fleet` for root, else `$XDG_DATA_HOME/fleet` (`~/.local/share/fleet`).
fn default_state_dir() -> PathBuf {
    if nix::unistd::geteuid().is_root() {
        return PathBuf::from("/var/lib/fleet");
    }
    dirs::data_dir()
        .unwrap_or_else(|| PathBuf::from("."))
        .join("fleet")
}

/// A runtime for the commands that talk to the network.
pub(crate) fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?)
}
