//! Names, labels and owner of a build's objects: names are deterministic per generation, so a
//! restarted controller finds its objects again, and fit a label value (a Job's name is one);
//! every object is owned by its ImageBuild (the garbage collector removes it with the
//! ImageBuild).
//!
//! An ImageBuild's name may be 253 characters long, a stage's name any length: a name or label
//! value that does not fit 63 characters is cut and ends with 64 bits of its sha256 (M8, L5),
//! so that a co-tenant cannot pick another build name whose objects are named like a
//! victim's. A value that already ends like a shortened one (`-` and 16 hex digits) is
//! shortened too: an untouched value never equals a shortened one.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::Resource;

use slipway_api::labels;

use super::Step;
use crate::api::ImageBuild;

pub const LABEL_BUILD: &str = labels::BUILD;
pub const LABEL_GENERATION: &str = labels::GENERATION;
pub const LABEL_STAGE: &str = labels::STAGE;
pub const LABEL_STEP: &str = labels::STEP;
/// Annotations the controller puts on the prepare Job once it has read the pod's result.
pub const ANNOTATION_GRAPH: &str = "build.slipway.dev/graph";
pub const ANNOTATION_NODE: &str = "build.slipway.dev/node";
/// The digests a stage Job's pod reported of what its stages wrote, kept on the Job once read.
pub const ANNOTATION_OUTPUTS: &str = "build.slipway.dev/outputs";
/// The ImageBuild's name, whole, on its pods (the build label may be shortened): a change of
/// a pod wakes the controller for its build.
pub const ANNOTATION_BUILD: &str = "build.slipway.dev/imagebuild";

#[cfg(test)]
use slipway_api::labels::looks_shortened;
pub use slipway_api::labels::{MAX_LABEL, fit, label_value};

/// The label selector of a build's objects (all generations): what its objects carry.
pub fn build_selector(build: &str) -> String {
    format!("{LABEL_BUILD}={}", label_value(build))
}

/// `<build>-<generation>-<suffix>`, shortened to fit a label value (63).
pub fn object_name(build: &str, generation: i64, suffix: &str) -> String {
    fit(&format!("{build}-{generation}-{suffix}"), MAX_LABEL)
}

