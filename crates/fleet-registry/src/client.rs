//! The registry client: configuration, resolution, manifests and platforms.
//! Tag listing lives in `tags.rs`, pushing in `push.rs`.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use reqwest::header;
use reqwest::{Method, Response, StatusCode};

use crate::cache::TagCache;
use crate::channel::{Channel, ChannelRef, ResolveOptions};
use crate::credentials::CredentialSource;
use crate::digest::Digest;
use crate::error::Error;
use crate::manifest::{
    MANIFEST_ACCEPT, Manifest, ManifestHead, ManifestKind, is_index, media_type_of,
};
use crate::platform::Platform;
use crate::reference::ImageRef;
use crate::target::Target;
use crate::transport::{Call, Policy, Transport, error_code, http_error};

/// How a [`Client`] behaves. Start from [`ClientConfig::default`] and change what you need.
///
/// Registries on `localhost`, `127.0.0.0/8` and `[::1]` are spoken to over plain HTTP,
/// like Docker does; so are the hosts in `insecure_registries`. Every other registry
/// is HTTPS only.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ClientConfig {
    /// Registries (`host` or `host:port`) to reach over plain HTTP.
    pub insecure_registries: Vec<String>,
    /// Where credentials come from (default: the Docker configuration file).
    pub credentials: CredentialSource,
    /// The longest one request may take (default 30 s; blob uploads get 30 min).
    pub timeout: Duration,
    /// The longest connecting may take (default 10 s).
    pub connect_timeout: Duration,
    /// How many times a request is retried after a connection error, a 5xx or a 429
    /// (default 3); a timeout is not retried.
    pub retries: u32,
    /// The first backoff; it doubles on each retry, with jitter (default 250 ms).
    pub backoff: Duration,
    /// The longest backoff (default 8 s).
    pub max_backoff: Duration,
    /// The longest `Retry-After` the client waits out by itself before reporting
    /// [`Error::RateLimited`] (default 10 s; zero reports every 429 at once).
    pub max_retry_after: Duration,
    /// How long a repository's tag list is reused (default 60 s; zero disables the cache).
    pub tag_cache_ttl: Duration,
    /// A directory mirroring the tag cache, so that separate processes share it.
    pub tag_cache_dir: Option<PathBuf>,
    /// Tags asked per page (`n`; default 1000).
    pub page_size: u32,
    /// The `User-Agent`.
    pub user_agent: String,
}

impl Default for ClientConfig {
    fn default() -> ClientConfig {
        ClientConfig {
            insecure_registries: Vec::new(),
            credentials: CredentialSource::default(),
            timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(10),
            retries: 3,
            backoff: Duration::from_millis(250),
            max_backoff: Duration::from_secs(8),
            max_retry_after: Duration::from_secs(10),
            tag_cache_ttl: Duration::from_secs(60),
            tag_cache_dir: None,
            page_size: 1000,
            user_agent: format!("fleet-registry/{}", env!("CARGO_PKG_VERSION")),
        }
    }
}

impl ClientConfig {
    /// Adds a registry to reach over plain HTTP.
    pub fn insecure_registry(mut self, registry: impl Into<String>) -> ClientConfig {
        self.insecure_registries.push(registry.into());
        self
    }

    /// Sets where credentials come from.
    pub fn credentials(mut self, credentials: CredentialSource) -> ClientConfig {
        self.credentials = credentials;
        self
    }

    /// Sets how long tag lists are reused.
    pub fn tag_cache_ttl(mut self, ttl: Duration) -> ClientConfig {
        self.tag_cache_ttl = ttl;
        self
    }

    /// Mirrors the tag cache in a directory.
    pub fn tag_cache_dir(mut self, dir: impl Into<PathBuf>) -> ClientConfig {
        self.tag_cache_dir = Some(dir.into());
        self
    }

    /// Sets the number of retries.
    pub fn retries(mut self, retries: u32) -> ClientConfig {
        self.retries = retries;
        self
    }
}

