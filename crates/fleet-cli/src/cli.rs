//! The command line, as clap reads it.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::commands;

/// Run many isolated instances of one container image on a host, each on the version
/// channel it follows.
#[derive(Debug, Parser)]
#[command(
    name = "fleet",
    version,
    propagate_version = true,
    max_term_width = 100
)]
pub(crate) struct Cli {
    #[command(flatten)]
    pub(crate) global: GlobalArgs,
    #[command(subcommand)]
    pub(crate) command: Command,
}

/// Flags every command takes.
#[derive(Debug, Args)]
pub(crate) struct GlobalArgs {
    /// Print one JSON document on stdout, and nothing else there.
    #[arg(long, global = true)]
    pub(crate) json: bool,

    /// Where fleet keeps its state [default: $XDG_DATA_HOME/fleet, or /var/lib/fleet as root]
    #[arg(long, global = true, env = "FLEET_STATE_DIR", value_name = "DIR")]
    pub(crate) state_dir: Option<PathBuf>,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Show how an image reference is read (offline).
    Ref(commands::reference::Args),
    /// Compute the tags a release publishes (v1.4.2, v1.4, v1, latest, sha-1a2b3c4).
    Tags(commands::tags::Args),
    /// Resolve an image's channel to a manifest digest.
    Resolve(commands::resolve::Args),
    /// Create an instance: ports, data directory, container; start it and wait until healthy.
    Create(Box<commands::create::Args>),
    /// List instances with their state and last known health.
    Ls(commands::list::Args),
    /// Probe instances now, and show where the engine and the store disagree.
    Status(commands::status::Args),
    /// Start instances (recreating a container that vanished).
    Start(commands::lifecycle::Args),
    /// Stop instances.
    Stop(commands::lifecycle::Args),
    /// Restart instances.
    Restart(commands::lifecycle::Args),
    /// Remove an instance; its data stays unless --purge-data.
    Rm(commands::remove::Args),
    /// Show an instance's output.
    Logs(commands::logs::Args),
    /// List the host ports fleet holds, and for which instance.
    Ports(commands::ports::Args),
    /// Write instances out: a docker-compose.yml that runs them without fleet, or a
    /// fleet.toml fragment.
    Export(commands::export::Args),
    /// Repair drift: recreate missing containers, remove strays, start or stop as desired.
    Reconcile(commands::reconcile::Args),
    /// Archive instances' data directories (SQLite consistently), recorded with what ran.
    Backup(commands::backup::Args),
    /// List an instance's backups, newest first.
    Backups(commands::backup::ListArgs),
    /// Check an archive end to end: an archive file, or an instance's backup.
    Verify(commands::backup::VerifyArgs),
    /// Put a backup's data in place of an instance's, verified first; the replaced data
    /// is kept as a backup, so restoring that one undoes it.
    Restore(commands::restore::Args),
    /// Update instances to what their channel resolves to (or --to): backup, candidate,
    /// health gate, and the old version back on any failure.
    Update(commands::update::Args),
    /// Go back to what an instance ran before its last deployment, the same safe way.
    Rollback(commands::update::RollbackArgs),
    /// An instance's deployments, newest first.
    History(commands::update::HistoryArgs),
    /// Deploy to one group exactly the digest another group runs.
    Promote(commands::update::PromoteArgs),
    /// Run fleet's proxy for this state directory in the foreground: instances are
    /// reached through it, and updates switch it with zero downtime. SIGTERM drains.
    Serve(commands::serve::Args),
    /// Converge the fleet to a fleet file: create, change (through the update path) and,
    /// with --prune, remove instances; the plan is shown first.
    Apply(commands::apply::Args),
    /// Change one instance's settings (`--set memory=1g`, `--unset env.DEBUG`): a new
    /// container with the same health gate and rollback as an update.
    Edit(commands::update::EditArgs),
}

/// Flags of the commands that talk to registries.
#[derive(Debug, Args)]
pub(crate) struct RegistryArgs {
    /// Reach this registry (host or host:port) over plain HTTP; loopback registries
    /// always are.
    #[arg(
        long = "insecure-registry",
        value_name = "HOST",
        env = "FLEET_INSECURE_REGISTRIES",
        value_delimiter = ','
    )]
    pub(crate) insecure_registries: Vec<String>,

    /// The longest one registry request may take before fleet gives up (a timeout is not
    /// retried).
    #[arg(
        long = "registry-timeout",
        value_name = "DURATION",
        env = "FLEET_REGISTRY_TIMEOUT",
        default_value = "30s",
        value_parser = humantime::parse_duration
    )]
    pub(crate) registry_timeout: std::time::Duration,
}

impl RegistryArgs {
    /// A registry client for these flags; credentials come from the Docker configuration
    /// (`DOCKER_CONFIG`, else `~/.docker/config.json`).
    pub(crate) fn client(&self) -> anyhow::Result<fleet_registry::Client> {
        Ok(fleet_registry::Client::new(self.client_config())?)
    }

    /// The registry client settings for these flags.
    pub(crate) fn client_config(&self) -> fleet_registry::ClientConfig {
        let mut config = fleet_registry::ClientConfig::default();
        config
            .insecure_registries
            .clone_from(&self.insecure_registries);
        config.timeout = self.registry_timeout;
        config.connect_timeout = config.connect_timeout.min(self.registry_timeout);
        config
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory as _;

    use super::*;

    #[test]
    fn the_command_line_is_well_formed() {
        Cli::command().debug_assert();
    }
}
