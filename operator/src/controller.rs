//! The ImageBuild controller: a kube-runtime Controller owning the build's Jobs. Each
//! reconcile observes the current generation's Jobs (and, once, the pods' results), asks
//! [`progress::decide`] what comes next, creates or stops Jobs, and writes the status.
//! Everything is found again by name and label, so a restarted controller carries on.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::jiff::Timestamp;
use kube::api::{DeleteParams, ListParams, LogParams, Patch, PatchParams, PostParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::runtime::watcher;
use kube::{Api, Client, Resource, ResourceExt};
use slipway_contract::graph::BuildGraph;
use slipway_contract::result::{PodResult, Reason};
use tracing::{info, warn};

use crate::api::{ImageBuild, ImageBuildStatus};
use crate::metrics::Metrics;
use crate::progress::{self, Create, Decision, JobObs, JobState, Observed, Phase};
use crate::render::{self, Deadline, Settings, Step};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    #[error("{0}")]
    Invalid(String),
}

pub struct Ctx {
    pub client: Client,
    pub settings: Settings,
    pub metrics: Arc<Metrics>,
    recorder: Recorder,
    /// Consecutive reconcile errors per build, for the retry backoff.
    failures: Mutex<HashMap<String, u32>>,
}

const DEFAULT_TIMEOUT: &str = "1h";
const DEFAULT_PARALLEL: usize = 4;

pub async fn run(client: Client, settings: Settings, metrics: Arc<Metrics>) {
    let reporter = Reporter {
        controller: "slipway-operator".into(),
        instance: std::env::var("HOSTNAME").ok(),
    };
    let ctx = Arc::new(Ctx {
        recorder: Recorder::new(client.clone(), reporter),
        client: client.clone(),
        settings,
        metrics: metrics.clone(),
        failures: Mutex::new(HashMap::new()),
    });
    let builds = Api::<ImageBuild>::all(client.clone());
    let jobs = Api::<Job>::all(client);
    info!("watching ImageBuilds");
    Controller::new(builds, watcher::Config::default())
        .owns(
            jobs,
            watcher::Config::default().labels("app.kubernetes.io/managed-by=slipway"),
        )
        .shutdown_on_signal()
        .run(reconcile, error_policy, ctx)
        .for_each(|r| async move {
            if let Err(e) = r {
                warn!("reconcile: {e}");
            }
        })
        .await;
    info!("controller stopped");
}

fn key(ib: &ImageBuild) -> String {
    format!("{}/{}", ib.namespace().unwrap_or_default(), ib.name_any())
}

fn error_policy(ib: Arc<ImageBuild>, e: &Error, ctx: Arc<Ctx>) -> Action {
    ctx.metrics.reconcile_failed();
    let mut f = ctx.failures.lock().unwrap_or_else(|p| p.into_inner());
    let n = f.entry(key(&ib)).or_insert(0);
    *n += 1;
    // 2 s, 4 s, 8 s ... at most 5 minutes.
    let wait = Duration::from_secs((1u64 << (*n).min(8)).min(300));
    warn!(build = %key(&ib), error = %e, retry_in = ?wait, "reconcile failed");
    Action::requeue(wait)
}

fn now() -> Time {
    Time(Timestamp::now())
}

/// A Job's state from its conditions.
fn job_obs(job: &Job) -> JobObs {
    let status = job.status.clone().unwrap_or_default();
    let conds = status.conditions.unwrap_or_default();
    let on = |t: &str| conds.iter().find(|c| c.type_ == t && c.status == "True");
    let state = if on("Complete").or(on("SuccessCriteriaMet")).is_some() {
        JobState::Succeeded
    } else if let Some(c) = on("Failed").or(on("FailureTarget")) {
        JobState::Failed {
            deadline: c.reason.as_deref() == Some("DeadlineExceeded"),
            message: c
                .message
                .clone()
                .or(c.reason.clone())
                .unwrap_or_else(|| "failed".into()),
        }
    } else {
        JobState::Running
    };
    // SuccessCriteriaMet and FailureTarget come before completionTime is set: their time
    // stands in, so a stage's duration is known the first time it is seen done.
    let completion = status.completion_time.or_else(|| {
        on("Complete")
            .or(on("SuccessCriteriaMet"))
            .or(on("Failed"))
            .or(on("FailureTarget"))
            .and_then(|c| c.last_transition_time.clone())
    });
    JobObs {
        name: job.name_any(),
        state,
        start: status.start_time,
        completion,
        result: None,
    }
}

