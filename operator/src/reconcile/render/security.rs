//! How each step's pod is confined (M3). The push pod (credentials, untrusted workspace data,
//! nothing of the user's runs in it) meets Pod Security "restricted": uid 65532, no
//! capabilities, no privilege escalation, a read-only root filesystem, the runtime's seccomp
//! profile. A stage pod runs the user's RUN steps as root in the stage's base image, as
//! BuildKit does: it meets "baseline", with the runtime's seccomp profile and without NET_RAW;
//! its init container, which only copies the engine, is "restricted".
//!
//! The prepare pod (the source's credentials, untrusted context files) is "restricted" too: it
//! writes the workspace as uid 65532 through its fsGroup. A pod spec that carries a security
//! context keeps it ([`pod_context`] is only the default of a step).

use k8s_openapi::api::core::v1::{
    Capabilities, EnvVar, EnvVarSource, ObjectFieldSelector, PodSecurityContext, SeccompProfile,
    SecurityContext,
};
use slipway_contract::result::RESULT_TOKEN_ENV;

use super::Step;

/// The uid and gid of the restricted pods and containers (distroless's `nonroot`).
pub const NON_ROOT: i64 = 65532;

fn runtime_default() -> Option<SeccompProfile> {
    Some(SeccompProfile {
        type_: "RuntimeDefault".into(),
        localhost_profile: None,
    })
}

/// The pod-level security context a step's pod gets when its spec does not set one.
pub fn pod_context(step: &Step) -> PodSecurityContext {
    match step {
        Step::Prepare | Step::Push => restricted_pod(),
        Step::Stage(..) => stage_pod(),
    }
}

/// uid 0 whatever the image's USER (the engine switches to USER for RUN).
fn root_pod() -> PodSecurityContext {
    PodSecurityContext {
        run_as_user: Some(0),
        run_as_group: Some(0),
        run_as_non_root: Some(false),
        ..Default::default()
    }
}

/// A stage pod: root (RUN steps switch to USER themselves, chroot, chown, mknod), with the
/// container runtime's seccomp profile, which allows all of that.
fn stage_pod() -> PodSecurityContext {
    PodSecurityContext {
        seccomp_profile: runtime_default(),
        ..root_pod()
    }
}

/// A pod that meets Pod Security "restricted".
fn restricted_pod() -> PodSecurityContext {
    PodSecurityContext {
        run_as_non_root: Some(true),
        run_as_user: Some(NON_ROOT),
        run_as_group: Some(NON_ROOT),
        fs_group: Some(NON_ROOT),
        // Volumes that take an fsGroup are chowned on their first mount by such a pod only.
        fs_group_change_policy: Some("OnRootMismatch".into()),
        // Volumes that do not (the in-tree hostPath provisioner makes them 0750 root:root):
        // group 0 reads the workspace there. It grants nothing else: the group is not a
        // capability, and the container's root filesystem is read-only.
        supplemental_groups: Some(vec![0]),
        seccomp_profile: runtime_default(),
        ..Default::default()
    }
}

/// A container that meets "restricted" (with its pod's user, or its own: `own_user`).
pub fn restricted_container(own_user: bool) -> SecurityContext {
    SecurityContext {
        allow_privilege_escalation: Some(false),
        read_only_root_filesystem: Some(true),
        capabilities: Some(Capabilities {
            drop: Some(vec!["ALL".into()]),
            add: None,
        }),
        run_as_non_root: Some(true),
        run_as_user: own_user.then_some(NON_ROOT),
        run_as_group: own_user.then_some(NON_ROOT),
        seccomp_profile: runtime_default(),
        ..Default::default()
    }
}

/// A stage container: the runtime's default capabilities but NET_RAW, so that a RUN step
/// cannot forge packets on the pod network (ARP, raw IP). RUN steps that open raw sockets
/// (`ping` without the unprivileged ICMP sockets the runtime may allow, `arping`,
/// `tcpdump`) fail; BuildKit keeps NET_RAW, Docker's default set. Privilege escalation is
/// left allowed: a RUN after `USER app` may use `su` or `sudo` (setuid binaries), as with
/// BuildKit, and the stage container is root already.
pub fn stage_container() -> SecurityContext {
    SecurityContext {
        capabilities: Some(Capabilities {
            drop: Some(vec!["NET_RAW".into()]),
            add: None,
        }),
        ..Default::default()
    }
}

