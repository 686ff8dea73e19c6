//! Tests of the prepare Job: which container holds what, and Pod Security "restricted".

use k8s_openapi::api::core::v1::{LocalObjectReference, PodSpec};

use super::*;
use crate::api::{GitSource, InlineSource, Source};
use crate::reconcile::fixtures::{build, settings};

fn pod_of(j: Job) -> PodSpec {
    j.spec.and_then(|s| s.template.spec).expect("pod")
}

fn git_build() -> ImageBuild {
    let mut ib = build();
    ib.spec.source = Source {
        git: Some(GitSource {
            url: "https://git.example/team/app.git".into(),
            revision: Some("v1".into()),
            context_dir: None,
            secret_ref: Some(LocalObjectReference {
                name: "git-token".into(),
            }),
        }),
        ..Default::default()
    };
    ib.spec.pull_secrets = vec![LocalObjectReference {
        name: "pull".into(),
    }];
    ib
}

fn mounts(c: &Container) -> Vec<String> {
    c.volume_mounts
        .iter()
        .flatten()
        .map(|m| m.name.clone())
        .collect()
}

/// The checks of the Pod Security Standards' "restricted" profile (v1.36) that a pod spec
/// can fail: every container, init containers too.
fn restricted_violations(pod: &PodSpec) -> Vec<String> {
    let mut out = Vec::new();
    let psc = pod.security_context.clone().unwrap_or_default();
    let seccomp_ok = |t: Option<&str>| matches!(t, Some("RuntimeDefault" | "Localhost"));
    let pod_seccomp = psc.seccomp_profile.as_ref().map(|p| p.type_.as_str());
    if psc.run_as_user == Some(0) {
        out.push("pod runAsUser 0".into());
    }
    for c in pod.init_containers.iter().flatten().chain(&pod.containers) {
        let sc = c.security_context.clone().unwrap_or_default();
        if sc.allow_privilege_escalation != Some(false) {
            out.push(format!("{}: allowPrivilegeEscalation", c.name));
        }
        let caps = sc.capabilities.clone().unwrap_or_default();
        if !caps.drop.iter().flatten().any(|d| d == "ALL") {
            out.push(format!("{}: capabilities.drop ALL", c.name));
        }
        if caps.add.iter().flatten().any(|a| a != "NET_BIND_SERVICE") {
            out.push(format!("{}: capabilities.add", c.name));
        }
        if sc.run_as_non_root.or(psc.run_as_non_root) != Some(true) {
            out.push(format!("{}: runAsNonRoot", c.name));
        }
        if sc.run_as_user == Some(0) {
            out.push(format!("{}: runAsUser 0", c.name));
        }
        let seccomp = sc.seccomp_profile.as_ref().map(|p| p.type_.as_str());
        if !seccomp_ok(seccomp.or(pod_seccomp)) {
            out.push(format!("{}: seccompProfile", c.name));
        }
        if sc.privileged == Some(true) {
            out.push(format!("{}: privileged", c.name));
        }
    }
    for v in pod.volumes.iter().flatten() {
        let allowed = v.config_map.is_some()
            || v.secret.is_some()
            || v.projected.is_some()
            || v.persistent_volume_claim.is_some()
            || v.empty_dir.is_some()
            || v.downward_api.is_some()
            || v.csi.is_some()
            || v.ephemeral.is_some();
        if !allowed {
            out.push(format!("volume {}", v.name));
        }
    }
    if pod.host_network == Some(true) || pod.host_pid == Some(true) || pod.host_ipc == Some(true) {
        out.push("host namespaces".into());
    }
    out
}

