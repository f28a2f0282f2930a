//! The header read timeout: a request head that never completes and an idle keep-alive
//! connection are closed; a connection waiting for a slow response is not.

use std::time::Duration;

use fleet_proxy::ProxyConfig;
use http::Response;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::support::{Client, backend, full, proxy};

const TIMEOUT: Duration = Duration::from_millis(200);

async fn start() -> (
    crate::support::Backend,
    std::net::SocketAddr,
    fleet_proxy::Proxy,
) {
    // `/slow` answers after four timeouts; anything else at once.
    let backend = backend(|request| async move {
        if request.uri().path() == "/slow" {
            tokio::time::sleep(TIMEOUT * 4).await;
        }
        Response::new(full("ok"))
    })
    .await;
    let config = ProxyConfig {
        header_read_timeout: TIMEOUT,
        ..ProxyConfig::default()
    };
    let (proxy, addr) = proxy(config, backend.addr).await;
    (backend, addr, proxy)
}

#[tokio::test]
async fn a_request_head_that_never_completes_is_cut_off() {
    let (backend, addr, _proxy) = start().await;
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream
        .write_all(b"GET / HTTP/1.1\r\nHost: app.te")
        .await
        .unwrap();
    let mut buf = [0; 256];
    let read = tokio::time::timeout(TIMEOUT * 10, stream.read(&mut buf)).await;
    assert!(
        matches!(read, Ok(Ok(0) | Err(_))),
        "the connection should be closed: {read:?}"
    );
    assert_eq!(backend.hits(), 0);
}

#[tokio::test]
async fn an_idle_keep_alive_connection_is_closed_and_a_slow_response_is_not() {
    let (_backend, addr, _proxy) = start().await;
    let mut client = Client::connect(addr).await;
    // A response taking four timeouts is not cut off: it is in flight.
    assert_eq!(client.get("/slow").await.unwrap().1, "ok");
    assert_eq!(client.get("/").await.unwrap().1, "ok");
    // Idle for longer than the timeout: closed.
    tokio::time::sleep(TIMEOUT * 3).await;
    assert!(
        client.get("/").await.is_err(),
        "the idle connection was kept open"
    );
}