#[cfg(test)]
pub mod psa {
    //! The Pod Security Standards' checks, as Kubernetes' pod-security-admission applies them
    //! (baseline and restricted, latest), for the fields build pods set: a pure checker for
    //! the render tests. It returns the violations, named like the admission's messages.

    use k8s_openapi::api::core::v1::{Container, PodSpec};

    /// The capabilities "baseline" lets a container add.
    const BASELINE_CAPS: [&str; 13] = [
        "AUDIT_WRITE",
        "CHOWN",
        "DAC_OVERRIDE",
        "FOWNER",
        "FSETID",
        "KILL",
        "MKNOD",
        "NET_BIND_SERVICE",
        "SETFCAP",
        "SETGID",
        "SETPCAP",
        "SETUID",
        "SYS_CHROOT",
    ];
    /// The volume types "restricted" allows.
    fn restricted_volume(v: &k8s_openapi::api::core::v1::Volume) -> bool {
        v.config_map.is_some()
            || v.csi.is_some()
            || v.downward_api.is_some()
            || v.empty_dir.is_some()
            || v.ephemeral.is_some()
            || v.persistent_volume_claim.is_some()
            || v.projected.is_some()
            || v.secret.is_some()
    }

    fn containers(p: &PodSpec) -> impl Iterator<Item = &Container> {
        p.init_containers.iter().flatten().chain(&p.containers)
    }

    pub fn baseline(p: &PodSpec) -> Vec<String> {
        let mut v = Vec::new();
        if p.host_network == Some(true) || p.host_pid == Some(true) || p.host_ipc == Some(true) {
            v.push("host namespaces".to_string());
        }
        if p.volumes.iter().flatten().any(|v| v.host_path.is_some()) {
            v.push("hostPath volumes".into());
        }
        let pod = p.security_context.clone().unwrap_or_default();
        let unconfined = |t: &Option<k8s_openapi::api::core::v1::SeccompProfile>| {
            t.as_ref().is_some_and(|s| s.type_ == "Unconfined")
        };
        if unconfined(&pod.seccomp_profile) {
            v.push("seccompProfile: pod Unconfined".into());
        }
        for c in containers(p) {
            let sc = c.security_context.clone().unwrap_or_default();
            if sc.privileged == Some(true) {
                v.push(format!("privileged: {}", c.name));
            }
            if sc
                .capabilities
                .as_ref()
                .and_then(|k| k.add.as_ref())
                .is_some_and(|add| add.iter().any(|a| !BASELINE_CAPS.contains(&a.as_str())))
            {
                v.push(format!("non-default capabilities: {}", c.name));
            }
            if unconfined(&sc.seccomp_profile) {
                v.push(format!("seccompProfile: {} Unconfined", c.name));
            }
            if sc.proc_mount.as_deref().is_some_and(|m| m != "Default") {
                v.push(format!("procMount: {}", c.name));
            }
            if c.ports
                .iter()
                .flatten()
                .any(|p| p.host_port.is_some_and(|h| h != 0))
            {
                v.push(format!("hostPort: {}", c.name));
            }
        }
        v
    }

