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

    /// Print only errors on stderr: no progress, notes, hints or warnings.
    #[arg(long, short = 'q', global = true, conflicts_with = "verbose")]
    pub(crate) quiet: bool,

    /// Log more on stderr: -v info, -vv debug (FLEET_LOG, when set, wins). On `create`,
    /// where -v is --volume, write --verbose.
    #[arg(long, short = 'v', global = true, action = clap::ArgAction::Count)]
    pub(crate) verbose: u8,

    /// Never colour the output (as NO_COLOR does).
    #[arg(long, global = true)]
    pub(crate) no_color: bool,
}

impl GlobalArgs {
    /// The log filter `-q`/`-v` ask for, when `FLEET_LOG` is not set.
    pub(crate) fn log_level(&self) -> &'static str {
        match (self.quiet, self.verbose) {
            (true, _) => "error",
            (false, 0) => "warn",
            (false, 1) => "info",
            (false, 2) => "debug",
            (false, _) => "trace",
        }
    }
}

/// The command line as clap sees it: the derived definition, with `create` keeping `-v`
/// for `--volume` (as `docker run` does), so there the global `-v` is `--verbose` only.
/// Completions and man pages come from this too.
pub(crate) fn command() -> clap::Command {
    use clap::CommandFactory as _;

    // A global argument is not given to a subcommand that has one of its id already.
    Cli::command().mut_subcommand("create", |create| {
        create.arg(
            clap::Arg::new("verbose")
                .long("verbose")
                .action(clap::ArgAction::Count)
                .help(
                    "Log more on stderr: --verbose info, twice debug (FLEET_LOG, when set, wins)",
                ),
        )
    })
}

/// Parses the command line; `--no-color` also turns off the colour of clap's own
/// messages (usage errors, help).
pub(crate) fn parse() -> Result<Cli, clap::Error> {
    use clap::FromArgMatches as _;

    let mut command = command();
    if std::env::args_os().any(|arg| arg == "--no-color") {
        command = command.color(clap::ColorChoice::Never);
    }
    let mut matches = command.try_get_matches()?;
    Cli::from_arg_matches_mut(&mut matches).map_err(|error| error.format(&mut self::command()))
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
    /// Everything about one instance: its stored spec, container, ports, health (probed
    /// now) and last deployment.
    Inspect(commands::inspect::Args),
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
    /// Print the shell completion script for bash, zsh or fish.
    Completions(commands::completions::Args),
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
    use super::*;

    #[test]
    fn the_command_line_is_well_formed() {
        // Not `Cli::command()`: its global -v clashes with `create -v`, which
        // `command()` resolves.
        command().debug_assert();
    }

    fn verbosity(args: &[&str]) -> String {
        let matches = command().try_get_matches_from(args).unwrap();
        let create = matches.subcommand_matches("create");
        format!(
            "verbose={} volumes={:?}",
            matches.get_count("verbose"),
            create.and_then(|c| c
                .get_many::<String>("volumes")
                .map(|v| v.collect::<Vec<_>>()))
        )
    }

    #[test]
    fn v_is_verbose_everywhere_but_volume_on_create() {
        insta::assert_snapshot!(verbosity(&["fleet", "-vv", "ls"]), @"verbose=2 volumes=None");
        insta::assert_snapshot!(verbosity(&["fleet", "ls", "-v"]), @"verbose=1 volumes=None");
        insta::assert_snapshot!(verbosity(&["fleet", "-v", "create", "a", "--image", "app"]), @"verbose=1 volumes=None");
        insta::assert_snapshot!(verbosity(&["fleet", "create", "a", "--image", "app", "-v", "/a:/b", "--verbose"]), @r#"verbose=1 volumes=Some(["/a:/b"])"#);
    }
}
