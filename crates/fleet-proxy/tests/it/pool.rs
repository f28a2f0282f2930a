//! Upstream connections are kept alive and reused, and close with their backend after a
//! switch.

use std::time::Duration;

use fleet_proxy::ProxyConfig;

use crate::support::{Client, eventually, named, proxy, route};

#[tokio::test]
async fn upstream_connections_are_reused_and_close_after_the_drain() {
    let a = named("a").await;
    let b = named("b").await;
    let (proxy, addr) = proxy(ProxyConfig::default(), a.addr).await;
    let mut client = Client::connect(addr).await;
    for _ in 0..20 {
        assert_eq!(client.get("/").await.unwrap().1, "a");
    }
    // Twenty requests, one after the other, over one upstream connection.
    assert_eq!(a.accepted(), 1);
    assert_eq!(
        proxy.routes().get(&route("app")).unwrap().stats.connections,
        1
    );

    let switch = proxy.routes().set_backend(&route("app"), b.addr).unwrap();
    assert_eq!(client.get("/").await.unwrap().1, "b");
    let report = switch.drained(Duration::from_secs(5)).await;
    assert!(report.is_clean(), "{report}");
    // The old backend's pool went with it: its idle connection is closed.
    eventually("the old backend's connections are closed", || a.open() == 0).await;
    assert_eq!(b.accepted(), 1);
}
