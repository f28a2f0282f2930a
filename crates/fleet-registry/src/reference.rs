//! Image references, read and normalised exactly like the Docker CLI.
//!
//! The grammar is distribution/reference's (`ParseNormalizedNamed`):
//!
//! ```text
//! reference        := name [ ":" tag ] [ "@" digest ]
//! name             := [domain "/"] path-component ["/" path-component]*
//! domain           := host [":" port-number]
//! host             := domain-name | "[" ipv6 "]"
//! domain-name      := domain-component ["." domain-component]*
//! domain-component := /([a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])/
//! path-component   := /[a-z0-9]+/ [separator /[a-z0-9]+/]*
//! separator        := /[_.]|__|[-]+/
//! tag              := /[\w][\w.-]{0,127}/
//! ```
//!
//! The first `/`-separated part is a registry host only when it holds a `.` or a `:`, is
//! `localhost`, or holds an upper-case letter (repository names never do); otherwise the
//! registry is `docker.io`, and a single-part name on `docker.io` gets `library/` in
//! front. `index.docker.io` is the same registry as `docker.io`. The whole name
//! (`registry/repository`) is at most 255 characters, and a bare 64-digit hexadecimal
//! string is refused because Docker reads it as an image id.

use std::fmt;
use std::str::FromStr;

use crate::digest::{Digest, DigestError};
use crate::error::Error;

/// Docker Hub's canonical name.
pub(crate) const DOCKER_HUB: &str = "docker.io";
/// The legacy name of Docker Hub, normalised to [`DOCKER_HUB`].
const LEGACY_DOCKER_HUB: &str = "index.docker.io";
/// The longest `registry/repository` name a registry accepts.
const NAME_TOTAL_LENGTH_MAX: usize = 255;
/// The longest tag.
const TAG_LENGTH_MAX: usize = 128;

/// A parsed, normalised image reference such as `docker.io/library/nginx:1.27`.
///
/// It always has a registry and a repository, and optionally a tag and/or a digest.
/// `Display` writes the fully qualified form (`docker.io/library/nginx:1.27`);
/// [`ImageRef::familiar`] writes the short form users type (`nginx:1.27`).
///
/// ```
/// use fleet_registry::ImageRef;
///
/// let image: ImageRef = "nginx:1.27".parse()?;
/// assert_eq!(image.registry(), "docker.io");
/// assert_eq!(image.repository(), "library/nginx");
/// assert_eq!(image.tag(), Some("1.27"));
/// assert_eq!(image.to_string(), "docker.io/library/nginx:1.27");
/// assert_eq!(image.familiar(), "nginx:1.27");
/// # Ok::<(), fleet_registry::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ImageRef {
    registry: String,
    repository: String,
    tag: Option<String>,
    digest: Option<Digest>,
}

/// Why an image reference was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ReferenceError {
    /// Nothing was given.
    Empty,
    /// A bare 64-digit hexadecimal string, which Docker reads as an image id.
    HexIdentifier,
    /// The repository holds upper-case letters.
    Uppercase {
        /// The repository as written.
        repository: String,
    },
    /// `registry/repository` is longer than 255 characters.
    NameTooLong {
        /// Its length.
        length: usize,
    },
    /// The registry part is not `host[:port]`.
    InvalidRegistry {
        /// The registry as written.
        registry: String,
    },
    /// The registry's port is not a TCP port (1 to 65535).
    InvalidPort {
        /// The registry as written.
        registry: String,
        /// The port as written.
        port: String,
    },
    /// A `/`-separated part of the repository breaks the grammar.
    InvalidPathComponent {
        /// The part as written (empty for `a//b` or a trailing `/`).
        component: String,
    },
    /// The tag breaks the grammar.
    InvalidTag {
        /// The tag as written.
        tag: String,
    },
    /// The digest after `@` is invalid.
    InvalidDigest(DigestError),
}

impl fmt::Display for ReferenceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReferenceError::Empty => write!(f, "repository name must have at least one component"),
            ReferenceError::HexIdentifier => {
                write!(
                    f,
                    "a 64-digit hexadecimal string is an image id, not a repository name"
                )
            }
            ReferenceError::Uppercase { repository } => {
                write!(f, "repository name {repository:?} must be lowercase")
            }
            ReferenceError::NameTooLong { length } => write!(
                f,
                "repository name must not be more than {NAME_TOTAL_LENGTH_MAX} characters (it has {length})"
            ),
            ReferenceError::InvalidRegistry { registry } => {
                write!(f, "registry {registry:?} is not a valid host[:port]")
            }
            ReferenceError::InvalidPort { registry, port } => write!(
                f,
                "registry {registry:?} has port {port}, which is not a port from 1 to 65535"
            ),
            ReferenceError::InvalidPathComponent { component } if component.is_empty() => {
                write!(f, "repository name has an empty path component")
            }
            ReferenceError::InvalidPathComponent { component } => write!(
                f,
                "repository path component {component:?} must be lowercase letters and digits, \
                 separated by `.`, `_`, `__` or dashes"
            ),
            ReferenceError::InvalidTag { tag } => write!(
                f,
                "tag {tag:?} must start with a letter, digit or `_` and hold at most \
                 {TAG_LENGTH_MAX} letters, digits, `_`, `.` or `-`"
            ),
            ReferenceError::InvalidDigest(reason) => write!(f, "invalid digest: {reason}"),
        }
    }
}

