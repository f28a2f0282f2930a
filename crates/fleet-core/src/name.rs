//! Instance names: short, DNS-label-like, safe in container names, paths and URLs.

use std::fmt;
use std::str::FromStr;

use crate::error::Error;

/// A validated instance name: 1 to 63 characters of `a-z`, `0-9` and `-`, starting with a
/// letter and not ending with `-` (an RFC 1123 label that is also a valid container name,
/// directory name and DNS name).
///
/// ```
/// use fleet_core::InstanceName;
/// assert!("alice".parse::<InstanceName>().is_ok());
/// assert!("Alice".parse::<InstanceName>().is_err());
/// ```
#[derive(
    Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(try_from = "String", into = "String")]
pub struct InstanceName(String);

impl InstanceName {
    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

fn check(name: &str) -> Result<(), &'static str> {
    if name.is_empty() {
        return Err("it is empty");
    }
    if name.len() > 63 {
        return Err("it is longer than 63 characters");
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    {
        return Err("only lower-case letters, digits and '-' are allowed");
    }
    if !name.as_bytes()[0].is_ascii_lowercase() {
        return Err("it must start with a lower-case letter");
    }
    if name.ends_with('-') {
        return Err("it must not end with '-'");
    }
    Ok(())
}

impl FromStr for InstanceName {
    type Err = Error;

    fn from_str(name: &str) -> Result<Self, Error> {
        check(name).map_err(|reason| Error::InvalidName {
            name: name.to_owned(),
            reason: reason.to_owned(),
        })?;
        Ok(Self(name.to_owned()))
    }
}

impl TryFrom<String> for InstanceName {
    type Error = Error;

    fn try_from(name: String) -> Result<Self, Error> {
        name.parse()
    }
}

impl From<InstanceName> for String {
    fn from(name: InstanceName) -> String {
        name.0
    }
}

impl fmt::Display for InstanceName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for InstanceName {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(input: &str) -> String {
        match input.parse::<InstanceName>() {
            Ok(name) => format!("ok {name}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn names() {
        insta::assert_snapshot!(check("alice"), @"ok alice");
        insta::assert_snapshot!(check("customer-42"), @"ok customer-42");
        insta::assert_snapshot!(check("a"), @"ok a");
        insta::assert_snapshot!(check(""), @r#"invalid instance name "": it is empty"#);
        insta::assert_snapshot!(check("Alice"), @r#"invalid instance name "Alice": only lower-case letters, digits and '-' are allowed"#);
        insta::assert_snapshot!(check("42"), @r#"invalid instance name "42": it must start with a lower-case letter"#);
        insta::assert_snapshot!(check("-a"), @r#"invalid instance name "-a": it must start with a lower-case letter"#);
        insta::assert_snapshot!(check("a-"), @r#"invalid instance name "a-": it must not end with '-'"#);
        insta::assert_snapshot!(check("a_b"), @r#"invalid instance name "a_b": only lower-case letters, digits and '-' are allowed"#);
        insta::assert_snapshot!(check("a.b"), @r#"invalid instance name "a.b": only lower-case letters, digits and '-' are allowed"#);
        insta::assert_snapshot!(check("../etc"), @r#"invalid instance name "../etc": only lower-case letters, digits and '-' are allowed"#);
        insta::assert_snapshot!(check(&"a".repeat(64)), @r#"invalid instance name "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa": it is longer than 63 characters"#);
        assert!(InstanceName::from_str(&"a".repeat(63)).is_ok());
    }
}