    pub fn restricted(p: &PodSpec) -> Vec<String> {
        let mut v = baseline(p);
        if p.volumes
            .iter()
            .flatten()
            .any(|vol| !restricted_volume(vol))
        {
            v.push("restricted volume types".into());
        }
        let pod = p.security_context.clone().unwrap_or_default();
        if pod.run_as_non_root == Some(false) {
            v.push("runAsNonRoot != true: pod".into());
        }
        if pod.run_as_user == Some(0) {
            v.push("runAsUser=0: pod".into());
        }
        let pod_seccomp = pod.seccomp_profile.is_some();
        for c in containers(p) {
            let sc = c.security_context.clone().unwrap_or_default();
            let name = &c.name;
            if sc.allow_privilege_escalation != Some(false) {
                v.push(format!("allowPrivilegeEscalation != false: {name}"));
            }
            match sc.run_as_non_root {
                Some(false) => v.push(format!("runAsNonRoot != true: {name}")),
                None if pod.run_as_non_root != Some(true) => {
                    v.push(format!("runAsNonRoot != true: {name}"))
                }
                _ => {}
            }
            if sc.run_as_user == Some(0) {
                v.push(format!("runAsUser=0: {name}"));
            }
            if sc.seccomp_profile.is_none() && !pod_seccomp {
                v.push(format!("seccompProfile: {name} not set"));
            }
            let caps = sc.capabilities.clone().unwrap_or_default();
            if !caps.drop.iter().flatten().any(|d| d == "ALL") {
                v.push(format!(
                    "unrestricted capabilities: {name} does not drop ALL"
                ));
            }
            if caps.add.iter().flatten().any(|a| a != "NET_BIND_SERVICE") {
                v.push(format!("unrestricted capabilities: {name} adds some"));
            }
        }
        v
    }
}

