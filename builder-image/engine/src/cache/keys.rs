//! Each needed stage's [`StageInputs`], read from what the host (or the prepare pod) trusts:
//! the plan, the Dockerfile it wrote, the context, the resolved images; and the keys made of
//! them ([`Keys`]): fast keys before anything runs, slow keys once the stages a stage needs
//! are done.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::Path;

use sha2::{Digest, Sha256};
use slipway_contract::trust::Outputs;
use slipway_frontend::cache_key::stage::{
    ContextUse, Dep, From, StageInputs, Uncacheable, context_use, declared_args, instruction_json,
    stage_key, uncacheable,
};
use slipway_frontend::cache_key::{ContentRoot, Key, Record};
use slipway_frontend::dockerfile::instructions::{self, Instruction};
use slipway_frontend::dockerfile::parser;
use slipway_frontend::dockerignore::{Matcher, candidates, read_patterns};
use slipway_frontend::plan::{Base, PROXY_ARGS, Plan, host_arch};

use crate::fs::PathError;
use crate::fs::content_root::of_sources;
use crate::fs::copy::{CopyOptions, Owner};
use crate::workspace::{ImageInfo, Workspace};

/// Why the keys of a build cannot be computed (the build then runs without the cache).
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("reading {what}: {source}")]
    Read {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("the Dockerfile in the workspace does not parse again: {0}")]
    Dockerfile(String),
    #[error("the context: {0}")]
    Context(#[from] PathError),
    #[error(".dockerignore: {0}")]
    Ignore(String),
}

/// The key of a stage and the record it hashes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Keyed {
    pub key: Key,
    pub record: Record,
}

/// Every needed stage's inputs (or why it is not cached), and the fast keys.
#[derive(Debug, Clone)]
pub struct Keys {
    inputs: BTreeMap<usize, Result<StageInputs, Uncacheable>>,
    /// The stages each needs, by index.
    deps: BTreeMap<usize, Vec<usize>>,
    /// Each stage's FROM-chain (itself first): the stages whose results it reads.
    lineage: BTreeMap<usize, Vec<usize>>,
    fast: BTreeMap<usize, Keyed>,
}

impl Keys {
    /// The inputs of every stage of `plan`, and the fast key of each whose inputs and whose
    /// needed stages' fast keys are all known (stages of the plan come after what they need).
    pub fn compute(
        ws: &Workspace,
        context: &Path,
        plan: &Plan,
        images: &BTreeMap<String, ImageInfo>,
        epoch: Option<u64>,
        builder: &str,
    ) -> Result<Keys, KeyError> {
        let text = fs::read_to_string(ws.dockerfile()).map_err(|source| KeyError::Read {
            what: "the Dockerfile".into(),
            source,
        })?;
        let parsed = parser::parse(&text).map_err(|e| KeyError::Dockerfile(e.to_string()))?;
        let df =
            instructions::from_ast(&parsed.ast).map_err(|e| KeyError::Dockerfile(e.to_string()))?;
        let meta_args: Vec<String> = df
            .meta_args
            .iter()
            .map(|(args, _)| instruction_json(&Instruction::Arg { args: args.clone() }))
            .collect();
        let meta_names: BTreeSet<String> = df
            .meta_args
            .iter()
            .flat_map(|(args, _)| args.iter().map(|a| a.key.clone()))
            .collect();
        let ignore = ignore_matcher(ws, context)?;
        let mut keys = Keys {
            inputs: BTreeMap::new(),
            deps: BTreeMap::new(),
            lineage: BTreeMap::new(),
            fast: BTreeMap::new(),
        };
        // ARG names each stage sees: its own, its FROM-parents', the global ones, the proxies.
        let mut seen_args: BTreeMap<usize, BTreeSet<String>> = BTreeMap::new();
        for s in &plan.stages {
            let Some(stage) = df.stages.get(s.index) else {
                return Err(KeyError::Dockerfile(format!("no stage #{}", s.index)));
            };
            keys.deps.insert(s.index, s.depends_on.clone());
            keys.lineage
                .insert(s.index, crate::trusted::lineage(plan, s.index));
            let mut names = declared_args(stage);
            names.extend(meta_names.iter().cloned());
            names.extend(PROXY_ARGS.iter().map(|a| a.to_string()));
            let (from, onbuild) = match &s.from {
                Base::Stage(i) => {
                    names.extend(seen_args.get(i).cloned().unwrap_or_default());
                    let parent_onbuild = df.stages.get(*i).is_some_and(|p| {
                        p.commands
                            .iter()
                            .any(|c| matches!(c.instruction, Instruction::Onbuild { .. }))
                    });
                    (From::Stage(*i), parent_onbuild)
                }
                Base::Image(n) if n == "scratch" => (From::Scratch, false),
                Base::Image(n) => match images.get(n) {
                    Some(info) => (
                        From::Image {
                            manifest: info.digest.clone(),
                        },
                        info.config
                            .pointer("/config/OnBuild")
                            .and_then(|v| v.as_array())
                            .is_some_and(|a| !a.is_empty()),
                    ),
                    // Not resolved: nothing to key on.
                    None => {
                        seen_args.insert(s.index, names);
                        continue;
                    }
                },
            };
            let build_args = plan
                .build_args
                .iter()
                .filter(|(k, _)| names.contains(*k))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            seen_args.insert(s.index, names);
            if let Some(why) = uncacheable(stage) {
                keys.inputs.insert(s.index, Err(why));
                continue;
            }
            // A trigger of the base may read the context: all of it, then.
            let usage = if onbuild {
                ContextUse::Whole
            } else {
                context_use(stage)
            };
            let images_used = s
                .images
                .iter()
                .filter_map(|n| images.get(n).map(|i| (n.clone(), i.digest.clone())))
                .collect();
            let inputs = StageInputs {
                builder: builder.to_string(),
                index: s.index,
                name: s.name.clone(),
                from,
                platform: s
                    .platform
                    .clone()
                    .unwrap_or_else(|| format!("linux/{}", host_arch())),
                instructions: stage
                    .commands
                    .iter()
                    .map(|c| instruction_json(&c.instruction))
                    .collect(),
                meta_args: meta_args.clone(),
                build_args,
                context: context_root(context, &usage, &ignore)?,
                images: images_used,
                exports: s.exports.clone(),
                source_date_epoch: epoch,
            };
            let deps: Option<BTreeMap<usize, Dep>> = s
                .depends_on
                .iter()
                .map(|d| keys.fast.get(d).map(|k| (*d, Dep::Key(k.key))))
                .collect();
            if let Some(deps) = deps {
                let (key, record) = stage_key(&inputs, &deps);
                keys.fast.insert(s.index, Keyed { key, record });
            }
            keys.inputs.insert(s.index, Ok(inputs));
        }
        Ok(keys)
    }