impl ImageRef {
    /// The registry host, with its port when it has one: `docker.io`, `ghcr.io`, `127.0.0.1:5000`.
    pub fn registry(&self) -> &str {
        &self.registry
    }

    /// The repository path inside the registry: `library/nginx`, `owner/app`.
    pub fn repository(&self) -> &str {
        &self.repository
    }

    /// The tag, when the reference has one.
    pub fn tag(&self) -> Option<&str> {
        self.tag.as_deref()
    }

    /// The digest, when the reference has one.
    pub fn digest(&self) -> Option<&Digest> {
        self.digest.as_ref()
    }

    /// The fully qualified name without tag or digest: `docker.io/library/nginx`.
    pub fn name(&self) -> String {
        format!("{}/{}", self.registry, self.repository)
    }

    /// The same repository without tag or digest.
    pub fn without_tag_or_digest(&self) -> ImageRef {
        ImageRef {
            tag: None,
            digest: None,
            ..self.clone()
        }
    }

    /// The same repository with `tag` (and no digest).
    pub fn with_tag(&self, tag: &str) -> Result<ImageRef, Error> {
        if !is_tag(tag) {
            return Err(Error::InvalidReference {
                input: format!("{}:{tag}", self.name()),
                reason: ReferenceError::InvalidTag {
                    tag: tag.to_owned(),
                },
            });
        }
        Ok(ImageRef {
            tag: Some(tag.to_owned()),
            digest: None,
            ..self.clone()
        })
    }

    /// The same repository pinned to `digest` (keeping the tag, if any, as a label).
    pub fn with_digest(&self, digest: Digest) -> ImageRef {
        ImageRef {
            digest: Some(digest),
            ..self.clone()
        }
    }

    /// The short form the Docker CLI prints: `nginx:1.27`, `owner/app`, `ghcr.io/o/app`.
    pub fn familiar(&self) -> String {
        let mut name = if self.registry == DOCKER_HUB {
            match self.repository.strip_prefix("library/") {
                Some(rest) if !rest.contains('/') => rest.to_owned(),
                _ => self.repository.clone(),
            }
        } else {
            self.name()
        };
        self.write_suffix(&mut name);
        name
    }

    fn write_suffix(&self, out: &mut String) {
        if let Some(tag) = &self.tag {
            out.push(':');
            out.push_str(tag);
        }
        if let Some(digest) = &self.digest {
            out.push('@');
            out.push_str(digest.as_str());
        }
    }

    /// Reads a reference; the error carries the reason without the input.
    pub(crate) fn parse(input: &str) -> Result<ImageRef, ReferenceError> {
        if input.is_empty() {
            return Err(ReferenceError::Empty);
        }
        if input.len() == 64
            && input
                .bytes()
                .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
        {
            return Err(ReferenceError::HexIdentifier);
        }
        let (registry, remainder) = split_registry(input);

        // Split `remainder` into path, tag and digest. Paths hold neither `:` nor `@`.
        let (name_and_tag, digest) = match remainder.split_once('@') {
            Some((name_and_tag, digest)) => (name_and_tag, Some(digest)),
            None => (remainder, None),
        };
        let (path, tag) = match name_and_tag.split_once(':') {
            Some((path, tag)) => (path, Some(tag)),
            None => (name_and_tag, None),
        };
        // Like distribution: an upper-case repository gets its own message, before
        // anything else is checked.
        if path.bytes().any(|b| b.is_ascii_uppercase()) {
            return Err(ReferenceError::Uppercase {
                repository: path.to_owned(),
            });
        }
        if !is_domain(registry) {
            return Err(ReferenceError::InvalidRegistry {
                registry: registry.to_owned(),
            });
        }
        if let Some(port) = domain_port(registry)
            && !port.parse::<u16>().is_ok_and(|port| port != 0)
        {
            return Err(ReferenceError::InvalidPort {
                registry: registry.to_owned(),
                port: port.to_owned(),
            });
        }
        for component in path.split('/') {
            if !is_path_component(component) {
                return Err(ReferenceError::InvalidPathComponent {
                    component: component.to_owned(),
                });
            }
        }
        if let Some(tag) = tag
            && !is_tag(tag)
        {
            return Err(ReferenceError::InvalidTag {
                tag: tag.to_owned(),
            });
        }
        let digest = match digest {
            Some(digest) => Some(parse_digest(digest)?),
            None => None,
        };
        let mut repository = path.to_owned();
        if registry == DOCKER_HUB && !repository.contains('/') {
            repository.insert_str(0, "library/");
        }
        let length = registry.len() + 1 + repository.len();
        if length > NAME_TOTAL_LENGTH_MAX {
            return Err(ReferenceError::NameTooLong { length });
        }
        Ok(ImageRef {
            registry: registry.to_owned(),
            repository,
            tag: tag.map(str::to_owned),
            digest,
        })
    }
}

