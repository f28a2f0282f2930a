//! Instance data directories: which ones fleet may use, which ones it may delete, and
//! how it prepares one for the container.
//!
//! The rule (DESIGN.md, "fleet deletes only what it made"): an operator's directory is
//! theirs. fleet deletes a data directory only when it is fleet's own, that is the
//! default location under the state directory or a directory fleet itself created at
//! `create`, and never while another instance uses it.

use std::path::{Component, Path, PathBuf};

use crate::error::Error;
use crate::name::InstanceName;

/// Directories that are never an instance's data directory, nor inside one: deleting
/// or chowning them breaks the host.
const SYSTEM_TREES: &[&str] = &[
    "/bin",
    "/boot",
    "/dev",
    "/etc",
    "/lib",
    "/lib32",
    "/lib64",
    "/libx32",
    "/proc",
    "/run",
    "/sbin",
    "/sys",
    "/usr",
    "/var/lib/docker",
    "/var/lib/containerd",
    "/var/run",
];

/// Directories that hold everyone's files: refused as a data directory themselves,
/// although a directory inside them is fine (`/srv/alice`, `/home/bob/app-data`).
const SHARED_ROOTS: &[&str] = &[
    "/", "/home", "/media", "/mnt", "/opt", "/root", "/srv", "/tmp", "/var", "/var/lib", "/var/tmp",
];

/// Why `dir` cannot be an instance's data directory, if it cannot: `/`, a system
/// directory or one inside it, a shared root such as `/home`, the state directory or
/// one of its parents. Symbolic links are followed as far as the path exists, so a
/// link to `/etc` is `/etc`.
pub(crate) fn refusal(dir: &Path, state_dir: &Path) -> Option<String> {
    let dir = resolve(dir);
    if SHARED_ROOTS.iter().any(|root| dir == Path::new(root)) {
        return Some(format!(
            "{} is a directory the whole system shares; use a directory of its own inside it",
            dir.display()
        ));
    }
    if let Some(tree) = SYSTEM_TREES
        .iter()
        .find(|tree| dir.starts_with(Path::new(tree)))
    {
        return Some(format!("{tree} belongs to the system"));
    }
    let state_dir = resolve(state_dir);
    if state_dir.starts_with(&dir) {
        return Some(format!(
            "it holds fleet's state directory {}",
            state_dir.display()
        ));
    }
    None
}

/// Why fleet must not delete `dir`, the data directory of `instance`, if it must not.
///
/// `created` says whether fleet created the directory when the instance was created;
/// `others` are the data directories of every other instance.
pub(crate) fn purge_refusal(
    instance: &InstanceName,
    dir: &Path,
    default: &Path,
    created: bool,
    others: &[(InstanceName, PathBuf)],
) -> Option<String> {
    let resolved = resolve(dir);
    if let Some((other, _)) = others.iter().find(|(_, other)| {
        let other = resolve(other);
        other.starts_with(&resolved) || resolved.starts_with(&other)
    }) {
        return Some(format!("instance {other} uses it too"));
    }
    if resolved == resolve(default) || created {
        return None;
    }
    Some(format!(
        "fleet did not create it: it was given as the data directory of {instance} and \
         belongs to whoever made it"
    ))
}

/// `path` made absolute and free of `.`, `..` and symbolic links, as far as it exists;
/// the part that does not exist yet is appended as written (without `.` and `..`).
fn resolve(path: &Path) -> PathBuf {
    let mut existing = path.to_owned();
    let mut rest = Vec::new();
    loop {
        if let Ok(real) = existing.canonicalize() {
            let mut resolved = real;
            for part in rest.iter().rev() {
                resolved.push(part);
            }
            return lexical(&resolved);
        }
        match (existing.parent(), existing.file_name()) {
            (Some(parent), Some(name)) => {
                rest.push(name.to_owned());
                existing = parent.to_owned();
            }
            _ => return lexical(path),
        }
    }
}

/// `path` without `.` and `..` components, resolved lexically.
fn lexical(path: &Path) -> PathBuf {
    let mut clean = PathBuf::new();
    for component in path.components() {
        match component {
            Component::ParentDir => {
                clean.pop();
            }
            Component::CurDir => {}
            other => clean.push(other),
        }
    }
    clean
}

