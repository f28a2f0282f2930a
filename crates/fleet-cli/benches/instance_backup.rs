//! `cargo xtask bench backup` (second part): `fleet backup` of a running instance with a
//! 1 GiB data directory while the app serves requests, against `tar -I 'zstd -T0 -3' -cf`
//! of the same directory under the same load, in the same run.
//!
//! The data directory (the app's own SQLite database of about 300 MiB, text logs, random
//! blobs and about 19,000 small files) is generated once and kept in
//! `<target dir>/fleet-bench/`; the instance mounts it with `--data-dir`. A load
//! generator (two threads, each one keep-alive connection, one request every 10 ms: 9 in
//! 10 `GET /api/counter`, 1 in 10 `POST /api/counter`, a SQLite commit) runs for the whole
//! benchmark and records each request's latency. Each round measures, in an order that
//! alternates between rounds, with the data read into the page cache first (untimed):
//!
//! - idle: the load alone for 4 s;
//! - fleet: `fleet backup` (the binary, as an operator runs it), wall time;
//! - library: `fleet_backup::create` of the data directory in this process, the
//!   archiving alone (no lease, health probe, archive checksum or record);
//! - tar: `tar -I 'zstd -T0 -3' -cf` of the data directory, wall time.
//!
//! and the latencies of the requests sent during each. Medians over the rounds, with
//! their range; ratios fleet / tar, library / tar and during / idle. `FLEET_BENCH_RUNS` (default 5)
//! sets the rounds, `FLEET_BENCH_MIB` (default 1024) the data size.

// A benchmark reports on the terminal.
#![allow(clippy::print_stdout, clippy::print_stderr, missing_docs)]

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use fleet_tests::docker::TestDocker;
use fleet_tests::image::TestImage;
use fleet_tests::registry::TestRegistry;

/// The port range of the benchmark's instance (no test or other benchmark uses it).
const FIRST_PORT: u16 = 11400;
/// How long the load runs alone in each round.
const IDLE: Duration = Duration::from_secs(4);
/// Each load thread sends one request this often.
const PACE: Duration = Duration::from_millis(10);
const LOAD_THREADS: usize = 2;

fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    for tool in ["tar", "zstd", "sync"] {
        fleet_tests::tools::require(tool, "tar zstd coreutils")?;
    }
    let mib = env_number("FLEET_BENCH_MIB", 1024);
    let runs = usize::try_from(env_number("FLEET_BENCH_RUNS", 5))?.max(1);
    let data = cached_data(mib)?;
    let files = walkdir(&data).len();
    let bytes: u64 = walkdir(&data).iter().map(|(_, len)| len).sum();

    let registry = TestRegistry::start()?;
    let docker = TestDocker::new().await?;
    let image = TestImage::new("1.0.0").build(&docker).await?;
    image
        .push(&docker, &registry, "app", &["v1.0.0", "v1"])
        .await?;
    docker.track_registry(&registry.docker_host());
    let state = tempfile::tempdir()?;
    // One archive at a time on disk: each backup deletes the one before.
    std::fs::write(
        state.path().join("config.toml"),
        docker.fleet_config(&docker.name(""), FIRST_PORT, FIRST_PORT + 19)
            + "\n[backup]\nkeep_last = 1\n",
    )?;
    let fleet = |args: &[&str]| -> anyhow::Result<String> {
        let output = Command::new(env!("CARGO_BIN_EXE_fleet"))
            .args(args)
            .env("NO_COLOR", "1")
            .env("FLEET_STATE_DIR", state.path())
            .output()?;
        anyhow::ensure!(
            output.status.success(),
            "fleet {args:?} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        Ok(String::from_utf8(output.stdout)?)
    };
    let created: serde_json::Value = serde_json::from_str(&fleet(&[
        "create",
        "bench",
        "--image",
        &format!("{}/app:v1", registry.docker_host()),
        "--port",
        "8080",
        "--health-path",
        "/api/health",
        "--data-dir",
        data.to_str().unwrap(),
        "--json",
    ])?)?;
    let port = u16::try_from(created["ports"][0]["host"].as_u64().unwrap())?;
    println!(
        "instance backup bench: {:.0} MiB in {files} files at {} (the app's SQLite database, logs, blobs, small files); {runs} rounds, {} CPUs",
        bytes as f64 / f64::from(1 << 20),
        data.display(),
        std::thread::available_parallelism().map_or(1, |n| n.get()),
    );

    let load = Load::start(port)?;
    let scratch = tempfile::Builder::new()
        .prefix("fleet-instance-backup-bench-")
        .tempdir()?;
    let tar_archive = scratch.path().join("tar.tar.zst");
    let mut rounds = Vec::new();
    for round in 0..runs {
        let mut result = Round::default();
        let order: &[&str] = if round % 2 == 0 {
            &["idle", "fleet", "library", "tar"]
        } else {
            &["tar", "library", "fleet", "idle"]
        };
        for phase in order {
            sync();
            warm(&data);
            let started = Instant::now();
            match *phase {
                "idle" => std::thread::sleep(IDLE),
                "fleet" => {
                    let backup: serde_json::Value =
                        serde_json::from_str(&fleet(&["backup", "bench", "--json"])?)?;
                    result.fleet_archive = backup["size"].as_u64().unwrap_or(0);
                }
                "library" => {
                    let options =
                        fleet_backup::CreateOptions::new(fleet_backup::BackupName::new("bench")?);
                    let archive = fleet_backup::create(
                        &data,
                        &scratch.path().join("library"),
                        &options,
                        &mut |_| {},
                    )?;
                    std::fs::remove_file(archive.path)?;
                }
                _ => {
                    let status = Command::new("tar")
                        .args(["-I", "zstd -T0 -3", "-cf"])
                        .arg(&tar_archive)
                        .arg("-C")
                        .arg(&data)
                        .arg(".")
                        .stderr(std::process::Stdio::null())
                        .status()?;
                    // 1: a file changed while tar read it (the live database): still an archive.
                    anyhow::ensure!(
                        matches!(status.code(), Some(0 | 1)),
                        "tar failed ({status})"
                    );
                }
            }
            let window = load.window(started, Instant::now());
            let secs = started.elapsed().as_secs_f64();
            match *phase {
                "idle" => result.idle = window,
                "fleet" => (result.fleet_secs, result.fleet) = (secs, window),
                "library" => (result.library_secs, result.library) = (secs, window),
                _ => {
                    (result.tar_secs, result.tar) = (secs, window);
                    result.tar_archive = std::fs::metadata(&tar_archive)?.len();
                    std::fs::remove_file(&tar_archive)?;
                }
            }
        }
        eprintln!(
            "round {} of {runs}: fleet backup {:.2} s, library {:.2} s, tar {:.2} s; p50/p99 idle {}, during fleet {}, during library {}, during tar {}",
            round + 1,
            result.fleet_secs,
            result.library_secs,
            result.tar_secs,
            result.idle.describe(),
            result.fleet.describe(),
            result.library.describe(),
            result.tar.describe(),
        );
        rounds.push(result);
    }
    let errors = load.stop();
    report(&rounds, bytes, errors);
    Ok(())
}

/// What one round measured.
#[derive(Default)]
struct Round {
    fleet_secs: f64,
    library_secs: f64,
    tar_secs: f64,
    fleet_archive: u64,
    tar_archive: u64,
    idle: Window,
    fleet: Window,
    library: Window,
    tar: Window,
}

/// The latencies of the requests sent during one phase.
#[derive(Default)]
struct Window {
    latencies: Vec<Duration>,
}

impl Window {
    fn quantile(&self, q: f64) -> f64 {
        if self.latencies.is_empty() {
            return f64::NAN;
        }
        let mut sorted = self.latencies.clone();
        sorted.sort();
        let index = ((sorted.len() as f64 * q).ceil() as usize).clamp(1, sorted.len()) - 1;
        sorted[index].as_secs_f64() * 1000.0
    }

    fn describe(&self) -> String {
        format!(
            "{:.2}/{:.2} ms ({} requests)",
            self.quantile(0.5),
            self.quantile(0.99),
            self.latencies.len()
        )
    }
}

