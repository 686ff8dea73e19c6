//! Why a running Job makes no progress, from its pods and its events (pure rules; observe
//! reads them, decide acts on them):
//!
//! * the Job controller cannot create its pod: its `FailedCreate` events say why. A Pod
//!   Security level or an admission policy the pod does not meet will not change: the build
//!   fails at once with `PodRejected`, naming the policy (M3), instead of hanging until its
//!   timeout. Anything else (a quota, a service account not there yet) is shown while the
//!   build waits;
//! * the kubelet cannot pull one of its pod's images: a container waits in `ImagePullBackOff`
//!   (a pull failed and the kubelet waits before the next), `InvalidImageName` or
//!   `ErrImageNeverPull`. The build fails at once with `ImagePullFailed`, naming the image and
//!   the kubelet's error, as Tekton (and so Shipwright) fails a TaskRun, instead of waiting
//!   until its timeout: every image is pinned by digest and prepare has just resolved it, so
//!   what is left is the node's side (its credentials, its registry configuration: a registry
//!   prepare reached over plain HTTP that the node's runtime will not) or a blob the registry
//!   lost, none of which a retry mends;
//! * its pods are lost to disruptions again and again: a pod evicted for filling the node's
//!   disk is replaced (the Job's pod failure policy ignores disruptions) and fills it again.
//!   After [`MAX_DISRUPTIONS`] such pods the build fails with `Evicted` (M6). Pods an API
//!   eviction (a drain) deleted are gone and not counted; the kubelet's evictions for node
//!   pressure or an ephemeral-storage limit leave failed pods, which are.
//!
//! And when a Job is done before its status says so: the Job controller folds pod updates
//! for about a second before it writes a Job's status, and a build is a chain of Jobs, so the
//! controller goes on as soon as the pod has succeeded. It does not wait for phase
//! `Succeeded` either: the kubelet writes that only after it has torn the pod's sandbox down,
//! about 1.2 s after it reported the last container's exit (measured on the test cluster).
//! Every container exited 0 under `restartPolicy: Never` is as final: none will run again.

use k8s_openapi::api::core::v1::{ContainerStateTerminated, ContainerStatus, Event, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::early::{Printing, printing};

/// A Job's pods lost to disruptions before the build fails.
pub const MAX_DISRUPTIONS: u32 = 3;

/// What a running Job's pods say.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PodsSeen {
    /// The Job has no pod: not created yet, or the Job controller cannot create one.
    pub none: bool,
    /// The message of the Job's last `FailedCreate` event, when it has no pod.
    pub create_failed: Option<String>,
    /// Its pods that failed on a disruption (condition `DisruptionTarget`).
    pub disrupted: u32,
    /// The last of them: its reason and message.
    pub last_disruption: Option<String>,
    /// One of its pods succeeded: when its last container finished.
    pub succeeded: Option<Time>,
    /// A container of a pod still running whose image the kubelet cannot pull.
    pub pull_failed: Option<PullFailed>,
    /// A pod of it that has not failed is bound to a node: it will run there, so a pod
    /// that needs its stages may start beside it and await them.
    pub scheduled: bool,
    /// A pod of it whose container runs and signs its result line ([`early`](super::early)).
    pub printing: Option<Printing>,
}

/// A container whose image the kubelet cannot pull, and why.
#[derive(Debug, Clone, PartialEq)]
pub struct PullFailed {
    pub container: String,
    pub image: String,
    /// The kubelet's reason and message: `ImagePullBackOff: Back-off pulling image ...`.
    pub why: String,
}

/// The waiting reasons of a container whose image will not be pulled without a change.
const PULL_FAILURES: [&str; 3] = ["ImagePullBackOff", "InvalidImageName", "ErrImageNeverPull"];

