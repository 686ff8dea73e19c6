//! The stage plan: which stages a build needs, in what order, what each builds on and what
//! later stages copy out of it. It is computed once (the prepare step, or `slipway-builder
//! plan`) and read by the operator, which schedules one Job per stage, and by the engine.
//! The serde types here are the contract between them; the operator imports them.
//!
//! Variable scoping follows BuildKit (`dockerfile2llb/convert.go`): ARGs before the first
//! FROM are global and reach FROM lines; a stage sees one only when it redeclares it; a
//! `--build-arg` overrides defaults; ENV and ARG values accumulate in the stage's
//! environment in order, and a stage built on another inherits its environment.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::dockerfile::instructions::{self, Command, Dockerfile, Instruction, Stage};
use crate::dockerfile::parser;
use crate::dockerfile::shell::{Lex, NoEnv, Vars};
use crate::gocompat::clean;
use crate::reference::Reference;

/// What a stage builds on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Base {
    /// An earlier stage, by index.
    Stage(usize),
    /// An image reference as written (after ARG expansion), or `scratch`.
    Image(String),
}

/// A stage named or numbered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum StageRef {
    Index(usize),
    Name(String),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PlannedStage {
    /// Position in the Dockerfile, from 0.
    pub index: usize,
    /// The `AS` name, lower-cased.
    pub name: Option<String>,
    pub from: Base,
    /// Every stage that must be built before this one, sorted.
    pub depends_on: Vec<usize>,
    /// Absolute paths (glob patterns allowed) that other needed stages copy or mount from
    /// this one; sorted.
    pub exports: Vec<String>,
    /// Line of the FROM instruction.
    pub line: usize,
    /// `--platform` after expansion.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<String>,
    /// External images this stage copies or mounts from (`COPY --from=image`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub images: Vec<String>,
    /// Secret ids its RUN commands mount (`--mount=type=secret`): the only secrets its Job sees.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub secrets: Vec<String>,
    /// Whether a RUN mounts a cache (`--mount=type=cache`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub cache_mounts: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Plan {
    /// The target stage: its name, or its index when it has none.
    pub target: StageRef,
    pub target_index: usize,
    /// The needed stages, each after every stage it depends on.
    pub stages: Vec<PlannedStage>,
    /// The `--build-arg` values the plan was made with.
    #[serde(default)]
    pub build_args: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

impl Plan {
    pub fn stage(&self, index: usize) -> Option<&PlannedStage> {
        self.stages.iter().find(|s| s.index == index)
    }

    /// Every external image the needed stages build on or copy from, and of those the ones
    /// copied from (`COPY --from=image`, whose trees a build unpacks).
    pub fn external_images(&self) -> (BTreeSet<String>, BTreeSet<String>) {
        let mut names = BTreeSet::new();
        let mut copied = BTreeSet::new();
        for s in &self.stages {
            if let Base::Image(n) = &s.from
                && n != "scratch"
            {
                names.insert(n.clone());
            }
            for i in &s.images {
                names.insert(i.clone());
                copied.insert(i.clone());
            }
        }
        (names, copied)
    }

    /// The stages grouped into linear FROM-chains that can run one after the other in one
    /// container (or Job): a stage joins its FROM parent's chain when nothing else waits on
    /// the parent alone and the stage needs nothing the parent did not. Chains come in plan
    /// order, each after the chains it depends on.
    pub fn fused_chains(&self) -> Vec<Vec<usize>> {
        let mut chains: Vec<Vec<usize>> = Vec::new();
        for s in &self.stages {
            let joins = match s.from {
                Base::Stage(p) => {
                    let parent = self.stage(p);
                    let only_through_s = self.stages.iter().all(|t| {
                        t.index == s.index
                            || !t.depends_on.contains(&p)
                            || t.depends_on.contains(&s.index)
                    });
                    let needs_nothing_more = parent.is_some_and(|pp| {
                        s.depends_on
                            .iter()
                            .all(|d| *d == p || pp.depends_on.contains(d))
                    });
                    (only_through_s && needs_nothing_more)
                        .then(|| chains.iter().position(|c| c.last() == Some(&p)))
                        .flatten()
                }
                Base::Image(_) => None,
            };
            match joins {
                Some(i) => chains[i].push(s.index),
                None => chains.push(vec![s.index]),
            }
        }
        chains
    }
}

/// Inputs to planning besides the Dockerfile.
#[derive(Debug, Clone, Default)]
pub struct PlanOptions {
    pub target: Option<String>,
    /// `--build-arg` values; a later value for the same name wins.
    pub build_args: Vec<(String, String)>,
}

/// A Dockerfile the planner can't accept; `line` is 1-based where there is one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    #[error("{message}")]
    Parse { line: usize, message: String },
    #[error("{instruction}: {message}")]
    Instruction {
        line: usize,
        instruction: String,
        message: String,
    },
    #[error("dockerfile contains no stages to build")]
    NoStages,
    #[error("{instruction}: {message}")]
    Expansion {
        line: usize,
        instruction: String,
        message: String,
    },
    #[error("FROM: base name ({expression}) should not be blank")]
    BlankBaseName { line: usize, expression: String },
    #[error("{instruction}: {message}")]
    InvalidReference {
        line: usize,
        instruction: String,
        message: String,
    },
    #[error(
        "FROM {name}: stage {name:?} is defined later (line {defined_at}); a stage can only build on an earlier one"
    )]
    FromLaterStage {
        line: usize,
        name: String,
        defined_at: usize,
    },
    #[error("COPY --from={index}: invalid stage index {index} (the Dockerfile has {count} stages)")]
    InvalidStageIndex {
        line: usize,
        index: String,
        count: usize,
    },
    #[error(
        "COPY --from={from}: variable expansion is not supported for --from, define a new stage with FROM using ARG from global scope as a workaround"
    )]
    CopyFromVariable { line: usize, from: String },
    #[error("RUN --mount: {message}")]
    Mount { line: usize, message: String },
    #[error("ONBUILD trigger of the parent stage: {message}")]
    Onbuild { line: usize, message: String },
    #[error("circular dependency detected on stage: {stage}")]
    Cycle { line: usize, stage: String },
    #[error("target stage {name:?} could not be found (stages: {known})")]
    UnknownTarget { name: String, known: String },
}

