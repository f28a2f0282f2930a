//! What to probe: an HTTP(S) URL with its expectations, or a TCP socket address.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use http::{HeaderName, HeaderValue};
use serde::{Deserialize, Serialize};
use url::Url;

use crate::Error;

/// The default cap on how much of a response body a probe reads: 64 KiB.
///
/// Health bodies are small; Kubernetes reads 10 KiB. A longer body is read up to the cap
/// and the rest is never fetched (see [`HttpTarget::max_body_bytes`]).
pub const DEFAULT_MAX_BODY_BYTES: u64 = 64 * 1024;

/// One thing to probe.
///
/// Parse one from a string: `http://…` and `https://…` give an HTTP GET probe with the
/// default expectations (status 200–399, no extra headers, a 64 KiB body cap);
/// `tcp://host:port` gives a TCP connect probe.
///
/// ```
/// use fleet_health::ProbeTarget;
///
/// let web: ProbeTarget = "http://127.0.0.1:8080/healthz".parse()?;
/// let db: ProbeTarget = "tcp://db.internal:5432".parse()?;
/// assert_eq!(db.to_string(), "tcp://db.internal:5432");
/// # let _ = web;
/// # Ok::<(), fleet_health::Error>(())
/// ```
///
/// In configuration (serde), a target is either that string or a table with a `url` and
/// the HTTP options: `{ url = "http://…", expected_status = "200-299", headers = { Host =
/// "app.example" }, max_body_bytes = 65536, tls_verify = false }`. It always serialises
/// as a table (`tls_verify` only when it is off).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "TargetRepr", into = "TargetTable")]
pub enum ProbeTarget {
    /// An HTTP(S) GET request.
    Http(HttpTarget),
    /// A TCP connect.
    Tcp(TcpTarget),
}

impl ProbeTarget {
    /// An HTTP(S) probe of `url` with default expectations.
    pub fn http(url: &str) -> Result<Self, Error> {
        HttpTarget::new(url).map(Self::Http)
    }

    /// A TCP connect probe of `host:port`; `host` is a name or an IP address.
    pub fn tcp(host: &str, port: u16) -> Result<Self, Error> {
        TcpTarget::new(host, port).map(Self::Tcp)
    }
}

impl FromStr for ProbeTarget {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        let invalid = |reason: &str| Error::InvalidTarget {
            target: s.to_owned(),
            reason: reason.to_owned(),
        };
        let scheme = s
            .split_once("://")
            .map(|(scheme, _)| scheme.to_ascii_lowercase());
        match scheme.as_deref() {
            Some("http" | "https") => Self::http(s),
            Some("tcp") => {
                let url = Url::parse(s).map_err(|e| invalid(&e.to_string()))?;
                if !matches!(url.path(), "" | "/") || url.query().is_some() {
                    return Err(invalid("a tcp:// target is only host:port"));
                }
                if !url.username().is_empty() || url.password().is_some() {
                    return Err(invalid("a tcp:// target has no user name or password"));
                }
                let host = match url.host() {
                    Some(url::Host::Ipv6(ip)) => ip.to_string(),
                    Some(host) => host.to_string(),
                    None => return Err(invalid("a tcp:// target needs a host")),
                };
                let port = url
                    .port()
                    .ok_or_else(|| invalid("a tcp:// target needs a port"))?;
                Self::tcp(&host, port).map_err(|_| invalid("invalid host"))
            }
            _ => Err(invalid("expected http://, https:// or tcp://")),
        }
    }
}

impl fmt::Display for ProbeTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Http(http) => fmt::Display::fmt(http, f),
            Self::Tcp(tcp) => fmt::Display::fmt(tcp, f),
        }
    }
}

/// An HTTP(S) GET probe: the URL, the statuses that count as up, extra request headers
/// and how much of the body to read.
///
/// Redirects are followed up to the [`Prober`](crate::Prober)'s limit (10 by default);
/// the expected statuses apply to the final response. HTTPS certificates are verified
/// unless [`with_tls_verify(false)`](Self::with_tls_verify) says otherwise.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpTarget {
    url: Url,
    expected_status: StatusRange,
    headers: Headers,
    max_body_bytes: u64,
    tls_verify: bool,
}

