//! Building test trees and comparing restored ones.

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use fleet_backup::{ArchiveInfo, BackupName, CreateOptions};
use sha2::Digest;

/// Everything a restore must reproduce about one path, as text for readable diffs.
pub(crate) fn describe_tree(root: &Path) -> BTreeMap<String, String> {
    let mut tree = BTreeMap::new();
    for item in walkdir::WalkDir::new(root).sort_by_file_name() {
        let item = item.unwrap();
        let rel = item
            .path()
            .strip_prefix(root)
            .unwrap()
            .to_str()
            .unwrap()
            .to_owned();
        let meta = item.path().symlink_metadata().unwrap();
        let what = if meta.is_dir() {
            "dir".to_owned()
        } else if meta.is_symlink() {
            format!(
                "symlink -> {}",
                fs::read_link(item.path()).unwrap().display()
            )
        } else {
            let content = fs::read(item.path()).unwrap();
            format!(
                "file {} bytes sha256 {}",
                content.len(),
                hex::encode(sha2::Sha256::digest(&content))
            )
        };
        let mode = if meta.is_symlink() {
            String::new()
        } else {
            format!(" mode {:o}", meta.mode() & 0o7777)
        };
        tree.insert(
            rel,
            format!(
                "{what}{mode} mtime {}.{:09} owner {}:{}",
                meta.mtime(),
                meta.mtime_nsec(),
                meta.uid(),
                meta.gid()
            ),
        );
    }
    tree
}

/// The state a failed restore must leave alone: everything in `target` exactly, and which
/// paths exist anywhere under `scratch` (the staging directory beside the target changes its
/// parent's mtime, nothing else).
pub(crate) fn untouched_state(
    scratch: &Path,
    target: &Path,
) -> (BTreeMap<String, String>, Vec<String>) {
    let paths = describe_tree(scratch).into_keys().collect();
    (describe_tree(target), paths)
}

/// Asserts two trees are identical, printing the first differences.
pub(crate) fn assert_same_tree(expected: &Path, actual: &Path) {
    let expected = describe_tree(expected);
    let actual = describe_tree(actual);
    if expected != actual {
        let mut diff = Vec::new();
        for (path, e) in &expected {
            match actual.get(path) {
                Some(a) if a == e => {}
                Some(a) => diff.push(format!("{path}: expected {e}, got {a}")),
                None => diff.push(format!("{path}: missing")),
            }
        }
        for path in actual.keys().filter(|p| !expected.contains_key(*p)) {
            diff.push(format!("{path}: unexpected"));
        }
        panic!(
            "trees differ:\n{}",
            diff.iter().take(30).cloned().collect::<Vec<_>>().join("\n")
        );
    }
}

pub(crate) fn set_mtime(path: &Path, secs: i64, nanos: u32) {
    let t = filetime::FileTime::from_unix_time(secs, nanos);
    filetime::set_symlink_file_times(path, t, t).unwrap();
}

pub(crate) fn chmod(path: &Path, mode: u32) {
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
}

/// Writes `size` bytes of cheap, varied content (not compressible to nothing, fast to make).
pub(crate) fn write_big_file(path: &Path, size: usize) {
    let mut block = vec![0u8; 1 << 20];
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    for chunk in block.chunks_mut(8) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        chunk.copy_from_slice(&x.to_le_bytes()[..chunk.len()]);
    }
    let mut file = fs::File::create(path).unwrap();
    let mut written = 0;
    let mut n = 0u64;
    while written < size {
        block[..8].copy_from_slice(&n.to_le_bytes());
        let len = block.len().min(size - written);
        file.write_all(&block[..len]).unwrap();
        written += len;
        n += 1;
    }
}

