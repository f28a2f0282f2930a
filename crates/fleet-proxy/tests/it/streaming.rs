//! Bodies stream through the proxy both ways: neither end waits for the other's
//! whole body.

use std::time::Duration;

use bytes::Bytes;
use fleet_proxy::ProxyConfig;
use http::{Request, Response};
use http_body_util::BodyExt;
use http_body_util::channel::Channel;
use tokio::sync::mpsc;

use crate::support::{BoxError, Client, backend, full, proxy};

const CHUNK: usize = 64 * 1024;
const CHUNKS: usize = 160; // 10 MiB

#[tokio::test]
async fn a_large_upload_reaches_the_backend_while_the_client_is_still_sending() {
    let (first_seen, mut first_seen_rx) = mpsc::channel::<usize>(1);
    let backend = backend(move |request| {
        let first_seen = first_seen.clone();
        async move {
            let mut body = request.into_body();
            let mut total = 0;
            while let Some(frame) = body.frame().await {
                if let Some(data) = frame.unwrap().data_ref() {
                    if total == 0 {
                        first_seen.send(data.len()).await.unwrap();
                    }
                    total += data.len();
                }
            }
            Response::new(full(total.to_string()))
        }
    })
    .await;
    let (_proxy, addr) = proxy(ProxyConfig::default(), backend.addr).await;

    let (mut sender, body) = Channel::<Bytes, BoxError>::new(1);
    let request = Request::post("/upload")
        .header("host", "app.test")
        .body(body.boxed())
        .unwrap();
    let mut client = Client::connect(addr).await;
    let response = tokio::spawn(async move { client.send(request).await.unwrap() });
    sender
        .send_data(Bytes::from(vec![b'u'; CHUNK]))
        .await
        .unwrap();
    // The rest is sent only once the backend has read the start: a proxy that
    // buffered the upload would never pass this.
    let first = tokio::time::timeout(Duration::from_secs(5), first_seen_rx.recv())
        .await
        .expect("the backend saw nothing of the upload before its end");
    assert!(first.unwrap() > 0);
    for _ in 1..CHUNKS {
        sender
            .send_data(Bytes::from(vec![b'u'; CHUNK]))
            .await
            .unwrap();
    }
    drop(sender);
    let response = response.await.unwrap();
    assert_eq!(response.status(), 200);
    let body = response.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(body, (CHUNK * CHUNKS).to_string());
}

#[tokio::test]
async fn a_large_download_reaches_the_client_while_the_backend_is_still_sending() {
    let (go, go_rx) = mpsc::channel::<()>(1);
    let go_rx = std::sync::Arc::new(tokio::sync::Mutex::new(go_rx));
    let backend = backend(move |_| {
        let go_rx = std::sync::Arc::clone(&go_rx);
        async move {
            let (mut sender, body) = Channel::<Bytes, BoxError>::new(1);
            tokio::spawn(async move {
                sender
                    .send_data(Bytes::from(vec![b'd'; CHUNK]))
                    .await
                    .unwrap();
                // The rest only once the client has the start.
                go_rx.lock().await.recv().await;
                for _ in 1..CHUNKS {
                    sender
                        .send_data(Bytes::from(vec![b'd'; CHUNK]))
                        .await
                        .unwrap();
                }
            });
            Response::new(body.boxed())
        }
    })
    .await;
    let (_proxy, addr) = proxy(ProxyConfig::default(), backend.addr).await;

    let mut client = Client::connect(addr).await;
    let request = Request::get("/download")
        .header("host", "app.test")
        .body(full(""))
        .unwrap();
    let mut body = client.send(request).await.unwrap().into_body();
    let first = tokio::time::timeout(Duration::from_secs(5), body.frame())
        .await
        .expect("the client got nothing of the download before its end");
    let mut total = first.unwrap().unwrap().into_data().unwrap().len();
    go.send(()).await.unwrap();
    while let Some(frame) = body.frame().await {
        total += frame.unwrap().into_data().map_or(0, |data| data.len());
    }
    assert_eq!(total, CHUNK * CHUNKS);
}
