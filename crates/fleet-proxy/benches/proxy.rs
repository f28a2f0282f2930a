//! `cargo xtask bench proxy`: fleet-proxy against nginx as a reverse proxy to the same
//! backend, measured with wrk on loopback, side by side in one run.
//!
//! Starts a small hyper backend (`Hello, world!`, keep-alive) on its own thread, then
//! fleet-proxy on a thread of its own (a current-thread Tokio runtime: one core, as
//! nginx's one worker), and nginx (`worker_processes 1`, an upstream with `keepalive`,
//! `proxy_http_version 1.1`, the same `X-Forwarded-*` headers fleet-proxy sets, access
//! log off), both in front of that backend. Then wrk runs against each in turn, with the
//! same threads, connections and duration, for several alternating rounds after a
//! warm-up, and the medians of requests/s and p50/p99 latency are printed with the
//! ratios fleet-proxy/nginx (goal: ≥ 1.0 on throughput, ≤ 1.0 on p99).
//!
//! nginx and wrk are Debian packages; the benchmark installs nothing and fails with a
//! message naming `apt-get install nginx wrk` when either is missing.
//!
//! Options (after `--`): `--duration SECS` (5), `--connections N` (50), `--threads N`
//! (1, wrk's), `--rounds N` (5), `--fleet-threads N` (1: fleet-proxy's Tokio worker
//! threads; 1 means a current-thread runtime).

// A benchmark reports on stdout and stderr.
#![allow(clippy::print_stdout, clippy::print_stderr)]

mod harness;

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::atomic::Ordering;
use std::time::Duration;

use harness::{BACKEND_ACCEPTED, Cpu, cpu_time, fleet_cpu, start_backend, start_fleet_proxy};

struct Options {
    duration: u64,
    connections: usize,
    threads: usize,
    rounds: usize,
    fleet_threads: usize,
}