fn report(rounds: &[Round], bytes: u64, errors: u64) {
    let stat = |values: Vec<f64>| -> (f64, f64, f64) {
        let mut values = values;
        values.sort_by(f64::total_cmp);
        (
            values[values.len() / 2],
            values[0],
            values[values.len() - 1],
        )
    };
    let show = |(median, low, high): (f64, f64, f64), unit: &str| {
        format!("{median:>7.2} {unit} ({low:.2}-{high:.2})")
    };
    let of = |f: &dyn Fn(&Round) -> f64| rounds.iter().map(f).collect::<Vec<_>>();
    let mib = bytes as f64 / f64::from(1 << 20);
    println!(
        "\nmedians of {} rounds (range in brackets), {mib:.0} MiB of data, app under load:",
        rounds.len()
    );
    let fleet = stat(of(&|r| r.fleet_secs));
    let library = stat(of(&|r| r.library_secs));
    let tar = stat(of(&|r| r.tar_secs));
    println!(
        "wall time   fleet backup                     {}  {:>5.0} MiB/s",
        show(fleet, "s"),
        mib / fleet.0
    );
    println!(
        "wall time   fleet_backup::create (library)   {}  {:>5.0} MiB/s",
        show(library, "s"),
        mib / library.0
    );
    println!(
        "wall time   tar -I 'zstd -T0 -3' -cf         {}  {:>5.0} MiB/s",
        show(tar, "s"),
        mib / tar.0
    );
    println!(
        "ratio fleet / tar: {:.2} (of the medians), {} (each round's)",
        fleet.0 / tar.0,
        show(stat(of(&|r| r.fleet_secs / r.tar_secs)), "")
    );
    println!(
        "ratio library / tar: {:.2} (of the medians), {} (each round's)",
        library.0 / tar.0,
        show(stat(of(&|r| r.library_secs / r.tar_secs)), "")
    );
    println!(
        "archive     fleet {:.1} MiB, tar {:.1} MiB",
        rounds[0].fleet_archive as f64 / f64::from(1 << 20),
        rounds[0].tar_archive as f64 / f64::from(1 << 20),
    );
    for (name, q) in [("p50", 0.5), ("p99", 0.99)] {
        let idle = stat(of(&|r| r.idle.quantile(q)));
        let during_fleet = stat(of(&|r| r.fleet.quantile(q)));
        let during_library = stat(of(&|r| r.library.quantile(q)));
        let during_tar = stat(of(&|r| r.tar.quantile(q)));
        println!(
            "latency {name} no backup                    {}",
            show(idle, "ms")
        );
        println!(
            "latency {name} during fleet backup          {}  {:.2}x no backup",
            show(during_fleet, "ms"),
            during_fleet.0 / idle.0
        );
        println!(
            "latency {name} during library create        {}  {:.2}x no backup",
            show(during_library, "ms"),
            during_library.0 / idle.0
        );
        println!(
            "latency {name} during tar                   {}  {:.2}x no backup",
            show(during_tar, "ms"),
            during_tar.0 / idle.0
        );
    }
    let requests: usize = rounds
        .iter()
        .map(|r| {
            r.idle.latencies.len()
                + r.fleet.latencies.len()
                + r.library.latencies.len()
                + r.tar.latencies.len()
        })
        .sum();
    println!("{requests} requests measured, {errors} failed");
}

/// The load generator: threads sending paced requests to the app, recording when each
/// was sent and how long it took.
struct Load {
    samples: Arc<Mutex<Vec<(Instant, Duration)>>>,
    stop: Arc<AtomicBool>,
    threads: Vec<std::thread::JoinHandle<u64>>,
}

impl Load {
    fn start(port: u16) -> anyhow::Result<Load> {
        let samples = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let mut threads = Vec::new();
        for thread in 0..LOAD_THREADS {
            let samples = Arc::clone(&samples);
            let stop = Arc::clone(&stop);
            let mut client = Client::connect(port)?;
            threads.push(std::thread::spawn(move || {
                let mut errors = 0;
                let mut next = Instant::now();
                let mut n = thread;
                while !stop.load(Ordering::Relaxed) {
                    let (method, path) = if n % 10 == 0 {
                        ("POST", "/api/counter")
                    } else {
                        ("GET", "/api/counter")
                    };
                    n += 1;
                    let sent = Instant::now();
                    match client.request(method, path) {
                        Ok(()) => samples
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .push((sent, sent.elapsed())),
                        Err(_) => {
                            errors += 1;
                            if let Ok(again) = Client::connect(port) {
                                client = again;
                            }
                        }
                    }
                    next += PACE;
                    let now = Instant::now();
                    if next > now {
                        std::thread::sleep(next - now);
                    } else {
                        // Behind schedule (a slow answer): carry on from now, no burst.
                        next = now;
                    }
                }
                errors
            }));
        }
        Ok(Load {
            samples,
            stop,
            threads,
        })
    }

