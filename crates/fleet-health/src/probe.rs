//! One probe of one target: the [`Prober`] and what it finds, a [`ProbeResult`].

use std::fmt;
use std::time::Duration;

use http::header::CONTENT_TYPE;
use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use crate::body::{Check, HealthBody};
use crate::durations::millis;
use crate::target::{HttpTarget, ProbeTarget, TcpTarget};
use crate::{Error, ProberBuilder};

/// How many redirects a [`Prober`] follows unless told otherwise (as many as curl's
/// `--max-redirs` default would allow a browser-like client, and what Kubernetes allows).
pub const DEFAULT_REDIRECT_LIMIT: usize = 10;

/// What one probe found, or a policy concluded: up, up but degraded, or down.
///
/// Ordered from best to worst, so the worst of several is their `max`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Health {
    /// Up and well.
    Healthy,
    /// Up, but the app says something is wrong (`warn`, `degraded`). It counts as a
    /// success for thresholds and is reported as degraded.
    Degraded,
    /// Down: no answer, an unexpected status, or the app says so.
    Unhealthy,
}

impl Health {
    /// Whether this counts as a success: healthy or degraded.
    pub fn is_up(self) -> bool {
        self != Self::Unhealthy
    }
}

impl fmt::Display for Health {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Healthy => "healthy",
            Self::Degraded => "degraded",
            Self::Unhealthy => "unhealthy",
        })
    }
}

/// Why a probe found its target unhealthy, for programs; [`ProbeResult::reason`] says it
/// for people.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum FailureKind {
    /// No complete answer within the probe's timeout.
    Timeout,
    /// Nothing listens: the connection was refused.
    ConnectionRefused,
    /// Any other failure to connect: the name does not resolve, the host is
    /// unreachable, the TLS handshake failed for another reason than the certificate.
    Connect,
    /// The server's TLS certificate was refused: not signed by a trusted root, not
    /// valid for the host in the URL, expired. See
    /// [`ProberBuilder::root_certificates_pem`] and
    /// [`HttpTarget::with_tls_verify`].
    Certificate,
    /// The request failed after connecting (the connection was reset, the answer was
    /// not HTTP).
    Request,
    /// Redirects went on past the limit or could not be followed.
    Redirect,
    /// The final HTTP status is outside the expected range.
    Status,
    /// The body could not be read to the end (or to the cap).
    Body,
    /// The body claims to be JSON (`Content-Type`) and is not.
    InvalidJson,
    /// The app itself reports that it is unhealthy (`"status": "fail"`).
    Reported,
    /// The probe was cut short by the overall deadline of a wait.
    Deadline,
}

/// What one probe found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ProbeResult {
    /// Up, degraded or down.
    pub outcome: Health,
    /// Why it is down, for programs; `Some` exactly when the outcome is unhealthy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure: Option<FailureKind>,
    /// Why it is not plainly healthy, for people: `"connection refused"`, `"HTTP 503"`,
    /// `"reported status \"warn\""`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// How long the probe took: connect, request, and reading the body.
    #[serde(rename = "latency_ms", with = "millis")]
    pub latency: Duration,
    /// The final HTTP status, if an answer came.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_status: Option<u16>,
    /// The version the app reported in its body.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// The checks the app reported on.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub checks: Vec<Check>,
    /// How many bytes of the body were kept (at most the target's cap).
    #[serde(default)]
    pub body_bytes: u64,
    /// Whether the body went on past the cap (the rest was never read).
    #[serde(default)]
    pub body_truncated: bool,
}

impl ProbeResult {
    fn up(outcome: Health, latency: Duration) -> Self {
        Self {
            outcome,
            failure: None,
            reason: None,
            latency,
            http_status: None,
            version: None,
            checks: Vec::new(),
            body_bytes: 0,
            body_truncated: false,
        }
    }

    /// An unhealthy result: `kind` for programs, `reason` for people.
    pub fn failed(kind: FailureKind, reason: impl Into<String>, latency: Duration) -> Self {
        Self {
            failure: Some(kind),
            reason: Some(reason.into()),
            ..Self::up(Health::Unhealthy, latency)
        }
    }
}

impl fmt::Display for ProbeResult {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.outcome)?;
        if let Some(status) = self.http_status {
            write!(f, " (HTTP {status})")?;
        }
        write!(f, " in {}", crate::report::short(self.latency))?;
        if let Some(reason) = &self.reason {
            write!(f, ": {reason}")?;
        }
        Ok(())
    }
}

/// Probes `target` once, within `timeout`.
///
/// Builds a [`Prober`] for this one probe; make one and call [`Prober::probe`] to probe
/// several times.
pub async fn probe(target: &ProbeTarget, timeout: Duration) -> Result<ProbeResult, Error> {
    Ok(Prober::new()?.probe(target, timeout).await)
}

