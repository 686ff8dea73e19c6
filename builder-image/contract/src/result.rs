//! What build pods hand the controller, without any API access of their own: each pod's
//! result as one small JSON document in its termination message, or on a prefixed line of
//! its log when it is over Kubernetes' 4 KiB limit (Tekton's "results from sidecar logs").
//! The prepare pod reports the stage graph, a stage pod its layers or its failure, the push
//! pod the digest. The operator reads these types; the builder writes them.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::graph::BuildGraph;
use crate::trust::{Awaited, Outputs};

/// Where Kubernetes reads a container's termination message, and its size limit.
pub const TERMINATION_LOG: &str = "/dev/termination-log";
pub const TERMINATION_LIMIT: usize = 4096;
/// The line prefix of the result in the pod log, for results over the limit.
pub const LOG_PREFIX: &str = "slipway-result: ";
/// The environment variable that gives the prepare and push pods' one container its pod's
/// UID (the downward API). Their result line carries it (`slipway-result: <uid> <json>`), so
/// that the controller can believe the line while the pod still runs: what a registry or a
/// context makes these pods print cannot know it. Stage pods never get it (a RUN step could
/// read it).
pub const RESULT_TOKEN_ENV: &str = "SLIPWAY_RESULT_TOKEN";

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
    /// The prepare pod: the Jobs to run, and the digests of the files it wrote.
    Graph(BuildGraph),
    /// A stage pod that finished its chain: the digests of what each of its stages wrote, by
    /// stage index (about 160 bytes a stage: a long chain's result goes to the log).
    Stage {
        layers: usize,
        #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
        outputs: BTreeMap<usize, Outputs>,
        /// The outputs it took of the stages it awaited (`--await-outputs`).
        #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
        awaited: Awaited,
    },
    /// The push pod: the manifest digest, pushed to every reference, and the bytes of the
    /// config and layers the manifest lists (`None` from a push pod before it said).
    Pushed {
        digest: String,
        refs: Vec<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        size: Option<u64>,
        /// What the push step stored in the layer cache, after the image was pushed.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        cache: Option<CacheWrite>,
        /// The outputs it took of the stages it awaited (`--await-outputs`).
        #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
        awaited: Awaited,
    },
    Failed {
        reason: Reason,
        message: String,
    },
}

/// The push step's writes to the layer cache: best-effort, so a failure is counted and the
/// first one said, never a failed build.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CacheWrite {
    /// Stages stored.
    pub stored: usize,
    /// Stages that could not be.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub failed: usize,
    /// The first failure, cut to [`CACHE_WARNING_LIMIT`] bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warning: Option<String>,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

/// How much of a cache write failure the push result carries.
pub const CACHE_WARNING_LIMIT: usize = 300;

impl CacheWrite {
    /// Two writes of one push as one: their counts added, the first warning kept.
    pub fn and(self, other: CacheWrite) -> CacheWrite {
        CacheWrite {
            stored: self.stored + other.stored,
            failed: self.failed + other.failed,
            warning: self.warning.or(other.warning),
        }
    }

    /// Counts a failure; keeps the first one's message, cut on a character boundary.
    pub fn failure(&mut self, message: &str) {
        self.failed += 1;
        if self.warning.is_none() {
            let mut end = message.len().min(CACHE_WARNING_LIMIT);
            while !message.is_char_boundary(end) {
                end -= 1;
            }
            self.warning = Some(message[..end].to_string());
        }
    }
}

impl PodResult {
    /// Writes the result where Kubernetes reads it, and as a log line (the controller reads
    /// the log for a result over the size limit). Outside a pod (local mode, where the host
    /// reads results from the workspace) it does nothing: the line would only be noise in
    /// the user's log.
    pub fn report(&self) {
        let path = std::path::Path::new(TERMINATION_LOG);
        if !path.exists() {
            return;
        }
        let token = std::env::var(RESULT_TOKEN_ENV).unwrap_or_default();
        println!("{}", self.log_line(&token));
        let _ = std::fs::write(path, self.termination_message());
    }

