use http::{Method, StatusCode};
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, PersistentVolumeClaimStatus};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::ResourceExt;
use serde_json::json;

use super::*;
use crate::reconcile::apply::apply;
use crate::reconcile::context::Error;
use crate::reconcile::decide;
use crate::reconcile::fixtures::{self, CLAIMS, Call, JOBS, UID, list, mocked, status, timeout};
use crate::reconcile::observe::Observation;
use crate::reconcile::render::{self, Settings, use_claim};

/// The query of a list of spares.
pub const SPARES: &str = "labelSelector=build.slipway.dev%2Fspare%3Dtrue";

/// Two spares, made by build `web` (`slipway-spare-a`) and by another (`-b`), both bound.
pub fn spares() -> Vec<PersistentVolumeClaim> {
    let made_by = |name: &str, uid: &str| {
        let mut own = fixtures::claim(3, Some(uid));
        own.spec = workspace().spec;
        let mut s = spare_of(&own);
        (s.metadata.name, s.metadata.uid) = (Some(name.into()), Some(format!("uid-of-{name}")));
        s.metadata.resource_version = Some("7".into());
        s.status = Some(PersistentVolumeClaimStatus {
            phase: Some("Bound".into()),
            ..Default::default()
        });
        s
    };
    vec![
        made_by("slipway-spare-a", UID),
        made_by("slipway-spare-b", "uid-other"),
    ]
}

fn workspace() -> PersistentVolumeClaim {
    render::workspace_pvc(&fixtures::build(), &fixtures::settings())
}

#[test]
fn a_spare_is_asked_for_like_the_builds_claim_and_owned_not_controlled_by_it() {
    let own = workspace();
    let s = spare_of(&own);
    assert_eq!(s.metadata.generate_name.as_deref(), Some("slipway-spare-"));
    assert_eq!(s.spec, own.spec);
    assert_eq!(
        s.labels().get(LABEL_SPARE).map(String::as_str),
        Some("true")
    );
    // No build label: observe and expire of the build that made it do not count it as theirs.
    assert!(!s.labels().contains_key(render::LABEL_BUILD));
    assert_eq!(
        s.annotations().get(ANNOTATION_REQUEST).map(String::as_str),
        Some("-/1Gi")
    );
    let o = &s.owner_references()[0];
    assert_eq!((o.uid.as_str(), o.controller), (UID, None));
}

#[test]
fn only_a_spare_asked_for_alike_and_not_going_stands_for_the_claim() {
    let own = workspace();
    let [a, _] = <[_; 2]>::try_from(spares()).expect("two");
    assert!(fits(&a, &own));
    let with = |f: &dyn Fn(&mut PersistentVolumeClaim)| {
        let mut s = a.clone();
        f(&mut s);
        fits(&s, &own)
    };
    let mut bigger = own.clone();
    if let Some(r) = bigger.spec.as_mut().and_then(|s| s.resources.as_mut()) {
        r.requests = Some([("storage".into(), Quantity("2Gi".into()))].into());
    }
    assert!(!fits(&spare_of(&bigger), &own), "another size");
    let class = |c: Option<&str>| {
        let mut claim = own.clone();
        claim.spec.as_mut().expect("spec").storage_class_name = c.map(String::from);
        claim
    };
    assert!(
        !fits(&spare_of(&class(Some("fast"))), &own),
        "another class"
    );
    // No class (static volumes only) is not the default class.
    assert!(!fits(&spare_of(&class(Some(""))), &own), "no class");
    assert!(
        !fits(&a, &class(Some(""))),
        "the default class for no class"
    );
    // The API server fills in the default class: what counts is what was asked for.
    assert!(with(&|s| s
        .spec
        .as_mut()
        .expect("spec")
        .storage_class_name = Some("local".into())));
    assert!(!with(
        &|s| s.metadata.deletion_timestamp = Some(Time(k8s_openapi::jiff::Timestamp::UNIX_EPOCH))
    ));
    assert!(!with(
        &|s| s.status.as_mut().expect("status").phase = Some("Lost".into())
    ));
    // Taken: the build's own claim now, no one else's spare.
    assert!(!fits(&taken(&a, &own), &own));
}

