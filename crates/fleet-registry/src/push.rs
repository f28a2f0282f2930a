//! Pushing blobs, manifests and indexes (for the release xtask and the test bed).
//!
//! Blobs go up monolithically (`POST` an upload, `PUT` it with the digest), after a
//! `HEAD` that skips blobs the repository already has. The whole blob is in memory:
//! fleet's images are small; chunked uploads can come when something needs them.

use std::time::Duration;

use bytes::Bytes;
use reqwest::header;
use reqwest::{Method, StatusCode};

use crate::client::Client;
use crate::digest::Digest;
use crate::error::Error;
use crate::reference::ImageRef;
use crate::transport::{Call, http_error};

/// How long one blob upload may take.
const BLOB_TIMEOUT: Duration = Duration::from_secs(30 * 60);

impl Client {
    /// Whether the repository has the blob.
    pub async fn blob_exists(&self, image: &ImageRef, digest: &Digest) -> Result<bool, Error> {
        let target = self.target(image)?;
        let call = Call::new(
            Method::HEAD,
            target.url(&format!("blobs/{digest}")),
            &target,
            target.push(),
        );
        let response = self.transport().send(&call).await?;
        match response.status() {
            status if status.is_success() => Ok(true),
            StatusCode::NOT_FOUND => Ok(false),
            _ => Err(http_error(&target.reference, response).await),
        }
    }

    /// Uploads a blob (a layer or a configuration) to `image`'s repository, unless it
    /// is there already; returns its digest.
    pub async fn push_blob(
        &self,
        image: &ImageRef,
        blob: impl Into<Bytes>,
    ) -> Result<Digest, Error> {
        let blob = blob.into();
        let digest = Digest::sha256(&blob);
        if self.blob_exists(image, &digest).await? {
            return Ok(digest);
        }
        let target = self.target(image)?;
        let start = Call::new(
            Method::POST,
            target.url("blobs/uploads/"),
            &target,
            target.push(),
        )
        .header(header::CONTENT_LENGTH, "0");
        let response = self.transport().send(&start).await?;
        if response.status() != StatusCode::ACCEPTED {
            return Err(http_error(&target.reference, response).await);
        }
        let protocol = |message: String| Error::Protocol {
            reference: target.reference.clone(),
            message,
        };
        let location = response
            .headers()
            .get(header::LOCATION)
            .and_then(|value| value.to_str().ok())
            .ok_or_else(|| protocol("the upload has no Location".to_owned()))?;
        let mut url = target
            .base
            .join(location)
            .map_err(|error| protocol(format!("bad upload Location {location:?}: {error}")))?;
        url.query_pairs_mut().append_pair("digest", digest.as_str());
        let mut put = Call::new(Method::PUT, url, &target, target.push())
            .header(header::CONTENT_TYPE, "application/octet-stream")
            .body(blob);
        put.timeout = Some(BLOB_TIMEOUT);
        let response = self.transport().send(&put).await?;
        if response.status() != StatusCode::CREATED {
            return Err(http_error(&target.reference, response).await);
        }
        Ok(digest)
    }

    /// Uploads a manifest or index under `image`'s tag (or, without a tag, under its own
    /// digest); returns its digest.
    pub async fn push_manifest(
        &self,
        image: &ImageRef,
        media_type: &str,
        manifest: impl Into<Bytes>,
    ) -> Result<Digest, Error> {
        let manifest = manifest.into();
        let digest = Digest::sha256(&manifest);
        let reference = image
            .tag()
            .map_or_else(|| digest.to_string(), str::to_owned);
        let target = self.target(image)?;
        let call = Call::new(
            Method::PUT,
            target.url(&format!("manifests/{reference}")),
            &target,
            target.push(),
        )
        .header(header::CONTENT_TYPE, media_type)
        .body(manifest);
        let response = self.transport().send(&call).await?;
        if response.status() != StatusCode::CREATED {
            return Err(http_error(&target.reference, response).await);
        }
        let answered = Digest::from_headers(response.headers());
        if let Some(answered) = answered.filter(|answered| *answered != digest) {
            return Err(Error::Protocol {
                reference: target.reference,
                message: format!("the registry stored {answered}, expected {digest}"),
            });
        }
        self.invalidate_tags(image);
        Ok(digest)
    }
}
