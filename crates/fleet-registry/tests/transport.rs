//! The transport against an in-process registry: retries, rate limiting, the token flow,
//! Basic auth from a Docker config file, and errors that tell cases apart.

mod common;

use std::collections::HashMap;
use std::time::Duration;

use common::{AuthMode, FakeRegistry, Pagination, Scripted};
use fleet_registry::{
    ChannelRef, Client, ClientConfig, CredentialSource, Credentials, Error, ResolveOptions, Secret,
};

fn config(credentials: CredentialSource) -> ClientConfig {
    let mut config = ClientConfig::default().credentials(credentials);
    config.backoff = Duration::from_millis(1);
    config.max_backoff = Duration::from_millis(5);
    config
}

fn client() -> Client {
    Client::new(config(CredentialSource::Anonymous)).unwrap()
}

fn tags() -> Vec<String> {
    vec![
        "v1.0.0".to_owned(),
        "v1.1.0".to_owned(),
        "latest".to_owned(),
    ]
}

async fn registry(auth: AuthMode) -> FakeRegistry {
    FakeRegistry::start(tags(), Pagination::Spec, auth).await
}

fn status(status: u16, headers: Vec<(&'static str, String)>) -> Scripted {
    Scripted { status, headers }
}

#[tokio::test]
async fn server_errors_are_retried() {
    let registry = registry(AuthMode::None).await;
    registry.script(status(503, vec![]));
    registry.script(status(502, vec![]));
    let client = client();
    assert_eq!(
        client
            .fetch_tags(&registry.image("app"))
            .await
            .unwrap()
            .len(),
        3
    );
    assert_eq!(client.request_count(), 3);
}

#[tokio::test]
async fn server_errors_give_up_after_the_retries() {
    let registry = registry(AuthMode::None).await;
    for _ in 0..4 {
        registry.script(status(503, vec![]));
    }
    let client = client();
    let error = client.fetch_tags(&registry.image("app")).await.unwrap_err();
    assert!(
        matches!(error, Error::Http { status: 503, .. }),
        "{error:?}"
    );
    assert!(error.is_transient());
    assert_eq!(
        error.to_string(),
        format!(
            "registry answered HTTP 503 for {}/app: TOOMANYREQUESTS: slow down",
            registry.addr
        )
    );
    assert_eq!(client.request_count(), 4);
}

#[tokio::test]
async fn a_short_retry_after_is_waited_out() {
    let registry = registry(AuthMode::None).await;
    registry.script(status(429, vec![("retry-after", "0".to_owned())]));
    let client = client();
    assert_eq!(
        client
            .fetch_tags(&registry.image("app"))
            .await
            .unwrap()
            .len(),
        3
    );
    assert_eq!(client.request_count(), 2);
}

#[tokio::test]
async fn a_long_retry_after_is_reported_as_rate_limiting() {
    let registry = registry(AuthMode::None).await;
    registry.script(status(429, vec![("retry-after", "120".to_owned())]));
    let client = client();
    let error = client.fetch_tags(&registry.image("app")).await.unwrap_err();
    match &error {
        Error::RateLimited { retry_after, .. } => {
            assert_eq!(*retry_after, Some(Duration::from_secs(120)))
        }
        other => panic!("expected RateLimited, got {other:?}"),
    }
    assert_eq!(
        error.to_string(),
        format!(
            "rate limited by the registry while accessing {}/app (retry after 120s)",
            registry.addr
        )
    );
    assert_eq!(client.request_count(), 1);
}

#[tokio::test]
async fn anonymous_bearer_tokens_are_fetched_once_and_reused() {
    let registry = registry(AuthMode::AnonymousBearer).await;
    let client = client();
    let image = registry.image("app");
    assert_eq!(client.fetch_tags(&image).await.unwrap().len(), 3);
    // 401, token, retry.
    assert_eq!(client.request_count(), 3);
    let head = client
        .head_manifest(&image.with_tag("v1.1.0").unwrap())
        .await
        .unwrap();
    assert_eq!(head.digest.to_string(), common::digest_of("v1.1.0"));
    assert_eq!(client.request_count(), 4);
    assert_eq!(
        registry
            .state
            .token_requests
            .load(std::sync::atomic::Ordering::SeqCst),
        1
    );
}

#[tokio::test]
async fn token_service_credentials() {
    let auth = AuthMode::BearerWithBasic {
        user: "alice".to_owned(),
        pass: "s3cret".to_owned(),
    };
    let registry = registry(auth).await;
    let host = registry.addr.to_string();
    let with = |credentials: Credentials| {
        Client::new(config(CredentialSource::Static(HashMap::from([(
            host.clone(),
            credentials,
        )]))))
        .unwrap()
    };

    let good = with(Credentials::basic("alice", "s3cret"));
    assert_eq!(
        good.fetch_tags(&registry.image("app")).await.unwrap().len(),
        3
    );

    let bad = with(Credentials::basic("alice", "wrong"));
    let error = bad.fetch_tags(&registry.image("app")).await.unwrap_err();
    assert!(
        matches!(error, Error::Unauthorized { status: 401, .. }),
        "{error:?}"
    );
    assert_eq!(
        error.to_string(),
        format!("unauthorized to access {host}/app (HTTP 401): incorrect username or password")
    );
    assert!(
        !format!("{error:?}").contains("wrong"),
        "no secret in errors"
    );

    let anonymous = client();
    let error = anonymous
        .fetch_tags(&registry.image("app"))
        .await
        .unwrap_err();
    assert!(matches!(error, Error::Unauthorized { .. }), "{error:?}");
}

#[tokio::test]
async fn basic_auth_from_a_docker_config_directory() {
    let registry = registry(AuthMode::Basic {
        user: "bob".to_owned(),
        pass: "pw".to_owned(),
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    // base64("bob:pw")
    let config_json = format!(
        r#"{{"auths": {{"http://{}": {{"auth": "Ym9iOnB3"}}}}}}"#,
        registry.addr
    );
    std::fs::write(dir.path().join("config.json"), config_json).unwrap();
    let client = Client::new(config(CredentialSource::DockerConfigDir(
        dir.path().to_owned(),
    )))
    .unwrap();
    let image = registry.image("app");
    assert_eq!(client.fetch_tags(&image).await.unwrap().len(), 3);
    assert_eq!(client.request_count(), 2, "401, then Basic");
    client.fetch_tags(&image).await.unwrap();
    assert_eq!(
        client.request_count(),
        3,
        "Basic sent up front from then on"
    );

    let empty = tempfile::tempdir().unwrap();
    let without = Client::new(config(CredentialSource::DockerConfigDir(
        empty.path().to_owned(),
    )))
    .unwrap();
    let error = without.fetch_tags(&image).await.unwrap_err();
    assert_eq!(
        error.to_string(),
        format!(
            "unauthorized to access {}/app (HTTP 401): the registry wants credentials and none were found in {}",
            registry.addr,
            empty.path().join("config.json").display()
        )
    );
}

#[tokio::test]
async fn missing_repositories_and_missing_tags_are_different_errors() {
    let registry = registry(AuthMode::None).await;
    let client = client();
    let host = registry.addr;

    let error = client
        .head_manifest(&registry.image("app:v9"))
        .await
        .unwrap_err();
    assert!(
        matches!(error, Error::ManifestNotFound { status: 404, .. }),
        "{error:?}"
    );
    assert_eq!(
        error.to_string(),
        format!("manifest {host}/app:v9 not found: no such tag or digest (HTTP 404)")
    );

    let error = client
        .head_manifest(&registry.image("nope:v1"))
        .await
        .unwrap_err();
    assert!(
        matches!(error, Error::RepositoryNotFound { status: 404, .. }),
        "{error:?}"
    );
    assert_eq!(
        error.to_string(),
        format!("repository {host}/nope:v1 not found (HTTP 404)")
    );

    let error = client
        .fetch_tags(&registry.image("nope"))
        .await
        .unwrap_err();
    assert!(
        matches!(error, Error::RepositoryNotFound { .. }),
        "{error:?}"
    );

    let tracked: ChannelRef = format!("{host}/app:v2").parse().unwrap();
    let error = client
        .resolve(&tracked, ResolveOptions::default())
        .await
        .unwrap_err();
    assert_eq!(
        error.to_string(),
        format!("no tag of {host}/app matches channel v2 (3 tags listed)")
    );
}

#[tokio::test]
async fn unreachable_registries_are_network_errors() {
    // Bind, then close: nothing listens on the port.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut config = config(CredentialSource::Anonymous);
    config.retries = 1;
    let client = Client::new(config).unwrap();
    let image = format!("127.0.0.1:{port}/app").parse().unwrap();
    let error = client.fetch_tags(&image).await.unwrap_err();
    assert!(matches!(error, Error::Network { .. }), "{error:?}");
    assert_eq!(
        error.to_string(),
        format!("cannot reach the registry for 127.0.0.1:{port}/app")
    );
    assert!(std::error::Error::source(&error).is_some());
    assert_eq!(client.request_count(), 2);
}

#[tokio::test]
async fn identity_tokens_are_exchanged_at_the_token_service() {
    let registry = registry(AuthMode::BearerWithRefreshToken {
        refresh_token: "refresh-me".to_owned(),
    })
    .await;
    let host = registry.addr.to_string();
    let credentials = Credentials::IdentityToken(Secret::new("refresh-me"));
    let client = Client::new(config(CredentialSource::Static(HashMap::from([(
        host,
        credentials,
    )]))))
    .unwrap();
    assert_eq!(
        client
            .fetch_tags(&registry.image("app"))
            .await
            .unwrap()
            .len(),
        3
    );
    assert_eq!(client.request_count(), 3, "401, POST token, retry");
}

#[tokio::test]
/// Regression: a hung registry was retried after each timeout, so a command waited
/// for four timeouts (two minutes with the defaults) before failing.
async fn a_registry_that_never_answers_fails_after_one_timeout() {
    // Accepts connections and never answers.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let mut open = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            open.push(socket);
        }
    });
    let mut config = config(CredentialSource::Anonymous);
    config.timeout = Duration::from_millis(300);
    config.retries = 3;
    let client = Client::new(config).unwrap();
    let error = client
        .fetch_tags(&format!("{addr}/app").parse().unwrap())
        .await
        .unwrap_err();
    match &error {
        Error::Network { source, .. } => assert!(source.is_timeout(), "{source:?}"),
        other => panic!("expected a network timeout, got {other:?}"),
    }
    assert_eq!(client.request_count(), 1, "a timeout is not retried");
}

