//! Pruning deletes exactly what the policy says, and never what is in use.

use std::fs;
use std::num::NonZeroUsize;
use std::path::PathBuf;

use fleet_backup::{BackupName, RetentionPolicy, list, prune};
use jiff::SignedDuration;

use crate::common::{Scratch, backup};

/// A real archive copied under `count` names a minute apart, newest now, for `name`.
fn archives(s: &Scratch, name: &str, count: i64) -> Vec<PathBuf> {
    fs::create_dir_all(s.path("src")).unwrap();
    fs::write(s.path("src/f"), "x").unwrap();
    let real = backup(&s.path("src"), &s.path("scratch-backups")).path;
    let now = jiff::Timestamp::now();
    (0..count)
        .map(|i| {
            let time = now - SignedDuration::from_mins(count - 1 - i);
            let file = format!("{name}-{}.tar.zst", time.strftime("%Y%m%d-%H%M%S"));
            let path = s.path("backups").join(file);
            fs::create_dir_all(s.path("backups")).unwrap();
            fs::copy(&real, &path).unwrap();
            path
        })
        .collect()
}

fn remaining(s: &Scratch) -> Vec<PathBuf> {
    list(&s.path("backups"))
        .unwrap()
        .into_iter()
        .map(|a| a.path)
        .collect()
}

#[test]
fn keeps_the_last_ten_by_default_and_leaves_other_names_alone() {
    let s = Scratch::new();
    let app = archives(&s, "app", 12);
    let other = archives(&s, "other", 3);
    let report = prune(
        &s.path("backups"),
        &BackupName::new("app").unwrap(),
        &RetentionPolicy::default(),
        &[],
    )
    .unwrap();
    assert_eq!(report.deleted, app[..2]);
    let mut expected: Vec<PathBuf> = app[2..].iter().chain(&other).cloned().collect();
    expected.sort();
    let mut left = remaining(&s);
    left.sort();
    assert_eq!(left, expected);
}

#[test]
fn max_age_deletes_old_archives_but_never_the_newest() {
    let s = Scratch::new();
    let app = archives(&s, "app", 5);
    let policy = RetentionPolicy::default().with_max_age(SignedDuration::from_secs(90));
    let report = prune(
        &s.path("backups"),
        &BackupName::new("app").unwrap(),
        &policy,
        &[],
    )
    .unwrap();
    assert_eq!(report.deleted, app[..3]);
    let policy = RetentionPolicy::keep_last(NonZeroUsize::new(1).unwrap())
        .with_max_age(SignedDuration::ZERO);
    prune(
        &s.path("backups"),
        &BackupName::new("app").unwrap(),
        &policy,
        &[],
    )
    .unwrap();
    assert_eq!(remaining(&s), app[4..]);
}

#[test]
fn archives_being_restored_or_protected_are_kept() {
    let s = Scratch::new();
    let app = archives(&s, "app", 4);
    // A restore in another process holds a shared lock on its archive for its whole run.
    let restoring = fs::File::open(&app[0]).unwrap();
    restoring.lock_shared().unwrap();
    let policy = RetentionPolicy::keep_last(NonZeroUsize::new(1).unwrap());
    let report = prune(
        &s.path("backups"),
        &BackupName::new("app").unwrap(),
        &policy,
        &[app[1].as_path()],
    )
    .unwrap();
    assert_eq!(report.deleted, [app[2].clone()]);
    assert_eq!(report.in_use, [app[0].clone(), app[1].clone()]);
    assert_eq!(
        remaining(&s),
        [app[0].clone(), app[1].clone(), app[3].clone()]
    );
}
