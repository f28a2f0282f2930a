//! `fleet create NAME --image REF[:CHANNEL] ...`: a new instance, started and healthy.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use fleet_core::{
    CreateOptions, DATA_MOUNT, InstanceSpec, PortSpec, RestartPolicy, VolumeSpec, http_health,
    parse_memory, tcp_health,
};

use crate::cli::RegistryArgs;
use crate::commands::{Context, instance_json, open_fleet, runtime, short_digest};
use crate::output::{usage, usage_with_hint};
use crate::progress::ProgressView;

#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// The instance name: lower-case letters, digits and `-` (`alice`, `customer-42`).
    name: String,

    /// The image and the channel it follows: `ghcr.io/acme/app:v1`, `app:latest`,
    /// `app:^1.2`, `app@sha256:…`.
    #[arg(long, value_name = "REF[:CHANNEL]")]
    image: String,

    /// A container port to publish on a host port from the range (repeatable).
    #[arg(long = "port", value_name = "CPORT")]
    ports: Vec<u16>,

    /// Publish the first --port on this host port instead of allocating one.
    #[arg(long, value_name = "N", requires = "ports")]
    host_port: Option<u16>,

    /// An environment variable (repeatable); overrides the env file.
    #[arg(long = "env", short = 'e', value_name = "K=V")]
    env: Vec<String>,

    /// A `.env` file, read again each time the container is created.
    #[arg(long, value_name = "FILE")]
    env_file: Option<PathBuf>,

    /// A template var of this instance (repeatable): `{{KEY}}` in env values and volume
    /// paths, over the group's and the fleet's `[vars]` in config.toml.
    #[arg(long = "var", value_name = "K=V")]
    vars: Vec<String>,

    /// A group, such as `staging` or `prod`.
    #[arg(long, value_name = "G")]
    group: Option<String>,

    /// Probe this HTTP path for health (otherwise: a TCP connect to the health port).
    #[arg(long, value_name = "P")]
    health_path: Option<String>,

    /// The container port to probe [default: the first --port].
    #[arg(long, value_name = "CPORT")]
    health_port: Option<u16>,

    /// No health check at all.
    #[arg(long, conflicts_with_all = ["health_path", "health_port"])]
    no_health: bool,

    /// Failed probes do not count while the app starts, for this long [default: 60s].
    #[arg(long, value_name = "DUR", value_parser = humantime::parse_duration, conflicts_with = "no_health")]
    health_start_period: Option<std::time::Duration>,

    /// Time between probes once started [default: 2s].
    #[arg(long, value_name = "DUR", value_parser = humantime::parse_duration, conflicts_with = "no_health")]
    health_interval: Option<std::time::Duration>,

    /// Give up waiting for healthy after this long [default: 90s].
    #[arg(long, value_name = "DUR", value_parser = humantime::parse_duration, conflicts_with = "no_health")]
    health_deadline: Option<std::time::Duration>,

    /// The host directory mounted at /data [default: STATE_DIR/instances/NAME/data].
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,

    /// An extra bind mount (repeatable).
    #[arg(long = "volume", short = 'v', value_name = "HOST:CONTAINER[:ro]")]
    volumes: Vec<String>,

    /// Memory limit: `512m`, `1g`.
    #[arg(long, value_name = "SIZE")]
    memory: Option<String>,

    /// CPU limit: `1.5`.
    #[arg(long, value_name = "N")]
    cpus: Option<f64>,

    /// Restart policy: `no`, `always`, `unless-stopped`, `on-failure[:N]`.
    #[arg(long, value_name = "POLICY", default_value = "unless-stopped")]
    restart: String,

    /// Run as this user (`uid[:gid]`) instead of the image's.
    #[arg(long, value_name = "UID[:GID]")]
    user: Option<String>,

    /// A container label (repeatable).
    #[arg(long = "label", value_name = "K=V")]
    labels: Vec<String>,

    /// A command run inside the container before each backup, for data fleet cannot
    /// snapshot by itself; split as a shell would: `--backup-exec "sh -c 'pg_dump app >
    /// /data/dump.sql'"`. A non-zero exit fails the backup.
    #[arg(long, value_name = "CMD")]
    backup_exec: Option<String>,

    /// Stop the container for each backup and start it again (the downtime is reported).
    #[arg(long, conflicts_with = "backup_exec")]
    backup_stop: bool,

    /// Keep this many backups of this instance [default: keep_last of `[backup]` in
    /// config.toml].
    #[arg(long, value_name = "N")]
    keep_backups: Option<std::num::NonZeroUsize>,

    /// Delete this instance's backups older than this (`7d`) [default: keep_within of
    /// `[backup]` in config.toml].
    #[arg(long, value_name = "AGE", value_parser = humantime::parse_duration)]
    keep_backups_within: Option<std::time::Duration>,

    /// Create it stopped.
    #[arg(long)]
    no_start: bool,

    #[command(flatten)]
    registry: RegistryArgs,
}

fn pair(text: &str, what: &str) -> anyhow::Result<(String, String)> {
    let (key, value) = text.split_once('=').ok_or_else(|| {
        usage(std::io::Error::other(format!(
            "{what} {text:?} is not KEY=VALUE"
        )))
    })?;
    Ok((key.to_owned(), value.to_owned()))
}

fn absolute(path: &Path) -> anyhow::Result<PathBuf> {
    Ok(if path.is_absolute() {
        path.to_owned()
    } else {
        std::env::current_dir()?.join(path)
    })
}

