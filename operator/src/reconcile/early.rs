//! Results read as a pod prints them. The prepare and push pods print their result line just
//! before they exit; the kubelet reports the exit on its next relist, up to a second later,
//! and the build's next step (or its end) waited for that. Their one container gets its pod's
//! UID ([`RESULT_TOKEN_ENV`]) and signs the line with it, so the controller follows their log
//! and acts on the signed line at once. Only a signed line counts: what a registry's answer, a
//! context's file name or a base image makes such a pod print cannot know the UID. Stage pods
//! are never followed (a RUN step shares their container and could read it).
//!
//! Each followed pod has one task ([`Early::result`] starts it); the line it finds wakes the
//! build's reconcile. The pod's end is still read as before ([`pod_result`](super::observe::pod_result)),
//! so a controller that could not follow (a kubelet it cannot reach) loses a second, nothing
//! more.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use futures::channel::mpsc::UnboundedSender;
use futures::{AsyncBufRead, AsyncBufReadExt, StreamExt};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::api::LogParams;
use kube::runtime::reflector::ObjectRef;
use kube::{Api, ResourceExt};
use slipway_contract::result::{PodResult, RESULT_TOKEN_ENV};
use tracing::debug;

use super::observe::LOG_LIMIT;
use crate::api::ImageBuild;

/// The most of a followed log read: the result line is at most [`LOG_LIMIT`], and little is
/// printed before it. A log longer than this is read at the pod's end instead.
pub const FOLLOW_LIMIT: i64 = 1 << 20;

/// A running pod whose container signs its result line: what is needed to follow its log.
#[derive(Debug, Clone, PartialEq)]
pub struct Printing {
    pub pod: String,
    /// The pod's UID: the token its line is signed with.
    pub uid: String,
    pub container: String,
    pub node: Option<String>,
}

/// The container of `p` that signs its result, while it runs.
pub fn printing(p: &Pod) -> Option<Printing> {
    let (spec, status) = (p.spec.as_ref()?, p.status.as_ref()?);
    if p.metadata.deletion_timestamp.is_some() {
        return None;
    }
    let signs = spec
        .containers
        .iter()
        .find(|c| c.env.iter().flatten().any(|e| e.name == RESULT_TOKEN_ENV))?;
    let running =
        status.container_statuses.iter().flatten().any(|s| {
            s.name == signs.name && s.state.as_ref().is_some_and(|st| st.running.is_some())
        });
    Some(Printing {
        pod: p.name_any(),
        uid: p.uid()?,
        container: signs.name.clone(),
        node: spec.node_name.clone(),
    })
    .filter(|_| running)
}

enum Entry {
    Following,
    Found(Box<(PodResult, Time)>),
    /// The log ended, broke or passed its cap without a signed line: not followed again
    /// (the pod's end is read as before).
    Ended,
}

type Entries = Arc<Mutex<HashMap<String, (ObjectRef<ImageBuild>, Entry)>>>;

/// The followed pods of every build, by pod UID.
pub struct Early {
    entries: Entries,
    wake: UnboundedSender<ObjectRef<ImageBuild>>,
}

impl Early {
    /// `wake` reconciles the build a line was found for.
    pub fn new(wake: UnboundedSender<ObjectRef<ImageBuild>>) -> Self {
        Early {
            entries: Arc::default(),
            wake,
        }
    }

    /// The signed result `p` printed, and when it was seen; the first call starts following
    /// its log (on `pods`, the pod's namespace) and returns `None`.
    pub fn result(
        &self,
        pods: &Api<Pod>,
        p: &Printing,
        build: &ObjectRef<ImageBuild>,
    ) -> Option<(PodResult, Time)> {
        let mut entries = lock(&self.entries);
        match entries.get(&p.uid) {
            Some((_, Entry::Found(found))) => return Some((**found).clone()),
            Some((_, Entry::Following | Entry::Ended)) => return None,
            None => {}
        }
        entries.insert(p.uid.clone(), (build.clone(), Entry::Following));
        let task = Follow {
            pods: pods.clone(),
            pod: p.clone(),
            build: build.clone(),
            entries: self.entries.clone(),
            wake: self.wake.clone(),
        };
        tokio::spawn(task.run());
        None
    }

    /// Forgets the pods of builds `keep` says are gone.
    pub fn retain(&self, keep: impl Fn(&ObjectRef<ImageBuild>) -> bool) {
        lock(&self.entries).retain(|_, (b, _)| keep(b));
    }
}

fn lock(e: &Entries) -> std::sync::MutexGuard<'_, HashMap<String, (ObjectRef<ImageBuild>, Entry)>> {
    e.lock().unwrap_or_else(|p| p.into_inner())
}

/// One pod's log, followed until its signed line.
struct Follow {
    pods: Api<Pod>,
    pod: Printing,
    build: ObjectRef<ImageBuild>,
    entries: Entries,
    wake: UnboundedSender<ObjectRef<ImageBuild>>,
}

