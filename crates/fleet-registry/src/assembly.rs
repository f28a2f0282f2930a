//! OCI image assembly without a daemon: layers from files, an image configuration, a
//! manifest, and an index for several platforms; pushed with [`Client::push_image`] and
//! [`Client::push_index`].
//!
//! This is public API for releasing fleet itself: the release task assembles and pushes
//! fleet's own images with it where `docker buildx` is missing. Nothing else in fleet
//! (fleet-core, the CLI) uses it at run time; the end-to-end tests use it to push test
//! images. It is kept, and kept public, for that release path.
//!
//! Everything is reproducible: the same inputs give the same digests (tar entries
//! sorted, owned by 0:0 unless given an owner, dated 1970 unless given a date; gzip
//! without a timestamp; JSON with sorted keys; no `created` date unless given one). A
//! release dates its entries and its configuration from `SOURCE_DATE_EPOCH`
//! ([`LayerBuilder::mtime`], [`ImageBuilder::created`]), so the same commit and epoch give
//! the same digests, byte for byte.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write as _;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use oci_client::manifest::{
    IMAGE_CONFIG_MEDIA_TYPE, IMAGE_LAYER_GZIP_MEDIA_TYPE, OCI_IMAGE_INDEX_MEDIA_TYPE,
    OCI_IMAGE_MEDIA_TYPE,
};
use serde_json::json;

use crate::client::Client;
use crate::digest::Digest;
use crate::error::Error;
use crate::platform::Platform;
use crate::reference::ImageRef;

/// Files and directories for one layer.
///
/// Entries are owned by root and dated 1970 unless told otherwise: [`owner`] gives one
/// entry another owner (a state directory for a non-root user), [`mtime`] dates them all
/// (from `SOURCE_DATE_EPOCH`).
///
/// ```
/// use fleet_registry::LayerBuilder;
///
/// let layer = LayerBuilder::new().file("app/run", b"#!/bin/sh\n".to_vec(), 0o755).directory("data", 0o700).build()?;
/// assert_eq!(layer, LayerBuilder::new().directory("data", 0o700).file("app/run", b"#!/bin/sh\n".to_vec(), 0o755).build()?);
///
/// let owned = LayerBuilder::new()
///     .directory("var/lib/app", 0o700)
///     .owner("var/lib/app", 65532, 65532)
///     .mtime(1_700_000_000)
///     .build()?;
/// assert_ne!(owned, LayerBuilder::new().directory("var/lib/app", 0o700).build()?);
/// # Ok::<(), fleet_registry::Error>(())
/// ```
///
/// [`owner`]: LayerBuilder::owner
/// [`mtime`]: LayerBuilder::mtime
#[derive(Debug, Clone, Default)]
pub struct LayerBuilder {
    entries: BTreeMap<String, Entry>,
    owners: BTreeMap<String, (u64, u64)>,
    mtime: u64,
}

#[derive(Debug, Clone)]
enum Entry {
    File { contents: Bytes, mode: u32 },
    Directory { mode: u32 },
}

/// A gzipped tar layer and its two digests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layer {
    blob: Bytes,
    digest: Digest,
    diff_id: Digest,
}

impl LayerBuilder {
    /// An empty layer.
    pub fn new() -> LayerBuilder {
        LayerBuilder::default()
    }

    /// Adds a file at `path` (relative to `/`); its parent directories are added with
    /// mode 0755 unless given.
    pub fn file(mut self, path: &str, contents: impl Into<Bytes>, mode: u32) -> LayerBuilder {
        self.entries.insert(
            clean(path),
            Entry::File {
                contents: contents.into(),
                mode,
            },
        );
        self
    }

    /// Adds a directory at `path`.
    pub fn directory(mut self, path: &str, mode: u32) -> LayerBuilder {
        self.entries.insert(clean(path), Entry::Directory { mode });
        self
    }

    /// Makes the entry at `path` (a file or directory added before or after, or a parent
    /// directory added for one) owned by `uid:gid` rather than `0:0`. [`build`] fails if
    /// nothing is at `path`.
    ///
    /// [`build`]: LayerBuilder::build
    pub fn owner(mut self, path: &str, uid: u64, gid: u64) -> LayerBuilder {
        self.owners.insert(clean(path), (uid, gid));
        self
    }

    /// Dates every entry `seconds` after 1970 (a release's `SOURCE_DATE_EPOCH`) rather
    /// than at 0. The gzip header stays undated.
    pub fn mtime(mut self, seconds: u64) -> LayerBuilder {
        self.mtime = seconds;
        self
    }

