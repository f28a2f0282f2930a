//! The tags a release publishes: `v1.4.2`, `v1.4`, `v1`, `latest`, `sha-1a2b3c4`.

use std::cmp::Ordering;
use std::fmt;
use std::str::FromStr;

use crate::error::Error;
use crate::version::Version;

/// A git commit id: 7 to 64 hexadecimal digits, kept lowercase.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CommitSha(String);

impl CommitSha {
    /// The first seven digits, as in `sha-1a2b3c4`.
    pub fn short(&self) -> &str {
        &self.0[..7]
    }

    /// All the digits.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for CommitSha {
    type Err = Error;

    fn from_str(input: &str) -> Result<CommitSha, Error> {
        if (7..=64).contains(&input.len()) && input.bytes().all(|b| b.is_ascii_hexdigit()) {
            Ok(CommitSha(input.to_ascii_lowercase()))
        } else {
            Err(Error::InvalidCommitSha {
                input: input.to_owned(),
            })
        }
    }
}

impl fmt::Display for CommitSha {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The tags one release publishes, following docker/metadata-action's semver patterns
/// (`{{version}}`, `{{major}}.{{minor}}`, `{{major}}`, `latest`, `sha-<7>`), written with
/// a `v`:
///
/// - a release `1.4.2` gets `v1.4.2`, `v1.4`, `v1` and `latest`;
/// - a prerelease `2.0.0-rc.1` gets only `v2.0.0-rc.1`;
/// - with a commit, `sha-<first 7 digits>` is added;
/// - given the tags already in the repository, a moving tag (`v1.4`, `v1`, `latest`) is
///   held back when a newer stable release already has it: publishing `1.3.9` after
///   `1.4.0` moves `v1.3` but neither `v1` nor `latest`.
///
/// Resolving a channel over every tag published this way gives the newest release on
/// that channel; both halves share [`Version`]'s ordering, so they cannot disagree.
///
/// ```
/// use fleet_registry::{CommitSha, ReleaseTags};
///
/// let version = semver::Version::parse("1.3.9")?;
/// let sha: CommitSha = "1a2b3c4d5e6f".parse()?;
/// let release = ReleaseTags::compute(&version, Some(&sha), &["v1.4.0", "v1.4", "v1", "latest"]);
/// assert_eq!(release.tags(), ["v1.3.9", "v1.3", "sha-1a2b3c4"]);
/// assert_eq!(release.held_back()[0].tag, "v1");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReleaseTags {
    tags: Vec<String>,
    held_back: Vec<HeldBack>,
}

/// A moving tag a release does not take, because a newer release already has it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[non_exhaustive]
pub struct HeldBack {
    /// The tag not moved: `v1`, `v1.4` or `latest`.
    pub tag: String,
    /// The existing tag of the newer release: `v1.4.0`.
    pub newer: String,
}

impl ReleaseTags {
    /// Computes the tags for `version` (its build metadata ignored), given the tags
    /// already in the repository (`existing`, in any order; non-version tags ignored).
    pub fn compute<S: AsRef<str>>(
        version: &semver::Version,
        sha: Option<&CommitSha>,
        existing: &[S],
    ) -> ReleaseTags {
        let this = Version::from_semver(version);
        let mut tags = vec![this.to_string()];
        let mut held_back = Vec::new();
        if !this.is_prerelease() {
            let existing: Vec<(&str, Version)> = existing
                .iter()
                .filter_map(|tag| Some((tag.as_ref(), Version::from_tag(tag.as_ref())?)))
                .filter(|(_, version)| !version.is_prerelease())
                .collect();
            let moving = [
                (
                    format!("v{}.{}", version.major, version.minor),
                    Some((version.major, Some(version.minor))),
                ),
                (format!("v{}", version.major), Some((version.major, None))),
                ("latest".to_owned(), None),
            ];
            for (tag, series) in moving {
                let newer = existing
                    .iter()
                    .filter(|(_, candidate)| match series {
                        Some((major, None)) => candidate.major() == major,
                        Some((major, minor)) => {
                            candidate.major() == major && candidate.minor() == minor
                        }
                        None => true,
                    })
                    .filter(|(_, candidate)| candidate.cmp_precedence(&this) == Ordering::Greater)
                    .max_by(|(a_tag, a), (b_tag, b)| {
                        a.cmp_precedence(b).then_with(|| b_tag.cmp(a_tag))
                    });
                match newer {
                    Some((newer, _)) => held_back.push(HeldBack {
                        tag,
                        newer: (*newer).to_owned(),
                    }),
                    None => tags.push(tag),
                }
            }
        }
        if let Some(sha) = sha {
            tags.push(format!("sha-{}", sha.short()));
        }
        ReleaseTags { tags, held_back }
    }

    /// The tags to publish, most specific first.
    pub fn tags(&self) -> &[String] {
        &self.tags
    }

