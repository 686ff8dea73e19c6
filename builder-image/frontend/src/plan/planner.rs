//! The planner proper: each stage's base, environment and direct needs, followed instruction
//! by instruction (ONBUILD triggers of a stage parent first), then the cycle check and the
//! [`Plan`] for the target.

use std::collections::{BTreeMap, BTreeSet};

use super::args::{global_args, unused_build_args};
use super::order::{build_order, exports, transitive_needs};
use super::{
    Base, DEFAULT_PATH, Plan, PlanError, PlanOptions, PlannedStage, StageRef, TriggerError,
};
use crate::dockerfile::instructions::{self, Command, Copy, Dockerfile, Instruction, Run, Stage};
use crate::dockerfile::parser;
use crate::dockerfile::shell::{Lex, LexError, NoEnv, Vars};
use crate::gocompat::clean;
use crate::reference::Reference;

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

impl Resolved {
    fn new(base: Base, platform: Option<String>) -> Self {
        Resolved {
            base,
            platform,
            needs: BTreeSet::new(),
            copies: Vec::new(),
            images: BTreeSet::new(),
            secrets: BTreeSet::new(),
            cache_mounts: false,
            declared_args: BTreeSet::new(),
            env: Vars::new(),
            need_lines: BTreeMap::new(),
        }
    }

    /// Records that this stage needs stage `s`, first because of `line`.
    fn need(&mut self, s: usize, line: usize) {
        self.needs.insert(s);
        self.need_lines.entry(s).or_insert(line);
    }
}

pub(super) struct Planner<'a> {
    df: Dockerfile,
    lex: Lex,
    opts: &'a PlanOptions,
    build_args: BTreeMap<String, String>,
    global: Vars,
    meta_declared: BTreeSet<String>,
}

fn expansion_error(cmd: &Command, source: LexError) -> PlanError {
    PlanError::Expansion {
        line: cmd.span.start,
        instruction: cmd.keyword.to_uppercase(),
        source,
    }
}