/// An OCI distribution client. Cheap to clone; clones share connections, tokens, the
/// tag cache and the request counter.
///
/// ```no_run
/// use fleet_registry::{ChannelRef, Client, ClientConfig, ResolveOptions};
///
/// # async fn example() -> Result<(), fleet_registry::Error> {
/// let client = Client::new(ClientConfig::default())?;
/// let tracked: ChannelRef = "ghcr.io/owner/app:v1".parse()?;
/// let resolved = client.resolve(&tracked, ResolveOptions::default()).await?;
/// println!("{} -> {:?} {}", tracked, resolved.tag, resolved.digest);
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

struct Inner {
    transport: Transport,
    cache: TagCache,
    insecure: Vec<String>,
    page_size: u32,
}

/// A channel resolved to a manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Resolved {
    /// The repository (no tag or digest).
    pub image: ImageRef,
    /// The channel resolved.
    pub channel: Channel,
    /// The tag chosen (`None` for a digest channel).
    pub tag: Option<String>,
    /// The manifest's digest: an index digest for multi-platform images.
    pub digest: Digest,
    /// The manifest's media type, when the registry said.
    pub media_type: Option<String>,
}

impl Resolved {
    /// `repository:tag@digest` (or `repository@digest`): what to pull.
    pub fn pinned(&self) -> ImageRef {
        let image = match &self.tag {
            Some(tag) => self
                .image
                .with_tag(tag)
                .unwrap_or_else(|_| self.image.clone()),
            None => self.image.clone(),
        };
        image.with_digest(self.digest.clone())
    }
}

/// The HTTP client, verifying servers against the system's CA certificates, or against
/// Mozilla's (compiled in, from `webpki-root-certs`) where the system has none: a
/// `FROM scratch` image, a minimal host. rustls's platform verifier fails to set up
/// without a single root, and fleet should still reach registries then.
fn http_client(config: &ClientConfig) -> Result<reqwest::Client, Error> {
    let builder = || {
        reqwest::Client::builder()
            .user_agent(config.user_agent.clone())
            .timeout(config.timeout)
            .connect_timeout(config.connect_timeout)
    };
    let system = match builder().build() {
        Ok(client) => return Ok(client),
        Err(error) => error,
    };
    // Only the roots differ from the first attempt, so the roots were what failed.
    let mozilla = webpki_root_certs::TLS_SERVER_ROOT_CERTS
        .iter()
        .filter_map(|der| reqwest::Certificate::from_der(der).ok());
    match builder().tls_certs_only(mozilla).build() {
        Ok(client) => {
            tracing::debug!(
                error = %error_chain(&system),
                "no usable CA certificates on this system; \
                 verifying registries against Mozilla's roots compiled into fleet"
            );
            Ok(client)
        }
        Err(_) => Err(Error::ClientSetup(system)),
    }
}

/// An error and its causes, `: `-separated.
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut out = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        out.push_str(": ");
        out.push_str(&cause.to_string());
        source = cause.source();
    }
    out
}

/// What a 404 means to the request that got it.
pub(crate) enum Missing {
    /// The repository: [`Error::RepositoryNotFound`].
    Repository,
    /// A manifest: [`Error::ManifestNotFound`] or [`Error::RepositoryNotFound`], as
    /// [`Client::not_found`] tells them apart.
    Manifest,
    /// A blob, named by this reference: [`Error::ManifestNotFound`].
    Blob(String),
}

impl Client {
    /// A client with this configuration.
    pub fn new(config: ClientConfig) -> Result<Client, Error> {
        let http = http_client(&config)?;
        let policy = Policy {
            retries: config.retries,
            backoff: config.backoff,
            max_backoff: config.max_backoff,
            max_retry_after: config.max_retry_after,
        };
        Ok(Client {
            inner: Arc::new(Inner {
                transport: Transport::new(http, policy, config.credentials),
                cache: TagCache::new(config.tag_cache_ttl, config.tag_cache_dir),
                insecure: config.insecure_registries,
                page_size: config.page_size.max(1),
            }),
        })
    }

    /// How many HTTP requests this client (and its clones) sent so far, token requests
    /// and retries included.
    pub fn request_count(&self) -> u64 {
        self.inner.transport.request_count()
    }

    pub(crate) fn transport(&self) -> &Transport {
        &self.inner.transport
    }

    pub(crate) fn cache(&self) -> &TagCache {
        &self.inner.cache
    }

    pub(crate) fn page_size(&self) -> u32 {
        self.inner.page_size
    }

