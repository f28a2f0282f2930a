//! [`RemoteStore`]: upload, list, download, delete and prune archives in an
//! S3-compatible bucket, each transfer verified by SHA-256.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt as _;
use object_store::aws::{AmazonS3Builder, Checksum};
use object_store::{
    Attribute, Attributes, ClientOptions, GetOptions, ObjectStore, ObjectStoreExt as _,
    PutMultipartOptions, PutOptions, PutPayload, RetryConfig, WriteMultipart,
    path::Path as ObjectPath,
};
use sha2::Digest as _;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use super::credentials::{self, CredentialSource, Environment, Explicit};
use super::error::Error;
use super::settings::{RemoteSettings, S3Url};
use crate::{ArchiveName, BackupName, RetentionPolicy, Sha256};

/// The object metadata key (`x-amz-meta-fleet-sha256`) that holds an archive's SHA-256,
/// so that a copy found only remotely can be verified before it is restored.
pub const SHA256_METADATA: &str = "fleet-sha256";

/// S3's smallest part of a multipart upload (but the last).
pub const MIN_PART_SIZE: usize = 5 * 1024 * 1024;

/// The part size unless told otherwise: 10,000 parts (S3's limit) make 160 GiB.
const DEFAULT_PART_SIZE: usize = 16 * 1024 * 1024;

/// Parts uploaded at once: memory use is about this many parts.
const PARTS_IN_FLIGHT: usize = 4;

/// How much of a file is read at a time when hashing or reading back.
const READ_SIZE: usize = 1024 * 1024;

/// An archive in a remote store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteArchive {
    /// Its object key (prefix included).
    pub key: String,
    /// Its archive name (the last segment of the key).
    pub name: ArchiveName,
    /// Its size in bytes.
    pub size: u64,
    /// When the store last wrote it.
    pub last_modified: jiff::Timestamp,
}

/// One object as [`RemoteStore::head`] describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteObject {
    /// Its key.
    pub key: String,
    /// Its size in bytes.
    pub size: u64,
    /// When the store last wrote it.
    pub last_modified: jiff::Timestamp,
    /// The SHA-256 stored with it, if any (and well-formed).
    pub sha256: Option<Sha256>,
    /// The rest of its user metadata (`x-amz-meta-*`, without the prefix).
    pub metadata: BTreeMap<String, String>,
}

/// A bucket (and prefix) of an S3-compatible store — AWS, MinIO, Backblaze B2, Garage,
/// Ceph — that holds off-host copies of archives.
///
/// Every request carries `x-amz-checksum-sha256`, so stores that check it refuse a body
/// damaged in transit; each upload is also read back (unless
/// [`RemoteSettings::read_back`] is off) and its SHA-256 compared, and each download is
/// verified before it is moved into place. An archive's SHA-256 travels with it as the
/// object metadata [`SHA256_METADATA`].
#[derive(Debug, Clone)]
pub struct RemoteStore {
    store: Arc<dyn ObjectStore>,
    url: S3Url,
    endpoint: String,
    credentials: CredentialSource,
    read_back: bool,
    part_size: usize,
}

impl RemoteStore {
    /// Connects (lazily: no request is made) to the store the settings name, with
    /// credentials, region and endpoint completed from the environment and the `~/.aws`
    /// files (the `credentials` module documents the order).
    pub fn new(settings: &RemoteSettings) -> Result<Self, Error> {
        Self::with_environment(settings, &Environment::current())
    }

