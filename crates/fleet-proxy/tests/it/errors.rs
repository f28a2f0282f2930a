//! A failing backend: 502 and 504 pages, and the one retry of a refused idempotent
//! request.

use std::time::Duration;

use fleet_proxy::ProxyConfig;
use http::{Request, Response};

use crate::support::{backend, dead_addr, eventually, full, get, named, proxy, route, send};

fn config() -> ProxyConfig {
    ProxyConfig {
        retry_delay: Duration::from_millis(300),
        ..ProxyConfig::default()
    }
}

#[tokio::test]
async fn a_backend_that_is_down_gives_a_502_page_naming_the_route() {
    let (_proxy, addr) = proxy(config(), dead_addr().await).await;
    let request = Request::get("/")
        .header("host", "app.test")
        .body(full(""))
        .unwrap();
    let (status, headers, body) = send(addr, request).await;
    assert_eq!(status, 502);
    assert_eq!(headers["content-type"], "text/html; charset=utf-8");
    assert!(body.contains("<title>502 Bad Gateway</title>"), "{body}");
    assert!(
        body.contains("<b>app</b> is not answering (connection refused)"),
        "{body}"
    );
}

#[tokio::test]
async fn a_backend_that_answers_too_late_gives_a_504_page() {
    let slow = backend(|_| async {
        tokio::time::sleep(Duration::from_secs(5)).await;
        Response::new(full("late"))
    })
    .await;
    let config = ProxyConfig {
        response_timeout: Duration::from_millis(200),
        ..config()
    };
    let (_proxy, addr) = proxy(config, slow.addr).await;
    let (status, body) = get(addr).await;
    assert_eq!(status, 504);
    assert!(body.contains("<b>app</b> did not answer in time"), "{body}");
}

#[tokio::test]
async fn a_refused_get_is_retried_once_on_the_route_as_it_is_then() {
    let up = named("up").await;
    let (proxy, addr) = proxy(config(), dead_addr().await).await;
    let request = tokio::spawn(get(addr));
    // The GET has reached the dead backend (and is refused at once); within the retry
    // delay, the route moves to a backend that is up.
    eventually("the GET reached the dead backend", || {
        proxy.routes().get(&route("app")).unwrap().stats.served == 1
    })
    .await;
    let _switch = proxy.routes().set_backend(&route("app"), up.addr).unwrap();
    assert_eq!(
        request.await.unwrap(),
        (http::StatusCode::OK, "up".to_owned())
    );
    assert_eq!(up.hits(), 1);
}

#[tokio::test]
async fn a_refused_get_is_retried_on_a_backend_started_in_between() {
    let dead = dead_addr().await;
    let (proxy, addr) = proxy(config(), dead).await;
    let request = tokio::spawn(get(addr));
    eventually("the GET reached the dead backend", || {
        proxy.routes().get(&route("app")).unwrap().stats.served == 1
    })
    .await;
    let listener = tokio::net::TcpListener::bind(dead).await.unwrap();
    let started =
        crate::support::backend_on(listener, |_| async { Response::new(full("started")) });
    assert_eq!(
        request.await.unwrap(),
        (http::StatusCode::OK, "started".to_owned())
    );
    assert_eq!(started.hits(), 1);
}

#[tokio::test]
async fn a_refused_post_is_not_retried() {
    let up = named("up").await;
    let (proxy, addr) = proxy(config(), dead_addr().await).await;
    let request = Request::post("/")
        .header("host", "app.test")
        .body(full("once"))
        .unwrap();
    let request = tokio::spawn(send(addr, request));
    eventually("the POST reached the dead backend", || {
        proxy.routes().get(&route("app")).unwrap().stats.served == 1
    })
    .await;
    let _switch = proxy.routes().set_backend(&route("app"), up.addr).unwrap();
    let (status, _, body) = request.await.unwrap();
    assert_eq!(status, 502, "{body}");
    assert_eq!(up.hits(), 0);
}