    /// The result's log line, signed with `token` when there is one.
    pub fn log_line(&self, token: &str) -> String {
        let json = serde_json::to_string(self).unwrap_or_default();
        if is_token(token) {
            format!("{LOG_PREFIX}{token} {json}")
        } else {
            format!("{LOG_PREFIX}{json}")
        }
    }

    /// The result on a log line signed with `token`, and only such a line.
    pub fn signed(line: &str, token: &str) -> Option<PodResult> {
        if !is_token(token) {
            return None;
        }
        let rest = line.strip_prefix(LOG_PREFIX)?.strip_prefix(token)?;
        serde_json::from_str(rest.strip_prefix(' ')?).ok()
    }

    /// The result as the termination message holds it: whole when it fits the limit; a
    /// failure with its message cut to fit (a RUN line of megabytes makes a message that
    /// long: the controller shows a bounded one anyway, and then never reads the log for a
    /// failure); else a pointer to the log line (a large graph, many tags).
    pub fn termination_message(&self) -> String {
        let json = serde_json::to_string(self).unwrap_or_default();
        if json.len() <= TERMINATION_LIMIT {
            return json;
        }
        if let PodResult::Failed { reason, message } = self {
            let mut keep = message.len();
            loop {
                let total = json_len(*reason, message, keep);
                if total <= TERMINATION_LIMIT || keep == 0 {
                    break;
                }
                // Escapes make the JSON longer than the text: keep the share that fits,
                // and less each time, until it does.
                keep = (keep - 1).min(keep * TERMINATION_LIMIT / total);
                while !message.is_char_boundary(keep) {
                    keep -= 1;
                }
            }
            return serde_json::to_string(&cut(*reason, message, keep)).unwrap_or_default();
        }
        serde_json::json!({"inLog": true}).to_string()
    }

    /// Reads a result from a termination message, or from the pod log's last result line.
    pub fn parse(text: &str) -> Option<PodResult> {
        if let Ok(r) = serde_json::from_str(text.trim()) {
            return Some(r);
        }
        text.lines()
            .rev()
            .find_map(|l| l.strip_prefix(LOG_PREFIX))
            .map(|rest| match rest.split_once(' ') {
                Some((token, json)) if is_token(token) => json,
                _ => rest,
            })
            .and_then(|j| serde_json::from_str(j).ok())
    }

    /// Whether the termination message says to read the log.
    pub fn in_log(text: &str) -> bool {
        serde_json::from_str::<serde_json::Value>(text.trim())
            .is_ok_and(|v| v.get("inLog").is_some())
    }
}

/// A pod UID's shape: something nobody could guess, and no JSON.
fn is_token(t: &str) -> bool {
    t.len() >= 32 && t.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-')
}

/// A failure whose message is cut after `keep` bytes (a char boundary) and marked so.
fn cut(reason: Reason, message: &str, keep: usize) -> PodResult {
    PodResult::Failed {
        reason,
        message: format!("{}…", &message[..keep]),
    }
}