    pub(crate) fn with_environment(
        settings: &RemoteSettings,
        env: &Environment,
    ) -> Result<Self, Error> {
        let explicit = Explicit {
            profile: settings.profile.as_deref(),
            region: settings.region.as_deref(),
            endpoint: settings.endpoint.as_deref(),
            credentials_file: settings.credentials_file.as_deref(),
        };
        let resolved = credentials::resolve(explicit, env, settings.url.bucket())?;
        let endpoint = match &resolved.endpoint {
            Some(endpoint) => {
                let parsed = url::Url::parse(endpoint).map_err(|e| Error::Settings {
                    reason: format!(
                        "endpoint {endpoint:?} is not a URL ({e}); write http(s)://HOST[:PORT]"
                    ),
                })?;
                if !matches!(parsed.scheme(), "http" | "https") || parsed.host().is_none() {
                    return Err(Error::Settings {
                        reason: format!(
                            "endpoint {endpoint:?} is not an http(s) URL; write http(s)://HOST[:PORT]"
                        ),
                    });
                }
                endpoint.trim_end_matches('/').to_owned()
            }
            None => format!("https://s3.{}.amazonaws.com", resolved.region),
        };
        let client = ClientOptions::new()
            .with_allow_http(endpoint.starts_with("http://"))
            .with_connect_timeout(Duration::from_secs(5))
            // One part of DEFAULT_PART_SIZE on a slow link.
            .with_timeout(Duration::from_secs(300));
        // A few quick retries: an unreachable store is reported in seconds, not minutes.
        let retry = RetryConfig {
            max_retries: 3,
            retry_timeout: Duration::from_secs(30),
            ..RetryConfig::default()
        };
        let mut builder = AmazonS3Builder::new()
            .with_bucket_name(settings.url.bucket())
            .with_region(&resolved.region)
            .with_access_key_id(&resolved.credentials.access_key_id)
            .with_secret_access_key(&resolved.credentials.secret_access_key)
            .with_checksum_algorithm(Checksum::SHA256)
            .with_client_options(client)
            .with_retry(retry);
        if let Some(token) = &resolved.credentials.session_token {
            builder = builder.with_token(token);
        }
        if resolved.endpoint.is_some() {
            // Path-style requests: what MinIO, Garage and a store on an IP address need.
            builder = builder
                .with_endpoint(&endpoint)
                .with_virtual_hosted_style_request(false);
        }
        let store = builder.build().map_err(|e| Error::Settings {
            reason: format!("{} at {endpoint}: {e}", settings.url),
        })?;
        Ok(Self {
            store: Arc::new(store),
            url: settings.url.clone(),
            endpoint,
            credentials: resolved.credentials.source,
            read_back: settings.read_back,
            part_size: DEFAULT_PART_SIZE,
        })
    }

    /// Uploads files larger than `bytes` in parts of that size (at least
    /// [`MIN_PART_SIZE`], S3's minimum); smaller ones in one request.
    pub fn with_part_size(mut self, bytes: usize) -> Result<Self, Error> {
        if bytes < MIN_PART_SIZE {
            return Err(Error::Settings {
                reason: format!("part size {bytes} is below S3's minimum of {MIN_PART_SIZE} bytes"),
            });
        }
        self.part_size = bytes;
        Ok(self)
    }

    /// The bucket and prefix.
    pub fn url(&self) -> &S3Url {
        &self.url
    }

    /// The store's endpoint URL.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// Where the credentials came from.
    pub fn credential_source(&self) -> &CredentialSource {
        &self.credentials
    }

    /// The object key of an archive (`<prefix>/<backup name>/<archive file name>`).
    pub fn key(&self, archive: &ArchiveName) -> String {
        self.url.key(archive)
    }

    /// The underlying object store, for what this type does not offer.
    pub fn object_store(&self) -> &Arc<dyn ObjectStore> {
        &self.store
    }

    /// Makes one cheap request (a listing of the prefix), to report wrong credentials,
    /// a missing bucket or an unreachable endpoint before any work is done.
    pub async fn check(&self) -> Result<(), Error> {
        let prefix = ObjectPath::from(self.url.prefix());
        self.store
            .list_with_delimiter(Some(&prefix))
            .await
            .map(|_| ())
            .map_err(|e| self.error("list", self.url.prefix(), e))
    }

    /// Uploads the archive at `path` under its key (multipart beyond the part size,
    /// streamed from disk), with its SHA-256 as object metadata, and verifies it: the
    /// bytes sent must hash to `expected` (when given: the SHA-256 recorded when the
    /// archive was made), the object must have the file's size and, with `read_back`,
    /// hash to the same SHA-256 when downloaded again. An upload that does not verify is
    /// deleted and reported as [`Error::Checksum`].
    pub async fn upload(
        &self,
        path: &Path,
        expected: Option<Sha256>,
    ) -> Result<RemoteArchive, Error> {
        self.upload_with_metadata(path, expected, &BTreeMap::new())
            .await
    }

