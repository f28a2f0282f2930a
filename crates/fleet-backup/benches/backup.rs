//! `cargo xtask bench backup`: create and restore throughput of fleet-backup against
//! `tar -I 'zstd -T0 -3'` on the same 1 GiB mixed data directory, in the same run.
//!
//! Each measured phase runs in a child process (this binary again) so its peak memory is
//! that process's own `ru_maxrss`, read with `wait4`. Between phases everything is synced
//! (untimed) so no phase pays for another's dirty pages. Medians of `FLEET_BENCH_RUNS`
//! (default 3) runs; `FLEET_BENCH_MIB` (default 1024) sets the data size,
//! `FLEET_BENCH_THREADS` fleet-backup's compression threads (default: one per CPU),
//! `FLEET_BENCH_COLD=1` drops the input of each phase from the page cache first (as for a
//! backup of data nobody read lately; by default it is read into the cache first), and
//! `FLEET_BENCH_GENERATE_INTO=DIR` only generates the data, for profiling by hand.

#![allow(clippy::print_stdout, clippy::print_stderr)] // A benchmark reports on the terminal.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use fleet_backup::{BackupName, CreateOptions, create, restore};

const PHASE: &str = "FLEET_BACKUP_BENCH_PHASE";

fn main() {
    if let Ok(phase) = std::env::var(PHASE) {
        let from = PathBuf::from(std::env::var("FROM").unwrap());
        let to = PathBuf::from(std::env::var("TO").unwrap());
        let started = Instant::now();
        match phase.as_str() {
            "create" => {
                let mut options = CreateOptions::new(BackupName::new("bench").unwrap());
                options.threads = std::env::var("FLEET_BENCH_THREADS")
                    .ok()
                    .and_then(|t| t.parse().ok())
                    .unwrap_or(0);
                let info = create(&from, &to, &options, &mut |_| {}).unwrap();
                println!("{}", info.path.display());
            }
            "restore" => {
                restore(&from, &to, &mut |_| {}).unwrap();
            }
            other => panic!("unknown phase {other}"),
        }
        println!("{}", started.elapsed().as_secs_f64());
        return;
    }
    if let Ok(dir) = std::env::var("FLEET_BENCH_GENERATE_INTO") {
        // For profiling one phase by hand: make the data and stop.
        let mib: u64 = std::env::var("FLEET_BENCH_MIB")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(1024);
        generate(Path::new(&dir), mib << 20);
        return;
    }
    let mib: u64 = std::env::var("FLEET_BENCH_MIB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1024);
    let runs: usize = std::env::var("FLEET_BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);
    let cold = std::env::var_os("FLEET_BENCH_COLD").is_some_and(|v| v != "0");
    // Before each phase, untimed: its input out of the page cache when measuring cold, else
    // read into it. Without this, the phase that runs first in a round would find the input
    // partly evicted by the previous round's restores, and the next one would not.
    let prepare = |path: &Path| {
        if cold {
            evict(path);
        } else {
            warm(path);
        }
    };
    for tool in ["tar", "zstd", "sync"] {
        assert!(
            Command::new("which")
                .arg(tool)
                .output()
                .unwrap()
                .status
                .success(),
            "`{tool}` is needed for the comparison (Debian: tar zstd coreutils)"
        );
    }
    let scratch = tempfile::Builder::new()
        .prefix("fleet-backup-bench-")
        .tempdir_in(std::env::temp_dir())
        .unwrap();
    let src = scratch.path().join("src");
    let started = Instant::now();
    let bytes = generate(&src, mib << 20);
    sync();
    println!(
        "fleet-backup bench: {:.0} MiB in {} files (text, SQLite, random blobs, small files), generated in {:.1?}; {runs} runs, {} CPUs",
        bytes as f64 / (1 << 20) as f64,
        walkdir::WalkDir::new(&src)
            .into_iter()
            .filter(|e| e.as_ref().unwrap().file_type().is_file())
            .count(),
        started.elapsed(),
        std::thread::available_parallelism().map_or(1, |n| n.get()),
    );

    let mut ours_create = Vec::new();
    let mut tar_create = Vec::new();
    let mut tar_create_sync = Vec::new();
    let mut ours_restore = Vec::new();
    let mut tar_restore = Vec::new();
    let mut tar_restore_sync = Vec::new();
    let (mut ours_size, mut tar_size) = (0, 0);
    for run in 0..runs {
        let dest = scratch.path().join("backups");
        prepare(&src);
        let (out, m) = child("create", &src, &dest);
        let archive = PathBuf::from(out.lines().next().unwrap());
        ours_size = fs::metadata(&archive).unwrap().len();
        ours_create.push(m);
        sync();

        let tar_archive = scratch.path().join("tar.tar.zst");
        prepare(&src);
        tar_create.push(measure(
            Command::new("tar")
                .args(["-I", "zstd -T0 -3", "-cf"])
                .arg(&tar_archive)
                .arg("-C")
                .arg(&src)
                .arg("."),
        ));
        tar_size = fs::metadata(&tar_archive).unwrap().len();
        fs::remove_file(&tar_archive).unwrap();
        sync();
        // The same with the durability fleet-backup provides: the archive on disk before returning.
        let script = format!(
            "tar -I 'zstd -T0 -3' -cf '{}' -C '{}' . && sync -f '{}'",
            tar_archive.display(),
            src.display(),
            tar_archive.display()
        );
        prepare(&src);
        tar_create_sync.push(measure(Command::new("sh").arg("-c").arg(script)));
        sync();

        let target = scratch.path().join("restored");
        prepare(&archive);
        let (_, m) = child("restore", &archive, &target);
        ours_restore.push(m);
        remove(&target);

        fs::create_dir(&target).unwrap();
        prepare(&tar_archive);
        tar_restore.push(measure(
            Command::new("tar")
                .args(["-I", "zstd -T0 -3", "-xf"])
                .arg(&tar_archive)
                .arg("-C")
                .arg(&target),
        ));
        remove(&target);

        // The same with the durability fleet-backup provides: data on disk before returning.
        fs::create_dir(&target).unwrap();
        prepare(&tar_archive);
        let script = format!(
            "tar -I 'zstd -T0 -3' -xf '{}' -C '{}' && sync -f '{}'",
            tar_archive.display(),
            target.display(),
            target.display()
        );
        tar_restore_sync.push(measure(Command::new("sh").arg("-c").arg(script)));
        remove(&target);
        remove(&dest);
        fs::remove_file(&tar_archive).unwrap();
        eprintln!("run {} of {runs} done", run + 1);
    }

    let mib = bytes as f64 / (1 << 20) as f64;
    let line = |what: &str, ms: &[Measured], vs: Option<&[Measured]>| {
        let t = median(ms.iter().map(|m| m.secs).collect());
        let rss = ms.iter().map(|m| m.max_rss_kib).max().unwrap();
        let cpu = median(ms.iter().map(|m| m.cpu_secs).collect());
        let ratio = vs.map_or(String::new(), |vs| {
            let base = median(vs.iter().map(|m| m.secs).collect());
            format!("  {:.2}x the speed of tar", base / t)
        });
        println!(
            "{what:<46} {t:>6.2} s {:>5.0} MiB/s  CPU {cpu:>5.2} s  peak RSS {:>5.1} MiB{ratio}",
            mib / t,
            rss as f64 / 1024.0
        );
    };
    let cache = if cold {
        ", each phase's input dropped from the page cache first"
    } else {
        ""
    };
    println!("\nmedian of {runs} runs, {mib:.0} MiB of data{cache}:");
    line(
        "create  fleet-backup (level 3, default threads)",
        &ours_create,
        Some(&tar_create),
    );
    line("create  tar -I 'zstd -T0 -3' -cf", &tar_create, None);
    line("create  tar -cf, then sync -f", &tar_create_sync, None);
    let base = median(tar_create_sync.iter().map(|m| m.secs).collect());
    let ours = median(ours_create.iter().map(|m| m.secs).collect());
    println!(
        "create  fleet-backup vs tar + sync: {:.2}x the speed",
        base / ours
    );
    line(
        "restore fleet-backup (verify+extract+syncfs)",
        &ours_restore,
        Some(&tar_restore),
    );
    line("restore tar -I 'zstd -T0 -3' -xf", &tar_restore, None);
    line("restore tar -xf, then sync -f", &tar_restore_sync, None);
    let base = median(tar_restore_sync.iter().map(|m| m.secs).collect());
    let ours = median(ours_restore.iter().map(|m| m.secs).collect());
    println!(
        "restore fleet-backup vs tar + sync: {:.2}x the speed",
        base / ours
    );
    println!(
        "archive size: fleet-backup {:.1} MiB, tar+zstd {:.1} MiB ({:.3}x)",
        ours_size as f64 / (1 << 20) as f64,
        tar_size as f64 / (1 << 20) as f64,
        ours_size as f64 / tar_size as f64
    );
}

struct Measured {
    secs: f64,
    cpu_secs: f64,
    max_rss_kib: i64,
}

/// Runs this binary as a child for one phase; its stdout and measurements.
#[allow(clippy::zombie_processes)] // Reaped by `wait4`, which also reads its resource usage.
fn child(phase: &str, from: &Path, to: &Path) -> (String, Measured) {
    let exe = std::env::current_exe().unwrap();
    let mut cmd = Command::new(exe);
    cmd.env(PHASE, phase)
        .env("FROM", from)
        .env("TO", to)
        .stdout(std::process::Stdio::piped());
    let started = Instant::now();
    let child = cmd.spawn().unwrap();
    let pid = child.id() as libc::pid_t;
    let mut stdout = child.stdout.unwrap();
    let mut out = String::new();
    std::io::Read::read_to_string(&mut stdout, &mut out).unwrap();
    let (status, rss, cpu_secs) = wait4(pid);
    let wall = started.elapsed();
    assert!(status == 0, "{phase} failed");
    // The child's own timing excludes process start-up; both are close, the child's is used.
    let secs = out
        .lines()
        .last()
        .unwrap()
        .parse::<f64>()
        .unwrap_or(wall.as_secs_f64());
    (
        out,
        Measured {
            secs,
            cpu_secs,
            max_rss_kib: rss,
        },
    )
}

/// Runs a command to completion: wall time and the peak RSS of its largest process.
#[allow(clippy::zombie_processes)] // Reaped by `wait4`, which also reads its resource usage.
fn measure(cmd: &mut Command) -> Measured {
    let started = Instant::now();
    let child = cmd.spawn().unwrap();
    let (status, rss, cpu_secs) = wait4(child.id() as libc::pid_t);
    let secs = started.elapsed().as_secs_f64();
    assert!(status == 0, "{cmd:?} failed");
    Measured {
        secs,
        cpu_secs,
        max_rss_kib: rss,
    }
}

/// Waits for `pid`: exit status, `ru_maxrss` in KiB (for a pipeline, the largest of the
/// process and the children it waited for) and CPU seconds (user + system, children included).
fn wait4(pid: libc::pid_t) -> (i32, i64, f64) {
    let mut status = 0;
    // SAFETY: an all-zero rusage is a valid value to be overwritten.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: pid is our child, status and usage point to valid memory.
    let rc = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    assert_eq!(rc, pid, "wait4 failed: {}", std::io::Error::last_os_error());
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    (
        status,
        usage.ru_maxrss,
        secs(usage.ru_utime) + secs(usage.ru_stime),
    )
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn sync() {
    Command::new("sync").status().unwrap();
}

/// Drops the file at `path`, or every file under it, from the page cache (they are synced:
/// clean pages go). Only a hint to the kernel, but Linux follows it.
fn evict(path: &Path) {
    for item in walkdir::WalkDir::new(path) {
        let item = item.unwrap();
        if item.file_type().is_file() {
            let file = fs::File::open(item.path()).unwrap();
            // SAFETY: a plain syscall on a descriptor that stays open for its duration.
            let rc = unsafe {
                libc::posix_fadvise(
                    std::os::fd::AsRawFd::as_raw_fd(&file),
                    0,
                    0,
                    libc::POSIX_FADV_DONTNEED,
                )
            };
            assert_eq!(rc, 0, "posix_fadvise failed on {}", item.path().display());
        }
    }
}

/// Reads the file at `path`, or every file under it, into the page cache.
fn warm(path: &Path) {
    let mut buf = vec![0; 1 << 20];
    for item in walkdir::WalkDir::new(path) {
        let item = item.unwrap();
        if item.file_type().is_file() {
            let mut file = fs::File::open(item.path()).unwrap();
            while std::io::Read::read(&mut file, &mut buf).unwrap() > 0 {}
        }
    }
}

fn remove(path: &Path) {
    if path.exists() {
        fs::remove_dir_all(path).unwrap();
    }
    sync();
}

/// Fills `dir` with about `total` bytes: 30% text logs, 15% an SQLite database, 40% random
/// blobs, 15% small files (4–12 KiB, half text, half binary). Returns the bytes written.
fn generate(dir: &Path, total: u64) -> u64 {
    let mut rng = XorShift(0x2545_F491_4F6C_DD1D);
    let mut written = 0;
    fs::create_dir_all(dir.join("logs")).unwrap();
    let text_total = total * 30 / 100;
    let mut i = 0;
    while written < text_total {
        let mut file = std::io::BufWriter::new(
            fs::File::create(dir.join(format!("logs/app-{i:03}.log"))).unwrap(),
        );
        let mut n = 0u64;
        while n < 10 << 20 && written + n < text_total {
            let line = format!(
                "2026-11-23T12:{:02}:{:02}.{:03}Z INFO request id={} path=/api/v1/items/{} status={} duration_ms={} user=customer-{}\n",
                rng.next() % 60,
                rng.next() % 60,
                rng.next() % 1000,
                rng.next() % 1_000_000,
                rng.next() % 5000,
                [200, 200, 200, 404, 500][(rng.next() % 5) as usize],
                rng.next() % 900,
                rng.next() % 50
            );
            file.write_all(line.as_bytes()).unwrap();
            n += line.len() as u64;
        }
        written += n;
        i += 1;
    }

    let db_total = total * 15 / 100;
    let conn = rusqlite::Connection::open(dir.join("app.db")).unwrap();
    conn.execute_batch("PRAGMA journal_mode=WAL; CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT, body BLOB);").unwrap();
    conn.execute_batch("BEGIN").unwrap();
    let mut db_bytes = 0;
    while db_bytes < db_total {
        let body: Vec<u8> = (0..1000)
            .map(|j| {
                if j % 3 == 0 {
                    rng.next() as u8
                } else {
                    b'a' + (j % 26) as u8
                }
            })
            .collect();
        conn.execute(
            "INSERT INTO items (name, body) VALUES (?1, ?2)",
            (format!("item {}", rng.next()), body),
        )
        .unwrap();
        db_bytes += 1040;
    }
    conn.execute_batch("COMMIT; PRAGMA wal_checkpoint(TRUNCATE);")
        .unwrap();
    drop(conn);
    written += fs::metadata(dir.join("app.db")).unwrap().len();

    fs::create_dir_all(dir.join("blobs")).unwrap();
    let blob_total = total * 40 / 100;
    let mut blob = vec![0u8; 1 << 20];
    let mut blob_written = 0;
    let mut k = 0;
    while blob_written < blob_total {
        let mut file = fs::File::create(dir.join(format!("blobs/blob-{k:02}.bin"))).unwrap();
        for _ in 0..16 {
            for chunk in blob.chunks_mut(8) {
                chunk.copy_from_slice(&rng.next().to_le_bytes());
            }
            file.write_all(&blob).unwrap();
            blob_written += blob.len() as u64;
        }
        k += 1;
    }
    written += blob_written;

    let small_total = total.saturating_sub(written);
    let mut small_written = 0;
    let mut n = 0;
    while small_written < small_total {
        let sub = dir.join(format!("uploads/{:03}", n % 200));
        if n < 200 {
            fs::create_dir_all(&sub).unwrap();
        }
        let len = 4096 + (rng.next() % 8192) as usize;
        let content: Vec<u8> = if n % 2 == 0 {
            format!("{{\"id\": {n}, \"title\": \"document {n}\", \"tags\": [\"a\", \"b\"]}}\n")
                .repeat(len / 60)
                .into_bytes()
        } else {
            (0..len).map(|_| rng.next() as u8).collect()
        };
        fs::write(sub.join(format!("file-{n:06}")), &content).unwrap();
        small_written += content.len() as u64;
        n += 1;
    }
    written + small_written
}

struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}
