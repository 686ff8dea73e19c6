//! Whole-stage keys: the granularity the build caches at (issue 13, parts 2–3). A stage's
//! result (its `result.json`, layers and exports) is stored once per key, and a stage whose
//! key hits is restored instead of run: no container, no Job.
//!
//! The key is computed before anything runs, from the stage as planned: its instructions
//! *unexpanded* (their canonical JSON, no line numbers), and, instead of the expanded values
//! the per-instruction [`Chain`](super::Chain) folds, everything expansion could read: the
//! build arguments the stage can see, the global ARGs, the base (its manifest digest, which
//! pins its config's environment, ONBUILD triggers and `/etc/passwd`), the platform. Over-
//! including only costs a miss; leaving something out would be a wrong hit, so where in doubt
//! (a `$` in a COPY source, an unparsable mount) the whole context is in the key.
//!
//! Each stage it needs enters as a [`Dep`]: before running, by that stage's own key (the fast
//! key); once it ran, by the digests of what it produced (the slow key), so an upstream stage
//! rebuilt to the same bytes still hits downstream (which needs reproducible upstream output:
//! `SOURCE_DATE_EPOCH`).
//!
//! Assumes, as every builder's cache does, that a RUN's result is a function of its inputs.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::{ContentRoot, Key, Record, SCHEME};
use crate::dockerfile::instructions::{Command, Instruction, MountKind, Stage, parse_mount};
use crate::gocompat;

/// What every whole-stage hash starts with: not an instruction key's domain.
const DOMAIN: &[u8] = b"slipway stage key sw1\0";
/// What every prefix hash starts with: not a whole stage's.
const PREFIX_DOMAIN: &[u8] = b"slipway stage prefix key sw1\0";

/// What a stage is built on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum From {
    /// A base image: the name the build resolved (the stage's result and the image's
    /// `base.name` say it, so another name for the same digest is another result) and its
    /// platform manifest digest.
    Image {
        name: String,
        manifest: String,
    },
    Scratch,
    /// An earlier stage (also listed in the deps).
    Stage(usize),
}

/// A stage another one needs, as the key sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Dep {
    /// Its own key (the fast key): known before anything runs.
    Key(Key),
    /// The digests of what it left (the slow key), known once it ran or was restored: its
    /// `exports.tar`, and its `result.json` when the stage is built on it (FROM): a stage
    /// that only copies from it reads nothing else, so another history upstream still hits.
    Output {
        result: Option<String>,
        exports: Option<String>,
    },
}

/// Everything a stage's result depends on besides the stages it needs. Serialized, it is what
/// the cluster's prepare step hands the push step (`cache-keys.json`), which stores the
/// stages that ran under the same keys without reading the context again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StageInputs {
    /// The builder's own identity (its binary's digest): another engine may write other bytes.
    pub builder: String,
    pub index: usize,
    pub name: Option<String>,
    pub from: From,
    pub platform: String,
    /// The canonical JSON of each instruction, in order.
    pub instructions: Vec<String>,
    /// The canonical JSON of each global ARG instruction.
    pub meta_args: Vec<String>,
    /// The build arguments given, that the stage or a global ARG declares.
    pub build_args: BTreeMap<String, String>,
    /// What it reads of the build context, when it reads any.
    pub context: Option<ContentRoot>,
    /// Images it copies or mounts from, by reference: their platform manifest digests.
    pub images: BTreeMap<String, String>,
    /// The paths later stages take from it (they shape `exports.tar`).
    pub exports: Vec<String>,
    pub source_date_epoch: Option<u64>,
}

