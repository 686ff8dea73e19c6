//! `slipway-builder`: the in-pod build binary, and the front end's debugging commands.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use slipway_builder::dockerfile::{instructions, parser};
use slipway_builder::exec::{self, ExecSpec};
use slipway_builder::git::GitSpec;
use slipway_builder::graph::{PodResult, Reason};
use slipway_builder::local_build::{self, BuildOptions};
use slipway_builder::plan::{self, PlanOptions};
use slipway_builder::prepare::{self, PrepareOptions, SourceSpec};
use slipway_builder::push::{self, PushOptions};
use slipway_builder::source;
use slipway_builder::stage::{self, StageOptions};
use slipway_builder::workspace::Workspace;

#[derive(Parser)]
#[command(name = "slipway-builder", version, about = "Slipway's build engine")]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Parse a Dockerfile. With --dump, print the AST as BuildKit's `Node.Dump()` does;
    /// without it, also check every instruction and print the stages as JSON.
    Parse {
        /// Print BuildKit's AST dump (the parser alone, as BuildKit's parser tests do).
        #[arg(long)]
        dump: bool,
        file: PathBuf,
    },
    /// Print the stage plan as JSON: the needed stages, each after its dependencies.
    Plan {
        #[arg(long, short = 'f')]
        dockerfile: PathBuf,
        /// Stage to build (default: the last one).
        #[arg(long)]
        target: Option<String>,
        /// KEY=VALUE, or KEY to take the value from the environment. Repeatable.
        #[arg(long = "build-arg", value_name = "KEY=VALUE")]
        build_args: Vec<String>,
    },
    /// Run one stage of a plan, as root, inside the stage's base image (what a stage Job's
    /// container runs). Writes the stage's layers, result and exports into the workspace.
    Stage {
        #[arg(long)]
        plan: PathBuf,
        /// The stage's index in the Dockerfile; repeat for a FROM-chain run in one go.
        #[arg(long = "stage", required = true)]
        stages: Vec<usize>,
        #[arg(long)]
        workspace: PathBuf,
    },
    /// Build a Dockerfile on this machine (stages in runc containers) and push the image.
    Build {
        #[arg(long)]
        context: PathBuf,
        /// Default: Dockerfile in the context.
        #[arg(long, short = 'f')]
        dockerfile: Option<PathBuf>,
        /// Where to push (repeatable); without one the image is built and not pushed.
        #[arg(long = "destination", short = 'd')]
        destinations: Vec<String>,
        #[arg(long)]
        target: Option<String>,
        #[arg(long = "build-arg", value_name = "KEY=VALUE")]
        build_args: Vec<String>,
        /// A registry spoken to over plain HTTP (repeatable).
        #[arg(long = "insecure-registry", value_name = "HOST[:PORT]")]
        insecure_registries: Vec<String>,
        /// id=ID,src=FILE: a secret for RUN --mount=type=secret (repeatable).
        #[arg(long = "secret")]
        secrets: Vec<String>,
        /// Blob cache, cache mounts and workspaces.
        #[arg(long, default_value = "/var/lib/slipway")]
        state_dir: PathBuf,
        #[arg(long)]
        keep_workspace: bool,
        /// At most this many stages at once (default: all that are ready).
        #[arg(long, default_value_t = 0)]
        max_parallel: usize,
    },
    /// A cluster build's first pod: fetch the source into the workspace, plan, resolve the
    /// base images; report the graph of stage Jobs (termination message and log).
    Prepare {
        #[arg(long)]
        workspace: PathBuf,
        /// The Dockerfile's path in the context.
        #[arg(long, default_value = "Dockerfile")]
        dockerfile: String,
        #[arg(long)]
        target: Option<String>,
        #[arg(long = "build-arg", value_name = "KEY=VALUE")]
        build_args: Vec<String>,
        #[arg(long = "insecure-registry", value_name = "HOST[:PORT]")]
        insecure_registries: Vec<String>,
        /// The context is inline: JSON {dockerfile, files} in $SLIPWAY_INLINE_SOURCE.
        #[arg(long)]
        inline: bool,
        /// The context is this tar(.gz) file (a mounted ConfigMap key).
        #[arg(long)]
        context_tar: Option<PathBuf>,
        /// How to name the tar file in errors.
        #[arg(long, default_value = "the context archive")]
        context_tar_name: String,
        /// The context is this https tarball.
        #[arg(long)]
        tarball_url: Option<String>,
        #[arg(long)]
        tarball_sha256: Option<String>,
        /// The context is this git repository.
        #[arg(long)]
        git_url: Option<String>,
        #[arg(long)]
        git_revision: Option<String>,
        #[arg(long)]
        git_context_dir: Option<String>,
        /// A directory with username and password (or token) files for git over https.
        #[arg(long)]
        git_auth_dir: Option<PathBuf>,
    },
    /// A cluster build's last pod: assemble the image from the workspace and push it.
    Push {
        #[arg(long)]
        workspace: PathBuf,
        #[arg(long = "destination", short = 'd', required = true)]
        destinations: Vec<String>,
        #[arg(long = "insecure-registry", value_name = "HOST[:PORT]")]
        insecure_registries: Vec<String>,
    },
    /// Copy this (static) binary into DIR: the init container of a stage pod.
    Install { dir: PathBuf },
    /// Internal: how the engine starts a RUN command as the stage's user.
    #[command(name = "__exec", hide = true)]
    Exec {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
}

