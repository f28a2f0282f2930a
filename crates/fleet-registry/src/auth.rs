//! `WWW-Authenticate` challenges and bearer tokens (the distribution token flow).

use std::time::{Duration, Instant};

/// What a registry asks for in a 401's `WWW-Authenticate`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Challenge {
    /// Send the username and password with every request.
    Basic,
    /// Fetch a token from `realm` for `service` and `scope`, then send it.
    Bearer {
        realm: String,
        service: Option<String>,
        scope: Option<String>,
        /// `insufficient_scope`, `invalid_token`, … when the registry says why.
        error: Option<String>,
    },
}

/// Reads the first challenge we understand in a `WWW-Authenticate` value.
pub(crate) fn parse_challenge(header: &str) -> Option<Challenge> {
    let mut rest = header.trim();
    while !rest.is_empty() {
        let (scheme, after) = rest
            .split_once(|c: char| c.is_ascii_whitespace())
            .unwrap_or((rest, ""));
        let (params, remainder) = parse_params(after.trim_start());
        match scheme.to_ascii_lowercase().as_str() {
            "basic" => return Some(Challenge::Basic),
            "bearer" => {
                let get = |name: &str| {
                    params
                        .iter()
                        .find(|(key, _)| key.eq_ignore_ascii_case(name))
                        .map(|(_, value)| value.clone())
                };
                return Some(Challenge::Bearer {
                    realm: get("realm")?,
                    service: get("service"),
                    scope: get("scope"),
                    error: get("error"),
                });
            }
            _ => rest = remainder.trim_start_matches([',', ' ']),
        }
    }
    None
}

/// Parses `key=value, key="quoted \" value"` up to the next challenge; returns the pairs
/// and what follows them.
fn parse_params(input: &str) -> (Vec<(String, String)>, &str) {
    let mut params = Vec::new();
    let mut rest = input;
    loop {
        rest = rest.trim_start_matches([',', ' ', '\t']);
        let Some(eq) = rest.find('=') else {
            return (params, rest);
        };
        let key = &rest[..eq];
        if key.is_empty() || key.contains([' ', ',', '"']) {
            // The next challenge's scheme.
            return (params, rest);
        }
        let after = &rest[eq + 1..];
        let (value, remainder) = if let Some(quoted) = after.strip_prefix('"') {
            let mut value = String::new();
            let mut chars = quoted.char_indices();
            let mut end = quoted.len();
            while let Some((index, c)) = chars.next() {
                match c {
                    '\\' => {
                        if let Some((_, escaped)) = chars.next() {
                            value.push(escaped);
                        }
                    }
                    '"' => {
                        end = index + 1;
                        break;
                    }
                    c => value.push(c),
                }
            }
            (value, &quoted[end..])
        } else {
            let end = after.find(',').unwrap_or(after.len());
            (after[..end].trim().to_owned(), &after[end..])
        };
        params.push((key.to_owned(), value));
        rest = remainder;
    }
}

/// What a token service answers.
#[derive(serde::Deserialize)]
pub(crate) struct TokenAnswer {
    pub(crate) token: Option<String>,
    pub(crate) access_token: Option<String>,
    pub(crate) expires_in: Option<u64>,
}

/// A bearer token and when to stop using it.
#[derive(Clone)]
pub(crate) struct Token {
    pub(crate) value: String,
    pub(crate) expires: Instant,
}

impl Token {
    /// Tokens last 60 s unless the service says otherwise (the spec's default); stop
    /// using one a little early so it does not expire in flight.
    pub(crate) fn from_answer(answer: TokenAnswer) -> Option<Token> {
        let value = answer
            .token
            .or(answer.access_token)
            .filter(|token| !token.is_empty())?;
        let lifetime = Duration::from_secs(answer.expires_in.unwrap_or(60).max(10));
        Some(Token {
            value,
            expires: Instant::now() + lifetime - Duration::from_secs(5),
        })
    }

    pub(crate) fn is_fresh(&self) -> bool {
        Instant::now() < self.expires
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(header: &str) -> String {
        match parse_challenge(header) {
            None => "none".to_owned(),
            Some(Challenge::Basic) => "basic".to_owned(),
            Some(Challenge::Bearer {
                realm,
                service,
                scope,
                error,
            }) => format!(
                "bearer realm={realm} service={} scope={} error={}",
                service.unwrap_or_default(),
                scope.unwrap_or_default(),
                error.unwrap_or_default()
            ),
        }
    }

    #[test]
    fn challenges() {
        assert_eq!(
            check(
                r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/nginx:pull""#
            ),
            "bearer realm=https://auth.docker.io/token service=registry.docker.io scope=repository:library/nginx:pull error="
        );
        assert_eq!(
            check(
                r#"Bearer realm="https://ghcr.io/token", service="ghcr.io", scope="repository:o/a:pull,push", error="insufficient_scope""#
            ),
            "bearer realm=https://ghcr.io/token service=ghcr.io scope=repository:o/a:pull,push error=insufficient_scope"
        );
        assert_eq!(
            check(r#"bearer realm=https://r.example/t,service=r"#),
            "bearer realm=https://r.example/t service=r scope= error="
        );
        assert_eq!(
            check(r#"Bearer realm="a \"q\" b""#),
            r#"bearer realm=a "q" b service= scope= error="#
        );
        assert_eq!(check(r#"Basic realm="Registry Realm""#), "basic");
        assert_eq!(check(r#"Negotiate abc, Basic realm="x""#), "basic");
        assert_eq!(
            check(r#"Digest realm="x", nonce="y", Bearer realm="z""#),
            "bearer realm=z service= scope= error="
        );
        assert_eq!(check("Bearer service=x"), "none");
        assert_eq!(check(""), "none");
    }
}
