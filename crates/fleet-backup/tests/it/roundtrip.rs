//! create → verify → restore reproduces the tree exactly.

use std::fs;
use std::process::Command;

use fleet_backup::{Error, Progress, create, list, restore, verify};

use crate::common::{Scratch, assert_same_tree, backup, make_tree, options};

#[test]
fn round_trip_reproduces_content_modes_mtimes_and_owners() {
    let s = Scratch::new();
    make_tree(&s.path("src"), 200 << 20, 3000);
    let mut reports: Vec<Progress> = Vec::new();
    let info = create(
        &s.path("src"),
        &s.path("backups"),
        &options("shop"),
        &mut |p| reports.push(p),
    )
    .unwrap();
    assert!(info.changed.is_empty(), "{:?}", info.changed);
    assert_eq!(info.summary.files as usize, 3000 + 10);
    assert_eq!(info.summary.symlinks, 5);
    assert!(info.summary.bytes > 200 << 20);
    let last = reports.last().unwrap();
    assert_eq!(last.done, last.total);
    assert!(reports.windows(2).all(|w| w[0].done <= w[1].done));
    assert!(
        info.archive_bytes < info.summary.bytes,
        "random-ish content still compresses a bit"
    );

    let verified = verify(&info.path, &mut |_| {}).unwrap();
    assert_eq!(
        verified.manifest.entries.len(),
        info.summary.files as usize + 5 + info.summary.dirs as usize
    );

    let mut restore_reports: Vec<Progress> = Vec::new();
    let outcome = restore(&info.path, &s.path("restored"), &mut |p| {
        restore_reports.push(p)
    })
    .unwrap();
    assert!(outcome.previous.is_none());
    assert_eq!(restore_reports.last().unwrap().done, info.archive_bytes);
    assert_same_tree(&s.path("src"), &s.path("restored"));
}

