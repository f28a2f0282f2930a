//! Content digests (`sha256:…`), validated like the OCI image spec and go-digest.

use std::fmt;
use std::str::FromStr;

use sha2::Digest as _;

use crate::error::Error;

/// The header a registry names a manifest's or blob's digest in.
const CONTENT_DIGEST: &str = "docker-content-digest";

/// A content digest such as `sha256:6c3c624b58dbbcd3c0dd82b4c53f04194d1247c6eebdaab7c610cf7d66709b3b`.
///
/// The algorithm is one of `sha256`, `sha384` or `sha512`, and the hexadecimal part is
/// lowercase and exactly as long as the algorithm demands, so two equal digests are equal
/// strings.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest(String);

/// Why a digest was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum DigestError {
    /// No `algorithm:` prefix.
    MissingAlgorithm,
    /// The algorithm is well formed but not one registries use.
    UnsupportedAlgorithm(String),
    /// The hexadecimal part has the wrong length for the algorithm.
    InvalidLength {
        /// What the algorithm needs.
        expected: usize,
        /// What was given.
        actual: usize,
    },
    /// The hexadecimal part holds something other than `0-9a-f`.
    InvalidHex,
}

impl fmt::Display for DigestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DigestError::MissingAlgorithm => {
                write!(f, "expected `algorithm:hex`, such as `sha256:…`")
            }
            DigestError::UnsupportedAlgorithm(algorithm) => {
                write!(
                    f,
                    "unsupported digest algorithm {algorithm:?} (expected sha256, sha384 or sha512)"
                )
            }
            DigestError::InvalidLength { expected, actual } => {
                write!(f, "expected {expected} hexadecimal digits, found {actual}")
            }
            DigestError::InvalidHex => write!(f, "the digest must be lowercase hexadecimal"),
        }
    }
}

impl Digest {
    /// The `sha256` digest of some bytes.
    pub fn sha256(bytes: &[u8]) -> Digest {
        Digest(format!(
            "sha256:{}",
            hex::encode(sha2::Sha256::digest(bytes))
        ))
    }

    /// Validates a digest without wrapping it in [`Error`]; the reference parser reuses it.
    pub(crate) fn parse_parts(input: &str) -> Result<Digest, DigestError> {
        let (algorithm, hex) = input.split_once(':').ok_or(DigestError::MissingAlgorithm)?;
        let expected = match algorithm {
            "sha256" => 64,
            "sha384" => 96,
            "sha512" => 128,
            other => return Err(DigestError::UnsupportedAlgorithm(other.to_owned())),
        };
        if hex.len() != expected {
            return Err(DigestError::InvalidLength {
                expected,
                actual: hex.len(),
            });
        }
        if !hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            return Err(DigestError::InvalidHex);
        }
        Ok(Digest(input.to_owned()))
    }

    /// The algorithm, such as `sha256`.
    pub fn algorithm(&self) -> &str {
        self.0
            .split_once(':')
            .map_or("", |(algorithm, _)| algorithm)
    }

    /// The lowercase hexadecimal part.
    pub fn hex(&self) -> &str {
        self.0.split_once(':').map_or("", |(_, hex)| hex)
    }

    /// The whole digest, `algorithm:hex`.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The digest a registry sent in `Docker-Content-Digest`, if it sent a valid one;
    /// a malformed value counts as none (callers then hash the content themselves).
    pub(crate) fn from_headers(headers: &http::HeaderMap) -> Option<Digest> {
        headers.get(CONTENT_DIGEST)?.to_str().ok()?.parse().ok()
    }

    /// Whether `bytes` hash to this digest.
    pub fn verify(&self, bytes: &[u8]) -> bool {
        let actual = match self.algorithm() {
            "sha256" => hex::encode(sha2::Sha256::digest(bytes)),
            "sha384" => hex::encode(sha2::Sha384::digest(bytes)),
            "sha512" => hex::encode(sha2::Sha512::digest(bytes)),
            _ => return false,
        };
        actual == self.hex()
    }
}

impl FromStr for Digest {
    type Err = Error;

    fn from_str(input: &str) -> Result<Digest, Error> {
        Digest::parse_parts(input).map_err(|reason| Error::InvalidDigest {
            input: input.to_owned(),
            reason,
        })
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl serde::Serialize for Digest {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl<'de> serde::Deserialize<'de> for Digest {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Digest, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(input: &str) -> String {
        match input.parse::<Digest>() {
            Ok(digest) => format!("{} {}", digest.algorithm(), &digest.hex()[..8]),
            Err(error) => error.to_string(),
        }
    }

    #[test]
    fn parses_and_refuses() {
        let f64 = "f".repeat(64);
        assert_eq!(check(&format!("sha256:{f64}")), "sha256 ffffffff");
        assert_eq!(
            check(&format!("sha512:{}", "0".repeat(128))),
            "sha512 00000000"
        );
        assert_eq!(
            check(&format!("sha384:{}", "a".repeat(96))),
            "sha384 aaaaaaaa"
        );
        assert_eq!(
            check(&format!("sha256:{}", "f".repeat(63))),
            r#"invalid digest "sha256:fffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff": expected 64 hexadecimal digits, found 63"#
        );
        assert_eq!(
            check(&format!("sha256:{}", "F".repeat(64))),
            format!(
                r#"invalid digest "sha256:{}": the digest must be lowercase hexadecimal"#,
                "F".repeat(64)
            )
        );
        assert_eq!(
            check(&format!("md5:{f64}")),
            format!(
                r#"invalid digest "md5:{f64}": unsupported digest algorithm "md5" (expected sha256, sha384 or sha512)"#
            )
        );
        assert_eq!(
            check(&f64),
            format!(r#"invalid digest "{f64}": expected `algorithm:hex`, such as `sha256:…`"#)
        );
        assert_eq!(
            check(""),
            r#"invalid digest "": expected `algorithm:hex`, such as `sha256:…`"#
        );
    }

    #[test]
    fn hashes_and_verifies() {
        let digest = Digest::sha256(b"");
        assert_eq!(
            digest.as_str(),
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert!(digest.verify(b""));
        assert!(!digest.verify(b"x"));
    }

    #[test]
    fn content_digest_headers() {
        let check = |value: &str| {
            let mut headers = http::HeaderMap::new();
            headers.insert(CONTENT_DIGEST, http::HeaderValue::from_str(value).unwrap());
            Digest::from_headers(&headers).map(|digest| digest.to_string())
        };
        let digest = Digest::sha256(b"fleet").to_string();
        assert_eq!(check(&digest), Some(digest));
        assert_eq!(check("sha256:abc"), None);
        assert_eq!(check(""), None);
        assert_eq!(Digest::from_headers(&http::HeaderMap::new()), None);
    }

    #[test]
    fn serde_round_trip() {
        let digest = Digest::sha256(b"fleet");
        let json = serde_json::to_string(&digest).unwrap();
        assert_eq!(serde_json::from_str::<Digest>(&json).unwrap(), digest);
        assert!(serde_json::from_str::<Digest>("\"sha256:abc\"").is_err());
    }
}
