//! The `fleet` command: run many isolated instances of one app image on a host.
//!
//! `main` is thin: it parses the command line, runs one command and turns the result
//! into an exit code (0 ok, 1 failed, 2 usage), printing an error once, with its whole
//! chain and `hint:` lines, on stderr. A closed stdout (`fleet … | head`) is success.
//!
//! - `cli.rs`: the clap definitions and the global flags (`--json`, `--state-dir`,
//!   `-q`, `-v`, `--no-color`).
//! - `commands/<command>.rs`: one file per command, each `run(&Context, &Args)`.
//! - `output.rs`: stdout (text or one JSON document), colours (`NO_COLOR`), errors
//!   and hints.
//!
//! The contract (names, flags, JSON shapes, exit codes) is in `docs/cli.md`.

// The one crate that talks to the terminal.
#![allow(clippy::print_stdout, clippy::print_stderr)]

mod cli;
mod commands;
#[cfg(test)]
mod man;
mod output;
mod progress;

use std::process::ExitCode;

fn main() -> ExitCode {
    match run() {
        Ok(code) => code,
        Err(error) => output::report(&error),
    }
}

fn run() -> anyhow::Result<ExitCode> {
    let cli = match cli::parse() {
        Ok(cli) => cli,
        // Usage errors exit 2; `--help` and `--version` print and exit 0.
        Err(error) => {
            error.print()?;
            return Ok(ExitCode::from(u8::try_from(error.exit_code()).unwrap_or(2)));
        }
    };
    if cli.global.no_color {
        output::disable_color();
    }
    output::init_tracing(cli.global.log_level());
    commands::run(cli)
}