/// The result a finished Job's pod reported: its termination message, else its log. A pod
/// that died without one (killed, crashed) is described by its exit and last log line.
async fn pod_result(
    pods: &Api<Pod>,
    job: &str,
    reason: Reason,
) -> Result<(Option<PodResult>, Option<String>), Error> {
    let list = pods
        .list(&ListParams::default().labels(&format!("batch.kubernetes.io/job-name={job}")))
        .await?;
    let Some(pod) = list
        .items
        .into_iter()
        .max_by_key(|p| p.metadata.creation_timestamp.clone().map(|t| t.0))
    else {
        return Ok((None, None));
    };
    let node = pod.spec.as_ref().and_then(|s| s.node_name.clone());
    let statuses = pod
        .status
        .as_ref()
        .and_then(|s| s.container_statuses.clone())
        .unwrap_or_default();
    let terminated = statuses
        .iter()
        .find_map(|c| c.state.as_ref()?.terminated.clone());
    let message = terminated
        .as_ref()
        .and_then(|t| t.message.clone())
        .unwrap_or_default();
    if let Some(r) = PodResult::parse(&message).filter(|_| !PodResult::in_log(&message)) {
        return Ok((Some(r), node));
    }
    let log = pods
        .logs(&pod.name_any(), &LogParams::default())
        .await
        .unwrap_or_default();
    if let Some(r) = PodResult::parse(&log) {
        return Ok((Some(r), node));
    }
    let died = match &terminated {
        Some(t) if t.exit_code != 0 => {
            let last = log
                .lines()
                .rev()
                .find(|l| !l.trim().is_empty())
                .unwrap_or("");
            Some(PodResult::Failed {
                reason,
                message: format!(
                    "pod {} exited with {} ({}): {last}",
                    pod.name_any(),
                    t.exit_code,
                    t.reason.clone().unwrap_or_default()
                ),
            })
        }
        _ => None,
    };
    Ok((died, node))
}

async fn create_job(jobs: &Api<Job>, job: Job) -> Result<(), Error> {
    match jobs.create(&PostParams::default(), &job).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 409 => Ok(()), // made by an earlier reconcile
        Err(e) => Err(e.into()),
    }
}

fn finished(job: &Job) -> bool {
    !matches!(job_obs(job).state, JobState::Running)
}

async fn reconcile(ib: Arc<ImageBuild>, ctx: Arc<Ctx>) -> Result<Action, Error> {
    ctx.metrics.reconciled();
    let r = reconcile_build(&ib, &ctx).await;
    if r.is_ok() {
        ctx.failures
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&key(&ib));
    }
    r
}