/// The canonical record of a stage and the stages it needs (by index).
pub fn stage_record(s: &StageInputs, deps: &BTreeMap<usize, Dep>) -> Record {
    let mut r = Record::new("stage");
    r.str("scheme", SCHEME)
        .str("builder", &s.builder)
        .u64("index", s.index as u64)
        .opt_str("name", s.name.as_deref());
    match &s.from {
        From::Image { name, manifest } => {
            r.str("from-image", manifest).str("from-image-name", name)
        }
        From::Scratch => r.str("from-scratch", ""),
        From::Stage(i) => r.u64("from-stage", *i as u64),
    };
    r.str("platform", &s.platform)
        .list("instructions", s.instructions.iter().map(String::as_str))
        .list("meta-args", s.meta_args.iter().map(String::as_str))
        .map("build-args", &s.build_args)
        .opt_bytes("context", s.context.as_ref().map(|c| &c.0[..]))
        .map("images", &s.images)
        .list("exports", s.exports.iter().map(String::as_str))
        .opt_u64("source-date-epoch", s.source_date_epoch);
    let deps: Vec<Record> = deps
        .iter()
        .map(|(i, d)| {
            let mut dr = Record::new("dep");
            dr.u64("index", *i as u64);
            match d {
                Dep::Key(k) => dr.bytes("key", &k.0),
                Dep::Output { result, exports } => dr
                    .opt_str("result", result.as_deref())
                    .opt_str("exports", exports.as_deref()),
            };
            dr
        })
        .collect();
    r.records("deps", deps.iter());
    r
}

/// A stage's key and the record it hashes (kept with a cache entry, re-checked on a hit).
pub fn stage_key(s: &StageInputs, deps: &BTreeMap<usize, Dep>) -> (Key, Record) {
    let record = stage_record(s, deps);
    (hash(DOMAIN, &record), record)
}

/// The key of a stage's first `steps` instructions (where a checkpoint of it stands, for a
/// prefix hit), and its record. `s` is the stage's inputs cut there by the caller
/// ([`StageInputs::prefix`] and the context the prefix reads, [`context_use_of`]) and `deps`
/// the stages those instructions need ([`stage_refs`]): a change after the cut changes no
/// prefix key before it.
pub fn prefix_key(s: &StageInputs, steps: usize, deps: &BTreeMap<usize, Dep>) -> (Key, Record) {
    let mut record = stage_record(s, deps);
    record.u64("prefix-steps", steps as u64);
    (hash(PREFIX_DOMAIN, &record), record)
}

fn hash(domain: &[u8], record: &Record) -> Key {
    let mut h = Sha256::new();
    h.update(domain);
    h.update((record.as_bytes().len() as u64).to_be_bytes());
    h.update(record.as_bytes());
    Key(h.finalize().into())
}

impl StageInputs {
    /// These inputs cut after `steps` instructions, with `context` (what those read of the
    /// build context) and no exports (the whole stage shapes them, not a prefix).
    pub fn prefix(&self, steps: usize, context: Option<ContentRoot>) -> StageInputs {
        StageInputs {
            instructions: self.instructions.iter().take(steps).cloned().collect(),
            context,
            exports: Vec::new(),
            ..self.clone()
        }
    }
}

/// The names of the stages (or images) `commands` read by `--from` (COPY and RUN mounts),
/// lower-cased, an index as the planner reads it (`+1` and `01` are `1`); `None` when one of them has a variable and could name any.
pub fn stage_refs(commands: &[Command]) -> Option<BTreeSet<String>> {
    let mut refs = BTreeSet::new();
    for c in commands {
        let from = match &c.instruction {
            Instruction::Copy(copy) => vec![copy.from.clone()],
            Instruction::Run(run) => run
                .mounts
                .iter()
                .map(|spec| parse_mount(spec).map(|m| m.from))
                .collect::<Result<Vec<_>, _>>()
                .ok()?,
            _ => vec![],
        };
        for f in from.into_iter().flatten() {
            if f.contains('$') {
                return None;
            }
            match crate::plan::as_index(&f) {
                Some(i) => refs.insert(i.to_string()),
                None => refs.insert(f.to_lowercase()),
            };
        }
    }
    Some(refs)
}

/// Why a stage is never looked up or stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Uncacheable {
    /// `ADD <url>` without `--checksum`: what it downloads may change under the same text.
    AddUrl,
    /// `ADD <git ref>`: the ref may move.
    AddGit,
}

impl Uncacheable {
    pub fn as_str(self) -> &'static str {
        match self {
            Uncacheable::AddUrl => "ADD of a URL without --checksum",
            Uncacheable::AddGit => "ADD of a git repository",
        }
    }
}

