//! Tags read as versions: `v1`, `1.4`, `v1.4.2`, `2.0.0-rc.1`.

use std::cmp::Ordering;
use std::fmt;
use std::str::FromStr;

use crate::error::Error;

/// A tag read as a version.
///
/// An optional `v`, then one, two or three numeric components without leading zeros
/// (`1`, `1.4`, `1.4.2`); a full three-component version may carry a semver prerelease
/// (`-rc.1`) and build metadata (`+build.5`, ignored when comparing). Anything else
/// (`latest`, `sha-1a2b3c4`, `1.4-alpine`, `2024.01.15`) is not a version, which is not
/// an error: [`Version::from_tag`] returns `None` and the tag is simply not a candidate
/// for version channels.
///
/// Versions compare by precedence ([`Version::cmp_precedence`]): numerically by
/// component, a missing component below any present one (`1` < `1.0` < `1.0.0`, so the
/// most specific tag wins among equals), prereleases below their release, build metadata
/// and the `v` ignored.
///
/// ```
/// use fleet_registry::Version;
///
/// let version = Version::from_tag("v1.4.2").unwrap();
/// assert_eq!((version.major(), version.minor(), version.patch()), (1, Some(4), Some(2)));
/// assert!(Version::from_tag("sha-1a2b3c4").is_none());
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Version {
    major: u64,
    minor: Option<u64>,
    patch: Option<u64>,
    pre: semver::Prerelease,
    build: semver::BuildMetadata,
    v_prefix: bool,
}

impl Version {
    /// Reads a tag as a version; `None` when it is not one.
    pub fn from_tag(tag: &str) -> Option<Version> {
        let (v_prefix, rest) = match tag.strip_prefix('v') {
            Some(rest) => (true, rest),
            None => (false, tag),
        };
        let (rest, build) = match rest.split_once('+') {
            Some((rest, build)) => (rest, Some(build)),
            None => (rest, None),
        };
        let (core, pre) = match rest.split_once('-') {
            Some((core, pre)) => (core, Some(pre)),
            None => (rest, None),
        };
        let mut numbers = [None; 3];
        let mut count = 0;
        for part in core.split('.') {
            if count == 3 {
                return None;
            }
            numbers[count] = Some(parse_number(part)?);
            count += 1;
        }
        if count < 3 && (pre.is_some() || build.is_some()) {
            return None;
        }
        let pre = match pre {
            Some(pre) if !pre.is_empty() => semver::Prerelease::new(pre).ok()?,
            Some(_) => return None,
            None => semver::Prerelease::EMPTY,
        };
        let build = match build {
            Some(build) if !build.is_empty() => semver::BuildMetadata::new(build).ok()?,
            Some(_) => return None,
            None => semver::BuildMetadata::EMPTY,
        };
        Some(Version {
            major: numbers[0]?,
            minor: numbers[1],
            patch: numbers[2],
            pre,
            build,
            v_prefix,
        })
    }

    /// The first component.
    pub fn major(&self) -> u64 {
        self.major
    }

    /// The second component, when the tag has one.
    pub fn minor(&self) -> Option<u64> {
        self.minor
    }

    /// The third component, when the tag has one.
    pub fn patch(&self) -> Option<u64> {
        self.patch
    }

    /// The prerelease (`rc.1`), empty for a release.
    pub fn pre(&self) -> &str {
        self.pre.as_str()
    }

    /// Whether this is a prerelease such as `2.0.0-rc.1`.
    pub fn is_prerelease(&self) -> bool {
        !self.pre.is_empty()
    }

    /// Whether all three components are present (`1.4.2`, not `1.4`).
    pub fn is_full(&self) -> bool {
        self.patch.is_some()
    }

    /// Whether the tag was written with a leading `v`.
    pub fn has_v_prefix(&self) -> bool {
        self.v_prefix
    }

    /// The semver version, for full versions; build metadata is dropped.
    pub fn to_semver(&self) -> Option<semver::Version> {
        Some(semver::Version {
            major: self.major,
            minor: self.minor?,
            patch: self.patch?,
            pre: self.pre.clone(),
            build: semver::BuildMetadata::EMPTY,
        })
    }

    /// The full version written as a tag with a `v`: `v1.4.2`, `v2.0.0-rc.1`.
    pub fn from_semver(version: &semver::Version) -> Version {
        Version {
            major: version.major,
            minor: Some(version.minor),
            patch: Some(version.patch),
            pre: version.pre.clone(),
            build: semver::BuildMetadata::EMPTY,
            v_prefix: true,
        }
    }

    /// Compares by precedence: components numerically (missing below present),
    /// prereleases below releases, build metadata and `v` ignored.
    pub fn cmp_precedence(&self, other: &Version) -> Ordering {
        (self.major, self.minor, self.patch)
            .cmp(&(other.major, other.minor, other.patch))
            .then_with(|| self.pre.cmp(&other.pre))
    }

    /// Whether both name the same version (build metadata and `v` ignored).
    pub fn same_version(&self, other: &Version) -> bool {
        self.cmp_precedence(other) == Ordering::Equal
    }
}

/// A numeric component: digits, no leading zero unless it is `0`.
fn parse_number(part: &str) -> Option<u64> {
    let well_formed = !part.is_empty()
        && part.bytes().all(|b| b.is_ascii_digit())
        && (part == "0" || !part.starts_with('0'));
    if well_formed { part.parse().ok() } else { None }
}

