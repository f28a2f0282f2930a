//! SQLite databases are archived as consistent snapshots while a separate process writes.

use std::fs;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use fleet_backup::{EntryKind, create, restore, verify};
use rusqlite::Connection;

use crate::common::{Scratch, options};

/// When set, `writer_commits_every_transaction_whole` is the writer process of the test
/// below: it commits to the database at this path until the stop file appears.
const WRITER_DB: &str = "FLEET_BACKUP_TEST_WRITER_DB";
const ROWS_PER_TX: i64 = 10;

fn open_writer(db: &Path) -> Connection {
    let conn = Connection::open(db).unwrap();
    conn.busy_timeout(Duration::from_secs(10)).unwrap();
    let mode: String = conn
        .query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS t (id INTEGER PRIMARY KEY, tx INTEGER NOT NULL, payload BLOB NOT NULL);
         CREATE TABLE IF NOT EXISTS meta (k TEXT PRIMARY KEY, last_tx INTEGER NOT NULL);
         INSERT OR IGNORE INTO meta VALUES ('last', 0);",
    )
    .unwrap();
    conn
}

/// Commits transactions of `ROWS_PER_TX` rows (and a counter update) until `stop` says so.
fn write_transactions(conn: &mut Connection, mut stop: impl FnMut(i64) -> bool) -> i64 {
    let mut tx_no: i64 = conn
        .query_row("SELECT last_tx FROM meta", [], |r| r.get(0))
        .unwrap();
    while !stop(tx_no) {
        tx_no += 1;
        let tx = conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .unwrap();
        for i in 0..ROWS_PER_TX {
            let payload = vec![(tx_no + i) as u8; 300 + (i as usize * 37) % 700];
            tx.execute(
                "INSERT INTO t (tx, payload) VALUES (?1, ?2)",
                (tx_no, payload),
            )
            .unwrap();
        }
        tx.execute("UPDATE meta SET last_tx = ?1", [tx_no]).unwrap();
        tx.commit().unwrap();
    }
    tx_no
}