/// Creates the data directory if needed (owned by the container's numeric user when
/// fleet runs as root and made it), and proves it writable.
pub(crate) fn prepare(
    name: &InstanceName,
    dir: &Path,
    created_now: bool,
    user: Option<&str>,
) -> Result<(), Error> {
    let fail = |source: std::io::Error| Error::DataDir {
        instance: name.to_string(),
        path: dir.to_owned(),
        source,
    };
    std::fs::create_dir_all(dir).map_err(fail)?;
    if !dir.is_dir() {
        return Err(fail(std::io::Error::new(
            std::io::ErrorKind::NotADirectory,
            "it is not a directory",
        )));
    }
    let probe = dir.join(".fleet-write-test");
    std::fs::write(&probe, b"")
        .and_then(|()| std::fs::remove_file(&probe))
        .map_err(fail)?;
    if created_now
        && nix::unistd::Uid::effective().is_root()
        && let Some((uid, gid)) = user.and_then(numeric_user)
    {
        nix::unistd::chown(dir, Some(uid.into()), Some(gid.into()))
            .map_err(|e| fail(std::io::Error::from(e)))?;
    }
    Ok(())
}

/// `uid[:gid]` with numbers only; a user name cannot be resolved outside the image.
fn numeric_user(user: &str) -> Option<(u32, u32)> {
    let (uid, gid) = user.split_once(':').unwrap_or((user, user));
    Some((uid.parse().ok()?, gid.parse().ok()?))
}

/// The highest ancestor of `dir` (or `dir` itself) that does not exist yet: what
/// `create_dir_all(dir)` will create, and what undoing it must remove.
pub(crate) fn topmost_missing(dir: &Path) -> Option<PathBuf> {
    let mut missing = None;
    for ancestor in dir.ancestors() {
        if ancestor.exists() {
            break;
        }
        missing = Some(ancestor.to_owned());
    }
    missing
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(dir: &str) -> String {
        refusal(Path::new(dir), Path::new("/var/lib/fleet")).unwrap_or_else(|| "ok".into())
    }

    #[test]
    fn data_directories_fleet_refuses() {
        insta::assert_snapshot!(check("/"), @"/ is a directory the whole system shares; use a directory of its own inside it");
        insta::assert_snapshot!(check("/etc"), @"/etc belongs to the system");
        insta::assert_snapshot!(check("/etc/"), @"/etc belongs to the system");
        insta::assert_snapshot!(check("/etc/nginx"), @"/etc belongs to the system");
        insta::assert_snapshot!(check("/usr/../etc"), @"/etc belongs to the system");
        insta::assert_snapshot!(check("/var/lib/docker/volumes/x"), @"/var/lib/docker belongs to the system");
        insta::assert_snapshot!(check("/proc"), @"/proc belongs to the system");
        insta::assert_snapshot!(check("/home"), @"/home is a directory the whole system shares; use a directory of its own inside it");
        insta::assert_snapshot!(check("/var/lib"), @"/var/lib is a directory the whole system shares; use a directory of its own inside it");
        insta::assert_snapshot!(check("/var/lib/fleet"), @"it holds fleet's state directory /var/lib/fleet");
        insta::assert_snapshot!(check("/var/lib/fleet/instances/a/data"), @"ok");
        insta::assert_snapshot!(check("/srv/alice"), @"ok");
        insta::assert_snapshot!(check("/home/bob/app-data"), @"ok");
        insta::assert_snapshot!(check("/var/lib/fleet-data/alice"), @"ok");
    }

    #[test]
    fn a_link_to_a_system_directory_is_that_directory() {
        let dir = tempfile::tempdir().unwrap();
        let link = dir.path().join("innocent");
        std::os::unix::fs::symlink("/etc", &link).unwrap();
        assert_eq!(
            refusal(&link, Path::new("/var/lib/fleet")).as_deref(),
            Some("/etc belongs to the system")
        );
        assert_eq!(
            refusal(&link.join("sub"), Path::new("/var/lib/fleet")).as_deref(),
            Some("/etc belongs to the system")
        );
    }

    #[test]
    fn purge_only_what_fleet_made_and_nobody_else_uses() {
        let alice: InstanceName = "alice".parse().unwrap();
        let bob: InstanceName = "bob".parse().unwrap();
        let default = Path::new("/state/instances/alice/data");
        let check = |dir: &str, created: bool, others: &[(InstanceName, PathBuf)]| {
            purge_refusal(&alice, Path::new(dir), default, created, others)
                .unwrap_or_else(|| "ok".into())
        };
        insta::assert_snapshot!(check("/state/instances/alice/data", false, &[]), @"ok");
        insta::assert_snapshot!(check("/srv/alice", true, &[]), @"ok");
        insta::assert_snapshot!(check("/srv/alice", false, &[]), @"fleet did not create it: it was given as the data directory of alice and belongs to whoever made it");
        let shared = [(bob.clone(), PathBuf::from("/srv/alice"))];
        insta::assert_snapshot!(check("/srv/alice", true, &shared), @"instance bob uses it too");
        let inside = [(bob, PathBuf::from("/srv/alice/bob"))];
        insta::assert_snapshot!(check("/srv/alice", true, &inside), @"instance bob uses it too");
    }
}