/// What wrk measured in one run.
#[derive(Clone, Copy)]
struct Run {
    requests_per_sec: f64,
    requests: f64,
    /// CPU time (user + system) the proxy spent per request, in microseconds.
    cpu_us_per_request: f64,
    /// The user-space part of it.
    user_us_per_request: f64,
    p50_us: f64,
    p99_us: f64,
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("bench proxy: error: {error}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<(), String> {
    let options = options()?;
    for tool in ["nginx", "wrk"] {
        if !on_path(tool) {
            return Err(format!(
                "`{tool}` is not installed; install both with `apt-get install nginx wrk`"
            ));
        }
    }
    let backend = start_backend();
    let (fleet, proxy) = start_fleet_proxy(backend, options.fleet_threads);
    let dir = tempfile::tempdir().map_err(|e| format!("cannot make a temporary directory: {e}"))?;
    let nginx_port = free_port();
    let nginx = Nginx::start(dir.path(), backend, nginx_port)?;
    let nginx_addr = SocketAddr::from(([127, 0, 0, 1], nginx_port));
    wait_until_serving(fleet)?;
    wait_until_serving(nginx_addr)?;

    println!(
        "fleet-proxy vs nginx {}: wrk -t{} -c{} -d{}s, {} alternating rounds after a warm-up; \
         fleet-proxy on {}, nginx with 1 worker; medians",
        nginx.version(),
        options.threads,
        options.connections,
        options.duration,
        options.rounds,
        if options.fleet_threads == 1 {
            "a current-thread runtime".to_owned()
        } else {
            format!("{} Tokio worker threads", options.fleet_threads)
        },
    );
    println!();
    for addr in [fleet, nginx_addr] {
        wrk(addr, &options, 1)?;
    }
    let mut fleet_runs = Vec::new();
    let mut nginx_runs = Vec::new();
    for round in 0..options.rounds {
        // Alternate which goes first, so neither always runs on a warmer machine.
        let order = if round.is_multiple_of(2) {
            [true, false]
        } else {
            [false, true]
        };
        for is_fleet in order {
            let addr = if is_fleet { fleet } else { nginx_addr };
            let cpu_before = if is_fleet { fleet_cpu() } else { nginx.cpu() };
            let accepted_before = BACKEND_ACCEPTED.load(Ordering::Relaxed);
            let mut run = wrk(addr, &options, options.duration)?;
            let cpu = if is_fleet { fleet_cpu() } else { nginx.cpu() } - cpu_before;
            run.cpu_us_per_request = cpu.total().as_secs_f64() * 1e6 / run.requests;
            run.user_us_per_request = cpu.user.as_secs_f64() * 1e6 / run.requests;
            let opened = BACKEND_ACCEPTED.load(Ordering::Relaxed) - accepted_before;
            let name = if is_fleet { "fleet-proxy" } else { "nginx" };
            println!(
                "round {}  {name:<11}  {:>9.0} req/s   p50 {:>7.0} us   p99 {:>7.0} us   \
                 cpu {:>5.1} us/req (user {:>4.1})   {opened:>4} upstream connections opened",
                round + 1,
                run.requests_per_sec,
                run.p50_us,
                run.p99_us,
                run.cpu_us_per_request,
                run.user_us_per_request,
            );
            if is_fleet {
                fleet_runs.push(run);
            } else {
                nginx_runs.push(run);
            }
        }
    }
    drop(nginx);
    let pooled = proxy
        .routes()
        .list()
        .first()
        .map_or(0, |route| route.stats.connections);

    let fleet = medians(&fleet_runs);
    let nginx = medians(&nginx_runs);
    println!();
    for (name, run, runs) in [
        ("fleet-proxy", fleet, &fleet_runs),
        ("nginx", nginx, &nginx_runs),
    ] {
        let (low, high) = spread(runs.iter().map(|run| run.requests_per_sec));
        println!(
            "{name:<11}  {:>9.0} req/s (runs {low:.0}-{high:.0})   p50 {:>7.0} us   p99 {:>7.0} us   \
             cpu {:>5.1} us/req (user {:>4.1})",
            run.requests_per_sec,
            run.p50_us,
            run.p99_us,
            run.cpu_us_per_request,
            run.user_us_per_request
        );
    }
    println!(
        "fleet-proxy's upstream connections open at the end: {pooled} (wrk has {})",
        options.connections
    );
    println!(
        "fleet-proxy/nginx: throughput {:.2}x (goal >= 1.0), p50 {:.2}x, p99 {:.2}x (goal <= 1.0)",
        fleet.requests_per_sec / nginx.requests_per_sec,
        fleet.p50_us / nginx.p50_us,
        fleet.p99_us / nginx.p99_us,
    );
    println!(
        "fleet-proxy/nginx: CPU per request {:.2}x (user {:.2}x)",
        fleet.cpu_us_per_request / nginx.cpu_us_per_request,
        fleet.user_us_per_request / nginx.user_us_per_request
    );
    Ok(())
}

fn options() -> Result<Options, String> {
    let mut options = Options {
        duration: 5,
        connections: 50,
        threads: 1,
        rounds: 5,
        fleet_threads: 1,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        // cargo bench passes `--bench`, and `cargo xtask bench proxy -- ...` a `--`.
        if arg == "--bench" || arg == "--" {
            continue;
        }
        let value = args.next().ok_or_else(|| format!("{arg} needs a value"))?;
        let number = || {
            value
                .parse::<usize>()
                .ok()
                .filter(|n| *n > 0)
                .ok_or_else(|| format!("{arg}: not a positive number: {value}"))
        };
        match arg.as_str() {
            "--duration" => options.duration = number()? as u64,
            "--connections" => options.connections = number()?,
            "--threads" => options.threads = number()?,
            "--rounds" => options.rounds = number()?,
            "--fleet-threads" => options.fleet_threads = number()?,
            _ => return Err(format!("unknown option {arg}")),
        }
    }
    Ok(options)
}

fn on_path(tool: &str) -> bool {
    std::env::var_os("PATH").is_some_and(|path| {
        std::env::split_paths(&path).any(|dir| dir.join(tool).is_file())
            || Path::new("/usr/sbin").join(tool).is_file()
    })
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .expect("a free loopback port")
}

/// nginx as a reverse proxy, configured as an operator would for keep-alive upstreams.
struct Nginx {
    child: Child,
}

impl Nginx {
    fn start(dir: &Path, backend: SocketAddr, port: u16) -> Result<Self, String> {
        let d = dir.display();
        let config = format!(
            "worker_processes 1;
daemon off;
pid {d}/nginx.pid;
error_log {d}/error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    client_body_temp_path {d}/client_body;
    proxy_temp_path {d}/proxy;
    fastcgi_temp_path {d}/fastcgi;
    uwsgi_temp_path {d}/uwsgi;
    scgi_temp_path {d}/scgi;
    upstream backend {{
        server {backend};
        keepalive 128;
    }}
    server {{
        listen 127.0.0.1:{port};
        location / {{
            proxy_pass http://backend;
            proxy_http_version 1.1;
            proxy_set_header Connection \"\";
            proxy_set_header Host $http_host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto $scheme;
            proxy_set_header X-Forwarded-Host $http_host;
        }}
    }}
}}
"
        );
        let config_path = dir.join("nginx.conf");
        std::fs::write(&config_path, config)
            .map_err(|e| format!("cannot write nginx.conf: {e}"))?;
        let child = Command::new("nginx")
            .arg("-p")
            .arg(dir)
            .arg("-e")
            .arg(dir.join("error.log"))
            .arg("-c")
            .arg(&config_path)
            .stdin(Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot start nginx: {e}"))?;
        Ok(Self { child })
    }

