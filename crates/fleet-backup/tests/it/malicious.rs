//! Archives crafted to write outside the target are refused, naming the entry, and touch nothing.

use std::fs;
use std::path::Path;

use fleet_backup::{Error, restore};
use serde_json::json;
use tar::EntryType;

use crate::common::{Scratch, untouched_state};
use crate::craft::{
    dir_entry, entry, file_entry, manifest, symlink_entry, tar_bytes, write_archive,
};

/// Restores a crafted archive over an existing target inside `outer/`, checks that nothing
/// changed anywhere in the scratch directory, and returns the problems reported.
fn check(manifest_entries: serde_json::Value, tar_entries: &[(tar::Header, Vec<u8>)]) -> String {
    let s = Scratch::new();
    let target = s.path("outer/inner/target");
    fs::create_dir_all(&target).unwrap();
    fs::write(target.join("precious"), "keep me").unwrap();
    let archive = s.path("archives/evil-20260101-000000.tar.zst");
    write_archive(
        &archive,
        &tar_bytes(&manifest(manifest_entries), tar_entries),
    );
    let before = untouched_state(s.dir.path(), &target);
    let err = restore(&archive, &target, &mut |_| {}).unwrap_err();
    assert_eq!(
        untouched_state(s.dir.path(), &target),
        before,
        "the restore changed something"
    );
    match err {
        Error::Verification { problems, .. } => problems.to_string(),
        other => panic!("expected a verification error, got {other}"),
    }
}

fn file(name: &str, data: &[u8]) -> (tar::Header, Vec<u8>) {
    entry(name, EntryType::Regular, data, None)
}

#[test]
fn path_traversal_in_tar_entries() {
    insta::assert_snapshot!(check(json!([]), &[file("data/../../evil", b"x")]), @"unsafe entry `data/../../evil`: path contains `..`");
    insta::assert_snapshot!(check(json!([]), &[file("../evil", b"x")]), @"unsafe entry `../evil`: path contains `..`");
    insta::assert_snapshot!(check(json!([]), &[file("data/a/../../../evil", b"x")]), @"unsafe entry `data/a/../../../evil`: path contains `..`");
}

#[test]
fn path_traversal_in_the_manifest() {
    insta::assert_snapshot!(
        check(json!([file_entry("../evil", b"x")]), &[file("data/../evil", b"x")]),
        @"unsafe entry `../evil`: path contains `..`"
    );
}

#[test]
fn absolute_paths() {
    insta::assert_snapshot!(check(json!([]), &[file("/tmp/fleet-backup-evil", b"x")]), @"unsafe entry `/tmp/fleet-backup-evil`: absolute path");
    insta::assert_snapshot!(
        check(json!([file_entry("/tmp/fleet-backup-evil", b"x")]), &[]),
        @"unsafe entry `/tmp/fleet-backup-evil`: absolute path"
    );
    assert!(!Path::new("/tmp/fleet-backup-evil").exists());
}

#[test]
fn symlinks_escaping_the_target() {
    insta::assert_snapshot!(
        check(json!([symlink_entry("esc", "../../..")]), &[entry("data/esc", EntryType::Symlink, b"", Some("../../.."))]),
        @"unsafe entry `esc`: symlink points outside the archived directory"
    );
    insta::assert_snapshot!(
        check(json!([symlink_entry("esc", "/etc")]), &[entry("data/esc", EntryType::Symlink, b"", Some("/etc"))]),
        @"unsafe entry `esc`: symlink target is absolute"
    );
    // Escaping through another symlink: `up` is the root, `..` from there is outside.
    insta::assert_snapshot!(
        check(
            json!([dir_entry("a"), symlink_entry("a/up", ".."), symlink_entry("a/esc", "up/../x")]),
            &[
                entry("data/a/", EntryType::Directory, b"", None),
                entry("data/a/up", EntryType::Symlink, b"", Some("..")),
                entry("data/a/esc", EntryType::Symlink, b"", Some("up/../x")),
            ]
        ),
        @"unsafe entry `a/esc`: symlink points outside the archived directory"
    );
}

/// The classic: a symlink to outside, then a file "inside" it.
#[test]
fn files_written_through_a_symlink() {
    insta::assert_snapshot!(
        check(
            json!([symlink_entry("l", "."), file_entry("l/pwned", b"x")]),
            &[entry("data/l", EntryType::Symlink, b"", Some(".")), file("data/l/pwned", b"x")]
        ),
        @"unsafe entry `l/pwned`: its parent is not a directory in the archive"
    );
    // Not in the manifest: refused without being written anywhere.
    insta::assert_snapshot!(
        check(json!([]), &[entry("data/l", EntryType::Symlink, b"", Some("/tmp")), file("data/l/pwned", b"x")]),
        @"entry `l` is not in the manifest; entry `l/pwned` is not in the manifest"
    );
}

#[test]
fn hard_links_devices_and_fifos() {
    insta::assert_snapshot!(
        check(json!([]), &[entry("data/passwd", EntryType::Link, b"", Some("/etc/passwd"))]),
        @"unsafe entry `data/passwd`: hard link to `/etc/passwd` outside the archived directory"
    );
    insta::assert_snapshot!(
        check(json!([]), &[entry("data/null", EntryType::Char, b"", None)]),
        @"unsafe entry `data/null`: device file"
    );
    insta::assert_snapshot!(
        check(json!([]), &[entry("data/sda", EntryType::Block, b"", None)]),
        @"unsafe entry `data/sda`: device file"
    );
    insta::assert_snapshot!(
        check(json!([]), &[entry("data/pipe", EntryType::Fifo, b"", None)]),
        @"unsafe entry `data/pipe`: FIFO"
    );
}

#[test]
fn a_valid_crafted_archive_restores() {
    // The control: the same machinery without an attack succeeds.
    let s = Scratch::new();
    let archive = s.path("archives/ok-20260101-000000.tar.zst");
    let entries = [
        entry("data/d/", EntryType::Directory, b"", None),
        file("data/d/f", b"hello"),
        entry("data/l", EntryType::Symlink, b"", Some("d/f")),
    ];
    let m = manifest(json!([
        dir_entry("d"),
        file_entry("d/f", b"hello"),
        symlink_entry("l", "d/f")
    ]));
    write_archive(&archive, &tar_bytes(&m, &entries));
    restore(&archive, &s.path("target"), &mut |_| {}).unwrap();
    assert_eq!(fs::read_to_string(s.path("target/l")).unwrap(), "hello");
}
