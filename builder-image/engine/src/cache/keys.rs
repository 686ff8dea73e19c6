//! Each needed stage's [`StageInputs`], read from what the host (or the prepare pod) trusts:
//! the plan, the Dockerfile it wrote, the context, the resolved images; and the keys made of
//! them ([`Keys`]): fast keys before anything runs, slow keys once the stages a stage needs
//! are done.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::Path;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use slipway_contract::trust::Outputs;
use slipway_frontend::cache_key::stage::{
    ContextUse, Dep, From, StageInputs, Uncacheable, context_use_of, declared_args,
    instruction_json, prefix_key, stage_key, stage_refs, uncacheable,
};
use slipway_frontend::cache_key::{ContentRoot, Key, Record};
use slipway_frontend::dockerfile::instructions::{self, Command, Instruction};
use slipway_frontend::dockerfile::parser;
use slipway_frontend::dockerignore::{Matcher, candidates, read_patterns};
use slipway_frontend::plan::{Base, PROXY_ARGS, Plan, PlannedStage, host_arch};

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
    /// `cache-keys.json` of another scheme (another Slipway wrote it).
    #[error("cache-keys.json is {0:?}, not {KEYS_FILE_KIND:?}")]
    Scheme(String),
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
    /// Each stage's checkpoints (after each RUN but its last instruction), in order.
    prefixes: BTreeMap<usize, Vec<Prefix>>,
}

