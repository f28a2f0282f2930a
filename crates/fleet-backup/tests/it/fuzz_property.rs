//! The property the `restore` fuzz target checks (`fuzz/fuzz_targets/restore.rs` includes this
//! file), also run as a regular test over crafted inputs: whatever the archive, a restore
//! writes nothing outside its target, and a failed one leaves the target as it was.
//!
//! Only `std`, `fleet_backup`, `tempfile` and `zstd` may be used here: the fuzz crate has no more.

use std::collections::BTreeSet;
use std::fs;
use std::path::Path;

/// Restores `data` over an existing target, then checks the property; panics if it fails.
///
/// With an even first byte, the rest is a tar stream that gets compressed (so the fuzzer
/// spends its time on tar and manifest handling); with an odd one, it is the archive as is.
pub(crate) fn check_restore_stays_inside(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let sandbox = tempfile::tempdir().unwrap();
    let inner = sandbox.path().join("outer/inner");
    let target = inner.join("target");
    fs::create_dir_all(&target).unwrap();
    fs::write(target.join("sentinel"), "old").unwrap();
    let archive = sandbox.path().join("archive.tar.zst");
    let bytes = if mode % 2 == 0 {
        zstd::encode_all(rest, 1).unwrap()
    } else {
        rest.to_vec()
    };
    fs::write(&archive, bytes).unwrap();

    let result = fleet_backup::restore(&archive, &target, &mut |_| {});

    assert_eq!(
        names(sandbox.path()),
        BTreeSet::from(["archive.tar.zst".to_owned(), "outer".to_owned()])
    );
    assert_eq!(
        names(&sandbox.path().join("outer")),
        BTreeSet::from(["inner".to_owned()])
    );
    match result {
        Err(_) => {
            assert_eq!(
                names(&inner),
                BTreeSet::from(["target".to_owned()]),
                "a failed restore left something beside the target"
            );
            assert_eq!(names(&target), BTreeSet::from(["sentinel".to_owned()]));
            assert_eq!(fs::read_to_string(target.join("sentinel")).unwrap(), "old");
        }
        Ok(outcome) => {
            for name in names(&inner) {
                assert!(
                    name == "target" || name.starts_with("target.pre-restore-"),
                    "unexpected {name} beside the target"
                );
            }
            let root = fs::canonicalize(&target).unwrap();
            assert_links_inside(&root, &root);
            if let Some(previous) = outcome.previous {
                previous.remove().unwrap();
            }
        }
    }
}

fn names(dir: &Path) -> BTreeSet<String> {
    fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect()
}

/// Every symlink under `dir` that resolves at all resolves inside `root`.
fn assert_links_inside(root: &Path, dir: &Path) {
    for item in fs::read_dir(dir).unwrap() {
        let path = item.unwrap().path();
        let meta = fs::symlink_metadata(&path).unwrap();
        if meta.is_symlink() {
            if let Ok(resolved) = fs::canonicalize(&path) {
                assert!(
                    resolved.starts_with(root),
                    "{} resolves to {}",
                    path.display(),
                    resolved.display()
                );
            }
        } else if meta.is_dir() {
            assert_links_inside(root, &path);
        }
    }
}