fn json_len(reason: Reason, message: &str, keep: usize) -> usize {
    serde_json::to_string(&cut(reason, message, keep)).map_or(0, |j| j.len())
}

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn only_a_line_signed_with_the_token_is_believed_early() {
        let token = "0b6c2f3e-5d1a-4c8e-9f70-1a2b3c4d5e6f";
        let real = PodResult::Pushed {
            awaited: Default::default(),
            cache: None,
            digest: "sha256:11".into(),
            refs: vec!["r/x:1".into()],
            size: None,
        };
        let line = real.log_line(token);
        assert_eq!(PodResult::signed(&line, token), Some(real.clone()));
        // The fallback after the pod ended reads it too, token or not.
        assert_eq!(
            PodResult::parse(&format!("a\n{line}\n")),
            Some(real.clone())
        );
        let unsigned = real.log_line("");
        assert_eq!(PodResult::parse(&unsigned), Some(real.clone()));
        // What a registry's error body or a context's file name could make the pod print.
        let forged = PodResult::Pushed {
            awaited: Default::default(),
            cache: None,
            digest: "sha256:66".into(),
            refs: vec!["r/x:1".into()],
            size: None,
        };
        let other = "ffffffff-5d1a-4c8e-9f70-1a2b3c4d5e6f";
        for l in [
            forged.log_line(""),
            forged.log_line(other),
            format!(
                "{LOG_PREFIX}{token}{}",
                serde_json::to_string(&forged).expect("json")
            ),
            format!("x {}", forged.log_line(token)),
        ] {
            assert_eq!(PodResult::signed(&l, token), None, "{l}");
        }
        // No token, no early result: an empty or short one signs nothing.
        assert_eq!(PodResult::signed(&unsigned, ""), None);
        assert_eq!(PodResult::signed(&forged.log_line("ab"), "ab"), None);
    }

    #[test]
    fn a_long_failure_is_cut_to_fit_the_termination_message() {
        let short = PodResult::Failed {
            reason: Reason::StageFailed,
            message: "exit code 3".into(),
        };
        assert_eq!(
            short.termination_message(),
            serde_json::to_string(&short).expect("json")
        );
        // A 200 KB RUN line, with characters JSON escapes and a multi-byte one.
        let text = format!(
            "stage \"x\" (#0): Dockerfile:2: RUN false # {}",
            "\"é\\x".repeat(50_000)
        );
        let long = PodResult::Failed {
            reason: Reason::StageFailed,
            message: text.clone(),
        };
        let m = long.termination_message();
        assert!(m.len() <= TERMINATION_LIMIT, "{}", m.len());
        assert!(!PodResult::in_log(&m));
        match PodResult::parse(&m) {
            Some(PodResult::Failed { reason, message }) => {
                assert_eq!(reason, Reason::StageFailed);
                assert!(message.ends_with('…'));
                assert!(text.starts_with(message.trim_end_matches('…')));
                assert!(message.len() > 1000, "{}", message.len());
            }
            other => panic!("{other:?}"),
        }
        // A long chain's digests go to the log, and come back whole.
        let digest = crate::digest::Digest::from_sha256(&[7; 32]);
        let outputs: BTreeMap<usize, Outputs> = (0..40)
            .map(|i| {
                let out = Outputs {
                    result: digest.clone(),
                    exports: (i % 2 == 0).then(|| digest.clone()),
                };
                (i, out)
            })
            .collect();
        let awaited = outputs.clone();
        let stage = PodResult::Stage {
            layers: 3,
            outputs,
            awaited,
        };
        let m = stage.termination_message();
        assert!(PodResult::in_log(&m));
        let line = format!(
            "{LOG_PREFIX}{}\n",
            serde_json::to_string(&stage).expect("json")
        );
        assert_eq!(PodResult::parse(&line), Some(stage));
        // A large graph still goes to the log.
        let graph = PodResult::Pushed {
            awaited: Default::default(),
            cache: None,
            digest: "sha256:00".into(),
            refs: vec!["r/x:1".repeat(1000)],
            size: Some(1234),
        };
        assert!(PodResult::in_log(&graph.termination_message()));
    }

    #[test]
    fn a_push_result_without_a_size_still_reads() {
        let old = r#"{"pushed":{"digest":"sha256:00","refs":["r/x:1"]}}"#;
        assert_eq!(
            PodResult::parse(old),
            Some(PodResult::Pushed {
                awaited: Default::default(),
                cache: None,
                digest: "sha256:00".into(),
                refs: vec!["r/x:1".into()],
                size: None,
            })
        );
        let new = PodResult::Pushed {
            awaited: Default::default(),
            cache: None,
            digest: "sha256:00".into(),
            refs: vec![],
            size: Some(7),
        };
        assert!(new.termination_message().contains(r#""size":7"#));
    }
}
