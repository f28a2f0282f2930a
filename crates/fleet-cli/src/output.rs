//! What `fleet` writes: data on stdout (text, or one JSON document with `--json`),
//! diagnostics, errors and `hint:` lines on stderr, colour only on a terminal and
//! never with `NO_COLOR`.

use std::fmt;
use std::io::{IsTerminal as _, Write as _};
use std::process::ExitCode;

use fleet_registry::ReferenceError;

/// Where and how a command prints.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Output {
    json: bool,
    color: bool,
    /// `--quiet`: errors only on stderr.
    quiet: bool,
}

impl Output {
    pub(crate) fn new(json: bool) -> Output {
        Output {
            json,
            color: !json && color_allowed() && std::io::stdout().is_terminal(),
            quiet: false,
        }
    }

    /// With `quiet`, stderr gets errors only: no notes, hints or progress.
    pub(crate) fn quiet(self, quiet: bool) -> Output {
        Output { quiet, ..self }
    }

    /// Whether only errors may go to stderr.
    pub(crate) fn is_quiet(&self) -> bool {
        self.quiet
    }

    /// Whether to print JSON.
    pub(crate) fn is_json(&self) -> bool {
        self.json
    }

    /// Prints one JSON document.
    ///
    /// It is serialised first, then written: a failed write is then a plain
    /// `io::Error` that [`report`] can tell is a closed pipe (serde_json's own error
    /// hides the `io::Error` from the chain), and a document that cannot be serialised
    /// leaves stdout empty.
    pub(crate) fn json<T: serde::Serialize>(&self, value: &T) -> anyhow::Result<()> {
        let mut text = serde_json::to_vec_pretty(value)?;
        text.push(b'\n');
        let mut stdout = std::io::stdout().lock();
        stdout.write_all(&text)?;
        stdout.flush()?;
        Ok(())
    }

    /// Prints `key  value` lines with aligned values; an absent value prints as `-`.
    pub(crate) fn fields(&self, fields: &[(&str, Option<String>)]) -> anyhow::Result<()> {
        let width = fields.iter().map(|(key, _)| key.len()).max().unwrap_or(0);
        let mut stdout = std::io::stdout().lock();
        for (key, value) in fields {
            let padding = " ".repeat(width - key.len());
            let key = if self.color {
                format!("\x1b[1m{key}\x1b[0m")
            } else {
                (*key).to_owned()
            };
            writeln!(
                stdout,
                "{key}{padding}  {}",
                value.as_deref().unwrap_or("-")
            )?;
        }
        stdout.flush()?;
        Ok(())
    }

    /// Prints lines as they are.
    pub(crate) fn lines<S: fmt::Display>(&self, lines: &[S]) -> anyhow::Result<()> {
        let mut stdout = std::io::stdout().lock();
        for line in lines {
            writeln!(stdout, "{line}")?;
        }
        stdout.flush()?;
        Ok(())
    }

    /// A diagnostic on stderr (in both modes: stdout stays data).
    pub(crate) fn note(&self, text: &str) {
        if self.quiet {
            return;
        }
        let _ = writeln!(std::io::stderr().lock(), "note: {text}");
    }

    /// A next step to suggest, on stderr.
    pub(crate) fn hint(&self, text: &str) {
        if self.quiet {
            return;
        }
        let _ = writeln!(std::io::stderr().lock(), "hint: {text}");
    }

    /// Whether stderr is a terminal that may show live progress.
    pub(crate) fn interactive(&self) -> bool {
        !self.json && !self.quiet && std::io::stderr().is_terminal()
    }

    /// Prints a table: a header row and aligned columns, two spaces apart, no borders
    /// (like `docker ps`), never wrapped, so it reads the same in a pipe.
    pub(crate) fn table(&self, header: &[&str], rows: Vec<Vec<String>>) -> anyhow::Result<()> {
        let mut table = comfy_table::Table::new();
        table
            .load_style(comfy_table::presets::NOTHING)
            .set_content_arrangement(comfy_table::ContentArrangement::Disabled)
            .force_no_tty();
        let header: Vec<String> = header
            .iter()
            .map(|h| {
                if self.color {
                    format!("\x1b[1m{h}\x1b[0m")
                } else {
                    (*h).to_owned()
                }
            })
            .collect();
        table.set_header(header);
        table.add_rows(rows);
        for column in table.column_iter_mut() {
            column.set_padding((0, 2));
        }
        let mut stdout = std::io::stdout().lock();
        for line in table.lines() {
            writeln!(stdout, "{}", line.trim_end())?;
        }
        stdout.flush()?;
        Ok(())
    }
}