/// What the pods of one Job (those it owns) say.
pub fn seen(pods: &[&Pod]) -> PodsSeen {
    let mut disrupted: Vec<&Pod> = pods.iter().copied().filter(|p| disruption(p)).collect();
    disrupted.sort_by_key(|p| p.metadata.creation_timestamp.clone().map(|t| t.0));
    PodsSeen {
        none: pods.is_empty(),
        create_failed: None,
        disrupted: disrupted.len() as u32,
        last_disruption: disrupted.last().map(|p| why_lost(p)),
        succeeded: pods.iter().find_map(|p| succeeded(p)),
        pull_failed: pods.iter().find_map(|p| pull_failed(p)),
        scheduled: pods.iter().any(|p| scheduled(p)),
        printing: pods.iter().find_map(|p| printing(p)),
    }
}

fn scheduled(p: &Pod) -> bool {
    let bound = p.spec.as_ref().is_some_and(|s| s.node_name.is_some());
    let failed = p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Failed");
    bound && !failed && p.metadata.deletion_timestamp.is_none()
}

/// The first container (init containers first) of a pod not yet ended that waits on an image
/// the kubelet cannot pull.
fn pull_failed(p: &Pod) -> Option<PullFailed> {
    let s = p.status.as_ref()?;
    if matches!(s.phase.as_deref(), Some("Succeeded" | "Failed")) {
        return None;
    }
    let statuses = s.init_container_statuses.iter().flatten();
    statuses
        .chain(s.container_statuses.iter().flatten())
        .find_map(|c| {
            let w = c.state.as_ref()?.waiting.as_ref()?;
            let reason = w.reason.as_deref().filter(|r| PULL_FAILURES.contains(r))?;
            Some(PullFailed {
                container: c.name.clone(),
                image: c.image.clone(),
                why: match w.message.as_deref() {
                    Some(m) if !m.is_empty() => format!("{reason}: {m}"),
                    _ => reason.to_string(),
                },
            })
        })
}

/// When a pod that succeeded finished: its containers' last exit (its creation time when the
/// kubelet has not said). Succeeded: phase `Succeeded`, or every container of its spec
/// exited 0 under `restartPolicy: Never` in a pod that has not failed.
fn succeeded(p: &Pod) -> Option<Time> {
    let s = p.status.as_ref()?;
    let done = match s.phase.as_deref() {
        Some("Succeeded") => true,
        Some("Failed") => false,
        _ => all_exited_zero(p),
    };
    if !done {
        return None;
    }
    s.container_statuses
        .iter()
        .flatten()
        .filter_map(|c| c.state.as_ref()?.terminated.as_ref()?.finished_at.clone())
        .max_by_key(|t| t.0)
        .or_else(|| p.metadata.creation_timestamp.clone())
}

/// Every container the pod's spec names has terminated with exit code 0, and none restarts.
fn all_exited_zero(p: &Pod) -> bool {
    let (Some(spec), Some(status)) = (&p.spec, &p.status) else {
        return false;
    };
    if spec.restart_policy.as_deref() != Some("Never") || spec.containers.is_empty() {
        return false;
    }
    let statuses = status.container_statuses.as_deref().unwrap_or_default();
    spec.containers.iter().all(|c| {
        statuses.iter().any(|st| {
            st.name == c.name
                && st
                    .state
                    .as_ref()
                    .and_then(|s| s.terminated.as_ref())
                    .is_some_and(|t| t.exit_code == 0)
        })
    })
}

/// A failed pod with the `DisruptionTarget` condition.
fn disruption(p: &Pod) -> bool {
    let Some(s) = &p.status else { return false };
    s.phase.as_deref() == Some("Failed")
        && s.conditions
            .iter()
            .flatten()
            .any(|c| c.type_ == "DisruptionTarget" && c.status == "True")
}

/// `Evicted: The node was low on resource: ephemeral-storage. ...`
fn why_lost(p: &Pod) -> String {
    let s = p.status.clone().unwrap_or_default();
    let cond = s
        .conditions
        .iter()
        .flatten()
        .find(|c| c.type_ == "DisruptionTarget")
        .cloned()
        .unwrap_or_default();
    let reason = s
        .reason
        .or(cond.reason)
        .unwrap_or_else(|| "Disrupted".into());
    match s.message.or(cond.message) {
        Some(m) if !m.is_empty() => format!("{reason}: {m}"),
        _ => reason,
    }
}

