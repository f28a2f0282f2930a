//! What `cargo xtask bench proxy` (`benches/proxy.rs`) and the callgrind harness
//! (`examples/callgrind.rs`, which includes this file by path) both run: the backend,
//! fleet-proxy in front of it on threads named `fleet-proxy`, and the CPU time read from
//! `/proc`.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use fleet_proxy::{Proxy, ProxyConfig, RouteRule};
use http_body_util::Full;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;

/// Connections the backend has accepted: how often a proxy opened a new upstream one.
pub(crate) static BACKEND_ACCEPTED: AtomicUsize = AtomicUsize::new(0);
/// Requests the backend has answered.
pub(crate) static BACKEND_ANSWERED: AtomicUsize = AtomicUsize::new(0);

/// The backend the proxies forward to (`Hello, world!`, keep-alive), on a
/// current-thread runtime of its own.
pub(crate) fn start_backend() -> SocketAddr {
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
                BACKEND_ACCEPTED.fetch_add(1, Ordering::Relaxed);
                tokio::spawn(async move {
                    let service = service_fn(|_: Request<hyper::body::Incoming>| async {
                        BACKEND_ANSWERED.fetch_add(1, Ordering::Relaxed);
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

/// fleet-proxy in front of the backend, on a runtime of its own.
pub(crate) fn start_fleet_proxy(backend: SocketAddr, threads: usize) -> (SocketAddr, Proxy) {
    let (sender, receiver) = std::sync::mpsc::channel();
    spawn_named("fleet-proxy", move || {
        let runtime = if threads == 1 {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
        } else {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(threads)
                .thread_name("fleet-proxy")
                .enable_all()
                .build()
        }
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
            sender
                .send((addr, proxy.clone()))
                .expect("the main thread waits");
            std::future::pending::<()>().await;
        });
    });
    receiver.recv().expect("fleet-proxy started")
}

/// A thread named for what it runs, so a profiler can tell them apart.
pub(crate) fn spawn_named(name: &str, run: impl FnOnce() + Send + 'static) {
    std::thread::Builder::new()
        .name(name.to_owned())
        .spawn(run)
        .expect("a thread");
}

/// The CPU time the threads of this process running fleet-proxy have used.
pub(crate) fn fleet_cpu() -> Cpu {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return Cpu::default();
    };
    tasks
        .filter_map(Result::ok)
        .filter(|task| {
            std::fs::read_to_string(task.path().join("comm"))
                .is_ok_and(|comm| comm.trim() == "fleet-proxy")
        })
        .map(|task| cpu_time(&task.path().join("stat").to_string_lossy()))
        .fold(Cpu::default(), Cpu::add)
}

/// CPU time used, in user space and in the kernel.
#[derive(Clone, Copy, Default)]
pub(crate) struct Cpu {
    pub(crate) user: Duration,
    pub(crate) system: Duration,
}

impl Cpu {
    pub(crate) fn add(self, other: Self) -> Self {
        Self {
            user: self.user + other.user,
            system: self.system + other.system,
        }
    }

    pub(crate) fn total(self) -> Duration {
        self.user + self.system
    }
}

impl std::ops::Sub for Cpu {
    type Output = Self;

    fn sub(self, before: Self) -> Self {
        Self {
            user: self.user.saturating_sub(before.user),
            system: self.system.saturating_sub(before.system),
        }
    }
}

/// User and system time from a `/proc/.../stat` file (fields 14 and 15, in clock ticks
/// of 1/100 s, the `USER_HZ` of Linux on every architecture it runs on here).
pub(crate) fn cpu_time(stat: &str) -> Cpu {
    let Ok(text) = std::fs::read_to_string(stat) else {
        return Cpu::default();
    };
    // The command name, in parentheses, may hold spaces: count fields after it.
    let Some((_, rest)) = text.rsplit_once(')') else {
        return Cpu::default();
    };
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| {
        let ticks = fields
            .get(i)
            .and_then(|field| field.parse::<u64>().ok())
            .unwrap_or(0);
        Duration::from_millis(ticks * 10)
    };
    Cpu {
        user: ticks(11),
        system: ticks(12),
    }
}
