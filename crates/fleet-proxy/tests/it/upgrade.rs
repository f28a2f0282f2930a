//! Upgraded connections are proxied both ways, outlive a switch, and close at the
//! drain timeout.

use std::net::SocketAddr;
use std::time::Duration;

use fleet_proxy::ProxyConfig;
use http::{Response, StatusCode, header};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::support::{Backend, backend, full, proxy, route};

/// A backend that accepts `Upgrade: echo` and then echoes what it reads, prefixed
/// with its name.
async fn echo(name: &'static str) -> Backend {
    backend(move |mut request| async move {
        let on_upgrade = hyper::upgrade::on(&mut request);
        tokio::spawn(async move {
            let mut io = TokioIo::new(on_upgrade.await.unwrap());
            let mut buf = [0; 1024];
            loop {
                let n = io.read(&mut buf).await.unwrap_or(0);
                if n == 0 {
                    return;
                }
                let reply = [name.as_bytes(), b":", &buf[..n]].concat();
                if io.write_all(&reply).await.is_err() {
                    return;
                }
            }
        });
        let mut response = Response::new(full(""));
        *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
        response
            .headers_mut()
            .insert(header::UPGRADE, "echo".parse().unwrap());
        response
            .headers_mut()
            .insert(header::CONNECTION, "upgrade".parse().unwrap());
        response
    })
    .await
}

/// Opens an upgraded connection through the proxy.
async fn upgrade(addr: SocketAddr) -> TcpStream {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream
        .write_all(
            b"GET /ws HTTP/1.1\r\nHost: app.test\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n",
        )
        .await
        .unwrap();
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let mut byte = [0];
        assert_eq!(
            stream.read(&mut byte).await.unwrap(),
            1,
            "closed in the head: {head:?}"
        );
        head.push(byte[0]);
    }
    let head = String::from_utf8(head).unwrap().to_ascii_lowercase();
    assert!(head.starts_with("http/1.1 101"), "{head}");
    assert!(head.contains("upgrade: echo"), "{head}");
    stream
}

async fn exchange(stream: &mut TcpStream, message: &str) -> String {
    stream.write_all(message.as_bytes()).await.unwrap();
    let mut buf = [0; 1024];
    let n = stream.read(&mut buf).await.unwrap();
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

#[tokio::test]
async fn an_upgraded_connection_outlives_a_switch_and_closes_at_the_drain_timeout() {
    let a = echo("a").await;
    let b = echo("b").await;
    let (proxy, addr) = proxy(ProxyConfig::default(), a.addr).await;

    let mut old = upgrade(addr).await;
    assert_eq!(exchange(&mut old, "ping").await, "a:ping");
    assert_eq!(proxy.routes().get(&route("app")).unwrap().stats.upgraded, 1);

    let switch = proxy.routes().set_backend(&route("app"), b.addr).unwrap();
    // Still alive, still on the old backend; a new upgrade goes to the new one.
    assert_eq!(exchange(&mut old, "after").await, "a:after");
    let mut new = upgrade(addr).await;
    assert_eq!(exchange(&mut new, "ping").await, "b:ping");

    let report = switch.drained(Duration::from_millis(300)).await;
    assert_eq!(
        (report.in_flight_left, report.upgraded_closed),
        (0, 1),
        "{report}"
    );
    assert!(report.waited >= Duration::from_millis(300), "{report}");
    let mut buf = [0; 16];
    let read = tokio::time::timeout(Duration::from_secs(5), old.read(&mut buf)).await;
    assert!(
        matches!(read, Ok(Ok(0) | Err(_))),
        "the old upgraded connection should be closed: {read:?}"
    );
    // The new backend's upgraded connection is untouched.
    assert_eq!(exchange(&mut new, "still").await, "b:still");
}