/// A DNS-label-safe form of a stage name, at most 63 characters.
pub(super) fn dns_label(s: &str) -> String {
    let out: String = s
        .to_lowercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    let out = out.trim_matches('-');
    if out.is_empty() {
        "stage".into()
    } else {
        fit(out, MAX_LABEL)
    }
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
        (LABEL_BUILD.to_string(), label_value(&name)),
        (LABEL_GENERATION.to_string(), generation.to_string()),
        (
            "app.kubernetes.io/managed-by".to_string(),
            "slipway".to_string(),
        ),
    ]);
    if let Some(s) = step {
        let step = match s {
            Step::Prepare => labels::Step::Prepare,
            Step::Stage(_, label) => {
                l.insert(LABEL_STAGE.to_string(), dns_label(label));
                labels::Step::Stage
            }
            Step::Push => labels::Step::Push,
        }
        .as_str();
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
    use std::collections::BTreeSet;

    /// A DNS-1123 subdomain (what object names must be), at most `max` long.
    fn dns_subdomain(s: &str, max: usize) -> bool {
        s.len() <= max
            && s.split('.').all(|part| {
                let b = part.as_bytes();
                !b.is_empty()
                    && b[0].is_ascii_alphanumeric()
                    && b[b.len() - 1].is_ascii_alphanumeric()
                    && b.iter()
                        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, b'-'))
            })
    }

    /// A label value: at most 63, alphanumeric at both ends, `-_.` and alphanumerics inside.
    fn label_ok(s: &str) -> bool {
        let b = s.as_bytes();
        s.len() <= 63
            && (b.is_empty()
                || (b[0].is_ascii_alphanumeric()
                    && b[b.len() - 1].is_ascii_alphanumeric()
                    && b.iter()
                        .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))))
    }

    /// A valid ImageBuild name of exactly 253 characters, dotted, ending with `tail`.
    fn longest(tail: &str) -> String {
        let mut s = String::new();
        while s.len() < 253 - tail.len() {
            let part = 63.min(253 - tail.len() - s.len());
            if part <= 1 {
                s.push('a');
                continue;
            }
            s.push_str(&"a".repeat(part - 1));
            s.push('.');
        }
        s.push_str(tail);
        s.truncate(253);
        s
    }

    #[test]
    fn short_names_are_kept() {
        assert_eq!(object_name("web", 3, "prepare"), "web-3-prepare");
        assert_eq!(object_name("my.app", 1, "s0-build"), "my.app-1-s0-build");
        assert_eq!(label_value("web"), "web");
        assert_eq!(build_selector("web"), "build.slipway.dev/build=web");
        assert_eq!(dns_label("Build_Env"), "build-env");
        assert_eq!(dns_label("__"), "stage");
    }

    #[test]
    fn names_of_the_longest_builds_and_stages_are_valid_and_unique() {
        let mut names = BTreeSet::new();
        let mut labels = BTreeSet::new();
        for i in 0..500 {
            let build = longest(&format!("b{i}"));
            assert_eq!(build.len(), 253, "{build}");
            assert!(dns_subdomain(&build, 253), "{build}");
            let stage = format!("{}{i}", "Stage.Name_".repeat(20));
            for n in [
                object_name(&build, 7, "prepare"),
                object_name(&build, 7, &format!("s12-{}", dns_label(&stage))),
                object_name(&build, 7, "workspace"),
            ] {
                assert!(dns_subdomain(&n, MAX_LABEL) && label_ok(&n), "{n}");
                assert!(n.len() == MAX_LABEL, "{n}");
                assert!(names.insert(n.clone()), "{n} twice");
            }
            let (l, s) = (label_value(&build), dns_label(&stage));
            assert!(
                label_ok(&l) && label_ok(&s) && dns_subdomain(&s, 63),
                "{l} {s}"
            );
            assert!(labels.insert(l) && labels.insert(s));
        }
        // Deterministic: a restarted controller finds the same names.
        let b = longest("x");
        assert_eq!(object_name(&b, 1, "push"), object_name(&b, 1, "push"));
        assert_ne!(object_name(&b, 1, "push"), object_name(&b, 2, "push"));
        // 16 hex digits: 64 bits of sha256.
        let n = object_name(&b, 1, "push");
        assert!(looks_shortened(&n), "{n}");
    }

    #[test]
    fn a_cut_never_ends_in_a_dot_or_dash() {
        // The cut would end right after `.` or `-`: both are trimmed.
        for name in [
            "a".repeat(45) + ".bbbbbbbbbbbbbbbbbbbb",
            "a".repeat(45) + "-bbbbbbbbbbbbbbbbbbbbbb",
        ] {
            let n = object_name(&name, 1, "prepare");
            assert!(dns_subdomain(&n, 63) && label_ok(&n), "{n}");
        }
    }

    #[test]
    fn a_value_that_looks_shortened_is_shortened_too() {
        // Whatever a co-tenant names a build, its untouched names never end like a shortened
        // one: those are a hash of the whole name.
        let b = "web-1-s0-0123456789abcdef";
        assert!(looks_shortened(b));
        let n = fit(b, MAX_LABEL);
        assert_ne!(n, b);
        assert!(looks_shortened(&n) && n.starts_with("web-1-s0"), "{n}");
        let stage = dns_label("x-0123456789abcdef");
        assert_ne!(stage, "x-0123456789abcdef");
        assert!(!looks_shortened("web-1-prepare"));
        assert!(!looks_shortened("0123456789abcdef"));
    }

    #[test]
    fn labels_of_a_long_build_fit_and_the_selector_matches_them() {
        let mut ib = crate::reconcile::fixtures::build();
        let name = longest("z");
        ib.metadata.name = Some(name.clone());
        let l = labels(&ib, Some(&Step::Stage(0, "A".repeat(100))));
        assert!(l.values().all(|v| label_ok(v)), "{l:?}");
        assert_eq!(
            build_selector(&name),
            format!("{LABEL_BUILD}={}", l[LABEL_BUILD])
        );
    }
}
