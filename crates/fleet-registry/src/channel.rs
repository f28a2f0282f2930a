//! Version channels (`latest`, `v1`, `v1.4`, `v1.4.2`, `sha-1a2b3c4`, `^1.2`, `@sha256:…`)
//! and the pure half of resolution: choosing a tag from a tag list.

use std::fmt;
use std::str::FromStr;

use crate::digest::Digest;
use crate::error::Error;
use crate::reference::{ImageRef, ReferenceError, is_tag};
use crate::version::Version;

/// What an instance follows: a moving channel or a pinned tag or digest.
///
/// Parsed from the tag part of a reference:
///
/// | text | channel | picks |
/// |---|---|---|
/// | `latest` (or no tag) | [`Channel::Latest`] | the tag `latest` |
/// | `v1`, `1`, `v1.4`, `1.4` | [`Channel::Series`] | the newest stable `1.x.y` / `1.4.y` |
/// | `v1.4.2`, `2.0.0-rc.1` | [`Channel::Exact`] | that version, spelt with or without `v` |
/// | `^1.2`, `~1.4.2`, `>=1.2, <2`, `*` | [`Channel::Range`] | the newest stable version in range |
/// | `sha-1a2b3c4`, `main`, `16-alpine` | [`Channel::Tag`] | exactly that tag |
/// | `@sha256:…` | [`Channel::Digest`] | that manifest; no tag |
///
/// Prereleases are never picked by `Series` or `Range` unless
/// [`ResolveOptions::prereleases`] asks for them (or a range names one, as semver
/// allows: `>=2.0.0-rc.1`). Tags that are not versions are ignored by version channels.
///
/// ```
/// use fleet_registry::{Channel, ResolveOptions};
///
/// let tags = ["latest", "v1.3.9", "v1.4.0", "v1.4.1", "v2.0.0-rc.1", "sha-1a2b3c4"];
/// let channel: Channel = "v1".parse()?;
/// assert_eq!(channel.resolve(&tags), Some("v1.4.1"));
/// let options = ResolveOptions::default().with_prereleases(true);
/// assert_eq!("v2".parse::<Channel>()?.resolve_with(&tags, options), Some("v2.0.0-rc.1"));
/// # Ok::<(), fleet_registry::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Channel {
    /// The tag `latest`.
    Latest,
    /// The newest stable version with this major (`v1`) or major.minor (`v1.4`).
    Series(Version),
    /// Exactly this full version (`v1.4.2`, `2.0.0-rc.1`), spelt with or without `v`.
    Exact(Version),
    /// The newest stable version satisfying a semver requirement.
    Range(semver::VersionReq),
    /// Exactly this tag, which is not a version (`sha-1a2b3c4`, `main`).
    Tag(String),
    /// Exactly this manifest.
    Digest(Digest),
}

/// Options for [`Channel::resolve_with`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ResolveOptions {
    /// Let `Series` and `Range` channels pick prereleases.
    pub prereleases: bool,
}

impl ResolveOptions {
    /// Lets `Series` and `Range` channels pick prereleases, or not.
    pub fn with_prereleases(mut self, prereleases: bool) -> ResolveOptions {
        self.prereleases = prereleases;
        self
    }
}

impl Channel {
    /// The channel a reference's tag or digest names (`latest` when it has neither).
    pub fn from_image(image: &ImageRef) -> Channel {
        match (image.digest(), image.tag()) {
            (Some(digest), _) => Channel::Digest(digest.clone()),
            (None, Some(tag)) => tag.parse().unwrap_or_else(|_| Channel::Tag(tag.to_owned())),
            (None, None) => Channel::Latest,
        }
    }

    /// Whether resolving needs the repository's tag list. `latest`, plain tags and
    /// digests are looked up directly.
    pub fn needs_tag_list(&self) -> bool {
        matches!(
            self,
            Channel::Series(_) | Channel::Exact(_) | Channel::Range(_)
        )
    }