impl HttpTarget {
    /// An HTTP(S) probe of `url` with default expectations.
    pub fn new(url: &str) -> Result<Self, Error> {
        let invalid = |reason: String| Error::InvalidTarget {
            target: url.to_owned(),
            reason,
        };
        let parsed = Url::parse(url).map_err(|e| invalid(e.to_string()))?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(invalid("expected an http:// or https:// URL".to_owned()));
        }
        if parsed.host().is_none() {
            return Err(invalid("the URL needs a host".to_owned()));
        }
        Ok(Self {
            url: parsed,
            expected_status: StatusRange::default(),
            headers: Headers::default(),
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            tls_verify: true,
        })
    }

    /// The statuses that count as up (after redirects); 200–399 unless changed.
    #[must_use]
    pub fn with_expected_status(mut self, range: StatusRange) -> Self {
        self.expected_status = range;
        self
    }

    /// Sends `name: value` with every probe, replacing an earlier value for `name`.
    pub fn with_header(mut self, name: &str, value: &str) -> Result<Self, Error> {
        self.headers.insert(name, value)?;
        Ok(self)
    }

    /// Reads at most `bytes` of the body (the default is [`DEFAULT_MAX_BODY_BYTES`]).
    #[must_use]
    pub fn with_max_body_bytes(mut self, bytes: u64) -> Self {
        self.max_body_bytes = bytes;
        self
    }

    /// Whether the server's TLS certificate must be valid: signed by a trusted root (the
    /// system's, or one given to a [`ProberBuilder`](crate::ProberBuilder)), current,
    /// and issued for the host in the URL. On by default; it applies to every HTTPS
    /// connection the probe makes, redirects included.
    ///
    /// Turning it off exists for one case: probing an app's own HTTPS port where no
    /// certificate can be valid for the address used, typically a container reached by
    /// its IP address (or through a port published on `127.0.0.1`) whose certificate
    /// names its public host, or is self-signed. The probe then still speaks TLS and
    /// still judges the answer, but anyone on the path could answer in the app's place,
    /// and would receive the target's [`headers`](Self::headers). When the app's
    /// certificate authority is at hand, trusting it with
    /// [`ProberBuilder::root_certificates_pem`](crate::ProberBuilder::root_certificates_pem)
    /// is the better choice. (Kubernetes' HTTPS probes never verify; Docker's
    /// `HEALTHCHECK` does whatever its command does.)
    #[must_use]
    pub fn with_tls_verify(mut self, verify: bool) -> Self {
        self.tls_verify = verify;
        self
    }

    /// Whether the server's TLS certificate is verified (see
    /// [`with_tls_verify`](Self::with_tls_verify)).
    pub fn tls_verify(&self) -> bool {
        self.tls_verify
    }

    /// The URL requested first.
    pub fn url(&self) -> &Url {
        &self.url
    }

    /// The statuses that count as up.
    pub fn expected_status(&self) -> StatusRange {
        self.expected_status
    }

    /// The extra request headers.
    pub fn headers(&self) -> &Headers {
        &self.headers
    }

    /// How much of a response body a probe reads at most. A longer body is not
    /// interpreted: the status alone decides, and the result says the body was truncated.
    pub fn max_body_bytes(&self) -> u64 {
        self.max_body_bytes
    }
}

impl fmt::Display for HttpTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.url.as_str())
    }
}

/// A TCP connect probe: up when a connection is accepted.
///
/// The host is resolved at every probe, and every address it resolves to is tried in
/// turn, within the probe's timeout. A connect only shows that something accepts
/// connections: through a port Docker publishes with its userland proxy, that something
/// is the proxy, whether or not the app listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TcpTarget {
    host: String,
    port: u16,
}

impl TcpTarget {
    /// A TCP probe of `host:port`; `host` is a name or an IP address (IPv6 without
    /// brackets).
    pub fn new(host: &str, port: u16) -> Result<Self, Error> {
        let host = host.trim_start_matches('[').trim_end_matches(']');
        if host.is_empty() || host.contains(|c: char| c.is_whitespace() || c == '/') {
            return Err(Error::InvalidTarget {
                target: format!("{host}:{port}"),
                reason: "invalid host".to_owned(),
            });
        }
        Ok(Self {
            host: host.to_owned(),
            port,
        })
    }

    /// The host name or IP address.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The port.
    pub fn port(&self) -> u16 {
        self.port
    }
}

impl fmt::Display for TcpTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "tcp://[{}]:{}", self.host, self.port)
        } else {
            write!(f, "tcp://{}:{}", self.host, self.port)
        }
    }
}