#[test]
fn a_bound_spare_is_taken_first_and_becomes_the_builds_own_claim() {
    let own = workspace();
    let [a, mut b] = <[_; 2]>::try_from(spares()).expect("two");
    b.status = Some(PersistentVolumeClaimStatus {
        phase: Some("Pending".into()),
        ..Default::default()
    });
    let order: Vec<String> = candidates(vec![b.clone(), a.clone()], &own)
        .iter()
        .map(|c| c.name_any())
        .collect();
    assert_eq!(order, ["slipway-spare-a", "slipway-spare-b"]);
    let t = taken(&b, &own);
    assert_eq!(t.metadata.labels, own.metadata.labels);
    assert_eq!(t.metadata.owner_references, own.metadata.owner_references);
    assert_eq!(
        t.metadata.resource_version.as_deref(),
        Some("7"),
        "a conflict if changed since"
    );
    assert!(!t.annotations().contains_key(ANNOTATION_REQUEST));
    // Observe sees it as this generation's claim of the build.
    let build = fixtures::validated(&fixtures::build(), 1_000);
    let (current, superseded) = crate::reconcile::observe::sort(vec![t], &build);
    assert_eq!(current.keys().collect::<Vec<_>>(), ["slipway-spare-b"]);
    assert!(superseded.is_empty());
}

/// A new build's apply, spares kept, against `calls`; the prepare Job it renders.
async fn applied(calls: impl FnOnce(&serde_json::Value) -> Vec<Call>) -> Result<(), Error> {
    let ib = fixtures::build();
    let build = fixtures::validated(&ib, 1_000);
    let seen = Observation::default();
    let d = decide::decide(&seen.observed, &build.limits);
    let s = Settings {
        workspace_spare: true,
        ..fixtures::settings()
    };
    let objects = render::render(&ib, &s, &build, &seen, &d).expect("renders");
    let prepare = serde_json::to_value(&objects.jobs[0]).expect("json");
    let (apis, server) = mocked();
    let calls = server.run(calls(&prepare));
    let r = apply(&apis, &ib, &build, &seen, &d, objects).await;
    timeout(calls).await;
    r
}

fn mounting(prepare: &serde_json::Value, claim: &str) -> serde_json::Value {
    let mut job: k8s_openapi::api::batch::v1::Job =
        serde_json::from_value(prepare.clone()).expect("job");
    use_claim(&mut job, claim);
    serde_json::to_value(&job).expect("json")
}

#[tokio::test]
async fn a_new_build_takes_a_spare_and_its_prepare_pod_mounts_it() {
    applied(|prepare| {
        vec![
            Call::new(Method::GET, CLAIMS, list("PersistentVolumeClaimList", &spares()))
                .query(SPARES),
            Call::new(Method::PUT, format!("{CLAIMS}/slipway-spare-a"), json!({}))
                .body(json!({"metadata": {
                    "name": "slipway-spare-a",
                    "resourceVersion": "7",
                    "labels": {"build.slipway.dev/build": "web", "build.slipway.dev/generation": "3"},
                    "ownerReferences": [{"uid": UID, "controller": true}],
                }})),
            // Its own Job mounts the spare; `-b` is left for the next build: none is made.
            Call::new(Method::POST, JOBS, json!({}))
                .body(mounting(prepare, "slipway-spare-a"))
                .status(StatusCode::CREATED),
        ]
    })
    .await
    .expect("applied");
}

#[tokio::test]
async fn a_spare_taken_meanwhile_costs_only_the_spare_and_the_next_is_made() {
    applied(|prepare| {
        vec![
            Call::new(
                Method::GET,
                CLAIMS,
                list("PersistentVolumeClaimList", &spares()[..1]),
            )
            .query(SPARES),
            Call::new(
                Method::PUT,
                format!("{CLAIMS}/slipway-spare-a"),
                status(409, "Conflict"),
            )
            .status(StatusCode::CONFLICT),
            // Its own claim, as without spares.
            Call::new(Method::POST, CLAIMS, json!({}))
                .body(json!({"metadata": {"name": "web-3-workspace"}}))
                .status(StatusCode::CREATED),
            Call::new(Method::POST, JOBS, json!({}))
                .body(mounting(prepare, "web-3-workspace"))
                .status(StatusCode::CREATED),
            // None is left: one for the next build, after the build's own Jobs; refused (a
            // quota), the build goes on.
            Call::new(Method::POST, CLAIMS, status(403, "exceeded quota"))
                .body(json!({"metadata": {
                    "generateName": "slipway-spare-",
                    "labels": {"build.slipway.dev/spare": "true"},
                    "ownerReferences": [{"uid": UID}],
                }}))
                .status(StatusCode::FORBIDDEN),
        ]
    })
    .await
    .expect("applied");
}

/// What `take` found, against `calls`.
async fn took(calls: Vec<Call>) -> Taken {
    let (apis, server) = mocked();
    let calls = server.run(calls);
    let build = fixtures::validated(&fixtures::build(), 1_000);
    let t = take(&apis.pvcs, &workspace(), &build).await;
    timeout(calls).await;
    t
}

