//! `fleet backup` when things go wrong, through the built `fleet` binary on the real
//! Docker Engine with the test app in a real registry (issue 10): the disk filling up
//! while archiving, an app committing to SQLite as fast as it can during the backup,
//! and the errors of unknown instances, unknown backups and bad usage.
//!
//! Each test has its own state directory, registry, port range (10000 + 20 * k, used by
//! no other test file), network and container names; everything it made, the tmpfs it
//! mounts included, is removed when it ends, also when it fails.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::Duration;

use fleet_tests::cli::CliBed;

/// A bed of its own: state directory, registry holding the test app as `app:v1`, port
/// range, network and container names.
async fn bed() -> CliBed {
    static NEXT: AtomicU16 = AtomicU16::new(0);
    let first_port = 10000 + NEXT.fetch_add(1, Ordering::SeqCst) * 20;
    CliBed::new(Path::new(env!("CARGO_BIN_EXE_fleet")), first_port)
        .await
        .unwrap()
}

/// A tmpfs of `size` mounted at a directory, unmounted when dropped (on panic too).
struct Tmpfs {
    at: PathBuf,
}

impl Tmpfs {
    /// Creates `at` (0700, as fleet makes it) and mounts a tmpfs of `size` there.
    fn mount(at: &Path, size: &str) -> Tmpfs {
        use std::os::unix::fs::DirBuilderExt as _;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(at)
            .unwrap();
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size},mode=0700")])
            .arg("tmpfs")
            .arg(at)
            .status()
            .unwrap();
        assert!(
            status.success(),
            "mount -t tmpfs at {} failed ({status}): the tests run as root",
            at.display()
        );
        Tmpfs { at: at.to_owned() }
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let unmounted = Command::new("umount").arg(&self.at).status();
        if !matches!(unmounted, Ok(status) if status.success()) {
            // Busy (a process still holds a file there): detach it now, it goes when freed.
            let _ = Command::new("umount").arg("-l").arg(&self.at).status();
        }
    }
}

/// `GET http://127.0.0.1:<port><path>` as JSON, once the app answers.
async fn get(port: u16, path: &str) -> serde_json::Value {
    let url = format!("http://127.0.0.1:{port}{path}");
    let body = fleet_tests::net::wait_http_ok(&url, Duration::from_secs(10))
        .await
        .unwrap();
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("{url}: not JSON ({e}): {body}"))
}

/// Writes `bytes` of incompressible data to `path`.
fn write_random(path: &Path, bytes: usize) {
    let mut state = 0x9E37_79B9_7F4A_7C15_u64;
    let data: Vec<u8> = (0..bytes / 8)
        .flat_map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state.to_le_bytes()
        })
        .collect();
    std::fs::write(path, data).unwrap();
}

/// The names in `dir`, sorted.
fn entries(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// The disk holding the backups fills up while the archive is written: the backup
/// fails saying so, leaves no partial archive and no record, and the app keeps serving.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_fails_the_backup_and_leaves_nothing_behind() {
    let bed = bed().await;
    let port = bed.create("alice", &[]);
    // 6 MiB that do not compress, for a 2 MiB disk.
    write_random(&bed.data_dir("alice").join("blob.bin"), 6 << 20);
    let disk = Tmpfs::mount(&bed.backups_dir("alice"), "2m");

    let (code, stdout, stderr) = bed.run(&["backup", "alice"]);
    assert_eq!((code, stdout.as_str()), (1, ""), "{stderr}");
    assert!(
        stderr.contains("error: backup of instance alice")
            && stderr.contains("No space left on device"),
        "{stderr}"
    );
    assert_eq!(
        entries(&disk.at),
        Vec::<String>::new(),
        "no partial archive, staging or snapshot file is left"
    );
    assert_eq!(
        bed.json(&["backups", "alice", "--json"]),
        serde_json::json!([])
    );
    assert_eq!(get(port, "/api/health").await["status"], "healthy");
    let listed = bed.json(&["ls", "--json"]);
    assert_eq!(listed[0]["state"], "running", "{listed:#}");

    // With the space back, the next backup works.
    std::fs::remove_file(bed.data_dir("alice").join("blob.bin")).unwrap();
    let backup = bed.json(&["backup", "alice", "--json"]);
    let path = PathBuf::from(backup["path"].as_str().unwrap());
    assert_eq!(path.parent(), Some(disk.at.as_path()));
    assert_eq!(
        bed.json(&["backups", "alice", "--json"])
            .as_array()
            .map(Vec::len),
        Some(1)
    );
    // Unmounted before the state directory goes; on a panic too, as `disk` is dropped
    // before `bed`, which was declared first.
    drop(disk);
}