impl Follow {
    async fn run(self) {
        let found = self.read().await;
        let mut entries = lock(&self.entries);
        match found {
            Some(r) => {
                debug!(pod = %self.pod.pod, "result line read as printed");
                let at = Time(Timestamp::now());
                entries.insert(
                    self.pod.uid.clone(),
                    (self.build.clone(), Entry::Found(Box::new((r, at)))),
                );
                drop(entries);
                let _ = self.wake.unbounded_send(self.build);
            }
            // Not read again: its end is, as before, a second later.
            None => {
                entries.insert(self.pod.uid.clone(), (self.build.clone(), Entry::Ended));
            }
        }
    }

    async fn read(&self) -> Option<PodResult> {
        let params = LogParams {
            follow: true,
            container: Some(self.pod.container.clone()),
            limit_bytes: Some(FOLLOW_LIMIT),
            ..Default::default()
        };
        match self.pods.log_stream(&self.pod.pod, &params).await {
            Ok(log) => first_signed(log, &self.pod.uid).await,
            Err(e) => {
                debug!(pod = %self.pod.pod, error = %e, "cannot follow the log");
                None
            }
        }
    }
}

/// The first line of `log` that is a result signed with `token`, no longer than what is read
/// of a log once the pod ended ([`LOG_LIMIT`]): a result is believed, or refused, the same way
/// whichever read finds it.
pub async fn first_signed(log: impl AsyncBufRead + Unpin, token: &str) -> Option<PodResult> {
    let mut lines = log.lines();
    while let Some(Ok(line)) = lines.next().await {
        if line.len() as i64 >= LOG_LIMIT {
            continue;
        }
        if let Some(r) = PodResult::signed(&line, token) {
            return Some(r);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use slipway_contract::result::Reason;

    const UID: &str = "0b6c2f3e-5d1a-4c8e-9f70-1a2b3c4d5e6f";

    fn pushed(digest: &str) -> PodResult {
        PodResult::Pushed {
            awaited: Default::default(),
            cache: None,
            digest: digest.into(),
            refs: vec!["r/x:1".into()],
            size: None,
        }
    }

    #[tokio::test]
    async fn a_forged_line_before_the_signed_one_is_not_believed() {
        let forged = pushed("sha256:66");
        let log = format!(
            "push: 3 blobs\n{}\nwarning: HTTP 500: {}\n{}\ncache: write\n",
            forged.log_line(""),
            forged.log_line("ffffffff-5d1a-4c8e-9f70-1a2b3c4d5e6f"),
            pushed("sha256:11").log_line(UID),
        );
        let got = first_signed(log.as_bytes(), UID).await;
        assert_eq!(got, Some(pushed("sha256:11")));
        // Without a signed line there is nothing to act on before the pod ends.
        let unsigned = format!("{}\n", pushed("sha256:11").log_line(""));
        assert_eq!(first_signed(unsigned.as_bytes(), UID).await, None);
        let failed = PodResult::Failed {
            reason: Reason::PushFailed,
            message: "x".into(),
        };
        let log = format!("{}\n", failed.log_line(UID));
        assert_eq!(first_signed(log.as_bytes(), UID).await, Some(failed));
        // A result over what the read after the pod's end takes is refused here too.
        let long = PodResult::Pushed {
            awaited: Default::default(),
            cache: None,
            digest: "sha256:11".into(),
            refs: vec!["r/x:1".repeat(20_000)],
            size: None,
        };
        let log = format!("{}\n", long.log_line(UID));
        assert!(log.len() as i64 > LOG_LIMIT);
        assert_eq!(first_signed(log.as_bytes(), UID).await, None);
    }

    fn pod(env: bool, running: bool) -> Pod {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": "b-push-x", "uid": UID},
            "spec": {"nodeName": "n1", "containers": [{
                "name": "push",
                "env": if env { serde_json::json!([{"name": RESULT_TOKEN_ENV,
                    "valueFrom": {"fieldRef": {"fieldPath": "metadata.uid"}}}]) }
                    else { serde_json::json!([]) },
            }]},
            "status": {"containerStatuses": [{
                "name": "push", "image": "b", "imageID": "", "ready": running,
                "restartCount": 0,
                "state": if running { serde_json::json!({"running": {}}) }
                    else { serde_json::json!({"waiting": {"reason": "ContainerCreating"}}) },
            }]},
        }))
        .expect("pod")
    }

    #[test]
    fn only_a_running_container_that_signs_is_followed() {
        assert_eq!(
            printing(&pod(true, true)),
            Some(Printing {
                pod: "b-push-x".into(),
                uid: UID.into(),
                container: "push".into(),
                node: Some("n1".into()),
            })
        );
        // Not started yet: its log cannot be read.
        assert_eq!(printing(&pod(true, false)), None);
        // A stage pod: no token, never followed.
        assert_eq!(printing(&pod(false, true)), None);
    }
}
