//! The base images a build started from, for status (image automation reads them to know
//! when a base moved): each chain's root image as the Dockerfile names it, with the digest
//! the prepare step pinned it to. Pure, from the graph the prepare pod reported.

use slipway_contract::graph::BuildGraph;

use super::text::bounded;
use crate::api::BaseImage;

/// At most this many entries, each name at most this long: the graph comes from a pod,
/// and the status must stay small enough to be written.
const MAX_BASES: usize = 32;
const MAX_NAME: usize = 256;

/// One entry per external image a chain starts from, in graph order (restored stages' after
/// the Jobs'), without repeats; the one the pushed image is built on is marked `target`.
pub fn base_images(g: &BuildGraph) -> Vec<BaseImage> {
    let target = g.target_base();
    let mut out: Vec<BaseImage> = Vec::new();
    for (name, pinned) in g.bases() {
        let (Some(name), Some(pinned)) = (name, pinned) else {
            continue;
        };
        // The pod image is `registry/repository@sha256:...`.
        let Some((_, digest)) = pinned.rsplit_once('@') else {
            continue;
        };
        let is_target = Some(name) == target;
        let name = bounded(name, MAX_NAME);
        if out.iter().any(|b| b.name == name) || out.len() == MAX_BASES {
            continue;
        }
        out.push(BaseImage {
            target: is_target,
            name,
            digest: bounded(digest, MAX_NAME),
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use slipway_contract::graph::StageJob;

    fn job(stages: &[usize], base: Option<&str>, image: Option<&str>) -> StageJob {
        StageJob {
            stages: stages.to_vec(),
            names: stages.iter().map(|_| None).collect(),
            base: base.map(Into::into),
            image: image.map(Into::into),
            ..Default::default()
        }
    }

    #[test]
    fn each_chains_base_once_with_its_pinned_digest() {
        let g = BuildGraph {
            cache: None,
            target: 3,
            jobs: vec![
                job(
                    &[0],
                    Some("golang:1.22"),
                    Some("docker.io/library/golang@sha256:aa"),
                ),
                job(&[1], None, None), // FROM scratch
                job(
                    &[2],
                    Some("golang:1.22"),
                    Some("docker.io/library/golang@sha256:aa"),
                ),
                job(
                    &[3],
                    Some("reg:5000/distroless"),
                    Some("reg:5000/distroless@sha256:bb"),
                ),
            ],
            inputs: None,
            source_time: None,
            source_revision: None,
        };
        let bases = base_images(&g);
        let got: Vec<(&str, &str, bool)> = bases
            .iter()
            .map(|b| (b.name.as_str(), b.digest.as_str(), b.target))
            .collect();
        assert_eq!(
            got,
            [
                ("golang:1.22", "sha256:aa", false),
                ("reg:5000/distroless", "sha256:bb", true),
            ]
        );
    }

    #[test]
    fn a_graph_from_a_pod_cannot_make_the_status_unwritable() {
        let jobs = (0..100)
            .map(|i| {
                let name = format!("{i}{}", "x".repeat(1000));
                job(&[i], Some(&name), Some(&format!("{name}@sha256:cc")))
            })
            .collect();
        let g = BuildGraph {
            cache: None,
            target: 0,
            jobs,
            inputs: None,
            source_time: None,
            source_revision: None,
        };
        let bases = base_images(&g);
        assert_eq!(bases.len(), MAX_BASES);
        assert!(bases.iter().all(|b| b.name.len() <= MAX_NAME));
        assert!(bases[0].target && !bases[1].target);
    }
}