/// The message of the newest `FailedCreate` event among `events` (the Job's own).
pub fn last_failed_create(events: &[Event]) -> Option<String> {
    events
        .iter()
        .filter(|e| e.reason.as_deref() == Some("FailedCreate"))
        .max_by_key(|e| {
            e.last_timestamp
                .clone()
                .map(|t| t.0)
                .or_else(|| e.event_time.clone().map(|t| t.0))
                .or_else(|| e.metadata.creation_timestamp.clone().map(|t| t.0))
        })
        .and_then(|e| e.message.clone())
}

/// Why the Job controller could not create a pod, and whether that will last.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Blocked {
    /// A Pod Security level or an admission policy refuses the pod: it will not change.
    Rejected(String),
    /// Something that may pass (a quota, a service account not there yet): the build waits.
    Waiting(String),
}

/// A `FailedCreate` event's message, classified; its text without the Job controller's
/// prefix and the (random) pod name.
pub fn blocked(message: &str) -> Blocked {
    let m = message.strip_prefix("Error creating: ").unwrap_or(message);
    // `pods "web-1-prepare-x7k2p" is forbidden: ...`
    let detail = match m
        .strip_prefix("pods \"")
        .and_then(|r| r.split_once("\" is forbidden: "))
    {
        Some((_, rest)) => rest,
        None => m,
    };
    let policy = detail.starts_with("violates PodSecurity ")
        || (detail.contains("admission webhook") && detail.contains("denied the request"))
        || (detail.starts_with("ValidatingAdmissionPolicy") && detail.contains("denied request"));
    if policy {
        Blocked::Rejected(detail.to_string())
    } else {
        Blocked::Waiting(detail.to_string())
    }
}

