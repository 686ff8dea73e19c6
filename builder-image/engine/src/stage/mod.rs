//! Running one stage: `slipway-builder stage --plan FILE --stage N --workspace DIR`, as root,
//! inside the stage's base image (the tree at `/`), or for a FROM scratch chain in an empty
//! directory of the workspace the engine roots RUN commands in. It applies the parent stage's
//! layers, executes every instruction, writes one layer per RUN/COPY/ADD/WORKDIR, and leaves
//! `result.json` and the exports for the stages and the push step that follow.
//!
//! Here: the stage's state ([`Engine`]'s fields), loading the plan and the Dockerfile, and the
//! dispatch of the instructions (ENV, ARG, LABEL, WORKDIR, USER, ... change the config,
//! [`config`]). The rest is split along the engine's seams: `start` (where a stage begins),
//! [`run`] (RUN), [`mounts`] and [`mount_sources`] (`RUN --mount`), [`copy`] (COPY and ADD),
//! [`commit`] (layers and the end of the stage), [`error`] (the one-line messages users see).
//! [`users`], [`exec`], [`run_files`], [`reap`], [`exports`] and [`copy_sources`] are their
//! helpers.

pub mod commit;
pub mod config;
pub mod copy;
pub mod copy_sources;
pub mod error;
pub mod exec;
pub mod exports;
pub mod mount_sources;
pub mod mounts;
pub mod reap;
pub mod run;
pub mod run_files;
mod start;
pub mod users;

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

use slipway_contract::digest::Digest;
use slipway_contract::pod::{Digests, StageLayers, paths};
use slipway_contract::trust::Outputs;

use crate::fs::copy::{self as fscopy, Written};
use crate::layer::snapshot::Snapshot;
use crate::stage::config::StageImage;
use crate::trusted::{self, Checked};
use crate::workspace::{Checkpoint, LayerRef, StageResult, Workspace};
use slipway_frontend::dockerfile::instructions::{self, Command, Dockerfile, Instruction};
use slipway_frontend::dockerfile::parser;
use slipway_frontend::dockerfile::shell::{Lex, Vars};
use slipway_frontend::plan::{self, Plan, PlannedStage};

pub use error::{InstructionFailure, SetupError, StageError};

pub const LAYER_MEDIA_TYPE: &str = oci_client::manifest::IMAGE_LAYER_GZIP_MEDIA_TYPE;

#[derive(Debug, Clone)]
pub struct StageOptions {
    pub plan: PathBuf,
    /// One stage, or a linear FROM-chain (each built on the one before) run in one go: the
    /// tree of one stage is where the next starts, so nothing is unpacked twice.
    pub stages: Vec<usize>,
    pub workspace: PathBuf,
    /// Secret files by id (`RUN --mount=type=secret`); default `/.slipway/secrets`.
    pub secrets_dir: Option<PathBuf>,
    /// Where cache mounts live; default `/.slipway/cache`, else a folder of the stage's own
    /// scratch space (the rest of the workspace is read-only to a stage pod).
    pub cache_dir: Option<PathBuf>,
    /// The digests of the workspace files the chain reads (the plan, the Dockerfile, the
    /// images', its parents' results and exports): nothing else is read there.
    pub digests: Digests,
    /// `SOURCE_DATE_EPOCH`: the new history entries' `created`, and no file in the stage's
    /// layers newer than it.
    pub epoch: Option<u64>,
    /// Which stages write layers ([`StageLayers`]).
    pub layers: StageLayers,
}

/// What a chain of stages leaves: the last one's result, and the digests of what each of
/// them wrote (for the controller, which hands them to the pods that read those files).
#[derive(Debug)]
pub struct ChainResult {
    pub result: StageResult,
    pub outputs: BTreeMap<usize, Outputs>,
}

/// A stage label for messages: `stage "builder" (#1)`.
fn label(ps: &PlannedStage) -> String {
    match &ps.name {
        Some(n) => format!("stage {n:?} (#{})", ps.index),
        None => format!("stage #{}", ps.index),
    }
}

