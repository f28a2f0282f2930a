//! X-Forwarded-* set, hop-by-hop headers stripped both ways.

use fleet_proxy::ProxyConfig;
use http::{Request, Response};

use crate::support::{backend, full, proxy, send};

#[tokio::test]
async fn forwarded_headers_are_set_and_hop_by_hop_headers_are_stripped_both_ways() {
    // The backend answers with the headers it got, one `name: value` per line, and
    // with hop-by-hop headers of its own.
    let backend = backend(|request| async move {
        let mut lines: Vec<String> = request
            .headers()
            .iter()
            .map(|(name, value)| format!("{name}: {}", value.to_str().unwrap()))
            .collect();
        lines.sort();
        Response::builder()
            .header("connection", "x-secret-reply")
            .header("x-secret-reply", "1")
            .header("keep-alive", "timeout=5")
            .header("proxy-authenticate", "Basic")
            .header("trailer", "x-checksum")
            .header("upgrade", "h2c")
            .header("x-kept-reply", "yes")
            .body(full(lines.join("\n")))
            .unwrap()
    })
    .await;
    let (_proxy, addr) = proxy(ProxyConfig::default(), backend.addr).await;

    let request = Request::get("/headers")
        .header("host", "app.test:8080")
        .header("x-forwarded-for", "203.0.113.7")
        .header("x-forwarded-proto", "https")
        .header("x-forwarded-host", "spoofed.test")
        .header("connection", "keep-alive, x-secret")
        .header("x-secret", "s")
        .header("keep-alive", "timeout=5")
        .header("te", "trailers")
        .header("trailer", "x-checksum")
        .header("upgrade", "h2c")
        .header("proxy-authorization", "Basic eDp5")
        .header("proxy-connection", "keep-alive")
        .header("x-kept", "yes")
        .body(full(""))
        .unwrap();
    let (status, headers, body) = send(addr, request).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body,
        "host: app.test:8080\n\
         x-forwarded-for: 203.0.113.7, 127.0.0.1\n\
         x-forwarded-host: app.test:8080\n\
         x-forwarded-proto: http\n\
         x-kept: yes"
    );
    for name in [
        "connection",
        "x-secret-reply",
        "keep-alive",
        "proxy-authenticate",
        "trailer",
        "upgrade",
    ] {
        assert!(
            !headers.contains_key(name),
            "{name} reached the client: {headers:?}"
        );
    }
    assert_eq!(headers["x-kept-reply"], "yes");
}