/// An inclusive range of HTTP statuses, such as `200-399`.
///
/// Parses from `200`, `200-299` or `2xx`; serialises as `200-299` (or `200` for one
/// status). The default, 200–399, is what Kubernetes accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct StatusRange {
    first: u16,
    last: u16,
}

impl StatusRange {
    /// The statuses from `first` to `last`, both included.
    pub fn new(first: u16, last: u16) -> Result<Self, Error> {
        let invalid = |reason| Error::InvalidStatusRange {
            range: format!("{first}-{last}"),
            reason,
        };
        if !(100..=599).contains(&first) || !(100..=599).contains(&last) {
            return Err(invalid("statuses go from 100 to 599"));
        }
        if first > last {
            return Err(invalid("the first status is after the last"));
        }
        Ok(Self { first, last })
    }

    /// The first status in the range.
    pub fn first(self) -> u16 {
        self.first
    }

    /// The last status in the range.
    pub fn last(self) -> u16 {
        self.last
    }

    /// Whether `status` is in the range.
    pub fn contains(self, status: u16) -> bool {
        (self.first..=self.last).contains(&status)
    }
}

impl Default for StatusRange {
    fn default() -> Self {
        Self {
            first: 200,
            last: 399,
        }
    }
}

impl FromStr for StatusRange {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        let invalid = |reason| Error::InvalidStatusRange {
            range: s.to_owned(),
            reason,
        };
        let number = |n: &str| {
            n.trim()
                .parse::<u16>()
                .map_err(|_| invalid("expected 200, 200-299 or 2xx"))
        };
        let trimmed = s.trim();
        let (first, last) = if let Some(class) = trimmed
            .strip_suffix("xx")
            .or_else(|| trimmed.strip_suffix("XX"))
        {
            let class = number(class)?;
            (class * 100, class * 100 + 99)
        } else if let Some((first, last)) = trimmed.split_once('-') {
            (number(first)?, number(last)?)
        } else {
            let status = number(trimmed)?;
            (status, status)
        };
        Self::new(first, last).map_err(|e| match e {
            Error::InvalidStatusRange { reason, .. } => invalid(reason),
            other => other,
        })
    }
}

impl fmt::Display for StatusRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.first == self.last {
            write!(f, "{}", self.first)
        } else {
            write!(f, "{}-{}", self.first, self.last)
        }
    }
}

impl TryFrom<String> for StatusRange {
    type Error = Error;

    fn try_from(s: String) -> Result<Self, Error> {
        s.parse()
    }
}

impl From<StatusRange> for String {
    fn from(range: StatusRange) -> Self {
        range.to_string()
    }
}

/// Extra request headers, one value per name, validated when added.
///
/// Serialises as a map from name to value.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(
    try_from = "BTreeMap<String, String>",
    into = "BTreeMap<String, String>"
)]
pub struct Headers(Vec<(HeaderName, HeaderValue)>);

impl Headers {
    /// Sets `name: value`, replacing an earlier value for `name`.
    pub fn insert(&mut self, name: &str, value: &str) -> Result<(), Error> {
        let invalid = |source: Box<dyn std::error::Error + Send + Sync>| Error::InvalidHeader {
            name: name.to_owned(),
            source,
        };
        let name = HeaderName::from_str(name).map_err(|e| invalid(e.into()))?;
        let value = HeaderValue::from_str(value).map_err(|e| invalid(e.into()))?;
        self.0.retain(|(existing, _)| *existing != name);
        self.0.push((name, value));
        Ok(())
    }

    /// The headers in the order they were added.
    pub fn iter(&self) -> impl Iterator<Item = (&HeaderName, &HeaderValue)> {
        self.0.iter().map(|(name, value)| (name, value))
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl TryFrom<BTreeMap<String, String>> for Headers {
    type Error = Error;

    fn try_from(map: BTreeMap<String, String>) -> Result<Self, Error> {
        let mut headers = Self::default();
        for (name, value) in &map {
            headers.insert(name, value)?;
        }
        Ok(headers)
    }
}

impl From<Headers> for BTreeMap<String, String> {
    fn from(headers: Headers) -> Self {
        headers
            .0
            .into_iter()
            .map(|(name, value)| {
                // Values were built from `&str`, so they are visible ASCII or opaque
                // bytes that round-trip through lossy UTF-8 unchanged.
                let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
                (name.as_str().to_owned(), value)
            })
            .collect()
    }
}

/// How a target is written in configuration: a URL, or a table with a URL and options.
enum TargetRepr {
    Url(String),
    Table(TargetTable),
}

impl<'de> Deserialize<'de> for TargetRepr {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        // Hand-written rather than `#[serde(untagged)]` so that a bad field in the table
        // form is reported as itself, not as "did not match any variant".
        struct Visitor;

        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = TargetRepr;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a URL (http://, https:// or tcp://) or a table with a `url`")
            }

            fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<TargetRepr, E> {
                Ok(TargetRepr::Url(s.to_owned()))
            }

            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                map: A,
            ) -> Result<TargetRepr, A::Error> {
                let table =
                    TargetTable::deserialize(serde::de::value::MapAccessDeserializer::new(map))?;
                Ok(TargetRepr::Table(table))
            }
        }

