//! How a build pod is started: where things are mounted inside it, the environment variables
//! it reads, and its arguments. The operator renders these into Jobs (and local mode into runc
//! containers) with `to_args()`; `slipway-builder` parses the very same clap structs. A path or
//! flag of this contract is written here and nowhere else.

use std::collections::BTreeMap;
use std::path::PathBuf;

use clap::{Args, Subcommand};
use serde::{Deserialize, Serialize};
use slipway_frontend::plan::PlanOptions;

use crate::annotations::Annotation;
use crate::epoch::{EpochArgs, SourceDateEpoch};
use crate::size::Size;

#[path = "pod_digests.rs"]
mod digests;
pub use digests::Digests;

/// Paths inside a build pod (or a local stage container). Everything of Slipway's lives under
/// [`paths::ROOT`], which the engine never puts in a layer.
pub mod paths {
    /// The engine's own folder; never in a layer.
    pub const ROOT: &str = "/.slipway";
    /// The static engine binary's folder: in a stage pod, the workspace's [`ENGINE`] folder
    /// mounted read-only.
    pub const BIN_DIR: &str = "/.slipway/bin";
    /// The engine's folder in the workspace (relative to it): the prepare pod copies its own
    /// binary there as its last step; later pods mount it read-only at [`BIN_DIR`], so a stage
    /// pod needs no init container to copy the engine in (an init container costs a pod about
    /// a second: the kubelet starts the next container only when it has seen the last exit).
    pub const ENGINE: &str = "engine";
    /// Where the builder image keeps the static engine (Dockerfile.local, Dockerfile).
    pub const IN_BUILDER_IMAGE: &str = "/slipway-builder";
    /// The engine binary itself, in a stage pod.
    pub const BIN: &str = "/.slipway/bin/slipway-builder";
    /// The build's workspace volume.
    pub const WORKSPACE: &str = "/.slipway/workspace";
    /// The plan in the workspace, as stage pods read it.
    pub const PLAN: &str = "/.slipway/workspace/plan.json";
    /// The stages' folders in the workspace (relative to it): `stages/<N>`, each writable
    /// only by the pod that runs stage N ([`stage_dir`]).
    pub const STAGES: &str = "stages";
    /// `RUN --mount=type=cache` directories, by id.
    pub const CACHE: &str = "/.slipway/cache";
    /// The secrets a stage's RUN steps mount, one file per id.
    pub const SECRETS: &str = "/.slipway/secrets";
    /// Extra CA certificates (local mode: the build's own `SSL_CERT_FILE`).
    pub const CA_FILE: &str = "/.slipway/ca.pem";
    /// The pull secrets (dockerconfigjson), one directory per Secret; see [`super::env::AUTH_DIR`].
    pub const PULL_AUTH: &str = "/.slipway/auth";
    /// The push secret, as `$DOCKER_CONFIG/config.json`.
    pub const PUSH_AUTH: &str = "/.slipway/docker";
    /// A ConfigMap-held context: the folder it is mounted in, and the archive in it.
    pub const SOURCE: &str = "/.slipway/source";
    pub const SOURCE_ARCHIVE: &str = "/.slipway/source/context";
    /// The git credentials (`username`, `password` or `token` files: [`super::GIT_AUTH_KEYS`]).
    pub const GIT_AUTH: &str = "/.slipway/git-auth";
    /// The push pod's blob cache (base layers it fetches to push them elsewhere): its own
    /// volume, so that the workspace is read-only to it.
    pub const PUSH_BLOBS: &str = "/.slipway/blobs";

    /// Stage `index`'s folder, relative to the workspace: its layers, result, exports, error
    /// and scratch space, and nothing else of the workspace is its to write.
    pub fn stage_dir(index: usize) -> String {
        format!("{STAGES}/{index}")
    }

    /// Where a stage that starts from a cache checkpoint (a prefix hit) finds it, relative
    /// to the workspace: `checkpoint.json` and the layer blobs it lists. Written by the
    /// trusted side before the stage runs; read-only to the stage.
    pub fn resume_dir(index: usize) -> String {
        format!("resume/{index}")
    }
}

/// The keys of a git Secret the fetch step reads (and the only ones mounted): a user name,
/// and a password or a token.
pub const GIT_AUTH_KEYS: [&str; 3] = ["username", "password", "token"];

