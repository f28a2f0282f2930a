//! Turning an instance's image channel into the exact digest to run.

#[cfg(any(test, feature = "test-util"))]
use std::collections::HashMap;
#[cfg(any(test, feature = "test-util"))]
use std::sync::Mutex;

use async_trait::async_trait;
use fleet_registry::{ChannelRef, Digest};

use crate::engine::RegistryAuth;

/// The image an instance should run: the tag its channel points at and its digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedImage {
    /// The tag the channel resolved to (`None` for a digest channel).
    pub tag: Option<String>,
    /// The manifest digest (`sha256:...`).
    pub digest: Digest,
    /// What the engine pulls and runs: `registry/repository@digest`.
    pub reference: String,
}

/// Resolves channels to digests, and says how to authenticate pulls.
#[async_trait]
pub trait ImageResolver: Send + Sync + std::fmt::Debug {
    /// The tag and digest `image`'s channel points at now.
    async fn resolve(&self, image: &ChannelRef) -> Result<ResolvedImage, fleet_registry::Error>;

    /// Credentials the engine should use to pull from `registry`.
    async fn pull_auth(&self, registry: &str) -> Option<RegistryAuth>;
}

/// A resolver with fixed answers, for tests of fleet's logic without a registry
/// (feature `test-util`).
#[cfg(any(test, feature = "test-util"))]
#[derive(Debug, Default)]
pub struct StaticResolver {
    answers: Mutex<HashMap<String, (Option<String>, Digest)>>,
}

#[cfg(any(test, feature = "test-util"))]
impl StaticResolver {
    /// An empty resolver: every channel is unknown.
    pub fn new() -> Self {
        Self::default()
    }

    /// `image` (as written, e.g. `localhost:5000/app:v1`) resolves to `tag` and `digest`.
    pub fn set(&self, image: &str, tag: Option<&str>, digest: &Digest) {
        let key = image
            .parse::<ChannelRef>()
            .map(|c| c.to_string())
            .unwrap_or_else(|_| image.to_owned());
        self.answers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(key, (tag.map(str::to_owned), digest.clone()));
    }
}

#[async_trait]
#[cfg(any(test, feature = "test-util"))]
impl ImageResolver for StaticResolver {
    async fn resolve(&self, image: &ChannelRef) -> Result<ResolvedImage, fleet_registry::Error> {
        let answers = self.answers.lock().unwrap_or_else(|e| e.into_inner());
        let key = image.to_string();
        match answers.get(&key) {
            Some((tag, digest)) => Ok(ResolvedImage {
                tag: tag.clone(),
                digest: digest.clone(),
                reference: format!("{}@{digest}", image.image().name()),
            }),
            None => Err(fleet_registry::Error::ManifestNotFound {
                reference: key,
                status: 404,
            }),
        }
    }

    async fn pull_auth(&self, _registry: &str) -> Option<RegistryAuth> {
        None
    }
}
