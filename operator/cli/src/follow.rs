//! Following a build on the cluster: its ImageBuild's status through a watch, and the logs
//! of every pod of its current generation, including pods that finished before the CLI
//! attached (their logs are read whole, in the order the build ran them, before the
//! running pods' streams). Each pod's containers are read in order (init containers first),
//! each one once it has started.

use std::collections::HashSet;
use std::time::Duration;

use futures::{AsyncBufReadExt, StreamExt};
use k8s_openapi::api::core::v1::Pod;
use kube::Client;
use kube::api::{Api, ListParams, LogParams};
use kube::runtime::{WatchStreamExt, watcher};
use slipway_api::{ImageBuild, labels};
use tokio::sync::mpsc;
use tokio::task::JoinSet;

use crate::error::Error;
use crate::logs::{LogLine, PodSource, Prefixer, sort_pods};
use crate::output::finished;

/// What the caller shows of a followed build.
pub trait Sink {
    /// The ImageBuild changed (`before` is the previous state seen).
    fn build(&mut self, before: Option<&ImageBuild>, now: &ImageBuild);
    /// A log line.
    fn log(&mut self, line: &LogLine);
    /// Once a second.
    fn tick(&mut self, now: &ImageBuild);
}

/// How a pod's logs are read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Read {
    /// Wait for each container to start, stream it until it ends.
    Follow,
    /// What the containers have written so far; those not started are skipped.
    Snapshot,
}

/// How long the logs of a finished build may take to arrive after its status said so.
const DRAIN: Duration = Duration::from_secs(20);

/// The ImageBuild `name`, or [`Error::NotFound`].
pub async fn get(client: &Client, ns: &str, name: &str) -> Result<ImageBuild, Error> {
    let api: Api<ImageBuild> = Api::namespaced(client.clone(), ns);
    api.get_opt(name)
        .await
        .map_err(|e| Error::api(&format!("read imagebuild {name}"), e))?
        .ok_or_else(|| Error::NotFound {
            name: name.to_string(),
            namespace: ns.to_string(),
        })
}

/// The label selector of a build's pods.
pub fn selector(name: &str) -> String {
    format!("{}={}", labels::BUILD, labels::label_value(name))
}

/// The pods of `ib`'s current generation, in the order the build ran them.
pub async fn pods(client: &Client, ns: &str, ib: &ImageBuild) -> Result<Vec<Pod>, Error> {
    let name = ib.metadata.name.clone().unwrap_or_default();
    let api: Api<Pod> = Api::namespaced(client.clone(), ns);
    let list = api
        .list(&ListParams::default().labels(&selector(&name)))
        .await
        .map_err(|e| Error::api(&format!("list the pods of imagebuild {name}"), e))?;
    let mut pods: Vec<Pod> = list.items.into_iter().filter(|p| current(p, ib)).collect();
    sort_pods(&mut pods, ib.status.as_ref());
    Ok(pods)
}

/// Whether `pod` is a build pod of `ib`'s current generation.
fn current(pod: &Pod, ib: &ImageBuild) -> bool {
    PodSource::of(pod).is_some_and(|s| match (s.generation, ib.metadata.generation) {
        (Some(p), Some(g)) => p == g,
        _ => true,
    })
}

fn pod_over(p: &Pod) -> bool {
    matches!(
        p.status.as_ref().and_then(|s| s.phase.as_deref()),
        Some("Succeeded" | "Failed")
    )
}

/// Where a container stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Started {
    Running,
    Terminated,
    NotYet,
}

fn container_state(p: &Pod, container: &str) -> Started {
    let Some(status) = p.status.as_ref() else {
        return Started::NotYet;
    };
    let all = status
        .init_container_statuses
        .iter()
        .flatten()
        .chain(status.container_statuses.iter().flatten());
    for c in all {
        if c.name != container {
            continue;
        }
        let state = c.state.as_ref();
        if state.is_some_and(|s| s.running.is_some()) {
            return Started::Running;
        }
        if state.is_some_and(|s| s.terminated.is_some()) {
            return Started::Terminated;
        }
    }
    Started::NotYet
}

fn containers(p: &Pod) -> Vec<String> {
    p.spec
        .as_ref()
        .map(|s| {
            s.init_containers
                .iter()
                .flatten()
                .chain(s.containers.iter())
                .map(|c| c.name.clone())
                .collect()
        })
        .unwrap_or_default()
}

