//! Request head and body limits.

use bytes::Bytes;
use fleet_proxy::ProxyConfig;
use http::Request;
use http_body_util::BodyExt;
use http_body_util::channel::Channel;

use crate::support::{BoxError, Client, full, named, proxy, send};

#[tokio::test]
async fn a_request_head_over_the_limit_is_answered_431() {
    let backend = named("app").await;
    let config = ProxyConfig {
        max_header_bytes: 8 * 1024,
        ..ProxyConfig::default()
    };
    let (_proxy, addr) = proxy(config, backend.addr).await;
    let request = Request::get("/")
        .header("host", "app.test")
        .header("x-big", "x".repeat(16 * 1024))
        .body(full(""))
        .unwrap();
    let (status, _, _) = send(addr, request).await;
    assert_eq!(status, 431);
    let request = Request::get("/")
        .header("host", "app.test")
        .header("x-small", "x".repeat(1024))
        .body(full(""))
        .unwrap();
    assert_eq!(send(addr, request).await.0, 200);
    assert_eq!(backend.hits(), 1);
}

#[tokio::test]
async fn a_body_over_the_limit_is_answered_413() {
    let backend = crate::support::backend(|request| async move {
        let body = request.into_body().collect().await;
        http::Response::new(full(
            body.map_or(0, |body| body.to_bytes().len()).to_string(),
        ))
    })
    .await;
    let config = ProxyConfig {
        max_body_bytes: Some(1024),
        ..ProxyConfig::default()
    };
    let (_proxy, addr) = proxy(config, backend.addr).await;

    // Declared too large: refused before the backend sees anything.
    let request = Request::post("/")
        .header("host", "app.test")
        .body(full(vec![0; 2048]))
        .unwrap();
    let (status, _, body) = send(addr, request).await;
    assert_eq!(status, 413, "{body}");
    assert_eq!(backend.hits(), 0);

    // Chunked, growing past the limit on the way.
    let (mut sender, body) = Channel::<Bytes, BoxError>::new(4);
    let request = Request::post("/")
        .header("host", "app.test")
        .body(body.boxed())
        .unwrap();
    let mut client = Client::connect(addr).await;
    let response = tokio::spawn(async move { client.send(request).await.unwrap().status() });
    for _ in 0..4 {
        if sender.send_data(Bytes::from(vec![0; 512])).await.is_err() {
            break;
        }
    }
    drop(sender);
    assert_eq!(response.await.unwrap(), 413);

    // Within the limit.
    let request = Request::post("/")
        .header("host", "app.test")
        .body(full(vec![0; 1024]))
        .unwrap();
    let (status, _, body) = send(addr, request).await;
    assert_eq!((status.as_u16(), body.as_str()), (200, "1024"));
}
