//! The one check every digest passes before Slipway uses it: a registry's manifest (layer,
//! config and image digests) and the workspace's JSON (stage results) are untrusted, and a
//! digest ends up in file names (`blobs/.../sha256/<hex>`, `base-trees/<hex>`,
//! `stages/<N>/layers/<hex>.tar.gz`). Only `sha256:` and 64 lowercase hex digits pass, so a
//! digest can never be `sha256:../../etc/x`.
//!
//! Written here rather than with oci-spec's `Digest`, which accepts every registered
//! algorithm and any `[a-zA-Z0-9=_-]` encoding for the ones it does not know: Slipway wants
//! exactly one form.

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_sha256_and_64_lowercase_hex_digits_pass() {
        let good = format!("sha256:{}", "0123456789abcdef".repeat(4));
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
}
