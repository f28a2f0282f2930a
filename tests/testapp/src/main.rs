//! The fleet test app: a small HTTP server with a SQLite counter under `/data`.
//!
//! It is built as a static binary and copied into `FROM scratch` images by the test bed
//! (`fleet_tests::image`). Its version and behaviour are baked into each image as
//! environment variables, so that every kind of bad release a rollback must survive exists
//! as a real image:
//!
//! | `TESTAPP_BEHAVIOUR` | what the app does                                              |
//! |---------------------|----------------------------------------------------------------|
//! | `healthy`           | serves and reports healthy                                     |
//! | `crash`             | exits with status 1 right after start                          |
//! | `crash-after:N`     | serves, then exits with status 1 after N seconds               |
//! | `never-healthy`     | serves, but `/api/health` always answers 503 `unhealthy`       |
//! | `slow-start:N`      | `/api/health` answers 503 `starting` for the first N seconds   |
//! | `flap`              | `/api/health` alternates healthy / unhealthy on every request  |
//! | `docker-unhealthy`  | serves healthy, but `fleet-testapp healthcheck` always fails   |
//!
//! Set at run time (`fleet create -e`):
//!
//! | variable                 | what the app does                                          |
//! |--------------------------|------------------------------------------------------------|
//! | `TESTAPP_WRITE_EVERY_MS` | a thread inserts a row into `writes` every N ms (0: as fast as it can), each its own committed transaction |
//!
//! Routes: `GET /api/health`, `GET /api/version`, `GET /` (instance name, version and a hit
//! counter), `GET|POST /api/counter` (read / increment a counter kept in SQLite),
//! `GET /api/writes` (`{"count": .., "max_id": ..}` of the committed rows of `writes`),
//! `GET /api/sleep?ms=N` (answers after N ms), `GET /api/env?name=K` (one environment
//! variable).
//!
//! The database is `$DATA_DIR/testapp.db` (default `/data`), in WAL mode, with the tables
//! `counters(name, value)` and `writes(id INTEGER PRIMARY KEY, at TEXT, payload BLOB)`.
//!
//! Subcommands, for an image that has no shell:
//!
//! | command                     | what it does                                              |
//! |-----------------------------|-----------------------------------------------------------|
//! | `fleet-testapp healthcheck` | probes the local server, exits 0 when healthy (Docker's `HEALTHCHECK`) |
//! | `fleet-testapp dump PATH`   | writes the counters and the count of `writes` to PATH as JSON, prints where (a backup consistency hook) |
//! | `fleet-testapp fail-dump`   | prints an error and exits 3 (a consistency hook that fails) |

// This is a program, not a library: it talks to its terminal (the container log).
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rusqlite::Connection;
use serde_json::json;

/// How the app behaves, chosen when its image is built.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Behaviour {
    Healthy,
    Crash,
    CrashAfter(u64),
    NeverHealthy,
    SlowStart(u64),
    Flap,
}

impl Behaviour {
    fn parse(text: &str) -> Result<Self, String> {
        let number = |n: &str| n.parse::<u64>().map_err(|e| format!("{text:?}: {e}"));
        Ok(match text.split_once(':') {
            None if text == "healthy" || text.is_empty() => Self::Healthy,
            None if text == "crash" => Self::Crash,
            None if text == "never-healthy" => Self::NeverHealthy,
            None if text == "flap" => Self::Flap,
            // Only the `healthcheck` subcommand behaves differently.
            None if text == "docker-unhealthy" => Self::Healthy,
            Some(("slow-start", n)) => Self::SlowStart(number(n)?),
            Some(("crash-after", n)) => Self::CrashAfter(number(n)?),
            _ => return Err(format!("unknown TESTAPP_BEHAVIOUR {text:?}")),
        })
    }
}