    /// Writes the tar and gzips it.
    pub fn build(&self) -> Result<Layer, Error> {
        let failed = |source: std::io::Error| Error::Assembly {
            what: "a layer".to_owned(),
            source,
        };
        let mut entries = self.entries.clone();
        for path in self.entries.keys() {
            let mut parent = path.as_str();
            while let Some((up, _)) = parent.rsplit_once('/') {
                entries
                    .entry(up.to_owned())
                    .or_insert(Entry::Directory { mode: 0o755 });
                parent = up;
            }
        }
        if let Some(path) = self.owners.keys().find(|path| !entries.contains_key(*path)) {
            return Err(failed(std::io::Error::new(
                std::io::ErrorKind::NotFound,
                format!("an owner is given for {path:?}, which the layer does not hold"),
            )));
        }
        let mut tar = tar::Builder::new(Vec::new());
        for (path, entry) in &entries {
            let (uid, gid) = self.owners.get(path).copied().unwrap_or((0, 0));
            let mut header = tar::Header::new_gnu();
            header.set_mtime(self.mtime);
            header.set_uid(uid);
            header.set_gid(gid);
            match entry {
                Entry::File { contents, mode } => {
                    header.set_entry_type(tar::EntryType::Regular);
                    header.set_mode(*mode);
                    header.set_size(contents.len() as u64);
                    tar.append_data(&mut header, path, contents.as_ref())
                        .map_err(failed)?;
                }
                Entry::Directory { mode } => {
                    header.set_entry_type(tar::EntryType::Directory);
                    header.set_mode(*mode);
                    header.set_size(0);
                    tar.append_data(&mut header, format!("{path}/"), std::io::empty())
                        .map_err(failed)?;
                }
            }
        }
        let tar = tar.into_inner().map_err(failed)?;
        let mut gzip = flate2::GzBuilder::new()
            .mtime(0)
            .write(Vec::new(), flate2::Compression::default());
        gzip.write_all(&tar).map_err(failed)?;
        let blob = Bytes::from(gzip.finish().map_err(failed)?);
        Ok(Layer {
            digest: Digest::sha256(&blob),
            diff_id: Digest::sha256(&tar),
            blob,
        })
    }
}

fn clean(path: &str) -> String {
    path.trim_matches('/').to_owned()
}

impl Layer {
    /// The digest of the gzipped blob (what the manifest names).
    pub fn digest(&self) -> &Digest {
        &self.digest
    }

    /// The digest of the uncompressed tar (what the configuration names).
    pub fn diff_id(&self) -> &Digest {
        &self.diff_id
    }

    /// The gzipped blob.
    pub fn blob(&self) -> &Bytes {
        &self.blob
    }
}

/// A `HEALTHCHECK` for the image configuration (the Docker Engine reads it; OCI runtimes
/// ignore it).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Healthcheck {
    /// The command, run without a shell: `["/fleet", "health"]`.
    pub command: Vec<String>,
    /// Time between checks.
    pub interval: Duration,
    /// How long one check may take.
    pub timeout: Duration,
    /// Grace period after start.
    pub start_period: Duration,
    /// Failures before unhealthy.
    pub retries: u32,
}

impl Healthcheck {
    /// A check running `command` with Docker's defaults (30 s, 30 s, 0 s, 3).
    pub fn new(command: &[&str]) -> Healthcheck {
        Healthcheck {
            command: command.iter().map(|part| (*part).to_owned()).collect(),
            interval: Duration::from_secs(30),
            timeout: Duration::from_secs(30),
            start_period: Duration::ZERO,
            retries: 3,
        }
    }
}

/// One platform's image: layers and the run configuration.
///
/// ```
/// use fleet_registry::{ImageBuilder, LayerBuilder};
///
/// let layer = LayerBuilder::new().file("app", b"binary".to_vec(), 0o755).build()?;
/// let image = ImageBuilder::new("linux/arm64".parse()?)
///     .layer(layer)
///     .entrypoint(&["/app"])
///     .env("PORT", "8080")
///     .user("65532:65532")
///     .expose(8080)
///     .created(std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_700_000_000))
///     .build()?;
/// assert_eq!(image.platform().to_string(), "linux/arm64");
/// assert!(String::from_utf8_lossy(image.config()).contains(r#""created":"2023-11-14T22:13:20Z""#));
/// # Ok::<(), fleet_registry::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct ImageBuilder {
    platform: Platform,
    layers: Vec<Layer>,
    entrypoint: Vec<String>,
    cmd: Vec<String>,
    env: Vec<(String, String)>,
    user: Option<String>,
    working_dir: Option<String>,
    labels: BTreeMap<String, String>,
    exposed: BTreeSet<u16>,
    healthcheck: Option<Healthcheck>,
    created: Option<SystemTime>,
}

