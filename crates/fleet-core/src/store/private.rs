//! Keeping the state directory private: it holds secrets (instances' environment values),
//! so what fleet creates there is 0700 (directories) and 0600 (files) whatever the umask,
//! and what already exists loses every group and other permission bit when a fleet opens.
//!
//! Tightening only ever removes bits: a file an operator made read-only stays read-only.

use std::fs::{DirBuilder, File, OpenOptions, Permissions};
use std::io;
use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _, PermissionsExt as _};
use std::path::Path;

/// The bits tightening removes: everything for group and others.
const NOT_OWNER: u32 = 0o077;

/// Creates `dir` and its missing ancestors as 0700; existing ones are left as they are.
pub(crate) fn create_dir_all(dir: &Path) -> io::Result<()> {
    let missing: Vec<&Path> = dir.ancestors().take_while(|a| !a.exists()).collect();
    for dir in missing.into_iter().rev() {
        match DirBuilder::new().mode(0o700).create(dir) {
            // Exactly 0700: a umask such as 0200 would otherwise leave it 0500.
            Ok(()) => std::fs::set_permissions(dir, Permissions::from_mode(0o700))?,
            // Another process made it meanwhile.
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists && dir.is_dir() => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Creates the new file `path` as 0600; fails if it exists.
pub(crate) fn create_new_file(path: &Path) -> io::Result<File> {
    let file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    file.set_permissions(Permissions::from_mode(0o600))?;
    Ok(file)
}

/// Removes the group and other bits of `path` (not following a symbolic link); a
/// missing path is fine.
pub(crate) fn restrict(path: &Path) -> io::Result<()> {
    let metadata = match std::fs::symlink_metadata(path) {
        Ok(metadata) => metadata,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    let mode = metadata.permissions().mode();
    if metadata.file_type().is_symlink() || mode & NOT_OWNER == 0 {
        return Ok(());
    }
    std::fs::set_permissions(path, Permissions::from_mode(mode & 0o7777 & !NOT_OWNER))
}

/// [`restrict`] on `dir` and everything under it (not following symbolic links).
pub(crate) fn restrict_tree(dir: &Path) -> io::Result<()> {
    restrict(dir)?;
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e)
            if matches!(
                e.kind(),
                io::ErrorKind::NotFound | io::ErrorKind::NotADirectory
            ) =>
        {
            return Ok(());
        }
        Err(e) => return Err(e),
    };
    for entry in entries {
        let entry = entry?;
        if entry.file_type()?.is_dir() {
            restrict_tree(&entry.path())?;
        } else {
            restrict(&entry.path())?;
        }
    }
    Ok(())
}

/// The permission bits of `path` (for tests and checks).
#[cfg(test)]
pub(crate) fn mode(path: &Path) -> u32 {
    std::fs::symlink_metadata(path)
        .unwrap()
        .permissions()
        .mode()
        & 0o7777
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tightening_removes_group_and_other_bits_only() {
        let dir = tempfile::tempdir().unwrap();
        let check = |initial: u32| {
            let path = dir.path().join(format!("f{initial:o}"));
            std::fs::write(&path, b"").unwrap();
            std::fs::set_permissions(&path, Permissions::from_mode(initial)).unwrap();
            restrict(&path).unwrap();
            format!("{:o}", mode(&path))
        };
        assert_eq!(check(0o666), "600");
        assert_eq!(check(0o644), "600");
        assert_eq!(check(0o600), "600");
        assert_eq!(check(0o444), "400");
        assert_eq!(check(0o755), "700");
        assert_eq!(check(0o4777), "4700");
        restrict(&dir.path().join("missing")).unwrap();
    }

    #[test]
    fn created_directories_are_0700_and_existing_ones_untouched() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::set_permissions(dir.path(), Permissions::from_mode(0o755)).unwrap();
        create_dir_all(&dir.path().join("a/b")).unwrap();
        assert_eq!(mode(&dir.path().join("a")), 0o700);
        assert_eq!(mode(&dir.path().join("a/b")), 0o700);
        assert_eq!(mode(dir.path()), 0o755);
        let file = dir.path().join("a/f");
        create_new_file(&file).unwrap();
        assert_eq!(mode(&file), 0o600);
        assert_eq!(
            create_new_file(&file).unwrap_err().kind(),
            io::ErrorKind::AlreadyExists
        );
    }
}