fn is_git(s: &str) -> bool {
    s.starts_with("git@") || s.ends_with(".git") || s.contains(".git#")
}

fn is_url(s: &str) -> bool {
    s.starts_with("http://") || s.starts_with("https://")
}

/// Whether a stage can be cached at all (its instructions alone decide).
pub fn uncacheable(stage: &Stage) -> Option<Uncacheable> {
    for c in &stage.commands {
        if let Instruction::Add(a) = &c.instruction {
            for s in &a.paths.sources {
                if is_git(s) {
                    return Some(Uncacheable::AddGit);
                }
                if is_url(s) && a.checksum.is_none() {
                    return Some(Uncacheable::AddUrl);
                }
            }
        }
    }
    None
}

/// What of the build context a stage reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ContextUse {
    None,
    /// These paths (relative, cleaned), each with everything under it.
    Paths(BTreeSet<String>),
    /// All of it (a source with a variable, a glob at the top, an unparsable mount).
    Whole,
}

impl ContextUse {
    fn add(&mut self, raw: &str) {
        let Some(p) = context_path(raw) else {
            *self = ContextUse::Whole;
            return;
        };
        match self {
            ContextUse::Whole => {}
            ContextUse::None => *self = ContextUse::Paths(BTreeSet::from([p])),
            ContextUse::Paths(set) => {
                set.insert(p);
            }
        }
    }
}

/// The context path a COPY source or bind-mount source reads, everything under it included:
/// the source itself, or for a glob the directory above its first wildcard. `None` when that
/// is the whole context (or cannot be known before expansion: a variable, or quotes and
/// escape characters the lexer removes, so `"src"` reads `src`).
fn context_path(raw: &str) -> Option<String> {
    if raw.contains(['$', '"', '\'', '`']) {
        return None;
    }
    let cleaned = gocompat::clean(&format!("/{raw}"));
    let mut kept = Vec::new();
    for part in cleaned.split('/').filter(|p| !p.is_empty()) {
        if part.contains(['*', '?', '[', '\\']) {
            break;
        }
        kept.push(part);
    }
    (!kept.is_empty()).then(|| kept.join("/"))
}

/// What of the context `stage`'s instructions read: COPY and ADD without `--from` (but not
/// heredocs or URLs), and bind mounts without `from`.
pub fn context_use(stage: &Stage) -> ContextUse {
    context_use_of(&stage.commands)
}

/// What of the context `commands` read (see [`context_use`]).
pub fn context_use_of(commands: &[Command]) -> ContextUse {
    let mut u = ContextUse::None;
    for c in commands {
        match &c.instruction {
            Instruction::Copy(copy) if copy.from.is_none() => {
                copy.paths.sources.iter().for_each(|s| u.add(s));
            }
            Instruction::Add(add) => add
                .paths
                .sources
                .iter()
                .filter(|s| !is_url(s) && !is_git(s))
                .for_each(|s| u.add(s)),
            Instruction::Run(run) => {
                for spec in &run.mounts {
                    match parse_mount(spec) {
                        Ok(m) if m.kind == MountKind::Bind && m.from.is_none() => {
                            u.add(m.source.as_deref().unwrap_or("."))
                        }
                        Ok(_) => {}
                        Err(_) => u = ContextUse::Whole,
                    }
                }
            }
            // A trigger may COPY from the context when a later build uses this image: not
            // in this build.
            _ => {}
        }
    }
    u
}

/// The canonical JSON of an instruction: what it says, not where it is.
pub fn instruction_json(i: &Instruction) -> String {
    serde_json::to_string(i).unwrap_or_default()
}

/// The ARG names a stage declares.
pub fn declared_args(stage: &Stage) -> BTreeSet<String> {
    stage
        .commands
        .iter()
        .filter_map(|c| match &c.instruction {
            Instruction::Arg { args } => Some(args.iter().map(|a| a.key.clone())),
            _ => None,
        })
        .flatten()
        .collect()
}

#[cfg(test)]
#[path = "stage_tests.rs"]
mod tests;