/// An assembled image: its configuration, manifest and layers, ready to push.
#[derive(Debug, Clone)]
pub struct Image {
    platform: Platform,
    config: Bytes,
    manifest: Bytes,
    digest: Digest,
    layers: Vec<Layer>,
}

impl ImageBuilder {
    /// An image for `platform`, without layers.
    pub fn new(platform: Platform) -> ImageBuilder {
        ImageBuilder {
            platform,
            layers: Vec::new(),
            entrypoint: Vec::new(),
            cmd: Vec::new(),
            env: Vec::new(),
            user: None,
            working_dir: None,
            labels: BTreeMap::new(),
            exposed: BTreeSet::new(),
            healthcheck: None,
            created: None,
        }
    }

    /// Adds a layer on top of the previous ones.
    pub fn layer(mut self, layer: Layer) -> ImageBuilder {
        self.layers.push(layer);
        self
    }

    /// Sets the entrypoint (run without a shell).
    pub fn entrypoint(mut self, entrypoint: &[&str]) -> ImageBuilder {
        self.entrypoint = entrypoint.iter().map(|part| (*part).to_owned()).collect();
        self
    }

    /// Sets the default arguments.
    pub fn cmd(mut self, cmd: &[&str]) -> ImageBuilder {
        self.cmd = cmd.iter().map(|part| (*part).to_owned()).collect();
        self
    }

    /// Adds an environment variable.
    pub fn env(mut self, key: &str, value: &str) -> ImageBuilder {
        self.env.push((key.to_owned(), value.to_owned()));
        self
    }

    /// Sets the user (`name`, `uid`, `uid:gid`).
    pub fn user(mut self, user: &str) -> ImageBuilder {
        self.user = Some(user.to_owned());
        self
    }

    /// Sets the working directory.
    pub fn working_dir(mut self, dir: &str) -> ImageBuilder {
        self.working_dir = Some(dir.to_owned());
        self
    }

    /// Adds a label (`org.opencontainers.image.version`, …).
    pub fn label(mut self, key: &str, value: &str) -> ImageBuilder {
        self.labels.insert(key.to_owned(), value.to_owned());
        self
    }

    /// Declares a TCP port the image listens on.
    pub fn expose(mut self, port: u16) -> ImageBuilder {
        self.exposed.insert(port);
        self
    }

    /// Sets the health check.
    pub fn healthcheck(mut self, healthcheck: Healthcheck) -> ImageBuilder {
        self.healthcheck = Some(healthcheck);
        self
    }

    /// Sets the configuration's `created` date (RFC 3339, whole seconds, UTC), which
    /// `docker image ls` shows; without it the configuration has none. A release gives
    /// its `SOURCE_DATE_EPOCH`, so the date is reproducible too.
    pub fn created(mut self, created: SystemTime) -> ImageBuilder {
        self.created = Some(created);
        self
    }