    /// [`upload`](Self::upload), with `metadata` stored with the object (as
    /// `x-amz-meta-<key>`; [`head`](Self::head) reads it back). Keys are lowercase
    /// letters, digits and `-`; values printable ASCII; S3 allows 2 KiB in all.
    pub async fn upload_with_metadata(
        &self,
        path: &Path,
        expected: Option<Sha256>,
        metadata: &BTreeMap<String, String>,
    ) -> Result<RemoteArchive, Error> {
        for (key, value) in metadata {
            let key_ok = !key.is_empty()
                && key != SHA256_METADATA
                && key
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
            let value_ok = value.bytes().all(|b| (b' '..=b'~').contains(&b));
            if !key_ok || !value_ok {
                return Err(Error::Settings {
                    reason: format!(
                        "object metadata {key:?} = {value:?}: keys are lowercase letters, \
                         digits and `-` (not {SHA256_METADATA}), values printable ASCII"
                    ),
                });
            }
        }
        let name = path
            .file_name()
            .and_then(|name| name.to_str())
            .and_then(ArchiveName::parse)
            .ok_or_else(|| Error::Settings {
                reason: format!(
                    "{} is not named as an archive (NAME-YYYYMMDD-HHMMSS.tar.zst)",
                    path.display()
                ),
            })?;
        let key = self.key(&name);
        let sha256 = match expected {
            Some(sha256) => sha256,
            None => hash_file(path).await?,
        };
        let io = |source| Error::Io {
            path: path.to_owned(),
            source,
        };
        let mut file = tokio::fs::File::open(path).await.map_err(io)?;
        let size = file.metadata().await.map_err(io)?.len();
        let mut attributes = Attributes::new();
        attributes.insert(
            Attribute::Metadata(SHA256_METADATA.into()),
            sha256.to_string().into(),
        );
        for (key, value) in metadata {
            attributes.insert(
                Attribute::Metadata(key.clone().into()),
                value.clone().into(),
            );
        }
        let location = ObjectPath::from(key.as_str());
        let sent = if size as usize <= self.part_size {
            let mut body = Vec::with_capacity(size as usize);
            let mut hasher = sha2::Sha256::new();
            (&mut file)
                .take(self.part_size as u64 + 1)
                .read_to_end(&mut body)
                .await
                .map_err(io)?;
            hasher.update(&body);
            self.store
                .put_opts(
                    &location,
                    PutPayload::from(body),
                    PutOptions::from(attributes),
                )
                .await
                .map_err(|e| self.error("upload", &key, e))?;
            Sha256(hasher.finalize().into())
        } else {
            self.upload_parts(&mut file, path, &location, &key, attributes)
                .await?
        };
        let verified = self
            .verify_upload(&location, &key, sha256, sent, size)
            .await;
        if let Err(error) = verified {
            let _ = self.store.delete(&location).await;
            return Err(error);
        }
        let meta = self
            .store
            .head(&location)
            .await
            .map_err(|e| self.error("upload", &key, e))?;
        Ok(RemoteArchive {
            key,
            name,
            size: meta.size,
            last_modified: timestamp(
                meta.last_modified.timestamp(),
                meta.last_modified.timestamp_subsec_nanos(),
            ),
        })
    }

    /// The multipart path of [`upload`](Self::upload): parts of `part_size` read from the
    /// file as earlier ones are sent, a few in flight; the SHA-256 of what was sent.
    async fn upload_parts(
        &self,
        file: &mut tokio::fs::File,
        path: &Path,
        location: &ObjectPath,
        key: &str,
        attributes: Attributes,
    ) -> Result<Sha256, Error> {
        let upload = self
            .store
            .put_multipart_opts(location, PutMultipartOptions::from(attributes))
            .await
            .map_err(|e| self.error("upload", key, e))?;
        let mut writer = WriteMultipart::new_with_chunk_size(upload, self.part_size);
        let mut hasher = sha2::Sha256::new();
        let sent: Result<(), Error> = async {
            loop {
                let mut part = Vec::with_capacity(self.part_size);
                (&mut *file)
                    .take(self.part_size as u64)
                    .read_to_end(&mut part)
                    .await
                    .map_err(|source| Error::Io {
                        path: path.to_owned(),
                        source,
                    })?;
                if part.is_empty() {
                    return Ok(());
                }
                hasher.update(&part);
                writer
                    .wait_for_capacity(PARTS_IN_FLIGHT)
                    .await
                    .map_err(|e| self.error("upload", key, e))?;
                writer.put(part.into());
            }
        }
        .await;
        match sent {
            Ok(()) => {
                writer
                    .finish()
                    .await
                    .map_err(|e| self.error("upload", key, e))?;
                Ok(Sha256(hasher.finalize().into()))
            }
            Err(error) => {
                let _ = writer.abort().await;
                Err(error)
            }
        }
    }

