//! Where off-host copies go: an `s3://bucket/prefix` URL, an optional endpoint for stores
//! other than AWS, and the object key layout under the prefix.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::error::Error;
use crate::{ArchiveName, BackupName};

/// A bucket and a key prefix, written `s3://bucket` or `s3://bucket/some/prefix`.
///
/// Archives go under `<prefix>/<backup name>/<archive file name>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct S3Url {
    bucket: String,
    prefix: String,
}

impl S3Url {
    /// The bucket.
    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    /// The key prefix, without leading or trailing `/`; empty for the bucket's root.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The key prefix of a backup name's archives, ending in `/`.
    pub fn backup_prefix(&self, name: &BackupName) -> String {
        if self.prefix.is_empty() {
            format!("{name}/")
        } else {
            format!("{}/{name}/", self.prefix)
        }
    }

    /// The key of an archive: `<prefix>/<backup name>/<archive file name>`.
    pub fn key(&self, archive: &ArchiveName) -> String {
        format!("{}{archive}", self.backup_prefix(archive.name()))
    }

    /// The archive a key names, if it is one of a backup name's archives in this layout.
    pub fn archive(&self, name: &BackupName, key: &str) -> Option<ArchiveName> {
        let file = key.strip_prefix(&self.backup_prefix(name))?;
        ArchiveName::parse(file).filter(|archive| archive.name() == name)
    }
}

impl FromStr for S3Url {
    type Err = Error;

    fn from_str(text: &str) -> Result<Self, Error> {
        let invalid = |reason: &str| Error::Settings {
            reason: format!("url {text:?}: {reason}; write s3://BUCKET or s3://BUCKET/PREFIX"),
        };
        let rest = text
            .strip_prefix("s3://")
            .ok_or_else(|| invalid("not an s3:// URL"))?;
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        // S3's bucket naming rules; MinIO, Backblaze and Garage follow them too.
        let valid_bucket = (3..=63).contains(&bucket.len())
            && bucket
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-')
            && bucket.starts_with(|c: char| c.is_ascii_alphanumeric())
            && bucket.ends_with(|c: char| c.is_ascii_alphanumeric());
        if !valid_bucket {
            return Err(invalid(
                "a bucket name is 3 to 63 lowercase letters, digits, dots and hyphens",
            ));
        }
        let prefix = prefix.trim_matches('/');
        if prefix.split('/').any(|segment| {
            matches!(segment, "." | "..") || (segment.is_empty() && !prefix.is_empty())
        }) || prefix.contains(['?', '#', '\\'])
        {
            return Err(invalid(
                "the prefix must be plain path segments (no empty, `.` or `..` segments)",
            ));
        }
        Ok(Self {
            bucket: bucket.to_owned(),
            prefix: prefix.to_owned(),
        })
    }
}

impl TryFrom<String> for S3Url {
    type Error = Error;

    fn try_from(text: String) -> Result<Self, Error> {
        text.parse()
    }
}

impl From<S3Url> for String {
    fn from(url: S3Url) -> String {
        url.to_string()
    }
}

impl fmt::Display for S3Url {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.prefix.is_empty() {
            write!(f, "s3://{}", self.bucket)
        } else {
            write!(f, "s3://{}/{}", self.bucket, self.prefix)
        }
    }
}

/// The settings of a remote store, as an embedding program's configuration holds them
/// (fleet's `[backup.remote]`):
///
/// ```toml
/// url = "s3://backups/fleet"        # bucket and key prefix
/// endpoint = "http://127.0.0.1:9000" # for MinIO, Backblaze, Garage…; AWS without it
/// region = "eu-west-1"
/// profile = "backups"                # a profile of ~/.aws/credentials and ~/.aws/config
/// credentials_file = "/etc/fleet/aws-credentials"  # instead of ~/.aws/credentials
/// read_back = true                   # download each upload again to verify it
/// ```
///
/// Everything but `url` is optional; the environment and the `~/.aws` files fill in
/// what is missing (see [`RemoteStore::new`](super::RemoteStore::new)).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct RemoteSettings {
    /// The bucket and key prefix.
    pub url: S3Url,
    /// The store's URL when it is not AWS (`http://` is allowed, for a store on the
    /// same host or network).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    /// The region; `us-east-1` when neither this, the environment nor the profile says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// The profile of the `~/.aws` files to use; it then beats keys in the environment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile: Option<String>,
    /// A credentials file (the `~/.aws/credentials` format) to read instead of
    /// `AWS_SHARED_CREDENTIALS_FILE` or `~/.aws/credentials`; it then beats keys in the
    /// environment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials_file: Option<std::path::PathBuf>,
    /// Whether each upload is downloaded again and its SHA-256 compared (default: yes).
    /// Stores that check the `x-amz-checksum-sha256` fleet sends with every request (AWS,
    /// MinIO) already refuse a corrupted upload; turn this off to halve the traffic with
    /// them.
    #[serde(default = "yes", skip_serializing_if = "is_true")]
    pub read_back: bool,
}