    /// Writes the configuration and the manifest.
    pub fn build(&self) -> Result<Image, Error> {
        let mut run = serde_json::Map::new();
        if !self.entrypoint.is_empty() {
            run.insert("Entrypoint".to_owned(), json!(self.entrypoint));
        }
        if !self.cmd.is_empty() {
            run.insert("Cmd".to_owned(), json!(self.cmd));
        }
        if !self.env.is_empty() {
            let env: Vec<String> = self
                .env
                .iter()
                .map(|(key, value)| format!("{key}={value}"))
                .collect();
            run.insert("Env".to_owned(), json!(env));
        }
        if let Some(user) = &self.user {
            run.insert("User".to_owned(), json!(user));
        }
        if let Some(dir) = &self.working_dir {
            run.insert("WorkingDir".to_owned(), json!(dir));
        }
        if !self.labels.is_empty() {
            run.insert("Labels".to_owned(), json!(self.labels));
        }
        if !self.exposed.is_empty() {
            let ports: serde_json::Map<String, serde_json::Value> = self
                .exposed
                .iter()
                .map(|port| (format!("{port}/tcp"), json!({})))
                .collect();
            run.insert("ExposedPorts".to_owned(), json!(ports));
        }
        if let Some(check) = &self.healthcheck {
            let mut test = vec!["CMD".to_owned()];
            test.extend(check.command.iter().cloned());
            run.insert(
                "Healthcheck".to_owned(),
                json!({
                    "Test": test,
                    "Interval": check.interval.as_nanos() as u64,
                    "Timeout": check.timeout.as_nanos() as u64,
                    "StartPeriod": check.start_period.as_nanos() as u64,
                    "Retries": check.retries,
                }),
            );
        }
        let mut config = json!({
            "architecture": self.platform.architecture(),
            "os": self.platform.os(),
            "config": run,
            "rootfs": {
                "type": "layers",
                "diff_ids": self.layers.iter().map(|layer| layer.diff_id.to_string()).collect::<Vec<_>>(),
            },
        });
        if let Some(variant) = self.platform.variant() {
            config["variant"] = json!(variant);
        }
        if let Some(created) = self.created {
            config["created"] = json!(rfc3339(created)?);
        }
        let config = Bytes::from(serde_json::to_vec(&config).map_err(json_failed)?);
        let manifest = json!({
            "schemaVersion": 2,
            "mediaType": OCI_IMAGE_MEDIA_TYPE,
            "config": { "mediaType": IMAGE_CONFIG_MEDIA_TYPE, "digest": Digest::sha256(&config), "size": config.len() },
            "layers": self.layers.iter().map(|layer| json!({
                "mediaType": IMAGE_LAYER_GZIP_MEDIA_TYPE,
                "digest": layer.digest,
                "size": layer.blob.len(),
            })).collect::<Vec<_>>(),
        });
        let manifest = Bytes::from(serde_json::to_vec(&manifest).map_err(json_failed)?);
        Ok(Image {
            platform: self.platform.clone(),
            digest: Digest::sha256(&manifest),
            config,
            manifest,
            layers: self.layers.clone(),
        })
    }
}

/// `2023-11-14T22:13:20Z`: whole seconds in UTC, as Docker and BuildKit write `created`.
fn rfc3339(time: SystemTime) -> Result<String, Error> {
    let failed = |message: String| Error::Assembly {
        what: "the creation date".to_owned(),
        source: std::io::Error::new(std::io::ErrorKind::InvalidInput, message),
    };
    let timestamp = jiff::Timestamp::try_from(time).map_err(|e| failed(e.to_string()))?;
    let seconds =
        jiff::Timestamp::from_second(timestamp.as_second()).map_err(|e| failed(e.to_string()))?;
    Ok(seconds.to_string())
}

fn json_failed(error: serde_json::Error) -> Error {
    Error::Assembly {
        what: "a JSON document".to_owned(),
        source: std::io::Error::other(error),
    }
}

impl Image {
    /// The manifest's digest.
    pub fn digest(&self) -> &Digest {
        &self.digest
    }

    /// The platform.
    pub fn platform(&self) -> &Platform {
        &self.platform
    }

    /// The configuration JSON.
    pub fn config(&self) -> &Bytes {
        &self.config
    }

    /// The manifest JSON.
    pub fn manifest(&self) -> &Bytes {
        &self.manifest
    }
}

/// An index of one image per platform.
#[derive(Debug, Clone)]
pub struct Index {
    bytes: Bytes,
    digest: Digest,
}

impl Index {
    /// The index of `images`, in their order.
    pub fn new(images: &[Image]) -> Result<Index, Error> {
        let manifests: Vec<serde_json::Value> = images
            .iter()
            .map(|image| {
                let mut platform = json!({ "architecture": image.platform.architecture(), "os": image.platform.os() });
                if let Some(variant) = image.platform.variant() {
                    platform["variant"] = json!(variant);
                }
                json!({
                    "mediaType": OCI_IMAGE_MEDIA_TYPE,
                    "digest": image.digest,
                    "size": image.manifest.len(),
                    "platform": platform,
                })
            })
            .collect();
        let index = json!({ "schemaVersion": 2, "mediaType": OCI_IMAGE_INDEX_MEDIA_TYPE, "manifests": manifests });
        let bytes = Bytes::from(serde_json::to_vec(&index).map_err(json_failed)?);
        Ok(Index {
            digest: Digest::sha256(&bytes),
            bytes,
        })
    }

    /// The index's digest.
    pub fn digest(&self) -> &Digest {
        &self.digest
    }