/// Where a stage may start from the cache: after its first `steps` instructions (a RUN).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Prefix {
    steps: usize,
    /// The stage's inputs cut there.
    inputs: StageInputs,
    /// The stages those instructions need.
    deps: Vec<usize>,
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
            prefixes: BTreeMap::new(),
        };
        // Context roots by what is read of the context: a stage and its prefixes often read
        // the same, and a root hashes every file it covers.
        let mut roots: Vec<(ContextUse, Option<ContentRoot>)> = Vec::new();
        let mut root_of = |usage: ContextUse| -> Result<Option<ContentRoot>, KeyError> {
            if let Some((_, r)) = roots.iter().find(|(u, _)| *u == usage) {
                return Ok(*r);
            }
            let r = context_root(context, &usage, &ignore)?;
            roots.push((usage, r));
            Ok(r)
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
                            name: n.clone(),
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
                context_use_of(&stage.commands)
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
                context: root_of(usage)?,
                images: images_used,
                exports: s.exports.clone(),
                source_date_epoch: epoch,
            };
            // No checkpoints on a base with ONBUILD triggers: they run before the stage's
            // own instructions, which checkpoints count.
            let commands = &stage.commands;
            let mut prefixes = Vec::new();
            for (n, c) in commands.iter().enumerate() {
                let steps = n + 1;
                if onbuild
                    || steps == commands.len()
                    || !matches!(c.instruction, Instruction::Run(_))
                {
                    continue;
                }
                let cut = &commands[..steps];
                prefixes.push(Prefix {
                    steps,
                    inputs: inputs.prefix(steps, root_of(context_use_of(cut))?),
                    deps: prefix_deps(plan, s, cut),
                });
            }
            keys.prefixes.insert(s.index, prefixes);
            keys.inputs.insert(s.index, Ok(inputs));
        }
        keys.fast = fast_keys(&keys.inputs, &keys.deps);
        Ok(keys)
    }

    /// What the push step needs to store the stages that ran under the keys the prepare step
    /// looked up: the inputs (no record, no key: they are made again from these).
    pub fn to_file(&self, cached: Vec<usize>, resumed: BTreeMap<usize, usize>) -> KeysFile {
        KeysFile {
            kind: KEYS_FILE_KIND.to_string(),
            inputs: self.inputs.clone(),
            deps: self.deps.clone(),
            lineage: self.lineage.clone(),
            prefixes: self.prefixes.clone(),
            cached,
            resumed,
        }
    }

    /// The keys a [`KeysFile`] holds, the fast ones made again.
    pub fn from_file(f: KeysFile) -> Result<Keys, KeyError> {
        if f.kind != KEYS_FILE_KIND {
            return Err(KeyError::Scheme(f.kind));
        }
        let fast = fast_keys(&f.inputs, &f.deps);
        Ok(Keys {
            inputs: f.inputs,
            deps: f.deps,
            lineage: f.lineage,
            fast,
            prefixes: f.prefixes,
        })
    }

    /// The stages with inputs (cacheable or not), by index.
    pub fn stages(&self) -> impl Iterator<Item = usize> + '_ {
        self.inputs.keys().copied()
    }

    /// Stage `index`'s FROM-chain (itself first): the stages whose layers its result lists.
    pub fn lineage(&self, index: usize) -> &[usize] {
        self.lineage.get(&index).map_or(&[], Vec::as_slice)
    }

    /// The fast key of stage `index`: `None` when it or a stage it needs is not cached.
    pub fn fast(&self, index: usize) -> Option<&Keyed> {
        self.fast.get(&index)
    }

    /// The keys of stage `index`'s checkpoints, the longest first, each with the instructions
    /// it covers: those whose needed stages all have fast keys.
    pub fn prefixes(&self, index: usize) -> Vec<(usize, Keyed)> {
        let Some(prefixes) = self.prefixes.get(&index) else {
            return Vec::new();
        };
        prefixes
            .iter()
            .rev()
            .filter_map(|p| {
                let deps: BTreeMap<usize, Dep> = p
                    .deps
                    .iter()
                    .map(|d| self.fast.get(d).map(|k| (*d, Dep::Key(k.key))))
                    .collect::<Option<_>>()?;
                let (key, record) = prefix_key(&p.inputs, p.steps, &deps);
                Some((p.steps, Keyed { key, record }))
            })
            .collect()
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

/// The stages `cut` (the first instructions of stage `s`) needs: its FROM parent, and those
/// they name by `--from` (all the stage needs when a `--from` has a variable).
fn prefix_deps(plan: &Plan, s: &PlannedStage, cut: &[Command]) -> Vec<usize> {
    let refs = stage_refs(cut);
    s.depends_on
        .iter()
        .copied()
        .filter(|d| {
            let named = |r: &BTreeSet<String>| {
                r.contains(&d.to_string())
                    || plan
                        .stage(*d)
                        .and_then(|p| p.name.as_ref())
                        .is_some_and(|n| r.contains(&n.to_lowercase()))
            };
            matches!(s.from, Base::Stage(p) if p == *d) || refs.as_ref().is_none_or(named)
        })
        .collect()
}

/// The fast key of each stage whose inputs, and whose needed stages' fast keys, are known: in
/// index order, as a stage needs only stages before it.
fn fast_keys(
    inputs: &BTreeMap<usize, Result<StageInputs, Uncacheable>>,
    deps: &BTreeMap<usize, Vec<usize>>,
) -> BTreeMap<usize, Keyed> {
    let mut fast: BTreeMap<usize, Keyed> = BTreeMap::new();
    for (index, inputs) in inputs {
        let Ok(inputs) = inputs else { continue };
        let needed: Option<BTreeMap<usize, Dep>> = deps
            .get(index)
            .into_iter()
            .flatten()
            .map(|d| fast.get(d).map(|k| (*d, Dep::Key(k.key))))
            .collect();
        if let Some(needed) = needed {
            let (key, record) = stage_key(inputs, &needed);
            fast.insert(*index, Keyed { key, record });
        }
    }
    fast
}

/// What `cache-keys.json` says it is.
pub const KEYS_FILE_KIND: &str = "slipway.dev/stage-cache-keys/sw1";

/// `cache-keys.json`: written by the cluster's prepare step (which alone read the context),
/// read by the push step once its digest matches the one the prepare step reported.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct KeysFile {
    pub kind: String,
    pub inputs: BTreeMap<usize, Result<StageInputs, Uncacheable>>,
    pub deps: BTreeMap<usize, Vec<usize>>,
    pub lineage: BTreeMap<usize, Vec<usize>>,
    /// Each stage's checkpoints.
    #[serde(default)]
    pub prefixes: BTreeMap<usize, Vec<Prefix>>,
    /// The stages the prepare step restored from the cache: not stored again.
    #[serde(default)]
    pub cached: Vec<usize>,
    /// The stages that start from a checkpoint, by the instructions it covers: the
    /// checkpoints up to there are not stored again.
    #[serde(default)]
    pub resumed: BTreeMap<usize, usize>,
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

#[cfg(test)]
mod tests {
    use super::*;

    fn stage(index: usize, from: From) -> StageInputs {
        StageInputs {
            builder: "sha256:engine".into(),
            index,
            name: None,
            from,
            platform: "linux/amd64".into(),
            instructions: vec![format!("{{\"run\":{index}}}")],
            meta_args: vec![],
            build_args: BTreeMap::new(),
            context: None,
            images: BTreeMap::new(),
            exports: vec![],
            source_date_epoch: Some(1),
        }
    }

    /// Stage 0 on an image, 1 on 0, 2 never cached, 3 copying from 2.
    fn file() -> KeysFile {
        KeysFile {
            kind: KEYS_FILE_KIND.into(),
            inputs: BTreeMap::from([
                (
                    0,
                    Ok(stage(
                        0,
                        From::Image {
                            name: "r/b:1".into(),
                            manifest: "sha256:b".into(),
                        },
                    )),
                ),
                (1, Ok(stage(1, From::Stage(0)))),
                (2, Err(Uncacheable::AddUrl)),
                (3, Ok(stage(3, From::Scratch))),
            ]),
            deps: BTreeMap::from([(0, vec![]), (1, vec![0]), (2, vec![]), (3, vec![2])]),
            lineage: BTreeMap::from([(0, vec![0]), (1, vec![1, 0]), (2, vec![2]), (3, vec![3])]),
            prefixes: BTreeMap::new(),
            cached: vec![0],
            resumed: BTreeMap::new(),
        }
    }

    #[test]
    fn the_keys_file_gives_the_push_step_the_prepare_steps_keys() {
        let keys = Keys::from_file(file()).expect("keys");
        // Through JSON, as the push step reads it.
        let json = serde_json::to_vec(&keys.to_file(vec![0], BTreeMap::new())).expect("json");
        let again =
            Keys::from_file(serde_json::from_slice(&json).expect("parse")).expect("keys again");
        for i in 0..4 {
            assert_eq!(keys.fast(i), again.fast(i), "stage {i}");
        }
        assert!(keys.fast(0).is_some() && keys.fast(1).is_some());
        // A stage never cached has no key, nor does one that needs it before it ran...
        assert_eq!(keys.uncacheable(2), Some(Uncacheable::AddUrl));
        assert!(keys.fast(2).is_none() && keys.fast(3).is_none());
        // ...but once stage 2's outputs are known, stage 3 has its slow key.
        let d = slipway_contract::digest::Digest::parse(&format!("sha256:{}", "a".repeat(64)))
            .expect("digest");
        let outputs = BTreeMap::from([(
            2,
            Outputs {
                result: d.clone(),
                exports: Some(d),
            },
        )]);
        assert!(again.slow(3, &outputs).is_some());
        // Stage 1's fast key is made from stage 0's.
        let mut other = file();
        if let Some(Ok(s)) = other.inputs.get_mut(&0) {
            s.instructions.push("{}".into());
        }
        let other = Keys::from_file(other).expect("keys");
        assert_ne!(keys.fast(1), other.fast(1));
    }

    #[test]
    fn a_keys_file_of_another_scheme_is_refused() {
        let mut f = file();
        f.kind = "slipway.dev/stage-cache-keys/sw0".into();
        assert!(Keys::from_file(f).is_err());
    }
}
