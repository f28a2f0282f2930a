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

#[tokio::test]
async fn responses_without_a_body_give_their_connection_back() {
    let backend = crate::support::backend(|request| async move {
        let status = if request.uri().path() == "/empty" {
            204
        } else {
            200
        };
        http::Response::builder()
            .status(status)
            .header("content-length", if status == 204 { "0" } else { "5" })
            .body(crate::support::full(if status == 204 {
                ""
            } else {
                "hello"
            }))
            .unwrap()
    })
    .await;
    let (_proxy, addr) = proxy(ProxyConfig::default(), backend.addr).await;
    let mut client = Client::connect(addr).await;
    for (method, path, status, body) in [
        ("HEAD", "/", 200, ""),
        ("GET", "/empty", 204, ""),
        ("HEAD", "/", 200, ""),
        ("GET", "/", 200, "hello"),
    ] {
        let request = http::Request::builder()
            .method(method)
            .uri(path)
            .header("host", "app.test")
            .body(crate::support::full(""))
            .unwrap();
        let response = tokio::time::timeout(Duration::from_secs(5), client.send(request))
            .await
            .expect("the proxy did not answer")
            .unwrap();
        assert_eq!(response.status(), status, "{method} {path}");
        let got = http_body_util::BodyExt::collect(response.into_body())
            .await
            .unwrap()
            .to_bytes();
        assert_eq!(got, body, "{method} {path}");
    }
    // One upstream connection served all four.
    assert_eq!(backend.accepted(), 1);
}