/// One stage while it runs; its methods live in the module of their seam.
struct Engine<'a> {
    ws: Workspace,
    plan: &'a Plan,
    df: &'a Dockerfile,
    lex: Lex,
    ps: &'a PlannedStage,
    label: String,
    /// Where the stage's tree is: `/`, or an empty directory for scratch chains.
    root: PathBuf,
    image: StageImage,
    vars: Vars,
    args: Vec<(String, String)>,
    global: Vars,
    /// The external image at the root of the stage's FROM chain; `None` for scratch.
    base: Option<String>,
    /// The base's ONBUILD triggers (the stage's own config no longer carries them).
    on_build: Vec<String>,
    layers: Vec<LayerRef>,
    /// The last walk of the tree (taken lazily before the first RUN).
    baseline: Option<Snapshot>,
    skip: BTreeSet<PathBuf>,
    /// `.dockerignore` patterns, read at the first COPY from the context.
    ignore: Option<Vec<String>>,
    /// Stage exports already unpacked for COPY --from, by stage index.
    unpacked: BTreeMap<usize, PathBuf>,
    /// External images unpacked for COPY --from, by reference.
    unpacked_images: BTreeMap<String, PathBuf>,
    secrets_dir: PathBuf,
    cache_dir: PathBuf,
    /// The digests of what the stage may read of the workspace.
    digests: Digests,
    step: usize,
    steps: usize,
    /// Where the stage's own layers start in `layers` (those before are its FROM-chain's).
    own: usize,
    /// The stage's state after its RUN steps, for the layer cache's prefix hits.
    checkpoints: Vec<Checkpoint>,
    /// Instructions a checkpoint it started from already did (skipped).
    resumed: usize,
    threads: usize,
    /// The source date epoch the stage's layers are clamped to.
    epoch: Option<u64>,
    /// Whether the stage makes layers: no walk, no tar, no gzip when nothing reads them.
    writes_layers: bool,
}

/// The tree one stage of a chain leaves to the next.
pub struct Carry {
    index: usize,
    root: PathBuf,
    baseline: Option<Snapshot>,
}

/// What every stage of a chain shares: the plan and the Dockerfile, read and parsed once.
struct Loaded {
    plan: Plan,
    df: Dockerfile,
    lex: Lex,
    global: Vars,
}

fn load(opts: &StageOptions) -> Result<Loaded, StageError> {
    let ws = Workspace::new(&opts.workspace);
    let checked = Checked {
        ws: &ws,
        digests: &opts.digests,
    };
    let plan: Plan = checked.plan_at(&opts.plan).map_err(|e| StageError::Setup {
        stage: opts
            .stages
            .first()
            .map_or_else(|| "stage".to_string(), |i| format!("stage #{i}")),
        source: e.into(),
    })?;
    // Messages name the chain's first stage: the one a failure here stops.
    let first = opts.stages.first().and_then(|i| plan.stage(*i));
    let label = first.map_or_else(|| "stage".to_string(), label);
    let text = checked.dockerfile().map_err(|e| StageError::Setup {
        stage: label.clone(),
        source: e.into(),
    })?;
    let parsed = parser::parse(&text).map_err(|e| StageError::Instruction {
        stage: label.clone(),
        line: e.start_line,
        instruction: "parse".into(),
        source: Box::new(e.into()),
    })?;
    let df = instructions::from_ast(&parsed.ast).map_err(|e| StageError::Instruction {
        stage: label.clone(),
        line: e.line,
        instruction: e.instruction.to_uppercase(),
        source: Box::new(e.into()),
    })?;
    let lex = Lex::new(parsed.escape);
    let target_name = plan.stage(plan.target_index).and_then(|s| s.name.clone());
    let (global, _) = plan::global_args(&df, &lex, &plan.build_args, target_name.as_deref())
        .map_err(|e| StageError::Setup {
            stage: label,
            source: e.into(),
        })?;
    Ok(Loaded {
        plan,
        df,
        lex,
        global,
    })
}

