//! The one form of digest Slipway accepts anywhere: `sha256:` and 64 lowercase hex digits.
//! Digests come from places that are not to be trusted (a registry's manifest, a stage's
//! `result.json`, a pod's arguments) and end up in file names (`blobs/.../sha256/<hex>`,
//! `stages/<N>/layers/<hex>.tar.gz`), so nothing else passes: never `sha256:../../etc/x`.
//!
//! Written here rather than with oci-spec's `Digest`, which accepts every registered
//! algorithm and any `[a-zA-Z0-9=_-]` encoding for the ones it does not know: Slipway wants
//! exactly one form, and the operator (which has no registry client) checks it too.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A digest that is not `sha256:` and 64 lowercase hex digits.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DigestError {
    /// Another algorithm (`sha512:...`): the message users already know.
    #[error("only sha256 digests are supported")]
    NotSha256,
    #[error("invalid digest {0:?} (want sha256: and 64 lowercase hex digits)")]
    Invalid(String),
}

/// The hex part of `digest` when it is `sha256:` and 64 lowercase hex digits.
pub fn sha256_hex(digest: &str) -> Result<&str, DigestError> {
    let Some(hex) = digest.strip_prefix("sha256:") else {
        let (alg, _) = digest.split_once(':').unwrap_or_default();
        let other_algorithm =
            !alg.is_empty() && alg.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'+');
        return Err(if other_algorithm {
            DigestError::NotSha256
        } else {
            DigestError::Invalid(digest.to_string())
        });
    };
    if hex.len() == 64 && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        Ok(hex)
    } else {
        Err(DigestError::Invalid(digest.to_string()))
    }
}

/// A valid sha256 digest ([`sha256_hex`]); serialized as its string, and only a valid one
/// deserializes.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Digest(String);

impl Digest {
    pub fn parse(s: &str) -> Result<Self, DigestError> {
        sha256_hex(s)?;
        Ok(Digest(s.to_string()))
    }

    /// The digest of content whose sha256 is `sum`.
    pub fn from_sha256(sum: &[u8; 32]) -> Self {
        let mut s = String::with_capacity(71);
        s.push_str("sha256:");
        for b in sum {
            s.push(char::from(HEX[usize::from(b >> 4)]));
            s.push(char::from(HEX[usize::from(b & 0xf)]));
        }
        Digest(s)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The 64 hex digits.
    pub fn hex(&self) -> &str {
        &self.0["sha256:".len()..]
    }
}

const HEX: &[u8; 16] = b"0123456789abcdef";

impl TryFrom<String> for Digest {
    type Error = DigestError;
    fn try_from(s: String) -> Result<Self, DigestError> {
        sha256_hex(&s)?;
        Ok(Digest(s))
    }
}

impl From<Digest> for String {
    fn from(d: Digest) -> String {
        d.0
    }
}

impl FromStr for Digest {
    type Err = DigestError;
    fn from_str(s: &str) -> Result<Self, DigestError> {
        Digest::parse(s)
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl PartialEq<str> for Digest {
    fn eq(&self, other: &str) -> bool {
        self.0 == other
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn good() -> String {
        format!("sha256:{}", "0123456789abcdef".repeat(4))
    }

    #[test]
    fn only_sha256_and_64_lowercase_hex_digits_pass() {
        let good = good();
        assert_eq!(sha256_hex(&good), Ok(&good[7..]));
        for bad in [
            "sha256:../../../../etc/logrotate.d/slipway".to_string(),
            format!("sha256:{}", "A".repeat(64)),
            format!("sha256:{}", "a".repeat(63)),
            format!("sha256:{}", "a".repeat(65)),
            format!("sha256:{}/", "a".repeat(63)),
            format!("sha256:{}\n", "a".repeat(64)),
            format!("sha256: {}", "a".repeat(63)),
            format!("/sha256:{}", "a".repeat(64)),
            "sha256:".to_string(),
            String::new(),
            "sha256".to_string(),
            "a".repeat(64),
            "../x:y".to_string(),
        ] {
            assert_eq!(
                sha256_hex(&bad),
                Err(DigestError::Invalid(bad.clone())),
                "{bad:?}"
            );
            assert!(Digest::parse(&bad).is_err(), "{bad:?}");
        }
        assert_eq!(
            sha256_hex(&format!("sha512:{}", "a".repeat(128))),
            Err(DigestError::NotSha256)
        );
        assert_eq!(
            DigestError::Invalid("sha256:../x".into()).to_string(),
            "invalid digest \"sha256:../x\" (want sha256: and 64 lowercase hex digits)"
        );
        assert_eq!(
            DigestError::NotSha256.to_string(),
            "only sha256 digests are supported"
        );
    }

    #[test]
    fn a_digest_is_its_string_and_only_a_valid_one_deserializes() {
        let d = Digest::parse(&good()).expect("valid");
        assert_eq!(d.to_string(), good());
        assert_eq!(d.hex(), "0123456789abcdef".repeat(4));
        assert_eq!(good().parse::<Digest>(), Ok(d.clone()));
        let json = serde_json::to_string(&d).expect("json");
        assert_eq!(json, format!("\"{}\"", good()));
        assert_eq!(serde_json::from_str::<Digest>(&json).expect("back"), d);
        let e = serde_json::from_str::<Digest>("\"sha256:../../etc/shadow\"")
            .expect_err("refused")
            .to_string();
        assert!(e.contains("invalid digest"), "{e}");
        assert!(serde_json::from_str::<Digest>("7").is_err());
    }

    #[test]
    fn from_a_sum() {
        let mut sum = [0u8; 32];
        sum[0] = 0xab;
        sum[31] = 0x0f;
        let d = Digest::from_sha256(&sum);
        assert_eq!(
            d.as_str(),
            format!("sha256:ab{}0f", "00".repeat(30)).as_str()
        );
        assert_eq!(Digest::parse(d.as_str()), Ok(d));
    }
}
