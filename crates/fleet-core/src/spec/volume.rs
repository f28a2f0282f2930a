//! Extra bind mounts: `HOST:CONTAINER[:ro|rw]`, and where fleet lets them go.

use std::path::PathBuf;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::DATA_MOUNT;
use crate::error::Error;

/// An extra bind mount.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VolumeSpec {
    /// The host path.
    pub host: PathBuf,
    /// The path in the container.
    pub container: String,
    /// Mounted read-only.
    #[serde(default)]
    pub read_only: bool,
}

impl FromStr for VolumeSpec {
    type Err = Error;

    /// Parses `HOST:CONTAINER[:ro|rw]`.
    fn from_str(text: &str) -> Result<Self, Error> {
        let invalid = |reason: String| Error::InvalidVolume {
            text: text.to_owned(),
            reason,
        };
        let parts: Vec<&str> = text.split(':').collect();
        let (host, container, read_only) = match parts.as_slice() {
            [host, container] => (host, container, false),
            [host, container, "ro"] => (host, container, true),
            [host, container, "rw"] => (host, container, false),
            [_, _, mode] => {
                return Err(invalid(format!("its mode {mode:?} is neither ro nor rw")));
            }
            _ => return Err(invalid("it is not HOST:CONTAINER[:ro|rw]".to_owned())),
        };
        Ok(Self {
            host: PathBuf::from(host),
            container: (*container).to_owned(),
            read_only,
        })
    }
}

impl VolumeSpec {
    /// Checks what can be checked without the host: absolute paths, and a target other
    /// than the data directory's.
    pub(super) fn check(&self) -> Result<(), String> {
        if !self.container.starts_with('/') {
            return Err(format!(
                "volume target {:?} must be an absolute path",
                self.container
            ));
        }
        if self.container == DATA_MOUNT {
            return Err(format!(
                "{DATA_MOUNT} is where the data directory is mounted; choose the data directory instead of a volume there"
            ));
        }
        if !self.host.is_absolute() {
            return Err(format!(
                "volume source {} must be an absolute path",
                self.host.display()
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::tests::{check, spec};

    fn parse(text: &str) -> String {
        match text.parse::<VolumeSpec>() {
            Ok(v) => format!(
                "ok {} -> {} ro={}",
                v.host.display(),
                v.container,
                v.read_only
            ),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn volumes() {
        insta::assert_snapshot!(parse("/srv/x:/x"), @"ok /srv/x -> /x ro=false");
        insta::assert_snapshot!(parse("/srv/x:/x:ro"), @"ok /srv/x -> /x ro=true");
        insta::assert_snapshot!(parse("/srv/x:/x:rw"), @"ok /srv/x -> /x ro=false");
        insta::assert_snapshot!(parse("/srv/x"), @r#"invalid volume "/srv/x": it is not HOST:CONTAINER[:ro|rw]"#);
        insta::assert_snapshot!(parse("/srv/x:/x:rx"), @r#"invalid volume "/srv/x:/x:rx": its mode "rx" is neither ro nor rw"#);
        insta::assert_snapshot!(parse("/a:/b:ro:x"), @r#"invalid volume "/a:/b:ro:x": it is not HOST:CONTAINER[:ro|rw]"#);
    }

    fn with_volume(text: &str) -> String {
        let mut spec = spec();
        spec.volumes.push(text.parse().unwrap());
        check(spec)
    }

    #[test]
    fn volume_paths() {
        insta::assert_snapshot!(with_volume("/srv/x:/x:ro"), @"ok");
        insta::assert_snapshot!(with_volume("/srv/x:/data"), @"invalid spec for instance alice: /data is where the data directory is mounted; choose the data directory instead of a volume there");
        insta::assert_snapshot!(with_volume("/srv/x:x"), @r#"invalid spec for instance alice: volume target "x" must be an absolute path"#);
        insta::assert_snapshot!(with_volume("srv/x:/x"), @"invalid spec for instance alice: volume source srv/x must be an absolute path");
    }
}
