//! Sending one registry request: authentication (Basic, or the bearer-token flow with
//! anonymous or configured credentials), one retry policy for registry and token
//! requests alike (backoff on 5xx and connection errors, `Retry-After` on 429, no retry
//! after a timeout), and a count of every request sent.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use base64::Engine as _;
use bytes::Bytes;
use reqwest::header::{self, HeaderMap, HeaderValue};
use reqwest::{Method, RequestBuilder, Response, StatusCode};
use url::Url;

use crate::auth::{Challenge, Token, TokenAnswer, parse_challenge};
use crate::credentials::{CredentialSource, Credentials};
use crate::error::Error;
use crate::target::Target;

/// The knobs of [`Transport`], set through [`ClientConfig`](crate::ClientConfig).
#[derive(Debug, Clone)]
pub(crate) struct Policy {
    pub(crate) retries: u32,
    pub(crate) backoff: Duration,
    pub(crate) max_backoff: Duration,
    pub(crate) max_retry_after: Duration,
}

/// One request to send.
pub(crate) struct Call<'a> {
    pub(crate) method: Method,
    pub(crate) url: Url,
    pub(crate) headers: HeaderMap,
    pub(crate) body: Option<Bytes>,
    /// The registry as in the reference (`docker.io`): the key for credentials and tokens.
    pub(crate) registry: &'a str,
    /// The origin credentials may be sent to (`https://registry-1.docker.io`).
    pub(crate) origin: &'a url::Origin,
    /// `repository:owner/app:pull`.
    pub(crate) scope: String,
    /// The reference errors name.
    pub(crate) reference: &'a str,
    pub(crate) timeout: Option<Duration>,
}

impl<'a> Call<'a> {
    /// A request about `target` needing `scope`.
    pub(crate) fn new(method: Method, url: Url, target: &'a Target, scope: String) -> Call<'a> {
        Call {
            method,
            url,
            headers: HeaderMap::new(),
            body: None,
            registry: &target.registry,
            origin: &target.origin,
            scope,
            reference: &target.reference,
            timeout: None,
        }
    }

    pub(crate) fn header(mut self, name: header::HeaderName, value: &str) -> Call<'a> {
        if let Ok(value) = HeaderValue::from_str(value) {
            self.headers.insert(name, value);
        }
        self
    }

    pub(crate) fn body(mut self, body: Bytes) -> Call<'a> {
        self.body = Some(body);
        self
    }
}

/// The HTTP side of the client.
pub(crate) struct Transport {
    http: reqwest::Client,
    policy: Policy,
    credentials: CredentialSource,
    requests: AtomicU64,
    /// Credentials found so far, by registry (`None`: looked, found none).
    known: tokio::sync::Mutex<HashMap<String, Option<Credentials>>>,
    /// Bearer tokens by (registry, scope).
    tokens: Mutex<HashMap<(String, String), Token>>,
    /// Registries that asked for Basic auth: send it up front from then on.
    basic: Mutex<HashSet<String>>,
}

impl Transport {
    pub(crate) fn new(
        http: reqwest::Client,
        policy: Policy,
        credentials: CredentialSource,
    ) -> Transport {
        Transport {
            http,
            policy,
            credentials,
            requests: AtomicU64::new(0),
            known: tokio::sync::Mutex::new(HashMap::new()),
            tokens: Mutex::new(HashMap::new()),
            basic: Mutex::new(HashSet::new()),
        }
    }

