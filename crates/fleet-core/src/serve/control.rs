//! The control socket between `fleet` commands and `fleet serve`: newline-delimited
//! JSON, one request and one answer per connection, on a unix socket in the state
//! directory that only its owner may use (0600 in a 0700 directory).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _, BufReader};
use tokio::net::UnixStream;

use crate::error::Error;

/// The socket's file name in the state directory.
pub const SOCKET: &str = "serve.sock";

/// How long a command waits to connect to `fleet serve`.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// What a command asks `fleet serve`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub(crate) enum Request {
    /// Are you there?
    Ping,
    /// Make these routes send to these backends (adding routes and listeners as
    /// needed), then wait until the previous backends drained, at most `drain_ms`.
    Apply {
        routes: Vec<RouteSpec>,
        drain_ms: u64,
    },
    /// Remove these routes (closing listeners no route uses any more), then wait for
    /// their backends to drain, at most `drain_ms`.
    Remove { names: Vec<String>, drain_ms: u64 },
}

/// One route as the control socket carries it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct RouteSpec {
    pub(crate) name: String,
    pub(crate) port: u16,
    /// Only requests for this host name (on a port routes share).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) host: Option<String>,
    pub(crate) backend: SocketAddr,
}

/// `fleet serve`'s answer.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub(crate) struct Response {
    /// Why the request failed, if it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) error: Option<String>,
    /// The serving process.
    #[serde(default)]
    pub(crate) pid: u32,
    /// How each previous backend drained.
    #[serde(default)]
    pub(crate) drained: Vec<Drained>,
}

/// How one route's previous backend drained after a switch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Drained {
    /// The route.
    pub route: String,
    /// The backend it sent to before (none for a new route).
    pub previous: Option<SocketAddr>,
    /// Requests still in flight on it when the wait ended (0: drained).
    pub in_flight_left: usize,
    /// Upgraded connections closed at the deadline.
    pub upgraded_closed: usize,
    /// How long the wait took, in milliseconds.
    pub waited_ms: u64,
}

/// A connection to the `fleet serve` of a state directory.
#[derive(Debug, Clone)]
pub(crate) struct ControlClient {
    path: PathBuf,
}

impl ControlClient {
    /// The `fleet serve` running on `state_dir`, if one answers.
    pub(crate) async fn find(state_dir: &Path) -> Option<ControlClient> {
        let client = ControlClient {
            path: state_dir.join(SOCKET),
        };
        if !client.path.exists() {
            return None;
        }
        client
            .call(&Request::Ping, Duration::from_secs(2))
            .await
            .ok()?;
        Some(client)
    }

    /// Sends `request`; waits for the answer at most `timeout` (after connecting).
    pub(crate) async fn call(
        &self,
        request: &Request,
        timeout: Duration,
    ) -> Result<Response, Error> {
        let failed = |reason: String| Error::Serve {
            path: self.path.clone(),
            reason,
        };
        let mut stream = tokio::time::timeout(CONNECT_TIMEOUT, UnixStream::connect(&self.path))
            .await
            .map_err(|_| failed("it did not accept the connection in time".into()))?
            .map_err(|e| failed(format!("cannot connect: {e}")))?;
        let mut line = serde_json::to_string(request).expect("requests serialize");
        line.push('\n');
        let answer = tokio::time::timeout(timeout, async {
            stream.write_all(line.as_bytes()).await?;
            let mut reader = BufReader::new(stream);
            let mut answer = String::new();
            reader.read_line(&mut answer).await?;
            Ok::<_, std::io::Error>(answer)
        })
        .await
        .map_err(|_| failed(format!("no answer within {}s", timeout.as_secs())))?
        .map_err(|e| failed(format!("the connection failed: {e}")))?;
        let response: Response = serde_json::from_str(&answer).map_err(|e| {
            failed(format!(
                "an answer fleet does not understand ({e}): {answer:?}"
            ))
        })?;
        match response.error {
            Some(error) => Err(failed(error)),
            None => Ok(response),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_read_back() {
        let request = Request::Apply {
            routes: vec![RouteSpec {
                name: "alice-8080".into(),
                port: 5001,
                host: None,
                backend: "172.18.0.2:8080".parse().unwrap(),
            }],
            drain_ms: 30_000,
        };
        let line = serde_json::to_string(&request).unwrap();
        assert!(
            line.starts_with(r#"{"op":"apply","routes":[{"name":"alice-8080""#),
            "{line}"
        );
        assert_eq!(serde_json::from_str::<Request>(&line).unwrap(), request);
        let ping: Request = serde_json::from_str(r#"{"op":"ping"}"#).unwrap();
        assert_eq!(ping, Request::Ping);
    }
}
