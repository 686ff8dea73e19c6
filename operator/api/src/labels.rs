//! The labels every object of a build carries (Jobs, Pods, the workspace PVC), so that
//! `kubectl get jobs,pods -l build.slipway.dev/build=NAME` finds them. The operator writes
//! them; the CLI selects a build's pods by them.

use sha2::{Digest, Sha256};

/// The ImageBuild's name (shortened to 63 characters with a hash when longer).
pub const BUILD: &str = "build.slipway.dev/build";
/// The ImageBuild's `metadata.generation` the object belongs to.
pub const GENERATION: &str = "build.slipway.dev/generation";
/// A stage Job's label (its FROM-chain's name, DNS-label safe).
pub const STAGE: &str = "build.slipway.dev/stage";
/// Which step of the build: [`Step`].
pub const STEP: &str = "build.slipway.dev/step";

/// The longest label value, and so the longest Job name (the Job controller labels its pods
/// with it).
pub const MAX_LABEL: usize = 63;
/// Bytes of sha256 a shortened value ends with: 64 bits.
const HASH_BYTES: usize = 8;
const HASH_HEX: usize = 2 * HASH_BYTES;

/// `s` when it fits `max` bytes and does not end like a shortened value; else its start,
/// cut after a letter or digit, `-`, and 16 hex digits of its sha256. `s` is a DNS name or a
/// DNS label (as every caller's is): so is the result.
pub fn fit(s: &str, max: usize) -> String {
    if s.len() <= max && !looks_shortened(s) {
        return s.to_string();
    }
    let hash = hex::encode(&Sha256::digest(s.as_bytes())[..HASH_BYTES]);
    let mut keep = max.saturating_sub(HASH_HEX + 1).min(s.len());
    while !s.is_char_boundary(keep) {
        keep -= 1;
    }
    // A DNS name's parts, and a label value, end with a letter or digit.
    let cut = s[..keep].trim_end_matches(|c: char| !c.is_ascii_alphanumeric());
    let cut = if cut.is_empty() { "x" } else { cut };
    format!("{cut}-{hash}")
}

/// Ends with `-` and 16 lowercase hex digits, as [`fit`]'s shortened values do.
pub fn looks_shortened(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() > HASH_HEX
        && b[b.len() - HASH_HEX - 1] == b'-'
        && b[b.len() - HASH_HEX..]
            .iter()
            .all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f'))
}

/// A label value for `s` (a build's name): itself, or shortened to 63 characters.
pub fn label_value(s: &str) -> String {
    fit(s, MAX_LABEL)
}

/// The steps of a build, as the [`STEP`] label names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Step {
    Prepare,
    Stage,
    Push,
}

impl Step {
    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Step::Prepare => "prepare",
            Step::Stage => "stage",
            Step::Push => "push",
        }
    }

    /// The step a label value names.
    pub fn parse(s: &str) -> Option<Step> {
        [Step::Prepare, Step::Stage, Step::Push]
            .into_iter()
            .find(|k| k.as_str() == s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_round_trip_through_their_label_values() {
        for s in [Step::Prepare, Step::Stage, Step::Push] {
            assert_eq!(Step::parse(s.as_str()), Some(s));
        }
        assert_eq!(Step::parse("build"), None);
        assert!(Step::Prepare < Step::Stage && Step::Stage < Step::Push);
    }
}
