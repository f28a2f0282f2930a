//! Host-name routing: many routes on one port.

use fleet_proxy::{Proxy, ProxyConfig, RouteRule};
use http::Request;

use crate::support::{full, named, route, send};

async fn get_host(addr: std::net::SocketAddr, host: &str) -> (u16, String) {
    let request = Request::get("/")
        .header("host", host)
        .body(full(""))
        .unwrap();
    let (status, _, body) = send(addr, request).await;
    (status.as_u16(), body)
}

#[tokio::test]
async fn routes_on_one_port_are_chosen_by_host_and_an_unknown_host_gets_404_or_the_default() {
    let alice = named("alice").await;
    let bob = named("bob").await;
    let default = named("default").await;
    let proxy = Proxy::new(ProxyConfig::default());
    let listener = proxy.listen("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let addr = listener.local_addr();
    let port = addr.port();
    let routes = proxy.routes();
    routes
        .insert(
            route("alice"),
            RouteRule::host(port, "alice.example.lan".parse().unwrap()),
            alice.addr,
        )
        .unwrap();
    routes
        .insert(
            route("bob"),
            RouteRule::host(port, "bob.example.lan".parse().unwrap()),
            bob.addr,
        )
        .unwrap();

    assert_eq!(
        get_host(addr, "alice.example.lan").await,
        (200, "alice".to_owned())
    );
    assert_eq!(
        get_host(addr, &format!("Bob.Example.LAN:{port}")).await,
        (200, "bob".to_owned())
    );
    let (status, body) = get_host(addr, "carol.example.lan").await;
    assert_eq!(status, 404);
    assert!(body.contains("No application answers"), "{body}");

    routes
        .insert(route("default"), RouteRule::port(port), default.addr)
        .unwrap();
    assert_eq!(
        get_host(addr, "carol.example.lan").await,
        (200, "default".to_owned())
    );
    assert_eq!(
        get_host(addr, "alice.example.lan").await,
        (200, "alice".to_owned())
    );
    assert_eq!(routes.ports(), [port]);
}