    pub(crate) fn target(&self, image: &ImageRef) -> Result<Target, Error> {
        Target::new(image, &self.inner.insecure)
    }

    /// Passes a 2xx response through and turns any other into the typed error its
    /// status means: a 404 into what `missing` says is missing, anything else into
    /// [`Error::Http`] with the registry's message.
    pub(crate) async fn success(
        &self,
        target: &Target,
        response: Response,
        missing: Missing,
    ) -> Result<Response, Error> {
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        if status != StatusCode::NOT_FOUND {
            return Err(http_error(&target.reference, response).await);
        }
        Err(match missing {
            Missing::Repository => Error::RepositoryNotFound {
                reference: target.reference.clone(),
                status: status.as_u16(),
            },
            Missing::Manifest => {
                let body = response.bytes().await.unwrap_or_default();
                self.not_found(target, &body).await
            }
            Missing::Blob(reference) => Error::ManifestNotFound {
                reference,
                status: status.as_u16(),
            },
        })
    }

    /// Resolves a channel to a manifest digest: tags are listed (once per cache TTL)
    /// only for version channels; `latest`, plain tags and digests take one `HEAD`.
    pub async fn resolve(
        &self,
        tracked: &ChannelRef,
        options: ResolveOptions,
    ) -> Result<Resolved, Error> {
        let image = tracked.image();
        let channel = tracked.channel();
        let (tag, head) = match channel {
            Channel::Digest(digest) => (
                None,
                self.head_manifest(&image.with_digest(digest.clone()))
                    .await?,
            ),
            Channel::Latest | Channel::Tag(_) => {
                let tag = match channel {
                    Channel::Tag(tag) => tag.as_str(),
                    _ => "latest",
                };
                (
                    Some(tag.to_owned()),
                    self.head_manifest(&image.with_tag(tag)?).await?,
                )
            }
            Channel::Series(_) | Channel::Exact(_) | Channel::Range(_) => {
                let tags = self.list_tags(image).await?;
                let Some(tag) = channel.resolve_with(&tags, options) else {
                    return Err(Error::NoMatchingTag {
                        reference: image.to_string(),
                        channel: channel.to_string(),
                        tags: tags.len(),
                    });
                };
                (
                    Some(tag.to_owned()),
                    self.head_manifest(&image.with_tag(tag)?).await?,
                )
            }
        };
        Ok(Resolved {
            image: image.clone(),
            channel: channel.clone(),
            tag,
            digest: head.digest,
            media_type: head.media_type,
        })
    }

