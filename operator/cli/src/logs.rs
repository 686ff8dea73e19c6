//! A build's log lines as the CLI prints them: each prefixed with where it comes from
//! (`[prepare]`, `[<stage>]`, `[push]`), pods in the order the build ran them. Pure: the
//! pods and lines come from the caller.
//!
//! A stage pod runs a FROM-chain (`base → builder` in one pod): the engine opens each step
//! with `[<stage> <i>/<n>] <instruction>` and prefixes its RUN's output with `[<stage>] `,
//! so those lines keep the prefix they carry; any other line (the engine's own messages) is
//! given the stage of the step before it. The result line every build pod ends with
//! (`slipway-result: {...}`, for the controller) is not shown.

use k8s_openapi::api::core::v1::Pod;
use slipway_api::labels::{self, Step};
use slipway_api::{ImageBuildStatus, StageStatus};
use slipway_contract::result::LOG_PREFIX;

/// Where a pod's lines come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodSource {
    pub pod: String,
    pub step: Step,
    /// The prefix before any stage header: `prepare`, `push`, or the stage Job's label.
    pub label: String,
    /// The Job the pod belongs to.
    pub job: Option<String>,
    /// The generation of the ImageBuild it was made for.
    pub generation: Option<i64>,
}

impl PodSource {
    /// Reads a build pod's labels; `None` for a pod that is not a build step's.
    pub fn of(pod: &Pod) -> Option<PodSource> {
        let l = pod.metadata.labels.as_ref()?;
        let step = Step::parse(l.get(labels::STEP)?)?;
        let label = match step {
            Step::Stage => l
                .get(labels::STAGE)
                .cloned()
                .unwrap_or_else(|| "stage".into()),
            other => other.as_str().to_string(),
        };
        let job = l
            .get("batch.kubernetes.io/job-name")
            .or_else(|| l.get("job-name"))
            .cloned();
        Some(PodSource {
            pod: pod.metadata.name.clone()?,
            step,
            label,
            job,
            generation: l.get(labels::GENERATION).and_then(|g| g.parse().ok()),
        })
    }

    /// The order pods are shown in: prepare, stage pods by their first stage's index, push;
    /// then by creation (a replaced pod after the one it replaced) and name.
    pub fn order_key(
        &self,
        status: Option<&ImageBuildStatus>,
        created: Option<jiff::Timestamp>,
    ) -> (Step, i32, Option<jiff::Timestamp>, String) {
        let index = status
            .and_then(|s| first_index(&s.stages, self.job.as_deref()))
            .unwrap_or(i32::MAX);
        (self.step, index, created, self.pod.clone())
    }
}

fn first_index(stages: &[StageStatus], job: Option<&str>) -> Option<i32> {
    let job = job?;
    stages
        .iter()
        .filter(|s| s.job.as_deref() == Some(job))
        .map(|s| s.index)
        .min()
}

/// Sorts pods into the order they are shown in.
pub fn sort_pods(pods: &mut [Pod], status: Option<&ImageBuildStatus>) {
    pods.sort_by_cached_key(|p| {
        let created = p.metadata.creation_timestamp.as_ref().map(|t| t.0);
        PodSource::of(p).map(|s| s.order_key(status, created))
    });
}

/// One line to print.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogLine {
    /// The stage (or step) it belongs to.
    pub prefix: String,
    pub text: String,
    /// The engine's own `[stage i/n] instruction` line, which carries its prefix already.
    pub header: bool,
}

impl LogLine {
    /// `[prefix] text`, or a header as it is.
    pub fn plain(&self) -> String {
        if self.header {
            self.text.clone()
        } else {
            format!("[{}] {}", self.prefix, self.text)
        }
    }
}

/// Turns one pod's raw lines into [`LogLine`]s.
#[derive(Debug, Clone)]
pub struct Prefixer {
    current: String,
    stage_pod: bool,
}

impl Prefixer {
    pub fn new(source: &PodSource) -> Prefixer {
        Prefixer {
            current: source.label.clone(),
            stage_pod: source.step == Step::Stage,
        }
    }