#[test]
fn the_prepare_pod_passes_pod_security_restricted() {
    for ib in [build(), git_build()] {
        let pod = pod_of(prepare_job(&ib, &settings(), &Deadline(None)).expect("job"));
        assert_eq!(restricted_violations(&pod), Vec::<String>::new());
        let psc = pod.security_context.clone().expect("pod context");
        assert_eq!(psc.run_as_user, Some(65532));
        assert_eq!(psc.run_as_group, Some(65532));
        assert_eq!(psc.fs_group, Some(65532));
        for c in pod.init_containers.iter().flatten().chain(&pod.containers) {
            let sc = c.security_context.clone().expect("container context");
            assert_eq!(sc.read_only_root_filesystem, Some(true), "{}", c.name);
        }
        assert_eq!(pod.automount_service_account_token, Some(false));
    }
    // The check itself catches a root pod.
    let mut pod = pod_of(prepare_job(&build(), &settings(), &Deadline(None)).expect("job"));
    pod.security_context = None;
    pod.containers[0].security_context = None;
    assert!(!restricted_violations(&pod).is_empty());
}

#[test]
fn git_credentials_reach_the_fetch_container_only() {
    let pod = pod_of(prepare_job(&git_build(), &settings(), &Deadline(None)).expect("job"));
    let init = pod.init_containers.clone().expect("init");
    assert_eq!(init.len(), 1);
    let (fetch, plan) = (&init[0], &pod.containers[0]);
    assert_eq!((fetch.name.as_str(), plan.name.as_str()), ("fetch", "plan"));
    assert_eq!(pod.containers.len(), 1);
    assert_eq!(mounts(fetch), ["workspace", "git-auth"]);
    assert_eq!(mounts(plan), ["workspace", "pull-auth"]);
    let fetch_args = fetch.args.clone().expect("args");
    let plan_args = plan.args.clone().expect("args");
    assert_eq!(fetch_args[0], "fetch");
    assert_eq!(plan_args[0], "resolve");
    assert!(
        fetch_args
            .windows(2)
            .any(|w| w == ["--git-auth-dir", paths::GIT_AUTH])
    );
    assert!(!plan_args.iter().any(|a| a.contains("git")));
    // Only the keys the fetch step reads, and a missing Secret is no stuck pod.
    let vols = pod.volumes.clone().expect("volumes");
    let git = vols
        .iter()
        .find(|v| v.name == "git-auth")
        .and_then(|v| v.secret.clone())
        .expect("git secret");
    assert_eq!(git.secret_name.as_deref(), Some("git-token"));
    assert_eq!(git.optional, Some(true));
    let keys: Vec<String> = git.items.iter().flatten().map(|i| i.key.clone()).collect();
    assert_eq!(keys, ["username", "password", "token"]);
    // So is the pod UID its result line is signed with (early.rs): git runs in the fetch
    // container, which never needs it.
    let token = |c: &Container| {
        c.env
            .iter()
            .flatten()
            .any(|e| e.name == slipway_contract::result::RESULT_TOKEN_ENV)
    };
    assert!(token(plan) && !token(fetch));
    // The pull secrets' environment is the plan container's only.
    assert!(
        fetch
            .env
            .iter()
            .flatten()
            .all(|e| e.name != pod::env::AUTH_DIR)
    );
    assert!(
        plan.env
            .iter()
            .flatten()
            .any(|e| e.name == pod::env::AUTH_DIR)
    );
}

