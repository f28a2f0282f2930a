//! `fleet serve`'s HTTP API, off unless an address is configured (`fleet serve --api`,
//! `FLEET_SERVE_API`, `[serve] api`): `GET /api/health` answers 200 with
//! `{"status":"ok","version":…,"routes":…}` while it serves. [`check`] asks it, for a
//! container's `HEALTHCHECK` (`fleet serve --check`) where no curl exists.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};

/// The path of the health endpoint.
pub const HEALTH_PATH: &str = "/api/health";

/// The largest answer [`check`] reads.
const MAX_ANSWER: u64 = 64 * 1024;

/// What `GET /api/health` answers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ApiHealth {
    /// `ok` while `fleet serve` serves.
    pub status: String,
    /// fleet's version.
    pub version: String,
    /// How many routes the proxy serves now.
    pub routes: usize,
}

/// What [`check`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ApiCheck {
    /// The API answered 200 with a health body.
    Healthy(ApiHealth),
    /// It did not: nothing listens, it did not answer in time, or answered otherwise.
    Unhealthy {
        /// Why, in one line.
        reason: String,
    },
}

/// Counts the proxy's routes for the health body.
pub(super) type RouteCount = Arc<dyn Fn() -> usize + Send + Sync>;

/// Serves the API on `listener` until `shutdown` resolves.
pub(super) async fn run(
    listener: TcpListener,
    routes: RouteCount,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(routes))
        .with_graceful_shutdown(shutdown)
        .await
}

fn router(routes: RouteCount) -> axum::Router {
    axum::Router::new()
        .route(HEALTH_PATH, axum::routing::get(health))
        .with_state(routes)
}

async fn health(
    axum::extract::State(routes): axum::extract::State<RouteCount>,
) -> axum::Json<ApiHealth> {
    axum::Json(ApiHealth {
        status: "ok".to_owned(),
        version: env!("CARGO_PKG_VERSION").to_owned(),
        routes: routes(),
    })
}

/// Asks the `fleet serve` API at `api` whether it is healthy, waiting at most
/// `timeout` in all: healthy on a 200 with a health body, unhealthy otherwise.
///
/// It speaks plain HTTP/1.0 itself, so it needs no TLS stack and no certificates (it
/// runs as a `FROM scratch` image's `HEALTHCHECK`).
pub async fn check(api: SocketAddr, timeout: Duration) -> ApiCheck {
    match tokio::time::timeout(timeout, get_health(api)).await {
        Ok(Ok(health)) => ApiCheck::Healthy(health),
        Ok(Err(reason)) => ApiCheck::Unhealthy { reason },
        Err(_) => ApiCheck::Unhealthy {
            reason: format!(
                "http://{api}{HEALTH_PATH} did not answer within {:.1}s",
                timeout.as_secs_f64()
            ),
        },
    }
}

async fn get_health(api: SocketAddr) -> Result<ApiHealth, String> {
    let url = format!("http://{api}{HEALTH_PATH}");
    let mut stream = TcpStream::connect(api)
        .await
        .map_err(|e| format!("cannot connect to {url}: {e}"))?;
    let request = format!("GET {HEALTH_PATH} HTTP/1.0\r\nHost: {api}\r\nConnection: close\r\n\r\n");
    stream
        .write_all(request.as_bytes())
        .await
        .map_err(|e| format!("cannot send the request to {url}: {e}"))?;
    let mut answer = Vec::new();
    stream
        .take(MAX_ANSWER)
        .read_to_end(&mut answer)
        .await
        .map_err(|e| format!("cannot read the answer of {url}: {e}"))?;
    parse_answer(&answer).map_err(|reason| format!("{url}: {reason}"))
}

/// Reads an HTTP/1.x answer: a 200 with a health body, or why not.
fn parse_answer(answer: &[u8]) -> Result<ApiHealth, String> {
    let text = String::from_utf8_lossy(answer);
    let Some((head, body)) = text.split_once("\r\n\r\n") else {
        return Err("the answer is not HTTP (or was cut short)".to_owned());
    };
    let status_line = head.lines().next().unwrap_or_default();
    let status = status_line
        .strip_prefix("HTTP/1.")
        .and_then(|rest| rest.get(2..5))
        .and_then(|code| code.parse::<u16>().ok())
        .ok_or_else(|| format!("the answer is not HTTP: {status_line:?}"))?;
    if status != 200 {
        return Err(format!("answered {}", status_line.get(9..).unwrap_or("")));
    }
    let health: ApiHealth = serde_json::from_str(body)
        .map_err(|e| format!("answered 200 with a body that is no health report ({e})"))?;
    if health.status != "ok" {
        return Err(format!("reports status {:?}", health.status));
    }
    Ok(health)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check_answer(answer: &str) -> String {
        match parse_answer(answer.as_bytes()) {
            Ok(health) => format!("ok {} {}", health.version, health.routes),
            Err(reason) => reason,
        }
    }

    #[test]
    fn answers_read() {
        let ok = "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n\r\n";
        insta::assert_snapshot!(
            check_answer(&format!(r#"{ok}{{"status":"ok","version":"1.2.3","routes":4}}"#)),
            @"ok 1.2.3 4"
        );
        insta::assert_snapshot!(
            check_answer("HTTP/1.1 503 Service Unavailable\r\n\r\n"),
            @"answered 503 Service Unavailable"
        );
        insta::assert_snapshot!(
            check_answer(&format!("{ok}<html>")),
            @"answered 200 with a body that is no health report (expected value at line 1 column 1)"
        );
        insta::assert_snapshot!(
            check_answer(&format!(r#"{ok}{{"status":"down","version":"1","routes":0}}"#)),
            @r#"reports status "down""#
        );
        insta::assert_snapshot!(check_answer("SSH-2.0-OpenSSH\r\n"), @"the answer is not HTTP (or was cut short)");
        insta::assert_snapshot!(check_answer("SSH-2.0\r\n\r\n"), @r#"the answer is not HTTP: "SSH-2.0""#);
    }

    #[tokio::test]
    async fn the_endpoint_reports_the_version_and_the_routes() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(run(listener, Arc::new(|| 3), async {
            let _ = stopped.await;
        }));
        let checked = check(addr, Duration::from_secs(5)).await;
        assert_eq!(
            checked,
            ApiCheck::Healthy(ApiHealth {
                status: "ok".into(),
                version: env!("CARGO_PKG_VERSION").into(),
                routes: 3,
            })
        );
        let other = TcpStream::connect(addr).await;
        assert!(other.is_ok(), "still listening");
        stop.send(()).unwrap();
        drop(other);
        server.await.unwrap().unwrap();
        let ApiCheck::Unhealthy { reason } = check(addr, Duration::from_secs(5)).await else {
            panic!("healthy after the server stopped");
        };
        assert!(
            reason.starts_with(&format!("cannot connect to http://{addr}/api/health: ")),
            "{reason}"
        );
    }

    #[tokio::test]
    async fn a_server_that_never_answers_is_unhealthy_at_the_timeout() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let checked = check(addr, Duration::from_millis(200)).await;
        assert_eq!(
            checked,
            ApiCheck::Unhealthy {
                reason: format!("http://{addr}/api/health did not answer within 0.2s")
            }
        );
        drop(listener);
    }
}