    /// The index JSON.
    pub fn bytes(&self) -> &Bytes {
        &self.bytes
    }
}

impl Client {
    /// Pushes an assembled image's layers, configuration and manifest; the manifest goes
    /// under `image_ref`'s tag, or by digest when it has none.
    pub async fn push_image(&self, image_ref: &ImageRef, image: &Image) -> Result<Digest, Error> {
        for layer in &image.layers {
            self.push_blob(image_ref, layer.blob.clone()).await?;
        }
        self.push_blob(image_ref, image.config.clone()).await?;
        self.push_manifest(image_ref, OCI_IMAGE_MEDIA_TYPE, image.manifest.clone())
            .await
    }

    /// Pushes every image by digest, then `index` under `image_ref`'s tag.
    pub async fn push_index(
        &self,
        image_ref: &ImageRef,
        index: &Index,
        images: &[Image],
    ) -> Result<Digest, Error> {
        let by_digest = image_ref.without_tag_or_digest();
        for image in images {
            self.push_image(&by_digest, image).await?;
        }
        self.push_manifest(image_ref, OCI_IMAGE_INDEX_MEDIA_TYPE, index.bytes.clone())
            .await
    }
}

#[cfg(test)]
mod tests {
    use std::io::Read as _;

    use super::*;

    fn listing(layer: &Layer) -> String {
        let mut tar = Vec::new();
        flate2::read::GzDecoder::new(layer.blob().as_ref())
            .read_to_end(&mut tar)
            .unwrap();
        assert_eq!(Digest::sha256(&tar), *layer.diff_id());
        let mut archive = tar::Archive::new(tar.as_slice());
        let mut out = Vec::new();
        for entry in archive.entries().unwrap() {
            let entry = entry.unwrap();
            let header = entry.header();
            out.push(format!(
                "{} {:o} {}:{} mtime={} size={}",
                entry.path().unwrap().display(),
                header.mode().unwrap(),
                header.uid().unwrap(),
                header.gid().unwrap(),
                header.mtime().unwrap(),
                header.size().unwrap()
            ));
        }
        out.join("\n")
    }

