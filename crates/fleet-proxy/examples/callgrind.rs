//! A fixed load on fleet-proxy for counting its instructions per request:
//!
//! ```text
//! cargo build --release -p fleet-proxy --example callgrind
//! valgrind --tool=callgrind --separate-threads=yes \
//!     target/release/examples/callgrind [SECS] [CONNECTIONS]
//! ```
//!
//! The bench's backend (`Hello, world!`, keep-alive, a current-thread runtime on its own
//! thread; `benches/harness`, shared with the bench) and fleet-proxy with `ProxyConfig::default()` on a current-thread runtime on
//! a thread named `fleet-proxy`, loaded by `wrk -t1 -c50 -dSECS` (5 s) as a child
//! process, which callgrind does not trace. At the end it prints the requests the
//! backend answered and fleet-proxy's CPU time (user, system) per request, from
//! `/proc`; with callgrind, divide the instructions of the `fleet-proxy` thread's
//! profile (the third thread: `callgrind.out.PID-03`, its `totals:` line) by that count.

// An example reports on stdout.
#![allow(clippy::print_stdout)]

// The bench's harness; this example uses part of it.
#[allow(dead_code)]
#[path = "../benches/harness/mod.rs"]
mod harness;

use std::sync::atomic::Ordering;

use harness::{BACKEND_ANSWERED, fleet_cpu, start_backend, start_fleet_proxy};

fn main() {
    let mut args = std::env::args().skip(1);
    let secs: u64 = args.next().map_or(5, |s| s.parse().expect("seconds"));
    let connections: usize = args.next().map_or(50, |s| s.parse().expect("connections"));
    let backend = start_backend();
    // One thread: a current-thread runtime.
    let (addr, _proxy) = start_fleet_proxy(backend, 1);
    let cpu_before = fleet_cpu();
    let before = BACKEND_ANSWERED.load(Ordering::Relaxed);
    let status = std::process::Command::new("wrk")
        .args([
            "-t1",
            &format!("-c{connections}"),
            &format!("-d{secs}s"),
            &format!("http://{addr}/"),
        ])
        .stdout(std::process::Stdio::null())
        .status()
        .expect("wrk runs (apt-get install wrk)");
    assert!(status.success(), "wrk failed");
    let requests = BACKEND_ANSWERED.load(Ordering::Relaxed) - before;
    let cpu = fleet_cpu() - cpu_before;
    println!(
        "requests {requests}  user {:.2} us/req  system {:.2} us/req  (the fleet-proxy thread)",
        cpu.user.as_secs_f64() * 1e6 / requests as f64,
        cpu.system.as_secs_f64() * 1e6 / requests as f64,
    );
    std::process::exit(0);
}