/// Checks a restored database: intact, no partial transaction, every transaction up to
/// `committed_before` present.
fn check_restored(db: &Path, committed_before: i64) -> i64 {
    let conn = Connection::open(db).unwrap();
    let integrity: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(integrity, "ok", "{}", db.display());
    let (rows, max_tx, last_tx): (i64, i64, i64) = conn
        .query_row(
            "SELECT count(*), coalesce(max(tx), 0), (SELECT last_tx FROM meta) FROM t",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .unwrap();
    assert_eq!(
        rows,
        max_tx * ROWS_PER_TX,
        "every transaction whole, none missing"
    );
    assert_eq!(last_tx, max_tx, "the counter committed with the rows");
    assert!(
        max_tx >= committed_before,
        "snapshot has {max_tx} transactions, {committed_before} were committed before the backup"
    );
    max_tx
}

/// In the normal run, checks the writer itself on a private database. As the writer
/// process of `wal_snapshots_...` (see `WRITER_DB`), writes until told to stop.
#[test]
fn writer_commits_every_transaction_whole() {
    if let Ok(db) = std::env::var(WRITER_DB) {
        let db = Path::new(&db);
        let stop_file = db.with_extension("stop");
        let deadline = Instant::now() + Duration::from_secs(120);
        let mut conn = open_writer(db);
        write_transactions(&mut conn, |_| {
            stop_file.exists() || Instant::now() > deadline
        });
        return;
    }
    let s = Scratch::new();
    let db = s.path("w.db");
    let mut conn = open_writer(&db);
    assert_eq!(write_transactions(&mut conn, |n| n >= 25), 25);
    drop(conn);
    assert_eq!(check_restored(&db, 25), 25);
}

#[test]
fn wal_snapshots_taken_during_writes_hold_every_committed_transaction() {
    let s = Scratch::new();
    let src = s.path("src");
    fs::create_dir(&src).unwrap();
    // Recognised by its header, not its name.
    let db = src.join("state");
    drop(open_writer(&db));
    fs::write(src.join("fake.db"), "not a database").unwrap();
    let journal_db = src.join("journal.sqlite");
    {
        let conn = Connection::open(&journal_db).unwrap();
        conn.execute_batch(
            "PRAGMA journal_mode=DELETE; CREATE TABLE x (v); INSERT INTO x VALUES (1), (2), (3);",
        )
        .unwrap();
    }

    let exe = std::env::current_exe().unwrap();
    let mut writer = Command::new(exe)
        .args([
            "--exact",
            "sqlite::writer_commits_every_transaction_whole",
            "--test-threads=1",
            "--nocapture",
        ])
        .env(WRITER_DB, &db)
        .stdout(Stdio::null())
        .spawn()
        .unwrap();

    let reader = Connection::open(&db).unwrap();
    let committed = || -> i64 {
        reader
            .query_row("SELECT last_tx FROM meta", [], |r| r.get(0))
            .unwrap()
    };
    let started = Instant::now();
    while committed() < 50 {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the writer process made no progress"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut backups = Vec::new();
    for _ in 0..5 {
        let committed_before = committed();
        let info = create(&src, &s.path("backups"), &options("app"), &mut |_| {}).unwrap();
        backups.push((info, committed_before));
        std::thread::sleep(Duration::from_millis(50));
    }
    fs::write(db.with_extension("stop"), "").unwrap();
    assert!(
        writer.wait().unwrap().success(),
        "the writer process failed"
    );

    let mut seen = Vec::new();
    for (i, (info, committed_before)) in backups.iter().enumerate() {
        let mut sqlite = info.sqlite.clone();
        sqlite.sort();
        assert_eq!(sqlite, ["journal.sqlite", "state"]);
        let manifest = verify(&info.path, &mut |_| {}).unwrap().manifest;
        let paths: Vec<&str> = manifest.entries.iter().map(|e| e.path.as_str()).collect();
        assert!(
            !paths
                .iter()
                .any(|p| p.ends_with("-wal") || p.ends_with("-shm")),
            "{paths:?}"
        );
        let state = manifest.entries.iter().find(|e| e.path == "state").unwrap();
        assert!(matches!(state.kind, EntryKind::File { sqlite: true, .. }));

        let target = s.path(&format!("restored-{i}"));
        restore(&info.path, &target, &mut |_| {}).unwrap();
        seen.push(check_restored(&target.join("state"), *committed_before));
        let conn = Connection::open(target.join("journal.sqlite")).unwrap();
        let sum: i64 = conn
            .query_row("SELECT sum(v) FROM x", [], |r| r.get(0))
            .unwrap();
        assert_eq!(sum, 6);
        assert_eq!(
            fs::read_to_string(target.join("fake.db")).unwrap(),
            "not a database"
        );
    }
    assert!(
        seen.windows(2).all(|w| w[0] <= w[1]),
        "later backups hold at least as much: {seen:?}"
    );
    assert!(
        seen.first() < seen.last(),
        "the writer kept writing during the backups: {seen:?}"
    );
}

/// Snapshots go into the stream when their copy is ready, wherever the other files have got
/// to (or last): databases at the start, middle and end of a tree of many files, with
/// commits still only in their WAL, all come back whole, and the other files too.
#[test]
fn databases_among_many_files_come_back_wherever_their_snapshot_landed() {
    let s = Scratch::new();
    let src = s.path("src");
    fs::create_dir_all(src.join("m")).unwrap();
    for dir in ["a-files", "m/files", "z-files"] {
        fs::create_dir_all(src.join(dir)).unwrap();
        for i in 0..700 {
            fs::write(
                src.join(format!("{dir}/{i}")),
                format!("{dir} {i}\n").repeat(40),
            )
            .unwrap();
        }
    }
    // Kept open: their last commits stay in the WAL, not yet in the database file.
    let mut open = Vec::new();
    for (db, rows) in [("0.db", 3000), ("m/state", 20), ("zz.sqlite", 500)] {
        let mut conn = open_writer(&src.join(db));
        conn.execute_batch("PRAGMA wal_autocheckpoint=0").unwrap();
        assert_eq!(
            write_transactions(&mut conn, |n| n >= rows / ROWS_PER_TX),
            rows / ROWS_PER_TX
        );
        open.push((db, rows / ROWS_PER_TX, conn));
    }
    let info = create(&src, &s.path("backups"), &options("app"), &mut |_| {}).unwrap();
    assert_eq!(info.sqlite, ["0.db", "m/state", "zz.sqlite"]);
    assert!(info.changed.is_empty(), "{:?}", info.changed);
    verify(&info.path, &mut |_| {}).unwrap();

    let target = s.path("restored");
    restore(&info.path, &target, &mut |_| {}).unwrap();
    for (db, transactions, _) in &open {
        assert_eq!(
            check_restored(&target.join(db), *transactions),
            *transactions,
            "{db}"
        );
    }
    for dir in ["a-files", "m/files", "z-files"] {
        for i in [0, 350, 699] {
            let path = format!("{dir}/{i}");
            assert_eq!(
                fs::read_to_string(target.join(&path)).unwrap(),
                fs::read_to_string(src.join(&path)).unwrap(),
                "{path}"
            );
        }
    }
}

/// More databases than `create` holds pinned at once (32): the first ones are copied before
/// streaming starts, the rest on the helper thread; all come back, each with its own rows.
#[test]
fn more_databases_than_are_held_pinned_all_come_back() {
    let s = Scratch::new();
    let src = s.path("src");
    fs::create_dir(&src).unwrap();
    let mut open = Vec::new();
    for i in 0..40 {
        let mut conn = open_writer(&src.join(format!("db-{i:02}")));
        conn.execute_batch("PRAGMA wal_autocheckpoint=0").unwrap();
        write_transactions(&mut conn, |n| n > i);
        open.push(conn);
    }
    let info = create(&src, &s.path("backups"), &options("app"), &mut |_| {}).unwrap();
    assert_eq!(info.sqlite.len(), 40);
    let target = s.path("restored");
    restore(&info.path, &target, &mut |_| {}).unwrap();
    for i in 0..40 {
        assert_eq!(
            check_restored(&target.join(format!("db-{i:02}")), i + 1),
            i + 1
        );
    }
}