    /// Checks an upload: what was sent hashes to `expected`, the object has `size` bytes
    /// and, with `read_back`, its content hashes to `expected`.
    async fn verify_upload(
        &self,
        location: &ObjectPath,
        key: &str,
        expected: Sha256,
        sent: Sha256,
        size: u64,
    ) -> Result<(), Error> {
        let mismatch = |actual| Error::Checksum {
            target: self.target(),
            key: key.to_owned(),
            expected,
            actual,
        };
        if sent != expected {
            return Err(mismatch(sent));
        }
        if self.read_back {
            let (actual, stored_size) = self.hash_object(location, key).await?;
            if actual != expected || stored_size != size {
                return Err(mismatch(actual));
            }
        } else {
            let meta = self
                .store
                .head(location)
                .await
                .map_err(|e| self.error("upload", key, e))?;
            if meta.size != size {
                return Err(Error::Request {
                    target: self.target(),
                    operation: "upload",
                    key: key.to_owned(),
                    source: Box::new(object_store::Error::Generic {
                        store: "S3",
                        source: format!("the store holds {} bytes of {size}", meta.size).into(),
                    }),
                });
            }
        }
        Ok(())
    }

    /// Downloads an object and hashes it without keeping it: its SHA-256 and size.
    async fn hash_object(&self, location: &ObjectPath, key: &str) -> Result<(Sha256, u64), Error> {
        let result = self
            .store
            .get(location)
            .await
            .map_err(|e| self.error("read back", key, e))?;
        let mut stream = result.into_stream();
        let mut hasher = sha2::Sha256::new();
        let mut size = 0;
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| self.error("read back", key, e))?;
            size += chunk.len() as u64;
            hasher.update(&chunk);
        }
        Ok((Sha256(hasher.finalize().into()), size))
    }

    /// Verifies the object under `key` against `expected`, or against the SHA-256 stored
    /// with it: downloads and hashes it, keeping nothing. Returns its SHA-256.
    pub async fn verify(&self, key: &str, expected: Option<Sha256>) -> Result<Sha256, Error> {
        let location = ObjectPath::from(key);
        let expected = match expected {
            Some(sha256) => sha256,
            None => self
                .stored_sha256(key)
                .await?
                .ok_or_else(|| Error::NoChecksum {
                    target: self.target(),
                    key: key.to_owned(),
                })?,
        };
        let (actual, _) = self.hash_object(&location, key).await?;
        if actual != expected {
            return Err(Error::Checksum {
                target: self.target(),
                key: key.to_owned(),
                expected,
                actual,
            });
        }
        Ok(actual)
    }

    /// The SHA-256 stored with the object under `key` ([`SHA256_METADATA`]), if any.
    pub async fn stored_sha256(&self, key: &str) -> Result<Option<Sha256>, Error> {
        Ok(self.head(key).await?.sha256)
    }

    /// What the store says about the object under `key`, without its content.
    pub async fn head(&self, key: &str) -> Result<RemoteObject, Error> {
        let result = self
            .store
            .get_opts(&ObjectPath::from(key), GetOptions::new().with_head(true))
            .await
            .map_err(|e| self.error("read", key, e))?;
        let metadata = result
            .attributes
            .iter()
            .filter_map(|(attribute, value)| match attribute {
                Attribute::Metadata(name) if name != SHA256_METADATA => {
                    Some((name.to_string(), value.to_string()))
                }
                _ => None,
            })
            .collect();
        Ok(RemoteObject {
            key: key.to_owned(),
            size: result.meta.size,
            last_modified: timestamp(
                result.meta.last_modified.timestamp(),
                result.meta.last_modified.timestamp_subsec_nanos(),
            ),
            sha256: sha256_attribute(&result.attributes),
            metadata,
        })
    }

    /// The archives of `name` in the store, oldest first. Objects under the name's prefix
    /// that are not its archives are left out.
    pub async fn list(&self, name: &BackupName) -> Result<Vec<RemoteArchive>, Error> {
        let prefix = self.url.backup_prefix(name);
        let mut listing = self.store.list(Some(&ObjectPath::from(prefix.as_str())));
        let mut archives = Vec::new();
        while let Some(meta) = listing.next().await {
            let meta = meta.map_err(|e| self.error("list", &prefix, e))?;
            let key = meta.location.to_string();
            if let Some(archive) = self.url.archive(name, &key) {
                archives.push(RemoteArchive {
                    key,
                    name: archive,
                    size: meta.size,
                    last_modified: timestamp(
                        meta.last_modified.timestamp(),
                        meta.last_modified.timestamp_subsec_nanos(),
                    ),
                });
            }
        }
        archives.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(archives)
    }

    /// Downloads the object under `key` to `destination`, verified against `expected` or,
    /// without it, the SHA-256 stored with the object (none is [`Error::NoChecksum`]).
    /// The bytes go to a private temporary file beside `destination`, which replaces it
    /// only once verified; on any failure nothing is left behind. Returns the SHA-256.
    pub async fn download(
        &self,
        key: &str,
        destination: &Path,
        expected: Option<Sha256>,
    ) -> Result<Sha256, Error> {
        let result = self
            .store
            .get(&ObjectPath::from(key))
            .await
            .map_err(|e| self.error("download", key, e))?;
        let expected = match expected.or_else(|| sha256_attribute(&result.attributes)) {
            Some(sha256) => sha256,
            None => {
                return Err(Error::NoChecksum {
                    target: self.target(),
                    key: key.to_owned(),
                });
            }
        };
        let parent = match destination.parent() {
            Some(parent) if !parent.as_os_str().is_empty() => parent,
            _ => Path::new("."),
        };
        let io = |path: &Path| {
            let path = path.to_owned();
            move |source| Error::Io { path, source }
        };
        // 0600, and deleted when dropped: on every early return below.
        let partial = tempfile::Builder::new()
            .prefix(".fleet-download-")
            .suffix(".partial")
            .tempfile_in(parent)
            .map_err(io(parent))?;
        let (file, partial) = partial.into_parts();
        let mut file = tokio::fs::File::from_std(file);
        let mut stream = result.into_stream();
        let mut hasher = sha2::Sha256::new();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| self.error("download", key, e))?;
            hasher.update(&chunk);
            file.write_all(&chunk).await.map_err(io(&partial))?;
        }
        file.sync_all().await.map_err(io(&partial))?;
        drop(file);
        let actual = Sha256(hasher.finalize().into());
        if actual != expected {
            return Err(Error::Checksum {
                target: self.target(),
                key: key.to_owned(),
                expected,
                actual,
            });
        }
        partial.persist(destination).map_err(|e| Error::Io {
            path: destination.to_owned(),
            source: e.error,
        })?;
        Ok(actual)
    }

    /// Deletes the object under `key` (nothing if there is none).
    pub async fn delete(&self, key: &str) -> Result<(), Error> {
        match self.store.delete(&ObjectPath::from(key)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(self.error("delete", key, e)),
        }
    }

    /// Applies `policy` to the archives of `name` in the store (as [`crate::prune`] does
    /// to a directory) and deletes the expired ones, unless `dry_run`. Returns them,
    /// oldest first.
    pub async fn prune(
        &self,
        name: &BackupName,
        policy: &RetentionPolicy,
        now: jiff::Timestamp,
        dry_run: bool,
    ) -> Result<Vec<RemoteArchive>, Error> {
        let archives = self.list(name).await?;
        let names: Vec<ArchiveName> = archives.iter().map(|a| a.name.clone()).collect();
        let expired = policy.expired(&names, now);
        let mut pruned: Vec<RemoteArchive> = archives
            .into_iter()
            .filter(|archive| expired.contains(&archive.name))
            .collect();
        pruned.sort_by(|a, b| a.name.cmp(&b.name));
        if !dry_run {
            for archive in &pruned {
                self.delete(&archive.key).await?;
            }
        }
        Ok(pruned)
    }

    /// `s3://bucket/prefix at <endpoint>`, for messages.
    fn target(&self) -> String {
        format!("{} at {}", self.url, self.endpoint)
    }

    /// Turns a request's error into one that says what was wrong and what to do. Listings
    /// come back as generic errors, so the S3 error code in the body decides first.
    fn error(&self, operation: &'static str, key: &str, error: object_store::Error) -> Error {
        let code = s3_code(&chain(&error));
        let refused = matches!(
            error,
            object_store::Error::PermissionDenied { .. }
                | object_store::Error::Unauthenticated { .. }
        ) || code.as_deref().is_some_and(|code| REFUSALS.contains(&code));
        if refused {
            return Error::Refused {
                target: self.target(),
                credentials: self.credentials.to_string(),
                code: code.unwrap_or_else(|| "HTTP 403".to_owned()),
                request: Box::new(error),
            };
        }
        if code.as_deref() == Some("NoSuchBucket") {
            return Error::NoSuchBucket {
                bucket: self.url.bucket().to_owned(),
                endpoint: self.endpoint.clone(),
                request: Box::new(error),
            };
        }
        if matches!(error, object_store::Error::NotFound { .. })
            || code.as_deref() == Some("NoSuchKey")
        {
            return Error::NotFound {
                target: self.target(),
                key: key.to_owned(),
            };
        }
        if could_not_connect(&error) {
            return Error::Unreachable {
                endpoint: self.endpoint.clone(),
                target: self.url.to_string(),
                source: Box::new(error),
            };
        }
        Error::Request {
            target: self.target(),
            operation,
            key: key.to_owned(),
            source: Box::new(error),
        }
    }
}

