//! One repository on one registry, as requests need it: where to send them (HTTPS, or
//! plain HTTP for loopback and insecure registries), which scopes to ask for, and the
//! reference errors name.

use std::net::Ipv4Addr;

use url::Url;

use crate::error::Error;
use crate::reference::{DOCKER_HUB, ImageRef};

/// One repository on one registry, as requests need it.
pub(crate) struct Target {
    pub(crate) registry: String,
    pub(crate) repository: String,
    pub(crate) base: Url,
    pub(crate) origin: url::Origin,
    /// The reference errors name.
    pub(crate) reference: String,
}

impl Target {
    /// The repository `image` names, reached over plain HTTP when its registry is on
    /// loopback or in `insecure` (`host` or `host:port`), over HTTPS otherwise.
    pub(crate) fn new(image: &ImageRef, insecure: &[String]) -> Result<Target, Error> {
        let registry = image.registry();
        let api_host = if registry == DOCKER_HUB {
            "registry-1.docker.io"
        } else {
            registry
        };
        let reference = image.to_string();
        let base = Url::parse(&format!("{}://{api_host}/", scheme(registry, insecure))).map_err(
            |error| Error::Protocol {
                reference: reference.clone(),
                message: format!("cannot make a URL for registry {registry}: {error}"),
            },
        )?;
        Ok(Target {
            registry: registry.to_owned(),
            repository: image.repository().to_owned(),
            origin: base.origin(),
            base,
            reference,
        })
    }

    /// `base/v2/<repository>/<rest>`.
    pub(crate) fn url(&self, rest: &str) -> Url {
        let mut url = self.base.clone();
        url.set_path(&format!("/v2/{}/{rest}", self.repository));
        url
    }

    pub(crate) fn pull(&self) -> String {
        format!("repository:{}:pull", self.repository)
    }

    pub(crate) fn push(&self) -> String {
        format!("repository:{}:pull,push", self.repository)
    }
}

/// `http` for loopback and insecure registries, `https` otherwise.
fn scheme(registry: &str, insecure: &[String]) -> &'static str {
    let host = host_of(registry);
    let listed = insecure
        .iter()
        .any(|entry| entry == registry || entry == host);
    if listed || is_loopback(host) {
        "http"
    } else {
        "https"
    }
}

/// `host` of `host:port`, `[::1]` of `[::1]:5000`.
fn host_of(registry: &str) -> &str {
    if registry.starts_with('[') {
        return registry
            .split_once(']')
            .map_or(registry, |(host, _)| &registry[..host.len() + 1]);
    }
    registry.split_once(':').map_or(registry, |(host, _)| host)
}

fn is_loopback(host: &str) -> bool {
    host == "localhost"
        || host == "[::1]"
        || host.parse::<Ipv4Addr>().is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(registry_and_repo: &str, insecure: &[&str]) -> String {
        let image: ImageRef = registry_and_repo.parse().unwrap();
        let insecure: Vec<String> = insecure.iter().map(|entry| entry.to_string()).collect();
        let target = Target::new(&image, &insecure).unwrap();
        target.url("tags/list").to_string()
    }

    #[test]
    fn schemes_and_hosts() {
        assert_eq!(
            check("nginx", &[]),
            "https://registry-1.docker.io/v2/library/nginx/tags/list"
        );
        assert_eq!(
            check("ghcr.io/o/a", &[]),
            "https://ghcr.io/v2/o/a/tags/list"
        );
        assert_eq!(
            check("127.0.0.1:5000/a", &[]),
            "http://127.0.0.1:5000/v2/a/tags/list"
        );
        assert_eq!(
            check("127.1.2.3:5000/a", &[]),
            "http://127.1.2.3:5000/v2/a/tags/list"
        );
        assert_eq!(
            check("localhost:5000/a", &[]),
            "http://localhost:5000/v2/a/tags/list"
        );
        assert_eq!(check("localhost/a", &[]), "http://localhost/v2/a/tags/list");
        assert_eq!(
            check("[::1]:5000/a", &[]),
            "http://[::1]:5000/v2/a/tags/list"
        );
        assert_eq!(
            check("128.0.0.1:5000/a", &[]),
            "https://128.0.0.1:5000/v2/a/tags/list"
        );
        assert_eq!(
            check("registry.lan:5000/a", &[]),
            "https://registry.lan:5000/v2/a/tags/list"
        );
        assert_eq!(
            check("registry.lan:5000/a", &["registry.lan:5000"]),
            "http://registry.lan:5000/v2/a/tags/list"
        );
        assert_eq!(
            check("registry.lan:5000/a", &["registry.lan"]),
            "http://registry.lan:5000/v2/a/tags/list"
        );
        assert_eq!(
            check("registry.lan:5001/a", &["registry.lan:5000"]),
            "https://registry.lan:5001/v2/a/tags/list"
        );
    }
}
