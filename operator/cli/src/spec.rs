//! The ImageBuild `build` creates, from its flags: pure, so that every flag's mapping onto
//! the spec is tested without a cluster.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{LocalObjectReference, SecretKeySelector};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use slipway_api::{BuildArg, BuildSecret, CacheSpec, ImageBuild, ImageBuildSpec, Output, Source};
use slipway_frontend::reference::Reference;

use crate::args::SecretFlag;
use crate::upload::CREATED_BY;

/// A `-t` that cannot be pushed by one ImageBuild.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TagError {
    #[error("-t {0}: {1}")]
    Invalid(String, slipway_frontend::reference::ReferenceError),
    #[error("-t {0}: a digest cannot be pushed to; name a tag")]
    Digest(String),
    #[error(
        "-t {tag}: every -t must name the repository of the first ({first}); an ImageBuild \
         pushes more tags of one repository"
    )]
    OtherRepository { tag: String, first: String },
}

/// What the flags ask for, checked.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Request {
    pub name: Option<String>,
    pub image: String,
    pub additional_tags: Vec<String>,
    /// The Dockerfile's path in the context.
    pub dockerfile: String,
    pub target: Option<String>,
    pub build_args: Vec<(String, String)>,
    pub secrets: Vec<SecretFlag>,
    pub push_secret: Option<String>,
    pub insecure: bool,
    pub timeout: Option<String>,
    /// `spec.cache.repository`.
    pub cache_repo: Option<String>,
}

/// The first `-t` is the image; the others must be tags of its repository.
pub fn tags(tags: &[String]) -> Result<(String, Vec<String>), TagError> {
    let mut parsed = Vec::new();
    for t in tags {
        let r = Reference::parse(t).map_err(|e| TagError::Invalid(t.clone(), e))?;
        if r.digest.is_some() {
            return Err(TagError::Digest(t.clone()));
        }
        parsed.push(r);
    }
    let Some(first) = parsed.first() else {
        return Ok((String::new(), Vec::new()));
    };
    let mut more = Vec::new();
    for (t, r) in tags.iter().zip(&parsed).skip(1) {
        if r.name() != first.name() {
            return Err(TagError::OtherRepository {
                tag: t.clone(),
                first: tags[0].clone(),
            });
        }
        let tag = r.tag.clone().unwrap_or_else(|| "latest".into());
        if !more.contains(&tag) && Some(&tag) != first.tag.as_ref() {
            more.push(tag);
        }
    }
    Ok((tags[0].clone(), more))
}

/// The `generateName` of a build of `image`: its repository's last part, as a DNS label
/// (`registry/team/web:1` → `web-`).
pub fn generate_name(image: &str) -> String {
    let repo = Reference::parse(image)
        .map(|r| r.repository)
        .unwrap_or_else(|_| image.to_string());
    let last = repo.rsplit('/').next().unwrap_or(&repo);
    let mut s: String = last
        .to_ascii_lowercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    s.truncate(40);
    let s = s.trim_matches('-');
    if s.is_empty() {
        "build-".into()
    } else {
        format!("{s}-")
    }
}