impl PlanError {
    /// The Dockerfile line the error is about, when there is one.
    pub fn line(&self) -> Option<usize> {
        match self {
            PlanError::Parse { line, .. }
            | PlanError::Instruction { line, .. }
            | PlanError::Expansion { line, .. }
            | PlanError::BlankBaseName { line, .. }
            | PlanError::InvalidReference { line, .. }
            | PlanError::FromLaterStage { line, .. }
            | PlanError::InvalidStageIndex { line, .. }
            | PlanError::CopyFromVariable { line, .. }
            | PlanError::Mount { line, .. }
            | PlanError::Onbuild { line, .. }
            | PlanError::Cycle { line, .. } => Some(*line),
            PlanError::NoStages | PlanError::UnknownTarget { .. } => None,
        }
    }
}

/// Build arguments that need no ARG to be passed to RUN, and never count as unused.
pub const PROXY_ARGS: [&str; 10] = [
    "HTTP_PROXY",
    "http_proxy",
    "HTTPS_PROXY",
    "https_proxy",
    "FTP_PROXY",
    "ftp_proxy",
    "NO_PROXY",
    "no_proxy",
    "ALL_PROXY",
    "all_proxy",
];

/// PATH of a stage whose base image sets none (BuildKit `system.DefaultPathEnv`).
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// The platform this machine builds for, as (architecture, variant).
fn host_platform() -> (&'static str, &'static str) {
    match std::env::consts::ARCH {
        "x86_64" => ("amd64", ""),
        "aarch64" => ("arm64", ""),
        "arm" => ("arm", "v7"),
        "x86" => ("386", ""),
        "powerpc64" => ("ppc64le", ""),
        "s390x" => ("s390x", ""),
        "riscv64" => ("riscv64", ""),
        other => (other, ""),
    }
}

/// This machine's architecture in OCI terms (`amd64`, `arm64`, ...).
pub fn host_arch() -> &'static str {
    host_platform().0
}

