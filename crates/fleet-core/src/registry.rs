//! The image resolver backed by a real registry client (`fleet-registry`).

use async_trait::async_trait;
use fleet_registry::{
    ChannelRef, Client, ClientConfig, CredentialSource, Credentials, ResolveOptions,
};

use crate::engine::RegistryAuth;
use crate::resolve::{ImageResolver, ResolvedImage};

/// Resolves channels on their registries, with the Docker CLI's credentials by default.
#[derive(Clone)]
pub struct RegistryResolver {
    client: Client,
    credentials: CredentialSource,
}

impl std::fmt::Debug for RegistryResolver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegistryResolver")
            .field("credentials", &self.credentials.describe())
            .finish_non_exhaustive()
    }
}

impl RegistryResolver {
    /// A resolver with the default client settings (credentials from
    /// `$DOCKER_CONFIG/config.json` or `~/.docker/config.json`).
    pub fn new() -> Result<Self, fleet_registry::Error> {
        Self::with_config(ClientConfig::default())
    }

    /// A resolver with these client settings.
    pub fn with_config(config: ClientConfig) -> Result<Self, fleet_registry::Error> {
        let credentials = config.credentials.clone();
        Ok(Self {
            client: Client::new(config)?,
            credentials,
        })
    }

    /// The registry client (for request counts, manifests, ...).
    pub fn client(&self) -> &Client {
        &self.client
    }
}

#[async_trait]
impl ImageResolver for RegistryResolver {
    async fn resolve(&self, image: &ChannelRef) -> Result<ResolvedImage, fleet_registry::Error> {
        let resolved = self
            .client
            .resolve(image, ResolveOptions::default())
            .await?;
        Ok(ResolvedImage {
            tag: resolved.tag.clone(),
            digest: resolved.digest.clone(),
            reference: resolved.pinned().to_string(),
        })
    }

    /// Basic credentials only: the Docker Engine takes a user name and password (or a
    /// token used as one); identity tokens are passed as the password of `<token>`.
    async fn pull_auth(&self, registry: &str) -> Option<RegistryAuth> {
        let credentials = self.credentials.lookup(registry).await.ok()??;
        let (username, password) = match credentials {
            Credentials::Basic { username, password } => (username, password.expose().to_owned()),
            Credentials::IdentityToken(token) | Credentials::RegistryToken(token) => {
                ("<token>".to_owned(), token.expose().to_owned())
            }
            _ => return None,
        };
        Some(RegistryAuth {
            username,
            password,
            server: registry.to_owned(),
        })
    }
}