/// Environment variables a build pod reads.
pub mod env {
    /// Directories of dockerconfigjson files for pulls, `:`-separated.
    pub const AUTH_DIR: &str = "SLIPWAY_AUTH_DIR";
    /// An inline source as JSON ([`super::Inline`]).
    pub const INLINE_SOURCE: &str = "SLIPWAY_INLINE_SOURCE";
    /// Where the push credentials are (Docker's own variable).
    pub const DOCKER_CONFIG: &str = "DOCKER_CONFIG";
}

/// `spec.source.inline` as the operator passes it (JSON in [`env::INLINE_SOURCE`]).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Inline {
    pub dockerfile: String,
    #[serde(default)]
    pub files: BTreeMap<String, String>,
}

/// The subcommands that run in build pods, as the operator starts them.
// One value per pod start: the size difference between variants costs nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand, Debug, Clone, PartialEq, Eq)]
pub enum PodCommand {
    /// Fetch the source into the workspace, plan, resolve the base images; report the graph
    /// of stage Jobs (termination message and log): `fetch` then `resolve`, in one process.
    Prepare(PrepareArgs),
    /// The prepare pod's init container, the only one holding the git credentials: fetch
    /// the source into the workspace's `context/` (a failure is reported like prepare's).
    Fetch(FetchArgs),
    /// The prepare pod's main container, holding no git credentials: read the Dockerfile
    /// from the fetched context, plan, resolve the base images; report the graph.
    Resolve(ResolveArgs),
    /// Run one stage of a plan, as root, inside the stage's base image (what a stage Job's
    /// container runs). Writes the stage's layers, result and exports into the workspace.
    Stage(StageArgs),
    /// A cluster build's last pod: assemble the image from the workspace and push it.
    Push(PushArgs),
    /// Nothing, silently: the container of a stage pod that is there only so that the kubelet
    /// pulls a later stage's image while this stage runs (it runs the engine, not the image).
    PullAhead,
}

impl PodCommand {
    /// The container's argv after the binary: the subcommand and its flags.
    pub fn to_args(&self) -> Vec<String> {
        let (name, rest) = match self {
            PodCommand::Prepare(a) => ("prepare", a.to_args()),
            PodCommand::Fetch(a) => ("fetch", a.to_args()),
            PodCommand::Resolve(a) => ("resolve", a.to_args()),
            PodCommand::Stage(a) => ("stage", a.to_args()),
            PodCommand::Push(a) => ("push", a.to_args()),
            PodCommand::PullAhead => ("pull-ahead", vec![]),
        };
        std::iter::once(name.to_string()).chain(rest).collect()
    }
}

/// `--flag value` pairs for each value.
fn repeated<'a>(flag: &'a str, values: &'a [String]) -> impl Iterator<Item = String> + 'a {
    values
        .iter()
        .flat_map(move |v| [flag.to_string(), v.clone()])
}

fn optional(flag: &str, value: &Option<String>) -> Vec<String> {
    value
        .iter()
        .flat_map(|v| [flag.to_string(), v.clone()])
        .collect()
}

fn path(p: &std::path::Path) -> String {
    p.display().to_string()
}

/// What the Dockerfile is planned with: the target and the build arguments.
#[derive(Args, Debug, Clone, Default, PartialEq, Eq)]
pub struct PlanArgs {
    /// Stage to build (default: the last one).
    #[arg(long)]
    pub target: Option<String>,
    /// KEY=VALUE, or KEY to take the value from the environment. Repeatable.
    #[arg(long = "build-arg", value_name = "KEY=VALUE")]
    pub build_args: Vec<String>,
}

impl PlanArgs {
    /// The planner's options: `--build-arg K=V`, and a bare `K` takes its value from the
    /// environment (or is dropped), as `docker build` does.
    pub fn to_options(&self) -> PlanOptions {
        PlanOptions {
            target: self.target.clone(),
            build_args: self
                .build_args
                .iter()
                .filter_map(|a| match a.split_once('=') {
                    Some((k, v)) => Some((k.to_string(), v.to_string())),
                    None => std::env::var(a).ok().map(|v| (a.clone(), v)),
                })
                .collect(),
        }
    }