    /// The moving tags not taken, and why.
    pub fn held_back(&self) -> &[HeldBack] {
        &self.held_back
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use proptest::prelude::*;

    use super::*;
    use crate::channel::Channel;

    fn check(version: &str, sha: Option<&str>, existing: &str) -> String {
        let version = semver::Version::parse(version).unwrap();
        let sha = sha.map(|sha| sha.parse::<CommitSha>().unwrap());
        let existing: Vec<&str> = existing.split_whitespace().collect();
        let release = ReleaseTags::compute(&version, sha.as_ref(), &existing);
        let mut out = release.tags().join(" ");
        for held in release.held_back() {
            out += &format!(" | {} stays on {}", held.tag, held.newer);
        }
        out
    }

    #[test]
    fn release_tag_sets() {
        insta::assert_snapshot!(check("1.4.2", Some("1A2B3C4D5E6F"), ""), @"v1.4.2 v1.4 v1 latest sha-1a2b3c4");
        insta::assert_snapshot!(check("1.4.2", None, ""), @"v1.4.2 v1.4 v1 latest");
        insta::assert_snapshot!(check("0.1.0", None, ""), @"v0.1.0 v0.1 v0 latest");
        insta::assert_snapshot!(check("1.4.2+build.7", None, ""), @"v1.4.2 v1.4 v1 latest");
        insta::assert_snapshot!(check("2.0.0-rc.1", Some("1a2b3c4"), ""), @"v2.0.0-rc.1 sha-1a2b3c4");
        insta::assert_snapshot!(check("2.0.0-rc.1", None, "v1.4.2 v1.4 v1 latest"), @"v2.0.0-rc.1");
    }

    #[test]
    fn an_older_patch_does_not_move_newer_tags() {
        insta::assert_snapshot!(
            check("1.3.9", Some("abcdef0"), "v1.4.0 v1.4 v1 latest v1.3.8 v1.3"),
            @"v1.3.9 v1.3 sha-abcdef0 | v1 stays on v1.4.0 | latest stays on v1.4.0"
        );
        insta::assert_snapshot!(
            check("1.4.1", None, "v2.0.0 v2 latest v1.4.0 v1.4 v1"),
            @"v1.4.1 v1.4 v1 | latest stays on v2.0.0"
        );
        insta::assert_snapshot!(
            check("1.4.1", None, "v1.4.2 v1.5.0 2.0.0"),
            @"v1.4.1 | v1.4 stays on v1.4.2 | v1 stays on v1.5.0 | latest stays on 2.0.0"
        );
        // Prereleases, partial tags and garbage never hold a release back; an equal
        // release (a re-publish) takes the tags again.
        insta::assert_snapshot!(check("1.4.1", None, "v1.5.0-rc.1 v1.4 v1 latest main sha-0000000 v1.4.1"), @"v1.4.1 v1.4 v1 latest");
        // A partial tag of a newer series does.
        insta::assert_snapshot!(check("1.4.1", None, "v1.5"), @"v1.4.1 v1.4 | v1 stays on v1.5 | latest stays on v1.5");
    }

    #[test]
    fn commit_shas() {
        assert_eq!(
            "1a2b3c".parse::<CommitSha>().unwrap_err().to_string(),
            r#"invalid commit sha "1a2b3c": expected 7 to 64 hexadecimal digits"#
        );
        assert!("1a2b3cg".parse::<CommitSha>().is_err());
        assert_eq!(
            "ABCDEF0123".parse::<CommitSha>().unwrap().short(),
            "abcdef0"
        );
    }

    fn release() -> impl Strategy<Value = semver::Version> {
        (0..3u64, 0..3u64, 0..3u64, 0..4usize).prop_map(|(major, minor, patch, pre)| {
            let pre = ["", "", "", "rc.1"][pre];
            semver::Version {
                major,
                minor,
                patch,
                pre: semver::Prerelease::new(pre).unwrap(),
                build: semver::BuildMetadata::EMPTY,
            }
        })
    }

    proptest! {
        /// Publish releases in any order, each with the tags computed from what the
        /// registry holds at that moment (a tag pushed again moves). Afterwards every
        /// moving tag points at the newest release of its series, and resolving each
        /// channel over the union of published tags gives back that release's tag.
        #[test]
        fn moving_tags_and_channels_follow_the_newest_release(
            releases in proptest::collection::vec((release(), "[0-9a-f]{7}"), 1..25),
        ) {
            let mut registry: BTreeMap<String, semver::Version> = BTreeMap::new();
            for (version, sha) in &releases {
                let existing: Vec<&String> = registry.keys().collect();
                let tags = ReleaseTags::compute(version, Some(&sha.parse().unwrap()), &existing);
                for tag in tags.tags() {
                    registry.insert(tag.clone(), version.clone());
                }
            }
            let union: Vec<&String> = registry.keys().collect();
            let stable: Vec<&semver::Version> =
                releases.iter().map(|(version, _)| version).filter(|v| v.pre.is_empty()).collect();
            let newest = |keep: &dyn Fn(&semver::Version) -> bool| {
                stable.iter().copied().filter(|v| keep(v)).max().cloned()
            };
            for version in &stable {
                let (major, minor) = (version.major, version.minor);
                for (channel, expected) in [
                    (format!("v{major}"), newest(&|v| v.major == major).unwrap()),
                    (format!("v{major}.{minor}"), newest(&|v| v.major == major && v.minor == minor).unwrap()),
                    ("latest".to_owned(), newest(&|_| true).unwrap()),
                ] {
                    prop_assert_eq!(&registry[&channel], &expected, "tag {}", channel);
                    let resolved = channel.parse::<Channel>().unwrap().resolve(&union);
                    let expected_tag = if channel == "latest" { "latest".to_owned() } else { format!("v{expected}") };
                    prop_assert_eq!(resolved, Some(expected_tag.as_str()), "channel {}", channel);
                }
            }
            if stable.is_empty() {
                prop_assert!(!registry.contains_key("latest"));
            }
            // Every release, prereleases included, keeps its exact tag.
            for (version, _) in &releases {
                prop_assert_eq!(&registry[&format!("v{version}")], version);
            }
        }
    }
}