    /// `HEAD`s the manifest `image` names (its digest, else its tag, else `latest`).
    pub async fn head_manifest(&self, image: &ImageRef) -> Result<ManifestHead, Error> {
        let image = with_default_tag(image);
        let target = self.target(&image)?;
        let url = target.url(&format!("manifests/{}", manifest_reference(&image)));
        let call = Call::new(Method::HEAD, url, &target, target.pull())
            .header(header::ACCEPT, MANIFEST_ACCEPT);
        let response = self.transport().send(&call).await?;
        let response = self.success(&target, response, Missing::Manifest).await?;
        let headers = response.headers();
        let digest = Digest::from_headers(headers);
        let media_type = headers
            .get(header::CONTENT_TYPE)
            .and_then(|value| value.to_str().ok())
            .map(|value| value.split(';').next().unwrap_or(value).trim().to_owned());
        let size = headers
            .get(header::CONTENT_LENGTH)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.parse().ok());
        match digest {
            Some(digest) => Ok(ManifestHead {
                digest,
                media_type,
                size,
            }),
            // Some registries send no digest on HEAD: fetch the manifest and hash it.
            None => {
                let manifest = self.get_manifest(&image).await?;
                Ok(ManifestHead {
                    digest: manifest.digest,
                    media_type: Some(manifest.media_type),
                    size: Some(manifest.bytes.len() as u64),
                })
            }
        }
    }

    /// Fetches the manifest or index `image` names, checking its digest.
    pub async fn get_manifest(&self, image: &ImageRef) -> Result<Manifest, Error> {
        let image = with_default_tag(image);
        let target = self.target(&image)?;
        let url = target.url(&format!("manifests/{}", manifest_reference(&image)));
        let call = Call::new(Method::GET, url, &target, target.pull())
            .header(header::ACCEPT, MANIFEST_ACCEPT);
        let response = self.transport().send(&call).await?;
        let response = self.success(&target, response, Missing::Manifest).await?;
        let protocol = |message: String| Error::Protocol {
            reference: target.reference.clone(),
            message,
        };
        let header_digest = Digest::from_headers(response.headers());
        let content_type = response
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|value| value.to_str().ok())
            .map(str::to_owned);
        let bytes = response.bytes().await.map_err(|source| Error::Network {
            reference: target.reference.clone(),
            source,
        })?;
        let digest = match image.digest().or(header_digest.as_ref()) {
            Some(expected) if expected.verify(&bytes) => expected.clone(),
            Some(expected) => {
                return Err(protocol(format!(
                    "the manifest does not hash to {expected}"
                )));
            }
            None => Digest::sha256(&bytes),
        };
        let media_type = media_type_of(content_type.as_deref(), &bytes);
        let kind = if is_index(&media_type) {
            ManifestKind::Index(
                serde_json::from_slice(&bytes)
                    .map_err(|error| protocol(format!("unreadable index: {error}")))?,
            )
        } else {
            ManifestKind::Image(
                serde_json::from_slice(&bytes)
                    .map_err(|error| protocol(format!("unreadable manifest: {error}")))?,
            )
        };
        Ok(Manifest {
            digest,
            media_type,
            bytes,
            kind,
        })
    }

    /// The digest of the manifest for `platform` in the image `image` names: the matching
    /// entry of an index, or the manifest itself when it is a single-platform image whose
    /// configuration matches.
    pub async fn platform_digest(
        &self,
        image: &ImageRef,
        platform: &Platform,
    ) -> Result<Digest, Error> {
        let manifest = self.get_manifest(image).await?;
        let not_found = |available: Vec<String>| Error::PlatformNotFound {
            reference: image.to_string(),
            platform: platform.to_string(),
            available: if available.is_empty() {
                "none".to_owned()
            } else {
                available.join(", ")
            },
        };
        match &manifest.kind {
            ManifestKind::Index(index) => {
                let mut available = Vec::new();
                for entry in &index.manifests {
                    let Some(entry_platform) = &entry.platform else {
                        continue;
                    };
                    let (os, architecture) = (
                        entry_platform.os.to_string(),
                        entry_platform.architecture.to_string(),
                    );
                    if platform.matches(&os, &architecture, entry_platform.variant.as_deref()) {
                        return entry.digest.parse();
                    }
                    // Attestation manifests are `unknown/unknown`; they are no platform.
                    if os != "unknown" {
                        available.push(
                            Platform::new(&os, &architecture, entry_platform.variant.as_deref())
                                .to_string(),
                        );
                    }
                }
                Err(not_found(available))
            }
            ManifestKind::Image(image_manifest) => {
                #[derive(serde::Deserialize)]
                struct ConfigPlatform {
                    #[serde(default)]
                    os: String,
                    #[serde(default)]
                    architecture: String,
                    variant: Option<String>,
                }
                let config_digest: Digest = image_manifest.config.digest.parse()?;
                let bytes = self.get_blob(image, &config_digest).await?;
                let config: ConfigPlatform =
                    serde_json::from_slice(&bytes).map_err(|error| Error::Protocol {
                        reference: image.to_string(),
                        message: format!("unreadable image configuration: {error}"),
                    })?;
                if platform.matches(&config.os, &config.architecture, config.variant.as_deref()) {
                    Ok(manifest.digest)
                } else {
                    Err(not_found(vec![
                        Platform::new(&config.os, &config.architecture, config.variant.as_deref())
                            .to_string(),
                    ]))
                }
            }
        }
    }

    /// Fetches a blob (an image configuration, say) and checks its digest.
    pub async fn get_blob(&self, image: &ImageRef, digest: &Digest) -> Result<bytes::Bytes, Error> {
        let target = self.target(image)?;
        let call = Call::new(
            Method::GET,
            target.url(&format!("blobs/{digest}")),
            &target,
            target.pull(),
        );
        let response = self.transport().send(&call).await?;
        let missing = Missing::Blob(format!("{}@{digest}", image.name()));
        let response = self.success(&target, response, missing).await?;
        let bytes = response.bytes().await.map_err(|source| Error::Network {
            reference: target.reference.clone(),
            source,
        })?;
        if !digest.verify(&bytes) {
            return Err(Error::Protocol {
                reference: target.reference,
                message: format!("blob does not hash to {digest}"),
            });
        }
        Ok(bytes)
    }

    /// Tells a missing repository from a missing tag or digest. distribution answers
    /// `MANIFEST_UNKNOWN` even when the repository does not exist (and a `HEAD` has no
    /// body), so unless the body says `NAME_UNKNOWN`, ask for the tag list: only a
    /// missing repository has none. One extra request, on the failure path only.
    async fn not_found(&self, target: &Target, body: &[u8]) -> Error {
        let repository_missing = Error::RepositoryNotFound {
            reference: target.reference.clone(),
            status: 404,
        };
        if error_code(body).as_deref() == Some("NAME_UNKNOWN") {
            return repository_missing;
        }
        let mut url = target.url("tags/list");
        url.query_pairs_mut().append_pair("n", "1");
        match self
            .transport()
            .send(&Call::new(Method::GET, url, target, target.pull()))
            .await
        {
            Ok(response) if response.status() == StatusCode::NOT_FOUND => repository_missing,
            _ => Error::ManifestNotFound {
                reference: target.reference.clone(),
                status: 404,
            },
        }
    }
}