/// Probes targets. Holds its HTTP clients, so make one and reuse it (clones share them).
///
/// Every probe opens a new connection (no keep-alive between probes), as Docker's
/// `curl` and the kubelet do: a probe checks that the app still accepts connections.
/// Redirects are followed up to a limit ([`DEFAULT_REDIRECT_LIMIT`]); going past it
/// makes the probe unhealthy. Proxy settings from the environment are ignored: probes
/// go straight to the target.
///
/// HTTPS certificates are verified against the system's roots, plus any a
/// [`ProberBuilder`] was given, unless the target opts out with
/// [`HttpTarget::with_tls_verify`].
#[derive(Debug, Clone)]
pub struct Prober {
    /// For every target that verifies certificates (the default).
    pub(crate) verified: reqwest::Client,
    /// For targets that opted out of certificate verification. reqwest sets TLS per
    /// client, so the opt-out takes a client of its own.
    pub(crate) unverified: reqwest::Client,
}

impl Prober {
    /// A prober that follows up to [`DEFAULT_REDIRECT_LIMIT`] redirects and trusts the
    /// system's root certificates.
    pub fn new() -> Result<Self, Error> {
        Self::builder().build()
    }

    /// A prober that follows up to `limit` redirects (0: none; a redirect is then the
    /// final answer, judged by its 3xx status).
    pub fn with_redirect_limit(limit: usize) -> Result<Self, Error> {
        Self::builder().redirect_limit(limit).build()
    }

    /// Settings beyond the defaults: the redirect limit, extra root certificates.
    pub fn builder() -> ProberBuilder {
        ProberBuilder::default()
    }

    /// Probes `target` once; everything (name resolution, connecting, the request,
    /// reading the body) must finish within `timeout`.
    pub async fn probe(&self, target: &ProbeTarget, timeout: Duration) -> ProbeResult {
        match target {
            ProbeTarget::Http(http) => self.probe_http(http, timeout).await,
            ProbeTarget::Tcp(tcp) => probe_tcp(tcp, timeout).await,
        }
    }

    async fn probe_http(&self, target: &HttpTarget, timeout: Duration) -> ProbeResult {
        let started = Instant::now();
        let mut progress = Progress::Waiting;
        let client = if target.tls_verify() {
            &self.verified
        } else {
            &self.unverified
        };
        let exchange = exchange(client, target, &mut progress);
        let outcome = tokio::time::timeout(timeout, exchange).await;
        let latency = started.elapsed();
        let answer = match outcome {
            Ok(Ok(answer)) => answer,
            Ok(Err(e)) => {
                let (kind, reason) = describe(&e);
                let mut result = ProbeResult::failed(kind, reason, latency);
                result.http_status = progress.status();
                return result;
            }
            Err(_elapsed) => {
                let reason = match progress {
                    Progress::Waiting => format!(
                        "timed out after {} waiting for a response",
                        crate::report::short(timeout)
                    ),
                    Progress::Body { status, read } => format!(
                        "timed out after {} reading the body of an HTTP {status} response \
                         ({read} bytes read)",
                        crate::report::short(timeout)
                    ),
                };
                let mut result = ProbeResult::failed(FailureKind::Timeout, reason, latency);
                result.http_status = progress.status();
                return result;
            }
        };
        judge(target, answer, latency)
    }
}

/// How far an HTTP exchange got, so a timeout can say where it struck.
enum Progress {
    Waiting,
    Body { status: u16, read: u64 },
}

impl Progress {
    fn status(&self) -> Option<u16> {
        match self {
            Self::Waiting => None,
            Self::Body { status, .. } => Some(*status),
        }
    }
}

/// A complete (or capped) HTTP answer.
struct Answer {
    status: u16,
    content_type: Option<String>,
    body: Vec<u8>,
    truncated: bool,
}

/// Sends the request and reads the body up to the cap, chunk by chunk: a body longer
/// than the cap is never buffered whole, and the rest of it is never fetched (the
/// connection is dropped).
async fn exchange(
    client: &reqwest::Client,
    target: &HttpTarget,
    progress: &mut Progress,
) -> Result<Answer, reqwest::Error> {
    let mut request = client.get(target.url().clone());
    for (name, value) in target.headers().iter() {
        request = request.header(name, value);
    }
    let mut response = request.send().await?;
    let status = response.status().as_u16();
    *progress = Progress::Body { status, read: 0 };
    let content_type = response
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned);
    let cap = usize::try_from(target.max_body_bytes()).unwrap_or(usize::MAX);
    let expected = response
        .content_length()
        .and_then(|n| usize::try_from(n).ok())
        .unwrap_or(0);
    let mut body = Vec::with_capacity(expected.min(cap).min(64 * 1024));
    let mut truncated = false;
    while let Some(chunk) = response.chunk().await? {
        let room = cap - body.len();
        if chunk.len() > room {
            body.extend_from_slice(&chunk[..room]);
            truncated = true;
            break;
        }
        body.extend_from_slice(&chunk);
        *progress = Progress::Body {
            status,
            read: body.len() as u64,
        };
    }
    Ok(Answer {
        status,
        content_type,
        body,
        truncated,
    })
}