/// BuildKit's predefined ARGs (`defaultArgs`), which `--build-arg` may override.
pub fn predefined_args(target: Option<&str>, overrides: &BTreeMap<String, String>) -> Vars {
    let (arch, variant) = host_platform();
    let platform = if variant.is_empty() {
        format!("linux/{arch}")
    } else {
        format!("linux/{arch}/{variant}")
    };
    let mut v = Vars::new();
    for (k, val) in [
        ("BUILDPLATFORM", platform.as_str()),
        ("BUILDOS", "linux"),
        ("BUILDOSVERSION", ""),
        ("BUILDARCH", arch),
        ("BUILDVARIANT", variant),
        ("TARGETPLATFORM", platform.as_str()),
        ("TARGETOS", "linux"),
        ("TARGETOSVERSION", ""),
        ("TARGETARCH", arch),
        ("TARGETVARIANT", variant),
        (
            "TARGETSTAGE",
            target.filter(|t| !t.is_empty()).unwrap_or("default"),
        ),
    ] {
        v.set(k, overrides.get(k).map(String::as_str).unwrap_or(val));
    }
    v
}

/// Parses and plans a Dockerfile.
pub fn plan(text: &str, opts: &PlanOptions) -> Result<Plan, PlanError> {
    let parsed = parser::parse(text).map_err(|e| PlanError::Parse {
        line: e.start_line,
        message: e.message,
    })?;
    let df = instructions::from_ast(&parsed.ast).map_err(|e| PlanError::Instruction {
        line: e.line,
        instruction: e.instruction.to_uppercase(),
        message: e.message,
    })?;
    Planner::new(df, Lex::new(parsed.escape), opts)?.run()
}

/// The global scope: predefined ARGs plus the ARGs before the first FROM (defaults expanded,
/// `--build-arg` winning), and the names those declare.
pub fn global_args(
    df: &Dockerfile,
    lex: &Lex,
    build_args: &BTreeMap<String, String>,
    target_name: Option<&str>,
) -> Result<(Vars, BTreeSet<String>), PlanError> {
    let mut global = predefined_args(target_name, build_args);
    let mut meta_declared = BTreeSet::new();
    for (args, span) in &df.meta_args {
        for a in args {
            meta_declared.insert(a.key.clone());
            let value = match (build_args.get(&a.key), &a.value) {
                (Some(v), _) => Some(v.clone()),
                (None, Some(default)) => {
                    Some(
                        lex.process_word(default, &global)
                            .map_err(|e| PlanError::Expansion {
                                line: span.start,
                                instruction: "ARG".into(),
                                message: e.0,
                            })?,
                    )
                }
                (None, None) => None,
            };
            if let Some(v) = value {
                global.set(&a.key, &v);
            }
        }
    }
    Ok((global, meta_declared))
}

/// One stage while planning.
struct Resolved {
    base: Base,
    platform: Option<String>,
    /// Direct needs: the FROM parent, and stages copied or mounted from.
    needs: BTreeSet<usize>,
    /// (stage, path) pairs this stage copies from other stages.
    copies: Vec<(usize, String)>,
    images: BTreeSet<String>,
    secrets: BTreeSet<String>,
    cache_mounts: bool,
    declared_args: BTreeSet<String>,
    /// ENV and ARG values at the end of the stage (inherited by stages built on it).
    env: Vars,
    /// The line of the command that created each need (for cycle errors).
    need_lines: BTreeMap<usize, usize>,
}

struct Planner<'a> {
    df: Dockerfile,
    lex: Lex,
    opts: &'a PlanOptions,
    build_args: BTreeMap<String, String>,
    global: Vars,
    meta_declared: BTreeSet<String>,
}

fn expansion_error(cmd: &Command, message: String) -> PlanError {
    PlanError::Expansion {
        line: cmd.span.start,
        instruction: cmd.keyword.to_uppercase(),
        message,
    }
}