    pub fn to_args(&self) -> Vec<String> {
        let mut a = optional("--target", &self.target);
        a.extend(repeated("--build-arg", &self.build_args));
        a
    }
}

/// Registries spoken to over plain HTTP.
#[derive(Args, Debug, Clone, Default, PartialEq, Eq)]
pub struct RegistryArgs {
    /// A registry spoken to over plain HTTP (repeatable).
    #[arg(long = "insecure-registry", value_name = "HOST[:PORT]")]
    pub insecure_registries: Vec<String>,
}

impl RegistryArgs {
    pub fn to_args(&self) -> Vec<String> {
        repeated("--insecure-registry", &self.insecure_registries).collect()
    }
}

/// How much a build pod takes in at most.
#[derive(Args, Debug, Clone, Copy, PartialEq, Eq)]
pub struct SizeLimitArgs {
    /// The largest context (downloaded, unpacked or checked out), git object or download a
    /// pod takes in: bytes, or with Ki, Mi, Gi or Ti.
    #[arg(long = "size-limit", value_name = "SIZE", default_value_t = Size::DEFAULT_LIMIT)]
    pub size_limit: Size,
}

impl Default for SizeLimitArgs {
    fn default() -> Self {
        SizeLimitArgs {
            size_limit: Size::DEFAULT_LIMIT,
        }
    }
}

impl SizeLimitArgs {
    pub fn to_args(&self) -> Vec<String> {
        if self.size_limit == Size::DEFAULT_LIMIT {
            return Vec::new();
        }
        vec!["--size-limit".to_string(), self.size_limit.to_string()]
    }
}

/// Where a cluster build's context comes from: exactly one of these.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// Files from the ImageBuild itself, as JSON in [`env::INLINE_SOURCE`].
    Inline,
    /// A tar(.gz) file (a mounted ConfigMap key); `shown` names it in errors.
    ContextTar { path: PathBuf, shown: String },
    /// An https tarball, checked against its sha256 when one is given.
    Tarball { url: String, sha256: Option<String> },
    /// An OCI artifact (`registry/repository`) pinned by its manifest's digest, whose one
    /// layer is the context as a tar.gz; pulled with the pod's pull credentials.
    Oci { image: String, digest: String },
    /// A git repository at a revision, optionally a folder of it, with credentials from a
    /// folder of `username`/`password`/`token` files.
    Git {
        url: String,
        revision: Option<String>,
        context_dir: Option<String>,
        auth_dir: Option<PathBuf>,
    },
}

/// The source flags of `prepare`; clap holds them to exactly one source.
#[derive(Args, Debug, Clone, Default, PartialEq, Eq)]
#[group(skip)]
#[command(group(
    clap::ArgGroup::new("source")
        .required(true)
        .multiple(false)
        .args(["inline", "context_tar", "tarball_url", "git_url", "oci_image"])
))]
pub struct SourceArgs {
    /// The context is inline: JSON {dockerfile, files} in $SLIPWAY_INLINE_SOURCE.
    #[arg(long)]
    pub inline: bool,
    /// The context is this tar(.gz) file (a mounted ConfigMap key).
    #[arg(long)]
    pub context_tar: Option<PathBuf>,
    /// How to name the tar file in errors.
    #[arg(long, default_value = "the context archive", requires = "context_tar")]
    pub context_tar_name: String,
    /// The context is this https tarball.
    #[arg(long)]
    pub tarball_url: Option<String>,
    #[arg(long, requires = "tarball_url")]
    pub tarball_sha256: Option<String>,
    /// The context is this git repository.
    #[arg(long)]
    pub git_url: Option<String>,
    #[arg(long, requires = "git_url")]
    pub git_revision: Option<String>,
    #[arg(long, requires = "git_url")]
    pub git_context_dir: Option<String>,
    /// A directory with username and password (or token) files for git over https.
    #[arg(long, requires = "git_url")]
    pub git_auth_dir: Option<PathBuf>,
    /// The context is the one layer of this OCI artifact (`registry/repository`)...
    #[arg(long, requires = "oci_digest")]
    pub oci_image: Option<String>,
    /// ...at this manifest digest.
    #[arg(long, requires = "oci_image")]
    pub oci_digest: Option<String>,
}

