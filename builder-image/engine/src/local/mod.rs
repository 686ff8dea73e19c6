//! `slipway-builder build`: a whole build on one machine, the way the operator runs it on a
//! cluster. Plan; resolve and fetch every external image; run each stage as
//! `slipway-builder stage` in a runc container rooted in its base image (independent stages
//! at the same time); assemble the final image (base layers + stage layers, config with
//! history, OCI manifest); push it to every destination. Nothing is pushed unless every
//! stage succeeded.
//!
//! The host (root) trusts nothing a stage container can write (C1): the containers' own
//! directories and secret copies are in the state directory ([`state`]), out of every
//! container's reach; a container writes only its own stages' outputs in the workspace; and
//! what the host reads back from there (a failed stage's message, the target's result and its
//! layers) is opened beneath the workspace without following symlinks, capped, and checked
//! ([`Workspace::read_stage_error`], [`Checked::result`]).
//!
//! The host plays the controller (security review H1): it hashes the files it wrote into the
//! workspace, and after each container, the outputs of that container's stages (read beneath
//! the workspace without following symlinks); each later container, and the push, is given
//! the digests of exactly what it reads ([`Trusted`]), so a stage cannot change what another
//! stage or the push reads.

pub mod rootfs;
pub mod runc;
pub mod seccomp;
pub mod state;

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::mpsc;

use slipway_contract::graph::{BuildGraph, StageJob, root_image};
use slipway_contract::pod::{Digests, PodCommand, StageArgs, StageLayers, paths};
use slipway_contract::trust::{Inputs, Missing, Outputs, Trusted};
use slipway_frontend::plan::{Plan, PlanOptions};

use crate::local::rootfs::{RootfsError, StageRoot};
use crate::local::runc::{Container, DEFAULT_CAPS, RuncError};
use crate::local::seccomp::Seccomp;
use crate::local::state::{ContainerDir, SecretCopies, StateDir, valid_secret_id};
use crate::net::RuntimeError;
use crate::registry::client::{Registry, RegistryError, SetupError};
use crate::registry::manifest::{manifest_json, sha256_bytes};
use crate::steps;
use crate::steps::plan::{Fetch, PlanStepError, ResolveError};
use crate::steps::push::PushError;
use crate::trusted::{self, Checked, TrustError};
use crate::workspace::{ImageInfo, Workspace, WorkspaceError};

pub struct BuildOptions {
    pub context: PathBuf,
    pub dockerfile: Option<PathBuf>,
    pub destinations: Vec<String>,
    /// The target and build arguments.
    pub plan: PlanOptions,
    pub insecure_registries: Vec<String>,
    /// Secret files by id, for `RUN --mount=type=secret`.
    pub secrets: Vec<(String, PathBuf)>,
    /// Where builds and caches live (blob cache, cache mounts, workspaces).
    pub state_dir: PathBuf,
    pub keep_workspace: bool,
    /// At most this many stages at once (0: as many as are ready).
    pub max_parallel: usize,
    /// `SOURCE_DATE_EPOCH` (seconds): `created` of the config and the new history, and no
    /// file in the build's own layers newer than it.
    pub source_date_epoch: Option<u64>,
    /// The cache repository (`registry/repository`): stages found there are restored, not
    /// run; stages that ran are stored there after the push.
    pub cache_repo: Option<String>,
    /// `--label KEY=VALUE`: labels of the final image's config, set after the Dockerfile's
    /// (a key the Dockerfile set too takes this value), with no history entry of their own,
    /// as BuildKit's `label:` options and `docker build --label` do.
    pub labels: Vec<(String, String)>,
}

pub struct BuildOutput {
    /// The image manifest's digest (pushed, or what would have been pushed).
    pub digest: String,
    pub pushed: Vec<String>,
    /// What the layer cache did, with `--cache-repo`.
    pub cache: Option<crate::cache::store::Outcome>,
}