    /// Chooses the tag this channel points at among `tags`, with default options.
    ///
    /// The result is a member of `tags` that [`Channel::matches`], and no other matching
    /// tag is newer; the order of `tags` never matters. `None` when nothing matches, and
    /// always for [`Channel::Digest`], which needs no tag.
    pub fn resolve<'a, S: AsRef<str>>(&self, tags: &'a [S]) -> Option<&'a str> {
        self.resolve_with(tags, ResolveOptions::default())
    }

    /// [`Channel::resolve`] with options.
    pub fn resolve_with<'a, S: AsRef<str>>(
        &self,
        tags: &'a [S],
        options: ResolveOptions,
    ) -> Option<&'a str> {
        let tags = tags.iter().map(AsRef::as_ref);
        match self {
            Channel::Latest => tags.into_iter().find(|tag| *tag == "latest"),
            Channel::Tag(wanted) => tags.into_iter().find(|tag| tag == wanted),
            Channel::Digest(_) => None,
            Channel::Series(_) | Channel::Exact(_) | Channel::Range(_) => {
                let prefer_v = match self {
                    Channel::Series(version) | Channel::Exact(version) => version.has_v_prefix(),
                    _ => true,
                };
                tags.filter_map(|tag| Some((tag, Version::from_tag(tag)?)))
                    .filter(|(_, version)| self.matches_version(version, options))
                    .max_by(|(a_tag, a), (b_tag, b)| {
                        a.cmp_precedence(b)
                            // Equal versions (`v1.4.2` and `1.4.2`): the channel's spelling,
                            // then the smaller string, so the input order never matters.
                            .then_with(|| {
                                (a.has_v_prefix() == prefer_v).cmp(&(b.has_v_prefix() == prefer_v))
                            })
                            .then_with(|| b_tag.cmp(a_tag))
                    })
                    .map(|(tag, _)| tag)
            }
        }
    }

    /// Whether `tag` belongs to this channel (with these options).
    pub fn matches(&self, tag: &str, options: ResolveOptions) -> bool {
        match self {
            Channel::Latest => tag == "latest",
            Channel::Tag(wanted) => tag == wanted,
            Channel::Digest(_) => false,
            _ => Version::from_tag(tag)
                .is_some_and(|version| self.matches_version(&version, options)),
        }
    }

    fn matches_version(&self, version: &Version, options: ResolveOptions) -> bool {
        let stable_or_allowed = !version.is_prerelease() || options.prereleases;
        match self {
            Channel::Series(series) => {
                stable_or_allowed
                    && version.major() == series.major()
                    && (series.minor().is_none() || version.minor() == series.minor())
            }
            Channel::Exact(exact) => version.same_version(exact),
            Channel::Range(requirement) => {
                let Some(semver) = version.to_semver() else {
                    return false;
                };
                if requirement.matches(&semver) {
                    return true;
                }
                // semver only lets a prerelease match a range naming one; with the
                // opt-in, a prerelease matches when its release would.
                options.prereleases
                    && version.is_prerelease()
                    && requirement.matches(&semver::Version {
                        pre: semver::Prerelease::EMPTY,
                        ..semver
                    })
            }
            Channel::Latest | Channel::Tag(_) | Channel::Digest(_) => false,
        }
    }
}

impl FromStr for Channel {
    type Err = Error;

    fn from_str(input: &str) -> Result<Channel, Error> {
        let invalid = |reason: String| Error::InvalidChannel {
            input: input.to_owned(),
            reason,
        };
        if let Some(digest) = input.strip_prefix('@') {
            return Digest::parse_parts(digest)
                .map(Channel::Digest)
                .map_err(|reason| invalid(format!("invalid digest: {reason}")));
        }
        if input.contains(':') {
            return Digest::parse_parts(input)
                .map(Channel::Digest)
                .map_err(|reason| invalid(format!("invalid digest: {reason}")));
        }
        if input == "latest" {
            return Ok(Channel::Latest);
        }
        if input.contains(['^', '~', '<', '>', '=', '*', ',', ' ']) {
            return semver::VersionReq::parse(input)
                .map(Channel::Range)
                .map_err(|error| invalid(format!("invalid version range: {error}")));
        }
        if let Some(version) = Version::from_tag(input) {
            return Ok(if version.is_full() {
                Channel::Exact(version)
            } else {
                Channel::Series(version)
            });
        }
        if is_tag(input) {
            return Ok(Channel::Tag(input.to_owned()));
        }
        Err(invalid(
            "expected `latest`, a version (`v1`, `v1.4`, `v1.4.2`), a version range (`^1.2`), \
             a tag or a digest (`@sha256:…`)"
                .to_owned(),
        ))
    }
}