/// Splits off the registry like distribution's `splitDockerDomain`: the first part is a
/// registry when it holds `.` or `:`, is `localhost`, or holds an upper-case letter.
fn split_registry(input: &str) -> (&str, &str) {
    match input.split_once('/') {
        None => (DOCKER_HUB, input),
        Some((LEGACY_DOCKER_HUB, rest)) => (DOCKER_HUB, rest),
        Some((first, rest))
            if first == "localhost"
                || first.contains(['.', ':'])
                || first.bytes().any(|b| b.is_ascii_uppercase()) =>
        {
            (first, rest)
        }
        Some(_) => (DOCKER_HUB, input),
    }
}

/// `host[:port]` where host is a DNS name, an IPv4 address or a bracketed IPv6 address.
fn is_domain(domain: &str) -> bool {
    let (host_ok, port) = if let Some(rest) = domain.strip_prefix('[') {
        let Some((ipv6, after)) = rest.split_once(']') else {
            return false;
        };
        let ipv6_ok = !ipv6.is_empty() && ipv6.bytes().all(|b| b.is_ascii_hexdigit() || b == b':');
        match after {
            "" => (ipv6_ok, None),
            _ => match after.strip_prefix(':') {
                Some(port) => (ipv6_ok, Some(port)),
                None => return false,
            },
        }
    } else {
        let (host, port) = match domain.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (domain, None),
        };
        (host.split('.').all(is_domain_component), port)
    };
    host_ok && port.is_none_or(|port| !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()))
}

/// The port of a valid `host[:port]`, if it has one. The grammar takes any number of
/// digits; a TCP port is at most 65535.
fn domain_port(domain: &str) -> Option<&str> {
    let after_host = match domain.strip_prefix('[') {
        Some(rest) => rest.split_once(']').map_or("", |(_, after)| after),
        None => domain,
    };
    after_host.split_once(':').map(|(_, port)| port)
}

/// `[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9]`.
fn is_domain_component(component: &str) -> bool {
    let bytes = component.as_bytes();
    bytes.first().is_some_and(u8::is_ascii_alphanumeric)
        && bytes.last().is_some_and(u8::is_ascii_alphanumeric)
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || *b == b'-')
}

/// `[a-z0-9]+ (separator [a-z0-9]+)*` with separators `.`, `_`, `__` and one or more `-`.
fn is_path_component(component: &str) -> bool {
    let bytes = component.as_bytes();
    let alnum = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    if !bytes.first().is_some_and(|b| alnum(*b)) || !bytes.last().is_some_and(|b| alnum(*b)) {
        return false;
    }
    let mut i = 0;
    while i < bytes.len() {
        if alnum(bytes[i]) {
            i += 1;
            continue;
        }
        // A separator, then an alphanumeric must follow (the last byte is alphanumeric).
        let start = i;
        match bytes[i] {
            b'.' => i += 1,
            b'_' => {
                i += 1;
                if bytes[i] == b'_' {
                    i += 1;
                }
            }
            b'-' => {
                while bytes[i] == b'-' {
                    i += 1;
                }
            }
            _ => return false,
        }
        debug_assert!(i > start);
        if !alnum(bytes[i]) {
            return false;
        }
    }
    true
}

/// `[\w][\w.-]{0,127}`.
pub(crate) fn is_tag(tag: &str) -> bool {
    let word = |b: &u8| b.is_ascii_alphanumeric() || *b == b'_';
    let bytes = tag.as_bytes();
    bytes.len() <= TAG_LENGTH_MAX
        && bytes.first().is_some_and(word)
        && bytes.iter().all(|b| word(b) || *b == b'.' || *b == b'-')
}

/// The digest after `@`: distribution first checks the grammar
/// (`algorithm:hex` with at least 32 hex digits), then go-digest validates it.
fn parse_digest(digest: &str) -> Result<Digest, ReferenceError> {
    let grammar_ok = digest.split_once(':').is_some_and(|(algorithm, hex)| {
        let components_ok = algorithm.split(['+', '.', '-', '_']).all(|part| {
            part.as_bytes().first().is_some_and(u8::is_ascii_alphabetic)
                && part.bytes().all(|b| b.is_ascii_alphanumeric())
        });
        components_ok && hex.len() >= 32 && hex.bytes().all(|b| b.is_ascii_hexdigit())
    });
    if !grammar_ok {
        return Err(ReferenceError::InvalidDigest(
            Digest::parse_parts(digest)
                .err()
                .unwrap_or(DigestError::InvalidHex),
        ));
    }
    Digest::parse_parts(digest).map_err(ReferenceError::InvalidDigest)
}

impl FromStr for ImageRef {
    type Err = Error;

    fn from_str(input: &str) -> Result<ImageRef, Error> {
        ImageRef::parse(input).map_err(|reason| Error::InvalidReference {
            input: input.to_owned(),
            reason,
        })
    }
}

impl fmt::Display for ImageRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut text = self.name();
        self.write_suffix(&mut text);
        f.write_str(&text)
    }
}

impl serde::Serialize for ImageRef {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for ImageRef {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<ImageRef, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests;