/// The ImageBuild for `req`, its context at `source`.
pub fn image_build(req: &Request, namespace: &str, source: Source) -> ImageBuild {
    let metadata = ObjectMeta {
        name: req.name.clone(),
        generate_name: req.name.is_none().then(|| generate_name(&req.image)),
        namespace: Some(namespace.to_string()),
        labels: Some(BTreeMap::from([(CREATED_BY.0.into(), CREATED_BY.1.into())])),
        ..Default::default()
    };
    let spec = ImageBuildSpec {
        source,
        dockerfile: (req.dockerfile != "Dockerfile").then(|| req.dockerfile.clone()),
        target: req.target.clone(),
        build_args: req
            .build_args
            .iter()
            .map(|(name, value)| BuildArg {
                name: name.clone(),
                value: value.clone(),
            })
            .collect(),
        output: Output {
            image: req.image.clone(),
            additional_tags: req.additional_tags.clone(),
            push_secret: req
                .push_secret
                .as_ref()
                .map(|n| LocalObjectReference { name: n.clone() }),
            insecure_registry: req.insecure,
        },
        pull_secrets: Vec::new(),
        workspace: None,
        resources: None,
        timeout: req.timeout.clone(),
        max_parallel_stages: None,
        rebuild: None,
        cancel: false,
        cache: req.cache_repo.as_ref().map(|r| CacheSpec {
            repository: r.clone(),
            pull_secret: None,
        }),
        secrets: req
            .secrets
            .iter()
            .map(|s| BuildSecret {
                id: s.id.clone(),
                secret_ref: SecretKeySelector {
                    name: s.secret.clone(),
                    key: s.key.clone(),
                    optional: None,
                },
            })
            .collect(),
        cache_volume: None,
        source_date_epoch: None,
        ttl_seconds_after_finished: None,
    };
    ImageBuild {
        metadata,
        spec,
        status: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::upload::Stored;

    #[test]
    fn more_tags_of_one_repository() {
        let t = |v: &[&str]| tags(&v.iter().map(|s| s.to_string()).collect::<Vec<_>>());
        assert_eq!(
            t(&[
                "r:5000/demo/go:1",
                "r:5000/demo/go:latest",
                "r:5000/demo/go"
            ]),
            Ok(("r:5000/demo/go:1".into(), vec!["latest".into()]))
        );
        assert!(matches!(
            t(&["r:5000/demo/go:1", "r:5000/other:1"]),
            Err(TagError::OtherRepository { .. })
        ));
        assert!(matches!(
            t(&["r/x@sha256:".to_string().as_str()]),
            Err(TagError::Invalid(..))
        ));
        let d = format!("r/x@sha256:{}", "a".repeat(64));
        assert!(matches!(t(&[d.as_str()]), Err(TagError::Digest(_))));
        assert!(matches!(t(&["Upper/Case"]), Err(TagError::Invalid(..))));
    }

    #[test]
    fn names_come_from_the_repository() {
        assert_eq!(generate_name("10.233.0.1:5000/demo/go:1"), "go-");
        assert_eq!(generate_name("busybox"), "busybox-");
        assert_eq!(generate_name("r/team/my_app.web:1"), "my-app-web-");
        assert_eq!(generate_name(&format!("r/{}", "a".repeat(80))).len(), 41);
    }

    #[test]
    fn flags_map_onto_the_spec() {
        let req = Request {
            image: "r:5000/demo/go:1".into(),
            additional_tags: vec!["latest".into()],
            dockerfile: "docker/Dockerfile".into(),
            target: Some("tester".into()),
            build_args: vec![("BASE_REGISTRY".into(), "r:5000".into())],
            secrets: vec![SecretFlag {
                id: "npmrc".into(),
                secret: "npm".into(),
                key: "npmrc".into(),
            }],
            push_secret: Some("regcred".into()),
            insecure: true,
            timeout: Some("30m".into()),
            cache_repo: Some("r:5000/cache/go".into()),
            name: None,
        };
        let src = Stored::ConfigMap {
            name: "go-context-abc".into(),
        }
        .source();
        let ib = image_build(&req, "ci", src);
        let v = serde_json::to_value(&ib).expect("json");
        assert_eq!(v["apiVersion"], "build.slipway.dev/v1alpha1");
        assert_eq!(v["kind"], "ImageBuild");
        assert_eq!(v["metadata"]["generateName"], "go-");
        assert_eq!(v["metadata"]["namespace"], "ci");
        assert!(v["metadata"].get("name").is_none());
        assert_eq!(
            v["spec"],
            serde_json::json!({
                "source": {"configMap": {"name": "go-context-abc", "key": "context.tar.gz"}},
                "dockerfile": "docker/Dockerfile",
                "target": "tester",
                "buildArgs": [{"name": "BASE_REGISTRY", "value": "r:5000"}],
                "output": {"image": "r:5000/demo/go:1", "additionalTags": ["latest"],
                           "pushSecret": {"name": "regcred"}, "insecureRegistry": true},
                "timeout": "30m",
                "cache": {"repository": "r:5000/cache/go"},
                "secrets": [{"id": "npmrc", "secretRef": {"name": "npm", "key": "npmrc"}}]
            })
        );
        // The default Dockerfile is left to the spec's default; a name replaces generateName.
        let req = Request {
            name: Some("web".into()),
            image: "r/web:1".into(),
            dockerfile: "Dockerfile".into(),
            ..Default::default()
        };
        let ib = image_build(&req, "default", Source::default());
        assert_eq!(ib.metadata.name.as_deref(), Some("web"));
        assert_eq!(ib.metadata.generate_name, None);
        assert_eq!(ib.spec.dockerfile, None);
    }
}
