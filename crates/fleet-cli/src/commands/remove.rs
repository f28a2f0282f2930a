//! `fleet rm NAME [--purge-data] [--yes]`: remove an instance (its data stays unless purged).

use std::io::{BufRead as _, IsTerminal as _, Write as _};
use std::path::Path;
use std::process::ExitCode;

use fleet_core::InstanceName;

use crate::cli::RegistryArgs;
use crate::commands::{Context, open_fleet, runtime};
use crate::output::usage;

#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// The instance.
    name: String,

    /// Also delete its data directory (asks first on a terminal).
    #[arg(long)]
    purge_data: bool,

    /// Do not ask: confirm deleting the data.
    #[arg(long, short = 'y')]
    yes: bool,

    #[command(flatten)]
    registry: RegistryArgs,
}

#[derive(serde::Serialize)]
struct Json<'a> {
    name: &'a str,
    removed: bool,
    data_purged: bool,
    data_dir: &'a Path,
}

/// Asks on the terminal; anything but `y`/`yes` is no. Without a terminal, no.
fn ask(path: &Path, name: &str) -> bool {
    if !std::io::stdin().is_terminal() {
        return false;
    }
    let mut stderr = std::io::stderr().lock();
    let _ = write!(
        stderr,
        "delete the data of {name} in {} for good? [y/N] ",
        path.display()
    );
    let _ = stderr.flush();
    let mut answer = String::new();
    let _ = std::io::stdin().lock().read_line(&mut answer);
    matches!(answer.trim().to_lowercase().as_str(), "y" | "yes")
}

pub(crate) fn run(context: &Context, args: &Args) -> anyhow::Result<ExitCode> {
    let name: InstanceName = args.name.parse().map_err(usage)?;
    let (purged, data_dir) = runtime()?.block_on(async {
        let fleet = open_fleet(context, &args.registry).await?;
        let data_dir = fleet.get(&name)?.data_dir;
        let confirm = |path: &Path| args.yes || ask(path, name.as_str());
        let purge: Option<&(dyn Fn(&Path) -> bool + Sync)> = if args.purge_data {
            Some(&confirm)
        } else {
            None
        };
        let purged = fleet.remove(&name, purge).await?;
        anyhow::Ok((purged, data_dir))
    })?;
    if context.out.is_json() {
        context.out.json(&Json {
            name: name.as_str(),
            removed: true,
            data_purged: purged,
            data_dir: &data_dir,
        })?;
    } else if purged {
        context
            .out
            .lines(&[format!("removed {name} and its data")])?;
    } else {
        context.out.lines(&[format!(
            "removed {name}; its data stays in {}",
            data_dir.display()
        )])?;
    }
    Ok(ExitCode::SUCCESS)
}