/// Reads one pod's logs, container after container, into `tx`.
pub async fn read_pod(api: Api<Pod>, pod: Pod, read: Read, tx: mpsc::UnboundedSender<LogLine>) {
    let Some(source) = PodSource::of(&pod) else {
        return;
    };
    let mut prefixer = Prefixer::new(&source);
    let name = source.pod.clone();
    let mut latest = pod;
    for container in containers(&latest) {
        let state = loop {
            let s = container_state(&latest, &container);
            if s != Started::NotYet || read == Read::Snapshot || pod_over(&latest) {
                break s;
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
            match api.get_opt(&name).await {
                Ok(Some(p)) => latest = p,
                Ok(None) => return,
                Err(_) => continue,
            }
        };
        let params = LogParams {
            container: Some(container.clone()),
            follow: state == Started::Running && read == Read::Follow,
            ..LogParams::default()
        };
        match state {
            Started::NotYet => continue,
            Started::Running if params.follow => {
                let Ok(stream) = api.log_stream(&name, &params).await else {
                    continue;
                };
                let mut lines = stream.lines();
                while let Some(Ok(line)) = lines.next().await {
                    if let Some(l) = prefixer.line(&line) {
                        let _ = tx.send(l);
                    }
                }
            }
            _ => {
                let Ok(text) = api.logs(&name, &params).await else {
                    continue;
                };
                for line in text.lines() {
                    if let Some(l) = prefixer.line(line) {
                        let _ = tx.send(l);
                    }
                }
            }
        }
        // The pod as it is now, for the next container's state.
        if let Ok(Some(p)) = api.get_opt(&name).await {
            latest = p;
        }
    }
}

/// Follows the build `name` until its current generation is over; with `logs`, its pods'
/// logs too. Returns the finished ImageBuild.
pub async fn follow(
    client: &Client,
    ns: &str,
    name: &str,
    logs: bool,
    sink: &mut dyn Sink,
) -> Result<ImageBuild, Error> {
    let mut latest = get(client, ns, name).await?;
    sink.build(None, &latest);
    let builds: Api<ImageBuild> = Api::namespaced(client.clone(), ns);
    let pod_api: Api<Pod> = Api::namespaced(client.clone(), ns);
    let build_events = watcher(
        builds,
        watcher::Config::default().fields(&format!("metadata.name={name}")),
    )
    .default_backoff();
    let pod_events = watcher(
        pod_api.clone(),
        watcher::Config::default().labels(&selector(name)),
    )
    .default_backoff();
    let mut build_events = std::pin::pin!(build_events);
    let mut pod_events = std::pin::pin!(pod_events);
    let (tx, mut rx) = mpsc::unbounded_channel::<LogLine>();
    let mut readers = JoinSet::new();
    let mut seen: HashSet<String> = HashSet::new();
    let mut batch: Vec<Pod> = Vec::new();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let mut done_at: Option<tokio::time::Instant> =
        finished(&latest).map(|_| tokio::time::Instant::now());
    // The pods there when the CLI attached have been read (or are being read).
    let mut listed = !logs;

    loop {
        if let Some(t) = done_at {
            let quiet = listed && readers.is_empty() && t.elapsed() >= Duration::from_secs(1);
            if quiet || t.elapsed() >= DRAIN {
                break;
            }
        }
        tokio::select! {
            ev = build_events.next() => match ev {
                Some(Ok(watcher::Event::Apply(ib) | watcher::Event::InitApply(ib))) => {
                    sink.build(Some(&latest), &ib);
                    latest = ib;
                    if done_at.is_none() && finished(&latest).is_some() {
                        done_at = Some(tokio::time::Instant::now());
                    }
                }
                Some(Ok(watcher::Event::Delete(_))) => return Err(Error::Deleted(name.to_string())),
                Some(Ok(_)) => {}
                // The watcher retries with a backoff; a failed attempt is not the end.
                Some(Err(_)) => {}
                None => return Err(Error::Deleted(name.to_string())),
            },
            ev = pod_events.next(), if logs => match ev {
                Some(Ok(watcher::Event::InitApply(p))) => batch.push(p),
                Some(Ok(watcher::Event::InitDone)) => {
                    listed = true;
                    // What is there when the CLI attaches: finished pods whole and in the
                    // build's order, then the running ones' streams.
                    let mut pods: Vec<Pod> = std::mem::take(&mut batch)
                        .into_iter()
                        .filter(|p| current(p, &latest))
                        .collect();
                    sort_pods(&mut pods, latest.status.as_ref());
                    for p in pods {
                        let Some(n) = p.metadata.name.clone() else { continue };
                        if !seen.insert(n) {
                            continue;
                        }
                        if pod_over(&p) {
                            read_pod(pod_api.clone(), p, Read::Follow, tx.clone()).await;
                        } else {
                            readers.spawn(read_pod(pod_api.clone(), p, Read::Follow, tx.clone()));
                        }
                    }
                }
                Some(Ok(watcher::Event::Apply(p))) => {
                    let Some(n) = p.metadata.name.clone() else { continue };
                    if current(&p, &latest) && !seen.contains(&n) {
                        seen.insert(n);
                        readers.spawn(read_pod(pod_api.clone(), p, Read::Follow, tx.clone()));
                    }
                }
                Some(Ok(_)) | Some(Err(_)) => {}
                None => {}
            },
            Some(line) = rx.recv() => sink.log(&line),
            Some(_) = readers.join_next(), if !readers.is_empty() => {}
            _ = tick.tick() => sink.tick(&latest),
        }
    }
    readers.abort_all();
    drop(tx);
    while let Ok(line) = rx.try_recv() {
        sink.log(&line);
    }
    Ok(latest)
}

/// Prints what the pods of `ib`'s current generation have logged so far, in order.
pub async fn snapshot(
    client: &Client,
    ns: &str,
    ib: &ImageBuild,
    sink: &mut dyn Sink,
) -> Result<usize, Error> {
    let pods = pods(client, ns, ib).await?;
    let api: Api<Pod> = Api::namespaced(client.clone(), ns);
    let n = pods.len();
    for p in pods {
        let (tx, mut rx) = mpsc::unbounded_channel();
        read_pod(api.clone(), p, Read::Snapshot, tx).await;
        while let Ok(line) = rx.try_recv() {
            sink.log(&line);
        }
    }
    Ok(n)
}

/// Waits until the build is over, without its logs.
pub async fn wait(
    client: &Client,
    ns: &str,
    name: &str,
    sink: &mut dyn Sink,
) -> Result<ImageBuild, Error> {
    follow(client, ns, name, false, sink).await
}

#[cfg(test)]
#[path = "follow_tests.rs"]
mod follow_tests;

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{
        Container, ContainerState, ContainerStateRunning, ContainerStateTerminated,
        ContainerStatus, PodSpec, PodStatus,
    };
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    fn status(name: &str, running: bool, terminated: bool) -> ContainerStatus {
        ContainerStatus {
            name: name.into(),
            state: Some(ContainerState {
                running: running.then(ContainerStateRunning::default),
                terminated: terminated.then(ContainerStateTerminated::default),
                waiting: None,
            }),
            ..Default::default()
        }
    }

    fn prepare_pod(generation: &str, phase: &str) -> Pod {
        let c = |n: &str| Container {
            name: n.into(),
            ..Default::default()
        };
        Pod {
            metadata: ObjectMeta {
                name: Some("web-2-prepare-x".into()),
                labels: Some(
                    [(labels::STEP, "prepare"), (labels::GENERATION, generation)]
                        .iter()
                        .map(|(k, v)| (k.to_string(), v.to_string()))
                        .collect(),
                ),
                ..Default::default()
            },
            spec: Some(PodSpec {
                init_containers: Some(vec![c("fetch")]),
                containers: vec![c("plan")],
                ..Default::default()
            }),
            status: Some(PodStatus {
                phase: Some(phase.into()),
                init_container_statuses: Some(vec![status("fetch", false, true)]),
                container_statuses: Some(vec![status("plan", true, false)]),
                ..Default::default()
            }),
        }
    }

    #[test]
    fn containers_in_order_and_their_state() {
        let p = prepare_pod("2", "Running");
        assert_eq!(containers(&p), ["fetch", "plan"]);
        assert_eq!(container_state(&p, "fetch"), Started::Terminated);
        assert_eq!(container_state(&p, "plan"), Started::Running);
        assert_eq!(container_state(&p, "push"), Started::NotYet);
        assert!(!pod_over(&p));
        assert!(pod_over(&prepare_pod("2", "Failed")));
    }

    #[test]
    fn only_the_current_generation_s_pods() {
        let mut ib = ImageBuild::new(
            "web",
            serde_json::from_value(serde_json::json!({
                "source": {"inline": {"dockerfile": "FROM x"}},
                "output": {"image": "r/web:1"}
            }))
            .expect("spec"),
        );
        ib.metadata.generation = Some(2);
        assert!(current(&prepare_pod("2", "Running"), &ib));
        assert!(!current(&prepare_pod("1", "Succeeded"), &ib));
        assert_eq!(selector("web"), "build.slipway.dev/build=web");
        let long = "a".repeat(70);
        assert_eq!(selector(&long).len(), "build.slipway.dev/build=".len() + 63);
    }
}