impl FromStr for Version {
    type Err = Error;

    fn from_str(input: &str) -> Result<Version, Error> {
        Version::from_tag(input).ok_or_else(|| Error::InvalidVersion {
            input: input.to_owned(),
            reason: "expected an optional `v` and one to three numbers without leading zeros \
                     (`v1`, `1.4`, `1.4.2`), a full version optionally followed by \
                     `-prerelease` and `+build`"
                .to_owned(),
        })
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.v_prefix {
            f.write_str("v")?;
        }
        write!(f, "{}", self.major)?;
        if let Some(minor) = self.minor {
            write!(f, ".{minor}")?;
        }
        if let Some(patch) = self.patch {
            write!(f, ".{patch}")?;
        }
        if !self.pre.is_empty() {
            write!(f, "-{}", self.pre)?;
        }
        if !self.build.is_empty() {
            write!(f, "+{}", self.build)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(tag: &str) -> String {
        match Version::from_tag(tag) {
            None => "not a version".to_owned(),
            Some(v) => {
                let minor = v.minor().map_or("-".to_owned(), |n| n.to_string());
                let patch = v.patch().map_or("-".to_owned(), |n| n.to_string());
                let pre = if v.is_prerelease() {
                    format!(" pre={}", v.pre())
                } else {
                    String::new()
                };
                let v_prefix = if v.has_v_prefix() { " v" } else { "" };
                format!("{} {minor} {patch}{pre}{v_prefix} => {v}", v.major())
            }
        }
    }

    #[test]
    fn reads_tags() {
        assert_eq!(check("1"), "1 - - => 1");
        assert_eq!(check("v1"), "1 - - v => v1");
        assert_eq!(check("1.4"), "1 4 - => 1.4");
        assert_eq!(check("v1.4"), "1 4 - v => v1.4");
        assert_eq!(check("1.4.2"), "1 4 2 => 1.4.2");
        assert_eq!(check("v1.4.2"), "1 4 2 v => v1.4.2");
        assert_eq!(check("0.0.0"), "0 0 0 => 0.0.0");
        assert_eq!(check("10.20.30"), "10 20 30 => 10.20.30");
        assert_eq!(check("v2.0.0-rc.1"), "2 0 0 pre=rc.1 v => v2.0.0-rc.1");
        assert_eq!(
            check("1.0.0-alpha-a.b-c"),
            "1 0 0 pre=alpha-a.b-c => 1.0.0-alpha-a.b-c"
        );
        assert_eq!(check("1.4.2-alpine"), "1 4 2 pre=alpine => 1.4.2-alpine");
        assert_eq!(check("1.4.2+build.5"), "1 4 2 => 1.4.2+build.5");
        assert_eq!(
            check("1.4.2-rc.1+build.5"),
            "1 4 2 pre=rc.1 => 1.4.2-rc.1+build.5"
        );
    }

    #[test]
    fn refuses_what_is_not_a_version() {
        for tag in [
            "",
            "v",
            "latest",
            "main",
            "sha-1a2b3c4",
            "main-1a2b3c4",
            "1.4-alpine",
            "16-alpine",
            "1.2.3.4",
            "01",
            "1.04",
            "1.4.02",
            "2024.01.15",
            "V1",
            "vv1",
            "1.",
            ".1",
            "1..2",
            "1.2.3-",
            "1.2.3+",
            "1.2.3-01",
            "1.2.3-rc_1",
            "1.2+b",
            "-1",
            "1.x",
            "99999999999999999999",
        ] {
            assert_eq!(check(tag), "not a version", "{tag:?}");
        }
    }

    #[test]
    fn precedence() {
        let ordered = [
            "0.9.9",
            "1",
            "1.0",
            "1.0.0-alpha",
            "1.0.0-alpha.1",
            "1.0.0-alpha.beta",
            "1.0.0-beta",
            "1.0.0-beta.2",
            "1.0.0-beta.11",
            "1.0.0-rc.1",
            "1.0.0",
            "1.0.1",
            "1.1",
            "1.1.0",
            "1.10.0",
            "2",
        ];
        for pair in ordered.windows(2) {
            let (a, b) = (
                Version::from_tag(pair[0]).unwrap(),
                Version::from_tag(pair[1]).unwrap(),
            );
            assert_eq!(
                a.cmp_precedence(&b),
                Ordering::Less,
                "{} < {}",
                pair[0],
                pair[1]
            );
        }
        let (a, b) = (
            Version::from_tag("v1.4.2").unwrap(),
            Version::from_tag("1.4.2+b").unwrap(),
        );
        assert!(a.same_version(&b));
    }

    #[test]
    fn errors_and_semver() {
        assert_eq!(
            "1.x".parse::<Version>().unwrap_err().to_string(),
            "invalid version \"1.x\": expected an optional `v` and one to three numbers without leading zeros \
             (`v1`, `1.4`, `1.4.2`), a full version optionally followed by `-prerelease` and `+build`"
        );
        let version: Version = "v1.4.2-rc.1+b".parse().unwrap();
        assert_eq!(version.to_semver().unwrap().to_string(), "1.4.2-rc.1");
        assert_eq!(
            Version::from_semver(&version.to_semver().unwrap()).to_string(),
            "v1.4.2-rc.1"
        );
        assert!("1.4".parse::<Version>().unwrap().to_semver().is_none());
    }
}
