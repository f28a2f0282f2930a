//! The SQLite databases of a directory being archived: found by their header, pinned before
//! any other file is read, then copied on a helper thread while the other files are
//! archived (see [`crate::sqlite`] for what a snapshot guarantees).

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, TryRecvError, channel};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::manifest::{Entry, EntryKind, Sha256};
use crate::{Error, sqlite};

/// Finds the SQLite databases among `entries`, marks their entries as snapshots and drops
/// their companion files (`-wal`, `-shm`, `-journal`). Returns their paths in entry order.
///
/// Every file is opened to read its header, on as many threads as there are CPUs: with many
/// small files these opens are most of the time `create` spends before streaming.
pub(crate) fn find(source: &Path, entries: &mut Vec<Entry>) -> Result<Vec<String>, Error> {
    // A database file is at least one 512-byte page; an empty file is not worth a snapshot.
    let candidates: Vec<usize> = entries
        .iter()
        .enumerate()
        .filter(|(_, e)| matches!(e.kind, EntryKind::File { size, .. } if size >= 512))
        .map(|(i, _)| i)
        .collect();
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    // At least this many files per thread, so that a small tree is not worth a thread.
    let per_thread = candidates.len().div_ceil(threads).max(1024);
    let check = |part: &[usize]| -> Result<Vec<usize>, Error> {
        let mut found = Vec::new();
        for &i in part {
            if sqlite::is_sqlite(&source.join(&entries[i].path))? {
                found.push(i);
            }
        }
        Ok(found)
    };
    let mut parts = candidates.chunks(per_thread);
    let first = parts.next().unwrap_or_default();
    let found: Vec<Result<Vec<usize>, Error>> = std::thread::scope(|scope| {
        let others: Vec<_> = parts.map(|part| scope.spawn(move || check(part))).collect();
        let mut found = vec![check(first)];
        found.extend(
            others
                .into_iter()
                .map(|handle| handle.join().expect("a header check never panics")),
        );
        found
    });
    let mut databases = Vec::new();
    for part in found {
        for i in part? {
            let entry = &mut entries[i];
            if let EntryKind::File { size, .. } = entry.kind {
                entry.kind = EntryKind::File {
                    size,
                    sha256: Sha256::default(),
                    sqlite: true,
                };
            }
            databases.push(entry.path.clone());
        }
    }
    let companions: HashSet<String> = databases
        .iter()
        .flat_map(|db| sqlite::COMPANION_SUFFIXES.map(|suffix| format!("{db}{suffix}")))
        .collect();
    entries.retain(|e| !(companions.contains(&e.path) && matches!(e.kind, EntryKind::File { .. })));
    Ok(databases)
}

/// At most this many databases are held pinned at once, waiting for their copy: each holds
/// up to three open files (database, WAL, shared memory).
const MAX_PINNED: usize = 32;

/// Copies the pinned database into snapshot file number `n` in `staging`.
fn copy(pinned: sqlite::Pinned, staging: &Path, n: usize) -> Result<Snapshot, Error> {
    let file = staging.join(format!("{n}.sqlite"));
    pinned.copy_to(&file)?;
    let size = std::fs::metadata(&file).map_err(Error::io(&file))?.len();
    Ok(Snapshot { file, size })
}

/// A finished snapshot: a self-contained database file in the staging directory.
pub(crate) struct Snapshot {
    pub(crate) file: PathBuf,
    pub(crate) size: u64,
}

/// Snapshots being copied, in order, by a helper thread.
pub(crate) struct Snapshots {
    staging: PathBuf,
    done: Option<Receiver<Result<Snapshot, Error>>>,
    stop: Arc<AtomicBool>,
    handle: Option<JoinHandle<()>>,
    removals: Vec<JoinHandle<()>>,
}

impl Snapshots {
    /// Pins every database in `databases` (paths relative to `source`), now, then starts
    /// copying them one after another into `staging` on a helper thread.
    ///
    /// When this returns, every snapshot's instant has passed: what the caller reads next is
    /// at least as new as every snapshot. At most [`MAX_PINNED`] databases are left pinned
    /// for the helper thread; any before those are pinned and copied here, one at a time.
    pub(crate) fn start(
        source: &Path,
        databases: &[String],
        staging: &Path,
        busy_timeout: Duration,
    ) -> Result<Self, Error> {
        let stop = Arc::new(AtomicBool::new(false));
        if databases.is_empty() {
            return Ok(Snapshots {
                staging: staging.to_owned(),
                done: None,
                stop,
                handle: None,
                removals: Vec::new(),
            });
        }
        let (tx, rx) = channel();
        let (now, later) = databases.split_at(databases.len().saturating_sub(MAX_PINNED));
        for (n, db) in now.iter().enumerate() {
            let pinned = sqlite::pin(&source.join(db), busy_timeout)?;
            let snapshot = copy(pinned, staging, n)?;
            tx.send(Ok(snapshot)).expect("the receiver is right here");
        }
        let pinned = later
            .iter()
            .map(|db| sqlite::pin(&source.join(db), busy_timeout))
            .collect::<Result<Vec<_>, _>>()?;
        let stopped = Arc::clone(&stop);
        let into = staging.to_owned();
        let first = now.len();
        let handle = std::thread::spawn(move || {
            for (n, pinned) in (first..).zip(pinned) {
                if stopped.load(Ordering::Relaxed) {
                    return;
                }
                let result = copy(pinned, &into, n);
                let failed = result.is_err();
                if tx.send(result).is_err() || failed {
                    return;
                }
            }
        });
        Ok(Snapshots {
            staging: staging.to_owned(),
            done: Some(rx),
            stop,
            handle: Some(handle),
            removals: Vec::new(),
        })
    }

    /// The next snapshot if it is ready, in the order of `databases`.
    pub(crate) fn ready(&mut self) -> Result<Option<Snapshot>, Error> {
        let received = self.done.as_ref().map(Receiver::try_recv);
        match received {
            Some(Ok(result)) => result.map(Some),
            Some(Err(TryRecvError::Empty)) => Ok(None),
            _ => Err(self.stopped()),
        }
    }

    /// Removes a snapshot once archived, on a helper thread: freeing the page cache of a
    /// large file takes a while. [`Drop`] waits for it.
    pub(crate) fn archived(&mut self, snapshot: Snapshot) {
        // Reap the removals already done, so that many databases do not mean many threads.
        let mut i = 0;
        while i < self.removals.len() {
            if self.removals[i].is_finished() {
                let _ = self.removals.swap_remove(i).join();
            } else {
                i += 1;
            }
        }
        self.removals.push(std::thread::spawn(move || {
            // If this fails, removing the staging directory tries again.
            let _ = std::fs::remove_file(&snapshot.file);
        }));
    }

    /// Waits for the next snapshot, in the order of `databases`.
    pub(crate) fn next(&mut self) -> Result<Snapshot, Error> {
        let received = self.done.as_ref().map(Receiver::recv);
        match received {
            Some(Ok(result)) => result,
            _ => Err(self.stopped()),
        }
    }

    /// Only a panic ends the thread before every snapshot was sent (an error is sent).
    fn stopped(&self) -> Error {
        Error::Io {
            path: self.staging.clone(),
            source: std::io::Error::other("the SQLite snapshot thread stopped"),
        }
    }
}

impl Drop for Snapshots {
    /// Stops after the copy under way and waits for it and for the removals, so nothing
    /// touches the staging directory once this is gone.
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        self.done = None;
        for handle in self
            .handle
            .take()
            .into_iter()
            .chain(self.removals.drain(..))
        {
            let _ = handle.join();
        }
    }
}