/// Runs a stage, or a FROM-chain of stages, and returns the last one's result and the digests
/// of what each wrote. A failure's one-line message is also left in each stage's error file in
/// the workspace ([`Workspace::stage_error`]), where local mode reads it.
pub fn run_stage(opts: &StageOptions) -> Result<ChainResult, StageError> {
    let r = run_chain(opts);
    if let Err(e) = &r {
        let ws = Workspace::new(&opts.workspace);
        for &index in &opts.stages {
            let _ = fs::create_dir_all(ws.stage_dir(index));
            let _ = fs::write(ws.stage_error(index), e.to_string());
        }
    }
    r
}

fn run_chain(opts: &StageOptions) -> Result<ChainResult, StageError> {
    // Before any RUN: what a RUN leaves running comes back to the engine to be killed
    // (`reap`), and RUN steps (root, but without CAP_SYS_PTRACE) cannot read the engine's
    // memory, where the secrets it copies for each RUN pass.
    let guard = |source| StageError::Setup {
        stage: "stage".into(),
        source,
    };
    reap::become_subreaper().map_err(|e| guard(SetupError::Reaper(e)))?;
    nix::sys::prctl::set_dumpable(false).map_err(|e| guard(SetupError::Reaper(e)))?;
    let loaded = load(opts)?;
    let mut digests = opts.digests.clone();
    let mut outputs = BTreeMap::new();
    let mut carry = None;
    let mut last = None;
    for &index in &opts.stages {
        let (r, c, exports) = run_one(opts, &loaded, index, carry.take(), &digests)?;
        // What this stage wrote, as the next stages of the chain (and the controller) know it.
        let ws = Workspace::new(&opts.workspace);
        let out = trusted::outputs_written(&ws, index, exports).map_err(|e| StageError::Setup {
            stage: label_of(&loaded.plan, index),
            source: e.into(),
        })?;
        digests.add_outputs(index, &out);
        outputs.insert(index, out);
        carry = Some(c);
        last = Some(r);
    }
    let result = last.ok_or_else(|| StageError::Setup {
        stage: "stage".into(),
        source: SetupError::NoStage,
    })?;
    Ok(ChainResult { result, outputs })
}

fn label_of(plan: &Plan, index: usize) -> String {
    plan.stage(index)
        .map_or_else(|| format!("stage #{index}"), label)
}