struct App {
    version: String,
    behaviour: Behaviour,
    behaviour_text: String,
    instance: String,
    started: Instant,
    health_requests: AtomicU64,
    db: Mutex<Connection>,
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("healthcheck") => std::process::exit(healthcheck()),
        Some("dump") => std::process::exit(dump(args.get(1).map(String::as_str))),
        Some("fail-dump") => {
            eprintln!("fleet-testapp: dump failed (fail-dump is meant to fail)");
            std::process::exit(3);
        }
        _ => {}
    }
    if let Err(message) = serve() {
        eprintln!("fleet-testapp: {message}");
        std::process::exit(1);
    }
}

fn env(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_owned())
}

fn port() -> u16 {
    env("PORT", "8080").parse().unwrap_or(8080)
}

fn serve() -> Result<(), String> {
    install_sigterm_handler();
    let behaviour_text = env("TESTAPP_BEHAVIOUR", "healthy");
    let behaviour = Behaviour::parse(&behaviour_text)?;
    let version = env("TESTAPP_VERSION", env!("CARGO_PKG_VERSION"));
    let instance = std::env::var("INSTANCE_NAME")
        .or_else(|_| std::env::var("FLEET_INSTANCE"))
        .unwrap_or_else(|_| env("HOSTNAME", "unnamed"));
    println!("fleet-testapp {version} starting: instance={instance} behaviour={behaviour_text}");
    if behaviour == Behaviour::Crash {
        return Err("crashing on start (TESTAPP_BEHAVIOUR=crash)".into());
    }
    let db = open_db()?;
    if let Some(every) = write_interval()? {
        start_writer(every)?;
    }
    let app = Arc::new(App {
        version,
        behaviour,
        behaviour_text,
        instance,
        started: Instant::now(),
        health_requests: AtomicU64::new(0),
        db: Mutex::new(db),
    });
    if let Behaviour::CrashAfter(secs) = behaviour {
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_secs(secs));
            eprintln!("fleet-testapp: crashing after {secs}s (TESTAPP_BEHAVIOUR=crash-after)");
            std::process::exit(1);
        });
    }
    let address = format!("0.0.0.0:{}", port());
    let listener =
        TcpListener::bind(&address).map_err(|e| format!("cannot listen on {address}: {e}"))?;
    println!("fleet-testapp listening on {address}");
    for stream in listener.incoming() {
        let Ok(stream) = stream else { continue };
        let app = Arc::clone(&app);
        std::thread::spawn(move || {
            let _ = handle_connection(&app, stream);
        });
    }
    Ok(())
}

fn db_path() -> PathBuf {
    PathBuf::from(env("DATA_DIR", "/data")).join("testapp.db")
}

fn open_db() -> Result<Connection, String> {
    let path = db_path();
    let fail = |e: rusqlite::Error| format!("cannot use database {}: {e}", path.display());
    let db = Connection::open(&path).map_err(fail)?;
    db.busy_timeout(Duration::from_secs(5)).map_err(fail)?;
    db.pragma_update(None, "journal_mode", "WAL")
        .map_err(fail)?;
    db.execute_batch(
        "CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
         CREATE TABLE IF NOT EXISTS writes (id INTEGER PRIMARY KEY, at TEXT NOT NULL, payload BLOB);",
    )
    .map_err(fail)?;
    bump(&db, "boots").map_err(fail)?;
    Ok(db)
}

/// `TESTAPP_WRITE_EVERY_MS`, if set: how long the writer waits between two inserts.
fn write_interval() -> Result<Option<Duration>, String> {
    match std::env::var("TESTAPP_WRITE_EVERY_MS") {
        Err(_) => Ok(None),
        Ok(ms) => ms
            .parse()
            .map(|ms| Some(Duration::from_millis(ms)))
            .map_err(|e| format!("TESTAPP_WRITE_EVERY_MS={ms:?}: {e}")),
    }
}

