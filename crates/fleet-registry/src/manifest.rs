//! Manifests and indexes as the client returns them; the types themselves are
//! oci-client's (re-exported as [`crate::oci`]).

use bytes::Bytes;
use oci_client::manifest::{
    IMAGE_MANIFEST_LIST_MEDIA_TYPE, IMAGE_MANIFEST_MEDIA_TYPE, OCI_IMAGE_INDEX_MEDIA_TYPE,
    OCI_IMAGE_MEDIA_TYPE, OciImageIndex, OciImageManifest,
};

use crate::digest::Digest;

/// The `Accept` list for manifest requests: indexes first (multi-arch images), then
/// single-platform manifests, OCI and Docker flavours of each.
pub(crate) const MANIFEST_ACCEPT: &str = "application/vnd.oci.image.index.v1+json, \
     application/vnd.docker.distribution.manifest.list.v2+json, \
     application/vnd.oci.image.manifest.v1+json, \
     application/vnd.docker.distribution.manifest.v2+json";

/// What a `HEAD` on a manifest tells: its digest, media type and size.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ManifestHead {
    /// The manifest's digest (`Docker-Content-Digest`).
    pub digest: Digest,
    /// Its media type (`Content-Type`), when the registry says.
    pub media_type: Option<String>,
    /// Its size in bytes, when the registry says.
    pub size: Option<u64>,
}

/// A manifest or index as fetched: its bytes (whose digest is [`Manifest::digest`]) and
/// their parsed form.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Manifest {
    /// The digest of [`Manifest::bytes`].
    pub digest: Digest,
    /// The media type.
    pub media_type: String,
    /// The bytes as the registry sent them.
    pub bytes: Bytes,
    /// The parsed manifest.
    pub kind: ManifestKind,
}

/// An image manifest (one platform) or an index (several).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum ManifestKind {
    /// An OCI image manifest or a Docker v2 manifest (boxed: it is the larger).
    Image(Box<OciImageManifest>),
    /// An OCI image index or a Docker manifest list.
    Index(OciImageIndex),
}

/// Whether a media type is an index (OCI) or manifest list (Docker).
pub(crate) fn is_index(media_type: &str) -> bool {
    media_type == OCI_IMAGE_INDEX_MEDIA_TYPE || media_type == IMAGE_MANIFEST_LIST_MEDIA_TYPE
}

/// Whether a media type is one the client asks for.
pub(crate) fn is_known(media_type: &str) -> bool {
    is_index(media_type)
        || media_type == OCI_IMAGE_MEDIA_TYPE
        || media_type == IMAGE_MANIFEST_MEDIA_TYPE
}

/// The media type of a manifest's bytes: the header when it names one we know, else the
/// document's own `mediaType`, else by shape (`manifests` → index).
pub(crate) fn media_type_of(header: Option<&str>, bytes: &[u8]) -> String {
    let header = header.map(|value| value.split(';').next().unwrap_or(value).trim());
    if let Some(media_type) = header.filter(|media_type| is_known(media_type)) {
        return media_type.to_owned();
    }
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Probe {
        media_type: Option<String>,
        manifests: Option<serde_json::Value>,
    }
    match serde_json::from_slice::<Probe>(bytes) {
        Ok(Probe {
            media_type: Some(media_type),
            ..
        }) => media_type,
        Ok(Probe {
            manifests: Some(_), ..
        }) => OCI_IMAGE_INDEX_MEDIA_TYPE.to_owned(),
        _ => OCI_IMAGE_MEDIA_TYPE.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn media_types() {
        assert_eq!(
            media_type_of(Some("application/vnd.oci.image.index.v1+json"), b"{}"),
            OCI_IMAGE_INDEX_MEDIA_TYPE
        );
        assert_eq!(
            media_type_of(
                Some("application/vnd.docker.distribution.manifest.v2+json; charset=utf-8"),
                b"{}"
            ),
            IMAGE_MANIFEST_MEDIA_TYPE
        );
        assert_eq!(
            media_type_of(
                Some("application/json"),
                br#"{"mediaType":"application/vnd.docker.distribution.manifest.list.v2+json"}"#
            ),
            IMAGE_MANIFEST_LIST_MEDIA_TYPE
        );
        assert_eq!(
            media_type_of(None, br#"{"schemaVersion":2,"manifests":[]}"#),
            OCI_IMAGE_INDEX_MEDIA_TYPE
        );
        assert_eq!(
            media_type_of(None, br#"{"schemaVersion":2,"layers":[]}"#),
            OCI_IMAGE_MEDIA_TYPE
        );
        assert!(MANIFEST_ACCEPT.split(", ").all(is_known));
    }
}