fn spec(args: &Args) -> anyhow::Result<InstanceSpec> {
    let name = args.name.parse().map_err(usage)?;
    let image = args.image.parse().map_err(usage)?;
    let mut spec = InstanceSpec::new(name, image);
    for (index, port) in args.ports.iter().enumerate() {
        let host = if index == 0 { args.host_port } else { None };
        spec = spec.with_port(PortSpec {
            container: *port,
            host,
        });
    }
    for env in &args.env {
        let (key, value) = pair(env, "--env")?;
        spec.env.insert(key, value);
    }
    for label in &args.labels {
        let (key, value) = pair(label, "--label")?;
        spec.labels.insert(key, value);
    }
    for var in &args.vars {
        let (key, value) = pair(var, "--var")?;
        spec.vars.insert(key, value);
    }
    spec.env_file = args.env_file.as_deref().map(absolute).transpose()?;
    spec.data_dir = args.data_dir.as_deref().map(absolute).transpose()?;
    spec.group.clone_from(&args.group);
    spec.user.clone_from(&args.user);
    for volume in &args.volumes {
        let mut volume: VolumeSpec = volume.parse().map_err(usage)?;
        // `{{data_dir}}/logs` is absolute once rendered.
        if !volume
            .host
            .to_str()
            .is_some_and(|host| host.starts_with("{{"))
        {
            volume.host = absolute(&volume.host)?;
        }
        spec.volumes.push(volume);
    }
    spec.restart = args.restart.parse::<RestartPolicy>().map_err(usage)?;
    spec.resources.memory_bytes = args
        .memory
        .as_deref()
        .map(parse_memory)
        .transpose()
        .map_err(usage)?;
    spec.resources.cpus = args.cpus;
    if let Some(command) = &args.backup_exec {
        let words = shlex::split(command).ok_or_else(|| {
            usage(std::io::Error::other(format!(
                "--backup-exec {command:?} has an unclosed quote"
            )))
        })?;
        spec.backup.exec = Some(words);
    }
    spec.backup.stop = args.backup_stop;
    spec.backup.keep_last = args.keep_backups;
    spec.backup.keep_within = args.keep_backups_within;
    // Health flags without a port make a health check the spec refuses, rather than
    // none at all: the operator asked for one.
    let health_asked = args.health_path.is_some() || args.health_port.is_some();
    if !args.no_health && (!args.ports.is_empty() || health_asked) {
        let mut health = match &args.health_path {
            Some(path) => http_health(path),
            None => tcp_health(),
        };
        health.port = args.health_port;
        if let Some(start_period) = args.health_start_period {
            health.policy.start_period = start_period;
        }
        if let Some(interval) = args.health_interval {
            health.policy.interval = interval;
        }
        if let Some(deadline) = args.health_deadline {
            health.policy.deadline = deadline;
        }
        spec.health = Some(health);
    }
    if let Err(error) = spec.validate() {
        return Err(match spec_hint(&spec) {
            Some(hint) => usage_with_hint(error, hint),
            None => usage(error),
        });
    }
    // `Fleet::create` checks the CPU limit against the engine's own host (exit 2 too).
    spec.resolved_env().map_err(usage)?;
    Ok(spec)
}

/// What to do about a spec the library refused, in terms of this command's flags.
fn spec_hint(spec: &InstanceSpec) -> Option<String> {
    if spec.health.is_some() && spec.ports.is_empty() {
        return Some(
            "publish the port the app listens on with --port CPORT: health is probed there"
                .to_owned(),
        );
    }
    if spec.volumes.iter().any(|v| v.container == DATA_MOUNT) {
        return Some(format!(
            "--data-dir DIR mounts DIR at {DATA_MOUNT}; keep --volume for other paths"
        ));
    }
    None
}

pub(crate) fn run(context: &Context, args: &Args) -> anyhow::Result<ExitCode> {
    let spec = spec(args)?;
    let options = if args.no_start {
        CreateOptions::default().no_start()
    } else {
        CreateOptions::default()
    };
    let instance = runtime()?.block_on(async {
        let fleet = open_fleet(context, &args.registry).await?;
        let range = &fleet.config().ports;
        super::note_ephemeral_ports(context, range);
        for port in spec.ports.iter().filter_map(|p| p.host) {
            if port < range.first() || port > range.last() {
                context.out.note(&format!(
                    "host port {port} is outside the range fleet allocates from ({}-{}, [ports] in {}); it is used as given",
                    range.first(),
                    range.last(),
                    context.state_dir.join("config.toml").display()
                ));
            }
        }
        let progress = ProgressView::new(context.out, &format!("creating {}", spec.name));
        let result = fleet
            .create(spec, options, &|step| progress.show(step))
            .await;
        progress.finish();
        anyhow::Ok(result?)
    })?;
    if context.out.is_json() {
        context.out.json(&instance_json(&instance, None, None))?;
    } else {
        let ports: Vec<String> = instance
            .ports
            .iter()
            .map(|p| format!("{}->{}", p.host, p.container))
            .collect();
        let state = if args.no_start {
            "created (stopped)"
        } else {
            "running"
        };
        context.out.lines(&[format!(
            "{} {state}: {}:{} -> {} ({}), ports {}",
            instance.name,
            instance.image,
            instance.channel,
            instance.tag.as_deref().unwrap_or("-"),
            instance
                .digest
                .as_ref()
                .map(fleet_registry::Digest::as_str)
                .map(short_digest)
                .unwrap_or("-"),
            if ports.is_empty() {
                "none".to_owned()
            } else {
                ports.join(", ")
            },
        )])?;
    }
    Ok(ExitCode::SUCCESS)
}