/// A tree with nested and empty directories, symlinks, odd permissions and owners, exact
/// mtimes, `big` bytes in one file and `small` small files.
pub(crate) fn make_tree(root: &Path, big: usize, small: usize) {
    fs::create_dir_all(root.join("a/b/c")).unwrap();
    fs::create_dir_all(root.join("empty/nested-empty")).unwrap();
    fs::create_dir_all(root.join("small")).unwrap();
    fs::create_dir_all(root.join("readonly")).unwrap();
    fs::create_dir_all(root.join("sticky")).unwrap();
    fs::write(root.join("a/b/c/deep.txt"), "deep\n").unwrap();
    fs::write(root.join("a/top.txt"), "top\n".repeat(1000)).unwrap();
    fs::write(root.join("empty-file"), "").unwrap();
    fs::write(root.join("readonly/locked.txt"), "locked").unwrap();
    fs::write(root.join("script.sh"), "#!/bin/sh\necho hi\n").unwrap();
    fs::write(root.join("secret"), "s3cret").unwrap();
    fs::write(root.join("setuid-bin"), "binary").unwrap();
    fs::write(root.join("name with spaces & ünïcode"), "x").unwrap();
    let long = "l".repeat(120);
    fs::create_dir_all(root.join(&long)).unwrap();
    fs::write(root.join(&long).join("f".repeat(150)), "long names").unwrap();
    std::os::unix::fs::symlink("a/b/c/deep.txt", root.join("link-to-deep")).unwrap();
    std::os::unix::fs::symlink("../top.txt", root.join("a/b/up-link")).unwrap();
    std::os::unix::fs::symlink("a/b", root.join("dir-link")).unwrap();
    std::os::unix::fs::symlink("does-not-exist", root.join("dangling")).unwrap();
    std::os::unix::fs::symlink(
        format!("{long}/{}", "f".repeat(150)),
        root.join("long-link"),
    )
    .unwrap();
    for i in 0..small {
        let dir = root.join("small").join(format!("d{:02}", i % 25));
        fs::create_dir_all(&dir).unwrap();
        fs::write(
            dir.join(format!("f{i:05}.txt")),
            format!("small file {i}\n").repeat(i % 7),
        )
        .unwrap();
    }
    if big > 0 {
        write_big_file(&root.join("big.bin"), big);
    }
    chmod(&root.join("script.sh"), 0o755);
    chmod(&root.join("secret"), 0o600);
    chmod(&root.join("setuid-bin"), 0o4755);
    chmod(&root.join("sticky"), 0o1777);
    chmod(&root.join("readonly/locked.txt"), 0o444);
    chmod(&root.join("readonly"), 0o555);
    if nix::unistd::geteuid().is_root() {
        std::os::unix::fs::chown(root.join("secret"), Some(1234), Some(5678)).unwrap();
        std::os::unix::fs::lchown(root.join("link-to-deep"), Some(1000), Some(1000)).unwrap();
        std::os::unix::fs::chown(root.join("a"), Some(1000), Some(1000)).unwrap();
        // chown clears setuid: set it again.
        chmod(&root.join("setuid-bin"), 0o4755);
    }
    set_mtime(&root.join("a/b/c/deep.txt"), 1_000_000_000, 123_456_789);
    set_mtime(&root.join("link-to-deep"), 1_100_000_000, 1);
    // Directory mtimes last: creating entries changes them.
    set_mtime(&root.join("empty"), 1_200_000_000, 999_999_999);
    set_mtime(&root.join("a/b"), 1_300_000_000, 0);
    set_mtime(root, 1_400_000_000, 42);
}

pub(crate) fn options(name: &str) -> CreateOptions {
    CreateOptions::new(BackupName::new(name).unwrap())
}

pub(crate) fn backup(source: &Path, dest: &Path) -> ArchiveInfo {
    fleet_backup::create(source, dest, &options("test"), &mut |_| {}).unwrap()
}

/// A scratch directory with `src/`, `backups/` and room for restore targets.
pub(crate) struct Scratch {
    pub(crate) dir: tempfile::TempDir,
}

impl Scratch {
    pub(crate) fn new() -> Self {
        Scratch {
            dir: tempfile::tempdir().unwrap(),
        }
    }
    pub(crate) fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }
}
