//! Requests in flight on the old backend finish after a switch; the drain waits for
//! them, up to its timeout.

use std::time::Duration;

use fleet_proxy::ProxyConfig;

use crate::support::{Gate, eventually, get, named, proxy, route};

#[tokio::test]
async fn requests_in_flight_finish_after_a_switch_and_the_drain_waits_for_them() {
    let old = Gate::start().await;
    let new = named("new").await;
    let (proxy, addr) = proxy(ProxyConfig::default(), old.backend.addr).await;
    let requests: Vec<_> = (0..3).map(|_| tokio::spawn(get(addr))).collect();
    eventually("three requests are in flight", || {
        proxy.routes().get(&route("app")).unwrap().stats.requests == 3
    })
    .await;

    let switch = proxy.routes().set_backend(&route("app"), new.addr).unwrap();
    assert_eq!(switch.stats().requests, 3);
    // New requests go to the new backend at once, while the old responses are open.
    assert_eq!(get(addr).await.1, "new");
    let drain = tokio::spawn(switch.drained(Duration::from_secs(10)));
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        !drain.is_finished(),
        "the drain returned while responses were in flight"
    );

    old.open();
    let report = drain.await.unwrap();
    assert!(report.is_clean(), "{report}");
    for request in requests {
        let (status, body) = request.await.unwrap();
        assert_eq!((status.as_u16(), body.as_str()), (200, "first;rest"));
    }
}

#[tokio::test]
async fn a_drain_shorter_than_a_request_reports_what_was_left() {
    let old = Gate::start().await;
    let new = named("new").await;
    let (proxy, addr) = proxy(ProxyConfig::default(), old.backend.addr).await;
    let requests: Vec<_> = (0..2).map(|_| tokio::spawn(get(addr))).collect();
    eventually("two requests are in flight", || {
        proxy.routes().get(&route("app")).unwrap().stats.requests == 2
    })
    .await;

    let switch = proxy.routes().set_backend(&route("app"), new.addr).unwrap();
    let report = switch.drained(Duration::from_millis(300)).await;
    assert_eq!(
        (report.in_flight_left, report.upgraded_closed),
        (2, 0),
        "{report}"
    );
    assert!(report.waited >= Duration::from_millis(300), "{report}");

    // The proxy does not cut them off: they finish when the backend does.
    old.open();
    for request in requests {
        let (status, body) = request.await.unwrap();
        assert_eq!((status.as_u16(), body.as_str()), (200, "first;rest"));
    }
}