#[test]
fn restore_over_existing_data_keeps_the_previous_data_until_removed() {
    let s = Scratch::new();
    make_tree(&s.path("src"), 0, 10);
    let info = backup(&s.path("src"), &s.path("backups"));
    fs::create_dir(s.path("live")).unwrap();
    fs::write(s.path("live/newer.txt"), "written after the backup").unwrap();

    let outcome = restore(&info.path, &s.path("live"), &mut |_| {}).unwrap();
    assert_same_tree(&s.path("src"), &s.path("live"));
    let previous = outcome.previous.expect("the old data is kept");
    assert!(
        previous
            .path()
            .file_name()
            .unwrap()
            .to_str()
            .unwrap()
            .starts_with("live.pre-restore-")
    );
    assert_eq!(
        fs::read_to_string(previous.path().join("newer.txt")).unwrap(),
        "written after the backup"
    );
    let kept = previous.path().to_owned();
    previous.remove().unwrap();
    assert!(!kept.exists());
    // Nothing else is left beside the target.
    let mut names: Vec<_> = fs::read_dir(s.dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    names.sort();
    assert_eq!(names, ["backups", "live", "src"]);
}

#[test]
fn put_back_undoes_a_restore_and_deletes_the_restored_data() {
    let s = Scratch::new();
    make_tree(&s.path("src"), 0, 10);
    let info = backup(&s.path("src"), &s.path("backups"));
    fs::create_dir(s.path("live")).unwrap();
    fs::write(s.path("live/newer.txt"), "written after the backup").unwrap();

    let outcome = restore(&info.path, &s.path("live"), &mut |_| {}).unwrap();
    assert!(!s.path("live/newer.txt").exists());
    outcome
        .previous
        .expect("the old data is kept")
        .put_back()
        .unwrap();

    assert_eq!(
        fs::read_to_string(s.path("live/newer.txt")).unwrap(),
        "written after the backup"
    );
    assert_eq!(fs::read_dir(s.path("live")).unwrap().count(), 1);
    // Neither the restored data nor the aside directory is left beside the target.
    let mut names: Vec<_> = fs::read_dir(s.dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    names.sort();
    assert_eq!(names, ["backups", "live", "src"]);
}

/// The skippable frame that reserves room for the manifest must not stop standard tools.
#[test]
fn standard_tar_and_zstd_extract_an_archive() {
    let s = Scratch::new();
    make_tree(&s.path("src"), 3 << 20, 50);
    let info = backup(&s.path("src"), &s.path("backups"));
    fs::create_dir(s.path("out")).unwrap();
    let status = Command::new("tar")
        .args(["-I", "zstd", "-xpf"])
        .arg(&info.path)
        .arg("-C")
        .arg(s.path("out"))
        .status()
        .expect("`tar` and `zstd` must be installed (Debian: tar zstd)");
    assert!(status.success());
    let manifest: serde_json::Value =
        serde_json::from_slice(&fs::read(s.path("out/manifest.json")).unwrap()).unwrap();
    assert_eq!(manifest["name"], "test");
    for (rel, _) in crate::common::describe_tree(&s.path("src")) {
        let (a, b) = (s.path("src").join(&rel), s.path("out/data").join(&rel));
        if a.is_file() && !a.is_symlink() {
            assert_eq!(fs::read(&a).unwrap(), fs::read(&b).unwrap(), "{rel}");
        }
    }
}

#[test]
fn archives_of_one_second_get_distinct_names_that_list_in_order() {
    let s = Scratch::new();
    fs::create_dir(s.path("src")).unwrap();
    fs::write(s.path("src/f"), "x").unwrap();
    let infos: Vec<_> = (0..3)
        .map(|_| backup(&s.path("src"), &s.path("backups")))
        .collect();
    let listed = list(&s.path("backups")).unwrap();
    let listed_paths: Vec<_> = listed.iter().map(|a| a.path.clone()).collect();
    let created_paths: Vec<_> = infos.iter().map(|i| i.path.clone()).collect();
    assert_eq!(listed_paths, created_paths);
    for archive in &listed {
        let summary = archive.summary.as_ref().unwrap();
        assert_eq!(
            (summary.files, summary.dirs, summary.name.as_str()),
            (1, 1, "test")
        );
    }
}

#[test]
fn metadata_is_stored_in_the_manifest() {
    let s = Scratch::new();
    fs::create_dir(s.path("src")).unwrap();
    let mut opts = options("shop");
    opts.metadata
        .insert("image".to_owned(), "sha256:abc".to_owned());
    let info = create(&s.path("src"), &s.path("backups"), &opts, &mut |_| {}).unwrap();
    let manifest = fleet_backup::read_manifest(&info.path).unwrap();
    assert_eq!(manifest.metadata["image"], "sha256:abc");
    assert_eq!(
        manifest.source,
        fs::canonicalize(s.path("src")).unwrap().to_str().unwrap()
    );
}

#[test]
fn a_destination_inside_the_source_is_refused() {
    let s = Scratch::new();
    fs::create_dir(s.path("src")).unwrap();
    let err = create(
        &s.path("src"),
        &s.path("src/backups"),
        &options("x"),
        &mut |_| {},
    )
    .unwrap_err();
    assert!(
        matches!(err, Error::DestinationInsideSource { .. }),
        "{err}"
    );
}

/// A backup restore would refuse is worse than none: create fails, naming the file.
#[test]
fn a_symlink_leaving_the_source_is_refused_at_create() {
    let s = Scratch::new();
    fs::create_dir_all(s.path("src/sub")).unwrap();
    std::os::unix::fs::symlink("../../outside", s.path("src/sub/escape")).unwrap();
    let err = create(
        &s.path("src"),
        &s.path("backups"),
        &options("x"),
        &mut |_| {},
    )
    .unwrap_err();
    insta::assert_snapshot!(err, @"cannot archive sub/escape: symlink points outside the archived directory");
    assert!(list(&s.path("backups")).unwrap().is_empty());
    let leftovers: Vec<_> = fs::read_dir(s.path("backups")).unwrap().collect();
    assert!(leftovers.is_empty(), "no temporary files are left behind");
}

#[test]
fn sockets_are_skipped_and_reported() {
    let s = Scratch::new();
    fs::create_dir(s.path("src")).unwrap();
    let _listener = std::os::unix::net::UnixListener::bind(s.path("src/app.sock")).unwrap();
    fs::write(s.path("src/f"), "x").unwrap();
    let info = backup(&s.path("src"), &s.path("backups"));
    assert_eq!(info.skipped.len(), 1);
    assert_eq!(
        (
            info.skipped[0].path.as_str(),
            info.skipped[0].reason.as_str()
        ),
        ("app.sock", "socket")
    );
    restore(&info.path, &s.path("restored"), &mut |_| {}).unwrap();
    assert!(!s.path("restored/app.sock").exists());
    assert_eq!(fs::read_to_string(s.path("restored/f")).unwrap(), "x");
}
