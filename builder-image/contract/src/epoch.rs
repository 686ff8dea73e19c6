//! `SOURCE_DATE_EPOCH` for reproducible images: the time a build claims for what it made.
//! With it, the image config's and the new history entries' `created` are that time, files in
//! the build's own layers are no newer than it (as BuildKit's `rewrite-timestamp` clamps them),
//! and base layers stay byte for byte as pulled; without it, a build is as before.
//!
//! The ImageBuild (and `prepare`) may say `git`, the commit time of a git source, which only
//! the fetch step knows; stage and push pods are only ever handed resolved seconds, so what
//! they stamp never depends on anything the stage's own image or environment says.

use std::fmt;
use std::str::FromStr;

use clap::Args;

/// What a build asks for: a time in seconds since 1970, or the commit time of its git source.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceDateEpoch {
    Seconds(u64),
    Git,
}

/// A `--source-date-epoch` (or `SOURCE_DATE_EPOCH`, or `sourceDateEpoch`) value it cannot be.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EpochError {
    #[error("source date epoch {0:?}: expected whole seconds since 1970 (0 to {MAX_EPOCH})")]
    NotSeconds(String),
    #[error(
        "source date epoch {0:?}: expected whole seconds since 1970 (0 to {MAX_EPOCH}) or \"git\""
    )]
    NotSecondsOrGit(String),
}

/// The latest time accepted: 9999-12-31T23:59:59Z, the last an RFC 3339 `created` can say.
pub const MAX_EPOCH: u64 = 253_402_300_799;

/// Parses seconds only (`SOURCE_DATE_EPOCH` as reproducible-builds.org defines it: a decimal
/// integer), within [`MAX_EPOCH`].
pub fn parse_seconds(s: &str) -> Result<u64, EpochError> {
    let bad = || EpochError::NotSeconds(s.to_string());
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    s.parse::<u64>()
        .ok()
        .filter(|n| *n <= MAX_EPOCH)
        .ok_or_else(bad)
}

impl FromStr for SourceDateEpoch {
    type Err = EpochError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s == "git" {
            return Ok(SourceDateEpoch::Git);
        }
        parse_seconds(s)
            .map(SourceDateEpoch::Seconds)
            .map_err(|_| EpochError::NotSecondsOrGit(s.to_string()))
    }
}

impl fmt::Display for SourceDateEpoch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SourceDateEpoch::Seconds(n) => write!(f, "{n}"),
            SourceDateEpoch::Git => f.write_str("git"),
        }
    }
}

/// `--source-date-epoch N` of the stage and push pods: resolved seconds only, from the
/// controller (or local mode), never from the environment (a stage pod's environment is its
/// base image's).
#[derive(Args, Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EpochArgs {
    #[arg(long = "source-date-epoch", value_name = "SECONDS", value_parser = parse_seconds)]
    pub source_date_epoch: Option<u64>,
}

impl EpochArgs {
    pub fn to_args(&self) -> Vec<String> {
        match self.source_date_epoch {
            Some(n) => vec!["--source-date-epoch".to_string(), n.to_string()],
            None => Vec::new(),
        }
    }
}

/// The epoch a build stamps: what it asked for, with `git` resolved to the commit time the
/// fetch step found (`None` when the source is not git).
pub fn resolve(
    asked: Option<SourceDateEpoch>,
    commit_time: Option<u64>,
) -> Result<Option<u64>, ResolveError> {
    match asked {
        None => Ok(None),
        Some(SourceDateEpoch::Seconds(n)) => Ok(Some(n)),
        Some(SourceDateEpoch::Git) => commit_time.map(Some).ok_or(ResolveError::NotGit),
    }
}

/// Why `git` could not be resolved.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ResolveError {
    #[error("sourceDateEpoch: git is the commit time of a git source, and this source is not git")]
    NotGit,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_seconds_or_git() {
        assert_eq!("0".parse(), Ok(SourceDateEpoch::Seconds(0)));
        assert_eq!(
            "1700000000".parse(),
            Ok(SourceDateEpoch::Seconds(1_700_000_000))
        );
        assert_eq!("git".parse(), Ok(SourceDateEpoch::Git));
        for bad in ["", "-1", "+5", "1.5", " 1", "1e9", "GIT", "253402300800"] {
            let e = bad.parse::<SourceDateEpoch>().expect_err(bad);
            assert_eq!(
                e.to_string(),
                format!(
                    "source date epoch {bad:?}: expected whole seconds since 1970 \
                     (0 to 253402300799) or \"git\""
                )
            );
        }
        assert_eq!(
            parse_seconds("git").expect_err("seconds only").to_string(),
            "source date epoch \"git\": expected whole seconds since 1970 (0 to 253402300799)"
        );
        assert_eq!(SourceDateEpoch::Git.to_string(), "git");
        assert_eq!(SourceDateEpoch::Seconds(7).to_string(), "7");
    }

    #[test]
    fn pods_are_handed_resolved_seconds() {
        assert_eq!(EpochArgs::default().to_args(), Vec::<String>::new());
        let a = EpochArgs {
            source_date_epoch: Some(42),
        };
        assert_eq!(a.to_args(), ["--source-date-epoch", "42"]);
        assert_eq!(resolve(None, Some(5)), Ok(None));
        assert_eq!(
            resolve(Some(SourceDateEpoch::Seconds(9)), Some(5)),
            Ok(Some(9))
        );
        assert_eq!(resolve(Some(SourceDateEpoch::Git), Some(5)), Ok(Some(5)));
        assert_eq!(
            resolve(Some(SourceDateEpoch::Git), None),
            Err(ResolveError::NotGit)
        );
    }
}