/// The error of a build, said once: where and what.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("context {}: {source}", path.display())]
    Context {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("--secret id={id}: {}: {source}", src.display())]
    Secret {
        id: String,
        src: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("--secret id={id}: not a valid secret id (it names a file)")]
    SecretId { id: String },
    /// Something of the build's own set-up (`what`: the file or the step).
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: io::Error,
    },
    #[error(
        "{} is dynamically linked and cannot run inside base images; build it with \
         scripts/build-engine.sh (a static binary)",
        .0.display()
    )]
    DynamicEngine(PathBuf),
    #[error(transparent)]
    Plan(#[from] PlanStepError),
    #[error(transparent)]
    RegistrySetup(#[from] SetupError),
    #[error("starting the runtime: {0}")]
    Runtime(#[source] RuntimeError),
    #[error(transparent)]
    Resolve(#[from] ResolveError),
    #[error(transparent)]
    Registry(#[from] RegistryError),
    #[error(transparent)]
    Root(#[from] RootfsError),
    #[error(transparent)]
    Runc(#[from] RuncError),
    /// A stage failed: its own one-line message, as it wrote it into the workspace.
    #[error("{message}")]
    Stage { message: String },
    /// What a stage left in the workspace is not what it may leave (a symlink, a layer
    /// elsewhere...): it is not read.
    #[error("stage #{index}: {source}")]
    StageFile {
        index: usize,
        #[source]
        source: WorkspaceError,
    },
    #[error("stage #{index}: the stage container exited with {code}")]
    ContainerExit { index: usize, code: i32 },
    #[error(transparent)]
    Assemble(#[from] PushError),
    /// A workspace file that is not what the host's digest says, or cannot be hashed.
    #[error(transparent)]
    Trust(#[from] TrustError),
    #[error(transparent)]
    Digests(#[from] Missing),
    #[error(transparent)]
    CacheRestore(#[from] crate::cache::build::RestoreError),
}

fn io(what: impl std::fmt::Display) -> impl FnOnce(io::Error) -> BuildError {
    move |source| BuildError::Io {
        what: what.to_string(),
        source,
    }
}

/// This very binary, which must be static to run inside any base image.
fn engine_binary() -> Result<PathBuf, BuildError> {
    let exe = std::env::current_exe().map_err(io("locating slipway-builder"))?;
    let bytes = fs::read(&exe).map_err(io(exe.display()))?;
    if is_dynamic_elf(&bytes) {
        return Err(BuildError::DynamicEngine(exe));
    }
    Ok(exe)
}

/// An ELF with a PT_INTERP program header needs a dynamic loader.
pub fn is_dynamic_elf(b: &[u8]) -> bool {
    if b.len() < 64 || &b[..4] != b"\x7fELF" || b[4] != 2 {
        return false;
    }
    let u64at = |o: usize| u64::from_le_bytes(b[o..o + 8].try_into().unwrap_or([0; 8]));
    let u16at = |o: usize| u16::from_le_bytes(b[o..o + 2].try_into().unwrap_or([0; 2]));
    let phoff = u64at(32) as usize;
    let phentsize = u16at(54) as usize;
    let phnum = u16at(56) as usize;
    (0..phnum).any(|i| {
        let o = phoff + i * phentsize;
        o + 4 <= b.len() && u32::from_le_bytes(b[o..o + 4].try_into().unwrap_or([0; 4])) == 3
    })
}

pub fn build(opts: &BuildOptions) -> Result<BuildOutput, BuildError> {
    let engine = engine_binary()?;
    let dockerfile = opts
        .dockerfile
        .clone()
        .unwrap_or_else(|| opts.context.join("Dockerfile"));
    let context = fs::canonicalize(&opts.context).map_err(|source| BuildError::Context {
        path: opts.context.clone(),
        source,
    })?;
    let secrets = read_secrets(&opts.secrets)?;

    // The workspace, laid out as stage containers see it.
    let state = StateDir::open(&opts.state_dir).map_err(io(opts.state_dir.display()))?;
    let build_id = format!("{}-{}", std::process::id(), now_nanos());
    let ws_dir = state.builds().join(&build_id);
    let ws = Workspace::new(&ws_dir);
    fs::create_dir_all(ws.context()).map_err(io(ws_dir.display()))?;
    let result = (|| {
        let shown = dockerfile.display().to_string();
        let plan = steps::plan::plan_into(&ws, &context, &dockerfile, &shown, &opts.plan)?;
        make_stage_dirs(&ws, &plan)?;
        // A progress line for pulls and pushes, only when stderr is a terminal.
        let registry = Registry::new(&opts.insecure_registries, &state.blobs())?
            .with_progress(crate::registry::progress::Progress::on_terminal());
        let images = crate::net::block_on(steps::plan::resolve_images(
            &registry,
            &plan,
            &ws,
            // With the cache, a base's layers are fetched when a container is rooted in it.
            if opts.cache_repo.is_some() {
                Fetch::Copied
            } else {
                Fetch::Layers
            },
        ))
        .map_err(BuildError::Runtime)??;
        let graph = BuildGraph::new(&plan, &steps::plan::pinned(&images));
        // What the host wrote, before any container runs.
        let inputs = trusted::inputs(&ws, images.keys().cloned())?;
        let host = Host {
            registry: &registry,
            state: &state,
            build: &build_id,
            ws: &ws,
            context: &context,
            engine: &engine,
            secrets: &secrets,
            seccomp: seccomp::profile(&DEFAULT_CAPS),
            inputs: &inputs,
            epoch: opts.source_date_epoch,
            layers: StageLayers::for_cache(opts.cache_repo.is_some()),
        };
        let mut cache = match &opts.cache_repo {
            Some(repo) => {
                let store = crate::cache::store::Store {
                    registry: &registry,
                    repository: repo.clone(),
                    // The cache is written after the image is pushed.
                    mount_from: opts.destinations.clone(),
                };
                match crate::cache::keys::builder_identity(&engine).and_then(|b| {
                    crate::cache::keys::Keys::compute(
                        &ws,
                        &context,
                        &plan,
                        &images,
                        opts.source_date_epoch,
                        &b,
                    )
                }) {
                    Ok(keys) => {
                        let mut c = crate::cache::build::BuildCache::new(store, keys, &plan);
                        c.prefetch();
                        Some(c)
                    }
                    Err(e) => {
                        eprintln!("warning: cache: {e}; building without the cache");
                        None
                    }
                }
            }
            None => None,
        };
        let outputs = run_jobs(
            opts,
            plan_roots(&plan, &images),
            &graph,
            &host,
            cache.as_mut(),
        )?;
        if let Some(c) = cache.as_mut() {
            c.before_push(&ws)?;
        }
        // The target's result as the host vouches for it: the digest of what the target's
        // container left, the plan's target, every layer at stages/<N>/layers/<hex>.tar.gz of
        // its own FROM-chain (opened beneath the workspace when pushed, and checked against
        // its digests as it is read); the base image's as the host resolved it.
        let digests = Trusted {
            inputs: &inputs,
            stages: &outputs,
            running: None,
        }
        .for_push(&graph)?;
        let checked = Checked {
            ws: &ws,
            digests: &digests,
        };
        let mut target = checked.result(&checked.plan()?, plan.target_index)?;
        target.config.labels.extend(opts.labels.iter().cloned());
        let mut image = steps::push::assemble(&ws, &target, &images, opts.source_date_epoch)?;
        image.mount_from = opts.cache_repo.iter().cloned().collect();
        let store_cache = || {
            cache.as_ref().map(|c| {
                c.write(&ws, &outputs);
                let o = c.outcome();
                eprintln!("{o}");
                o
            })
        };
        if opts.destinations.is_empty() {
            let cache = store_cache();
            let digest = sha256_bytes(&manifest_json(
                &image.config,
                &sha256_bytes(&image.config),
                image.layers.iter().map(|(l, _)| l),
                &image.annotations,
            ));
            return Ok(BuildOutput {
                digest,
                pushed: Vec::new(),
                cache,
            });
        }
        let digest = crate::net::block_on(registry.push(&opts.destinations, &image))
            .map_err(BuildError::Runtime)??;
        eprintln!("push: {}", registry.tally());
        for d in &opts.destinations {
            eprintln!("pushed {d}@{digest}");
        }
        let cache = store_cache();
        Ok(BuildOutput {
            digest,
            pushed: opts.destinations.clone(),
            cache,
        })
    })();
    if !opts.keep_workspace {
        let _ = fs::remove_dir_all(&ws_dir);
    } else {
        eprintln!("workspace kept at {}", ws_dir.display());
    }
    result
}

/// The `--secret` files, read once; each copied later only into the containers that mount it.
fn read_secrets(secrets: &[(String, PathBuf)]) -> Result<Vec<(String, Vec<u8>)>, BuildError> {
    secrets
        .iter()
        .map(|(id, src)| {
            if !valid_secret_id(id) {
                return Err(BuildError::SecretId { id: id.clone() });
            }
            let data = fs::read(src).map_err(|source| BuildError::Secret {
                id: id.clone(),
                src: src.clone(),
                source,
            })?;
            Ok((id.clone(), data))
        })
        .collect()
}

/// `stages/<N>` of every stage, made by the host before any container runs: the directories
/// containers get writable (each only its own), made where no container can plant a symlink
/// in their place.
fn make_stage_dirs(ws: &Workspace, plan: &Plan) -> Result<(), BuildError> {
    for s in &plan.stages {
        let dir = ws.stage_dir(s.index);
        if let Some(parent) = dir.parent() {
            fs::create_dir_all(parent).map_err(io(parent.display()))?;
        }
        fs::create_dir(&dir).map_err(io(dir.display()))?;
    }
    Ok(())
}

/// Each stage's root image, by stage index: what its chain's container is rooted in.
fn plan_roots<'a>(
    plan: &Plan,
    images: &'a BTreeMap<String, ImageInfo>,
) -> BTreeMap<usize, &'a ImageInfo> {
    plan.stages
        .iter()
        .filter_map(|s| {
            let info = root_image(plan, s.index).and_then(|n| images.get(&n))?;
            Some((s.index, info))
        })
        .collect()
}

fn now_nanos() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0)
}

/// Runs the graph's Jobs as the operator does, one container per Job, each as soon as the
/// scheduler ([`BuildGraph::ready`]) says, at most `max_parallel` at once; returns the digests
/// of what each stage wrote.
fn run_jobs(
    opts: &BuildOptions,
    roots: BTreeMap<usize, &ImageInfo>,
    graph: &BuildGraph,
    host: &Host,
    mut cache: Option<&mut crate::cache::build::BuildCache>,
) -> Result<BTreeMap<usize, Outputs>, BuildError> {
    let mut outputs: BTreeMap<usize, Outputs> = BTreeMap::new();
    let max = if opts.max_parallel == 0 {
        usize::MAX
    } else {
        opts.max_parallel
    };
    let mut done: BTreeSet<usize> = BTreeSet::new(); // stages
    let mut started: BTreeSet<usize> = BTreeSet::new(); // Jobs
    let mut running = 0;
    let mut failed: Option<BuildError> = None;
    let (tx, rx) = mpsc::channel::<(usize, Result<BTreeMap<usize, Outputs>, BuildError>)>();
    std::thread::scope(|scope| {
        loop {
            // A Job whose stages all hit is done at once: the loop looks again for Jobs
            // that are ready now.
            let mut skipped = false;
            if failed.is_none() {
                for pos in graph.ready(&done, &started, max.saturating_sub(running)) {
                    started.insert(pos);
                    let mut job = graph.jobs[pos].clone();
                    if let Some(c) = cache.as_deref_mut() {
                        // The stages that hit are done; the Job runs what is left of its
                        // chain, started from the last hit's result.
                        let (hits, rest) = c.try_job(&job, &outputs);
                        outputs.extend(hits);
                        match rest {
                            None => {
                                done.extend(job.stages.iter().copied());
                                skipped = true;
                                continue;
                            }
                            Some(rest) => job = rest,
                        }
                        if let Err(e) = c.before_run(host.ws, &mut job) {
                            failed.get_or_insert(e.into());
                            break;
                        }
                    }
                    running += 1;
                    let tx = tx.clone();
                    let base = roots.get(&job.stages[0]).copied();
                    // Every stage it needs is done: the host holds their digests (and those
                    // of the checkpoints it restored for it, in the Job).
                    let digests = Trusted {
                        inputs: host.inputs,
                        stages: &outputs,
                        running: None,
                    }
                    .for_stage_job(&job);
                    scope.spawn(move || {
                        let r = digests
                            .map_err(BuildError::from)
                            .and_then(|d| run_chain(host, &job, base, d));
                        let _ = tx.send((pos, r));
                    });
                }
            }
            if skipped && failed.is_none() {
                continue;
            }
            if running == 0 {
                break;
            }
            let Ok((pos, r)) = rx.recv() else { break };
            running -= 1;
            match r {
                Ok(out) => {
                    done.extend(graph.jobs[pos].stages.iter().copied());
                    outputs.extend(out);
                }
                Err(e) => {
                    failed.get_or_insert(e);
                }
            }
        }
    });
    match failed {
        Some(e) => Err(e),
        None => Ok(outputs),
    }
}

/// What every stage container of a build shares.
struct Host<'a> {
    registry: &'a Registry,
    state: &'a StateDir,
    /// The build's name: its workspace's, and its containers' prefix.
    build: &'a str,
    ws: &'a Workspace,
    context: &'a Path,
    engine: &'a Path,
    /// Every `--secret`, by id.
    secrets: &'a [(String, Vec<u8>)],
    seccomp: Seccomp,
    /// The digests of the files the host wrote into the workspace.
    inputs: &'a Inputs,
    /// `--source-date-epoch`, handed to every stage container.
    epoch: Option<u64>,
    /// Which stages write layers: all of them when the cache will store them.
    layers: StageLayers,
}

/// Runs a Job (a chain of stages) in one container rooted in the chain's base image, given the
/// digests of what it reads; returns the digests of what its stages wrote. The container's
/// directory, root and secret copies go when this returns, however it returns.
fn run_chain(
    h: &Host,
    job: &StageJob,
    base: Option<&ImageInfo>,
    digests: Digests,
) -> Result<BTreeMap<usize, Outputs>, BuildError> {
    let chain = &job.stages;
    let index = chain[0];
    let ca_file = std::env::var_os("SSL_CERT_FILE")
        .map(PathBuf::from)
        .filter(|p| p.is_file());
    let dir = ContainerDir::create(h.state, h.build, index).map_err(io(h
        .state
        .containers()
        .join(format!("{}-{index}", h.build))
        .display()))?;
    let secrets = SecretCopies::write(dir.path().join("secrets"), &job.secrets, h.secrets)
        .map_err(io(dir.path().join("secrets").display()))?;
    // A base resolved without its layers (Fetch::Copied): fetched now, by digest.
    let fetched = match base {
        Some(b) if b.layers.iter().any(|l| l.path.is_empty()) => {
            Some(crate::net::block_on(h.registry.pull(&b.pinned)).map_err(BuildError::Runtime)??)
        }
        _ => None,
    };
    let base = fetched.as_ref().or(base);
    let root = StageRoot::prepare(&h.state.base_trees(), dir.path(), base)?;
    let cache = h.state.run_cache();
    let started = std::time::Instant::now();
    let mut stage_args = StageArgs::in_pod(chain.to_vec(), digests);
    stage_args.epoch.source_date_epoch = h.epoch;
    stage_args.layers = h.layers;
    let c = Container {
        id: format!("slipway-{}-{index}", h.build),
        rootfs: &root.rootfs,
        engine: h.engine,
        workspace: h.ws,
        stages: chain,
        context: h.context,
        cache: &cache,
        secrets: secrets.dir(),
        seccomp: &h.seccomp,
        // The build's own SSL_CERT_FILE, if any, reaches ADD of https URLs in the stages.
        ca_file: ca_file.as_deref(),
        args: std::iter::once(paths::BIN.to_string())
            .chain(PodCommand::Stage(stage_args).to_args())
            .collect(),
    };
    let code = runc::run(&c, &dir.bundle());
    // Unmounted before the directory under it goes (drop order), secrets gone with them.
    drop(root);
    drop(secrets);
    drop(dir);
    let code = code?;
    eprintln!(
        "stages {chain:?}: container exited with {code} after {:.1}s",
        started.elapsed().as_secs_f64()
    );
    if code != 0 {
        for &i in chain {
            match h.ws.read_stage_error(i) {
                Ok(Some(message)) => return Err(BuildError::Stage { message }),
                Ok(None) => {}
                Err(source) => return Err(BuildError::StageFile { index: i, source }),
            }
        }
        return Err(BuildError::ContainerExit { index, code });
    }
    // The stages' own outputs, as they left them: what later containers may trust.
    let mut out = BTreeMap::new();
    for &i in chain {
        out.insert(i, trusted::outputs(h.ws, i)?);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn build_errors_keep_their_messages() {
        let e = BuildError::DynamicEngine(PathBuf::from("/usr/bin/slipway-builder"));
        assert_eq!(
            e.to_string(),
            "/usr/bin/slipway-builder is dynamically linked and cannot run inside base images; \
             build it with scripts/build-engine.sh (a static binary)"
        );
        let e = BuildError::Secret {
            id: "npm".into(),
            src: PathBuf::from("/no/such"),
            source: io::Error::from(io::ErrorKind::NotFound),
        };
        assert_eq!(e.to_string(), "--secret id=npm: /no/such: entity not found");
        let e = BuildError::Runtime(RuntimeError(io::Error::other("no threads")));
        assert_eq!(e.to_string(), "starting the runtime: no threads");
        let e = BuildError::ContainerExit {
            index: 2,
            code: 137,
        };
        assert_eq!(
            e.to_string(),
            "stage #2: the stage container exited with 137"
        );
        let e = BuildError::from(RuncError::Runc(io::Error::from(io::ErrorKind::NotFound)));
        assert_eq!(e.to_string(), "runc: entity not found (is runc installed?)");
        let e = BuildError::SecretId { id: "../x".into() };
        assert_eq!(
            e.to_string(),
            "--secret id=../x: not a valid secret id (it names a file)"
        );
        let e = BuildError::StageFile {
            index: 1,
            source: WorkspaceError::Unsafe {
                path: PathBuf::from("/s/builds/1-2/stages/1/error.txt"),
                source: crate::workspace::BeneathError::Symlink,
            },
        };
        assert_eq!(
            e.to_string(),
            "stage #1: /s/builds/1-2/stages/1/error.txt: a symlink (not followed)"
        );
    }
}
