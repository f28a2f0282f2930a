//! Route names and host names: validated once, compared cheaply.

use std::borrow::{Borrow, Cow};
use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use crate::Error;

/// The name of a route, as the embedder calls it (fleet uses the instance name).
///
/// 1 to 128 ASCII letters, digits, `-`, `_` or `.`: it appears in logs and in the 502
/// page a client sees, so it can never smuggle markup or control characters there.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RouteName(Arc<str>);

impl RouteName {
    /// Checks and wraps a route name.
    pub fn new(name: &str) -> Result<Self, Error> {
        let invalid = |reason| Error::InvalidRouteName {
            name: name.to_owned(),
            reason,
        };
        if name.is_empty() {
            return Err(invalid("it is empty"));
        }
        if name.len() > 128 {
            return Err(invalid("it is longer than 128 bytes"));
        }
        if !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        {
            return Err(invalid(
                "only ASCII letters, digits, '-', '_' and '.' are allowed",
            ));
        }
        Ok(Self(name.into()))
    }

    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for RouteName {
    type Err = Error;

    fn from_str(name: &str) -> Result<Self, Error> {
        Self::new(name)
    }
}

impl fmt::Display for RouteName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for RouteName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

/// A host name as routing compares it: lower case, without a port or a final dot.
///
/// `Alice.Example.LAN.` and `alice.example.lan` are the same host name. Requests are
/// matched on their `Host` header (or the authority of an absolute-form target),
/// normalised the same way.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct HostName(Arc<str>);

impl HostName {
    /// Checks, normalises and wraps a host name (letters, digits, `-`, `_` and `.`).
    pub fn new(host: &str) -> Result<Self, Error> {
        let invalid = |reason| Error::InvalidHostName {
            host: host.to_owned(),
            reason,
        };
        let trimmed = host.strip_suffix('.').unwrap_or(host);
        if trimmed.is_empty() {
            return Err(invalid("it is empty"));
        }
        if trimmed.len() > 253 {
            return Err(invalid("it is longer than 253 bytes"));
        }
        if !trimmed.bytes().all(is_host_byte) {
            return Err(invalid(
                "only ASCII letters, digits, '-', '_' and '.' are allowed (no port)",
            ));
        }
        if trimmed.split('.').any(str::is_empty) {
            return Err(invalid("it has an empty label"));
        }
        Ok(Self(trimmed.to_ascii_lowercase().into()))
    }

    /// The host name as text, in lower case.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

fn is_host_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.')
}

impl Borrow<str> for HostName {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl FromStr for HostName {
    type Err = Error;

    fn from_str(host: &str) -> Result<Self, Error> {
        Self::new(host)
    }
}

impl fmt::Display for HostName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for HostName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

/// The host name a request's `Host` value names, normalised for lookup: without the
/// port and the final dot, in lower case (borrowed when it already is). `None` when
/// the value cannot be a host name routes are keyed on (an IP literal in brackets,
/// bytes outside the host name alphabet).
pub(crate) fn request_host(value: &[u8]) -> Option<Cow<'_, str>> {
    let host = match value.iter().rposition(|&b| b == b':') {
        Some(colon) if value[colon + 1..].iter().all(u8::is_ascii_digit) => &value[..colon],
        _ => value,
    };
    let host = host.strip_suffix(b".").unwrap_or(host);
    if host.is_empty() || !host.iter().copied().all(is_host_byte) {
        return None;
    }
    // Only ASCII bytes are left, so this cannot fail.
    let host = std::str::from_utf8(host).ok()?;
    if host.bytes().any(|b| b.is_ascii_uppercase()) {
        Some(Cow::Owned(host.to_ascii_lowercase()))
    } else {
        Some(Cow::Borrowed(host))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check_request_host(value: &str) -> String {
        match request_host(value.as_bytes()) {
            Some(host) => host.into_owned(),
            None => "-".to_owned(),
        }
    }

    #[test]
    fn request_hosts_are_normalised_for_lookup() {
        assert_eq!(check_request_host("alice.example.lan"), "alice.example.lan");
        assert_eq!(check_request_host("Alice.Example.LAN"), "alice.example.lan");
        assert_eq!(
            check_request_host("alice.example.lan:8080"),
            "alice.example.lan"
        );
        assert_eq!(
            check_request_host("alice.example.lan.:80"),
            "alice.example.lan"
        );
        assert_eq!(check_request_host("127.0.0.1:8080"), "127.0.0.1");
        assert_eq!(check_request_host("[::1]:8080"), "-");
        assert_eq!(check_request_host(""), "-");
        assert_eq!(check_request_host(":80"), "-");
        assert_eq!(check_request_host("a b"), "-");
    }

    #[test]
    fn host_names_are_checked_and_lower_cased() {
        assert_eq!(
            HostName::new("Alice.Example.LAN.").unwrap().as_str(),
            "alice.example.lan"
        );
        assert!(HostName::new("").is_err());
        assert!(HostName::new("alice:80").is_err());
        assert!(HostName::new("a..b").is_err());
        assert!(HostName::new("<b>").is_err());
    }

    #[test]
    fn route_names_are_checked() {
        assert_eq!(
            RouteName::new("alice-1.v2_x").unwrap().as_str(),
            "alice-1.v2_x"
        );
        assert!(RouteName::new("").is_err());
        assert!(RouteName::new("a/b").is_err());
        assert!(RouteName::new("<script>").is_err());
        assert!(RouteName::new(&"a".repeat(129)).is_err());
    }

    proptest::proptest! {
        #[test]
        fn a_valid_host_name_is_found_from_any_host_header_spelling(
            host in "[a-zA-Z0-9]{1,10}(\\.[a-zA-Z0-9-]{1,10}){0,3}",
            port in proptest::option::of(0u16..),
            dot in proptest::bool::ANY,
        ) {
            let name = HostName::new(&host).unwrap();
            let mut header = host.clone();
            if dot { header.push('.'); }
            if let Some(port) = port { header.push_str(&format!(":{port}")); }
            let found = request_host(header.as_bytes()).unwrap();
            proptest::prop_assert_eq!(found.as_ref(), name.as_str());
        }
    }
}
