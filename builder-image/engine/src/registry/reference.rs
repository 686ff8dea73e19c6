//! oci-client's reference of an image name, built from what the front end's parser
//! (`slipway_frontend::reference`, the one reference parser) makes of it, so that a name
//! means the same registry and repository in the Dockerfile, in the plan and on the wire.

use oci_client::Reference;
use slipway_frontend::reference::{self, DEFAULT_REGISTRY, ReferenceError};

/// Docker Hub's legacy host, which Docker (distribution/reference) reads as `docker.io`.
const LEGACY_DEFAULT_REGISTRY: &str = "index.docker.io";

/// Parses `name` as `docker pull` would (no tag and no digest means `latest`).
pub fn parse(name: &str) -> Result<Reference, ReferenceError> {
    let r = reference::Reference::parse(name)?.with_default_tag();
    let registry = if r.registry == LEGACY_DEFAULT_REGISTRY {
        DEFAULT_REGISTRY.to_string()
    } else {
        r.registry
    };
    Ok(match (r.tag, r.digest) {
        (Some(tag), Some(digest)) => {
            Reference::with_tag_and_digest(registry, r.repository, tag, digest)
        }
        (None, Some(digest)) => Reference::with_digest(registry, r.repository, digest),
        (tag, None) => Reference::with_tag(
            registry,
            r.repository,
            tag.unwrap_or_else(|| "latest".into()),
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What oci-client's own parser (used before) made of the same names.
    #[test]
    fn the_same_as_oci_clients_parser_for_valid_names() {
        let digest = format!("sha256:{}", "0123456789abcdef".repeat(4));
        let names = [
            "busybox".to_string(),
            "golang:1.22".into(),
            "team/web".into(),
            "index.docker.io/library/alpine:3".into(),
            "docker.io/library/alpine".into(),
            "localhost/x".into(),
            "localhost:5000/base/debian:12".into(),
            "127.0.0.1:5055/slipway-test/busybox:latest".into(),
            "quay.io/org/sub/repo:v1.2-rc_3".into(),
            format!("127.0.0.1:5000/x@{digest}"),
            format!("reg.example/x:tag@{digest}"),
            format!("alpine@{digest}"),
        ];
        for n in &names {
            let ours = parse(n).expect(n);
            let theirs: Reference = n.parse().expect(n);
            assert_eq!(ours.registry(), theirs.registry(), "{n}");
            assert_eq!(ours.repository(), theirs.repository(), "{n}");
            assert_eq!(ours.tag(), theirs.tag(), "{n}");
            assert_eq!(ours.digest(), theirs.digest(), "{n}");
            assert_eq!(ours.whole(), theirs.whole(), "{n}");
        }
    }

    #[test]
    fn invalid_names_say_why() {
        assert_eq!(
            parse("Builder").map_err(|e| e.to_string()).err(),
            Some(
                r#"invalid reference format: repository name must be lowercase: "Builder""#
                    .to_string()
            )
        );
        assert!(parse("x@sha256:abc").is_err());
        assert!(parse("a b").is_err());
    }
}