/// Set once by `--no-color`, before anything is printed.
static NO_COLOR_FLAG: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// `--no-color`: no colour anywhere, errors included, as with `NO_COLOR`.
pub(crate) fn disable_color() {
    NO_COLOR_FLAG.store(true, std::sync::atomic::Ordering::Relaxed);
}

fn color_allowed() -> bool {
    !NO_COLOR_FLAG.load(std::sync::atomic::Ordering::Relaxed)
        && std::env::var_os("NO_COLOR").is_none_or(|value| value.is_empty())
}

/// An error in what the user typed: exit code 2, like clap's own usage errors.
#[derive(Debug)]
pub(crate) struct UsageError {
    error: Box<dyn std::error::Error + Send + Sync>,
    /// A hint of the command's, printed after those the error itself implies.
    hint: Option<String>,
}

impl fmt::Display for UsageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.error.fmt(f)
    }
}

impl std::error::Error for UsageError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.error.source()
    }
}

/// Marks an argument error as a usage error (exit code 2).
pub(crate) fn usage(error: impl std::error::Error + Send + Sync + 'static) -> anyhow::Error {
    anyhow::Error::new(UsageError {
        error: Box::new(error),
        hint: None,
    })
}

/// A usage error (exit code 2) with a `hint:` line that only the command can give
/// (which flag to use): library errors name no flag.
pub(crate) fn usage_with_hint(
    error: impl std::error::Error + Send + Sync + 'static,
    hint: String,
) -> anyhow::Error {
    anyhow::Error::new(UsageError {
        error: Box::new(error),
        hint: Some(hint),
    })
}

/// Whether the error is a write to a closed stdout (`fleet … | head -1`).
fn is_broken_pipe(error: &anyhow::Error) -> bool {
    error.chain().any(|cause| {
        let kind = cause
            .downcast_ref::<std::io::Error>()
            .map(std::io::Error::kind)
            // serde_json keeps the io::Error to itself: its `source` skips it.
            .or_else(|| {
                cause
                    .downcast_ref::<serde_json::Error>()
                    .and_then(serde_json::Error::io_error_kind)
            });
        kind == Some(std::io::ErrorKind::BrokenPipe)
    })
}

/// Prints an error once (its whole chain, then hints) and picks the exit code.
pub(crate) fn report(error: &anyhow::Error) -> ExitCode {
    if is_broken_pipe(error) {
        return ExitCode::SUCCESS;
    }
    let color = color_allowed() && std::io::stderr().is_terminal();
    let (error_label, hint_label) = if color {
        ("\x1b[1;31merror:\x1b[0m", "\x1b[1;36mhint:\x1b[0m")
    } else {
        ("error:", "hint:")
    };
    let mut stderr = std::io::stderr().lock();
    let _ = writeln!(stderr, "{error_label} {error:#}");
    for hint in hints(error) {
        let _ = writeln!(stderr, "{hint_label} {hint}");
    }
    let invalid_input = |cause: &(dyn std::error::Error + 'static)| {
        cause.is::<UsageError>()
            || cause
                .downcast_ref::<fleet_core::Error>()
                .is_some_and(fleet_core::Error::is_invalid_input)
    };
    if error.chain().any(invalid_input) {
        ExitCode::from(2)
    } else {
        ExitCode::FAILURE
    }
}

/// What to try next, for the errors where something useful can be said.
fn hints(error: &anyhow::Error) -> Vec<String> {
    let mut hints = error_hints(error);
    hints.extend(
        error
            .chain()
            .filter_map(|cause| cause.downcast_ref::<UsageError>()?.hint.clone()),
    );
    hints
}

/// The hints an error implies, whichever command met it.
fn error_hints(error: &anyhow::Error) -> Vec<String> {
    if let Some(core) = find_error::<fleet_core::Error>(error) {
        let hints = core_hints(core);
        if !hints.is_empty() {
            return hints;
        }
    }
    registry_hints(error)
}

/// The first `E` in the chain, or wrapped in a [`UsageError`] (whose `source` skips it).
fn find_error<E: std::error::Error + 'static>(error: &anyhow::Error) -> Option<&E> {
    error.chain().find_map(|cause| {
        cause.downcast_ref::<E>().or_else(|| {
            cause
                .downcast_ref::<UsageError>()
                .and_then(|usage| usage.error.downcast_ref())
        })
    })
}