    pub(crate) fn request_count(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    /// Sends `call`; returns the response for any status the caller must interpret
    /// (2xx, 3xx, 404, other 4xx). Handles 401 (authenticates once, then
    /// [`Error::Unauthorized`]), 429 and 5xx and network errors (retries, then errors).
    pub(crate) async fn send(&self, call: &Call<'_>) -> Result<Response, Error> {
        // One retry budget for the call, before and after authenticating.
        let mut attempt = 0;
        let mut authenticated = false;
        loop {
            let response = self
                .send_retrying(&call.url, call.reference, &mut attempt, || {
                    self.request(call)
                })
                .await?;
            let status = response.status();
            match status {
                StatusCode::UNAUTHORIZED if !authenticated && call.url.origin() == *call.origin => {
                    let challenge = response
                        .headers()
                        .get(header::WWW_AUTHENTICATE)
                        .and_then(|value| value.to_str().ok())
                        .and_then(parse_challenge);
                    let Some(challenge) = challenge else {
                        return Err(unauthorized(call, status, response).await);
                    };
                    self.authenticate(call, &challenge).await?;
                    authenticated = true;
                }
                StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => {
                    return Err(unauthorized(call, status, response).await);
                }
                _ => return Ok(response),
            }
        }
    }

    /// `call` as a request, with the `Authorization` we already know how to make when
    /// it goes to the registry's own origin.
    async fn request(&self, call: &Call<'_>) -> RequestBuilder {
        let mut request = self
            .http
            .request(call.method.clone(), call.url.clone())
            .headers(call.headers.clone());
        if let Some(timeout) = call.timeout {
            request = request.timeout(timeout);
        }
        if let Some(body) = &call.body {
            request = request.body(body.clone());
        }
        if call.url.origin() == *call.origin
            && let Some(authorization) = self.authorization(call).await
        {
            request = request.header(header::AUTHORIZATION, authorization);
        }
        request
    }

    /// The retry policy every request goes through, registry and token service alike:
    /// sends what `build` makes (counting each request), and sends it again after a
    /// connection error or a 500/502/503/504 (with backoff) or a 429 (after its
    /// `Retry-After` when that is within the bound, else with backoff), while
    /// `attempt` is below the policy's retries. A timeout is not retried. Returns any
    /// other answer, and the last 5xx; a 429 it does not wait out is
    /// [`Error::RateLimited`], a failed send [`Error::Network`].
    async fn send_retrying<F, Fut>(
        &self,
        url: &Url,
        reference: &str,
        attempt: &mut u32,
        build: F,
    ) -> Result<Response, Error>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = RequestBuilder>,
    {
        loop {
            let request = build().await;
            self.requests.fetch_add(1, Ordering::Relaxed);
            let response = match request.send().await {
                Ok(response) => response,
                Err(error) if *attempt < self.policy.retries && is_retryable(&error) => {
                    tracing::debug!(%url, %error, attempt, "retrying after a network error");
                    tokio::time::sleep(self.backoff(*attempt)).await;
                    *attempt += 1;
                    continue;
                }
                Err(source) => {
                    return Err(Error::Network {
                        reference: reference.to_owned(),
                        source,
                    });
                }
            };
            let status = response.status();
            match status {
                StatusCode::TOO_MANY_REQUESTS => {
                    let retry_after = retry_after(response.headers());
                    let wait = retry_after.unwrap_or_else(|| self.backoff(*attempt));
                    if *attempt < self.policy.retries && wait <= self.policy.max_retry_after {
                        tracing::debug!(%url, ?wait, "rate limited; waiting");
                        tokio::time::sleep(wait).await;
                        *attempt += 1;
                    } else {
                        return Err(Error::RateLimited {
                            reference: reference.to_owned(),
                            retry_after,
                        });
                    }
                }
                StatusCode::INTERNAL_SERVER_ERROR
                | StatusCode::BAD_GATEWAY
                | StatusCode::SERVICE_UNAVAILABLE
                | StatusCode::GATEWAY_TIMEOUT
                    if *attempt < self.policy.retries =>
                {
                    tracing::debug!(%url, %status, attempt, "retrying after a server error");
                    tokio::time::sleep(self.backoff(*attempt)).await;
                    *attempt += 1;
                }
                _ => return Ok(response),
            }
        }
    }

    /// Exponential backoff with jitter: base × 2^attempt, ±25 %, capped.
    fn backoff(&self, attempt: u32) -> Duration {
        let exponential = self
            .policy
            .backoff
            .saturating_mul(1 << attempt.min(16))
            .min(self.policy.max_backoff);
        let jitter = rand::random_range(0.75..1.25);
        exponential.mul_f64(jitter)
    }

    /// The `Authorization` header we already know how to make for this call.
    async fn authorization(&self, call: &Call<'_>) -> Option<String> {
        {
            let tokens = self
                .tokens
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            if let Some(token) = tokens.get(&(call.registry.to_owned(), call.scope.clone()))
                && token.is_fresh()
            {
                return Some(format!("Bearer {}", token.value));
            }
        }
        let basic = self
            .basic
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .contains(call.registry);
        if basic {
            return match self.known.lock().await.get(call.registry) {
                Some(Some(Credentials::Basic { username, password })) => {
                    Some(basic_header(username, password.expose()))
                }
                Some(Some(Credentials::RegistryToken(token))) => {
                    Some(format!("Bearer {}", token.expose()))
                }
                _ => None,
            };
        }
        None
    }

    async fn credentials(&self, registry: &str) -> Result<Option<Credentials>, Error> {
        let mut known = self.known.lock().await;
        if let Some(credentials) = known.get(registry) {
            return Ok(credentials.clone());
        }
        let credentials = self.credentials.lookup(registry).await?;
        known.insert(registry.to_owned(), credentials.clone());
        Ok(credentials)
    }

    /// Answers a challenge: remembers Basic, or fetches a bearer token.
    async fn authenticate(&self, call: &Call<'_>, challenge: &Challenge) -> Result<(), Error> {
        let credentials = self.credentials(call.registry).await?;
        let missing = || Error::Unauthorized {
            reference: call.reference.to_owned(),
            status: 401,
            detail: Some(format!(
                "the registry wants credentials and none were found in {}",
                self.credentials.describe()
            )),
        };
        match challenge {
            Challenge::Basic => {
                if credentials.is_none() {
                    return Err(missing());
                }
                self.basic
                    .lock()
                    .unwrap_or_else(|poisoned| poisoned.into_inner())
                    .insert(call.registry.to_owned());
                Ok(())
            }
            Challenge::Bearer {
                realm,
                service,
                scope,
                ..
            } => {
                if let Some(Credentials::RegistryToken(token)) = &credentials {
                    let token = Token::from_answer(TokenAnswer {
                        token: Some(token.expose().to_owned()),
                        access_token: None,
                        expires_in: Some(3600),
                    });
                    if let Some(token) = token {
                        self.store_token(call, token);
                    }
                    return Ok(());
                }
                let scope = scope.as_deref().unwrap_or(&call.scope);
                let token = self
                    .fetch_token(call, realm, service.as_deref(), scope, credentials.as_ref())
                    .await?;
                self.store_token(call, token);
                Ok(())
            }
        }
    }

    fn store_token(&self, call: &Call<'_>, token: Token) {
        self.tokens
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .insert((call.registry.to_owned(), call.scope.clone()), token);
    }

    /// The distribution token flow: `GET realm?service=…&scope=…` (with Basic auth when
    /// we have a password), or `POST realm` with a refresh token (identity tokens).
    /// Retried like any request ([`Transport::send_retrying`]), with a budget of its own.
    async fn fetch_token(
        &self,
        call: &Call<'_>,
        realm: &str,
        service: Option<&str>,
        scope: &str,
        credentials: Option<&Credentials>,
    ) -> Result<Token, Error> {
        let protocol = |message: String| Error::Protocol {
            reference: call.reference.to_owned(),
            message,
        };
        let mut url = Url::parse(realm)
            .map_err(|error| protocol(format!("bad token realm {realm:?}: {error}")))?;
        let refresh = match credentials {
            Some(Credentials::IdentityToken(refresh)) => Some(refresh),
            _ => None,
        };
        let form = refresh.map(|refresh| {
            let mut form = url::form_urlencoded::Serializer::new(String::new());
            form.append_pair("grant_type", "refresh_token")
                .append_pair("refresh_token", refresh.expose())
                .append_pair("client_id", "fleet")
                .append_pair("scope", scope);
            if let Some(service) = service {
                form.append_pair("service", service);
            }
            form.finish()
        });
        if form.is_none() {
            url.query_pairs_mut().clear();
            if let Some(service) = service {
                url.query_pairs_mut().append_pair("service", service);
            }
            url.query_pairs_mut().append_pair("scope", scope);
        }
        let build = || {
            let request = match &form {
                Some(form) => self
                    .http
                    .post(url.clone())
                    .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
                    .body(form.clone()),
                None => match credentials {
                    Some(Credentials::Basic { username, password }) => {
                        self.http.get(url.clone()).header(
                            header::AUTHORIZATION,
                            basic_header(username, password.expose()),
                        )
                    }
                    _ => self.http.get(url.clone()),
                },
            };
            std::future::ready(request)
        };
        let mut attempt = 0;
        let response = self
            .send_retrying(&url, call.reference, &mut attempt, build)
            .await?;
        let status = response.status();
        if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
            return Err(unauthorized(call, status, response).await);
        }
        if !status.is_success() {
            return Err(http_error(call.reference, response).await);
        }
        let answer: TokenAnswer = response
            .json()
            .await
            .map_err(|error| protocol(format!("unreadable token answer: {error}")))?;
        Token::from_answer(answer)
            .ok_or_else(|| protocol("the token service sent no token".to_owned()))
    }
}