/// The pod's UID in [`RESULT_TOKEN_ENV`]: the prepare and push pods sign their result line
/// with it, so the controller acts on it as it is printed, not a kubelet relist (up to a
/// second) after the pod ended. Only for pods that run nothing but the builder.
pub(super) fn result_token() -> EnvVar {
    EnvVar {
        name: RESULT_TOKEN_ENV.into(),
        value_from: Some(EnvVarSource {
            field_ref: Some(ObjectFieldSelector {
                field_path: "metadata.uid".into(),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::super::Deadline;
    use super::super::jobs::{Given, push_job, stage_job};
    use super::super::prepare::prepare_job;
    use super::psa;
    use crate::reconcile::fixtures::{build, digest, settings};
    use crate::reconcile::validate;
    use k8s_openapi::api::core::v1::PodSpec;
    use slipway_contract::graph::StageJob;
    use slipway_contract::pod::{Digests, paths};

    fn pod(j: k8s_openapi::api::batch::v1::Job) -> PodSpec {
        j.spec.and_then(|s| s.template.spec).expect("pod")
    }

    fn stage_pod() -> PodSpec {
        let sj = StageJob {
            stages: vec![0],
            names: vec![Some("build".into())],
            needs: vec![],
            image: Some("reg:5000/golang@sha256:ab".into()),
            secrets: vec!["tok".into()],
            cache_mounts: true,
            ..Default::default()
        };
        pod(stage_job(
            &build(),
            &settings(),
            0,
            &sj,
            Some("n"),
            &Deadline(None),
            Given {
                pulls_ahead: vec!["reg:5000/busybox@sha256:cd".into()],
                ..Digests::new(digest('a')).into()
            },
        ))
    }

    fn push_pod() -> PodSpec {
        let ib = build();
        let target = validate::push_target(&ib.spec.output).expect("a reference");
        pod(push_job(
            &ib,
            &settings(),
            &target,
            None,
            &Deadline(None),
            Digests::new(digest('a')).into(),
        ))
    }

    #[test]
    fn the_push_pod_meets_restricted_with_a_read_only_workspace() {
        let p = push_pod();
        assert_eq!(psa::restricted(&p), Vec::<String>::new());
        let c = &p.containers[0];
        let sc = c.security_context.clone().expect("context");
        assert_eq!(sc.read_only_root_filesystem, Some(true));
        let pod_sc = p.security_context.clone().expect("pod context");
        assert_eq!(
            (pod_sc.run_as_user, pod_sc.run_as_group, pod_sc.fs_group),
            (Some(65532), Some(65532), Some(65532))
        );
        assert_eq!(pod_sc.run_as_non_root, Some(true));
        let mounts = c.volume_mounts.clone().expect("mounts");
        let ws = mounts
            .iter()
            .find(|m| m.mount_path == paths::WORKSPACE)
            .expect("ws");
        assert_eq!(ws.read_only, Some(true));
        // Its only writable mount is its blob cache, an emptyDir the push step is told of.
        let writable: Vec<&str> = mounts
            .iter()
            .filter(|m| m.read_only != Some(true))
            .map(|m| m.mount_path.as_str())
            .collect();
        assert_eq!(writable, [paths::PUSH_BLOBS]);
        let args = c.args.clone().expect("args");
        assert!(
            args.windows(2)
                .any(|w| w == ["--blob-cache", paths::PUSH_BLOBS])
        );
        let blobs = p
            .volumes
            .iter()
            .flatten()
            .find(|v| v.name == "blobs")
            .expect("blobs");
        assert!(blobs.empty_dir.is_some());
    }

    fn signs(c: &k8s_openapi::api::core::v1::Container) -> bool {
        use slipway_contract::result::RESULT_TOKEN_ENV;
        c.env.iter().flatten().any(|e| {
            e.name == RESULT_TOKEN_ENV
                && e.value.is_none()
                && e.value_from
                    .as_ref()
                    .and_then(|v| v.field_ref.as_ref())
                    .is_some_and(|f| f.field_path == "metadata.uid")
        })
    }

    /// The pod UID that signs a result line (early.rs) reaches the push container, never a
    /// stage pod's (whose RUN steps could read it and print a line the controller believes).
    #[test]
    fn only_the_push_container_gets_the_token_that_signs_its_result() {
        assert!(signs(&push_pod().containers[0]));
        let stage = stage_pod();
        let all = stage
            .containers
            .iter()
            .chain(stage.init_containers.iter().flatten());
        for c in all {
            assert!(
                c.env
                    .iter()
                    .flatten()
                    .all(|e| e.name != slipway_contract::result::RESULT_TOKEN_ENV),
                "{}",
                c.name
            );
        }
    }

    #[test]
    fn stage_pods_meet_baseline_with_seccomp_and_without_net_raw() {
        let p = stage_pod();
        assert_eq!(psa::baseline(&p), Vec::<String>::new());
        // Root, as RUN steps need: "restricted" refuses it (a namespace enforcing it gets
        // PodRejected at once, see decide).
        let v = psa::restricted(&p);
        assert!(v.iter().any(|v| v.starts_with("runAsNonRoot")), "{v:?}");
        assert!(
            v.iter().all(|v| !v.contains("engine")),
            "init is restricted: {v:?}"
        );
        assert!(
            v.iter().all(|v| !v.contains("pull-ahead")),
            "the pull-ahead container is restricted: {v:?}"
        );
        let pod_sc = p.security_context.clone().expect("pod context");
        assert_eq!(
            pod_sc.seccomp_profile.map(|s| s.type_),
            Some("RuntimeDefault".to_string())
        );
        let sc = p.containers[0].security_context.clone().expect("context");
        let caps = sc.capabilities.expect("caps");
        assert_eq!(caps.drop, Some(vec!["NET_RAW".to_string()]));
        assert_eq!(caps.add, None);
        assert_eq!(
            sc.allow_privilege_escalation, None,
            "setuid RUN steps (su, sudo)"
        );
        assert!(
            p.init_containers.is_none(),
            "the engine is in the workspace"
        );
    }

    #[test]
    fn the_prepare_pod_is_restricted() {
        let p = pod(prepare_job(&build(), &settings(), &Deadline(None)).expect("job"));
        assert_eq!(psa::restricted(&p), Vec::<String>::new());
        let sc = p.security_context.expect("context");
        assert_eq!(
            (sc.run_as_user, sc.fs_group),
            (Some(super::NON_ROOT), Some(super::NON_ROOT))
        );
    }

    #[test]
    fn the_checker_finds_what_restricted_refuses() {
        let mut p = push_pod();
        p.containers[0].security_context = None;
        let v = psa::restricted(&p);
        for want in ["allowPrivilegeEscalation", "unrestricted capabilities"] {
            assert!(v.iter().any(|x| x.starts_with(want)), "{want}: {v:?}");
        }
        p.security_context = None;
        let v = psa::restricted(&p);
        assert!(v.iter().any(|x| x.starts_with("runAsNonRoot")), "{v:?}");
        assert!(v.iter().any(|x| x.starts_with("seccompProfile")), "{v:?}");
        let mut sc = p.containers[0].security_context.clone().unwrap_or_default();
        sc.privileged = Some(true);
        p.containers[0].security_context = Some(sc);
        assert!(
            psa::baseline(&p)
                .iter()
                .any(|x| x.starts_with("privileged"))
        );
    }
}