#[tokio::test]
/// Regression: the token request had a retry loop of its own, which gave up at once
/// on a 429 instead of waiting out its `Retry-After` as every other request does.
async fn a_rate_limited_token_request_is_retried_after_retry_after() {
    let registry = registry(AuthMode::AnonymousBearer).await;
    registry.script_token(status(429, vec![("retry-after", "0".to_owned())]));
    let client = client();
    assert_eq!(
        client
            .fetch_tags(&registry.image("app"))
            .await
            .unwrap()
            .len(),
        3
    );
    assert_eq!(client.request_count(), 4, "401, 429 token, token, retry");
    assert_eq!(
        registry
            .state
            .token_requests
            .load(std::sync::atomic::Ordering::SeqCst),
        2
    );
}

#[tokio::test]
async fn an_unavailable_token_service_is_retried() {
    let registry = registry(AuthMode::AnonymousBearer).await;
    registry.script_token(status(503, vec![]));
    let client = client();
    assert_eq!(
        client
            .fetch_tags(&registry.image("app"))
            .await
            .unwrap()
            .len(),
        3
    );
    assert_eq!(client.request_count(), 4, "401, 503 token, token, retry");
    assert_eq!(
        registry
            .state
            .token_requests
            .load(std::sync::atomic::Ordering::SeqCst),
        2
    );
}