/// Starts the continuous writer: on a connection of its own, one row into `writes` per
/// committed transaction, every `every` (zero: one after the other). A failed insert is
/// logged and retried; the app keeps serving either way.
fn start_writer(every: Duration) -> Result<(), String> {
    let path = db_path();
    let fail = |e: rusqlite::Error| format!("cannot use database {}: {e}", path.display());
    let db = Connection::open(&path).map_err(fail)?;
    db.busy_timeout(Duration::from_secs(5)).map_err(fail)?;
    println!("fleet-testapp writing a row every {} ms", every.as_millis());
    std::thread::spawn(move || {
        let mut failures = 0u64;
        loop {
            // Each statement outside BEGIN is its own transaction, committed when it returns.
            let inserted = db.execute(
                "INSERT INTO writes (at, payload) VALUES (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'), randomblob(64))",
                [],
            );
            if let Err(e) = inserted {
                failures += 1;
                if failures.is_power_of_two() {
                    eprintln!("fleet-testapp: insert into writes failed ({failures} so far): {e}");
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            if !every.is_zero() {
                std::thread::sleep(every);
            }
        }
    });
    Ok(())
}

/// The number of committed rows in `writes` and the highest id among them.
fn writes(db: &Connection) -> rusqlite::Result<(i64, i64)> {
    db.query_row(
        "SELECT COUNT(*), COALESCE(MAX(id), 0) FROM writes",
        [],
        |row| Ok((row.get(0)?, row.get(1)?)),
    )
}

fn bump(db: &Connection, name: &str) -> rusqlite::Result<i64> {
    db.query_row(
        "INSERT INTO counters (name, value) VALUES (?1, 1)
         ON CONFLICT(name) DO UPDATE SET value = value + 1 RETURNING value",
        [name],
        |row| row.get(0),
    )
}

fn read(db: &Connection, name: &str) -> rusqlite::Result<i64> {
    db.query_row(
        "SELECT COALESCE((SELECT value FROM counters WHERE name = ?1), 0)",
        [name],
        |row| row.get(0),
    )
}

struct Request {
    method: String,
    path: String,
    query: String,
    close: bool,
}

fn read_request(reader: &mut BufReader<TcpStream>) -> Option<Request> {
    let mut line = String::new();
    if reader.read_line(&mut line).ok()? == 0 {
        return None;
    }
    let mut parts = line.split_whitespace();
    let method = parts.next()?.to_owned();
    let target = parts.next()?.to_owned();
    let http10 = parts.next() == Some("HTTP/1.0");
    let mut content_length = 0usize;
    let mut close = http10;
    loop {
        let mut header = String::new();
        if reader.read_line(&mut header).ok()? == 0 {
            return None;
        }
        let header = header.trim_end();
        if header.is_empty() {
            break;
        }
        let (name, value) = header.split_once(':')?;
        let value = value.trim();
        if name.eq_ignore_ascii_case("content-length") {
            content_length = value.parse().ok()?;
        } else if name.eq_ignore_ascii_case("connection") {
            close = value.eq_ignore_ascii_case("close");
        }
    }
    // The body is not used by any route; read it so keep-alive stays in sync.
    let mut body = vec![0; content_length];
    reader.read_exact(&mut body).ok()?;
    let (path, query) = match target.split_once('?') {
        Some((path, query)) => (path.to_owned(), query.to_owned()),
        None => (target, String::new()),
    };
    Some(Request {
        method,
        path,
        query,
        close,
    })
}

fn query_param<'q>(query: &'q str, name: &str) -> Option<&'q str> {
    query
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

fn handle_connection(app: &App, stream: TcpStream) -> std::io::Result<()> {
    stream.set_nodelay(true)?;
    let mut writer = stream.try_clone()?;
    let mut reader = BufReader::new(stream);
    while let Some(request) = read_request(&mut reader) {
        let (status, body) = route(app, &request);
        let reason = match status {
            200 => "OK",
            404 => "Not Found",
            405 => "Method Not Allowed",
            500 => "Internal Server Error",
            _ => "Service Unavailable",
        };
        let body = body.to_string();
        let connection = if request.close { "close" } else { "keep-alive" };
        // One write per answer: written in pieces, Nagle's algorithm would hold the last
        // piece back until the client's delayed ACK, 40 ms later.
        let answer = format!(
            "HTTP/1.1 {status} {reason}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: {connection}\r\nx-testapp-version: {}\r\n\r\n{body}",
            body.len(),
            app.version
        );
        writer.write_all(answer.as_bytes())?;
        if request.close {
            break;
        }
    }
    Ok(())
}

fn route(app: &App, request: &Request) -> (u16, serde_json::Value) {
    let db_error = |e: rusqlite::Error| (500, json!({ "error": e.to_string() }));
    match (request.method.as_str(), request.path.as_str()) {
        ("GET", "/api/health") => health(app),
        ("GET", "/api/version") => (
            200,
            json!({ "version": app.version, "behaviour": app.behaviour_text, "instance": app.instance }),
        ),
        ("GET", "/") => {
            let db = app.db.lock().unwrap_or_else(|e| e.into_inner());
            match (bump(&db, "hits"), read(&db, "boots"), read(&db, "counter")) {
                (Ok(hits), Ok(boots), Ok(counter)) => (
                    200,
                    json!({ "instance": app.instance, "version": app.version, "hits": hits, "boots": boots, "counter": counter }),
                ),
                (Err(e), _, _) | (_, Err(e), _) | (_, _, Err(e)) => db_error(e),
            }
        }
        (method @ ("GET" | "POST"), "/api/counter") => {
            let db = app.db.lock().unwrap_or_else(|e| e.into_inner());
            let value = if method == "POST" {
                bump(&db, "counter")
            } else {
                read(&db, "counter")
            };
            match value {
                Ok(value) => (200, json!({ "counter": value })),
                Err(e) => db_error(e),
            }
        }
        ("GET", "/api/writes") => {
            let db = app.db.lock().unwrap_or_else(|e| e.into_inner());
            match writes(&db) {
                Ok((count, max_id)) => (200, json!({ "count": count, "max_id": max_id })),
                Err(e) => db_error(e),
            }
        }
        ("GET", "/api/sleep") => {
            let ms = query_param(&request.query, "ms")
                .and_then(|ms| ms.parse().ok())
                .unwrap_or(0);
            std::thread::sleep(Duration::from_millis(ms));
            (200, json!({ "slept_ms": ms, "version": app.version }))
        }
        ("GET", "/api/env") => {
            let name = query_param(&request.query, "name").unwrap_or_default();
            (
                200,
                json!({ "name": name, "value": std::env::var(name).ok() }),
            )
        }
        (
            _,
            "/" | "/api/health" | "/api/version" | "/api/counter" | "/api/writes" | "/api/sleep"
            | "/api/env",
        ) => (405, json!({ "error": "method not allowed" })),
        _ => (404, json!({ "error": "not found" })),
    }
}

fn health(app: &App) -> (u16, serde_json::Value) {
    let request_number = app.health_requests.fetch_add(1, Ordering::SeqCst) + 1;
    let unhealthy = |status: &str, reason: String| {
        (
            503,
            json!({ "status": status, "checks": { "app": { "status": status, "reason": reason } }, "version": app.version }),
        )
    };
    match app.behaviour {
        Behaviour::NeverHealthy => {
            return unhealthy("unhealthy", "never healthy (test behaviour)".into());
        }
        Behaviour::SlowStart(secs) if app.started.elapsed() < Duration::from_secs(secs) => {
            return unhealthy("starting", format!("slow start: healthy after {secs}s"));
        }
        Behaviour::Flap if request_number.is_multiple_of(2) => {
            return unhealthy("unhealthy", "flapping (test behaviour)".into());
        }
        _ => {}
    }
    let db = app.db.lock().unwrap_or_else(|e| e.into_inner());
    match db.query_row("SELECT 1", [], |row| row.get::<_, i64>(0)) {
        Ok(_) => (
            200,
            json!({ "status": "healthy", "checks": { "database": { "status": "healthy" } }, "version": app.version }),
        ),
        Err(e) => unhealthy("unhealthy", format!("database: {e}")),
    }
}

/// `fleet-testapp dump PATH`: writes the counters and the number of rows in `writes`
/// to PATH as one JSON document (through a temporary file renamed into place, so PATH is
/// whole or absent) and says so on stdout. Exit status 0, or 1 with the error on stderr.
fn dump(path: Option<&str>) -> i32 {
    let Some(path) = path else {
        eprintln!("fleet-testapp: usage: fleet-testapp dump PATH");
        return 2;
    };
    match write_dump(path) {
        Ok((counters, writes)) => {
            println!("fleet-testapp: dumped {counters} counters and {writes} writes to {path}");
            0
        }
        Err(message) => {
            eprintln!("fleet-testapp: dump failed: {message}");
            1
        }
    }
}

/// Writes the dump to `path`; the number of counters and of writes it holds.
fn write_dump(path: &str) -> Result<(usize, i64), String> {
    let db_path = db_path();
    let fail = |e: rusqlite::Error| format!("cannot read database {}: {e}", db_path.display());
    // Never created here: a dump of a database that is not there is an error.
    let db = Connection::open_with_flags(&db_path, rusqlite::OpenFlags::SQLITE_OPEN_READ_WRITE)
        .map_err(fail)?;
    db.busy_timeout(Duration::from_secs(5)).map_err(fail)?;
    let counters = db
        .prepare("SELECT name, value FROM counters ORDER BY name")
        .and_then(|mut statement| {
            statement
                .query_map([], |row| {
                    Ok((row.get::<_, String>(0)?, json!(row.get::<_, i64>(1)?)))
                })?
                .collect::<rusqlite::Result<serde_json::Map<_, _>>>()
        })
        .map_err(fail)?;
    let (count, max_id) = writes(&db).map_err(fail)?;
    let counted = counters.len();
    let document = json!({
        "counters": counters,
        "writes": { "count": count, "max_id": max_id },
    });
    let temporary = format!("{path}.tmp");
    std::fs::write(&temporary, format!("{document}\n"))
        .and_then(|()| std::fs::rename(&temporary, path))
        .map_err(|e| format!("cannot write {path}: {e}"))?;
    Ok((counted, count))
}

/// Probes the local server; used as the image's `HEALTHCHECK` (a scratch image has no curl).
fn healthcheck() -> i32 {
    if std::env::var("TESTAPP_BEHAVIOUR").is_ok_and(|b| b == "docker-unhealthy") {
        return 1;
    }
    let probe = || -> std::io::Result<bool> {
        let mut stream = TcpStream::connect(("127.0.0.1", port()))?;
        stream.set_read_timeout(Some(Duration::from_secs(3)))?;
        stream.write_all(
            b"GET /api/health HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\n\r\n",
        )?;
        let mut response = String::new();
        stream.read_to_string(&mut response)?;
        Ok(response.starts_with("HTTP/1.1 200"))
    };
    match probe() {
        Ok(true) => 0,
        _ => 1,
    }
}

/// Docker sends SIGTERM to PID 1, which has no default handler in a container: exit at once.
fn install_sigterm_handler() {
    extern "C" fn on_sigterm(_: libc::c_int) {
        // SAFETY: `_exit` is async-signal-safe.
        unsafe { libc::_exit(0) }
    }
    // SAFETY: installs a handler that only calls an async-signal-safe function.
    unsafe {
        libc::signal(libc::SIGTERM, on_sigterm as *const () as libc::sighandler_t);
        libc::signal(libc::SIGINT, on_sigterm as *const () as libc::sighandler_t);
    }
}