    /// The fast key of stage `index`: `None` when it or a stage it needs is not cached.
    pub fn fast(&self, index: usize) -> Option<&Keyed> {
        self.fast.get(&index)
    }

    /// Why stage `index` is never cached, if so.
    pub fn uncacheable(&self, index: usize) -> Option<Uncacheable> {
        self.inputs
            .get(&index)
            .and_then(|r| r.as_ref().err().copied())
    }

    /// The slow key of stage `index`: the stages it needs by what they produced, once every
    /// one of them is in `outputs` (a stage it is built on by its result and exports, one it
    /// copies or mounts from by its exports alone: all it reads of it).
    pub fn slow(&self, index: usize, outputs: &BTreeMap<usize, Outputs>) -> Option<Keyed> {
        let inputs = self.inputs.get(&index)?.as_ref().ok()?;
        let lineage = self.lineage.get(&index)?;
        // Needing no stage, its fast key says it all.
        if self.deps.get(&index)?.is_empty() {
            return None;
        }
        let deps: BTreeMap<usize, Dep> = self
            .deps
            .get(&index)?
            .iter()
            .map(|d| {
                outputs.get(d).map(|o| {
                    (
                        *d,
                        Dep::Output {
                            result: lineage.contains(d).then(|| o.result.to_string()),
                            exports: o.exports.as_ref().map(ToString::to_string),
                        },
                    )
                })
            })
            .collect::<Option<_>>()?;
        let (key, record) = stage_key(inputs, &deps);
        Some(Keyed { key, record })
    }
}

/// The `.dockerignore` that applies: the build's own (`Dockerfile.dockerignore`, copied into
/// the workspace), else the context's.
fn ignore_matcher(ws: &Workspace, context: &Path) -> Result<Matcher, KeyError> {
    let [own, _] = candidates(&ws.root, &ws.dockerfile());
    let [_, ctx] = candidates(context, &ws.dockerfile());
    let text = match fs::read(&own) {
        Ok(b) => b,
        Err(_) => fs::read(&ctx).unwrap_or_default(),
    };
    Matcher::new(&read_patterns(&String::from_utf8_lossy(&text)))
        .map_err(|e| KeyError::Ignore(e.to_string()))
}

/// The content root of what a stage reads of the context (files as COPY lands them from
/// the context: owned by 0:0, modes kept). Paths that do not exist are keyed by name, so a
/// file appearing there changes the key.
fn context_root(
    context: &Path,
    usage: &ContextUse,
    ignore: &Matcher,
) -> Result<Option<ContentRoot>, KeyError> {
    let opts = CopyOptions {
        owner: Owner::Set(0, 0),
        chmod: None,
        ignore: Some((ignore, context)),
    };
    let (present, absent): (Vec<_>, Vec<_>) = match usage {
        ContextUse::None => return Ok(None),
        ContextUse::Whole => (vec![context.to_path_buf()], Vec::new()),
        ContextUse::Paths(paths) => paths
            .iter()
            .map(|p| context.join(p))
            .partition(|p| fs::symlink_metadata(p).is_ok()),
    };
    let root = of_sources(context, present.iter().map(|p| p.as_path()), &opts)?;
    if absent.is_empty() {
        return Ok(Some(root));
    }
    let mut h = Sha256::new();
    h.update(b"slipway context root with absent paths\0");
    h.update(root.0);
    for p in &absent {
        let rel = p.strip_prefix(context).unwrap_or(p).to_string_lossy();
        h.update((rel.len() as u64).to_be_bytes());
        h.update(rel.as_bytes());
    }
    Ok(Some(ContentRoot(h.finalize().into())))
}

/// The builder's identity in keys: the digest of the engine binary that runs the stages.
pub fn builder_identity(engine: &Path) -> Result<String, KeyError> {
    crate::registry::manifest::sha256_file(engine).map_err(|source| KeyError::Read {
        what: engine.display().to_string(),
        source,
    })
}
