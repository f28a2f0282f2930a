//! Restart policies: what the engine does when a container exits, written as Docker
//! writes them (`unless-stopped`, `on-failure:3`).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::Error;

/// What the engine does when the container exits (Docker's restart policies).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RestartPolicy {
    /// Never restart.
    No,
    /// Always restart.
    Always,
    /// Restart unless stopped by the operator (the default).
    #[default]
    UnlessStopped,
    /// Restart after a failure, at most this many times (0: no limit).
    OnFailure(u32),
}

impl FromStr for RestartPolicy {
    type Err = Error;

    /// Parses `no`, `always`, `unless-stopped`, `on-failure` or `on-failure:N`.
    fn from_str(text: &str) -> Result<Self, Error> {
        let invalid = |reason: String| Error::InvalidRestartPolicy {
            text: text.to_owned(),
            reason,
        };
        Ok(match text.split_once(':') {
            None if text == "no" => Self::No,
            None if text == "always" => Self::Always,
            None if text == "unless-stopped" => Self::UnlessStopped,
            None if text == "on-failure" => Self::OnFailure(0),
            Some(("on-failure", n)) => Self::OnFailure(
                n.parse()
                    .map_err(|_| invalid(format!("{n:?} is not a count")))?,
            ),
            _ => {
                return Err(invalid(
                    "it is not one of no, always, unless-stopped, on-failure[:N]".to_owned(),
                ));
            }
        })
    }
}

impl fmt::Display for RestartPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::No => f.write_str("no"),
            Self::Always => f.write_str("always"),
            Self::UnlessStopped => f.write_str("unless-stopped"),
            Self::OnFailure(0) => f.write_str("on-failure"),
            Self::OnFailure(n) => write!(f, "on-failure:{n}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(text: &str) -> String {
        match text.parse::<RestartPolicy>() {
            Ok(policy) => format!("ok {policy}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn restart_policies_round_trip() {
        for text in [
            "no",
            "always",
            "unless-stopped",
            "on-failure",
            "on-failure:3",
        ] {
            assert_eq!(text.parse::<RestartPolicy>().unwrap().to_string(), text);
        }
        insta::assert_snapshot!(check("on-failure:0"), @"ok on-failure");
    }

    #[test]
    fn restart_policies_docker_does_not_have_are_refused() {
        insta::assert_snapshot!(check("sometimes"), @r#"invalid restart policy "sometimes": it is not one of no, always, unless-stopped, on-failure[:N]"#);
        insta::assert_snapshot!(check("always:3"), @r#"invalid restart policy "always:3": it is not one of no, always, unless-stopped, on-failure[:N]"#);
        insta::assert_snapshot!(check("on-failure:x"), @r#"invalid restart policy "on-failure:x": "x" is not a count"#);
        insta::assert_snapshot!(check("on-failure:-1"), @r#"invalid restart policy "on-failure:-1": "-1" is not a count"#);
    }
}