fn run_one(
    opts: &StageOptions,
    loaded: &Loaded,
    index: usize,
    carry: Option<Carry>,
    digests: &Digests,
) -> Result<(StageResult, Carry, Option<Digest>), StageError> {
    let setup = |stage: &str, source: SetupError| StageError::Setup {
        stage: stage.to_string(),
        source,
    };
    let (plan, df) = (&loaded.plan, &loaded.df);
    let ps = plan
        .stage(index)
        .ok_or_else(|| setup(&format!("stage #{index}"), SetupError::NotInPlan))?;
    let label = label(ps);
    let ws = Workspace::new(&opts.workspace);

    let mut e = Engine {
        plan,
        df,
        lex: loaded.lex,
        ps,
        label: label.clone(),
        root: PathBuf::from("/"),
        image: StageImage::default(),
        vars: Vars::new(),
        args: Vec::new(),
        global: loaded.global.clone(),
        base: None,
        on_build: Vec::new(),
        layers: Vec::new(),
        baseline: None,
        skip: BTreeSet::new(),
        ignore: None,
        unpacked: BTreeMap::new(),
        unpacked_images: BTreeMap::new(),
        secrets_dir: opts
            .secrets_dir
            .clone()
            .unwrap_or_else(|| PathBuf::from(paths::SECRETS)),
        cache_dir: opts.cache_dir.clone().unwrap_or_else(|| {
            if Path::new(paths::CACHE).is_dir() {
                PathBuf::from(paths::CACHE)
            } else {
                // A cache mount the plan did not see (an ONBUILD trigger's): the stage's own
                // scratch space, the only part of the workspace it may write.
                ws.stage_work(index).join("cache")
            }
        }),
        digests: digests.clone(),
        step: 0,
        steps: 0,
        own: 0,
        checkpoints: Vec::new(),
        resumed: 0,
        threads: std::thread::available_parallelism().map_or(2, |n| n.get()),
        epoch: opts.epoch,
        writes_layers: match opts.layers {
            StageLayers::Read => plan.layers_read_in(index, &opts.stages),
            // A cache entry holds what a later build may resume from.
            StageLayers::Cached => plan.layers_read(index) || checkpointable(&df.stages[ps.index]),
        },
        ws,
    };
    e.start(carry).map_err(|m| setup(&label, m))?;
    e.image.created = opts.epoch.map(config::created_at);
    let stage = &df.stages[ps.index];
    let triggers = e.triggers()?;
    e.steps = triggers.len() + stage.commands.len() + 1;
    e.say(&format!("FROM {}", stage.base_name));
    // Checkpoints count the stage's own instructions: none on a base with ONBUILD triggers.
    let checkpointed = triggers.is_empty();
    for (n, cmd) in triggers.iter().chain(stage.commands.iter()).enumerate() {
        e.step += 1;
        if n < e.resumed {
            e.say(&format!("CACHED {}", cmd.original));
            continue;
        }
        e.say(&cmd.original);
        let began = std::time::Instant::now();
        e.dispatch(cmd)?;
        e.done(began);
        if checkpointed && e.writes_layers && checkpoint_after(stage, n) {
            e.checkpoint(n + 1);
        }
    }
    let began = std::time::Instant::now();
    let (name, step, steps) = (e.name(), e.step, e.steps);
    let out = e.finish().map_err(|m| setup(&label, m))?;
    if out.2.is_some() {
        // The exports are the one step after the last instruction that can take long.
        eprintln!(
            "[{name} {}/{steps}] DONE exports {:.2}s",
            step + 1,
            began.elapsed().as_secs_f64()
        );
    }
    Ok(out)
}

