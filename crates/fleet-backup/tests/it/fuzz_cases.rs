//! The fuzz target's property over crafted inputs, so every test run exercises it.

use std::fs;

use serde_json::json;
use tar::EntryType;

use crate::common::{Scratch, backup, make_tree};
use crate::craft::{dir_entry, entry, file_entry, manifest, symlink_entry, tar_bytes};
use crate::fuzz_property::check_restore_stays_inside;

fn as_tar(tar: Vec<u8>) -> Vec<u8> {
    [vec![0], tar].concat()
}

fn as_archive(archive: Vec<u8>) -> Vec<u8> {
    [vec![1], archive].concat()
}

#[test]
fn crafted_inputs_never_escape_the_target() {
    let s = Scratch::new();
    make_tree(&s.path("src"), 100_000, 20);
    let good = fs::read(backup(&s.path("src"), &s.path("backups")).path).unwrap();
    let mut inputs = vec![
        Vec::new(),
        vec![0],
        vec![1, 2, 3],
        as_archive(good.clone()),
        as_archive(good[..good.len() / 2].to_vec()),
        as_tar(tar_bytes(&manifest(json!([])), &[])),
        as_tar(tar_bytes(
            &manifest(json!([])),
            &[entry("data/../../escape", EntryType::Regular, b"x", None)],
        )),
        as_tar(tar_bytes(
            &manifest(json!([
                symlink_entry("l", "../.."),
                file_entry("l/x", b"x")
            ])),
            &[
                entry("data/l", EntryType::Symlink, b"", Some("../..")),
                entry("data/l/x", EntryType::Regular, b"x", None),
            ],
        )),
        as_tar(tar_bytes(
            &manifest(json!([
                dir_entry("d"),
                symlink_entry("d/up", ".."),
                symlink_entry("d/e", "up/../..")
            ])),
            &[
                entry("data/d/", EntryType::Directory, b"", None),
                entry("data/d/up", EntryType::Symlink, b"", Some("..")),
                entry("data/d/e", EntryType::Symlink, b"", Some("up/../..")),
            ],
        )),
        as_tar(tar_bytes(
            &manifest(json!([
                dir_entry("d"),
                file_entry("d/f", b"ok"),
                symlink_entry("ln", "d/f")
            ])),
            &[
                entry("data/d/", EntryType::Directory, b"", None),
                entry("data/d/f", EntryType::Regular, b"ok", None),
                entry("data/ln", EntryType::Symlink, b"", Some("d/f")),
            ],
        )),
    ];
    // Every single-byte flip of a small valid archive.
    let small = Scratch::new();
    fs::create_dir_all(small.path("src/d")).unwrap();
    fs::write(small.path("src/d/f"), "tiny").unwrap();
    let tiny = fs::read(backup(&small.path("src"), &small.path("backups")).path).unwrap();
    for at in (0..tiny.len()).step_by(7) {
        let mut flipped = tiny.clone();
        flipped[at] ^= 0xff;
        inputs.push(as_archive(flipped));
    }
    for input in &inputs {
        check_restore_stays_inside(input);
    }
}