#[tokio::test]
async fn a_spare_is_made_only_when_none_is_left_and_spares_may_be_taken() {
    let listed = |l: &[PersistentVolumeClaim]| {
        Call::new(Method::GET, CLAIMS, list("PersistentVolumeClaimList", l)).query(SPARES)
    };
    let put = |code: u16| {
        // An update answers with the object, a refusal with a Status.
        let answer = if code == 200 {
            json!({})
        } else {
            status(code, "refused")
        };
        Call::new(Method::PUT, format!("{CLAIMS}/slipway-spare-a"), answer)
            .status(StatusCode::from_u16(code).expect("code"))
    };
    let taken = |next| Taken {
        claim: Some("slipway-spare-a".into()),
        make_next: next,
    };
    assert_eq!(
        took(vec![listed(&spares()), put(200)]).await,
        taken(false),
        "-b is left"
    );
    assert_eq!(
        took(vec![listed(&spares()[..1]), put(200)]).await,
        taken(true)
    );
    let none = |next| Taken {
        claim: None,
        make_next: next,
    };
    assert_eq!(took(vec![listed(&[])]).await, none(true));
    assert_eq!(
        took(vec![listed(&spares()[..1]), put(409)]).await,
        none(true)
    );
    // Refused the update (a chart without it): none made, or they would pile up untaken.
    assert_eq!(
        took(vec![listed(&spares()[..1]), put(403)]).await,
        none(false)
    );
    let refused =
        Call::new(Method::GET, CLAIMS, status(403, "Forbidden")).status(StatusCode::FORBIDDEN);
    assert_eq!(took(vec![refused]).await, none(false));
}

#[test]
fn a_build_with_a_workspace_of_its_own_takes_and_makes_no_spare() {
    let mut ib = fixtures::build();
    ib.spec.workspace = Some(Default::default());
    let build = fixtures::validated(&ib, 1_000);
    let seen = Observation::default();
    let d = decide::decide(&seen.observed, &build.limits);
    let s = Settings {
        workspace_spare: true,
        ..fixtures::settings()
    };
    let objects = render::render(&ib, &s, &build, &seen, &d).expect("renders");
    assert!(objects.spare.is_none());
    let objects = render::render(&fixtures::build(), &s, &build, &seen, &d).expect("renders");
    assert!(objects.spare.is_some());
}

#[test]
fn a_cache_volume_may_not_name_a_spare() {
    let mut ib = fixtures::build();
    ib.spec.cache_volume = Some("slipway-spare-x7k2p".into());
    let e = crate::reconcile::validate::validate(&ib, k8s_openapi::jiff::Timestamp::now())
        .expect_err("refused");
    assert_eq!(
        e.to_string(),
        "spec.cacheVolume \"slipway-spare-x7k2p\": a spare workspace claim of the namespace's builds, not a cache"
    );
}

#[test]
fn every_later_job_mounts_the_claim_the_prepare_job_mounts() {
    let ib = fixtures::build();
    let mut prepare = fixtures::job(
        &render::Step::Prepare,
        3,
        Some(UID),
        fixtures::Done::Complete,
    );
    let named = |n: &str| {
        let mut c = fixtures::claim(3, Some(UID));
        c.metadata.name = Some(n.into());
        (n.to_string(), c)
    };
    let claims = BTreeMap::from([named("web-3-workspace"), named("slipway-spare-a")]);
    let jobs = |j: &k8s_openapi::api::batch::v1::Job| BTreeMap::from([(j.name_any(), j.clone())]);
    let chosen = |jobs, claims| crate::reconcile::observe::workspace(&ib, &jobs, claims);
    // A claim named like the build's own, made later (by a co-tenant, say), does not win.
    prepare.spec = Some(k8s_openapi::api::batch::v1::JobSpec {
        template: k8s_openapi::api::core::v1::PodTemplateSpec {
            spec: Some(k8s_openapi::api::core::v1::PodSpec {
                volumes: Some(vec![render::workspace_volume_of("slipway-spare-a")]),
                ..Default::default()
            }),
            ..Default::default()
        },
        ..Default::default()
    });
    assert_eq!(
        chosen(jobs(&prepare), claims.clone()).as_deref(),
        Some("slipway-spare-a")
    );
    // Before the prepare Job: the build's own name, else the spare it took.
    assert_eq!(
        chosen(BTreeMap::new(), claims.clone()).as_deref(),
        Some("web-3-workspace")
    );
    let spare_only = BTreeMap::from([named("slipway-spare-a")]);
    assert_eq!(
        chosen(BTreeMap::new(), spare_only).as_deref(),
        Some("slipway-spare-a")
    );
    assert_eq!(chosen(BTreeMap::new(), BTreeMap::new()), None);
}