async fn reconcile_build(ib: &ImageBuild, ctx: &Ctx) -> Result<Action, Error> {
    if ib.metadata.deletion_timestamp.is_some() {
        return Ok(Action::await_change()); // owner references take the Jobs and PVC along
    }
    let ns = ib
        .namespace()
        .ok_or_else(|| Error::Invalid("ImageBuild without a namespace".into()))?;
    let name = ib.name_any();
    let generation = ib.metadata.generation.unwrap_or(1);
    let old = ib.status.clone().unwrap_or_default();
    let same_generation = old.observed_generation == Some(generation);
    let old_phase = old.phase.clone().unwrap_or_default();
    let client = ctx.client.clone();
    if same_generation && (old_phase == "Succeeded" || old_phase == "Failed") {
        ctx.metrics.set_active(&key(ib), false);
        return expire(ib, ctx, &old).await;
    }
    ctx.metrics.set_active(&key(ib), true);
    let jobs: Api<Job> = Api::namespaced(client.clone(), &ns);
    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);
    let builds: Api<ImageBuild> = Api::namespaced(client.clone(), &ns);

    let list = jobs
        .list(&ListParams::default().labels(&format!("{}={name}", render::LABEL_BUILD)))
        .await?;
    let mut mine: BTreeMap<String, Job> = BTreeMap::new();
    for j in list.items {
        let g = j.labels().get(render::LABEL_GENERATION).cloned();
        if g == Some(generation.to_string()) {
            mine.insert(j.name_any(), j);
        } else {
            // A superseded generation's Job: the new spec builds instead.
            info!(build = %key(ib), job = %j.name_any(), "removing a superseded Job");
            delete_job(&jobs, &j.name_any()).await?;
        }
    }

    let pvcs: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), &ns);
    let claims = pvcs
        .list(&ListParams::default().labels(&format!("{}={name}", render::LABEL_BUILD)))
        .await?;
    let pvc = render::workspace_pvc(ib, &ctx.settings);
    let mut have_pvc = false;
    for c in claims.items {
        if c.labels().get(render::LABEL_GENERATION) != Some(&generation.to_string()) {
            delete_pvc(&pvcs, &c.name_any()).await?;
        } else {
            have_pvc |= c.metadata.name == pvc.metadata.name;
        }
    }
    if !have_pvc {
        match pvcs.create(&PostParams::default(), &pvc).await {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.code == 409 => {}
            Err(e) => return Err(e.into()),
        }
    }

    let start = if same_generation {
        old.start_time.clone()
    } else {
        None
    }
    .unwrap_or_else(now);
    let timeout = ib
        .spec
        .timeout
        .clone()
        .unwrap_or_else(|| DEFAULT_TIMEOUT.into());
    let limit = progress::parse_duration(&timeout).ok_or_else(|| {
        Error::Invalid(format!(
            "spec.timeout {timeout:?}: expected a duration like 30m or 1h"
        ))
    })? as i64;
    let elapsed = Timestamp::now().as_second() - start.0.as_second();
    let deadline = Deadline(Some(limit - elapsed));

    let mut o = Observed {
        timed_out: elapsed > limit,
        ..Default::default()
    };
    let mut node: Option<String> = None;
    let prep_name = render::job_name(ib, &Step::Prepare);
    if let Some(j) = mine.get(&prep_name) {
        let mut obs = job_obs(j);
        let ann = j.annotations();
        o.graph = ann
            .get(render::ANNOTATION_GRAPH)
            .and_then(|g| serde_json::from_str::<BuildGraph>(g).ok());
        node = ann.get(render::ANNOTATION_NODE).cloned();
        if obs.state != JobState::Running && o.graph.is_none() {
            let (result, pod_node) = pod_result(&pods, &prep_name, Reason::SourceFailed).await?;
            if let Some(PodResult::Graph(g)) = &result {
                // Kept on the Job, so the pod's result is read once.
                let patch = serde_json::json!({"metadata": {"annotations": {
                    render::ANNOTATION_GRAPH: serde_json::to_string(g).unwrap_or_default(),
                    render::ANNOTATION_NODE: pod_node.clone(),
                }}});
                jobs.patch(&prep_name, &PatchParams::default(), &Patch::Merge(&patch))
                    .await?;
                o.graph = Some(g.clone());
                node = pod_node;
            }
            obs.result = result;
        }
        o.prepare = Some(obs);
    }
    if let Some(g) = &o.graph {
        for (pos, sj) in g.jobs.iter().enumerate() {
            let jn = render::job_name(ib, &Step::Stage(pos, sj.label()));
            if let Some(j) = mine.get(&jn) {
                let mut obs = job_obs(j);
                if matches!(obs.state, JobState::Failed { .. }) {
                    obs.result = pod_result(&pods, &jn, Reason::StageFailed).await?.0;
                }
                o.stages.insert(pos, obs);
            }
        }
    }
    let push_name = render::job_name(ib, &Step::Push);
    if let Some(j) = mine.get(&push_name) {
        let mut obs = job_obs(j);
        if obs.state != JobState::Running {
            obs.result = pod_result(&pods, &push_name, Reason::PushFailed).await?.0;
        }
        o.push = Some(obs);
    }

    let max = ib
        .spec
        .max_parallel_stages
        .map(|n| n as usize)
        .unwrap_or(DEFAULT_PARALLEL);
    let d = progress::decide(&o, max, &timeout);

    for c in &d.create {
        let job = match c {
            Create::Prepare => {
                render::prepare_job(ib, &ctx.settings, &deadline).map_err(Error::Invalid)?
            }
            Create::Stage(pos) => {
                let g = o
                    .graph
                    .as_ref()
                    .ok_or_else(|| Error::Invalid("no graph".into()))?;
                render::stage_job(
                    ib,
                    &ctx.settings,
                    *pos,
                    &g.jobs[*pos],
                    node.as_deref(),
                    &deadline,
                )
            }
            Create::Push => render::push_job(ib, &ctx.settings, node.as_deref(), &deadline)
                .map_err(Error::Invalid)?,
        };
        info!(build = %key(ib), job = ?job.metadata.name, "creating Job");
        create_job(&jobs, job).await?;
    }
    if d.stop {
        for (n, j) in &mine {
            if !finished(j) {
                delete_job(&jobs, n).await?;
            }
        }
    }

    let status = next_status(ib, &old, same_generation, start.clone(), &d);
    publish_events(ctx, ib, &old, same_generation, &status, &d).await;
    record_metrics(ctx, &old, same_generation, &status, &d);
    if serde_json::to_value(&status).ok() != serde_json::to_value(&old).ok() {
        let mut value = serde_json::to_value(&status).unwrap_or_default();
        // A new generation clears what the previous one reported.
        if let Some(obj) = value.as_object_mut() {
            for k in ["image", "completionTime", "duration", "stages"] {
                obj.entry(k).or_insert(serde_json::Value::Null);
            }
        }
        builds
            .patch_status(
                &name,
                &PatchParams::default(),
                &Patch::Merge(serde_json::json!({ "status": value })),
            )
            .await?;
    }
    if d.phase.finished() {
        info!(build = %key(ib), phase = d.phase.as_str(), reason = %d.reason, "build finished");
        ctx.metrics.set_active(&key(ib), false);
        return Ok(Action::requeue(Duration::from_secs(
            ttl(ib, &ctx.settings).max(1) as u64,
        )));
    }
    // Job events wake us; the timeout (and a missed event) is covered by a timer.
    let left = (limit - elapsed).clamp(1, 60) as u64;
    Ok(Action::requeue(Duration::from_secs(left)))
}