/// Decides what an answer means: the status range first, then the body.
fn judge(target: &HttpTarget, answer: Answer, latency: Duration) -> ProbeResult {
    let body = if answer.truncated {
        // A cut body cannot be read reliably (a cut JSON document never parses):
        // the status alone decides, as it does for the kubelet.
        HealthBody::default()
    } else {
        HealthBody::parse(answer.content_type.as_deref(), &answer.body)
    };
    let expected = target.expected_status();
    let mut result = if !expected.contains(answer.status) {
        let mut reason = format!("HTTP {} (expected {expected})", answer.status);
        if let Some(why) = body.explain() {
            reason.push_str("; ");
            reason.push_str(&why);
        }
        ProbeResult::failed(FailureKind::Status, reason, latency)
    } else if body.invalid_json.is_some() {
        ProbeResult::failed(
            FailureKind::InvalidJson,
            body.explain().unwrap_or_default(),
            latency,
        )
    } else {
        match body.health().unwrap_or(Health::Healthy) {
            Health::Unhealthy => ProbeResult::failed(
                FailureKind::Reported,
                body.explain().unwrap_or_default(),
                latency,
            ),
            outcome => {
                let mut result = ProbeResult::up(outcome, latency);
                result.reason = body.explain();
                result
            }
        }
    };
    if answer.truncated {
        let note = format!(
            "body longer than {} bytes: not read past the cap, judged by status",
            target.max_body_bytes()
        );
        result.reason = Some(match result.reason {
            Some(reason) => format!("{reason}; {note}"),
            None => note,
        });
    }
    result.http_status = Some(answer.status);
    result.version = body.version;
    result.checks = body.checks;
    result.body_bytes = answer.body.len() as u64;
    result.body_truncated = answer.truncated;
    result
}

async fn probe_tcp(target: &TcpTarget, timeout: Duration) -> ProbeResult {
    let started = Instant::now();
    let connect = tokio::net::TcpStream::connect((target.host(), target.port()));
    let outcome = tokio::time::timeout(timeout, connect).await;
    let latency = started.elapsed();
    match outcome {
        Ok(Ok(_stream)) => ProbeResult::up(Health::Healthy, latency),
        Ok(Err(e)) if e.kind() == std::io::ErrorKind::ConnectionRefused => ProbeResult::failed(
            FailureKind::ConnectionRefused,
            "connection refused",
            latency,
        ),
        Ok(Err(e)) => ProbeResult::failed(FailureKind::Connect, e.to_string(), latency),
        Err(_elapsed) => ProbeResult::failed(
            FailureKind::Timeout,
            format!(
                "timed out after {} connecting",
                crate::report::short(timeout)
            ),
            latency,
        ),
    }
}

/// Classifies a client error and says it in one line, without the URL (the report
/// names the target once).
fn describe(error: &reqwest::Error) -> (FailureKind, String) {
    let mut chain = Vec::<String>::new();
    let mut refused = false;
    let mut certificate = false;
    let mut source: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(error);
    while let Some(cause) = source {
        if let Some(io) = cause.downcast_ref::<std::io::Error>() {
            refused |= io.kind() == std::io::ErrorKind::ConnectionRefused;
        }
        certificate |= matches!(tls_error(cause), Some(rustls::Error::InvalidCertificate(_)));
        let text = cause.to_string();
        // hyper-util wraps every cause in a "client error (Kind)" that says nothing the
        // cause does not, and hyper repeats its cause in its own message at times.
        let noise = text.starts_with("client error (");
        if !noise && !chain.iter().any(|earlier| earlier.contains(&text)) {
            chain.push(text);
        }
        source = cause.source();
    }
    if refused {
        return (
            FailureKind::ConnectionRefused,
            "connection refused".to_owned(),
        );
    }
    let kind = if error.is_redirect() {
        FailureKind::Redirect
    } else if certificate {
        FailureKind::Certificate
    } else if error.is_connect() {
        FailureKind::Connect
    } else if error.is_body() || error.is_decode() {
        FailureKind::Body
    } else {
        FailureKind::Request
    };
    let lead = match kind {
        FailureKind::Redirect => "redirect failed",
        FailureKind::Connect => "cannot connect",
        FailureKind::Certificate => "certificate refused",
        FailureKind::Body => "cannot read the body",
        _ => "request failed",
    };
    let reason = if chain.is_empty() {
        lead.to_owned()
    } else {
        format!("{lead}: {}", chain.join(": "))
    };
    (kind, reason)
}

/// The rustls error in `cause`, if it is one. rustls' errors reach us wrapped in
/// `io::Error`s (nested, at times), whose `source` skips what they wrap.
fn tls_error<'a>(cause: &'a (dyn std::error::Error + 'static)) -> Option<&'a rustls::Error> {
    if let Some(tls) = cause.downcast_ref::<rustls::Error>() {
        return Some(tls);
    }
    let inner = cause.downcast_ref::<std::io::Error>()?.get_ref()?;
    tls_error(inner)
}