fn basic_header(username: &str, password: &str) -> String {
    let encoded =
        base64::engine::general_purpose::STANDARD.encode(format!("{username}:{password}"));
    format!("Basic {encoded}")
}

/// Connection errors are retried; a timeout is not: a registry that did not answer
/// within the timeout is hung, and retrying it would multiply the wait (three retries
/// of a 30 s timeout kept a command waiting two minutes).
fn is_retryable(error: &reqwest::Error) -> bool {
    !error.is_timeout() && (error.is_connect() || error.is_request())
}

/// `Retry-After` as seconds or as an HTTP date.
pub(crate) fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let value = headers.get(header::RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    static PARSER: jiff::fmt::rfc2822::DateTimeParser = jiff::fmt::rfc2822::DateTimeParser::new();
    let when = PARSER.parse_timestamp(value).ok()?;
    let seconds = when.as_second() - jiff::Timestamp::now().as_second();
    Some(Duration::from_secs(seconds.max(0).unsigned_abs()))
}

async fn unauthorized(call: &Call<'_>, status: StatusCode, response: Response) -> Error {
    Error::Unauthorized {
        reference: call.reference.to_owned(),
        status: status.as_u16(),
        detail: error_detail(response).await,
    }
}

/// The error for a response whose status the caller did not expect:
/// [`Error::Http`] with the status and the registry's message.
pub(crate) async fn http_error(reference: &str, response: Response) -> Error {
    let status = response.status().as_u16();
    Error::Http {
        reference: reference.to_owned(),
        status,
        detail: error_detail(response).await,
    }
}

