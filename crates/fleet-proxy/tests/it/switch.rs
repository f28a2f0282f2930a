//! Switching a route's backend under continuous load.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use fleet_proxy::ProxyConfig;

use crate::support::{Client, get, named, proxy, route};

const KEEP_ALIVE_CLIENTS: usize = 4;
const NEW_CONNECTION_CLIENTS: usize = 4;
const SWITCHES: usize = 8;

/// Counts of answers by body ("a" or "b").
type Seen = BTreeMap<String, usize>;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn switching_back_and_forth_under_load_fails_no_request_and_keeps_connections() {
    let a = named("a").await;
    let b = named("b").await;
    let (proxy, addr) = proxy(ProxyConfig::default(), a.addr).await;
    let stop = Arc::new(AtomicBool::new(false));

    // Keep-alive clients: one connection each for the whole test. Any error on it,
    // the connection breaking included, fails the test.
    let keep_alive: Vec<_> = (0..KEEP_ALIVE_CLIENTS)
        .map(|_| {
            let stop = Arc::clone(&stop);
            tokio::spawn(async move {
                let mut client = Client::connect(addr).await;
                let mut seen = Seen::new();
                while !stop.load(Ordering::Relaxed) {
                    let (status, body) = client
                        .get("/")
                        .await
                        .expect("the keep-alive connection broke");
                    assert_eq!(status, 200, "{body}");
                    *seen.entry(body).or_default() += 1;
                }
                seen
            })
        })
        .collect();
    // Clients that open a new connection per request.
    let new_connections: Vec<_> = (0..NEW_CONNECTION_CLIENTS)
        .map(|_| {
            let stop = Arc::clone(&stop);
            tokio::spawn(async move {
                let mut seen = Seen::new();
                while !stop.load(Ordering::Relaxed) {
                    let (status, body) = get(addr).await;
                    assert_eq!(status, 200, "{body}");
                    *seen.entry(body).or_default() += 1;
                }
                seen
            })
        })
        .collect();

    let mut drains = Vec::new();
    for i in 0..SWITCHES {
        tokio::time::sleep(Duration::from_millis(250)).await;
        let to = if i % 2 == 0 { b.addr } else { a.addr };
        let switch = proxy.routes().set_backend(&route("app"), to).unwrap();
        drains.push(tokio::spawn(switch.drained(Duration::from_secs(5))));
    }
    tokio::time::sleep(Duration::from_millis(250)).await;
    stop.store(true, Ordering::Relaxed);

    let mut total = Seen::new();
    for (i, client) in keep_alive.into_iter().enumerate() {
        let seen = client.await.expect("a keep-alive client failed");
        assert!(
            seen.len() == 2,
            "keep-alive client {i} should have reached both backends over one connection: {seen:?}"
        );
        for (body, n) in seen {
            *total.entry(body).or_default() += n;
        }
    }
    for client in new_connections {
        for (body, n) in client.await.expect("a new-connection client failed") {
            *total.entry(body).or_default() += n;
        }
    }
    assert_eq!(total.keys().collect::<Vec<_>>(), ["a", "b"], "{total:?}");
    for drain in drains {
        let report = drain.await.unwrap();
        assert!(report.is_clean(), "{report}");
    }
    assert_eq!(a.hits() + b.hits(), total.values().sum::<usize>());
}