    /// The latencies of the requests sent between `from` and `to`.
    fn window(&self, from: Instant, to: Instant) -> Window {
        let samples = self.samples.lock().unwrap_or_else(|e| e.into_inner());
        Window {
            latencies: samples
                .iter()
                .filter(|(sent, _)| *sent >= from && *sent < to)
                .map(|(_, latency)| *latency)
                .collect(),
        }
    }

    /// Stops the threads; how many requests failed.
    fn stop(self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        self.threads
            .into_iter()
            .map(|t| t.join().unwrap_or(0))
            .sum()
    }
}

/// One keep-alive HTTP/1.1 connection to the app.
struct Client {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

impl Client {
    fn connect(port: u16) -> std::io::Result<Client> {
        let stream = TcpStream::connect(("127.0.0.1", port))?;
        stream.set_nodelay(true)?;
        stream.set_read_timeout(Some(Duration::from_secs(10)))?;
        Ok(Client {
            writer: stream.try_clone()?,
            reader: BufReader::new(stream),
        })
    }

    /// Sends one request and reads the whole answer; an error unless it is 200.
    fn request(&mut self, method: &str, path: &str) -> std::io::Result<()> {
        // One write, so no part of the request waits for an ACK (Nagle).
        self.writer.write_all(
            format!("{method} {path} HTTP/1.1\r\nhost: bench\r\ncontent-length: 0\r\n\r\n")
                .as_bytes(),
        )?;
        let mut status = String::new();
        self.reader.read_line(&mut status)?;
        let mut length = 0;
        loop {
            let mut line = String::new();
            if self.reader.read_line(&mut line)? == 0 {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
            let line = line.trim_end();
            if line.is_empty() {
                break;
            }
            if let Some((name, value)) = line.split_once(':')
                && name.eq_ignore_ascii_case("content-length")
            {
                length = value.trim().parse().unwrap_or(0);
            }
        }
        let mut body = vec![0; length];
        self.reader.read_exact(&mut body)?;
        if !status.starts_with("HTTP/1.1 200") {
            return Err(std::io::Error::other(status));
        }
        Ok(())
    }
}

/// The data directory of `mib` MiB, generated on first use into the target directory
/// (`.complete` marks a finished one), owned by the test image's user where the app writes.
fn cached_data(mib: u64) -> anyhow::Result<PathBuf> {
    let dir = fleet_tests::testapp::target_dir()?
        .join("fleet-bench")
        .join(format!("instance-data-v2-{mib}m"));
    let marker = dir.join(".complete");
    if !marker.exists() {
        if dir.exists() {
            std::fs::remove_dir_all(&dir)?;
        }
        let started = Instant::now();
        eprintln!("generating {mib} MiB of instance data in {}", dir.display());
        generate(&dir, mib << 20)?;
        std::fs::write(&marker, "")?;
        sync();
        eprintln!("generated in {:.1?}", started.elapsed());
    }
    // The app (user 10001 in the test image) writes its database and its WAL beside it.
    for path in [
        dir.clone(),
        dir.join("testapp.db"),
        dir.join("testapp.db-wal"),
        dir.join("testapp.db-shm"),
    ] {
        if path.exists() {
            std::os::unix::fs::chown(&path, Some(10001), Some(10001))?;
        }
    }
    Ok(dir)
}

/// Fills `dir` with about `total` bytes: 30% the app's SQLite database (its `writes`
/// table, rows of 1000 bytes, a third of them random), 30% text logs in 10 MiB files, 25%
/// random blobs in 16 MiB files, 15% small files of 4-12 KiB (half JSON, half random).
/// (The database is filled to 22% in payload: pages and indexes make it about 30%.)
fn generate(dir: &Path, total: u64) -> anyhow::Result<()> {
    let mut rng = XorShift(0x2545_F491_4F6C_DD1D);
    std::fs::create_dir_all(dir.join("logs"))?;
    std::fs::create_dir_all(dir.join("blobs"))?;

    let db = rusqlite::Connection::open(dir.join("testapp.db"))?;
    db.execute_batch(
        "PRAGMA journal_mode=WAL;
         CREATE TABLE counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
         CREATE TABLE writes (id INTEGER PRIMARY KEY, at TEXT NOT NULL, payload BLOB);
         BEGIN;",
    )?;
    let mut db_bytes = 0;
    while db_bytes < total * 22 / 100 {
        let payload: Vec<u8> = (0..1000)
            .map(|j| {
                if j % 3 == 0 {
                    rng.next() as u8
                } else {
                    b'a' + (j % 26) as u8
                }
            })
            .collect();
        db.execute(
            "INSERT INTO writes (at, payload) VALUES ('2026-11-30T08:00:00.000Z', ?1)",
            [payload],
        )?;
        db_bytes += 1040;
    }
    db.execute_batch("COMMIT; PRAGMA wal_checkpoint(TRUNCATE);")?;
    drop(db);

    let mut logs = 0;
    let mut i = 0;
    while logs < total * 30 / 100 {
        let mut file = std::io::BufWriter::new(std::fs::File::create(
            dir.join(format!("logs/app-{i:03}.log")),
        )?);
        let mut n = 0u64;
        while n < 10 << 20 {
            let line = format!(
                "2026-11-30T08:{:02}:{:02}.{:03}Z INFO request id={} path=/api/v1/items/{} status={} duration_ms={}\n",
                rng.next() % 60,
                rng.next() % 60,
                rng.next() % 1000,
                rng.next() % 1_000_000,
                rng.next() % 5000,
                [200, 200, 200, 404, 500][(rng.next() % 5) as usize],
                rng.next() % 900,
            );
            file.write_all(line.as_bytes())?;
            n += line.len() as u64;
        }
        logs += n;
        i += 1;
    }

    let mut blob = vec![0u8; 16 << 20];
    let mut blobs = 0;
    let mut k = 0;
    while blobs < total * 25 / 100 {
        for chunk in blob.chunks_mut(8) {
            chunk.copy_from_slice(&rng.next().to_le_bytes());
        }
        std::fs::write(dir.join(format!("blobs/blob-{k:02}.bin")), &blob)?;
        blobs += blob.len() as u64;
        k += 1;
    }

    let mut small = 0;
    let mut n = 0;
    while small < total * 15 / 100 {
        let sub = dir.join(format!("uploads/{:03}", n % 200));
        if n < 200 {
            std::fs::create_dir_all(&sub)?;
        }
        let len = 4096 + (rng.next() % 8192) as usize;
        let content: Vec<u8> = if n % 2 == 0 {
            format!("{{\"id\": {n}, \"title\": \"document {n}\", \"tags\": [\"a\", \"b\"]}}\n")
                .repeat(len / 60)
                .into_bytes()
        } else {
            (0..len).map(|_| rng.next() as u8).collect()
        };
        std::fs::write(sub.join(format!("file-{n:06}")), &content)?;
        small += content.len() as u64;
        n += 1;
    }
    Ok(())
}

/// Every regular file under `dir` with its length.
fn walkdir(dir: &Path) -> Vec<(PathBuf, u64)> {
    let mut files = Vec::new();
    let mut pending = vec![dir.to_owned()];
    while let Some(dir) = pending.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let Ok(kind) = entry.file_type() else {
                continue;
            };
            if kind.is_dir() {
                pending.push(entry.path());
            } else if kind.is_file() {
                files.push((entry.path(), entry.metadata().map_or(0, |m| m.len())));
            }
        }
    }
    files
}

/// Reads every file under `dir` into the page cache (untimed, before each phase).
fn warm(dir: &Path) {
    let mut buffer = vec![0; 1 << 20];
    for (path, _) in walkdir(dir) {
        if let Ok(mut file) = std::fs::File::open(path) {
            while matches!(file.read(&mut buffer), Ok(n) if n > 0) {}
        }
    }
}

fn sync() {
    let _ = Command::new("sync").status();
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