/// Hints for fleet-core's errors.
fn core_hints(error: &fleet_core::Error) -> Vec<String> {
    use fleet_core::{EngineError, EngineOperation, Error as E, PortHolder};
    match error {
        E::PortTaken { holder: PortHolder::Instance { name }, .. } => vec![format!(
            "instance {name} holds it (`fleet ports`); omit --host-port to get a free port"
        )],
        E::PortTaken { holder: PortHolder::Container { name }, .. } => vec![format!(
            "the container {name} publishes it (`docker ps`); omit --host-port to get a free port"
        )],
        E::PortTaken { .. } => vec!["a process on this host listens on it (`ss -ltnp` shows which); omit --host-port to get a free port".to_owned()],
        E::PortsExhausted { .. } => vec!["widen [ports] in <state dir>/config.toml, or remove instances you no longer need".to_owned()],
        E::InstanceExists { .. } => vec!["`fleet ls` lists instances; choose another name or `fleet rm` the old one".to_owned()],
        E::NoContainer { instance } => vec![format!(
            "`fleet start {instance}` makes one from the recorded digest, `fleet reconcile` repairs every instance"
        )],
        E::NoSuchBackup { instance, .. } => vec![format!("`fleet backups {instance}` lists its backups")],
        E::NoSuchInstance { .. } => vec!["`fleet ls` lists instances".to_owned()],
        E::Busy { .. } => vec!["wait for the other operation to finish; a crashed holder's lease expires by itself".to_owned()],
        E::NoFleet { .. } => vec!["the state directory is --state-dir, else FLEET_STATE_DIR, else the default; check them for a typo, or `fleet create` a first instance there".to_owned()],
        E::StoreNotAFleet { .. } => vec!["`docker ps -a --filter label=fleet.scope` lists the containers of every fleet on this engine".to_owned()],
        E::StoreReadOnly { .. } => vec!["this command changes the fleet: run it where the state directory is writable".to_owned()],
        E::StoreOutdated { .. } => vec!["run a command that changes the fleet once where the state directory is writable".to_owned()],
        E::Unhealthy { undone: true, .. } => vec![
            "nothing was left behind; fix the image or its settings (the app's last output is above) and create it again".to_owned(),
        ],
        E::Unhealthy { instance, .. } => vec![format!(
            "{instance} is left as it is: `fleet logs {instance}` shows its output, `fleet status {instance}` probes it again, `fleet stop {instance}` stops it"
        )],
        E::UndoIncomplete { .. } => vec![
            "`fleet reconcile` removes containers fleet no longer owns; delete a data directory that is left yourself".to_owned(),
        ],
        E::DataDirRefused { .. } => vec!["give the instance a directory of its own with --data-dir, or omit it to use <state dir>/instances/NAME/data".to_owned()],
        E::PurgeRefused { instance, path, .. } => vec![format!(
            "nothing was removed; `fleet rm {instance}` without --purge-data removes the instance and keeps {}; delete it yourself if you mean to",
            path.display()
        )],
        E::DataDir { .. } => vec!["choose a writable directory with --data-dir, or fix its permissions".to_owned()],
        E::ConfirmationRequired { .. } => vec!["pass --yes to delete the data without asking".to_owned()],
        E::Engine { source: EngineError::PermissionDenied { .. }, .. } => vec![
            "run fleet as root, or as a member of the group that owns the socket (usually `docker`)".to_owned(),
        ],
        E::Engine { source: EngineError::Timeout { .. }, .. } => vec![
            "the engine is overloaded or hung (`docker info` tells); raise [engine] request_timeout in <state dir>/config.toml if it is only slow".to_owned(),
        ],
        E::Engine { source: EngineError::Unreachable { .. }, .. } => vec![
            "start the Docker Engine (`dockerd`), or point DOCKER_HOST at one (Podman: unix:///run/podman/podman.sock)".to_owned(),
        ],
        E::Engine { source: EngineError::NotFound { .. }, operation: EngineOperation::Pull, .. } => {
            vec!["the registry no longer has this digest; `fleet resolve` shows what the channel points at".to_owned()]
        }
        // Met by `create`, `start` or `reconcile`, which have no `--prereleases`: the
        // channel itself must name a prerelease.
        E::Registry { source: fleet_registry::Error::NoMatchingTag { .. }, .. } => vec![
            "version channels pick stable versions only; to follow prereleases, name one in the channel (`:v2.0.0-rc.1`, `:>=2.0.0-rc.1`)".to_owned(),
        ],
        _ => Vec::new(),
    }
}

