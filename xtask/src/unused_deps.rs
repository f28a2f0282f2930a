//! The unused-dependency check of `cargo xtask test`: `cargo machete` over every package in
//! the repository (the workspace and `fuzz/`), installed first when it is missing.
//!
//! `--with-metadata` reads each package's dependencies through `cargo metadata`, which
//! also checks dev-dependencies and renamed crates. A dependency machete cannot see used
//! (through a macro, or a `#[path]` module outside the package) is listed under
//! `[package.metadata.cargo-machete] ignored` in its `Cargo.toml`, with a comment saying why.

use std::time::Instant;

use anyhow::{Context as _, bail};

use crate::describe;
use crate::provision::{self, CargoTool};

/// The tool and the version new machines install; `.github/workflows/ci.yml` installs the
/// same one (a test below keeps them in step).
pub(crate) const MACHETE: CargoTool = CargoTool {
    subcommand: "machete",
    package: "cargo-machete",
    version: "0.9.2",
};

/// Fails, after machete's own list of what is unused where, when a package declares a
/// dependency it does not use.
pub(crate) fn check() -> anyhow::Result<()> {
    provision::ensure_cargo_tool(MACHETE)?;
    let started = Instant::now();
    let mut command = MACHETE.command();
    command.args(["--with-metadata", "--skip-target-dir"]);
    eprintln!("xtask: $ {}", describe(&command));
    let status = command
        .status()
        .with_context(|| format!("cannot run {}", describe(&command)))?;
    match status.code() {
        Some(0) => {
            eprintln!(
                "xtask: no unused dependencies ({:.1} s)",
                started.elapsed().as_secs_f64()
            );
            Ok(())
        }
        Some(1) => bail!(
            "cargo-machete found unused dependencies (listed above): remove them from their \
             Cargo.toml, or, where machete is wrong, list them under \
             [package.metadata.cargo-machete] ignored with a comment saying why"
        ),
        _ => bail!("`{}` failed ({status})", describe(&command)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_workflow_installs_the_machete_xtask_installs() {
        let workflow =
            std::fs::read_to_string(crate::workspace_root().join(".github/workflows/ci.yml"))
                .expect(".github/workflows/ci.yml is readable");
        let install = format!("cargo {}", MACHETE.install_args().join(" "));
        assert!(workflow.contains(&install), "ci.yml should run `{install}`");
        assert!(
            workflow.contains("cargo machete --with-metadata --skip-target-dir"),
            "ci.yml should run machete as xtask does"
        );
    }
}
