//! Platforms (`linux/amd64`, `linux/arm64`, `linux/arm/v7`) and picking one from an index.

use std::fmt;
use std::str::FromStr;

use crate::error::Error;

/// An operating system, CPU architecture and optional variant, normalised like
/// containerd's `platforms.Normalize`: `x86_64` → `amd64`, `aarch64` → `arm64`,
/// `arm64/v8` ≡ `arm64`, `armhf` → `arm/v7`, `armel` → `arm/v6`, `i386` → `386`.
///
/// ```
/// use fleet_registry::Platform;
///
/// let platform: Platform = "linux/aarch64".parse()?;
/// assert_eq!(platform.to_string(), "linux/arm64");
/// assert!(platform.matches("linux", "arm64", Some("v8")));
/// # Ok::<(), fleet_registry::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Platform {
    os: String,
    architecture: String,
    variant: Option<String>,
}

impl Platform {
    /// A platform from its parts, normalised.
    pub fn new(os: &str, architecture: &str, variant: Option<&str>) -> Platform {
        let os = os.to_ascii_lowercase();
        let (architecture, variant) = normalise_arch(&architecture.to_ascii_lowercase(), variant);
        Platform {
            os,
            architecture,
            variant,
        }
    }

    /// The operating system: `linux`.
    pub fn os(&self) -> &str {
        &self.os
    }

    /// The architecture: `amd64`, `arm64`, `arm`.
    pub fn architecture(&self) -> &str {
        &self.architecture
    }

    /// The variant: `v7` for `arm/v7`; `None` for `arm64` (its only variant, `v8`, is implied).
    pub fn variant(&self) -> Option<&str> {
        self.variant.as_deref()
    }

    /// Whether an entry of an index (or an image config) is for this platform. A platform
    /// without a variant accepts any variant of its architecture.
    pub fn matches(&self, os: &str, architecture: &str, variant: Option<&str>) -> bool {
        let other = Platform::new(os, architecture, variant);
        self.os == other.os
            && self.architecture == other.architecture
            && (self.variant.is_none() || self.variant == other.variant)
    }
}

fn normalise_arch(architecture: &str, variant: Option<&str>) -> (String, Option<String>) {
    let variant = variant
        .filter(|v| !v.is_empty())
        .map(str::to_ascii_lowercase);
    match architecture {
        "i386" => ("386".to_owned(), None),
        "x86_64" | "x86-64" | "amd64" => ("amd64".to_owned(), variant.filter(|v| v != "v1")),
        "aarch64" | "arm64" => (
            "arm64".to_owned(),
            variant.filter(|v| v != "v8" && v != "8"),
        ),
        "armhf" => ("arm".to_owned(), Some("v7".to_owned())),
        "armel" => ("arm".to_owned(), Some("v6".to_owned())),
        "arm" => (
            "arm".to_owned(),
            variant.map(|v| {
                if v.starts_with('v') {
                    v
                } else {
                    format!("v{v}")
                }
            }),
        ),
        other => (other.to_owned(), variant),
    }
}

impl FromStr for Platform {
    type Err = Error;

    fn from_str(input: &str) -> Result<Platform, Error> {
        let parts: Vec<&str> = input.split('/').collect();
        let valid = |part: &&str| {
            !part.is_empty()
                && part
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        };
        if !(2..=3).contains(&parts.len()) || !parts.iter().all(valid) {
            return Err(Error::InvalidPlatform {
                input: input.to_owned(),
            });
        }
        Ok(Platform::new(parts[0], parts[1], parts.get(2).copied()))
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(variant) = &self.variant {
            write!(f, "/{variant}")?;
        }
        Ok(())
    }
}

impl serde::Serialize for Platform {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Platform {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Platform, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(input: &str) -> String {
        match input.parse::<Platform>() {
            Ok(platform) => platform.to_string(),
            Err(error) => format!("error: {error}"),
        }
    }

    #[test]
    fn normalises() {
        assert_eq!(check("linux/amd64"), "linux/amd64");
        assert_eq!(check("linux/x86_64"), "linux/amd64");
        assert_eq!(check("linux/arm64"), "linux/arm64");
        assert_eq!(check("linux/arm64/v8"), "linux/arm64");
        assert_eq!(check("linux/aarch64"), "linux/arm64");
        assert_eq!(check("linux/arm/v7"), "linux/arm/v7");
        assert_eq!(check("linux/arm/7"), "linux/arm/v7");
        assert_eq!(check("linux/armhf"), "linux/arm/v7");
        assert_eq!(check("linux/armel"), "linux/arm/v6");
        assert_eq!(check("linux/i386"), "linux/386");
        assert_eq!(check("Linux/AMD64"), "linux/amd64");
        assert_eq!(check("linux/riscv64"), "linux/riscv64");
        assert_eq!(
            check("linux"),
            r#"error: invalid platform "linux": expected `os/architecture[/variant]`, such as `linux/arm64`"#
        );
        assert_eq!(
            check("linux//v7"),
            r#"error: invalid platform "linux//v7": expected `os/architecture[/variant]`, such as `linux/arm64`"#
        );
        assert_eq!(
            check("a/b/c/d"),
            r#"error: invalid platform "a/b/c/d": expected `os/architecture[/variant]`, such as `linux/arm64`"#
        );
    }

    #[test]
    fn matches_index_entries() {
        let arm64: Platform = "linux/arm64".parse().unwrap();
        assert!(arm64.matches("linux", "arm64", None));
        assert!(arm64.matches("linux", "arm64", Some("v8")));
        assert!(!arm64.matches("linux", "amd64", None));
        assert!(!arm64.matches("windows", "arm64", None));
        let arm: Platform = "linux/arm".parse().unwrap();
        assert!(arm.matches("linux", "arm", Some("v6")));
        let armv7: Platform = "linux/arm/v7".parse().unwrap();
        assert!(armv7.matches("linux", "arm", Some("v7")));
        assert!(!armv7.matches("linux", "arm", Some("v6")));
        assert!(!armv7.matches("linux", "arm", None));
    }
}
