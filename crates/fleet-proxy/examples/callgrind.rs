//! A fixed load on fleet-proxy for counting its instructions per request:
//!
//! ```text
//! cargo build --release -p fleet-proxy --example callgrind
//! valgrind --tool=callgrind --separate-threads=yes \
//!     target/release/examples/callgrind [SECS] [CONNECTIONS]
//! ```
//!
//! The bench's backend (`Hello, world!`, keep-alive, a current-thread runtime on its own
//! thread) and fleet-proxy with `ProxyConfig::default()` on a current-thread runtime on
//! a thread named `fleet-proxy`, loaded by `wrk -t1 -c50 -dSECS` (5 s) as a child
//! process, which callgrind does not trace. At the end it prints the requests the
//! backend answered and fleet-proxy's CPU time (user, system) per request, from
//! `/proc`; with callgrind, divide the instructions of the `fleet-proxy` thread's
//! profile (the third thread: `callgrind.out.PID-03`, its `totals:` line) by that count.

// An example reports on stdout.
#![allow(clippy::print_stdout)]

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::Bytes;
use fleet_proxy::{Proxy, ProxyConfig, RouteRule};
use http_body_util::Full;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;

static REQUESTS: AtomicUsize = AtomicUsize::new(0);

fn main() {
    let mut args = std::env::args().skip(1);
    let secs: u64 = args.next().map_or(5, |s| s.parse().expect("seconds"));
    let connections: usize = args.next().map_or(50, |s| s.parse().expect("connections"));
    let backend = start_backend();
    let (tid_sender, tid_receiver) = std::sync::mpsc::channel();
    let (sender, receiver) = std::sync::mpsc::channel();
    std::thread::Builder::new()
        .name("fleet-proxy".to_owned())
        .spawn(move || {
            tid_sender.send(thread_id()).expect("main waits");
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a Tokio runtime");
            runtime.block_on(async move {
                let proxy = Proxy::new(ProxyConfig::default());
                let listener = proxy
                    .listen("127.0.0.1:0".parse().unwrap())
                    .await
                    .expect("fleet-proxy listens");
                let addr = listener.local_addr();
                proxy
                    .routes()
                    .insert(
                        "bench".parse().unwrap(),
                        RouteRule::port(addr.port()),
                        backend,
                    )
                    .expect("a route");
                sender.send(addr).expect("main waits");
                std::future::pending::<()>().await;
            });
        })
        .expect("a thread");
    let tid = &tid_receiver.recv().expect("the proxy's thread id");
    let addr = receiver.recv().expect("fleet-proxy started");
    let cpu_before = cpu(tid);
    let before = REQUESTS.load(Ordering::Relaxed);
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
    let requests = REQUESTS.load(Ordering::Relaxed) - before;
    let (user, system) = cpu(tid);
    let (user, system) = (user - cpu_before.0, system - cpu_before.1);
    println!(
        "requests {requests}  user {:.2} us/req  system {:.2} us/req  (fleet-proxy thread {tid})",
        user * 1e6 / requests as f64,
        system * 1e6 / requests as f64,
    );
    std::process::exit(0);
}

fn thread_id() -> String {
    std::fs::read_link("/proc/thread-self")
        .ok()
        .and_then(|path| Some(path.file_name()?.to_string_lossy().into_owned()))
        .unwrap_or_default()
}

/// User and system CPU seconds of one thread of this process.
fn cpu(tid: &str) -> (f64, f64) {
    let stat = std::fs::read_to_string(format!("/proc/self/task/{tid}/stat")).unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
            / 100.0
    };
    // After the command: state is field 0, utime 11, stime 12.
    (ticks(11), ticks(12))
}

fn start_backend() -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a loopback port");
    let addr = listener.local_addr().expect("the backend's address");
    listener
        .set_nonblocking(true)
        .expect("a non-blocking listener");
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a Tokio runtime");
        runtime.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).expect("a Tokio listener");
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let _ = stream.set_nodelay(true);
                tokio::spawn(async move {
                    let service = service_fn(|_: Request<hyper::body::Incoming>| async {
                        REQUESTS.fetch_add(1, Ordering::Relaxed);
                        Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(
                            b"Hello, world!\n",
                        ))))
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
    });
    addr
}