        deserializer.deserialize_any(Visitor)
    }
}

/// The table form of a target; also how every target serialises.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct TargetTable {
    url: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    expected_status: Option<StatusRange>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    headers: Option<Headers>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    max_body_bytes: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    tls_verify: Option<bool>,
}

impl TryFrom<TargetRepr> for ProbeTarget {
    type Error = Error;

    fn try_from(repr: TargetRepr) -> Result<Self, Error> {
        let table = match repr {
            TargetRepr::Url(url) => return url.parse(),
            TargetRepr::Table(table) => table,
        };
        match table.url.parse()? {
            Self::Http(mut http) => {
                if let Some(range) = table.expected_status {
                    http.expected_status = range;
                }
                if let Some(headers) = table.headers {
                    http.headers = headers;
                }
                if let Some(bytes) = table.max_body_bytes {
                    http.max_body_bytes = bytes;
                }
                if let Some(verify) = table.tls_verify {
                    http.tls_verify = verify;
                }
                Ok(Self::Http(http))
            }
            Self::Tcp(tcp) => {
                if table.expected_status.is_some()
                    || table.headers.is_some()
                    || table.max_body_bytes.is_some()
                    || table.tls_verify.is_some()
                {
                    return Err(Error::InvalidTarget {
                        target: table.url,
                        reason: "expected_status, headers, max_body_bytes and tls_verify are for \
                                 HTTP targets"
                            .to_owned(),
                    });
                }
                Ok(Self::Tcp(tcp))
            }
        }
    }
}