/// The container whose result counts, and how it ended: an init container that failed (the
/// prepare pod's `fetch`: the main container never ran), else the step's own container, the
/// first of the spec (a stage pod's others only pull images ahead: `render::pull_ahead`).
pub fn finished_container(pod: &Pod) -> (Option<String>, Option<ContainerStateTerminated>) {
    let status = pod.status.as_ref();
    let terminated = |c: &ContainerStatus| c.state.as_ref()?.terminated.clone();
    let failed_init = status
        .and_then(|s| s.init_container_statuses.as_ref())
        .into_iter()
        .flatten()
        .find_map(|c| terminated(c).filter(|t| t.exit_code != 0).map(|t| (c, t)));
    if let Some((c, t)) = failed_init {
        return (Some(c.name.clone()), Some(t));
    }
    let main = pod
        .spec
        .as_ref()
        .and_then(|s| s.containers.first())
        .map(|c| c.name.clone());
    let ended = status
        .and_then(|s| s.container_statuses.as_ref())
        .into_iter()
        .flatten()
        .filter(|c| main.as_ref().is_none_or(|m| *m == c.name))
        .find_map(terminated);
    (main, ended)
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{PodCondition, PodStatus};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
    use k8s_openapi::jiff::Timestamp;

    pub fn at(t: i64) -> Time {
        Time(Timestamp::from_second(t).expect("time"))
    }

    pub fn pod(created: i64, phase: &str, disrupted: bool, reason: Option<&str>) -> Pod {
        Pod {
            metadata: ObjectMeta {
                creation_timestamp: Some(at(created)),
                ..Default::default()
            },
            spec: None,
            status: Some(PodStatus {
                phase: Some(phase.into()),
                reason: reason.map(String::from),
                message: reason.map(|_| {
                    format!("The node was low on resource: ephemeral-storage ({created}).")
                }),
                conditions: disrupted.then(|| {
                    vec![PodCondition {
                        type_: "DisruptionTarget".into(),
                        status: "True".into(),
                        reason: Some("TerminationByKubelet".into()),
                        ..Default::default()
                    }]
                }),
                ..Default::default()
            }),
        }
    }

    #[test]
    fn disrupted_pods_are_counted_and_the_last_one_named() {
        let a = pod(10, "Failed", true, Some("Evicted"));
        let b = pod(30, "Failed", true, Some("Evicted"));
        let c = pod(20, "Failed", true, None);
        let running = pod(40, "Running", false, None);
        let failed = pod(5, "Failed", false, None);
        let s = seen(&[&b, &a, &c, &running, &failed]);
        assert_eq!(s.disrupted, 3);
        assert!(!s.none);
        assert_eq!(
            s.last_disruption.as_deref(),
            Some("Evicted: The node was low on resource: ephemeral-storage (30).")
        );
        assert_eq!(
            seen(&[&c]).last_disruption.as_deref(),
            Some("TerminationByKubelet")
        );
        let none = seen(&[]);
        assert!(none.none && none.disrupted == 0);
    }

    #[test]
    fn a_succeeded_pod_says_when_its_last_container_finished() {
        use k8s_openapi::api::core::v1::{
            ContainerState, ContainerStateTerminated, ContainerStatus,
        };
        let done = |t: i64| ContainerStatus {
            state: Some(ContainerState {
                terminated: Some(ContainerStateTerminated {
                    finished_at: Some(at(t)),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        };
        let mut ok = pod(10, "Succeeded", false, None);
        ok.status.as_mut().expect("status").container_statuses = Some(vec![done(14), done(17)]);
        assert_eq!(seen(&[&ok]).succeeded, Some(at(17)));
        // No container status yet: its creation stands in.
        assert_eq!(
            seen(&[&pod(10, "Succeeded", false, None)]).succeeded,
            Some(at(10))
        );
        // Running, or failed with every container exited: not done.
        let mut failed = pod(10, "Failed", false, None);
        failed.status.as_mut().expect("status").container_statuses = Some(vec![done(12)]);
        let running = pod(11, "Running", false, None);
        assert_eq!(seen(&[&failed, &running]).succeeded, None);
    }

    #[test]
    fn a_pod_whose_containers_all_exited_zero_is_done_before_its_phase_says_so() {
        use k8s_openapi::api::core::v1::{
            Container, ContainerState, ContainerStateRunning, ContainerStateTerminated,
            ContainerStatus, PodSpec,
        };
        let status = |name: &str, exit: Option<i32>| ContainerStatus {
            name: name.into(),
            state: Some(ContainerState {
                terminated: exit.map(|exit_code| ContainerStateTerminated {
                    exit_code,
                    finished_at: Some(at(20)),
                    ..Default::default()
                }),
                running: exit.is_none().then(ContainerStateRunning::default),
                ..Default::default()
            }),
            ..Default::default()
        };
        let running = |restart: &str, names: &[&str], st: Vec<ContainerStatus>| {
            let mut p = pod(10, "Running", false, None);
            p.spec = Some(PodSpec {
                restart_policy: Some(restart.into()),
                containers: names
                    .iter()
                    .map(|n| Container {
                        name: n.to_string(),
                        ..Default::default()
                    })
                    .collect(),
                ..Default::default()
            });
            p.status.as_mut().expect("status").container_statuses = Some(st);
            p
        };
        let done = running("Never", &["stage"], vec![status("stage", Some(0))]);
        assert_eq!(seen(&[&done]).succeeded, Some(at(20)));
        // Not yet: one exited 1, one still runs, one has no status, or it may restart.
        for p in [
            running("Never", &["stage"], vec![status("stage", Some(1))]),
            running("Never", &["stage"], vec![status("stage", None)]),
            running("Never", &["a", "b"], vec![status("a", Some(0))]),
            running(
                "Never",
                &["a", "b"],
                vec![status("a", Some(0)), status("b", None)],
            ),
            running("OnFailure", &["stage"], vec![status("stage", Some(0))]),
            running("Never", &[], vec![]),
        ] {
            assert_eq!(seen(&[&p]).succeeded, None, "{:?}", p.status);
        }
        let mut failed = done.clone();
        failed.status.as_mut().expect("status").phase = Some("Failed".into());
        assert_eq!(seen(&[&failed]).succeeded, None);
    }

    #[test]
    fn a_container_the_kubelet_cannot_pull_for_is_named_with_its_image() {
        use k8s_openapi::api::core::v1::{ContainerState, ContainerStateWaiting};
        let waiting = |name: &str, reason: &str, message: Option<&str>| ContainerStatus {
            name: name.into(),
            image: format!("reg:5000/{name}@sha256:ab"),
            state: Some(ContainerState {
                waiting: Some(ContainerStateWaiting {
                    reason: Some(reason.into()),
                    message: message.map(String::from),
                }),
                ..Default::default()
            }),
            ..Default::default()
        };
        let with = |phase: &str, init: Vec<ContainerStatus>, main: Vec<ContainerStatus>| {
            let mut p = pod(10, phase, false, None);
            let s = p.status.as_mut().expect("status");
            s.init_container_statuses = Some(init);
            s.container_statuses = Some(main);
            p
        };
        let backoff =
            "Back-off pulling image \"reg:5000/pull-ahead-0@sha256:ab\": ErrImagePull: not found";
        let p = with(
            "Running",
            vec![],
            vec![
                waiting("stage", "PodInitializing", None),
                waiting("pull-ahead-0", "ImagePullBackOff", Some(backoff)),
            ],
        );
        assert_eq!(
            seen(&[&p]).pull_failed,
            Some(PullFailed {
                container: "pull-ahead-0".into(),
                image: "reg:5000/pull-ahead-0@sha256:ab".into(),
                why: format!("ImagePullBackOff: {backoff}"),
            })
        );
        // An init container comes first; a reason without a message is the reason.
        let p = with(
            "Pending",
            vec![waiting("engine", "InvalidImageName", Some(""))],
            vec![waiting("stage", "ErrImageNeverPull", None)],
        );
        let f = seen(&[&p]).pull_failed.expect("failed");
        assert_eq!(
            (f.container.as_str(), f.why.as_str()),
            ("engine", "InvalidImageName")
        );
        // Not yet: a first failed pull (the kubelet tries again), a container being created,
        // or a pod that has ended.
        for p in [
            with(
                "Pending",
                vec![],
                vec![waiting("stage", "ErrImagePull", Some("x"))],
            ),
            with(
                "Pending",
                vec![],
                vec![waiting("stage", "ContainerCreating", None)],
            ),
            with(
                "Failed",
                vec![],
                vec![waiting("stage", "ImagePullBackOff", None)],
            ),
            with(
                "Succeeded",
                vec![],
                vec![waiting("p", "ImagePullBackOff", None)],
            ),
        ] {
            assert_eq!(seen(&[&p]).pull_failed, None, "{:?}", p.status);
        }
    }

    #[test]
    fn policies_reject_and_the_rest_waits() {
        let psa = "Error creating: pods \"web-1-prepare-x7k2p\" is forbidden: violates PodSecurity \"restricted:latest\": allowPrivilegeEscalation != false (container \"prepare\" must set securityContext.allowPrivilegeEscalation=false), runAsNonRoot != true (pod or container \"prepare\" must set securityContext.runAsNonRoot=true)";
        assert_eq!(
            blocked(psa),
            Blocked::Rejected(
                "violates PodSecurity \"restricted:latest\": allowPrivilegeEscalation != false (container \"prepare\" must set securityContext.allowPrivilegeEscalation=false), runAsNonRoot != true (pod or container \"prepare\" must set securityContext.runAsNonRoot=true)".into()
            )
        );
        let webhook = "Error creating: admission webhook \"validate.kyverno.svc\" denied the request: no root";
        assert!(
            matches!(blocked(webhook), Blocked::Rejected(d) if d.starts_with("admission webhook"))
        );
        let vap = "Error creating: pods \"x-1-push-abcde\" is forbidden: ValidatingAdmissionPolicy 'no-root' with binding 'b' denied request: root";
        assert!(
            matches!(blocked(vap), Blocked::Rejected(d) if d.starts_with("ValidatingAdmissionPolicy"))
        );
        let quota = "Error creating: pods \"x-1-push-abcde\" is forbidden: exceeded quota: q, requested: pods=1, used: pods=10, limited: pods=10";
        assert_eq!(
            blocked(quota),
            Blocked::Waiting(
                "exceeded quota: q, requested: pods=1, used: pods=10, limited: pods=10".into()
            )
        );
        let sa = "Error creating: pods \"x\" is forbidden: error looking up service account ns/default: serviceaccount \"default\" not found";
        assert!(matches!(blocked(sa), Blocked::Waiting(_)));
    }

    #[test]
    fn a_pod_bound_to_a_node_and_not_failed_is_scheduled() {
        let on_node = |phase: &str| {
            let mut p = pod(10, phase, false, None);
            p.spec = Some(k8s_openapi::api::core::v1::PodSpec {
                node_name: Some("n1".into()),
                ..Default::default()
            });
            p
        };
        assert!(!seen(&[]).scheduled);
        assert!(
            !seen(&[&pod(10, "Pending", false, None)]).scheduled,
            "unbound"
        );
        assert!(seen(&[&on_node("Pending")]).scheduled);
        assert!(seen(&[&on_node("Running")]).scheduled);
        assert!(!seen(&[&on_node("Failed")]).scheduled);
        let mut going = on_node("Running");
        going.metadata.deletion_timestamp = Some(at(20));
        assert!(!seen(&[&going]).scheduled, "being deleted");
        assert!(seen(&[&on_node("Failed"), &on_node("Running")]).scheduled);
    }

    #[test]
    fn the_newest_failed_create_event_counts() {
        let ev = |t: i64, reason: &str, msg: &str| Event {
            reason: Some(reason.into()),
            message: Some(msg.into()),
            last_timestamp: Some(at(t)),
            ..Default::default()
        };
        let events = [
            ev(10, "FailedCreate", "old"),
            ev(30, "SuccessfulCreate", "created"),
            ev(20, "FailedCreate", "new"),
        ];
        assert_eq!(last_failed_create(&events).as_deref(), Some("new"));
        assert_eq!(last_failed_create(&events[1..2]), None);
    }

    #[test]
    fn a_failed_init_container_holds_the_result() {
        use k8s_openapi::api::core::v1::{ContainerState, PodStatus};
        let status = |name: &str, exit: Option<i32>, message: &str| ContainerStatus {
            name: name.into(),
            state: Some(ContainerState {
                terminated: exit.map(|exit_code| ContainerStateTerminated {
                    exit_code,
                    message: Some(message.into()),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        };
        let pod = |init: ContainerStatus, main: ContainerStatus| Pod {
            status: Some(PodStatus {
                init_container_statuses: Some(vec![init]),
                container_statuses: Some(vec![main]),
                ..Default::default()
            }),
            ..Default::default()
        };
        // fetch failed: plan never ran.
        let (c, t) = finished_container(&pod(
            status("fetch", Some(1), "fetch's result"),
            status("plan", None, ""),
        ));
        assert_eq!(c.as_deref(), Some("fetch"));
        assert_eq!(t.and_then(|t| t.message).as_deref(), Some("fetch's result"));
        // fetch done: the graph is the main container's.
        let (c, t) = finished_container(&pod(
            status("fetch", Some(0), ""),
            status("plan", Some(0), "the graph"),
        ));
        assert_eq!(c, None);
        assert_eq!(t.and_then(|t| t.message).as_deref(), Some("the graph"));
        // A stage pod that pulled an image ahead: its stage container's result, and its log,
        // whatever order the kubelet lists the statuses in.
        let mut p = pod(
            status("engine", Some(0), ""),
            status("pull-ahead-0", Some(0), ""),
        );
        if let Some(st) = p
            .status
            .as_mut()
            .and_then(|s| s.container_statuses.as_mut())
        {
            st.push(status("stage", Some(0), "the stage's result"));
        }
        p.spec = Some(k8s_openapi::api::core::v1::PodSpec {
            containers: ["stage", "pull-ahead-0"]
                .map(|name| k8s_openapi::api::core::v1::Container {
                    name: name.into(),
                    ..Default::default()
                })
                .to_vec(),
            ..Default::default()
        });
        let (c, t) = finished_container(&p);
        assert_eq!(c.as_deref(), Some("stage"));
        assert_eq!(
            t.and_then(|t| t.message).as_deref(),
            Some("the stage's result")
        );
    }
}