const DEFAULT_TAR_NAME: &str = "the context archive";

impl SourceArgs {
    /// The one source the flags name (`None` only for flags clap would have refused).
    pub fn source(&self) -> Option<Source> {
        if self.inline {
            Some(Source::Inline)
        } else if let Some(path) = &self.context_tar {
            Some(Source::ContextTar {
                path: path.clone(),
                shown: self.context_tar_name.clone(),
            })
        } else if let (Some(image), Some(digest)) = (&self.oci_image, &self.oci_digest) {
            Some(Source::Oci {
                image: image.clone(),
                digest: digest.clone(),
            })
        } else if let Some(url) = &self.tarball_url {
            Some(Source::Tarball {
                url: url.clone(),
                sha256: self.tarball_sha256.clone(),
            })
        } else {
            self.git_url.as_ref().map(|url| Source::Git {
                url: url.clone(),
                revision: self.git_revision.clone(),
                context_dir: self.git_context_dir.clone(),
                auth_dir: self.git_auth_dir.clone(),
            })
        }
    }

    pub fn to_args(&self) -> Vec<String> {
        let mut a = Vec::new();
        match self.source() {
            None => {}
            Some(Source::Inline) => a.push("--inline".to_string()),
            Some(Source::ContextTar { path: p, shown }) => {
                a.extend(["--context-tar".to_string(), path(&p)]);
                if shown != DEFAULT_TAR_NAME {
                    a.extend(["--context-tar-name".to_string(), shown]);
                }
            }
            Some(Source::Oci { image, digest }) => {
                a.extend(["--oci-image".to_string(), image]);
                a.extend(["--oci-digest".to_string(), digest]);
            }
            Some(Source::Tarball { url, sha256 }) => {
                a.extend(["--tarball-url".to_string(), url]);
                a.extend(optional("--tarball-sha256", &sha256));
            }
            Some(Source::Git {
                url,
                revision,
                context_dir,
                auth_dir,
            }) => {
                a.extend(["--git-url".to_string(), url]);
                a.extend(optional("--git-revision", &revision));
                a.extend(optional("--git-context-dir", &context_dir));
                a.extend(optional("--git-auth-dir", &auth_dir.as_deref().map(path)));
            }
        }
        a
    }
}

impl From<Source> for SourceArgs {
    fn from(s: Source) -> Self {
        let mut a = SourceArgs {
            context_tar_name: DEFAULT_TAR_NAME.into(),
            ..Default::default()
        };
        match s {
            Source::Inline => a.inline = true,
            Source::ContextTar { path, shown } => {
                a.context_tar = Some(path);
                a.context_tar_name = shown;
            }
            Source::Oci { image, digest } => {
                a.oci_image = Some(image);
                a.oci_digest = Some(digest);
            }
            Source::Tarball { url, sha256 } => {
                a.tarball_url = Some(url);
                a.tarball_sha256 = sha256;
            }
            Source::Git {
                url,
                revision,
                context_dir,
                auth_dir,
            } => {
                a.git_url = Some(url);
                a.git_revision = revision;
                a.git_context_dir = context_dir;
                a.git_auth_dir = auth_dir;
            }
        }
        a
    }
}

/// The layer cache of a cluster build (`spec.cache`), as the prepare step looks it up.
#[derive(Args, Debug, Clone, Default, PartialEq, Eq)]
pub struct CacheArgs {
    /// The cache repository (`registry/repository`, no tag): stages found there are restored
    /// into the workspace and run no Job.
    #[arg(long = "cache-repo", value_name = "REGISTRY/REPOSITORY")]
    pub cache_repo: Option<String>,
    /// The build's `sourceDateEpoch`, part of every key (`git`: the fetched commit's time).
    #[arg(long = "cache-source-date-epoch", value_name = "SECONDS|git")]
    pub epoch: Option<SourceDateEpoch>,
}

impl CacheArgs {
    pub fn to_args(&self) -> Vec<String> {
        let mut a = optional("--cache-repo", &self.cache_repo);
        a.extend(optional(
            "--cache-source-date-epoch",
            &self.epoch.map(|e| e.to_string()),
        ));
        a
    }
}