    /// The CPU time nginx's processes (master and worker) have used.
    fn cpu(&self) -> Cpu {
        let master = self.child.id();
        let children = std::fs::read_to_string(format!("/proc/{master}/task/{master}/children"))
            .unwrap_or_default();
        std::iter::once(master.to_string())
            .chain(children.split_whitespace().map(str::to_owned))
            .map(|pid| cpu_time(&format!("/proc/{pid}/stat")))
            .fold(Cpu::default(), Cpu::add)
    }

    fn version(&self) -> String {
        Command::new("nginx")
            .arg("-v")
            .output()
            .ok()
            .map(|output| String::from_utf8_lossy(&output.stderr).trim().to_owned())
            .and_then(|text| text.rsplit('/').next().map(str::to_owned))
            .unwrap_or_default()
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        // SIGTERM, so the master takes its worker down with it.
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let _ = self.child.wait();
    }
}

fn wait_until_serving(addr: SocketAddr) -> Result<(), String> {
    for _ in 0..100 {
        if std::net::TcpStream::connect(addr).is_ok() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Err(format!("nothing answers on {addr}"))
}

fn wrk(addr: SocketAddr, options: &Options, seconds: u64) -> Result<Run, String> {
    let output = Command::new("wrk")
        .arg(format!("-t{}", options.threads))
        .arg(format!("-c{}", options.connections))
        .arg(format!("-d{seconds}s"))
        .arg("--latency")
        .arg(format!("http://{addr}/"))
        .output()
        .map_err(|e| format!("cannot run wrk: {e}"))?;
    let text = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        return Err(format!(
            "wrk failed: {text}{}",
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    if text.contains("Non-2xx") || text.contains("Socket errors") {
        return Err(format!("wrk saw errors against {addr}:\n{text}"));
    }
    parse_wrk(&text).ok_or_else(|| format!("cannot read wrk's output:\n{text}"))
}

fn parse_wrk(text: &str) -> Option<Run> {
    let mut requests_per_sec = None;
    let mut requests = None;
    let mut p50_us = None;
    let mut p99_us = None;
    for line in text.lines() {
        let mut words = line.split_whitespace();
        match (words.next(), words.next()) {
            (Some("Requests/sec:"), Some(value)) => requests_per_sec = value.parse().ok(),
            (Some("50%"), Some(value)) => p50_us = micros(value),
            (Some("99%"), Some(value)) => p99_us = micros(value),
            (Some(count), Some("requests")) => requests = count.parse().ok(),
            _ => {}
        }
    }
    Some(Run {
        requests_per_sec: requests_per_sec?,
        requests: requests?,
        cpu_us_per_request: 0.0,
        user_us_per_request: 0.0,
        p50_us: p50_us?,
        p99_us: p99_us?,
    })
}

/// wrk's `290.00us`, `1.23ms`, `2.00s` in microseconds.
fn micros(value: &str) -> Option<f64> {
    let (number, scale) = if let Some(number) = value.strip_suffix("us") {
        (number, 1.0)
    } else if let Some(number) = value.strip_suffix("ms") {
        (number, 1e3)
    } else if let Some(number) = value.strip_suffix('s') {
        (number, 1e6)
    } else {
        return None;
    };
    number.parse::<f64>().ok().map(|n| n * scale)
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    let middle = values.len() / 2;
    if values.len().is_multiple_of(2) {
        (values[middle - 1] + values[middle]) / 2.0
    } else {
        values[middle]
    }
}

fn medians(runs: &[Run]) -> Run {
    Run {
        requests_per_sec: median(runs.iter().map(|run| run.requests_per_sec).collect()),
        p50_us: median(runs.iter().map(|run| run.p50_us).collect()),
        p99_us: median(runs.iter().map(|run| run.p99_us).collect()),
        requests: median(runs.iter().map(|run| run.requests).collect()),
        cpu_us_per_request: median(runs.iter().map(|run| run.cpu_us_per_request).collect()),
        user_us_per_request: median(runs.iter().map(|run| run.user_us_per_request).collect()),
    }
}

fn spread(values: impl Iterator<Item = f64>) -> (f64, f64) {
    values.fold((f64::MAX, f64::MIN), |(low, high), value| {
        (low.min(value), high.max(value))
    })
}