fn ttl(ib: &ImageBuild, s: &Settings) -> i64 {
    ib.spec
        .ttl_seconds_after_finished
        .map(i64::from)
        .unwrap_or(s.default_ttl_seconds)
}

/// A finished build: once `ttlSecondsAfterFinished` has passed, its Jobs (and so their
/// Pods) and its workspace go; the ImageBuild and its status stay.
async fn expire(ib: &ImageBuild, ctx: &Ctx, status: &ImageBuildStatus) -> Result<Action, Error> {
    let done = status
        .completion_time
        .as_ref()
        .map(|t| t.0.as_second())
        .unwrap_or_else(|| Timestamp::now().as_second());
    let left = done + ttl(ib, &ctx.settings) - Timestamp::now().as_second();
    if left > 0 {
        return Ok(Action::requeue(Duration::from_secs(left as u64)));
    }
    let ns = ib.namespace().unwrap_or_default();
    let selector = format!("{}={}", render::LABEL_BUILD, ib.name_any());
    let jobs: Api<Job> = Api::namespaced(ctx.client.clone(), &ns);
    let pvcs: Api<PersistentVolumeClaim> = Api::namespaced(ctx.client.clone(), &ns);
    let lp = ListParams::default().labels(&selector);
    let (js, cs) = (jobs.list(&lp).await?, pvcs.list(&lp).await?);
    if !js.items.is_empty() || !cs.items.is_empty() {
        info!(build = %key(ib), "ttlSecondsAfterFinished passed: removing its Jobs and workspace");
    }
    for j in js.items {
        delete_job(&jobs, &j.name_any()).await?;
    }
    for c in cs.items {
        delete_pvc(&pvcs, &c.name_any()).await?;
    }
    Ok(Action::await_change())
}

async fn delete_pvc(pvcs: &Api<PersistentVolumeClaim>, name: &str) -> Result<(), Error> {
    match pvcs.delete(name, &DeleteParams::background()).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
        Err(e) => Err(e.into()),
    }
}