    #[test]
    fn layers_are_sorted_owned_by_root_and_undated() {
        let layer = LayerBuilder::new()
            .file("/usr/bin/fleet", b"binary".to_vec(), 0o755)
            .directory("data", 0o700)
            .file("etc/fleet.toml", b"x = 1\n".to_vec(), 0o644)
            .build()
            .unwrap();
        insta::assert_snapshot!(listing(&layer), @r"
        data/ 700 0:0 mtime=0 size=0
        etc/ 755 0:0 mtime=0 size=0
        etc/fleet.toml 644 0:0 mtime=0 size=6
        usr/ 755 0:0 mtime=0 size=0
        usr/bin/ 755 0:0 mtime=0 size=0
        usr/bin/fleet 755 0:0 mtime=0 size=6
        ");
    }

    #[test]
    fn entries_can_have_an_owner_and_a_date() {
        let layer = LayerBuilder::new()
            .directory("var/lib/fleet", 0o700)
            .owner("var/lib/fleet", 65532, 65532)
            .owner("var/lib", 1, 2)
            .file("usr/local/bin/fleet", b"binary".to_vec(), 0o755)
            .mtime(1_700_000_000)
            .build()
            .unwrap();
        insta::assert_snapshot!(listing(&layer), @r"
        usr/ 755 0:0 mtime=1700000000 size=0
        usr/local/ 755 0:0 mtime=1700000000 size=0
        usr/local/bin/ 755 0:0 mtime=1700000000 size=0
        usr/local/bin/fleet 755 0:0 mtime=1700000000 size=6
        var/ 755 0:0 mtime=1700000000 size=0
        var/lib/ 755 1:2 mtime=1700000000 size=0
        var/lib/fleet/ 700 65532:65532 mtime=1700000000 size=0
        ");
        // The gzip header stays undated: bytes 4..8 are its MTIME.
        assert_eq!(&layer.blob()[4..8], &[0, 0, 0, 0]);
    }

    #[test]
    fn an_owner_for_a_path_the_layer_does_not_hold_is_an_error() {
        let error = LayerBuilder::new()
            .file("app", b"1".to_vec(), 0o755)
            .owner("data", 65532, 65532)
            .build()
            .unwrap_err();
        assert_eq!(
            format!("{error}: {}", std::error::Error::source(&error).unwrap()),
            r#"cannot assemble a layer: an owner is given for "data", which the layer does not hold"#
        );
    }

    #[test]
    fn the_creation_date_is_whole_seconds_in_utc() {
        let check = |time: SystemTime| -> String {
            let image = ImageBuilder::new("linux/amd64".parse().unwrap())
                .created(time)
                .build()
                .unwrap();
            let config: serde_json::Value = serde_json::from_slice(image.config()).unwrap();
            config["created"].to_string()
        };
        let epoch = std::time::UNIX_EPOCH;
        assert_eq!(check(epoch), r#""1970-01-01T00:00:00Z""#);
        assert_eq!(
            check(epoch + Duration::from_millis(1_700_000_000_900)),
            r#""2023-11-14T22:13:20Z""#
        );
        let undated = ImageBuilder::new("linux/amd64".parse().unwrap())
            .build()
            .unwrap();
        assert!(!String::from_utf8_lossy(undated.config()).contains("created"));
    }

    #[test]
    fn the_same_inputs_give_the_same_digests() {
        let build = || {
            let layer = LayerBuilder::new()
                .file("app", b"1".to_vec(), 0o755)
                .build()
                .unwrap();
            ImageBuilder::new("linux/amd64".parse().unwrap())
                .layer(layer)
                .entrypoint(&["/app"])
                .build()
                .unwrap()
        };
        let (a, b) = (build(), build());
        assert_eq!(a.digest(), b.digest());
        assert_eq!(a.manifest(), b.manifest());
        assert_eq!(
            Index::new(std::slice::from_ref(&a)).unwrap().digest(),
            Index::new(&[b]).unwrap().digest()
        );
        let other = ImageBuilder::new("linux/arm64".parse().unwrap())
            .build()
            .unwrap();
        assert_ne!(a.digest(), other.digest());
    }

    #[test]
    fn configuration() {
        let layer = LayerBuilder::new()
            .file("app", b"1".to_vec(), 0o755)
            .build()
            .unwrap();
        let mut check = Healthcheck::new(&["/app", "health"]);
        check.interval = Duration::from_secs(5);
        let image = ImageBuilder::new("linux/arm/v7".parse().unwrap())
            .layer(layer.clone())
            .entrypoint(&["/app"])
            .cmd(&["serve"])
            .env("PORT", "8080")
            .user("65532:65532")
            .working_dir("/data")
            .label("org.opencontainers.image.version", "1.4.2")
            .expose(8080)
            .healthcheck(check)
            .build()
            .unwrap();
        let config: serde_json::Value = serde_json::from_slice(image.config()).unwrap();
        let config = serde_json::to_string_pretty(&config)
            .unwrap()
            .replace(layer.diff_id().as_str(), "[diff id]");
        insta::assert_snapshot!(config, @r#"
        {
          "architecture": "arm",
          "config": {
            "Cmd": [
              "serve"
            ],
            "Entrypoint": [
              "/app"
            ],
            "Env": [
              "PORT=8080"
            ],
            "ExposedPorts": {
              "8080/tcp": {}
            },
            "Healthcheck": {
              "Interval": 5000000000,
              "Retries": 3,
              "StartPeriod": 0,
              "Test": [
                "CMD",
                "/app",
                "health"
              ],
              "Timeout": 30000000000
            },
            "Labels": {
              "org.opencontainers.image.version": "1.4.2"
            },
            "User": "65532:65532",
            "WorkingDir": "/data"
          },
          "os": "linux",
          "rootfs": {
            "diff_ids": [
              "[diff id]"
            ],
            "type": "layers"
          },
          "variant": "v7"
        }
        "#);
        let manifest: oci_client::manifest::OciImageManifest =
            serde_json::from_slice(image.manifest()).unwrap();
        assert_eq!(
            manifest.config.digest,
            Digest::sha256(image.config()).to_string()
        );
        assert_eq!(manifest.layers[0].digest, layer.digest().to_string());
        assert_eq!(manifest.layers[0].size, layer.blob().len() as i64);
        let index: oci_client::manifest::OciImageIndex =
            serde_json::from_slice(Index::new(std::slice::from_ref(&image)).unwrap().bytes())
                .unwrap();
        assert_eq!(index.manifests[0].digest, image.digest().to_string());
        assert_eq!(
            index.manifests[0]
                .platform
                .as_ref()
                .unwrap()
                .variant
                .as_deref(),
            Some("v7")
        );
    }
}
