//! Corrupt archives are rejected, precisely, before the target is touched.

use std::fs;
use std::path::{Path, PathBuf};

use fleet_backup::{Error, restore, verify};
use tar::EntryType;

use crate::common::{Scratch, backup, untouched_state};
use crate::craft::{entry, tar_bytes, write_archive};

/// A small real archive of `src/` in `s`.
fn small_archive(s: &Scratch) -> PathBuf {
    fs::create_dir_all(s.path("src/dir")).unwrap();
    fs::write(s.path("src/a.txt"), "alpha\n".repeat(2000)).unwrap();
    fs::write(
        s.path("src/dir/b.bin"),
        (0..200_000u32)
            .map(|i| (i * 7919 % 251) as u8)
            .collect::<Vec<_>>(),
    )
    .unwrap();
    fs::write(s.path("src/dir/c.txt"), "gamma").unwrap();
    backup(&s.path("src"), &s.path("backups")).path
}

/// Verifies and restores `archive` over a live target; both must fail and the target must
/// be untouched. Returns the problems.
fn rejected(s: &Scratch, archive: &Path) -> String {
    let target = s.path("live");
    fs::create_dir_all(&target).unwrap();
    fs::write(target.join("current"), "live data").unwrap();
    let before = untouched_state(s.dir.path(), &target);
    let verify_err = verify(archive, &mut |_| {}).unwrap_err();
    let restore_err = restore(archive, &target, &mut |_| {}).unwrap_err();
    assert_eq!(
        untouched_state(s.dir.path(), &target),
        before,
        "a rejected restore changed something"
    );
    assert_eq!(verify_err.to_string(), restore_err.to_string());
    match restore_err {
        Error::Verification { problems, .. } => problems.to_string(),
        other => panic!("expected a verification error, got {other}"),
    }
}

/// The archive's decompressed tar stream.
fn decompressed(archive: &Path) -> Vec<u8> {
    zstd::decode_all(fs::File::open(archive).unwrap()).unwrap()
}

/// Rewrites the manifest of a decompressed archive with `edit` and recompresses it.
fn with_manifest(archive: &Path, edit: impl FnOnce(&mut serde_json::Value)) -> Vec<u8> {
    let tar = decompressed(archive);
    let mut entries = Vec::new();
    let mut manifest = None;
    for item in tar::Archive::new(tar.as_slice()).entries().unwrap() {
        let mut item = item.unwrap();
        let mut data = Vec::new();
        std::io::Read::read_to_end(&mut item, &mut data).unwrap();
        let path = String::from_utf8(item.path_bytes().into_owned()).unwrap();
        if path == "manifest.json" {
            manifest = Some(serde_json::from_slice::<serde_json::Value>(&data).unwrap());
        } else if path != "data/" {
            let link = item
                .link_name_bytes()
                .map(|l| String::from_utf8(l.into_owned()).unwrap());
            entries.push(entry(
                &path,
                item.header().entry_type(),
                &data,
                link.as_deref(),
            ));
        }
    }
    let mut manifest = manifest.unwrap();
    edit(&mut manifest);
    tar_bytes(&serde_json::to_vec(&manifest).unwrap(), &entries)
}

fn file_index(manifest: &serde_json::Value, path: &str) -> usize {
    manifest["entries"]
        .as_array()
        .unwrap()
        .iter()
        .position(|e| e["path"] == path)
        .unwrap()
}

#[test]
fn a_flipped_byte_in_the_data_is_detected() {
    let s = Scratch::new();
    let archive = small_archive(&s);
    let mut bytes = fs::read(&archive).unwrap();
    let at = bytes.len() - 200;
    bytes[at] ^= 0x40;
    fs::write(&archive, bytes).unwrap();
    let problems = rejected(&s, &archive);
    assert!(
        problems.contains("unreadable") || problems.contains("SHA-256"),
        "{problems}"
    );
}

#[test]
fn a_flipped_byte_in_the_manifest_frame_is_detected() {
    let s = Scratch::new();
    let archive = small_archive(&s);
    let mut bytes = fs::read(&archive).unwrap();
    bytes[20] ^= 0x01;
    fs::write(&archive, bytes).unwrap();
    rejected(&s, &archive);
}

