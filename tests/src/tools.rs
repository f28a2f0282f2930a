//! External programs the tests need, found on the `PATH` or reported missing clearly.

use std::path::PathBuf;

use anyhow::bail;

/// Finds `binary` on the `PATH` (and in `/usr/sbin`, `/sbin`).
///
/// A missing program is an error naming the Debian package that provides it: tests fail
/// with it instead of skipping themselves.
pub fn require(binary: &str, debian_package: &str) -> anyhow::Result<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let dirs = std::env::split_paths(&path).chain(["/usr/sbin".into(), "/sbin".into()]);
    for dir in dirs {
        let candidate = dir.join(binary);
        if candidate.is_file() {
            return Ok(candidate);
        }
    }
    bail!(
        "`{binary}` is not installed, and the end-to-end tests need it: install Debian's \
         `{debian_package}` package (`apt-get install {debian_package}`), or run \
         `cargo xtask test` as root, which installs it"
    )
}