/// The disk fills up while a SQLite database is snapshotted (the snapshot is written
/// beside the archive before it is streamed in): the same failure, nothing left behind.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_during_the_sqlite_snapshot_leaves_nothing_behind() {
    let bed = bed().await;
    let port = bed.create("alice", &[]);
    // A 4 MiB database of random blobs, for a 2 MiB disk.
    let db = rusqlite::Connection::open(bed.data_dir("alice").join("big.db")).unwrap();
    db.execute_batch(
        "PRAGMA journal_mode=WAL;
         CREATE TABLE blobs (id INTEGER PRIMARY KEY, body BLOB);
         WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 1024)
         INSERT INTO blobs (body) SELECT randomblob(4096) FROM n;",
    )
    .unwrap();
    drop(db);
    let disk = Tmpfs::mount(&bed.backups_dir("alice"), "2m");

    let (code, stdout, stderr) = bed.run(&["backup", "alice"]);
    assert_eq!((code, stdout.as_str()), (1, ""), "{stderr}");
    assert!(
        stderr.contains("error: backup of instance alice")
            && (stderr.contains("disk is full") || stderr.contains("No space left on device")),
        "{stderr}"
    );
    // Said once, not once per layer of the SQLite error.
    assert!(stderr.matches("disk is full").count() <= 1, "{stderr}");
    assert_eq!(entries(&disk.at), Vec::<String>::new());
    assert_eq!(
        bed.json(&["backups", "alice", "--json"]),
        serde_json::json!([])
    );
    assert_eq!(get(port, "/api/health").await["status"], "healthy");
    drop(disk);
}

/// The app commits a row per transaction, as fast as it can, while `fleet backup` runs:
/// the archived database is intact and holds every row committed before the backup
/// started (and no gap after them).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_while_the_app_commits_holds_every_row_committed_before_it() {
    let bed = bed().await;
    let port = bed.create("alice", &["-e", "TESTAPP_WRITE_EVERY_MS=0"]);
    let mut before = get(port, "/api/writes").await;
    for _ in 0..200 {
        if before["count"].as_i64().unwrap() >= 200 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        before = get(port, "/api/writes").await;
    }
    let committed = before["max_id"].as_i64().unwrap();
    assert!(committed >= 200, "the writer is too slow: {before}");

    let backup = bed.json(&["backup", "alice", "--json"]);
    let after = get(port, "/api/writes").await;
    assert!(
        after["max_id"].as_i64().unwrap() > committed,
        "the app kept writing during the backup: {before} then {after}"
    );

    let restored = tempfile::tempdir().unwrap();
    let target = restored.path().join("data");
    let archive = PathBuf::from(backup["path"].as_str().unwrap());
    fleet_backup::restore(&archive, &target, &mut |_| {}).unwrap();
    let db = rusqlite::Connection::open(target.join("testapp.db")).unwrap();
    let integrity: String = db
        .query_row("PRAGMA integrity_check", [], |row| row.get(0))
        .unwrap();
    assert_eq!(integrity, "ok");
    let (count, max_id, up_to_committed): (i64, i64, i64) = db
        .query_row(
            "SELECT COUNT(*), COALESCE(MAX(id), 0), COUNT(*) FILTER (WHERE id <= ?1) FROM writes",
            [committed],
            |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)),
        )
        .unwrap();
    assert_eq!(
        up_to_committed, committed,
        "every row committed before the backup started is in it"
    );
    assert!(max_id >= committed);
    assert_eq!(count, max_id, "rows 1..={max_id} without a gap");
    drop(db);

    // `fleet restore` puts that snapshot back under the running app, which opens it and
    // goes on writing after its last row.
    let id = backup["id"].to_string();
    let (code, _, stderr) = bed.run(&["restore", "alice", &id]);
    assert_eq!(code, 0, "{stderr}");
    let restored = get(port, "/api/writes").await;
    let (count, max_id) = (
        restored["count"].as_i64().unwrap(),
        restored["max_id"].as_i64().unwrap(),
    );
    assert!(
        max_id >= committed && count == max_id,
        "committed before the backup: {committed}; after the restore: {restored}"
    );
}

/// Unknown instances and backups are errors (exit 1) naming what is missing, for
/// `backup`, `backups`, `verify` and `restore`; bad usage is exit 2; none of them
/// records a backup.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backup_errors_name_what_is_missing_or_wrong() {
    let bed = bed().await;
    bed.create("alice", &[]);

    let fails = |args: &[&str], code: i32, message: &str| {
        let (got, stdout, stderr) = bed.run(args);
        assert_eq!(
            (got, stdout.as_str()),
            (code, ""),
            "fleet {args:?}: {stderr}"
        );
        assert!(stderr.contains(message), "fleet {args:?}: {stderr}");
    };
    fails(&["backup", "nosuch"], 1, "error: no instance named nosuch");
    // A typo among several names: nothing is archived, not even the good ones.
    fails(
        &["backup", "alice", "nosuch"],
        1,
        "error: no instance named nosuch",
    );
    fails(&["backups", "nosuch"], 1, "error: no instance named nosuch");
    fails(&["verify", "nosuch"], 1, "nosuch");
    fails(
        &["verify", "alice", "999"],
        1,
        "error: instance alice has no backup with id 999",
    );
    fails(
        &["verify", "alice"],
        1,
        "error: instance alice has no backup",
    );
    fails(
        &["restore", "nosuch", "latest"],
        1,
        "no instance named nosuch",
    );
    fails(
        &["restore", "alice", "999"],
        1,
        "instance alice has no backup with id 999",
    );
    fails(
        &["restore", "alice", "latest"],
        1,
        "instance alice has no backup",
    );

    // Usage errors: nothing to back up, both names and --all, a name fleet never
    // accepts, an id that is not a number, a restore from nothing.
    fails(&["backup"], 2, "error: ");
    fails(&["backup", "alice", "--all"], 2, "--all");
    fails(&["backup", "Not/A-Name"], 2, "Not/A-Name");
    fails(&["verify", "alice", "newest"], 2, "newest");
    fails(&["restore", "alice"], 2, "error: ");

    assert_eq!(
        bed.json(&["backups", "alice", "--json"]),
        serde_json::json!([])
    );
}