fn record_metrics(
    ctx: &Ctx,
    old: &ImageBuildStatus,
    same_generation: bool,
    new: &ImageBuildStatus,
    d: &Decision,
) {
    let was_finished =
        same_generation && matches!(old.phase.as_deref(), Some("Succeeded") | Some("Failed"));
    if d.phase.finished() && !was_finished {
        let secs = match (&new.start_time, &new.completion_time) {
            (Some(s), Some(c)) => Some((c.0.as_second() - s.0.as_second()) as f64),
            _ => None,
        };
        let result = if d.phase == Phase::Succeeded {
            "succeeded"
        } else {
            "failed"
        };
        ctx.metrics.build_finished(result, &d.reason, secs);
    }
    let old_done: Vec<&str> = if same_generation {
        old.stages
            .iter()
            .filter(|s| s.phase == "Succeeded")
            .filter_map(|s| s.job.as_deref())
            .collect()
    } else {
        vec![]
    };
    let mut seen = std::collections::BTreeSet::new();
    for s in &new.stages {
        if s.phase != "Succeeded" {
            continue;
        }
        let Some(job) = s.job.as_deref() else {
            continue;
        };
        if old_done.contains(&job) || !seen.insert(job) {
            continue;
        }
        if let (Some(a), Some(b)) = (&s.start_time, &s.completion_time) {
            ctx.metrics
                .stage_finished((b.0.as_second() - a.0.as_second()) as f64);
        }
    }
}

async fn delete_job(jobs: &Api<Job>, name: &str) -> Result<(), Error> {
    match jobs.delete(name, &DeleteParams::background()).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
        Err(e) => Err(e.into()),
    }
}

fn next_status(
    ib: &ImageBuild,
    old: &ImageBuildStatus,
    same_generation: bool,
    start: Time,
    d: &Decision,
) -> ImageBuildStatus {
    let generation = ib.metadata.generation.unwrap_or(1);
    let old_conditions = if same_generation {
        old.conditions.clone()
    } else {
        vec![]
    };
    let conditions = progress::set_condition(
        &old_conditions,
        Condition {
            type_: progress::CONDITION.into(),
            status: d.status.into(),
            reason: d.reason.clone(),
            message: d.message.clone(),
            last_transition_time: now(),
            observed_generation: Some(generation),
        },
    );
    let completion = d.phase.finished().then(|| {
        if same_generation {
            old.completion_time.clone()
        } else {
            None
        }
        .unwrap_or_else(now)
    });
    let duration = completion
        .as_ref()
        .map(|c| progress::format_duration(c.0.as_second() - start.0.as_second()));
    ImageBuildStatus {
        phase: Some(d.phase.as_str().into()),
        conditions,
        observed_generation: Some(generation),
        start_time: Some(start),
        completion_time: completion,
        duration,
        stages: d.stages.clone(),
        image: d.image.clone(),
    }
}

async fn publish_events(
    ctx: &Ctx,
    ib: &ImageBuild,
    old: &ImageBuildStatus,
    same_generation: bool,
    new: &ImageBuildStatus,
    d: &Decision,
) {
    let mut events = Vec::new();
    let old_phase = if same_generation {
        old.phase.clone()
    } else {
        None
    };
    if old_phase != new.phase {
        let (type_, reason, note) = match d.phase {
            Phase::Pending => (
                EventType::Normal,
                "Started",
                format!("generation {}", new.observed_generation.unwrap_or(1)),
            ),
            Phase::Failed => (
                EventType::Warning,
                "Failed",
                format!("{}: {}", d.reason, d.message),
            ),
            Phase::Succeeded => (EventType::Normal, "Pushed", d.message.clone()),
            p => (EventType::Normal, p.as_str(), d.message.clone()),
        };
        events.push((type_, reason.to_string(), note));
    }
    let old_stages: BTreeMap<i32, String> = if same_generation {
        old.stages
            .iter()
            .map(|s| (s.index, s.phase.clone()))
            .collect()
    } else {
        BTreeMap::new()
    };
    for s in &new.stages {
        if old_stages.get(&s.index) != Some(&s.phase) && s.phase != "Pending" {
            let label = s.name.clone().unwrap_or_else(|| format!("#{}", s.index));
            let type_ = if s.phase == "Failed" {
                EventType::Warning
            } else {
                EventType::Normal
            };
            events.push((
                type_,
                format!("Stage{}", s.phase),
                format!("stage {label}: {}", s.phase),
            ));
        }
    }
    let reference = ib.object_ref(&());
    for (type_, reason, note) in events {
        let ev = Event {
            type_,
            reason,
            note: Some(note.chars().take(1000).collect()),
            action: "Build".into(),
            secondary: None,
        };
        if let Err(e) = ctx.recorder.publish(&ev, &reference).await {
            warn!(build = %key(ib), "event: {e}");
        }
    }
}