impl Engine<'_> {
    /// The workspace as this stage may read it.
    fn checked(&self) -> Checked<'_> {
        Checked {
            ws: &self.ws,
            digests: &self.digests,
        }
    }

    /// The stage as its progress lines name it: its `AS` name, else its index.
    fn name(&self) -> String {
        self.ps
            .name
            .clone()
            .unwrap_or_else(|| self.ps.index.to_string())
    }

    fn say(&self, what: &str) {
        eprintln!("[{} {}/{}] {what}", self.name(), self.step + 1, self.steps);
    }

    /// How long the step took, layer included, as BuildKit's progress shows it (`DONE 0.3s`).
    fn done(&self, began: std::time::Instant) {
        self.say(&format!("DONE {:.2}s", began.elapsed().as_secs_f64()));
    }

    /// An instruction's failure, with the stage and the instruction's place.
    fn fail(&self, cmd: &Command, failure: impl Into<InstructionFailure>) -> StageError {
        StageError::Instruction {
            stage: self.label.clone(),
            line: cmd.span.start,
            instruction: cmd.keyword.to_uppercase(),
            source: Box::new(failure.into()),
        }
    }

    /// The base's ONBUILD triggers, run before the stage's own instructions.
    fn triggers(&self) -> Result<Vec<Command>, StageError> {
        let line = self.df.stages[self.ps.index].span.start;
        let mut out = Vec::new();
        for expr in &self.on_build {
            let err = |failure: InstructionFailure| StageError::Instruction {
                stage: self.label.clone(),
                line,
                instruction: "ONBUILD trigger".into(),
                source: Box::new(failure),
            };
            let parsed = parser::parse(expr).map_err(|e| err(e.into()))?;
            for node in &parsed.ast.children {
                let mut c = instructions::parse_command(node).map_err(|e| err(e.into()))?;
                c.span = instructions::Span {
                    start: line,
                    end: line,
                };
                out.push(c);
            }
        }
        Ok(out)
    }

    /// Variables for expansion: ARG values, with ENV (the config) winning.
    fn expand(&self, cmd: &Command, word: &str) -> Result<String, StageError> {
        self.lex
            .process_word(word, &self.vars)
            .map_err(|e| self.fail(cmd, e))
    }

    /// ENV and LABEL pairs, all expanded against the variables before the instruction.
    fn expand_pairs(
        &self,
        cmd: &Command,
        pairs: &[instructions::KeyValue],
    ) -> Result<Vec<instructions::KeyValue>, StageError> {
        pairs
            .iter()
            .map(|p| {
                Ok(instructions::KeyValue {
                    key: self.expand(cmd, &p.key)?,
                    value: self.expand(cmd, &p.value)?,
                    no_delim: p.no_delim,
                })
            })
            .collect()
    }

    fn dispatch(&mut self, cmd: &Command) -> Result<(), StageError> {
        match &cmd.instruction {
            Instruction::Env { pairs } => {
                let expanded = self.expand_pairs(cmd, pairs)?;
                for p in &expanded {
                    self.vars.set(&p.key, &p.value);
                }
                self.image.env(&expanded);
            }
            Instruction::Arg { args } => {
                let mut shown = Vec::new();
                for a in args {
                    let value = match (self.plan.build_args.get(&a.key), &a.value) {
                        (Some(v), _) => Some(v.clone()),
                        (None, Some(d)) => Some(self.expand(cmd, d)?),
                        (None, None) => self.global.get(&a.key).map(str::to_string),
                    };
                    if let Some(v) = &value {
                        self.args.retain(|(k, _)| k != &a.key);
                        self.args.push((a.key.clone(), v.clone()));
                        // An ENV of the same name keeps precedence for expansion.
                        if !self.env_has(&a.key) {
                            self.vars.set(&a.key, v);
                        }
                    }
                    shown.push((a.key.clone(), value));
                }
                self.image.arg(&shown);
            }
            Instruction::Label { pairs } => {
                let expanded = self.expand_pairs(cmd, pairs)?;
                self.image.label(&expanded);
            }
            Instruction::Maintainer { name } => self.image.maintainer(name),
            Instruction::Workdir { path } => {
                let p = self.expand(cmd, path)?;
                let (wd, layer) = self.image.workdir(&p);
                if layer {
                    let owner = self.user_ids(cmd)?;
                    let mut w = Written::default();
                    fscopy::make_dirs(&self.root, &wd, owner, 0o755, &mut w).map_err(|source| {
                        let dir = wd.clone();
                        self.fail(cmd, InstructionFailure::Workdir { dir, source })
                    })?;
                    // The directory entry itself, even when it existed.
                    if let Ok(real) = crate::fs::root::resolve_in_root(&self.root, &wd) {
                        w.record(&self.root, &real);
                    }
                    self.commit_written(cmd, &w)?;
                }
            }
            Instruction::Run(run) => self.run(cmd, run)?,
            Instruction::Copy(c) => self.copy(cmd, c)?,
            Instruction::Add(a) => self.add(cmd, a)?,
            Instruction::Cmd(c) => self.image.cmd(c),
            Instruction::Entrypoint(c) => self.image.entrypoint(c),
            Instruction::Healthcheck(h) => self.image.healthcheck(h),
            Instruction::Expose { ports } => {
                // BuildKit sorts the words as written, before expanding them (parseExpose).
                let mut raw: Vec<&String> = ports.iter().collect();
                raw.sort();
                let mut words = Vec::new();
                for p in raw {
                    words.extend(
                        self.lex
                            .process_words(p, &self.vars)
                            .map_err(|e| self.fail(cmd, e))?,
                    );
                }
                self.image.expose(&words).map_err(|e| self.fail(cmd, e))?;
            }
            Instruction::User { user } => {
                let u = self.expand(cmd, user)?;
                self.image.user(&u);
            }
            Instruction::Volume { paths } => {
                let mut v = Vec::new();
                for p in paths {
                    let x = self.expand(cmd, p)?;
                    if x.is_empty() {
                        return Err(self.fail(cmd, InstructionFailure::EmptyVolume));
                    }
                    v.push(x);
                }
                self.image.volume(&v);
            }
            Instruction::StopSignal { signal } => {
                let s = self.expand(cmd, signal)?;
                self.image.stop_signal(&s).map_err(|e| self.fail(cmd, e))?;
            }
            Instruction::Shell { shell } => self.image.shell(shell),
            Instruction::Onbuild { expression } => self.image.onbuild(expression),
        }
        Ok(())
    }

    /// The stage's state now, after its first `steps` instructions.
    fn checkpoint(&mut self, steps: usize) {
        self.checkpoints.push(Checkpoint {
            steps,
            own: self.own,
            layers: self.layers.len(),
            config: self.image.config.clone(),
            history: self.image.history.len(),
            author: self.image.author.clone(),
            cmd_set: self.image.cmd_set(),
            vars: self
                .vars
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            args: self.args.clone(),
        });
    }

    fn env_has(&self, key: &str) -> bool {
        self.image.has_env(key)
    }

    fn read_users(&self) -> (Vec<users::PasswdEntry>, Vec<users::GroupEntry>) {
        let read = |f: &str| {
            crate::fs::root::resolve_in_root(&self.root, f)
                .and_then(fs::read_to_string)
                .unwrap_or_default()
        };
        (
            users::parse_passwd(&read("etc/passwd")),
            users::parse_group(&read("etc/group")),
        )
    }

    /// The current USER as (uid, gid), for the directories WORKDIR makes.
    fn user_ids(&self, cmd: &Command) -> Result<(u32, u32), StageError> {
        if self.image.config.user.is_empty() {
            return Ok((0, 0));
        }
        let (p, g) = self.read_users();
        // BuildKit's mkdir takes USER as a file operation's owner: a name as passwd has it
        // (`USER app` is app's uid and gid), but a number without a group gets the uid as gid
        // (`USER 9999` makes 9999:9999, not runc's 9999:0), and `root` needs no passwd file.
        let spec = &self.image.config.user;
        match users::exec_user(spec, &p, &g) {
            Ok(u) if !spec.contains(':') && spec.parse::<u32>().is_ok() => Ok((u.uid, u.uid)),
            Ok(u) => Ok((u.uid, u.gid)),
            Err(e) => users::chown_ids(spec, &p, &g).map_err(|_| self.fail(cmd, e)),
        }
    }

    /// WORKDIR, `/` when none is set: where RUN starts and relative paths are taken from.
    fn workdir(&self) -> &str {
        if self.image.config.working_dir.is_empty() {
            "/"
        } else {
            &self.image.config.working_dir
        }
    }
}