/// Go's `strconv.Atoi` accepts an optional sign and decimal digits.
fn as_index(s: &str) -> Option<i64> {
    let digits = s.strip_prefix(['+', '-']).unwrap_or(s);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

impl<'a> Planner<'a> {
    fn new(df: Dockerfile, lex: Lex, opts: &'a PlanOptions) -> Result<Self, PlanError> {
        if df.stages.is_empty() {
            return Err(PlanError::NoStages);
        }
        let build_args: BTreeMap<String, String> = opts.build_args.iter().cloned().collect();
        let target_name = match &opts.target {
            Some(t) => Some(t.clone()),
            None => df.stages.last().and_then(|s| s.name.clone()),
        };
        let (global, meta_declared) = global_args(&df, &lex, &build_args, target_name.as_deref())?;
        Ok(Planner {
            df,
            lex,
            opts,
            build_args,
            global,
            meta_declared,
        })
    }

    fn find_stage(&self, name: &str) -> Option<usize> {
        let lower = name.to_lowercase();
        self.df
            .stages
            .iter()
            .position(|s| s.name.as_deref() == Some(lower.as_str()))
    }

    fn run(self) -> Result<Plan, PlanError> {
        let mut resolved: Vec<Resolved> = Vec::with_capacity(self.df.stages.len());
        for (i, stage) in self.df.stages.iter().enumerate() {
            let r = self.resolve_stage(i, stage, &resolved)?;
            resolved.push(r);
        }
        self.check_cycles(&resolved)?;

        let target_index = match &self.opts.target {
            Some(t) => self.find_stage(t).ok_or_else(|| PlanError::UnknownTarget {
                name: t.clone(),
                known: self
                    .df
                    .stages
                    .iter()
                    .filter_map(|s| s.name.clone())
                    .collect::<Vec<_>>()
                    .join(", "),
            })?,
            None => self.df.stages.len() - 1,
        };

        // Transitive needs of every stage (the graph is acyclic now).
        let mut closure: Vec<Option<BTreeSet<usize>>> = vec![None; resolved.len()];
        fn close(
            i: usize,
            r: &[Resolved],
            memo: &mut Vec<Option<BTreeSet<usize>>>,
        ) -> BTreeSet<usize> {
            if let Some(c) = &memo[i] {
                return c.clone();
            }
            let mut all = BTreeSet::new();
            for &d in &r[i].needs {
                all.insert(d);
                all.extend(close(d, r, memo));
            }
            memo[i] = Some(all.clone());
            all
        }
        let mut needed = close(target_index, &resolved, &mut closure);
        needed.insert(target_index);

        let mut exports: BTreeMap<usize, BTreeSet<String>> = BTreeMap::new();
        for &i in &needed {
            for (src, path) in &resolved[i].copies {
                exports.entry(*src).or_default().insert(path.clone());
            }
        }

        // Order: repeatedly take the lowest-index needed stage whose needs are all placed.
        let mut order = Vec::with_capacity(needed.len());
        let mut placed = BTreeSet::new();
        while placed.len() < needed.len() {
            let next = needed.iter().copied().find(|i| {
                !placed.contains(i) && resolved[*i].needs.iter().all(|d| placed.contains(d))
            });
            let Some(i) = next else { break };
            placed.insert(i);
            order.push(i);
        }

        let mut declared: BTreeSet<&str> = self.meta_declared.iter().map(String::as_str).collect();
        for &i in &needed {
            declared.extend(resolved[i].declared_args.iter().map(String::as_str));
        }
        let predefined = predefined_args(None, &BTreeMap::new());
        let warnings = self
            .build_args
            .keys()
            .filter(|k| {
                !declared.contains(k.as_str())
                    && !PROXY_ARGS.contains(&k.as_str())
                    && predefined.get(k).is_none()
            })
            .map(|k| format!("build-arg {k:?} was not consumed: no ARG {k} in the global scope or the needed stages"))
            .collect();

        let stages = order
            .into_iter()
            .map(|i| {
                let stage = &self.df.stages[i];
                let r = &resolved[i];
                PlannedStage {
                    index: i,
                    name: stage.name.clone(),
                    from: r.base.clone(),
                    depends_on: close(i, &resolved, &mut closure).into_iter().collect(),
                    exports: exports.remove(&i).unwrap_or_default().into_iter().collect(),
                    line: stage.span.start,
                    platform: r.platform.clone(),
                    images: r.images.iter().cloned().collect(),
                    secrets: r.secrets.iter().cloned().collect(),
                    cache_mounts: r.cache_mounts,
                }
            })
            .collect();

        let target = match &self.df.stages[target_index].name {
            Some(n) => StageRef::Name(n.clone()),
            None => StageRef::Index(target_index),
        };
        Ok(Plan {
            target,
            target_index,
            stages,
            build_args: self.build_args,
            warnings,
        })
    }

    fn resolve_stage(
        &self,
        i: usize,
        stage: &Stage,
        done: &[Resolved],
    ) -> Result<Resolved, PlanError> {
        let line = stage.span.start;
        let from_err = |message: String| PlanError::Expansion {
            line,
            instruction: "FROM".into(),
            message,
        };
        let base_name = self
            .lex
            .process_word(&stage.base_name, &self.global)
            .map_err(|e| from_err(e.0))?;
        if base_name.is_empty() {
            return Err(PlanError::BlankBaseName {
                line,
                expression: stage.base_name.clone(),
            });
        }
        let platform = match &stage.platform {
            None => None,
            Some(p) => {
                let v = self
                    .lex
                    .process_word(p, &self.global)
                    .map_err(|e| from_err(e.0))?;
                if v.is_empty() {
                    return Err(from_err(format!(
                        "empty platform value from expression {p}"
                    )));
                }
                Some(v)
            }
        };

        let mut r = Resolved {
            base: Base::Image(base_name.clone()),
            platform,
            needs: BTreeSet::new(),
            copies: Vec::new(),
            images: BTreeSet::new(),
            secrets: BTreeSet::new(),
            cache_mounts: false,
            declared_args: BTreeSet::new(),
            env: Vars::new(),
            need_lines: BTreeMap::new(),
        };
        let mut triggers = Vec::new();
        match self.find_stage(&base_name) {
            Some(j) if j < i => {
                r.base = Base::Stage(j);
                r.needs.insert(j);
                r.need_lines.insert(j, line);
                r.env = done[j].env.clone();
                triggers = self.onbuild_triggers(&self.df.stages[j], line)?;
            }
            Some(j) => {
                return Err(PlanError::FromLaterStage {
                    line,
                    name: base_name,
                    defined_at: self.df.stages[j].span.start,
                });
            }
            None if base_name == "scratch" => {}
            None => {
                Reference::parse(&base_name).map_err(|e| PlanError::InvalidReference {
                    line,
                    instruction: "FROM".into(),
                    message: e.to_string(),
                })?;
                r.env.set("PATH", DEFAULT_PATH);
            }
        }

        for cmd in triggers.iter().chain(stage.commands.iter()) {
            self.apply(i, cmd, &mut r)?;
        }
        Ok(r)
    }

    /// The parent stage's ONBUILD instructions, parsed to run first in a child stage.
    fn onbuild_triggers(&self, parent: &Stage, line: usize) -> Result<Vec<Command>, PlanError> {
        let mut out = Vec::new();
        for cmd in &parent.commands {
            let Instruction::Onbuild { expression } = &cmd.instruction else {
                continue;
            };
            let err = |message: String| PlanError::Onbuild { line, message };
            let parsed = parser::parse(expression).map_err(|e| err(e.message))?;
            let [node] = parsed.ast.children.as_slice() else {
                return Err(err("onbuild trigger should be a single expression".into()));
            };
            let mut c = instructions::parse_command(node).map_err(err)?;
            c.span = instructions::Span {
                start: line,
                end: line,
            };
            out.push(c);
        }
        Ok(out)
    }

    /// Follows one instruction's effect on the stage environment and its dependencies.
    fn apply(&self, i: usize, cmd: &Command, r: &mut Resolved) -> Result<(), PlanError> {
        let line = cmd.span.start;
        match &cmd.instruction {
            Instruction::Env { pairs } => {
                // All pairs expand against the environment before the instruction.
                let mut expanded = Vec::new();
                for p in pairs {
                    let k = self
                        .lex
                        .process_word(&p.key, &r.env)
                        .map_err(|e| expansion_error(cmd, e.0))?;
                    let v = self
                        .lex
                        .process_word(&p.value, &r.env)
                        .map_err(|e| expansion_error(cmd, e.0))?;
                    expanded.push((k, v));
                }
                for (k, v) in expanded {
                    r.env.set(&k, &v);
                }
            }
            Instruction::Arg { args } => {
                for a in args {
                    r.declared_args.insert(a.key.clone());
                    let value = match (self.build_args.get(&a.key), &a.value) {
                        (Some(v), _) => Some(v.clone()),
                        (None, Some(d)) => Some(
                            self.lex
                                .process_word(d, &r.env)
                                .map_err(|e| expansion_error(cmd, e.0))?,
                        ),
                        (None, None) => self.global.get(&a.key).map(str::to_string),
                    };
                    if let Some(v) = value {
                        r.env.set(&a.key, &v);
                    }
                }
            }
            Instruction::Copy(c) => {
                let Some(from) = &c.from else { return Ok(()) };
                let literal = self.lex.process_word(from, &NoEnv).ok();
                if literal.as_deref() != Some(from.as_str()) {
                    return Err(PlanError::CopyFromVariable {
                        line,
                        from: from.clone(),
                    });
                }
                let source = match as_index(from) {
                    Some(n) => match usize::try_from(n)
                        .ok()
                        .filter(|n| *n < self.df.stages.len())
                    {
                        Some(n) => Some(n),
                        None => {
                            return Err(PlanError::InvalidStageIndex {
                                line,
                                index: from.clone(),
                                count: self.df.stages.len(),
                            });
                        }
                    },
                    None => self.find_stage(from),
                };
                match source {
                    Some(s) => {
                        if s == i {
                            return Err(PlanError::Cycle {
                                line,
                                stage: stage_label(&self.df.stages[i], i),
                            });
                        }
                        r.needs.insert(s);
                        r.need_lines.entry(s).or_insert(line);
                        for src in &c.paths.sources {
                            let p = self
                                .lex
                                .process_word(src, &r.env)
                                .map_err(|e| expansion_error(cmd, e.0))?;
                            r.copies.push((s, clean(&format!("/{p}"))));
                        }
                    }
                    None => {
                        Reference::parse(from).map_err(|e| PlanError::InvalidReference {
                            line,
                            instruction: "COPY --from".into(),
                            message: format!("no stage named {from:?}, and not an image: {e}"),
                        })?;
                        r.images.insert(from.clone());
                    }
                }
            }
            Instruction::Run(run) => {
                for spec in &run.mounts {
                    let env = &r.env;
                    let lex = self.lex;
                    let m = instructions::parse_mount_with(spec, &mut |v| {
                        lex.process_word(v, env).map_err(|e| e.0)
                    })
                    .map_err(|message| PlanError::Mount { line, message })?;
                    match m.kind.as_str() {
                        // BuildKit: the id defaults to the target's base name.
                        "secret" => {
                            let id = m.id.clone().or_else(|| {
                                m.target
                                    .as_deref()
                                    .and_then(|t| t.rsplit('/').next())
                                    .map(str::to_string)
                            });
                            r.secrets.extend(id);
                        }
                        "cache" => r.cache_mounts = true,
                        _ => {}
                    }
                    let Some(from) = &m.from else { continue };
                    // RUN --mount finds stages by name only (BuildKit), never by index.
                    match self.find_stage(from) {
                        Some(s) if s == i => {
                            return Err(PlanError::Cycle {
                                line,
                                stage: stage_label(&self.df.stages[i], i),
                            });
                        }
                        Some(s) => {
                            r.needs.insert(s);
                            r.need_lines.entry(s).or_insert(line);
                            let src = m.source.as_deref().unwrap_or("/");
                            r.copies.push((s, clean(&format!("/{src}"))));
                        }
                        None => {
                            Reference::parse(from).map_err(|e| PlanError::Mount {
                                line,
                                message: format!(
                                    "from={from}: no stage of that name, and not an image: {e}"
                                ),
                            })?;
                            r.images.insert(from.clone());
                        }
                    }
                }
            }
            _ => {}
        }
        Ok(())
    }

    fn check_cycles(&self, r: &[Resolved]) -> Result<(), PlanError> {
        // 0 = unvisited, 1 = on the current path, 2 = done.
        fn visit(i: usize, r: &[Resolved], state: &mut [u8]) -> Option<(usize, usize)> {
            state[i] = 1;
            for &d in &r[i].needs {
                match state[d] {
                    1 => return Some((i, d)),
                    0 => {
                        if let Some(c) = visit(d, r, state) {
                            return Some(c);
                        }
                    }
                    _ => {}
                }
            }
            state[i] = 2;
            None
        }
        let mut state = vec![0u8; r.len()];
        for i in 0..r.len() {
            if state[i] == 0
                && let Some((from, to)) = visit(i, r, &mut state)
            {
                return Err(PlanError::Cycle {
                    line: r[from]
                        .need_lines
                        .get(&to)
                        .copied()
                        .unwrap_or(self.df.stages[from].span.start),
                    stage: stage_label(&self.df.stages[to], to),
                });
            }
        }
        Ok(())
    }
}

fn stage_label(stage: &Stage, index: usize) -> String {
    stage
        .name
        .clone()
        .unwrap_or_else(|| format!("stage-{index}"))
}
