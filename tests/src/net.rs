//! Loopback ports and waiting for servers.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};

/// A TCP port on 127.0.0.1 that was free a moment ago.
///
/// Another process can take it before the caller binds it; callers that start servers on
/// it retry with a new port when the bind fails.
pub fn free_port() -> anyhow::Result<u16> {
    let listener = TcpListener::bind("127.0.0.1:0").context("cannot bind a loopback port")?;
    Ok(listener.local_addr()?.port())
}

/// Waits until something accepts TCP connections on `address`, or `timeout` passes.
pub fn wait_for_tcp(address: SocketAddr, timeout: Duration) -> anyhow::Result<()> {
    let deadline = Instant::now() + timeout;
    loop {
        if TcpStream::connect_timeout(&address, Duration::from_millis(200)).is_ok() {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("nothing accepts connections on {address} after {timeout:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Polls `url` until it answers `200 OK`, or `timeout` passes; returns the body.
pub async fn wait_http_ok(url: &str, timeout: Duration) -> anyhow::Result<String> {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(2))
        .build()?;
    let deadline = Instant::now() + timeout;
    loop {
        let last = match client.get(url).send().await {
            Ok(response) if response.status().is_success() => return Ok(response.text().await?),
            Ok(response) => format!("status {}", response.status()),
            Err(e) => format!("{e:#}"),
        };
        if Instant::now() > deadline {
            bail!("{url} did not answer 200 OK within {timeout:?} (last: {last})");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// `POST url` with an empty body; the answer's body, which must be a success.
pub async fn post(url: &str) -> anyhow::Result<String> {
    let response = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()?
        .post(url)
        .send()
        .await?;
    let status = response.status();
    let body = response.text().await?;
    if !status.is_success() {
        bail!("POST {url} answered {status}: {body}");
    }
    Ok(body)
}

/// `GET url` with `Host: host`; the status and body, whatever the status.
pub async fn get_with_host(url: &str, host: &str) -> anyhow::Result<(u16, String)> {
    let response = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()?
        .get(url)
        .header("Host", host)
        .send()
        .await?;
    let status = response.status().as_u16();
    Ok((status, response.text().await?))
}

/// `GET http://127.0.0.1:<port><path>` of the test app as JSON, once it answers 200
/// (waiting at most `wait`).
pub async fn app_json(port: u16, path: &str, wait: Duration) -> anyhow::Result<serde_json::Value> {
    let url = format!("http://127.0.0.1:{port}{path}");
    let body = wait_http_ok(&url, wait).await?;
    serde_json::from_str(&body).map_err(|e| anyhow::anyhow!("{url}: not JSON ({e}): {body}"))
}

/// The version the test app at `port` reports (`GET /api/version`), once it answers.
pub async fn app_version(port: u16, wait: Duration) -> anyhow::Result<String> {
    let answer = app_json(port, "/api/version", wait).await?;
    answer["version"]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| anyhow::anyhow!("no version in {answer}"))
}