/// Go's `strconv.Atoi` accepts an optional sign and decimal digits.
pub(crate) fn as_index(s: &str) -> Option<i64> {
    let digits = s.strip_prefix(['+', '-']).unwrap_or(s);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

fn stage_label(stage: &Stage, index: usize) -> String {
    stage
        .name
        .clone()
        .unwrap_or_else(|| format!("stage-{index}"))
}

impl<'a> Planner<'a> {
    pub(super) fn new(df: Dockerfile, lex: Lex, opts: &'a PlanOptions) -> Result<Self, PlanError> {
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

    fn cycle(&self, line: usize, stage: usize) -> PlanError {
        PlanError::Cycle {
            line,
            stage: stage_label(&self.df.stages[stage], stage),
        }
    }

    pub(super) fn run(self) -> Result<Plan, PlanError> {
        let mut resolved: Vec<Resolved> = Vec::with_capacity(self.df.stages.len());
        for (i, stage) in self.df.stages.iter().enumerate() {
            let r = self.resolve_stage(i, stage, &resolved)?;
            resolved.push(r);
        }
        self.check_cycles(&resolved)?;
        let target_index = self.target_index()?;

        let needs: Vec<BTreeSet<usize>> = resolved.iter().map(|r| r.needs.clone()).collect();
        let depends_on = transitive_needs(&needs);
        let mut needed = depends_on[target_index].clone();
        needed.insert(target_index);
        let mut exports = exports(needed.iter().flat_map(|&i| &resolved[i].copies));

        let mut declared: BTreeSet<&str> = self.meta_declared.iter().map(String::as_str).collect();
        for &i in &needed {
            declared.extend(resolved[i].declared_args.iter().map(String::as_str));
        }
        let warnings = unused_build_args(&self.build_args, &declared);

        let stages = build_order(&needed, &needs)
            .into_iter()
            .map(|i| {
                let stage = &self.df.stages[i];
                let r = &resolved[i];
                PlannedStage {
                    index: i,
                    name: stage.name.clone(),
                    from: r.base.clone(),
                    depends_on: depends_on[i].iter().copied().collect(),
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

    /// The `--target` stage, else the last one.
    fn target_index(&self) -> Result<usize, PlanError> {
        let Some(t) = &self.opts.target else {
            return Ok(self.df.stages.len() - 1);
        };
        self.find_stage(t).ok_or_else(|| PlanError::UnknownTarget {
            name: t.clone(),
            known: self
                .df
                .stages
                .iter()
                .filter_map(|s| s.name.clone())
                .collect::<Vec<_>>()
                .join(", "),
        })
    }

    fn resolve_stage(
        &self,
        i: usize,
        stage: &Stage,
        done: &[Resolved],
    ) -> Result<Resolved, PlanError> {
        let line = stage.span.start;
        let from_err = |source| PlanError::Expansion {
            line,
            instruction: "FROM".into(),
            source,
        };
        let base_name = self
            .lex
            .process_word(&stage.base_name, &self.global)
            .map_err(from_err)?;
        if base_name.is_empty() {
            return Err(PlanError::BlankBaseName {
                line,
                expression: stage.base_name.clone(),
            });
        }
        let platform = match &stage.platform {
            None => None,
            Some(p) => {
                let v = self.lex.process_word(p, &self.global).map_err(from_err)?;
                if v.is_empty() {
                    return Err(PlanError::EmptyPlatform {
                        line,
                        expression: p.clone(),
                    });
                }
                Some(v)
            }
        };

        let mut r = Resolved::new(Base::Image(base_name.clone()), platform);
        let mut triggers = Vec::new();
        match self.find_stage(&base_name) {
            Some(j) if j < i => {
                r.base = Base::Stage(j);
                r.need(j, line);
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
                Reference::parse(&base_name)
                    .map_err(|source| PlanError::InvalidBase { line, source })?;
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
            let err = |source: TriggerError| PlanError::Onbuild { line, source };
            let parsed = parser::parse(expression).map_err(|e| err(e.into()))?;
            let [node] = parsed.ast.children.as_slice() else {
                return Err(err(TriggerError::NotSingle));
            };
            let mut c = instructions::parse_command(node).map_err(|e| err(e.into()))?;
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
        match &cmd.instruction {
            Instruction::Env { pairs } => {
                // All pairs expand against the environment before the instruction.
                let mut expanded = Vec::new();
                for p in pairs {
                    let expand = |w| {
                        self.lex
                            .process_word(w, &r.env)
                            .map_err(|e| expansion_error(cmd, e))
                    };
                    expanded.push((expand(&p.key)?, expand(&p.value)?));
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
                                .map_err(|e| expansion_error(cmd, e))?,
                        ),
                        (None, None) => self.global.get(&a.key).map(str::to_string),
                    };
                    if let Some(v) = value {
                        r.env.set(&a.key, &v);
                    }
                }
            }
            Instruction::Copy(c) => self.apply_copy(i, cmd, c, r)?,
            Instruction::Run(run) => self.apply_mounts(i, cmd, run, r)?,
            _ => {}
        }
        Ok(())
    }

    /// `COPY --from`: a stage (by name or index) this one needs, or an external image.
    fn apply_copy(
        &self,
        i: usize,
        cmd: &Command,
        c: &Copy,
        r: &mut Resolved,
    ) -> Result<(), PlanError> {
        let line = cmd.span.start;
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
            Some(s) if s == i => return Err(self.cycle(line, i)),
            Some(s) => {
                r.need(s, line);
                for src in &c.paths.sources {
                    let p = self
                        .lex
                        .process_word(src, &r.env)
                        .map_err(|e| expansion_error(cmd, e))?;
                    r.copies.push((s, clean(&format!("/{p}"))));
                }
            }
            None => {
                Reference::parse(from).map_err(|source| PlanError::CopyFrom {
                    line,
                    from: from.clone(),
                    source,
                })?;
                r.images.insert(from.clone());
            }
        }
        Ok(())
    }

    /// `RUN --mount`: the secrets and caches it uses, and the stage or image a mount reads.
    fn apply_mounts(
        &self,
        i: usize,
        cmd: &Command,
        run: &Run,
        r: &mut Resolved,
    ) -> Result<(), PlanError> {
        let line = cmd.span.start;
        for spec in &run.mounts {
            let env = &r.env;
            let lex = self.lex;
            let m = instructions::parse_mount_with(spec, &mut |v| lex.process_word(v, env))
                .map_err(|source| PlanError::Mount { line, source })?;
            match m.kind {
                instructions::MountKind::Secret => {
                    r.secrets.extend(m.secret_id().map(str::to_string))
                }
                instructions::MountKind::Cache => r.cache_mounts = true,
                _ => {}
            }
            let Some(from) = &m.from else { continue };
            // RUN --mount finds stages by name only (BuildKit), never by index.
            match self.find_stage(from) {
                Some(s) if s == i => return Err(self.cycle(line, i)),
                Some(s) => {
                    r.need(s, line);
                    let src = m.source.as_deref().unwrap_or("/");
                    r.copies.push((s, clean(&format!("/{src}"))));
                }
                None => {
                    Reference::parse(from).map_err(|source| PlanError::MountFrom {
                        line,
                        from: from.clone(),
                        source,
                    })?;
                    r.images.insert(from.clone());
                }
            }
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
                let line = r[from]
                    .need_lines
                    .get(&to)
                    .copied()
                    .unwrap_or(self.df.stages[from].span.start);
                return Err(self.cycle(line, to));
            }
        }
        Ok(())
    }
}
