//! `fleet export NAME...|--all --format compose|toml [-o FILE]`: instances as a
//! `docker-compose.yml` that runs them without fleet, or as a `fleet.toml` fragment.

use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;
use fleet_core::InstanceName;

use crate::cli::RegistryArgs;
use crate::commands::{Context, open_existing_fleet, runtime};
use crate::output::usage;

#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// The instances to export.
    #[arg(required_unless_present = "all", conflicts_with = "all")]
    names: Vec<String>,

    /// Export every instance.
    #[arg(long)]
    all: bool,

    /// `compose`: a docker-compose.yml that runs them without fleet; `toml`: a
    /// fleet.toml fragment.
    #[arg(long, value_enum)]
    format: Format,

    /// Write to this file (mode 0600: it holds environment values) instead of stdout.
    #[arg(short = 'o', long = "output", value_name = "FILE")]
    output: Option<PathBuf>,

    #[command(flatten)]
    registry: RegistryArgs,
}

/// What to write.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "snake_case")]
enum Format {
    /// A docker-compose.yml (file format 2.4).
    Compose,
    /// A fleet.toml fragment.
    Toml,
}

/// `--json`: what was exported, and the text unless it went to a file.
#[derive(serde::Serialize)]
struct ExportJson<'a> {
    format: Format,
    instances: Vec<&'a str>,
    path: Option<&'a Path>,
    content: Option<&'a str>,
}

pub(crate) fn run(context: &Context, args: &Args) -> anyhow::Result<ExitCode> {
    let names = args
        .names
        .iter()
        .map(|n| n.parse::<InstanceName>().map_err(usage))
        .collect::<Result<Vec<_>, _>>()?;
    let exported = runtime()?.block_on(async {
        let fleet = open_existing_fleet(context, &args.registry).await?;
        let names = if args.all {
            fleet.list()?.into_iter().map(|i| i.name).collect()
        } else {
            names
        };
        anyhow::Ok(fleet.export(&names).await?)
    })?;
    let text = match args.format {
        Format::Compose => fleet_core::export::compose(&exported),
        Format::Toml => fleet_core::export::toml(&exported),
    };
    let instances: Vec<&str> = exported.iter().map(|i| i.spec.name.as_str()).collect();
    if let Some(path) = &args.output {
        write_private(path, &text)?;
    }
    if context.out.is_json() {
        context.out.json(&ExportJson {
            format: args.format,
            instances,
            path: args.output.as_deref(),
            content: args.output.is_none().then_some(text.as_str()),
        })?;
    } else if let Some(path) = &args.output {
        context.out.lines(&[format!(
            "exported {} to {}",
            if instances.is_empty() {
                "no instance".to_owned()
            } else {
                instances.join(", ")
            },
            path.display()
        )])?;
    } else {
        let mut stdout = std::io::stdout().lock();
        stdout.write_all(text.as_bytes())?;
        stdout.flush()?;
    }
    Ok(ExitCode::SUCCESS)
}

/// Writes `text` to `path` whole or not at all (a sibling file renamed over it), readable
/// by this user only: it holds environment values, which may be secrets.
fn write_private(path: &Path, text: &str) -> anyhow::Result<()> {
    let file_name = path
        .file_name()
        .with_context(|| format!("{} names no file", path.display()))?;
    let mut temporary = file_name.to_owned();
    temporary.push(format!(".tmp-{}", std::process::id()));
    let temporary = path.with_file_name(temporary);
    let write = || -> std::io::Result<()> {
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&temporary)?;
        file.write_all(text.as_bytes())?;
        file.sync_all()?;
        std::fs::rename(&temporary, path)
    };
    write().map_err(|error| {
        let _ = std::fs::remove_file(&temporary);
        anyhow::Error::new(error).context(format!("cannot write {}", path.display()))
    })
}
