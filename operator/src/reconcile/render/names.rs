//! Names, labels and owner of a build's objects: names are deterministic per generation, so a
//! restarted controller finds its objects again, and cut to fit a label value; every object
//! is owned by its ImageBuild (the garbage collector removes it with the ImageBuild).

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::Resource;
use sha2::{Digest, Sha256};

use super::Step;
use crate::api::ImageBuild;

pub const LABEL_BUILD: &str = "build.slipway.dev/build";
pub const LABEL_GENERATION: &str = "build.slipway.dev/generation";
pub const LABEL_STAGE: &str = "build.slipway.dev/stage";
pub const LABEL_STEP: &str = "build.slipway.dev/step";
/// Annotations the controller puts on the prepare Job once it has read the pod's result.
pub const ANNOTATION_GRAPH: &str = "build.slipway.dev/graph";
pub const ANNOTATION_NODE: &str = "build.slipway.dev/node";

/// `<build>-<generation>-<suffix>`, cut and hashed to fit a label value (63).
pub fn object_name(build: &str, generation: i64, suffix: &str) -> String {
    let full = format!("{build}-{generation}-{suffix}");
    if full.len() <= 63 {
        return full;
    }
    let h = hex::encode(&Sha256::digest(full.as_bytes())[..4]);
    let keep = 63 - h.len() - 1;
    let cut: String = full.chars().take(keep).collect();
    format!("{}-{h}", cut.trim_end_matches('-'))
}

/// A DNS-label-safe form of a stage name.
pub(super) fn dns_label(s: &str) -> String {
    let mut out: String = s
        .to_lowercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    out = out.trim_matches('-').to_string();
    if out.is_empty() { "stage".into() } else { out }
}

pub fn job_name(ib: &ImageBuild, step: &Step) -> String {
    let (name, generation) = ident(ib);
    match step {
        Step::Prepare => object_name(&name, generation, "prepare"),
        Step::Stage(pos, label) => {
            object_name(&name, generation, &format!("s{pos}-{}", dns_label(label)))
        }
        Step::Push => object_name(&name, generation, "push"),
    }
}

pub fn pvc_name(ib: &ImageBuild) -> String {
    let (name, generation) = ident(ib);
    object_name(&name, generation, "workspace")
}

pub(super) fn ident(ib: &ImageBuild) -> (String, i64) {
    (
        ib.metadata.name.clone().unwrap_or_default(),
        ib.metadata.generation.unwrap_or(1),
    )
}

pub fn labels(ib: &ImageBuild, step: Option<&Step>) -> BTreeMap<String, String> {
    let (name, generation) = ident(ib);
    let mut l = BTreeMap::from([
        (LABEL_BUILD.to_string(), name),
        (LABEL_GENERATION.to_string(), generation.to_string()),
        (
            "app.kubernetes.io/managed-by".to_string(),
            "slipway".to_string(),
        ),
    ]);
    if let Some(s) = step {
        let step = match s {
            Step::Prepare => "prepare",
            Step::Stage(_, label) => {
                l.insert(LABEL_STAGE.to_string(), dns_label(label));
                "stage"
            }
            Step::Push => "push",
        };
        l.insert(LABEL_STEP.to_string(), step.to_string());
    }
    l
}

fn owner(ib: &ImageBuild) -> Vec<OwnerReference> {
    ib.controller_owner_ref(&()).into_iter().collect()
}

pub(super) fn meta(ib: &ImageBuild, name: String, step: Option<&Step>) -> ObjectMeta {
    ObjectMeta {
        name: Some(name),
        namespace: ib.metadata.namespace.clone(),
        labels: Some(labels(ib, step)),
        owner_references: Some(owner(ib)),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_deterministic_and_fit_labels() {
        assert_eq!(object_name("web", 3, "prepare"), "web-3-prepare");
        let long = "a".repeat(70);
        let n = object_name(&long, 12, "s1-build");
        assert!(n.len() <= 63, "{n}");
        assert_eq!(n, object_name(&long, 12, "s1-build"));
        assert_ne!(n, object_name(&long, 12, "s2-build"));
    }
}
