//! Closing a listener: no new connections, requests in flight finish.

use std::time::Duration;

use fleet_proxy::ProxyConfig;

use crate::support::{Client, Gate, eventually, get, proxy, route};

#[tokio::test]
async fn a_shutdown_lets_requests_in_flight_finish_and_refuses_new_connections() {
    let backend = Gate::start().await;
    let (proxy, addr) = proxy(ProxyConfig::default(), backend.backend.addr).await;
    // An idle keep-alive connection must not hold the shutdown up.
    let _idle = Client::connect(addr).await;
    let request = tokio::spawn(get(addr));
    eventually("a request is in flight", || {
        proxy.routes().get(&route("app")).unwrap().stats.requests == 1
    })
    .await;

    let shutdown = tokio::spawn({
        let proxy = proxy.clone();
        async move { proxy.shutdown(Duration::from_secs(10)).await }
    });
    eventually("the listener is closed", || proxy.listeners().is_empty()).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(
        tokio::net::TcpStream::connect(addr).await.is_err(),
        "a new connection was accepted after the shutdown began"
    );
    assert!(
        !shutdown.is_finished(),
        "the shutdown did not wait for the request in flight"
    );

    backend.open();
    let report = shutdown.await.unwrap();
    assert_eq!(
        (report.connections_closed, report.upgraded_closed),
        (0, 0),
        "{report:?}"
    );
    let (status, body) = request.await.unwrap();
    assert_eq!((status.as_u16(), body.as_str()), (200, "first;rest"));
}