/// `slipway-builder prepare`.
#[derive(Args, Debug, Clone, PartialEq, Eq)]
pub struct PrepareArgs {
    #[arg(long)]
    pub workspace: PathBuf,
    /// The Dockerfile's path in the context.
    #[arg(long, default_value = "Dockerfile")]
    pub dockerfile: String,
    #[command(flatten)]
    pub plan: PlanArgs,
    #[command(flatten)]
    pub registries: RegistryArgs,
    #[command(flatten)]
    pub source: SourceArgs,
    #[command(flatten)]
    pub limits: SizeLimitArgs,
    #[command(flatten)]
    pub cache: CacheArgs,
}

impl PrepareArgs {
    pub fn to_args(&self) -> Vec<String> {
        let mut a = workspace_and_dockerfile(&self.workspace, &self.dockerfile);
        a.extend(self.plan.to_args());
        a.extend(self.registries.to_args());
        a.extend(self.source.to_args());
        a.extend(self.limits.to_args());
        a.extend(self.cache.to_args());
        a
    }

    /// The fetch half (the prepare pod's init container).
    pub fn fetch(&self) -> FetchArgs {
        FetchArgs {
            workspace: self.workspace.clone(),
            dockerfile: self.dockerfile.clone(),
            source: self.source.clone(),
            limits: self.limits,
            // Only a source in a registry talks to one.
            registries: match self.source.source() {
                Some(Source::Oci { .. }) => self.registries.clone(),
                _ => RegistryArgs::default(),
            },
        }
    }

    /// The resolve half (the prepare pod's main container).
    pub fn resolve(&self) -> ResolveArgs {
        ResolveArgs {
            workspace: self.workspace.clone(),
            dockerfile: self.dockerfile.clone(),
            plan: self.plan.clone(),
            registries: self.registries.clone(),
            cache: self.cache.clone(),
        }
    }
}

fn workspace_and_dockerfile(workspace: &std::path::Path, dockerfile: &str) -> Vec<String> {
    vec![
        "--workspace".to_string(),
        path(workspace),
        "--dockerfile".to_string(),
        dockerfile.to_string(),
    ]
}

/// `slipway-builder fetch`: the source into `<workspace>/context`.
#[derive(Args, Debug, Clone, PartialEq, Eq)]
pub struct FetchArgs {
    #[arg(long)]
    pub workspace: PathBuf,
    /// The Dockerfile's path in the context (where an inline Dockerfile is written).
    #[arg(long, default_value = "Dockerfile")]
    pub dockerfile: String,
    #[command(flatten)]
    pub source: SourceArgs,
    #[command(flatten)]
    pub limits: SizeLimitArgs,
    /// Registries spoken to over plain HTTP (an OCI source's).
    #[command(flatten)]
    pub registries: RegistryArgs,
}

impl FetchArgs {
    pub fn to_args(&self) -> Vec<String> {
        let mut a = workspace_and_dockerfile(&self.workspace, &self.dockerfile);
        a.extend(self.source.to_args());
        a.extend(self.registries.to_args());
        a.extend(self.limits.to_args());
        a
    }
}

/// `slipway-builder resolve`: plan the fetched context, resolve its images.
#[derive(Args, Debug, Clone, PartialEq, Eq)]
pub struct ResolveArgs {
    #[arg(long)]
    pub workspace: PathBuf,
    /// The Dockerfile's path in the context.
    #[arg(long, default_value = "Dockerfile")]
    pub dockerfile: String,
    #[command(flatten)]
    pub plan: PlanArgs,
    #[command(flatten)]
    pub registries: RegistryArgs,
    #[command(flatten)]
    pub cache: CacheArgs,
}

impl ResolveArgs {
    pub fn to_args(&self) -> Vec<String> {
        let mut a = workspace_and_dockerfile(&self.workspace, &self.dockerfile);
        a.extend(self.plan.to_args());
        a.extend(self.registries.to_args());
        a.extend(self.cache.to_args());
        a
    }
}