#[test]
fn every_single_flipped_byte_is_detected() {
    let s = Scratch::new();
    let archive = small_archive(&s);
    let good = fs::read(&archive).unwrap();
    // The skippable frame's padding is not data: flipping it changes nothing read.
    let skippable = good
        .windows(4)
        .position(|w| w == 0x184D_2A50u32.to_le_bytes())
        .unwrap();
    let padding = skippable + 8
        ..skippable
            + 8
            + u32::from_le_bytes(good[skippable + 4..skippable + 8].try_into().unwrap()) as usize;
    for at in (0..good.len())
        .step_by(97)
        .filter(|at| !padding.contains(at))
    {
        let mut bytes = good.clone();
        bytes[at] ^= 0x10;
        fs::write(&archive, &bytes).unwrap();
        assert!(
            verify(&archive, &mut |_| {}).is_err(),
            "flipping byte {at} of {} went unnoticed",
            good.len()
        );
    }
}

#[test]
fn truncated_archives_are_detected() {
    let s = Scratch::new();
    let archive = small_archive(&s);
    let good = fs::read(&archive).unwrap();
    for keep in [good.len() - 1, good.len() - 100, good.len() / 2, 30, 0] {
        fs::write(&archive, &good[..keep]).unwrap();
        let problems = rejected(&s, &archive);
        assert!(
            problems.contains("unreadable") || problems.contains("missing"),
            "{keep}: {problems}"
        );
    }
}

#[test]
fn a_wrong_checksum_in_the_manifest_is_named() {
    let s = Scratch::new();
    let archive = small_archive(&s);
    let tar = with_manifest(&archive, |m| {
        let i = file_index(m, "dir/c.txt");
        m["entries"][i]["sha256"] = "00".repeat(32).into();
    });
    write_archive(&archive, &tar);
    insta::assert_snapshot!(rejected(&s, &archive), @"entry `dir/c.txt` has SHA-256 be9d587defa1f0c09ef49eb17e206983a5f8f8289e4281860bd0ee5a19592c67, the manifest says 0000000000000000000000000000000000000000000000000000000000000000");
}

#[test]
fn every_manifest_mismatch_is_reported() {
    let s = Scratch::new();
    let archive = small_archive(&s);
    let tar = with_manifest(&archive, |m| {
        let i = file_index(m, "a.txt");
        m["entries"][i]["size"] = 5.into();
        let entries = m["entries"].as_array_mut().unwrap();
        entries.retain(|e| e["path"] != "dir/c.txt");
        entries.push(crate::craft::file_entry("ghost", b"boo"));
    });
    write_archive(&archive, &tar);
    insta::assert_snapshot!(rejected(&s, &archive), @"entry `a.txt` has 12000 bytes, the manifest says 5; entry `dir/c.txt` is not in the manifest; entry `ghost` is listed but missing");
}

#[test]
fn a_manifest_of_an_unknown_version_or_shape_is_refused() {
    let s = Scratch::new();
    let archive = small_archive(&s);
    write_archive(
        &archive,
        &with_manifest(&archive, |m| m["version"] = 2.into()),
    );
    insta::assert_snapshot!(rejected(&s, &archive), @"unsupported manifest version 2");
    write_archive(&archive, &tar_bytes(b"{\"version\": 1}", &[]));
    insta::assert_snapshot!(rejected(&s, &archive), @"invalid manifest: missing field `created` at line 1 column 14");
    write_archive(&archive, &tar_bytes(b"not json", &[]));
    insta::assert_snapshot!(rejected(&s, &archive), @"invalid manifest: expected ident at line 1 column 2");
}

#[test]
fn an_archive_without_a_manifest_first_is_refused() {
    let s = Scratch::new();
    let archive = s.path("backups/x-20260101-000000.tar.zst");
    let mut builder = tar::Builder::new(Vec::new());
    let (header, data) = entry("data/a", EntryType::Regular, b"a", None);
    builder.append(&header, data.as_slice()).unwrap();
    write_archive(&archive, &builder.into_inner().unwrap());
    insta::assert_snapshot!(rejected(&s, &archive), @"first entry is `data/a`, not the manifest");
    fs::write(&archive, b"").unwrap();
    insta::assert_snapshot!(rejected(&s, &archive), @"unreadable: incomplete frame");
}