/// `--secret id=ID,src=FILE` (also `source=`).
fn secret(raw: &str) -> Result<(String, PathBuf), String> {
    let mut id = None;
    let mut src = None;
    for field in raw.split(',') {
        match field.split_once('=') {
            Some(("id", v)) => id = Some(v.to_string()),
            Some(("src" | "source", v)) => src = Some(PathBuf::from(v)),
            _ => return Err(format!("--secret {raw}: expected id=ID,src=FILE")),
        }
    }
    match (id, src) {
        (Some(i), Some(s)) => Ok((i, s)),
        (Some(i), None) => Ok((i.clone(), PathBuf::from(i))),
        _ => Err(format!("--secret {raw}: expected id=ID,src=FILE")),
    }
}

/// An error for the user: `FILE:LINE: message` when there is a line.
fn located(file: &Path, line: Option<usize>, message: impl std::fmt::Display) -> String {
    match line {
        Some(l) => format!("{}:{l}: {message}", file.display()),
        None => format!("{}: {message}", file.display()),
    }
}

fn fs_read_trimmed(p: &Path) -> Option<String> {
    std::fs::read_to_string(p)
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
}

fn read(file: &Path) -> Result<String, String> {
    let bytes = std::fs::read(file).map_err(|e| format!("{}: {e}", file.display()))?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

/// `--build-arg K=V`; a bare `K` takes its value from the environment, or is dropped.
fn build_args(raw: &[String]) -> Vec<(String, String)> {
    raw.iter()
        .filter_map(|a| match a.split_once('=') {
            Some((k, v)) => Some((k.to_string(), v.to_string())),
            None => std::env::var(a).ok().map(|v| (a.clone(), v)),
        })
        .collect()
}

fn run(cli: Cli) -> Result<(), String> {
    match cli.command {
        Cmd::Parse { dump, file } => {
            let text = read(&file)?;
            let parsed =
                parser::parse(&text).map_err(|e| located(&file, Some(e.start_line), &e.message))?;
            for w in &parsed.warnings {
                eprintln!(
                    "{}",
                    located(&file, Some(w.line), format!("warning: {}", w.message))
                );
            }
            if dump {
                println!("{}", parsed.ast.dump());
                return Ok(());
            }
            let df = instructions::from_ast(&parsed.ast).map_err(|e| {
                located(
                    &file,
                    Some(e.line),
                    format!("{}: {}", e.instruction.to_uppercase(), e.message),
                )
            })?;
            let json = serde_json::to_string_pretty(&df).map_err(|e| e.to_string())?;
            println!("{json}");
            Ok(())
        }
        Cmd::Plan {
            dockerfile,
            target,
            build_args: raw,
        } => {
            let text = read(&dockerfile)?;
            let opts = PlanOptions {
                target,
                build_args: build_args(&raw),
            };
            let plan = plan::plan(&text, &opts).map_err(|e| located(&dockerfile, e.line(), &e))?;
            for w in &plan.warnings {
                eprintln!("{}", located(&dockerfile, None, format!("warning: {w}")));
            }
            let json = serde_json::to_string_pretty(&plan).map_err(|e| e.to_string())?;
            println!("{json}");
            Ok(())
        }
        Cmd::Stage {
            plan,
            stages,
            workspace,
        } => {
            let opts = StageOptions {
                plan,
                stages: stages.clone(),
                workspace: workspace.clone(),
                secrets_dir: None,
                cache_dir: None,
            };
            match stage::run_stage(&opts) {
                Ok(r) => {
                    PodResult::Stage {
                        layers: r.layers.len(),
                    }
                    .report();
                    Ok(())
                }
                Err(e) => {
                    PodResult::Failed {
                        reason: Reason::StageFailed,
                        message: e.to_string(),
                    }
                    .report();
                    // The message the build (or the operator) reports, kept in the workspace.
                    let ws = Workspace::new(&workspace);
                    for index in stages {
                        let _ = std::fs::create_dir_all(ws.stage_dir(index));
                        let _ =
                            std::fs::write(ws.stage_dir(index).join("error.txt"), e.to_string());
                    }
                    Err(e.to_string())
                }
            }
        }
        Cmd::Build {
            context,
            dockerfile,
            destinations,
            target,
            build_args: raw,
            insecure_registries,
            secrets,
            state_dir,
            keep_workspace,
            max_parallel,
        } => {
            let opts = BuildOptions {
                context,
                dockerfile,
                destinations,
                target,
                build_args: build_args(&raw),
                insecure_registries,
                secrets: secrets
                    .iter()
                    .map(|s| secret(s))
                    .collect::<Result<_, _>>()?,
                state_dir,
                keep_workspace,
                max_parallel,
            };
            let out = local_build::build(&opts).map_err(|e| e.to_string())?;
            println!("{}", out.digest);
            Ok(())
        }
        Cmd::Prepare {
            workspace,
            dockerfile,
            target,
            build_args: raw,
            insecure_registries,
            inline,
            context_tar,
            context_tar_name,
            tarball_url,
            tarball_sha256,
            git_url,
            git_revision,
            git_context_dir,
            git_auth_dir,
        } => {
            let source = if inline {
                let json = std::env::var(source::INLINE_ENV).unwrap_or_default();
                SourceSpec::Inline(
                    serde_json::from_str(&json)
                        .map_err(|e| format!("${}: {e}", source::INLINE_ENV))?,
                )
            } else if let Some(path) = context_tar {
                SourceSpec::Tar {
                    path,
                    shown: context_tar_name,
                }
            } else if let Some(url) = tarball_url {
                SourceSpec::Tarball {
                    url,
                    sha256: tarball_sha256,
                }
            } else if let Some(url) = git_url {
                let credentials = git_auth_dir.and_then(|d| {
                    let read = |f: &str| fs_read_trimmed(&d.join(f));
                    match (read("username"), read("password"), read("token")) {
                        (u, Some(p), _) => Some((u.unwrap_or_else(|| "git".into()), p)),
                        (u, None, Some(t)) => Some((u.unwrap_or_else(|| "git".into()), t)),
                        _ => None,
                    }
                });
                SourceSpec::Git(GitSpec {
                    url,
                    revision: git_revision,
                    context_dir: git_context_dir,
                    credentials,
                })
            } else {
                return Err(
                    "prepare: no source (--inline, --context-tar, --tarball-url or --git-url)"
                        .into(),
                );
            };
            let opts = PrepareOptions {
                workspace,
                source,
                dockerfile,
                target,
                build_args: build_args(&raw),
                insecure_registries,
            };
            let result = match prepare::prepare(&opts) {
                Ok(g) => PodResult::Graph(g),
                Err(e) => PodResult::Failed {
                    reason: e.reason,
                    message: e.message,
                },
            };
            result.report();
            match result {
                PodResult::Failed { message, .. } => Err(message),
                _ => Ok(()),
            }
        }
        Cmd::Push {
            workspace,
            destinations,
            insecure_registries,
        } => {
            let opts = PushOptions {
                workspace,
                destinations: destinations.clone(),
                insecure_registries,
            };
            match push::push(&opts) {
                Ok(digest) => {
                    PodResult::Pushed {
                        digest: digest.clone(),
                        refs: destinations,
                    }
                    .report();
                    Ok(())
                }
                Err(message) => {
                    PodResult::Failed {
                        reason: Reason::PushFailed,
                        message: message.clone(),
                    }
                    .report();
                    Err(message)
                }
            }
        }
        Cmd::Install { dir } => {
            let exe = std::env::current_exe().map_err(|e| format!("locating myself: {e}"))?;
            std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
            let to = dir.join("slipway-builder");
            std::fs::copy(&exe, &to).map_err(|e| format!("{}: {e}", to.display()))?;
            Ok(())
        }
        Cmd::Exec { args } => {
            let spec = ExecSpec::from_args(&args)?;
            match exec::exec(&spec) {
                Ok(never) => match never {},
                Err(e) => Err(e),
            }
        }
    }
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("{message}");
            ExitCode::FAILURE
        }
    }
}