    /// The line to print for `raw`, or `None` for the controller's result line.
    pub fn line(&mut self, raw: &str) -> Option<LogLine> {
        let raw = raw.strip_suffix('\r').unwrap_or(raw);
        if raw.starts_with(LOG_PREFIX) {
            return None;
        }
        if self.stage_pod {
            if let Some(stage) = header_stage(raw) {
                self.current = stage.to_string();
                return Some(LogLine {
                    prefix: self.current.clone(),
                    text: raw.to_string(),
                    header: true,
                });
            }
            if let Some((stage, text)) = prefixed(raw) {
                self.current = stage.to_string();
                return Some(LogLine {
                    prefix: self.current.clone(),
                    text: text.to_string(),
                    header: false,
                });
            }
        }
        Some(LogLine {
            prefix: self.current.clone(),
            text: raw.to_string(),
            header: false,
        })
    }
}

fn stage_name_ok(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

/// A RUN's output line as the engine prefixes it, `[<stage>] text`: the stage and the text.
pub fn prefixed(line: &str) -> Option<(&str, &str)> {
    let (stage, text) = line.strip_prefix('[')?.split_once("] ")?;
    stage_name_ok(stage).then_some((stage, text))
}

/// The stage of an engine header line, `[<stage> <i>/<n>] ...` with `1 <= i <= n`.
pub fn header_stage(line: &str) -> Option<&str> {
    let rest = line.strip_prefix('[')?;
    let (inside, after) = rest.split_once(']')?;
    if !after.starts_with(' ') {
        return None;
    }
    let (stage, count) = inside.rsplit_once(' ')?;
    let (i, n) = count.split_once('/')?;
    let (i, n): (u32, u32) = (i.parse().ok()?, n.parse().ok()?);
    (stage_name_ok(stage) && i >= 1 && i <= n).then_some(stage)
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
    use slipway_api::StagePhase;
    use std::collections::BTreeMap;

    fn pod(name: &str, labels: &[(&str, &str)], created: i64) -> Pod {
        Pod {
            metadata: ObjectMeta {
                name: Some(name.into()),
                labels: Some(
                    labels
                        .iter()
                        .map(|(k, v)| (k.to_string(), v.to_string()))
                        .collect::<BTreeMap<_, _>>(),
                ),
                creation_timestamp: Some(Time(
                    jiff::Timestamp::from_second(created).expect("time"),
                )),
                ..Default::default()
            },
            ..Default::default()
        }
    }

    fn stage_pod(name: &str, job: &str, label: &str, created: i64) -> Pod {
        pod(
            name,
            &[
                (labels::STEP, "stage"),
                (labels::STAGE, label),
                (labels::GENERATION, "1"),
                ("batch.kubernetes.io/job-name", job),
            ],
            created,
        )
    }

    #[test]
    fn pods_name_their_step_stage_and_generation() {
        let p = stage_pod("web-1-s0-build-x", "web-1-s0-build", "build", 5);
        let s = PodSource::of(&p).expect("a build pod");
        assert_eq!(s.step, Step::Stage);
        assert_eq!(s.label, "build");
        assert_eq!(s.job.as_deref(), Some("web-1-s0-build"));
        assert_eq!(s.generation, Some(1));
        let p = pod("web-1-push-x", &[(labels::STEP, "push")], 9);
        assert_eq!(PodSource::of(&p).map(|s| s.label), Some("push".into()));
        assert_eq!(PodSource::of(&pod("other", &[("app", "x")], 1)), None);
    }

    #[test]
    fn pods_are_shown_in_the_order_the_build_ran_them() {
        let status = ImageBuildStatus {
            stages: [
                (0, "web-1-s1-deps"),
                (1, "web-1-s1-deps"),
                (2, "web-1-s0-assets"),
                (3, "web-1-s2-final"),
            ]
            .iter()
            .map(|(i, job)| StageStatus {
                name: None,
                index: *i,
                phase: StagePhase::Succeeded,
                job: Some(job.to_string()),
                start_time: None,
                completion_time: None,
                cached_layers: None,
            })
            .collect(),
            ..Default::default()
        };
        let mut pods = vec![
            pod("web-1-push-a", &[(labels::STEP, "push")], 1),
            stage_pod("web-1-s2-final-a", "web-1-s2-final", "final", 2),
            stage_pod("web-1-s0-assets-a", "web-1-s0-assets", "assets", 3),
            stage_pod("web-1-s1-deps-b", "web-1-s1-deps", "deps", 9),
            stage_pod("web-1-s1-deps-a", "web-1-s1-deps", "deps", 4),
            pod("web-1-prepare-a", &[(labels::STEP, "prepare")], 8),
        ];
        sort_pods(&mut pods, Some(&status));
        let names: Vec<_> = pods
            .iter()
            .filter_map(|p| p.metadata.name.clone())
            .collect();
        assert_eq!(
            names,
            [
                "web-1-prepare-a",
                "web-1-s1-deps-a",
                "web-1-s1-deps-b",
                "web-1-s0-assets-a",
                "web-1-s2-final-a",
                "web-1-push-a"
            ]
        );
    }

    #[test]
    fn a_chain_s_lines_follow_the_engine_s_stage_headers() {
        let p = stage_pod("go-1-s0-builder-x", "go-1-s0-builder", "builder", 1);
        let mut f = Prefixer::new(&PodSource::of(&p).expect("source"));
        let out: Vec<String> = [
            "copying the engine",
            "[base 1/3] FROM golang",
            "[base 2/3] WORKDIR /app",
            "[base 3/3] RUN go mod download",
            "[base] go: downloading example.com/x v1.0.0",
            "an engine message",
            "[builder 1/3] FROM base",
            "[builder 3/3] RUN CGO_ENABLED=0 go build -o myapp",
            "[builder] [1/2] compiling\r",
            "building...",
            "[not a header] x",
            "[builder 9/3] out of range",
            r#"slipway-result: {"stage":{"layers":4}}"#,
        ]
        .iter()
        .filter_map(|l| f.line(l))
        .map(|l| l.plain())
        .collect();
        assert_eq!(
            out,
            [
                "[builder] copying the engine",
                "[base 1/3] FROM golang",
                "[base 2/3] WORKDIR /app",
                "[base 3/3] RUN go mod download",
                "[base] go: downloading example.com/x v1.0.0",
                "[base] an engine message",
                "[builder 1/3] FROM base",
                "[builder 3/3] RUN CGO_ENABLED=0 go build -o myapp",
                "[builder] [1/2] compiling",
                "[builder] building...",
                "[builder] [not a header] x",
                "[builder] [builder 9/3] out of range",
            ]
        );
        // The text of a prefixed line is without its prefix (what JSON output carries).
        let l = f.line("[builder] [1/2] compiling").expect("line");
        assert_eq!(
            (l.prefix.as_str(), l.text.as_str(), l.header),
            ("builder", "[1/2] compiling", false)
        );
    }

    #[test]
    fn prepare_and_push_lines_keep_their_step_prefix() {
        let p = pod("web-1-prepare-x", &[(labels::STEP, "prepare")], 1);
        let mut f = Prefixer::new(&PodSource::of(&p).expect("source"));
        // A RUN-like header in prepare's output does not change its prefix.
        assert_eq!(
            f.line("[x 1/2] y").map(|l| l.plain()),
            Some("[prepare] [x 1/2] y".into())
        );
        assert_eq!(f.line("slipway-result: {}"), None);
    }

    #[test]
    fn prefixed_lines() {
        assert_eq!(
            prefixed("[check] about to fail"),
            Some(("check", "about to fail"))
        );
        assert_eq!(prefixed("[check]  "), Some(("check", " ")));
        assert_eq!(prefixed("[a b] x"), None);
        assert_eq!(prefixed("[check]x"), None);
        assert_eq!(prefixed("check] x"), None);
    }

    #[test]
    fn header_lines() {
        assert_eq!(header_stage("[base 1/3] FROM x"), Some("base"));
        assert_eq!(header_stage("[1 2/2] COPY . ."), Some("1"));
        assert_eq!(header_stage("[base 1/3]FROM x"), None);
        assert_eq!(header_stage("[base 0/3] x"), None);
        assert_eq!(header_stage("[ 1/3] x"), None);
        assert_eq!(header_stage("[a b 1/3] x"), None);
        assert_eq!(header_stage("plain"), None);
    }
}
