//! A small in-process registry that follows the distribution spec where the tests want
//! it to, and departs from it the ways real registries do: pagination variants, scripted
//! failures (503, 429), and a bearer-token or Basic challenge.

#![allow(dead_code, unreachable_pub)]

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::body::Body;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};

/// How the tag list paginates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pagination {
    /// The spec: honours `n` (up to 1000) and `last`, sends `Link` while more remain.
    Spec,
    /// Honours `n` and `last` but never sends `Link`.
    LastOnly,
    /// Caps pages at 50 whatever `n` says (as Quay does), sends an absolute `Link`.
    Capped50,
    /// Like distribution 2.8: ignores `n` and `last`, sends everything unsorted.
    Everything,
}

/// How the registry wants to be authenticated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthMode {
    None,
    /// A bearer token from `/token`, anonymous.
    AnonymousBearer,
    /// A bearer token from `/token`, which wants Basic `user:pass`.
    BearerWithBasic {
        user: String,
        pass: String,
    },
    /// Basic `user:pass` on every request.
    Basic {
        user: String,
        pass: String,
    },
    /// A bearer token from `POST /token` with this OAuth refresh token (what
    /// `identitytoken` in a Docker config holds).
    BearerWithRefreshToken {
        refresh_token: String,
    },
}

/// A canned answer the server gives before serving normally.
#[derive(Debug, Clone)]
pub struct Scripted {
    pub status: u16,
    pub headers: Vec<(&'static str, String)>,
}

pub struct FakeState {
    pub tags: Vec<String>,
    pub pagination: Pagination,
    pub auth: AuthMode,
    pub addr: Mutex<Option<SocketAddr>>,
    /// How often each tag was sent in a tag-list page.
    pub served: Mutex<HashMap<String, usize>>,
    pub tag_pages: AtomicUsize,
    pub manifest_heads: AtomicUsize,
    pub token_requests: AtomicUsize,
    pub script: Mutex<VecDeque<Scripted>>,
    /// Canned answers of the token endpoint only, given before it serves normally.
    pub token_script: Mutex<VecDeque<Scripted>>,
}

pub struct FakeRegistry {
    pub addr: SocketAddr,
    pub state: Arc<FakeState>,
}

impl FakeRegistry {
    pub async fn start(tags: Vec<String>, pagination: Pagination, auth: AuthMode) -> FakeRegistry {
        let state = Arc::new(FakeState {
            tags,
            pagination,
            auth,
            addr: Mutex::new(None),
            served: Mutex::new(HashMap::new()),
            tag_pages: AtomicUsize::new(0),
            manifest_heads: AtomicUsize::new(0),
            token_requests: AtomicUsize::new(0),
            script: Mutex::new(VecDeque::new()),
            token_script: Mutex::new(VecDeque::new()),
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        *state.addr.lock().unwrap() = Some(addr);
        let app = axum::Router::new()
            .fallback(handle)
            .with_state(state.clone());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        FakeRegistry { addr, state }
    }

    /// `127.0.0.1:PORT/app`.
    pub fn image(&self, rest: &str) -> fleet_registry::ImageRef {
        format!("{}/{rest}", self.addr).parse().unwrap()
    }

    pub fn script(&self, scripted: Scripted) {
        self.state.script.lock().unwrap().push_back(scripted);
    }

    /// Queues a canned answer for the next request to the token endpoint.
    pub fn script_token(&self, scripted: Scripted) {
        self.state.token_script.lock().unwrap().push_back(scripted);
    }
}

/// 2,500 distinct version tags, `v0.0.0` … `v4.19.24`.
pub fn many_tags() -> Vec<String> {
    (0..2500)
        .map(|i| format!("v{}.{}.{}", i / 500, (i / 25) % 20, i % 25))
        .collect()
}

/// The digest the fake registry gives a tag's manifest.
pub fn digest_of(tag: &str) -> String {
    fleet_registry::Digest::sha256(tag.as_bytes()).to_string()
}

const TOKEN: &str = "t0k3n";

async fn handle(
    State(state): State<Arc<FakeState>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
    body: String,
) -> Response {
    let scripted = state.script.lock().unwrap().pop_front();
    if let Some(scripted) = scripted {
        return scripted_response(scripted);
    }
    let addr = state.addr.lock().unwrap().unwrap();
    let authorization = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let basic = |user: &str, pass: &str| {
        use base64::Engine as _;
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"))
        )
    };
    let path = uri.path();
    if path == "/token" {
        state.token_requests.fetch_add(1, Ordering::SeqCst);
        let scripted = state.token_script.lock().unwrap().pop_front();
        if let Some(scripted) = scripted {
            return scripted_response(scripted);
        }
        let refused = match &state.auth {
            AuthMode::BearerWithBasic { user, pass } => authorization != basic(user, pass),
            AuthMode::BearerWithRefreshToken { refresh_token } => {
                let form: HashMap<String, String> = url::form_urlencoded::parse(body.as_bytes())
                    .into_owned()
                    .collect();
                method != Method::POST
                    || form.get("grant_type").map(String::as_str) != Some("refresh_token")
                    || form.get("refresh_token") != Some(refresh_token)
                    || form.get("scope").map(String::as_str) != Some("repository:app:pull")
            }
            _ => false,
        };
        if refused {
            return (
                StatusCode::UNAUTHORIZED,
                r#"{"details":"incorrect username or password"}"#,
            )
                .into_response();
        }
        return (
            [(header::CONTENT_TYPE, "application/json")],
            format!(r#"{{"token":"{TOKEN}","expires_in":300}}"#),
        )
            .into_response();
    }
    let challenge = match &state.auth {
        AuthMode::None => None,
        AuthMode::AnonymousBearer
        | AuthMode::BearerWithBasic { .. }
        | AuthMode::BearerWithRefreshToken { .. } => (authorization
            != format!("Bearer {TOKEN}"))
        .then(|| {
            format!(
                r#"Bearer realm="http://{addr}/token",service="fake",scope="repository:app:pull""#
            )
        }),
        AuthMode::Basic { user, pass } => {
            (authorization != basic(user, pass)).then(|| r#"Basic realm="fake""#.to_owned())
        }
    };
    if let Some(challenge) = challenge {
        return (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, challenge)],
            r#"{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}"#,
        )
            .into_response();
    }
    let Some(rest) = path.strip_prefix("/v2/") else {
        return StatusCode::NOT_FOUND.into_response();
    };
    if let Some(name) = rest.strip_suffix("/tags/list") {
        if name != "app" {
            return (StatusCode::NOT_FOUND, r#"{"errors":[{"code":"NAME_UNKNOWN","message":"repository name not known to registry"}]}"#)
                .into_response();
        }
        return tag_page(&state, addr, name, &query);
    }
    if let Some((name, reference)) = rest.split_once("/manifests/") {
        if name != "app" || !state.tags.iter().any(|tag| tag == reference) {
            return (
                StatusCode::NOT_FOUND,
                r#"{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown"}]}"#,
            )
                .into_response();
        }
        if method == Method::HEAD {
            state.manifest_heads.fetch_add(1, Ordering::SeqCst);
        }
        return (
            [
                (
                    header::CONTENT_TYPE,
                    "application/vnd.oci.image.manifest.v1+json".to_owned(),
                ),
                (
                    header::HeaderName::from_static("docker-content-digest"),
                    digest_of(reference),
                ),
            ],
            Body::empty(),
        )
            .into_response();
    }
    StatusCode::NOT_FOUND.into_response()
}

fn scripted_response(scripted: Scripted) -> Response {
    let mut response = Response::builder().status(scripted.status);
    for (name, value) in scripted.headers {
        response = response.header(name, value);
    }
    response
        .body(Body::from(
            "{\"errors\":[{\"code\":\"TOOMANYREQUESTS\",\"message\":\"slow down\"}]}",
        ))
        .unwrap()
}

fn tag_page(
    state: &FakeState,
    addr: SocketAddr,
    name: &str,
    query: &HashMap<String, String>,
) -> Response {
    state.tag_pages.fetch_add(1, Ordering::SeqCst);
    let mut sorted = state.tags.clone();
    sorted.sort();
    let n: usize = query.get("n").and_then(|n| n.parse().ok()).unwrap_or(100);
    let start = match query.get("last") {
        Some(last) => sorted.partition_point(|tag| tag <= last),
        None => 0,
    };
    let (page, link) = match state.pagination {
        Pagination::Spec | Pagination::LastOnly | Pagination::Capped50 => {
            let size = match state.pagination {
                Pagination::Capped50 => n.min(50),
                _ => n.min(1000),
            };
            let page: Vec<String> = sorted[start..].iter().take(size).cloned().collect();
            let more = start + page.len() < sorted.len();
            let last = page.last().cloned().unwrap_or_default();
            let link = match state.pagination {
                Pagination::Spec if more => Some(format!(
                    r#"</v2/{name}/tags/list?n={size}&last={last}>; rel="next""#
                )),
                Pagination::Capped50 if more => Some(format!(
                    r#"<http://{addr}/v2/{name}/tags/list?last={last}&n={size}>; rel="next""#
                )),
                _ => None,
            };
            (page, link)
        }
        Pagination::Everything => {
            // Unsorted, as distribution 2.8 answers: a fixed shuffle.
            let mut all = state.tags.clone();
            let len = all.len();
            for i in 0..len {
                all.swap(i, (i * 7919 + 13) % len);
            }
            (all, None)
        }
    };
    {
        let mut served = state.served.lock().unwrap();
        for tag in &page {
            *served.entry(tag.clone()).or_default() += 1;
        }
    }
    let body = serde_json::json!({ "name": name, "tags": page }).to_string();
    let mut response = Response::builder().header(header::CONTENT_TYPE, "application/json");
    if let Some(link) = link {
        response = response.header(header::LINK, link);
    }
    response.body(Body::from(body)).unwrap()
}