/// Hints for fleet-registry's errors.
fn registry_hints(error: &anyhow::Error) -> Vec<String> {
    use fleet_registry::Error as E;
    let Some(registry_error) = find_error::<fleet_registry::Error>(error) else {
        return Vec::new();
    };
    let registry_of = |reference: &str| {
        reference.parse::<fleet_registry::ImageRef>().map_or_else(
            |_| reference.to_owned(),
            |image| image.registry().to_owned(),
        )
    };
    match registry_error {
        E::InvalidReference { reason: ReferenceError::Uppercase { repository }, .. } => {
            vec![format!("repository names are lowercase: `{}`", repository.to_lowercase())]
        }
        E::InvalidReference { .. } => {
            vec!["references look like `nginx`, `owner/app:v1`, `ghcr.io/owner/app@sha256:…`".to_owned()]
        }
        E::Unauthorized { reference, .. } => {
            let registry = registry_of(reference);
            vec![
                format!("log in with `docker login {registry}`, or set DOCKER_CONFIG to a directory whose config.json has credentials for it"),
                "some registries also answer this way for repositories that do not exist".to_owned(),
            ]
        }
        E::RateLimited { retry_after, .. } => {
            let when = retry_after.map_or_else(|| "later".to_owned(), |wait| format!("in {}s", wait.as_secs().max(1)));
            vec![format!("try again {when}; logged-in clients get higher limits on most registries")]
        }
        E::RepositoryNotFound { .. } => {
            vec!["check the registry and repository name; `fleet ref REF` shows how a reference is read".to_owned()]
        }
        E::ManifestNotFound { .. } => vec!["the repository exists, but not this tag or digest".to_owned()],
        E::NoMatchingTag { .. } => vec![
            "version channels pick stable versions only; `--prereleases` includes release candidates".to_owned(),
        ],
        E::Network { reference, .. } => vec![format!(
            "check that {} is reachable; plain HTTP is used only for loopback registries and --insecure-registry hosts",
            registry_of(reference)
        )],
        _ => Vec::new(),
    }
}

/// Logs go to stderr, filtered by `FLEET_LOG`, else by `level` (`-q`, `-v`: default
/// warnings).
///
/// Logs never contain secrets: bollard logs every request body and every decoded
/// response at debug level, and a container's create body and inspect answer carry its
/// environment. So bollard's events below `info` are dropped whatever `FLEET_LOG` says.
pub(crate) fn init_tracing(level: &str) {
    use tracing_subscriber::Layer as _;
    use tracing_subscriber::layer::SubscriberExt as _;
    use tracing_subscriber::util::SubscriberInitExt as _;

    let filter = tracing_subscriber::EnvFilter::try_from_env("FLEET_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    let no_engine_bodies = tracing_subscriber::filter::filter_fn(|meta| {
        !(meta.target().starts_with("bollard") && *meta.level() > tracing::Level::INFO)
    });
    let layer = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(color_allowed() && std::io::stderr().is_terminal())
        .with_filter(no_engine_bodies)
        .with_filter(filter);
    let _ = tracing_subscriber::registry().with(layer).try_init();
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_matching_tag() -> fleet_registry::Error {
        fleet_registry::Error::NoMatchingTag {
            reference: "127.0.0.1:5000/app".into(),
            channel: "v9".into(),
            tags: 3,
        }
    }

    /// Regression (issue 14): `fleet create … :v9` hinted at `--prereleases`, which only
    /// `fleet resolve` has.
    #[test]
    fn no_matching_tag_hints_name_only_flags_the_command_has() {
        // `fleet resolve` meets the registry's error itself.
        let resolve = anyhow::Error::new(no_matching_tag());
        insta::assert_snapshot!(hints(&resolve).join("\n"), @"version channels pick stable versions only; `--prereleases` includes release candidates");
        // `create`, `start` and `reconcile` meet it through fleet-core.
        let create = anyhow::Error::new(fleet_core::Error::Registry {
            image: "127.0.0.1:5000/app:v9".into(),
            source: no_matching_tag(),
        });
        insta::assert_snapshot!(hints(&create).join("\n"), @"version channels pick stable versions only; to follow prereleases, name one in the channel (`:v2.0.0-rc.1`, `:>=2.0.0-rc.1`)");
    }

    #[test]
    fn usage_errors_carry_the_hints_of_the_error_and_of_the_command() {
        let error = usage_with_hint(
            fleet_registry::Error::InvalidCommitSha { input: "x".into() },
            "a hint of the command's".into(),
        );
        insta::assert_snapshot!(format!("{error:#}\n{}", hints(&error).join("\n")), @r#"
            invalid commit sha "x": expected 7 to 64 hexadecimal digits
            a hint of the command's
        "#);
    }

    /// Regression (issue 14): `fleet ls --json | head -1` failed with "Broken pipe",
    /// because serde_json's error hides the io::Error from the chain.
    #[test]
    fn a_broken_pipe_is_seen_through_serde_json() {
        let pipe = || std::io::Error::from(std::io::ErrorKind::BrokenPipe);
        assert!(is_broken_pipe(&anyhow::Error::new(pipe())));
        assert!(is_broken_pipe(&anyhow::Error::new(serde_json::Error::io(
            pipe()
        ))));
        assert!(!is_broken_pipe(&anyhow::Error::new(serde_json::Error::io(
            std::io::Error::from(std::io::ErrorKind::PermissionDenied)
        ))));
    }
}