/// Whether a checkpoint follows instruction `n` of the stage: a RUN before its last one.
fn checkpoint_after(stage: &instructions::Stage, n: usize) -> bool {
    n + 1 < stage.commands.len() && matches!(stage.commands[n].instruction, Instruction::Run(_))
}

/// Whether a stage can leave checkpoints, whose layers a later build resumes from.
fn checkpointable(stage: &instructions::Stage) -> bool {
    (0..stage.commands.len()).any(|n| checkpoint_after(stage, n))
}

/// A name safe as one file name (heredoc scripts, secrets): anything but `[A-Za-z0-9_-]`
/// becomes `_`.
fn sanitize(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_and_file_names() {
        let mut ps = PlannedStage {
            index: 1,
            name: Some("build".into()),
            from: plan::Base::Image("alpine".into()),
            depends_on: vec![],
            exports: vec![],
            line: 1,
            platform: None,
            images: vec![],
            secrets: vec![],
            cache_mounts: false,
        };
        assert_eq!(label(&ps), r#"stage "build" (#1)"#);
        ps.name = None;
        assert_eq!(label(&ps), "stage #1");
        assert_eq!(sanitize("run.py"), "run_py");
        assert_eq!(sanitize("a-b_C9/../x y"), "a-b_C9____x_y");
    }
}
