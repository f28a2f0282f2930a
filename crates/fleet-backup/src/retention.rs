//! Deciding which archives to keep, and deleting the rest.

use std::fs::{self, File};
use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};

use jiff::{SignedDuration, Timestamp};

use crate::{ArchiveName, BackupName, Error};

/// Which archives of one name to keep.
///
/// An archive is kept when it is among the `keep_last` newest and, if `max_age` is set, not
/// older than that. Whatever the policy, the newest archive is always kept.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RetentionPolicy {
    /// How many of the newest archives to keep; 10 by default.
    pub keep_last: NonZeroUsize,
    /// Archives older than this (by the time in their name) are deleted; none by default.
    pub max_age: Option<SignedDuration>,
}

impl Default for RetentionPolicy {
    fn default() -> Self {
        RetentionPolicy {
            keep_last: NonZeroUsize::new(10).expect("10 is not zero"),
            max_age: None,
        }
    }
}

impl RetentionPolicy {
    /// Keeps the `n` newest archives, with no age limit.
    pub fn keep_last(n: NonZeroUsize) -> Self {
        RetentionPolicy {
            keep_last: n,
            max_age: None,
        }
    }

    /// Also deletes archives older than `age`.
    pub fn with_max_age(mut self, age: SignedDuration) -> Self {
        self.max_age = Some(age);
        self
    }

    /// The archives among `archives` (any order, one name) that the policy deletes at `now`,
    /// oldest first. Never the newest.
    pub fn expired(&self, archives: &[ArchiveName], now: Timestamp) -> Vec<ArchiveName> {
        let mut sorted: Vec<&ArchiveName> = archives.iter().collect();
        sorted.sort_by(|a, b| b.cmp(a));
        let mut expired: Vec<ArchiveName> = sorted
            .iter()
            .enumerate()
            .skip(1)
            .filter(|(i, a)| {
                *i >= self.keep_last.get()
                    || self
                        .max_age
                        .is_some_and(|age| now.duration_since(a.time()) > age)
            })
            .map(|(_, a)| (*a).clone())
            .collect();
        expired.reverse();
        expired
    }
}

/// What [`prune`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct PruneReport {
    /// Archives deleted.
    pub deleted: Vec<PathBuf>,
    /// Archives the policy would delete but that were kept: protected by the caller or in use
    /// by a restore (which holds a lock on its archive).
    pub in_use: Vec<PathBuf>,
}

/// Deletes the archives of `name` in `dir` that `policy` does not keep, except those in
/// `protect` and those a restore is reading right now. Archives of other names are never
/// touched.
pub fn prune(
    dir: &Path,
    name: &BackupName,
    policy: &RetentionPolicy,
    protect: &[&Path],
) -> Result<PruneReport, Error> {
    let archives: Vec<(PathBuf, ArchiveName)> = crate::list::archive_files(dir)?
        .into_iter()
        .filter(|(_, n)| n.name() == name)
        .collect();
    let names: Vec<ArchiveName> = archives.iter().map(|(_, n)| n.clone()).collect();
    let expired = policy.expired(&names, Timestamp::now());
    let protect: Vec<PathBuf> = protect
        .iter()
        .filter_map(|p| fs::canonicalize(p).ok())
        .collect();
    let mut report = PruneReport::default();
    for (path, archive_name) in &archives {
        if !expired.contains(archive_name) {
            continue;
        }
        let canonical = fs::canonicalize(path).map_err(Error::io(path))?;
        if protect.contains(&canonical) {
            report.in_use.push(path.clone());
            continue;
        }
        let file = File::open(path).map_err(Error::io(path))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                report.in_use.push(path.clone());
                continue;
            }
            Err(std::fs::TryLockError::Error(err)) => {
                return Err(Error::Io {
                    path: path.clone(),
                    source: err,
                });
            }
        }
        fs::remove_file(path).map_err(Error::io(path))?;
        report.deleted.push(path.clone());
    }
    if !report.deleted.is_empty() {
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(Error::io(dir))?;
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn names(seconds: &[i64]) -> Vec<ArchiveName> {
        let name = BackupName::new("app").unwrap();
        seconds
            .iter()
            .map(|s| ArchiveName::new(name.clone(), Timestamp::from_second(*s).unwrap(), 0))
            .collect()
    }

    /// The seconds of the archives `keep_last` / `max_age` (seconds) expire at `now`.
    fn check(seconds: &[i64], keep_last: usize, max_age: Option<i64>, now: i64) -> String {
        let mut policy = RetentionPolicy::keep_last(NonZeroUsize::new(keep_last).unwrap());
        policy.max_age = max_age.map(SignedDuration::from_secs);
        let expired = policy.expired(&names(seconds), Timestamp::from_second(now).unwrap());
        format!(
            "{:?}",
            expired
                .iter()
                .map(|n| n.time().as_second())
                .collect::<Vec<_>>()
        )
    }

    #[test]
    fn policies() {
        insta::assert_snapshot!(check(&[], 10, None, 0), @"[]");
        insta::assert_snapshot!(check(&[1, 2, 3], 10, None, 10), @"[]");
        insta::assert_snapshot!(check(&[5, 1, 4, 2, 3], 2, None, 10), @"[1, 2, 3]");
        insta::assert_snapshot!(check(&[1, 2, 3, 4], 10, Some(5), 8), @"[1, 2]");
        insta::assert_snapshot!(check(&[1, 2, 3, 4], 3, Some(5), 8), @"[1, 2]");
        // Everything is too old, but the newest is always kept.
        insta::assert_snapshot!(check(&[1, 2, 3], 10, Some(5), 100), @"[1, 2]");
        insta::assert_snapshot!(check(&[1, 2, 3], 1, None, 3), @"[1, 2]");
    }

    proptest! {
        #[test]
        fn never_the_newest_and_exactly_the_policy(
            seconds in proptest::collection::btree_set(0i64..1_000_000, 0..40),
            keep_last in 1usize..15,
            max_age in proptest::option::of(0i64..1_000_000),
            now in 0i64..2_000_000,
        ) {
            let seconds: Vec<i64> = seconds.into_iter().collect();
            let mut policy = RetentionPolicy::keep_last(NonZeroUsize::new(keep_last).unwrap());
            policy.max_age = max_age.map(SignedDuration::from_secs);
            let expired = policy.expired(&names(&seconds), Timestamp::from_second(now).unwrap());
            let expired: Vec<i64> = expired.iter().map(|n| n.time().as_second()).collect();
            if let Some(newest) = seconds.iter().max() {
                prop_assert!(!expired.contains(newest));
            }
            let kept = seconds.len() - expired.len();
            prop_assert!(kept >= 1.min(seconds.len()));
            prop_assert!(kept <= keep_last.max(1));
            for (rank, s) in seconds.iter().rev().enumerate() {
                let too_old = max_age.is_some_and(|age| now - s > age);
                let should_go = rank > 0 && (rank >= keep_last || too_old);
                prop_assert_eq!(expired.contains(s), should_go, "archive {} of rank {}", s, rank);
            }
        }
    }
}
