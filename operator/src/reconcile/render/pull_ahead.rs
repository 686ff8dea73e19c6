//! Containers that only make the kubelet pull an image ahead. A stage pod's image is pulled
//! when its pod starts, after everything the stage needs is done, so a later stage's base
//! would be pulled while nothing else of the build runs (the Node example's slim image: 9 s of
//! a 31 s cold build on the test cluster). A stage pod carries one such container per image
//! [`BuildGraph::pulls_ahead`](slipway_contract::graph::BuildGraph::pulls_ahead) gives it,
//! after its stage container: the kubelet starts a pod's containers in order, pulling each
//! one's image just before, so the pull runs while the stage does.
//!
//! Nothing of the image runs: the container runs the engine's silent `pull-ahead` from the
//! workspace's engine folder (read-only, nothing else of the workspace), as a user without
//! root or capabilities, on a read-only root, and exits 0. Its resources are fixed and small, requests and
//! limits both (a namespace quota that asks for limits admits it).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Container, ResourceRequirements};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use slipway_contract::pod::{PodCommand, paths};

use super::jobs::engine_mount;
use super::security;

/// The name of the `n`th pull-ahead container of a pod.
pub fn name(n: usize) -> String {
    format!("pull-ahead-{n}")
}

/// Whether a container of a stage pod is one of these (its name says so).
pub fn is_pull_ahead(container: &str) -> bool {
    container
        .strip_prefix("pull-ahead-")
        .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

/// One container per image, in order.
pub fn containers(images: &[String]) -> Vec<Container> {
    let small = BTreeMap::from([
        ("cpu".to_string(), Quantity("50m".into())),
        ("memory".to_string(), Quantity("32Mi".into())),
    ]);
    images
        .iter()
        .enumerate()
        .map(|(n, image)| Container {
            name: name(n),
            image: Some(image.clone()),
            command: Some(vec![paths::BIN.into()]),
            args: Some(PodCommand::PullAhead.to_args()),
            working_dir: Some("/".into()),
            volume_mounts: Some(vec![engine_mount()]),
            resources: Some(ResourceRequirements {
                requests: Some(small.clone()),
                limits: Some(small.clone()),
                ..Default::default()
            }),
            security_context: Some(security::restricted_container(true)),
            ..Default::default()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::super::Deadline;
    use super::super::jobs::{Given, stage_job};
    use crate::reconcile::fixtures::{build, digest, settings};
    use slipway_contract::graph::StageJob;
    use slipway_contract::pod::{Digests, paths};

    #[test]
    fn its_containers_are_known_by_name() {
        use super::{is_pull_ahead, name};
        assert!(is_pull_ahead(&name(0)) && is_pull_ahead(&name(12)));
        for other in [
            "stage",
            "engine",
            "pull-ahead-",
            "pull-ahead-x",
            "pull-ahead-0a",
        ] {
            assert!(!is_pull_ahead(other), "{other}");
        }
    }

    #[test]
    fn a_stage_pod_pulls_later_bases_after_its_stage_and_runs_nothing_of_them() {
        let sj = StageJob {
            stages: vec![0],
            names: vec![Some("builder".into())],
            image: Some("reg:5000/node@sha256:ab".into()),
            ..Default::default()
        };
        let given = Given {
            pulls_ahead: vec!["reg:5000/node-slim@sha256:cd".into()],
            ..Digests::new(digest('a')).into()
        };
        let j = stage_job(&build(), &settings(), 0, &sj, None, &Deadline(None), given);
        let tpl = j.spec.expect("spec").template;
        let pod = tpl.spec.expect("pod");
        let names: Vec<&str> = pod.containers.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(
            names,
            ["stage", "pull-ahead-0"],
            "the stage's container first"
        );
        let ann = tpl
            .metadata
            .and_then(|m| m.annotations)
            .expect("annotations");
        assert_eq!(
            ann.get("kubectl.kubernetes.io/default-container")
                .map(String::as_str),
            Some("stage")
        );
        let c = &pod.containers[1];
        assert_eq!(c.image.as_deref(), Some("reg:5000/node-slim@sha256:cd"));
        assert_eq!(c.command.as_deref(), Some(&[paths::BIN.to_string()][..]));
        assert_eq!(c.args.as_deref(), Some(&["pull-ahead".to_string()][..]));
        let mounts = c.volume_mounts.as_deref().unwrap_or_default();
        assert_eq!(mounts.len(), 1, "the engine alone: {mounts:?}");
        assert_eq!(
            (
                mounts[0].sub_path.as_deref(),
                mounts[0].mount_path.as_str(),
                mounts[0].read_only
            ),
            (Some("engine"), paths::BIN_DIR, Some(true))
        );
        let r = c.resources.clone().expect("resources");
        assert_eq!(r.requests, r.limits);
        assert!(
            r.limits
                .is_some_and(|l| l.contains_key("cpu") && l.contains_key("memory"))
        );
        // A stage pod with nothing to pull ahead is as it was: one container.
        let j = stage_job(
            &build(),
            &settings(),
            0,
            &sj,
            None,
            &Deadline(None),
            Digests::new(digest('a')).into(),
        );
        let pod = j.spec.and_then(|s| s.template.spec).expect("pod");
        assert_eq!(pod.containers.len(), 1);
    }
}