/// A source without a credential of its own: one container fetches and plans (no init
/// container to wait for), with the inline source, the size limit and the plan's flags.
#[test]
fn a_source_without_credentials_is_fetched_and_planned_by_one_container() {
    let mut ib = build();
    ib.spec.source.inline = Some(InlineSource {
        dockerfile: "FROM scratch\n".into(),
        files: Default::default(),
    });
    ib.spec.pull_secrets = vec![LocalObjectReference {
        name: "pull".into(),
    }];
    let mut s = settings();
    s.size_limit = slipway_contract::size::Size(256 << 20);
    let pod = pod_of(prepare_job(&ib, &s, &Deadline(None)).expect("job"));
    assert!(pod.init_containers.is_none());
    assert_eq!(pod.containers.len(), 1);
    let plan = &pod.containers[0];
    assert_eq!(plan.name, PLAN_CONTAINER);
    assert!(
        plan.env
            .iter()
            .flatten()
            .any(|e| e.name == pod::env::INLINE_SOURCE)
    );
    assert_eq!(mounts(plan), ["workspace", "pull-auth"]);
    let args = plan.args.clone().expect("args");
    assert_eq!(args[0], "prepare");
    assert!(args.windows(2).any(|w| w == ["--size-limit", "256Mi"]));
    assert!(args.iter().any(|a| a == "--inline"));
    assert_eq!(restricted_violations(&pod), Vec::<String>::new());
    // git without a Secret: the same; with one, the fetch container apart (below).
    let mut ib = git_build();
    if let Some(g) = ib.spec.source.git.as_mut() {
        g.secret_ref = None;
    }
    let pod = pod_of(prepare_job(&ib, &settings(), &Deadline(None)).expect("job"));
    assert!(pod.init_containers.is_none());
    let args = pod.containers[0].args.clone().expect("args");
    assert_eq!(args[0], "prepare");
    assert!(
        args.windows(2)
            .any(|w| w == ["--git-url", "https://git.example/team/app.git"]),
        "{args:?}"
    );
}

fn oci_build(image: &str) -> ImageBuild {
    let mut ib = build();
    ib.spec.source = Source {
        oci: Some(crate::api::OciSource {
            image: image.into(),
            digest: format!("sha256:{}", "d".repeat(64)),
        }),
        ..Default::default()
    };
    ib.spec.pull_secrets = vec![LocalObjectReference {
        name: "pull".into(),
    }];
    ib
}

/// An OCI source is pulled by the fetch container: it gets the source's flags, the pull
/// secrets (the plan container's one volume, mounted into both) and, on the output registry
/// marked insecure, plain HTTP for that registry; the plan container's flags do not change.
#[test]
fn an_oci_source_is_pulled_by_the_fetch_container_with_the_pull_secrets() {
    let pod = pod_of(
        prepare_job(
            &oci_build("reg:5000/team/web-context"),
            &settings(),
            &Deadline(None),
        )
        .expect("job"),
    );
    let fetch = &pod.init_containers.as_ref().expect("init")[0];
    let plan = &pod.containers[0];
    assert_eq!(mounts(fetch), ["workspace", "pull-auth"]);
    assert_eq!(mounts(plan), ["workspace", "pull-auth"]);
    let vols = pod.volumes.clone().expect("volumes");
    assert_eq!(
        vols.iter().filter(|v| v.name == "pull-auth").count(),
        1,
        "one volume"
    );
    assert!(
        fetch
            .env
            .iter()
            .flatten()
            .any(|e| e.name == pod::env::AUTH_DIR && e.value.as_deref() == Some(paths::PULL_AUTH))
    );
    let args = fetch.args.clone().expect("args");
    let digest = format!("sha256:{}", "d".repeat(64));
    assert!(
        args.windows(2)
            .any(|w| w == ["--oci-image", "reg:5000/team/web-context"])
    );
    assert!(
        args.windows(2)
            .any(|w| w == ["--oci-digest", digest.as_str()])
    );
    assert!(
        args.windows(2)
            .any(|w| w == ["--insecure-registry", "reg:5000"])
    );
    let plan_args = plan.args.clone().expect("args");
    assert!(!plan_args.iter().any(|a| a.starts_with("--oci")));
    assert!(!plan_args.iter().any(|a| a == "--insecure-registry"));
    assert_eq!(restricted_violations(&pod), Vec::<String>::new());

    // Another registry than the output's is not spoken to over plain HTTP for it.
    let pod = pod_of(
        prepare_job(
            &oci_build("other.example/team/web-context"),
            &settings(),
            &Deadline(None),
        )
        .expect("job"),
    );
    let args = pod.init_containers.as_ref().expect("init")[0]
        .args
        .clone()
        .expect("args");
    assert!(!args.iter().any(|a| a == "--insecure-registry"));
}