/// The registry's error message: `CODE: message` from `{"errors": [...]}`, a token
/// service's `details`, or the start of the body.
pub(crate) async fn error_detail(response: Response) -> Option<String> {
    let body = response.bytes().await.ok()?;
    detail_of(&body)
}

pub(crate) fn detail_of(body: &[u8]) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct Errors {
        #[serde(default)]
        errors: Vec<RegistryError>,
        details: Option<String>,
    }
    #[derive(serde::Deserialize)]
    struct RegistryError {
        code: Option<String>,
        message: Option<String>,
    }
    if let Ok(parsed) = serde_json::from_slice::<Errors>(body) {
        let messages: Vec<String> = parsed
            .errors
            .iter()
            .map(|error| match (&error.code, &error.message) {
                (Some(code), Some(message)) => format!("{code}: {message}"),
                (Some(text), None) | (None, Some(text)) => text.clone(),
                (None, None) => String::new(),
            })
            .filter(|message| !message.is_empty())
            .collect();
        if !messages.is_empty() {
            return Some(messages.join("; "));
        }
        if let Some(details) = parsed.details {
            return Some(details);
        }
    }
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    (!text.is_empty()).then(|| text.chars().take(200).collect())
}

/// The first registry error code in a body (`NAME_UNKNOWN`, `MANIFEST_UNKNOWN`, …).
pub(crate) fn error_code(body: &[u8]) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct Errors {
        errors: Vec<Code>,
    }
    #[derive(serde::Deserialize)]
    struct Code {
        code: String,
    }
    serde_json::from_slice::<Errors>(body)
        .ok()?
        .errors
        .into_iter()
        .next()
        .map(|error| error.code)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_forms() {
        let check = |value: &str| {
            let mut headers = HeaderMap::new();
            headers.insert(header::RETRY_AFTER, HeaderValue::from_str(value).unwrap());
            retry_after(&headers)
        };
        assert_eq!(check("7"), Some(Duration::from_secs(7)));
        assert_eq!(check("Wed, 21 Oct 2015 07:28:00 GMT"), Some(Duration::ZERO));
        let later = jiff::Timestamp::now() + jiff::SignedDuration::from_secs(120);
        let http_date = jiff::fmt::rfc2822::DateTimePrinter::new()
            .timestamp_to_rfc9110_string(&later)
            .unwrap();
        let wait = check(&http_date).unwrap();
        assert!((118..=120).contains(&wait.as_secs()), "{wait:?}");
        assert_eq!(check("soon"), None);
    }

    #[test]
    fn error_details() {
        assert_eq!(
            detail_of(br#"{"errors":[{"code":"NAME_UNKNOWN","message":"repository name not known to registry","detail":{"name":"x"}}]}"#),
            Some("NAME_UNKNOWN: repository name not known to registry".to_owned())
        );
        assert_eq!(
            detail_of(br#"{"details":"incorrect username or password"}"#),
            Some("incorrect username or password".to_owned())
        );
        assert_eq!(detail_of(b"  plain text\n"), Some("plain text".to_owned()));
        assert_eq!(detail_of(b""), None);
        assert_eq!(
            error_code(br#"{"errors":[{"code":"MANIFEST_UNKNOWN","message":"m"}]}"#),
            Some("MANIFEST_UNKNOWN".to_owned())
        );
        assert_eq!(error_code(b"{}"), None);
    }
}
