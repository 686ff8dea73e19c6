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
        Some("/1Gi")
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
    let mut other_class = own.clone();
    other_class.spec.as_mut().expect("spec").storage_class_name = Some("fast".into());
    assert!(!fits(&spare_of(&other_class), &own), "another class");
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
async fn a_spare_taken_meanwhile_or_refused_costs_only_the_spare() {
    let one = vec![spares().remove(0)];
    for refusal in [StatusCode::CONFLICT, StatusCode::FORBIDDEN] {
        let one = one.clone();
        applied(|prepare| {
            vec![
                Call::new(Method::GET, CLAIMS, list("PersistentVolumeClaimList", &one))
                    .query(SPARES),
                Call::new(
                    Method::PUT,
                    format!("{CLAIMS}/slipway-spare-a"),
                    status(refusal.as_u16(), "no"),
                )
                .status(refusal),
                // Its own claim, as without spares.
                Call::new(Method::POST, CLAIMS, json!({}))
                    .body(json!({"metadata": {"name": "web-3-workspace"}}))
                    .status(StatusCode::CREATED),
                Call::new(Method::POST, JOBS, json!({}))
                    .body(mounting(prepare, "web-3-workspace"))
                    .status(StatusCode::CREATED),
                // None is left: one for the next build, after the build's own Jobs; refused
                // (a quota), the build goes on.
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
        .unwrap_or_else(|e| panic!("{refusal}: {e}"));
    }
}
