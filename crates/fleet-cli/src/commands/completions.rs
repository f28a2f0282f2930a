//! `fleet completions SHELL`: the shell's completion script, from the clap definition.

use std::io::Write as _;
use std::process::ExitCode;

use crate::commands::Context;

#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// The shell: bash, zsh, fish (also elvish, powershell).
    shell: clap_complete::Shell,
}

pub(crate) fn run(_context: &Context, args: &Args) -> anyhow::Result<ExitCode> {
    // Rendered first, then written: a closed stdout is then a plain io::Error.
    let mut script = Vec::new();
    clap_complete::generate(args.shell, &mut crate::cli::command(), "fleet", &mut script);
    let mut stdout = std::io::stdout().lock();
    stdout.write_all(&script)?;
    stdout.flush()?;
    Ok(ExitCode::SUCCESS)
}
