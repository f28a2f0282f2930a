//! One module per command. Each has `Args` (clap) and `run(&Context, &Args)`.

pub(crate) mod apply;
pub(crate) mod backup;
pub(crate) mod completions;
pub(crate) mod create;
pub(crate) mod export;
pub(crate) mod inspect;
pub(crate) mod lifecycle;
pub(crate) mod list;
pub(crate) mod logs;
pub(crate) mod ports;
pub(crate) mod reconcile;
pub(crate) mod reference;
pub(crate) mod remove;
pub(crate) mod resolve;
pub(crate) mod restore;
pub(crate) mod serve;
pub(crate) mod status;
pub(crate) mod tags;
pub(crate) mod update;

use std::path::PathBuf;
use std::process::ExitCode;

use fleet_core::engine::ContainerState;
use fleet_core::{Fleet, Health, Instance, OpenMode, PortMapping};

use crate::cli::{Cli, Command, RegistryArgs};
use crate::output::Output;

/// What every command gets.
pub(crate) struct Context {
    pub(crate) out: Output,
    /// The state directory (`--state-dir`, `FLEET_STATE_DIR`, or the default).
    pub(crate) state_dir: PathBuf,
}

pub(crate) fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let state_dir = cli
        .global
        .state_dir
        .unwrap_or_else(fleet_core::default_state_dir);
    tracing::debug!(state_dir = %state_dir.display(), "state directory");
    let context = Context {
        out: Output::new(cli.global.json).quiet(cli.global.quiet),
        state_dir,
    };
    match &cli.command {
        Command::Ref(args) => reference::run(&context, args),
        Command::Tags(args) => tags::run(&context, args),
        Command::Resolve(args) => resolve::run(&context, args),
        Command::Create(args) => create::run(&context, args),
        Command::Ls(args) => list::run(&context, args),
        Command::Status(args) => status::run(&context, args),
        Command::Inspect(args) => inspect::run(&context, args),
        Command::Start(args) => lifecycle::run(&context, args, lifecycle::Action::Start),
        Command::Stop(args) => lifecycle::run(&context, args, lifecycle::Action::Stop),
        Command::Restart(args) => lifecycle::run(&context, args, lifecycle::Action::Restart),
        Command::Rm(args) => remove::run(&context, args),
        Command::Logs(args) => logs::run(&context, args),
        Command::Ports(args) => ports::run(&context, args),
        Command::Export(args) => export::run(&context, args),
        Command::Reconcile(args) => reconcile::run(&context, args),
        Command::Backup(args) => backup::run(&context, args),
        Command::Backups(args) => backup::list(&context, args),
        Command::Verify(args) => backup::verify(&context, args),
        Command::Restore(args) => restore::run(&context, args),
        Command::Update(args) => update::run(&context, args),
        Command::Rollback(args) => update::rollback(&context, args),
        Command::History(args) => update::history(&context, args),
        Command::Promote(args) => update::promote(&context, args),
        Command::Serve(args) => serve::run(&context, args),
        Command::Apply(args) => apply::run(&context, args),
        Command::Edit(args) => update::edit(&context, args),
        Command::Completions(args) => completions::run(&context, args),
    }
}

/// Opens the fleet of the state directory on the Docker Engine, with a registry
/// client for `--insecure-registry` hosts and the Docker CLI's credentials; creates it
/// when there is none (for the commands that make instances).
pub(crate) async fn open_fleet(
    context: &Context,
    registry: &RegistryArgs,
) -> anyhow::Result<Fleet> {
    open_fleet_in(context, registry, OpenMode::CreateIfMissing).await
}

/// [`open_fleet`] for the commands that read (`ls`, `status`, `logs`): a state
/// directory without a fleet is an error (a typo in `FLEET_STATE_DIR` must not make an
/// empty fleet), and a state directory this user cannot write is read as it is.
pub(crate) async fn open_existing_fleet(
    context: &Context,
    registry: &RegistryArgs,
) -> anyhow::Result<Fleet> {
    open_fleet_in(context, registry, OpenMode::Existing).await
}

async fn open_fleet_in(
    context: &Context,
    registry: &RegistryArgs,
    mode: OpenMode,
) -> anyhow::Result<Fleet> {
    Ok(Fleet::builder(&context.state_dir)
        .mode(mode)
        .registry(registry.client_config())
        .open()
        .await?)
}

/// A note when `[ports]` reaches into the kernel's ephemeral port range: an outgoing
/// connection can hold such a port while its instance's container restarts, and the
/// restart then fails ("address already in use").
pub(crate) fn note_ephemeral_ports(context: &Context, range: &fleet_core::PortRange) {
    let Some(kernel) = fleet_core::ephemeral_ports() else {
        return;
    };
    if let Some(inside) = range.overlap(&kernel) {
        context.out.note(&format!(
            "host ports {}-{} of [ports] in {} are in the kernel's ephemeral port range {}-{} (net.ipv4.ip_local_port_range): \
             an outgoing connection can take one of them while its instance restarts, and the restart fails; \
             choose [ports] outside it (the default is 5001-5999)",
            inside.start(),
            inside.end(),
            context.state_dir.join("config.toml").display(),
            kernel.start(),
            kernel.end(),
        ));
    }
}

/// `sha256:0123456789ab` (12 hex digits, as `docker images` shows).
pub(crate) fn short_digest(digest: &str) -> &str {
    let end = digest.find(':').map_or(12, |colon| colon + 13);
    &digest[..end.min(digest.len())]
}

/// `5001->8080, 5002->9090`.
pub(crate) fn ports_text(ports: &[PortMapping]) -> String {
    if ports.is_empty() {
        return "-".to_owned();
    }
    ports
        .iter()
        .map(|p| format!("{}->{}", p.host, p.container))
        .collect::<Vec<_>>()
        .join(", ")
}

/// One instance in `--json` output: the contract of `docs/cli.md` (`fleet ls`).
#[derive(serde::Serialize)]
pub(crate) struct InstanceJson<'a> {
    name: &'a str,
    group: Option<&'a str>,
    image: &'a str,
    channel: &'a str,
    tag: Option<&'a str>,
    digest: Option<&'a str>,
    state: Option<String>,
    health: Option<Health>,
    ports: &'a [PortMapping],
}

pub(crate) fn instance_json<'a>(
    instance: &'a Instance,
    state: Option<ContainerState>,
    health: Option<Health>,
) -> InstanceJson<'a> {
    InstanceJson {
        name: instance.name.as_str(),
        group: instance.group.as_deref(),
        image: &instance.image,
        channel: &instance.channel,
        tag: instance.tag.as_deref(),
        digest: instance.digest.as_ref().map(fleet_registry::Digest::as_str),
        state: state.map(|s| s.to_string()),
        health,
        ports: &instance.ports,
    }
}

/// A runtime for the commands that talk to the network.
pub(crate) fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?)
}
