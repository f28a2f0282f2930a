//! The tag-list cache: in memory with a time to live, optionally mirrored on disk, and
//! single-flight, so that 50 concurrent checks of one repository list its tags once.

use std::collections::HashMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::digest::Digest;
use crate::error::Error;

/// Tag lists by repository (`registry/repository`).
pub(crate) struct TagCache {
    ttl: Duration,
    dir: Option<PathBuf>,
    /// Milliseconds since the Unix epoch; a fake clock in tests.
    clock: Box<dyn Fn() -> u64 + Send + Sync>,
    slots: Mutex<HashMap<String, Arc<tokio::sync::Mutex<Option<Cached>>>>>,
}

struct Cached {
    /// Milliseconds since the Unix epoch.
    fetched_at: u64,
    tags: Arc<[String]>,
}

/// A cache file.
#[derive(serde::Serialize, serde::Deserialize)]
struct DiskEntry {
    /// The repository, to tell colliding file names apart.
    key: String,
    fetched_at: u64,
    tags: Vec<String>,
}

impl Cached {
    fn is_fresh(&self, ttl: Duration, now: u64) -> bool {
        u128::from(now.saturating_sub(self.fetched_at)) < ttl.as_millis()
    }
}

fn now_millis() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_millis() as u64)
}

impl TagCache {
    /// A cache keeping lists for `ttl` (zero: no caching), mirrored in `dir` if given.
    pub(crate) fn new(ttl: Duration, dir: Option<PathBuf>) -> TagCache {
        TagCache {
            ttl,
            dir,
            clock: Box::new(now_millis),
            slots: Mutex::new(HashMap::new()),
        }
    }

    /// The cached list for `key`, or what `fetch` returns (then cached). Callers asking
    /// for the same key meanwhile wait for this fetch instead of starting their own.
    pub(crate) async fn get_or_fetch<F, Fut>(
        &self,
        key: &str,
        fetch: F,
    ) -> Result<Arc<[String]>, Error>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Vec<String>, Error>>,
    {
        if self.ttl.is_zero() {
            return Ok(fetch().await?.into());
        }
        let slot = {
            let mut slots = self
                .slots
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            slots.entry(key.to_owned()).or_default().clone()
        };
        let mut cached = slot.lock().await;
        let now = (self.clock)();
        if let Some(entry) = cached
            .as_ref()
            .filter(|entry| entry.is_fresh(self.ttl, now))
        {
            return Ok(entry.tags.clone());
        }
        if let Some(entry) = self
            .read_disk(key)
            .filter(|entry| entry.is_fresh(self.ttl, now))
        {
            let tags = entry.tags.clone();
            *cached = Some(entry);
            return Ok(tags);
        }
        let tags: Arc<[String]> = fetch().await?.into();
        let entry = Cached {
            fetched_at: (self.clock)(),
            tags: tags.clone(),
        };
        self.write_disk(key, &entry);
        *cached = Some(entry);
        Ok(tags)
    }

    /// Forgets `key`, in memory and on disk.
    pub(crate) fn invalidate(&self, key: &str) {
        let slot = self
            .slots
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .remove(key);
        if let Some(slot) = slot
            && let Ok(mut cached) = slot.try_lock()
        {
            *cached = None;
        }
        if let Some(path) = self.path(key) {
            let _ = std::fs::remove_file(path);
        }
    }

    fn path(&self, key: &str) -> Option<PathBuf> {
        let digest = Digest::sha256(key.as_bytes());
        let name = &digest.hex()[..32];
        self.dir
            .as_ref()
            .map(|dir| dir.join(format!("{name}.json")))
    }

    /// A damaged or unreadable file is a miss, not an error: the registry has the truth.
    fn read_disk(&self, key: &str) -> Option<Cached> {
        let path = self.path(key)?;
        let bytes = std::fs::read(&path).ok()?;
        match serde_json::from_slice::<DiskEntry>(&bytes) {
            Ok(entry) if entry.key == key => Some(Cached {
                fetched_at: entry.fetched_at,
                tags: entry.tags.into(),
            }),
            Ok(_) => None,
            Err(error) => {
                tracing::warn!(path = %path.display(), %error, "ignoring a damaged tag cache file");
                None
            }
        }
    }