/// `slipway-builder stage`.
#[derive(Args, Debug, Clone, PartialEq, Eq)]
pub struct StageArgs {
    #[arg(long)]
    pub plan: PathBuf,
    /// The stage's index in the Dockerfile; repeat for a FROM-chain run in one go.
    #[arg(long = "stage", required = true)]
    pub stages: Vec<usize>,
    #[arg(long)]
    pub workspace: PathBuf,
    #[command(flatten)]
    pub digests: Digests,
    /// The cap on `ADD <url>` downloads.
    #[command(flatten)]
    pub limits: SizeLimitArgs,
    /// The time the stage's history and its layers' files are stamped with (reproducible).
    #[command(flatten)]
    pub epoch: EpochArgs,
    /// Which of the chain's stages write layers.
    #[arg(long, value_enum, default_value_t = StageLayers::Cached)]
    pub layers: StageLayers,
}

/// Which stages write their layers (the RUN walks, the tars, their gzip).
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum StageLayers {
    /// The stages whose layers a later step or a layer cache can use: those read, and those
    /// with checkpoints (a RUN before their last instruction), which a later build resumes
    /// from. The cache entry of any other stage holds its result and exports only, and
    /// serves only builds that read nothing else of it.
    #[default]
    Cached,
    /// Only the stages whose layers a later step reads (`Plan::layers_read`: the target and
    /// the stages others are built `FROM`); the others leave their exports and result only.
    Read,
}

impl StageLayers {
    /// `Read` when no layer cache will store the stages, else `Cached`.
    pub fn for_cache(cached: bool) -> Self {
        if cached { Self::Cached } else { Self::Read }
    }
}

impl StageArgs {
    /// A chain of stages as a build pod runs it: the plan and workspace at their pod paths,
    /// and the digests of what it reads there.
    pub fn in_pod(stages: Vec<usize>, digests: Digests) -> Self {
        StageArgs {
            plan: PathBuf::from(paths::PLAN),
            stages,
            workspace: PathBuf::from(paths::WORKSPACE),
            limits: SizeLimitArgs::default(),
            epoch: EpochArgs::default(),
            layers: StageLayers::Cached,
            digests,
        }
    }

    pub fn to_args(&self) -> Vec<String> {
        let mut a = vec!["--plan".to_string(), path(&self.plan)];
        a.extend(
            self.stages
                .iter()
                .flat_map(|i| ["--stage".to_string(), i.to_string()]),
        );
        a.extend(["--workspace".to_string(), path(&self.workspace)]);
        a.extend(self.limits.to_args());
        a.extend(self.epoch.to_args());
        if self.layers == StageLayers::Read {
            a.extend(["--layers".to_string(), "read".to_string()]);
        }
        a.extend(self.digests.to_args());
        a
    }
}

/// `slipway-builder push`.
#[derive(Args, Debug, Clone, PartialEq, Eq)]
pub struct PushArgs {
    #[arg(long)]
    pub workspace: PathBuf,
    #[arg(long = "destination", short = 'd', required = true)]
    pub destinations: Vec<String>,
    #[command(flatten)]
    pub registries: RegistryArgs,
    /// Where base layers fetched for the push are kept (default: `blobs/` in the workspace).
    #[arg(long)]
    pub blob_cache: Option<PathBuf>,
    /// The image config's `created` (reproducible images), and the manifest's
    /// `org.opencontainers.image.created` annotation.
    #[command(flatten)]
    pub epoch: EpochArgs,
    #[command(flatten)]
    pub digests: Digests,
    /// Manifest annotations, from the controller ([`crate::annotations`]).
    #[arg(long = "annotation", value_name = "KEY=VALUE")]
    pub annotations: Vec<Annotation>,
    /// The cache repository the stages that ran are stored in, once the image is pushed.
    #[arg(long = "cache-repo", value_name = "REGISTRY/REPOSITORY")]
    pub cache_repo: Option<String>,
}

impl PushArgs {
    pub fn to_args(&self) -> Vec<String> {
        let mut a = vec!["--workspace".to_string(), path(&self.workspace)];
        a.extend(repeated("--destination", &self.destinations));
        a.extend(self.registries.to_args());
        a.extend(optional(
            "--blob-cache",
            &self.blob_cache.as_deref().map(path),
        ));
        a.extend(self.epoch.to_args());
        a.extend(self.digests.to_args());
        for an in &self.annotations {
            a.extend(["--annotation".to_string(), an.to_string()]);
        }
        a.extend(optional("--cache-repo", &self.cache_repo));
        a
    }
}

#[cfg(test)]
#[path = "pod_tests.rs"]
mod tests;
