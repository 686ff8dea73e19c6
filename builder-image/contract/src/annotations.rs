//! The OCI annotations a cluster build writes on the pushed image's manifest, for image
//! automation (Flux's image automation, Renovate, `docker buildx imagetools inspect`): where
//! the source is, which commit, which base image by name and digest, and when it was made.
//!
//! Trust: the controller hands the push pod every value as `--annotation KEY=VALUE`, from the
//! spec and from what the prepare pod reported (the git commit, the pinned base); no stage
//! pod, and so no RUN step, has a say. The push pod adds `created` itself from the
//! `--source-date-epoch` it stamps the config with, and only with one (no epoch, no
//! `created`: the image stays reproducible). Local mode writes none, so its images stay
//! byte for byte BuildKit's.

use std::fmt;
use std::str::FromStr;

/// `org.opencontainers.image.source`: the git source's URL.
pub const SOURCE: &str = "org.opencontainers.image.source";
/// `org.opencontainers.image.revision`: the commit it was checked out at.
pub const REVISION: &str = "org.opencontainers.image.revision";
/// `org.opencontainers.image.base.name`: the base image as the Dockerfile names it.
pub const BASE_NAME: &str = "org.opencontainers.image.base.name";
/// `org.opencontainers.image.base.digest`: the digest it was pinned to.
pub const BASE_DIGEST: &str = "org.opencontainers.image.base.digest";
/// `org.opencontainers.image.created`: the source date epoch, RFC 3339.
pub const CREATED: &str = "org.opencontainers.image.created";

/// The most bytes of one annotation (key and value): a pod argument, not a document.
pub const MAX_LEN: usize = 4096;

/// One `--annotation KEY=VALUE`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Annotation {
    pub key: String,
    pub value: String,
}

impl Annotation {
    pub fn new(key: &str, value: impl Into<String>) -> Self {
        Annotation {
            key: key.into(),
            value: value.into(),
        }
    }
}

/// An `--annotation` that is not `KEY=VALUE`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AnnotationError {
    #[error("expected KEY=VALUE")]
    NoEquals,
    #[error("the key is empty")]
    EmptyKey,
    #[error("longer than {MAX_LEN} bytes")]
    TooLong,
}

impl FromStr for Annotation {
    type Err = AnnotationError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.len() > MAX_LEN {
            return Err(AnnotationError::TooLong);
        }
        let (key, value) = s.split_once('=').ok_or(AnnotationError::NoEquals)?;
        if key.is_empty() {
            return Err(AnnotationError::EmptyKey);
        }
        Ok(Annotation::new(key, value))
    }
}

impl fmt::Display for Annotation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}={}", self.key, self.value)
    }
}

/// What the controller knows of a build for its image's annotations.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImageOrigin<'a> {
    /// The git source's URL (other sources have none to point at).
    pub source: Option<&'a str>,
    /// The commit, as [`crate::graph::BuildGraph::revision`] took it.
    pub revision: Option<&'a str>,
    /// The pushed image's base, as named and as pinned (`None` for FROM scratch).
    pub base: Option<(&'a str, &'a str)>,
}

impl ImageOrigin<'_> {
    /// The annotations, in key order; what is unknown is left out.
    pub fn annotations(&self) -> Vec<Annotation> {
        let mut out = Vec::new();
        if let Some((name, digest)) = self.base {
            out.push(Annotation::new(BASE_DIGEST, digest));
            out.push(Annotation::new(BASE_NAME, name));
        }
        if let Some(r) = self.revision {
            out.push(Annotation::new(REVISION, r));
        }
        if let Some(s) = self.source {
            out.push(Annotation::new(SOURCE, s));
        }
        out.retain(|a| !a.value.is_empty() && a.key.len() + a.value.len() < MAX_LEN);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_annotation_is_key_equals_value() {
        let a: Annotation = "org.opencontainers.image.source=https://g/r.git?x=1"
            .parse()
            .expect("parses");
        assert_eq!(
            (a.key.as_str(), a.value.as_str()),
            (SOURCE, "https://g/r.git?x=1")
        );
        assert_eq!(
            a.to_string(),
            "org.opencontainers.image.source=https://g/r.git?x=1"
        );
        assert_eq!(
            "novalue".parse::<Annotation>(),
            Err(AnnotationError::NoEquals)
        );
        assert_eq!("=v".parse::<Annotation>(), Err(AnnotationError::EmptyKey));
        let long = format!("k={}", "v".repeat(MAX_LEN));
        assert_eq!(long.parse::<Annotation>(), Err(AnnotationError::TooLong));
    }

    #[test]
    fn only_what_is_known_is_annotated_in_key_order() {
        assert!(ImageOrigin::default().annotations().is_empty());
        let rev = "0123456789abcdef0123456789abcdef01234567";
        let all = ImageOrigin {
            source: Some("https://git.example/r.git"),
            revision: Some(rev),
            base: Some(("alpine:3.20", "sha256:ab")),
        }
        .annotations();
        let keys: Vec<&str> = all.iter().map(|a| a.key.as_str()).collect();
        assert_eq!(keys, [BASE_DIGEST, BASE_NAME, REVISION, SOURCE]);
        assert!(keys.is_sorted());
        let scratch = ImageOrigin {
            revision: Some(rev),
            ..Default::default()
        }
        .annotations();
        assert_eq!(scratch, [Annotation::new(REVISION, rev)]);
    }
}
