//! What build pods hand the controller, without any API access of their own: each pod's
//! result as one small JSON document in its termination message (DESIGN.md, "Plan hand-off").
//! The prepare pod reports the stage graph, a stage pod its failure, the push pod the digest.
//! The operator reads these types; the builder writes them.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::plan::{Base, Plan};
use crate::workspace::ImageInfo;

/// Where Kubernetes reads a container's termination message, and its size limit.
pub const TERMINATION_LOG: &str = "/dev/termination-log";
pub const TERMINATION_LIMIT: usize = 4096;
/// The line prefix of the result in the pod log, for results over the limit.
pub const LOG_PREFIX: &str = "slipway-result: ";

/// The stages to run, as Jobs: one per fused FROM-chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BuildGraph {
    /// The stage whose image is pushed.
    pub target: usize,
    pub jobs: Vec<StageJob>,
}

/// One stage Job: a chain of stages run one after the other in one pod.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StageJob {
    /// Stage indices, parent first.
    pub stages: Vec<usize>,
    /// The stages' names (`None` for an unnamed stage), in the same order.
    pub names: Vec<Option<String>>,
    /// Stages of other Jobs that must be done before this Job starts.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub needs: Vec<usize>,
    /// The pod's image: the chain's base pinned by digest; `None` for a FROM scratch chain
    /// (the pod runs the builder image and the engine roots the stage in the workspace).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// Secret ids its RUN commands mount.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub secrets: Vec<String>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub cache_mounts: bool,
}

impl StageJob {
    /// The Job's name in status and object names: the last stage's name, or its index.
    pub fn label(&self) -> String {
        let last = self.stages.len().saturating_sub(1);
        match self.names.get(last).cloned().flatten() {
            Some(n) => n,
            None => self
                .stages
                .get(last)
                .map(|i| i.to_string())
                .unwrap_or_default(),
        }
    }
}

impl BuildGraph {
    /// The Jobs of a plan whose external images are resolved (`images` by reference).
    pub fn new(plan: &Plan, images: &BTreeMap<String, ImageInfo>) -> Self {
        let jobs = plan
            .fused_chains()
            .into_iter()
            .map(|chain| {
                let stages: Vec<_> = chain.iter().filter_map(|i| plan.stage(*i)).collect();
                let mut needs: Vec<usize> = stages
                    .iter()
                    .flat_map(|s| s.depends_on.iter().copied())
                    .filter(|d| !chain.contains(d))
                    .collect();
                needs.sort();
                needs.dedup();
                let mut secrets: Vec<String> =
                    stages.iter().flat_map(|s| s.secrets.clone()).collect();
                secrets.sort();
                secrets.dedup();
                let image = match stages.first().map(|s| &s.from) {
                    Some(Base::Image(n)) if n != "scratch" => {
                        images.get(n).map(|i| i.pinned.clone())
                    }
                    // A chain starts at an image or at a stage of another chain; the latter's
                    // root image is the pod's image too.
                    Some(Base::Stage(p)) => root_image(plan, *p)
                        .and_then(|n| images.get(&n))
                        .map(|i| i.pinned.clone()),
                    _ => None,
                };
                StageJob {
                    names: stages.iter().map(|s| s.name.clone()).collect(),
                    cache_mounts: stages.iter().any(|s| s.cache_mounts),
                    stages: chain,
                    needs,
                    image,
                    secrets,
                }
            })
            .collect();
        BuildGraph {
            target: plan.target_index,
            jobs,
        }
    }
}

/// The external image at the root of a stage's FROM chain.
pub fn root_image(plan: &Plan, mut index: usize) -> Option<String> {
    loop {
        match &plan.stage(index)?.from {
            Base::Stage(p) => index = *p,
            Base::Image(n) if n == "scratch" => return None,
            Base::Image(n) => return Some(n.clone()),
        }
    }
}

/// Why a build pod failed, as the ImageBuild's `Succeeded` condition says it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Reason {
    SourceFailed,
    InvalidDockerfile,
    BaseImageNotFound,
    StageFailed,
    PushFailed,
}

impl Reason {
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::SourceFailed => "SourceFailed",
            Reason::InvalidDockerfile => "InvalidDockerfile",
            Reason::BaseImageNotFound => "BaseImageNotFound",
            Reason::StageFailed => "StageFailed",
            Reason::PushFailed => "PushFailed",
        }
    }
}