/// The S3 error codes that mean the credentials were refused.
const REFUSALS: &[&str] = &[
    "AccessDenied",
    "InvalidAccessKeyId",
    "SignatureDoesNotMatch",
    "InvalidToken",
    "ExpiredToken",
    "TokenRefreshRequired",
    "AuthorizationHeaderMalformed",
];

/// The SHA-256 in an object's [`SHA256_METADATA`], if it is there and well-formed.
fn sha256_attribute(attributes: &Attributes) -> Option<Sha256> {
    let value = attributes.get(&Attribute::Metadata(SHA256_METADATA.into()))?;
    let mut bytes = [0; 32];
    hex::decode_to_slice(value.as_ref().trim(), &mut bytes).ok()?;
    Some(Sha256(bytes))
}

/// The SHA-256 of a file, read in a blocking thread.
async fn hash_file(path: &Path) -> Result<Sha256, Error> {
    let owned = path.to_owned();
    let hashed = tokio::task::spawn_blocking(move || -> std::io::Result<Sha256> {
        use std::io::Read as _;
        let mut file = std::fs::File::open(&owned)?;
        let mut hasher = sha2::Sha256::new();
        let mut buffer = vec![0; READ_SIZE];
        loop {
            let read = file.read(&mut buffer)?;
            if read == 0 {
                return Ok(Sha256(hasher.finalize().into()));
            }
            hasher.update(&buffer[..read]);
        }
    })
    .await
    .map_err(std::io::Error::other)
    .and_then(|hashed| hashed);
    hashed.map_err(|source| Error::Io {
        path: path.to_owned(),
        source,
    })
}

/// object_store's modification time (a chrono time, used here without naming chrono).
fn timestamp(seconds: i64, nanos: u32) -> jiff::Timestamp {
    jiff::Timestamp::new(seconds, nanos as i32).unwrap_or(jiff::Timestamp::UNIX_EPOCH)
}

/// Every message in an error's chain, joined.
fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(next) = source {
        text.push_str(": ");
        text.push_str(&next.to_string());
        source = next.source();
    }
    text
}

/// The `<Code>` of an S3 error body in `text`.
fn s3_code(text: &str) -> Option<String> {
    let start = text.find("<Code>")? + "<Code>".len();
    let end = start + text[start..].find("</Code>")?;
    Some(text[start..end].to_owned())
}

/// Whether the request failed because nothing accepted the connection.
fn could_not_connect(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut current = Some(error);
    while let Some(error) = current {
        if let Some(http) = error.downcast_ref::<object_store::client::HttpError>()
            && http.kind() == object_store::client::HttpErrorKind::Connect
        {
            return true;
        }
        current = error.source();
    }
    false
}
