//! Putting restored data in place of the old, atomically where the kernel allows.

use std::io;
use std::path::{Path, PathBuf};

use crate::Error;

/// The steps a swap can fail at; tests inject failures at each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Step {
    /// Exchanging the new and the old directory in one `renameat2(RENAME_EXCHANGE)`.
    Exchange,
    /// Moving the old directory to its `.pre-restore-` name.
    MoveAside,
    /// Moving the new directory to the target name.
    MoveIn,
}

#[cfg(test)]
thread_local! {
    /// The step that fails with an injected error.
    pub(crate) static FAIL_AT: std::cell::Cell<Option<Step>> = const { std::cell::Cell::new(None) };
    /// Pretends the filesystem cannot exchange, forcing the two-rename fallback.
    pub(crate) static NO_EXCHANGE: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

fn fault(step: Step) -> io::Result<()> {
    #[cfg(test)]
    if FAIL_AT.get() == Some(step) {
        return Err(io::Error::other(format!("injected failure at {step:?}")));
    }
    let _ = step;
    Ok(())
}

/// Puts the directory `new` at `target`. When `target` exists, the old directory ends up at
/// `aside`, or stays where it was if anything fails; returns where it is.
///
/// With `renameat2(RENAME_EXCHANGE)` (Linux on ext4, xfs, btrfs, tmpfs, overlayfs) the target
/// path always names a complete directory, old or new. Where exchange is unsupported, two
/// renames are used; a failure of the second renames the old directory back.
pub(crate) fn swap(new: &Path, target: &Path, aside: &Path) -> Result<Option<PathBuf>, Error> {
    let swap_err = |reason: String| {
        let target = target.to_owned();
        move |source| Error::Swap {
            target,
            reason,
            source,
        }
    };
    if !exists(target).map_err(Error::io(target))? {
        fault(Step::MoveIn)
            .and_then(|()| std::fs::rename(new, target))
            .map_err(swap_err(format!(
                "could not move the restored data from {} into place",
                new.display()
            )))?;
        return Ok(None);
    }
    match fault(Step::Exchange).and_then(|()| exchange(new, target)) {
        Ok(()) => {
            // The restore is done; the old data is at `new` now. Give it a telling name if possible.
            Ok(Some(
                match fault(Step::MoveAside).and_then(|()| std::fs::rename(new, aside)) {
                    Ok(()) => aside.to_owned(),
                    Err(_) => new.to_owned(),
                },
            ))
        }
        Err(err) if !exchange_unsupported(&err) => Err(swap_err(format!(
            "could not exchange it with the restored data at {}; the previous data is untouched",
            new.display()
        ))(err)),
        Err(_) => {
            fault(Step::MoveAside)
                .and_then(|()| std::fs::rename(target, aside))
                .map_err(swap_err(format!(
                    "could not move the previous data aside to {}; it is untouched",
                    aside.display()
                )))?;
            if let Err(err) = fault(Step::MoveIn).and_then(|()| std::fs::rename(new, target)) {
                let reason = match std::fs::rename(aside, target) {
                    Ok(()) => {
                        "could not move the restored data into place; the previous data is back"
                            .to_owned()
                    }
                    Err(_) => format!(
                        "could not move the restored data into place; the previous data is at {}, the restored at {}",
                        aside.display(),
                        new.display()
                    ),
                };
                return Err(swap_err(reason)(err));
            }
            Ok(Some(aside.to_owned()))
        }
    }
}

fn exists(path: &Path) -> io::Result<bool> {
    match std::fs::symlink_metadata(path) {
        Ok(_) => Ok(true),
        Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(err) => Err(err),
    }
}

fn exchange_unsupported(err: &io::Error) -> bool {
    matches!(
        err.raw_os_error(),
        Some(libc::EINVAL | libc::ENOSYS | libc::EOPNOTSUPP)
    )
}

#[cfg(target_os = "linux")]
fn exchange(a: &Path, b: &Path) -> io::Result<()> {
    use std::ffi::CString;
    use std::os::unix::ffi::OsStrExt;

    #[cfg(test)]
    if NO_EXCHANGE.get() {
        return Err(io::Error::from_raw_os_error(libc::EINVAL));
    }
    let a = CString::new(a.as_os_str().as_bytes()).map_err(io::Error::other)?;
    let b = CString::new(b.as_os_str().as_bytes()).map_err(io::Error::other)?;
    // SAFETY: both paths are valid NUL-terminated strings that outlive the call. The raw
    // syscall is used because not every libc (older musl) wraps renameat2.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_renameat2,
            libc::AT_FDCWD,
            a.as_ptr(),
            libc::AT_FDCWD,
            b.as_ptr(),
            libc::RENAME_EXCHANGE,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

#[cfg(not(target_os = "linux"))]
fn exchange(_: &Path, _: &Path) -> io::Result<()> {
    Err(io::Error::from_raw_os_error(libc::ENOSYS))
}