/// A build pod's result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum PodResult {
    /// The prepare pod: the Jobs to run.
    Graph(BuildGraph),
    /// A stage pod that finished its chain.
    Stage {
        layers: usize,
    },
    /// The push pod: the manifest digest, pushed to every reference.
    Pushed {
        digest: String,
        refs: Vec<String>,
    },
    Failed {
        reason: Reason,
        message: String,
    },
}

impl PodResult {
    /// Writes the result where Kubernetes reads it; a result over the size limit goes to
    /// the log instead (the controller then reads the log). Outside a pod this is a no-op
    /// apart from the log line.
    pub fn report(&self) {
        let json = serde_json::to_string(self).unwrap_or_default();
        println!("{LOG_PREFIX}{json}");
        let path = std::path::Path::new(TERMINATION_LOG);
        if path.exists() {
            let text = if json.len() <= TERMINATION_LIMIT {
                json
            } else {
                serde_json::json!({"inLog": true}).to_string()
            };
            let _ = std::fs::write(path, text);
        }
    }

    /// Reads a result from a termination message, or from the pod log's last result line.
    pub fn parse(text: &str) -> Option<PodResult> {
        if let Ok(r) = serde_json::from_str(text.trim()) {
            return Some(r);
        }
        text.lines()
            .rev()
            .find_map(|l| l.strip_prefix(LOG_PREFIX))
            .and_then(|j| serde_json::from_str(j).ok())
    }

    /// Whether the termination message says to read the log.
    pub fn in_log(text: &str) -> bool {
        serde_json::from_str::<serde_json::Value>(text.trim())
            .is_ok_and(|v| v.get("inLog").is_some())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::{PlanOptions, plan};

    fn info(name: &str) -> ImageInfo {
        ImageInfo {
            reference: name.into(),
            pinned: format!("{name}@sha256:00"),
            digest: "sha256:00".into(),
            config: serde_json::json!({}),
            layers: vec![],
        }
    }

    #[test]
    fn jobs_follow_fused_chains_with_pinned_images_and_secrets() {
        let df = "FROM golang AS base\nFROM base AS build\nRUN --mount=type=secret,id=tok true\n\
                  FROM build AS test\nRUN --mount=type=cache,target=/c true\n\
                  FROM scratch AS assets\nCOPY a /a\n\
                  FROM busybox\nCOPY --from=build /out /\nCOPY --from=assets /a /\n";
        let p = plan(df, &PlanOptions::default()).expect("plans");
        let images: BTreeMap<_, _> = ["golang", "busybox"]
            .into_iter()
            .map(|n| (n.to_string(), info(n)))
            .collect();
        let g = BuildGraph::new(&p, &images);
        assert_eq!(g.target, 4);
        let by_label: BTreeMap<String, &StageJob> = g.jobs.iter().map(|j| (j.label(), j)).collect();
        assert_eq!(by_label["build"].stages, vec![0, 1]);
        assert_eq!(by_label["build"].image.as_deref(), Some("golang@sha256:00"));
        assert_eq!(by_label["build"].secrets, vec!["tok".to_string()]);
        assert_eq!(by_label["assets"].image, None);
        assert_eq!(by_label["4"].needs, vec![0, 1, 3]);
        assert_eq!(by_label["4"].image.as_deref(), Some("busybox@sha256:00"));
        // The tester is not needed by the target, so it is not planned.
        assert!(!by_label.contains_key("test"));
    }

    #[test]
    fn results_round_trip_through_message_and_log() {
        let r = PodResult::Failed {
            reason: Reason::StageFailed,
            message: "stage \"build\" (#1): Dockerfile:5: RUN x: exit code 3".into(),
        };
        let json = serde_json::to_string(&r).expect("json");
        assert_eq!(PodResult::parse(&json), Some(r.clone()));
        let log = format!("noise\n{LOG_PREFIX}{json}\nmore noise\n");
        assert_eq!(PodResult::parse(&log), Some(r));
        assert!(PodResult::in_log(r#"{"inLog":true}"#));
        assert_eq!(PodResult::parse("garbage"), None);
    }
}