/// The reference with `latest` when it names neither tag nor digest.
fn with_default_tag(image: &ImageRef) -> ImageRef {
    if image.tag().is_none() && image.digest().is_none() {
        image.with_tag("latest").unwrap_or_else(|_| image.clone())
    } else {
        image.clone()
    }
}

/// What goes after `/manifests/`: the digest when there is one, else the tag.
fn manifest_reference(image: &ImageRef) -> String {
    match (image.digest(), image.tag()) {
        (Some(digest), _) => digest.to_string(),
        (None, Some(tag)) => tag.to_owned(),
        (None, None) => "latest".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Set in the child process of [`builds_without_system_ca_certificates`].
    const CHILD: &str = "FLEET_REGISTRY_TEST_NO_SYSTEM_CERTS";

    /// With `SSL_CERT_FILE` and `SSL_CERT_DIR` naming an empty file and an empty
    /// directory (which rustls-native-certs reads instead of the system's store), as in
    /// a `FROM scratch` image, a client builds and speaks to a plain-HTTP registry on
    /// loopback. Environment variables are process-wide, so the test runs itself again in
    /// a child process with them set, and checks there.
    #[tokio::test]
    async fn builds_without_system_ca_certificates() {
        if std::env::var_os(CHILD).is_none() {
            let empty = tempfile::tempdir().unwrap();
            let file = empty.path().join("ca-certificates.crt");
            std::fs::write(&file, "").unwrap();
            let dir = empty.path().join("certs");
            std::fs::create_dir(&dir).unwrap();
            let output = std::process::Command::new(std::env::current_exe().unwrap())
                .args([
                    "--exact",
                    "client::tests::builds_without_system_ca_certificates",
                ])
                .args(["--nocapture", "--test-threads", "1"])
                .env(CHILD, "1")
                .env("SSL_CERT_FILE", &file)
                .env("SSL_CERT_DIR", &dir)
                .output()
                .unwrap();
            let out = String::from_utf8_lossy(&output.stdout);
            assert!(
                output.status.success() && out.contains("1 passed"),
                "{out}{}",
                String::from_utf8_lossy(&output.stderr)
            );
            return;
        }
        // The system's verifier alone cannot be set up here: the fallback is tested.
        assert!(reqwest::Client::builder().build().is_err());

        let app = axum::Router::new().route(
            "/v2/app/tags/list",
            axum::routing::get(|| async {
                axum::Json(serde_json::json!({"name": "app", "tags": ["v1.0.0"]}))
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });

        let client =
            Client::new(ClientConfig::default().credentials(CredentialSource::Anonymous)).unwrap();
        let image: ImageRef = format!("{addr}/app").parse().unwrap();
        assert_eq!(client.fetch_tags(&image).await.unwrap(), ["v1.0.0"]);
    }
}