    fn write_disk(&self, key: &str, entry: &Cached) {
        let Some(path) = self.path(key) else { return };
        let entry = DiskEntry {
            key: key.to_owned(),
            fetched_at: entry.fetched_at,
            tags: entry.tags.to_vec(),
        };
        if let Err(error) = write_atomically(&path, &entry) {
            tracing::warn!(path = %path.display(), %error, "cannot write the tag cache");
        }
    }
}

fn write_atomically(path: &Path, entry: &DiskEntry) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let temporary = path.with_extension(format!("{}.tmp", std::process::id()));
    std::fs::write(
        &temporary,
        serde_json::to_vec(entry).map_err(std::io::Error::other)?,
    )?;
    std::fs::rename(&temporary, path)
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    async fn fetch_counting(count: &AtomicUsize) -> Result<Vec<String>, Error> {
        count.fetch_add(1, Ordering::SeqCst);
        tokio::task::yield_now().await;
        Ok(vec!["v1".to_owned(), "v2".to_owned()])
    }

    #[tokio::test]
    async fn fetches_once_for_many_concurrent_callers() {
        let cache = TagCache::new(Duration::from_secs(60), None);
        let count = AtomicUsize::new(0);
        let lists = futures::future::join_all(
            (0..50).map(|_| cache.get_or_fetch("r/a", || fetch_counting(&count))),
        )
        .await;
        assert!(lists.iter().all(|list| list.as_ref().unwrap().len() == 2));
        assert_eq!(count.load(Ordering::SeqCst), 1);
        cache
            .get_or_fetch("r/b", || fetch_counting(&count))
            .await
            .unwrap();
        assert_eq!(count.load(Ordering::SeqCst), 2);
        cache.invalidate("r/a");
        cache
            .get_or_fetch("r/a", || fetch_counting(&count))
            .await
            .unwrap();
        assert_eq!(count.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn entries_expire_after_the_ttl() {
        let now = Arc::new(std::sync::atomic::AtomicU64::new(1_000_000));
        let mut cache = TagCache::new(Duration::from_secs(60), None);
        let clock = now.clone();
        cache.clock = Box::new(move || clock.load(Ordering::SeqCst));
        let count = AtomicUsize::new(0);
        cache
            .get_or_fetch("r/a", || fetch_counting(&count))
            .await
            .unwrap();
        now.fetch_add(59_999, Ordering::SeqCst);
        cache
            .get_or_fetch("r/a", || fetch_counting(&count))
            .await
            .unwrap();
        assert_eq!(count.load(Ordering::SeqCst), 1);
        now.fetch_add(1, Ordering::SeqCst);
        cache
            .get_or_fetch("r/a", || fetch_counting(&count))
            .await
            .unwrap();
        assert_eq!(count.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn zero_ttl_never_caches() {
        let cache = TagCache::new(Duration::ZERO, None);
        let count = AtomicUsize::new(0);
        for _ in 0..3 {
            cache
                .get_or_fetch("r/a", || fetch_counting(&count))
                .await
                .unwrap();
        }
        assert_eq!(count.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn disk_mirror_survives_a_new_cache() {
        let dir = tempfile::tempdir().unwrap();
        let count = AtomicUsize::new(0);
        let first = TagCache::new(Duration::from_secs(60), Some(dir.path().to_owned()));
        first
            .get_or_fetch("r/a", || fetch_counting(&count))
            .await
            .unwrap();
        let second = TagCache::new(Duration::from_secs(60), Some(dir.path().to_owned()));
        let tags = second
            .get_or_fetch("r/a", || fetch_counting(&count))
            .await
            .unwrap();
        assert_eq!(&*tags, ["v1", "v2"]);
        assert_eq!(count.load(Ordering::SeqCst), 1);
        // A damaged file is a miss.
        for entry in std::fs::read_dir(dir.path()).unwrap() {
            std::fs::write(entry.unwrap().path(), "{").unwrap();
        }
        let third = TagCache::new(Duration::from_secs(60), Some(dir.path().to_owned()));
        third
            .get_or_fetch("r/a", || fetch_counting(&count))
            .await
            .unwrap();
        assert_eq!(count.load(Ordering::SeqCst), 2);
    }
}