fn yes() -> bool {
    true
}

fn is_true(value: &bool) -> bool {
    *value
}

impl RemoteSettings {
    /// Settings for `url`, everything else from the environment and the `~/.aws` files.
    pub fn new(url: S3Url) -> Self {
        Self {
            url,
            endpoint: None,
            region: None,
            profile: None,
            credentials_file: None,
            read_back: true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(url: &str) -> String {
        match url.parse::<S3Url>() {
            Ok(url) => {
                let archive = ArchiveName::parse("shop-20250102-030405.tar.zst").unwrap();
                format!("{url} -> {}", url.key(&archive))
            }
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn urls_and_key_layout() {
        assert_eq!(
            check("s3://backups"),
            "s3://backups -> shop/shop-20250102-030405.tar.zst"
        );
        assert_eq!(
            check("s3://backups/fleet/host1/"),
            "s3://backups/fleet/host1 -> fleet/host1/shop/shop-20250102-030405.tar.zst"
        );
        assert_eq!(
            check("s3://my.bucket-1/a//x"),
            "invalid remote backup settings: url \"s3://my.bucket-1/a//x\": the prefix must be \
             plain path segments (no empty, `.` or `..` segments); write s3://BUCKET or \
             s3://BUCKET/PREFIX"
        );
        assert!(check("s3://abc/../b").contains("no empty, `.` or `..`"));
        assert!(check("https://bucket/x").contains("not an s3:// URL"));
        assert!(check("s3://Bucket").contains("a bucket name is 3 to 63"));
        assert!(check("s3://ab").contains("a bucket name is 3 to 63"));
        assert!(check("s3://").contains("a bucket name is 3 to 63"));
    }

    #[test]
    fn keys_map_back_to_archives_of_one_name_only() {
        let url: S3Url = "s3://backups/p".parse().unwrap();
        let shop = BackupName::new("shop").unwrap();
        let archive = |key: &str| url.archive(&shop, key).map(|a| a.to_string());
        assert_eq!(
            archive("p/shop/shop-20250102-030405.tar.zst").as_deref(),
            Some("shop-20250102-030405.tar.zst")
        );
        assert_eq!(archive("p/shop/notes.txt"), None);
        assert_eq!(archive("p/shop/other-20250102-030405.tar.zst"), None);
        assert_eq!(archive("p/shopping/shopping-20250102-030405.tar.zst"), None);
        assert_eq!(archive("shop/shop-20250102-030405.tar.zst"), None);
    }

    #[test]
    fn settings_read_from_toml_with_defaults() {
        let settings: RemoteSettings = serde_json::from_str(
            r#"{"url": "s3://backups/fleet", "endpoint": "http://127.0.0.1:9000"}"#,
        )
        .unwrap();
        assert_eq!(settings.url.bucket(), "backups");
        assert_eq!(settings.url.prefix(), "fleet");
        assert!(settings.read_back);
        assert_eq!(settings.region, None);
        let error = serde_json::from_str::<RemoteSettings>(r#"{"url": "s3://B"}"#).unwrap_err();
        assert!(error.to_string().contains("a bucket name"), "{error}");
        assert!(
            serde_json::from_str::<RemoteSettings>(r#"{"url": "s3://bkt", "bucket": "x"}"#)
                .is_err()
        );
    }
}