impl fmt::Display for Channel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Channel::Latest => f.write_str("latest"),
            Channel::Series(version) | Channel::Exact(version) => write!(f, "{version}"),
            Channel::Range(requirement) => write!(f, "{requirement}"),
            Channel::Tag(tag) => f.write_str(tag),
            Channel::Digest(digest) => write!(f, "{digest}"),
        }
    }
}

impl serde::Serialize for Channel {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Channel {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Channel, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// A repository and the channel followed in it: `nginx:v1`, `ghcr.io/o/app:^1.2`,
/// `app@sha256:…`.
///
/// Unlike [`ImageRef`], the part after `:` may be a version range (`^1.2`,
/// `>=1.2, <2`), which is not a valid tag. No tag means `latest`.
///
/// ```
/// use fleet_registry::{Channel, ChannelRef};
///
/// let tracked: ChannelRef = "ghcr.io/owner/app:>=1.2, <2".parse()?;
/// assert_eq!(tracked.image().to_string(), "ghcr.io/owner/app");
/// assert!(matches!(tracked.channel(), Channel::Range(_)));
/// assert_eq!("nginx".parse::<ChannelRef>()?.to_string(), "docker.io/library/nginx:latest");
/// # Ok::<(), fleet_registry::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChannelRef {
    image: ImageRef,
    channel: Channel,
}

impl ChannelRef {
    /// A repository (its tag and digest are dropped) and a channel.
    pub fn new(image: &ImageRef, channel: Channel) -> ChannelRef {
        ChannelRef {
            image: image.without_tag_or_digest(),
            channel,
        }
    }

    /// The channel a reference names through its tag or digest.
    pub fn from_image(image: &ImageRef) -> ChannelRef {
        ChannelRef::new(image, Channel::from_image(image))
    }

    /// The repository, without tag or digest.
    pub fn image(&self) -> &ImageRef {
        &self.image
    }

    /// The channel.
    pub fn channel(&self) -> &Channel {
        &self.channel
    }
}

impl FromStr for ChannelRef {
    type Err = Error;

    fn from_str(input: &str) -> Result<ChannelRef, Error> {
        let invalid_reference = |reason: ReferenceError| Error::InvalidReference {
            input: input.to_owned(),
            reason,
        };
        // A digest, or a `:` whose right-hand side has no `/` (else it is a registry port).
        let split = match input.rsplit_once(':') {
            Some((name, channel)) if !input.contains('@') && !channel.contains('/') => {
                Some((name, channel))
            }
            _ => None,
        };
        let Some((name, channel)) = split else {
            let image = ImageRef::parse(input).map_err(invalid_reference)?;
            return Ok(ChannelRef::from_image(&image));
        };
        let image = ImageRef::parse(name).map_err(invalid_reference)?;
        if image.tag().is_some() {
            return Err(invalid_reference(ReferenceError::InvalidTag {
                tag: format!("{}:{channel}", image.tag().unwrap_or_default()),
            }));
        }
        let channel = channel.parse()?;
        Ok(ChannelRef { image, channel })
    }
}

impl fmt::Display for ChannelRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.channel {
            Channel::Digest(digest) => write!(f, "{}@{digest}", self.image),
            channel => write!(f, "{}:{channel}", self.image),
        }
    }
}

impl serde::Serialize for ChannelRef {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for ChannelRef {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<ChannelRef, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests;