impl From<ProbeTarget> for TargetTable {
    fn from(target: ProbeTarget) -> Self {
        match target {
            ProbeTarget::Http(http) => Self {
                url: http.url.into(),
                expected_status: Some(http.expected_status),
                headers: Some(http.headers),
                max_body_bytes: Some(http.max_body_bytes),
                // Written only when off: the exception is what a reader must see.
                tls_verify: (!http.tls_verify).then_some(false),
            },
            ProbeTarget::Tcp(tcp) => Self {
                url: tcp.to_string(),
                expected_status: None,
                headers: None,
                max_body_bytes: None,
                tls_verify: None,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(input: &str) -> String {
        match input.parse::<ProbeTarget>() {
            Ok(target) => format!("{target:?}"),
            Err(e) => format!("error: {e}"),
        }
    }

    #[test]
    fn parses_targets() {
        insta::assert_snapshot!(check("http://127.0.0.1:8080/healthz"), @r#"Http(HttpTarget { url: Url { scheme: "http", cannot_be_a_base: false, username: "", password: None, host: Some(Ipv4(127.0.0.1)), port: Some(8080), path: "/healthz", query: None, fragment: None }, expected_status: StatusRange { first: 200, last: 399 }, headers: Headers([]), max_body_bytes: 65536, tls_verify: true })"#);
        insta::assert_snapshot!(check("tcp://db.internal:5432"), @r#"Tcp(TcpTarget { host: "db.internal", port: 5432 })"#);
        insta::assert_snapshot!(check("tcp://[::1]:80"), @r#"Tcp(TcpTarget { host: "::1", port: 80 })"#);
        insta::assert_snapshot!(check("TCP://10.0.0.1:1"), @r#"Tcp(TcpTarget { host: "10.0.0.1", port: 1 })"#);
    }

    #[test]
    fn refuses_targets() {
        insta::assert_snapshot!(check("127.0.0.1:8080"), @r#"error: invalid probe target "127.0.0.1:8080": expected http://, https:// or tcp://"#);
        insta::assert_snapshot!(check("ftp://x/"), @r#"error: invalid probe target "ftp://x/": expected http://, https:// or tcp://"#);
        insta::assert_snapshot!(check("tcp://db"), @r#"error: invalid probe target "tcp://db": a tcp:// target needs a port"#);
        insta::assert_snapshot!(check("tcp://:80"), @r#"error: invalid probe target "tcp://:80": empty host"#);
        insta::assert_snapshot!(check("tcp://db:80/x"), @r#"error: invalid probe target "tcp://db:80/x": a tcp:// target is only host:port"#);
        insta::assert_snapshot!(check("http://"), @r#"error: invalid probe target "http://": empty host"#);
        insta::assert_snapshot!(check("http://x:99999/"), @r#"error: invalid probe target "http://x:99999/": invalid port number"#);
    }

    #[test]
    fn displays_targets() {
        for input in [
            "http://127.0.0.1:8080/healthz",
            "https://example.com/",
            "tcp://db.internal:5432",
            "tcp://[::1]:80",
        ] {
            assert_eq!(input.parse::<ProbeTarget>().unwrap().to_string(), input);
        }
    }

    fn range(input: &str) -> String {
        match input.parse::<StatusRange>() {
            Ok(range) => range.to_string(),
            Err(e) => format!("error: {e}"),
        }
    }

    #[test]
    fn parses_status_ranges() {
        insta::assert_snapshot!(range("200"), @"200");
        insta::assert_snapshot!(range("200-299"), @"200-299");
        insta::assert_snapshot!(range(" 2xx "), @"200-299");
        insta::assert_snapshot!(range("5XX"), @"500-599");
        insta::assert_snapshot!(range("299-200"), @r#"error: invalid HTTP status range "299-200": the first status is after the last"#);
        insta::assert_snapshot!(range("600"), @r#"error: invalid HTTP status range "600": statuses go from 100 to 599"#);
        insta::assert_snapshot!(range("ok"), @r#"error: invalid HTTP status range "ok": expected 200, 200-299 or 2xx"#);
        insta::assert_snapshot!(range("9xx"), @r#"error: invalid HTTP status range "9xx": statuses go from 100 to 599"#);
    }

    fn serde(json: &str) -> String {
        match serde_json::from_str::<ProbeTarget>(json) {
            Ok(target) => serde_json::to_string(&target).unwrap(),
            Err(e) => format!("error: {e}"),
        }
    }

    #[test]
    fn targets_round_trip_through_serde() {
        insta::assert_snapshot!(serde(r#""http://h/health""#), @r#"{"url":"http://h/health","expected_status":"200-399","headers":{},"max_body_bytes":65536}"#);
        insta::assert_snapshot!(serde(r#""tcp://h:1""#), @r#"{"url":"tcp://h:1"}"#);
        insta::assert_snapshot!(serde(r#"{"url":"tcp://h:1"}"#), @r#"{"url":"tcp://h:1"}"#);
        insta::assert_snapshot!(serde(r#"{"url":"http://h/","expected_status":"2xx","headers":{"Host":"app","X-Probe":"1"},"max_body_bytes":10}"#), @r#"{"url":"http://h/","expected_status":"200-299","headers":{"host":"app","x-probe":"1"},"max_body_bytes":10}"#);
        insta::assert_snapshot!(serde(r#"{"url":"tcp://h:1","max_body_bytes":10}"#), @r#"error: invalid probe target "tcp://h:1": expected_status, headers, max_body_bytes and tls_verify are for HTTP targets"#);
        insta::assert_snapshot!(serde(r#"{"url":"https://10.0.0.2/","tls_verify":false}"#), @r#"{"url":"https://10.0.0.2/","expected_status":"200-399","headers":{},"max_body_bytes":65536,"tls_verify":false}"#);
        insta::assert_snapshot!(serde(r#"{"url":"https://h/","tls_verify":true}"#), @r#"{"url":"https://h/","expected_status":"200-399","headers":{},"max_body_bytes":65536}"#);
        insta::assert_snapshot!(serde(r#"{"url":"tcp://h:1","tls_verify":false}"#), @r#"error: invalid probe target "tcp://h:1": expected_status, headers, max_body_bytes and tls_verify are for HTTP targets"#);
        insta::assert_snapshot!(serde(r#"{"url":"http://h/","headers":{"bad header":"x"}}"#), @r#"error: invalid request header "bad header" at line 1 column 48"#);
    }
}
