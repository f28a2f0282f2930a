//! Image references, normalised like the Docker CLI.

/// A parsed, normalised image reference such as `docker.io/library/nginx:1.27`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ImageRef {
    registry: String,
    repository: String,
    tag: Option<String>,
    digest: Option<String>,
}
