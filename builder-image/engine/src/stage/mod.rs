//! Running one stage: `slipway-builder stage --plan FILE --stage N --workspace DIR`, as root,
//! inside the stage's base image (the tree at `/`), or for a FROM scratch chain in an empty
//! directory of the workspace the engine roots RUN commands in. It applies the parent stage's
//! layers, executes every instruction, writes one layer per RUN/COPY/ADD/WORKDIR, and leaves
//! `result.json` and the exports for the stages and the push step that follow.

pub mod config;
pub mod copy_sources;
pub mod exec;
pub mod exports;
pub mod mounts;
pub mod users;

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command as Process, Stdio};

use slipway_contract::pod::paths;

use crate::fs::copy::{self, CopyOptions, Owner, Written};
use crate::layer::snapshot::{self, Snapshot};
use crate::layer::writer::LayerWriter;
use crate::stage::config::{Config, StageImage};
use crate::stage::exec::ExecSpec;
use crate::workspace::{self, ImageInfo, LayerRef, StageResult, Workspace};
use slipway_frontend::dockerfile::instructions::{
    self, Add, Command, Copy, Dockerfile, Instruction, MountKind, Run, SecurityMode,
};
use slipway_frontend::dockerfile::parser;
use slipway_frontend::dockerfile::shell::{Lex, Vars};
use slipway_frontend::dockerignore::Matcher;
use slipway_frontend::gocompat;
use slipway_frontend::plan::{self, Base, DEFAULT_PATH, Plan, PlannedStage};

pub const LAYER_MEDIA_TYPE: &str = oci_client::manifest::IMAGE_LAYER_GZIP_MEDIA_TYPE;

#[derive(Debug, thiserror::Error)]
pub enum StageError {
    #[error("{stage}: Dockerfile:{line}: {instruction}: {message}")]
    Instruction {
        stage: String,
        line: usize,
        instruction: String,
        message: String,
    },
    #[error("{stage}: Dockerfile:{line}: RUN {command}: exit code {code}")]
    RunFailed {
        stage: String,
        line: usize,
        command: String,
        code: i32,
    },
    #[error("{stage}: {message}")]
    Setup { stage: String, message: String },
}

impl StageError {
    pub fn line(&self) -> Option<usize> {
        match self {
            StageError::Instruction { line, .. } | StageError::RunFailed { line, .. } => {
                Some(*line)
            }
            StageError::Setup { .. } => None,
        }
    }
}

#[derive(Debug, Clone)]
pub struct StageOptions {
    pub plan: PathBuf,
    /// One stage, or a linear FROM-chain (each built on the one before) run in one go: the
    /// tree of one stage is where the next starts, so nothing is unpacked twice.
    pub stages: Vec<usize>,
    pub workspace: PathBuf,
    /// Secret files by id (`RUN --mount=type=secret`); default `/.slipway/secrets`.
    pub secrets_dir: Option<PathBuf>,
    /// Where cache mounts live; default `/.slipway/cache`, else `<workspace>/cache`.
    pub cache_dir: Option<PathBuf>,
}

/// What ADD does with a local tar archive among its sources.
#[derive(Debug, Clone, Copy)]
enum Archives {
    /// Copy it as a file (COPY, `ADD --unpack=false`).
    Copy,
    /// Unpack it: owners from the archive, or `--chown` for every entry.
    Unpack { chown: Option<(u32, u32)> },
}

/// A stage label for messages: `stage "builder" (#1)`.
fn label(ps: &PlannedStage) -> String {
    match &ps.name {
        Some(n) => format!("stage {n:?} (#{})", ps.index),
        None => format!("stage #{}", ps.index),
    }
}

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
    secrets_dir: PathBuf,
    cache_dir: PathBuf,
    step: usize,
    steps: usize,
    threads: usize,
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
    let plan: Plan = workspace::read_json(&opts.plan).map_err(|e| StageError::Setup {
        stage: "plan".into(),
        message: e.to_string(),
    })?;
    // Messages name the chain's first stage: the one a failure here stops.
    let first = opts.stages.first().and_then(|i| plan.stage(*i));
    let label = first.map_or_else(|| "stage".to_string(), label);
    let ws = Workspace::new(&opts.workspace);
    let text = fs::read_to_string(ws.dockerfile()).map_err(|e| StageError::Setup {
        stage: label.clone(),
        message: format!("{}: {e}", ws.dockerfile().display()),
    })?;
    let parsed = parser::parse(&text).map_err(|e| StageError::Instruction {
        stage: label.clone(),
        line: e.start_line,
        instruction: "parse".into(),
        message: e.to_string(),
    })?;
    let df = instructions::from_ast(&parsed.ast).map_err(|e| StageError::Instruction {
        stage: label.clone(),
        line: e.line,
        instruction: e.instruction.to_uppercase(),
        message: e.to_string(),
    })?;
    let lex = Lex::new(parsed.escape);
    let target_name = plan.stage(plan.target_index).and_then(|s| s.name.clone());
    let (global, _) = plan::global_args(&df, &lex, &plan.build_args, target_name.as_deref())
        .map_err(|e| StageError::Setup {
            stage: label,
            message: e.to_string(),
        })?;
    Ok(Loaded {
        plan,
        df,
        lex,
        global,
    })
}

/// Runs the stages (a chain) and writes their results; returns the last result.
/// Runs a stage, or a FROM-chain of stages, and returns the last one's result. A failure's
/// one-line message is also left in each stage's error file in the workspace
/// ([`Workspace::stage_error`]), where local mode reads it.
pub fn run_stage(opts: &StageOptions) -> Result<StageResult, StageError> {
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

fn run_chain(opts: &StageOptions) -> Result<StageResult, StageError> {
    let loaded = load(opts)?;
    let mut carry = None;
    let mut last = None;
    for &index in &opts.stages {
        let (r, c) = run_one(opts, &loaded, index, carry.take())?;
        carry = Some(c);
        last = Some(r);
    }
    last.ok_or_else(|| StageError::Setup {
        stage: "stage".into(),
        message: "no stage given".into(),
    })
}

fn run_one(
    opts: &StageOptions,
    loaded: &Loaded,
    index: usize,
    carry: Option<Carry>,
) -> Result<(StageResult, Carry), StageError> {
    let setup = |stage: &str, message: String| StageError::Setup {
        stage: stage.to_string(),
        message,
    };
    let (plan, df) = (&loaded.plan, &loaded.df);
    let ps = plan
        .stage(index)
        .ok_or_else(|| setup(&format!("stage #{index}"), "not in the plan".into()))?;
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
        secrets_dir: opts
            .secrets_dir
            .clone()
            .unwrap_or_else(|| PathBuf::from(paths::SECRETS)),
        cache_dir: opts.cache_dir.clone().unwrap_or_else(|| {
            if Path::new(paths::CACHE).is_dir() {
                PathBuf::from(paths::CACHE)
            } else {
                ws.root.join("cache")
            }
        }),
        step: 0,
        steps: 0,
        threads: std::thread::available_parallelism().map_or(2, |n| n.get()),
        ws,
    };
    e.start(carry).map_err(|m| setup(&label, m))?;
    let stage = &df.stages[ps.index];
    let triggers = e.triggers()?;
    e.steps = triggers.len() + stage.commands.len() + 1;
    e.say(&format!("FROM {}", stage.base_name));
    for cmd in triggers.iter().chain(stage.commands.iter()) {
        e.step += 1;
        e.say(&cmd.original);
        e.dispatch(cmd)?;
    }
    e.finish().map_err(|m| setup(&label, m))
}

impl Engine<'_> {
    fn say(&self, what: &str) {
        let name = self
            .ps
            .name
            .clone()
            .unwrap_or_else(|| self.ps.index.to_string());
        eprintln!("[{name} {}/{}] {what}", self.step + 1, self.steps);
    }

    fn fail(&self, cmd: &Command, message: impl Into<String>) -> StageError {
        StageError::Instruction {
            stage: self.label.clone(),
            line: cmd.span.start,
            instruction: cmd.keyword.to_uppercase(),
            message: message.into(),
        }
    }

    /// The stage's starting point: the parent stage's result, the base image's config, or
    /// an empty scratch tree.
    fn start(&mut self, carry: Option<Carry>) -> Result<(), String> {
        let mountinfo = fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        self.skip = snapshot::mount_points(&mountinfo);
        self.skip.insert(PathBuf::from(paths::ROOT));
        self.skip.insert(self.ws.root.clone());
        let scratch_root = self.ws.stage_dir(self.ps.index).join("rootfs");
        let _ = fs::remove_dir_all(self.ws.stage_dir(self.ps.index));
        fs::create_dir_all(self.ws.stage_layers(self.ps.index)).map_err(|e| e.to_string())?;
        match &self.ps.from {
            Base::Stage(parent) => {
                let r: StageResult = workspace::read_json(&self.ws.stage_result(*parent))
                    .map_err(|e| e.to_string())?;
                let carried = carry.filter(|c| c.index == *parent);
                let was_carried = carried.is_some();
                if let Some(c) = carried {
                    // The parent ran just before in this process: its tree is already here.
                    if c.root != Path::new("/") {
                        self.root = c.root;
                        self.skip.clear();
                    }
                    self.baseline = c.baseline;
                } else if r.base.is_none() {
                    self.use_scratch_root(scratch_root)?;
                }
                let applied: &[LayerRef] = if was_carried { &[] } else { &r.layers };
                for l in applied {
                    let path = self.ws.layer_path(l);
                    let f =
                        fs::File::open(&path).map_err(|e| format!("{}: {e}", path.display()))?;
                    crate::fs::unpack::apply_layer(f, &self.root, true)
                        .map_err(|e| format!("applying {}: {e}", l.digest))?;
                }
                self.base = r.base;
                self.on_build = r.config.on_build.clone();
                self.image = StageImage::from_base(r.config, r.history);
                self.image.author = r.author;
                self.layers = r.layers;
                self.vars = Vars::from_pairs(r.vars.iter().map(|(k, v)| format!("{k}={v}")));
                self.args = r.args;
            }
            Base::Image(name) if name == "scratch" => {
                self.use_scratch_root(scratch_root)?;
                let config = Config {
                    env: vec![format!("PATH={DEFAULT_PATH}")],
                    ..Default::default()
                };
                self.vars.set("PATH", DEFAULT_PATH);
                self.image = StageImage::from_base(config, vec![]);
            }
            Base::Image(name) => {
                let info: ImageInfo =
                    workspace::read_json(&self.ws.image_info(name)).map_err(|e| e.to_string())?;
                let mut config = info.runtime_config();
                if !config.env.iter().any(|e| e.starts_with("PATH=")) {
                    config.env.push(format!("PATH={DEFAULT_PATH}"));
                }
                for kv in &config.env {
                    let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
                    self.vars.set(k, v);
                }
                self.base = Some(name.clone());
                self.on_build = config.on_build.clone();
                self.image = StageImage::from_base(config, info.history());
                self.image.author = info
                    .config
                    .get("author")
                    .and_then(|a| a.as_str())
                    .unwrap_or_default()
                    .to_string();
            }
        }
        Ok(())
    }

    fn use_scratch_root(&mut self, dir: PathBuf) -> Result<(), String> {
        fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        self.root = dir;
        self.skip.clear();
        Ok(())
    }

    /// The base's ONBUILD triggers, run before the stage's own instructions.
    fn triggers(&self) -> Result<Vec<Command>, StageError> {
        let line = self.df.stages[self.ps.index].span.start;
        let mut out = Vec::new();
        for expr in &self.on_build {
            let err = |message: String| StageError::Instruction {
                stage: self.label.clone(),
                line,
                instruction: "ONBUILD trigger".into(),
                message,
            };
            let parsed = parser::parse(expr).map_err(|e| err(e.to_string()))?;
            for node in &parsed.ast.children {
                let mut c = instructions::parse_command(node).map_err(|e| err(e.to_string()))?;
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
            .map_err(|e| self.fail(cmd, e.0))
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
                    copy::make_dirs(&self.root, &wd, owner, &mut w)
                        .map_err(|e| self.fail(cmd, format!("{wd}: {e}")))?;
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
                let mut words = Vec::new();
                for p in ports {
                    words.extend(
                        self.lex
                            .process_words(p, &self.vars)
                            .map_err(|e| self.fail(cmd, e.0))?,
                    );
                }
                self.image.expose(&words).map_err(|m| self.fail(cmd, m))?;
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
                        return Err(self.fail(cmd, "VOLUME specified can not be an empty string"));
                    }
                    v.push(x);
                }
                self.image.volume(&v);
            }
            Instruction::StopSignal { signal } => {
                let s = self.expand(cmd, signal)?;
                self.image.stop_signal(&s).map_err(|m| self.fail(cmd, m))?;
            }
            Instruction::Shell { shell } => self.image.shell(shell),
            Instruction::Onbuild { expression } => self.image.onbuild(expression),
        }
        Ok(())
    }

    fn env_has(&self, key: &str) -> bool {
        self.image
            .config
            .env
            .iter()
            .any(|e| e.split_once('=').map_or(e.as_str(), |(k, _)| k) == key)
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
        users::exec_user(&self.image.config.user, &p, &g)
            .map(|u| (u.uid, u.gid))
            .map_err(|e| self.fail(cmd, e.to_string()))
    }

    // ---- layers -------------------------------------------------------------------------

    fn next_layer(
        &mut self,
        cmd: &Command,
        write: impl FnOnce(&mut LayerWriter<io::BufWriter<fs::File>>) -> io::Result<()>,
    ) -> Result<(), StageError> {
        let dir = self.ws.stage_layers(self.ps.index);
        let tmp = dir.join(format!("layer-{}.tmp", self.layers.len()));
        let io_err = |e: io::Error| self.fail(cmd, format!("writing layer: {e}"));
        let f = fs::File::create(&tmp).map_err(io_err)?;
        let mut w = LayerWriter::new(io::BufWriter::new(f), flate2::Compression::fast());
        write(&mut w).map_err(io_err)?;
        let (out, d) = w.finish().map_err(io_err)?;
        out.into_inner()
            .map_err(|e| io_err(e.into_error()))?
            .sync_all()
            .map_err(io_err)?;
        let hex = d.digest.trim_start_matches("sha256:").to_string();
        let final_path = dir.join(format!("{hex}.tar.gz"));
        fs::rename(&tmp, &final_path).map_err(io_err)?;
        let rel = final_path
            .strip_prefix(&self.ws.root)
            .unwrap_or(&final_path)
            .display()
            .to_string();
        self.layers.push(LayerRef {
            path: rel,
            digest: d.digest,
            diff_id: d.diff_id,
            size: d.size,
            media_type: LAYER_MEDIA_TYPE.into(),
        });
        Ok(())
    }

    /// A layer of exactly the paths a COPY/ADD/WORKDIR wrote (and their parents), and the
    /// baseline updated with them so the next RUN does not see them as its own.
    fn commit_written(&mut self, cmd: &Command, w: &Written) -> Result<(), StageError> {
        let (snap, changes) = snapshot::of_written(&self.root, &w.paths)
            .map_err(|e| self.fail(cmd, e.to_string()))?;
        let root = self.root.clone();
        self.next_layer(cmd, |l| snapshot::write_changes(&root, &snap, &changes, l))?;
        if let Some(base) = &mut self.baseline {
            for (p, s) in snap.entries {
                base.entries.insert(p, s);
            }
        }
        Ok(())
    }

    // ---- RUN -----------------------------------------------------------------------------

    fn run(&mut self, cmd: &Command, run: &Run) -> Result<(), StageError> {
        if run.security == SecurityMode::Insecure {
            return Err(self.fail(
                cmd,
                "--security=insecure is not allowed: stages run unprivileged",
            ));
        }
        let argv = self.run_argv(cmd, run)?;
        // The environment: the image's Env, then ARGs that no ENV overrides.
        let env_args: Vec<(String, String)> = self
            .args
            .iter()
            .filter(|(k, _)| !self.env_has(k))
            .cloned()
            .collect();
        let mut env: Vec<(String, String)> = self
            .image
            .config
            .env
            .iter()
            .map(|e| {
                let (k, v) = e.split_once('=').unwrap_or((e, ""));
                (k.to_string(), v.to_string())
            })
            .collect();
        env.extend(env_args.iter().cloned());

        let (passwd, group) = self.read_users();
        let user_spec = if self.image.config.user.is_empty() {
            "0"
        } else {
            self.image.config.user.as_str()
        };
        let user = users::exec_user(user_spec, &passwd, &group)
            .map_err(|e| self.fail(cmd, format!("USER {user_spec}: {e}")))?;
        if !env.iter().any(|(k, _)| k == "HOME") {
            env.push(("HOME".into(), user.home.clone()));
        }

        if self.baseline.is_none() {
            let s = snapshot::walk(&self.root, &self.skip, self.threads)
                .map_err(|e| self.fail(cmd, format!("walking the tree: {e}")))?;
            self.baseline = Some(s);
        }

        // Mounts go in after the baseline and come out before the next walk.
        let mut placed = Vec::new();
        let mut secret_env = Vec::new();
        let result = self
            .place_mounts(cmd, run, &mut placed, &mut secret_env)
            .and_then(|()| {
                env.extend(secret_env);
                let spec = ExecSpec {
                    root: (self.root != Path::new("/")).then(|| self.root.clone()),
                    uid: user.uid,
                    gid: user.gid,
                    groups: user.groups.clone(),
                    cwd: if self.image.config.working_dir.is_empty() {
                        "/".into()
                    } else {
                        self.image.config.working_dir.clone()
                    },
                    argv: argv.clone(),
                };
                self.spawn(cmd, &spec, &env)
            });
        for p in placed {
            mounts::remove(p).map_err(|e| self.fail(cmd, format!("undoing a mount: {e}")))?;
        }
        let code = result?;
        if code != 0 {
            return Err(StageError::RunFailed {
                stage: self.label.clone(),
                line: cmd.span.start,
                command: run_text(cmd),
                code,
            });
        }
        self.image.run(&argv, &env_args);

        let after = snapshot::walk(&self.root, &self.skip, self.threads)
            .map_err(|e| self.fail(cmd, format!("walking the tree: {e}")))?;
        let before = self.baseline.take().unwrap_or_default();
        let changes = snapshot::diff(&before, &after);
        let root = self.root.clone();
        self.next_layer(cmd, |l| snapshot::write_changes(&root, &after, &changes, l))?;
        self.baseline = Some(after);
        Ok(())
    }

    /// The command RUN executes, heredocs included (BuildKit's `dispatchRun` rules).
    fn run_argv(&self, cmd: &Command, run: &Run) -> Result<Vec<String>, StageError> {
        let c = &run.cmd;
        if c.files.is_empty() || !c.prepend_shell {
            return Ok(self.image.with_shell(c));
        }
        let line = c.args.join(" ");
        let whole = parser::parse_heredoc(line.trim()).ok().flatten();
        if let (Some(h), [file]) = (whole, c.files.as_slice())
            && h.name == file.name
        {
            let body = file.data.clone();
            if body.starts_with("#!") {
                // A script with its own interpreter: written out and executed.
                // BuildKit runs it as /dev/pipes/<name>; /dev is the container's own tmpfs.
                let dir = if self.root == Path::new("/") && self.skip.contains(Path::new("/dev")) {
                    PathBuf::from("/dev/pipes")
                } else {
                    self.run_files_dir()
                };
                fs::create_dir_all(&dir).map_err(|e| self.fail(cmd, e.to_string()))?;
                let path = dir.join(sanitize(&file.name));
                fs::write(&path, body).map_err(|e| self.fail(cmd, e.to_string()))?;
                use std::os::unix::fs::PermissionsExt;
                fs::set_permissions(&path, fs::Permissions::from_mode(0o755))
                    .map_err(|e| self.fail(cmd, e.to_string()))?;
                return Ok(vec![self.visible_path(&path)]);
            }
            let mut argv = self.shell();
            argv.push(body);
            return Ok(argv);
        }
        let mut script = line;
        for f in &c.files {
            script.push('\n');
            script.push_str(&f.data);
            script.push_str(&f.name);
        }
        let mut argv = self.shell();
        argv.push(script);
        Ok(argv)
    }

    fn shell(&self) -> Vec<String> {
        if self.image.config.shell.is_empty() {
            vec!["/bin/sh".into(), "-c".into()]
        } else {
            self.image.config.shell.clone()
        }
    }

    /// Files RUN needs to see (heredoc scripts, tmpfs and secret stand-ins) live outside the
    /// tree: in the workspace, or inside the scratch root's engine folder.
    fn run_files_dir(&self) -> PathBuf {
        if self.root == Path::new("/") {
            self.ws.stage_work(self.ps.index).join("run")
        } else {
            self.root.join(".slipway-run")
        }
    }

    /// A path as the RUN process sees it (inside a chroot, relative to the root).
    fn visible_path(&self, p: &Path) -> String {
        if self.root == Path::new("/") {
            return p.display().to_string();
        }
        match p.strip_prefix(&self.root) {
            Ok(rel) => format!("/{}", rel.display()),
            Err(_) => p.display().to_string(),
        }
    }

    fn place_mounts(
        &mut self,
        cmd: &Command,
        run: &Run,
        placed: &mut Vec<mounts::Placed>,
        secret_env: &mut Vec<(String, String)>,
    ) -> Result<(), StageError> {
        for (i, spec) in run.mounts.iter().enumerate() {
            let vars = &self.vars;
            let lex = self.lex;
            let m = instructions::parse_mount_with(spec, &mut |v| lex.process_word(v, vars))
                .map_err(|e| self.fail(cmd, format!("--mount: {e}")))?;
            let target = m.target.clone().unwrap_or_default();
            let chroot = self.root != Path::new("/");
            if chroot && m.kind != MountKind::Secret {
                return Err(self.fail(
                    cmd,
                    "--mount in a stage built FROM scratch is not supported",
                ));
            }
            let source: PathBuf = match m.kind {
                MountKind::Bind => {
                    let src_root = match &m.from {
                        None => self.ws.context(),
                        Some(from) => self.copy_from_root(cmd, from, true)?,
                    };
                    let src = m.source.clone().unwrap_or_default();
                    crate::fs::root::resolve_in_root(&src_root, &src)
                        .map_err(|e| self.fail(cmd, format!("--mount source {src}: {e}")))?
                }
                MountKind::Cache => {
                    let id = m.id.clone().unwrap_or_else(|| target.clone());
                    let dir = self.cache_dir.join(mounts::cache_dir_name(&id));
                    if !dir.exists() {
                        fs::create_dir_all(&dir).map_err(|e| self.fail(cmd, e.to_string()))?;
                        use std::os::unix::fs::PermissionsExt;
                        let mode = m.mode.unwrap_or(0o755);
                        let _ = fs::set_permissions(&dir, fs::Permissions::from_mode(mode));
                        let _ = nix::unistd::chown(
                            &dir,
                            Some(m.uid.unwrap_or(0).into()),
                            Some(m.gid.unwrap_or(0).into()),
                        );
                    }
                    dir
                }
                MountKind::Tmpfs => {
                    let dir = self
                        .run_files_dir()
                        .join(format!("tmpfs-{}-{i}", self.step));
                    let _ = fs::remove_dir_all(&dir);
                    fs::create_dir_all(&dir).map_err(|e| self.fail(cmd, e.to_string()))?;
                    dir
                }
                MountKind::Secret => {
                    let id = m.secret_id().unwrap_or_default().to_string();
                    let src = self.secrets_dir.join(&id);
                    let data = match fs::read(&src) {
                        Ok(d) => d,
                        Err(_) if m.required => {
                            return Err(self.fail(
                                cmd,
                                format!("secret {id} is required but was not provided"),
                            ));
                        }
                        Err(_) => continue,
                    };
                    if let Some(var) = &m.env {
                        secret_env.push((var.clone(), String::from_utf8_lossy(&data).into_owned()));
                        if m.target.is_none() {
                            continue;
                        }
                    }
                    let dir = self.run_files_dir().join("secrets");
                    fs::create_dir_all(&dir).map_err(|e| self.fail(cmd, e.to_string()))?;
                    let file = dir.join(sanitize(&id));
                    fs::write(&file, &data).map_err(|e| self.fail(cmd, e.to_string()))?;
                    use std::os::unix::fs::PermissionsExt;
                    fs::set_permissions(&file, fs::Permissions::from_mode(m.mode.unwrap_or(0o400)))
                        .map_err(|e| self.fail(cmd, e.to_string()))?;
                    let _ = nix::unistd::chown(
                        &file,
                        Some(m.uid.unwrap_or(0).into()),
                        Some(m.gid.unwrap_or(0).into()),
                    );
                    let t = m
                        .target
                        .clone()
                        .unwrap_or_else(|| format!("/run/secrets/{id}"));
                    let link_to = PathBuf::from(self.visible_path(&file));
                    placed.push(
                        mounts::place(&self.root, &t, &link_to)
                            .map_err(|e| self.fail(cmd, format!("--mount target {t}: {e}")))?,
                    );
                    continue;
                }
                MountKind::Ssh => {
                    return Err(self.fail(cmd, "--mount type=ssh is not supported"));
                }
            };
            if target.is_empty() {
                return Err(self.fail(cmd, "--mount needs a target"));
            }
            let abs = if target.starts_with('/') {
                target.clone()
            } else {
                format!("{}/{target}", self.image.config.working_dir)
            };
            placed.push(
                mounts::place(&self.root, &abs, &source)
                    .map_err(|e| self.fail(cmd, format!("--mount target {abs}: {e}")))?,
            );
        }
        Ok(())
    }

    /// Runs the helper, streaming its output line by line with the stage's name.
    fn spawn(
        &self,
        cmd: &Command,
        spec: &ExecSpec,
        env: &[(String, String)],
    ) -> Result<i32, StageError> {
        let exe = std::env::current_exe().map_err(|e| self.fail(cmd, e.to_string()))?;
        let mut child = Process::new(exe)
            .args(spec.to_args())
            .env_clear()
            .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| self.fail(cmd, format!("starting the command: {e}")))?;
        let name = self
            .ps
            .name
            .clone()
            .unwrap_or_else(|| self.ps.index.to_string());
        let pump = |r: Box<dyn Read + Send>, to_err: bool, name: String| {
            std::thread::spawn(move || {
                for line in BufReader::new(r).split(b'\n').map_while(Result::ok) {
                    let text = String::from_utf8_lossy(&line);
                    if to_err {
                        let _ = writeln!(io::stderr(), "[{name}] {text}");
                    } else {
                        let _ = writeln!(io::stdout(), "[{name}] {text}");
                    }
                }
            })
        };
        let mut threads = Vec::new();
        if let Some(o) = child.stdout.take() {
            threads.push(pump(Box::new(o), false, name.clone()));
        }
        if let Some(e) = child.stderr.take() {
            threads.push(pump(Box::new(e), true, name));
        }
        let status = child
            .wait()
            .map_err(|e| self.fail(cmd, format!("waiting for the command: {e}")))?;
        for t in threads {
            let _ = t.join();
        }
        use std::os::unix::process::ExitStatusExt;
        Ok(status
            .code()
            .unwrap_or_else(|| 128 + status.signal().unwrap_or(0)))
    }

    // ---- COPY / ADD ----------------------------------------------------------------------

    /// The tree a `--from` names: a stage's unpacked exports, or an external image's rootfs.
    fn copy_from_root(
        &mut self,
        cmd: &Command,
        from: &str,
        by_name_only: bool,
    ) -> Result<PathBuf, StageError> {
        let lower = from.to_lowercase();
        let by_name = self
            .df
            .stages
            .iter()
            .position(|s| s.name.as_deref() == Some(lower.as_str()));
        let index = match by_name {
            Some(i) => Some(i),
            None if !by_name_only => from.parse::<usize>().ok(),
            None => None,
        };
        match index {
            Some(i) => {
                if let Some(p) = self.unpacked.get(&i) {
                    return Ok(p.clone());
                }
                let dir = self.ws.stage_work(self.ps.index).join(format!("from-{i}"));
                let _ = fs::remove_dir_all(&dir);
                let tar = self.ws.stage_exports(i);
                if tar.exists() {
                    crate::stage::exports::extract(&tar, &dir).map_err(|m| self.fail(cmd, m))?;
                } else {
                    fs::create_dir_all(&dir).map_err(|e| self.fail(cmd, e.to_string()))?;
                }
                self.unpacked.insert(i, dir.clone());
                Ok(dir)
            }
            None => {
                let dir = self.ws.image_rootfs(from);
                if !dir.is_dir() {
                    return Err(self.fail(
                        cmd,
                        format!("--from={from}: the image was not unpacked into the workspace"),
                    ));
                }
                Ok(dir)
            }
        }
    }

    fn copy(&mut self, cmd: &Command, c: &Copy) -> Result<(), StageError> {
        if c.parents {
            return Err(self.fail(cmd, "--parents is not supported yet"));
        }
        let owner = self.chown(cmd, c.chown.as_deref())?;
        let chmod = self.chmod(cmd, c.chmod.as_deref())?;
        let (src_root, from_context) = match &c.from {
            None => (self.ws.context(), true),
            Some(f) => (self.copy_from_root(cmd, f, false)?, false),
        };
        let owner = match (owner, from_context) {
            (Some((u, g)), _) => Owner::Set(u, g),
            (None, true) => Owner::Set(0, 0),
            (None, false) => Owner::Keep,
        };
        let w = self.copy_sources(
            cmd,
            &c.paths,
            &src_root,
            from_context,
            owner,
            chmod,
            &c.exclude,
            Archives::Copy,
        )?;
        self.image
            .copy(copy_history("COPY", &c.paths, c.from.as_deref()));
        self.commit_written(cmd, &w)
    }

    fn add(&mut self, cmd: &Command, a: &Add) -> Result<(), StageError> {
        let chown = self.chown(cmd, a.chown.as_deref())?;
        let chmod = self.chmod(cmd, a.chmod.as_deref())?;
        let (u, g) = chown.unwrap_or((0, 0));
        let owner = Owner::Set(u, g);
        let ctx = self.ws.context();
        let w = if a.paths.sources.iter().any(|s| is_url(s)) {
            self.add_urls(cmd, a, owner, chmod)?
        } else {
            if a.checksum.is_some() {
                return Err(self.fail(cmd, "--checksum is only supported for URL sources"));
            }
            let archives = if a.unpack.unwrap_or(true) {
                Archives::Unpack { chown }
            } else {
                Archives::Copy
            };
            self.copy_sources(
                cmd, &a.paths, &ctx, true, owner, chmod, &a.exclude, archives,
            )?
        };
        self.image.copy(copy_history("ADD", &a.paths, None));
        self.commit_written(cmd, &w)
    }

    fn chown(&self, cmd: &Command, spec: Option<&str>) -> Result<Option<(u32, u32)>, StageError> {
        let Some(s) = spec else { return Ok(None) };
        let s = self.expand(cmd, s)?;
        let (p, g) = self.read_users();
        users::chown_ids(&s, &p, &g)
            .map(Some)
            .map_err(|e| self.fail(cmd, format!("--chown={s}: {e}")))
    }

    fn chmod(&self, cmd: &Command, spec: Option<&str>) -> Result<Option<u32>, StageError> {
        let Some(s) = spec else { return Ok(None) };
        let s = self.expand(cmd, s)?;
        copy::parse_chmod(&s)
            .map(Some)
            .map_err(|e| self.fail(cmd, e.to_string()))
    }

    fn workdir(&self) -> &str {
        if self.image.config.working_dir.is_empty() {
            "/"
        } else {
            &self.image.config.working_dir
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn copy_sources(
        &mut self,
        cmd: &Command,
        paths: &instructions::SourcesAndDest,
        src_root: &Path,
        from_context: bool,
        owner: Owner,
        chmod: Option<u32>,
        exclude: &[String],
        archives: Archives,
    ) -> Result<Written, StageError> {
        let dest = self.expand(cmd, &paths.dest)?;
        let mut sources = Vec::new();
        for s in &paths.sources {
            sources.push(self.expand(cmd, s)?);
        }
        if from_context && self.ignore.is_none() {
            let patterns = crate::fs::dockerignore::load(&self.ws.context(), &self.ws.dockerfile())
                .map_err(|e| self.fail(cmd, format!(".dockerignore: {e}")))?;
            self.ignore = Some(patterns);
        }
        // .dockerignore (context only) and --exclude filter the same way.
        let mut patterns: Vec<String> = if from_context {
            self.ignore.clone().unwrap_or_default()
        } else {
            Vec::new()
        };
        patterns.extend(exclude.iter().cloned());
        let combined = Matcher::new(&patterns)
            .map_err(|e| self.fail(cmd, format!(".dockerignore or --exclude: {e}")))?;
        let wd = self.workdir().to_string();
        let mut w = Written::default();
        let canonical = fs::canonicalize(src_root)
            .map_err(|e| self.fail(cmd, format!("{}: {e}", src_root.display())))?;
        let dest_abs = gocompat::clean(&if dest.starts_with('/') {
            dest.clone()
        } else {
            format!("{wd}/{dest}")
        });
        for f in &paths.contents {
            let data = if f.expand {
                let mut raw = self.lex;
                raw.skip_process_quotes = true;
                raw.process_word(&f.data, &self.vars)
                    .map_err(|e| self.fail(cmd, e.0))?
            } else {
                f.data.clone()
            };
            let target = if dest.ends_with('/') || paths.contents.len() + paths.sources.len() > 1 {
                format!("{dest_abs}/{}", f.name)
            } else {
                dest_abs.clone()
            };
            copy::write_file(
                &self.root,
                &target,
                data.as_bytes(),
                chmod.unwrap_or(0o644),
                owner.of_new(),
                None,
                &mut w,
            )
            .map_err(|e| self.fail(cmd, format!("{target}: {e}")))?;
        }
        if sources.is_empty() {
            return Ok(w);
        }
        let items =
            crate::stage::copy_sources::plan_copy(&canonical, &sources, &dest, &wd, &combined)
                .map_err(|e| self.fail(cmd, e.to_string()))?;
        let opts = CopyOptions {
            owner,
            chmod,
            ignore: Some((&combined, &canonical)),
        };
        for item in items {
            if let Archives::Unpack { chown } = archives
                && !item.is_dir
            {
                let shown = item.source.display().to_string();
                let tar = crate::fs::archive::open_tar(&item.source)
                    .map_err(|e| self.fail(cmd, format!("{shown}: {e}")))?;
                if let Some(tar) = tar {
                    // An archive unpacks into the destination directory.
                    crate::fs::archive::extract_into(
                        &self.root, tar, &shown, &dest_abs, chown, &mut w,
                    )
                    .map_err(|e| self.fail(cmd, e.to_string()))?;
                    continue;
                }
            }
            copy::copy_source(
                &self.root,
                &item.source,
                item.is_dir,
                &item.dest,
                &opts,
                &mut w,
            )
            .map_err(|e| {
                self.fail(
                    cmd,
                    format!("{} -> {}: {e}", item.source.display(), item.dest),
                )
            })?;
        }
        Ok(w)
    }

    fn add_urls(
        &mut self,
        cmd: &Command,
        a: &Add,
        owner: Owner,
        chmod: Option<u32>,
    ) -> Result<Written, StageError> {
        let [url] = a.paths.sources.as_slice() else {
            return Err(self.fail(cmd, "ADD of a URL takes exactly one source"));
        };
        let url = self.expand(cmd, url)?;
        let checksum = match &a.checksum {
            Some(c) => Some(self.expand(cmd, c)?),
            None => None,
        };
        let dl = crate::net::download(&url, checksum.as_deref())
            .map_err(|e| self.fail(cmd, e.to_string()))?;
        let dest = self.expand(cmd, &a.paths.dest)?;
        let wd = self.workdir().to_string();
        let mut target = gocompat::clean(&if dest.starts_with('/') {
            dest.clone()
        } else {
            format!("{wd}/{dest}")
        });
        if dest.ends_with('/') {
            target = format!("{target}/{}", dl.file_name);
        }
        let ids = owner.of_new();
        let mut w = Written::default();
        copy::write_file(
            &self.root,
            &target,
            &dl.data,
            chmod.unwrap_or(0o600),
            ids,
            dl.mtime,
            &mut w,
        )
        .map_err(|e| self.fail(cmd, format!("{target}: {e}")))?;
        Ok(w)
    }

    // ---- end of the stage -------------------------------------------------------------

    fn finish(self) -> Result<(StageResult, Carry), String> {
        if !self.ps.exports.is_empty() {
            let out = self.ws.stage_exports(self.ps.index);
            crate::stage::exports::write_exports(&self.root, &self.ps.exports, &self.skip, &out)
                .map_err(|e| format!("writing exports: {e}"))?;
        }
        let result = StageResult {
            index: self.ps.index,
            name: self.ps.name.clone(),
            base: self.base.clone(),
            config: self.image.config.clone(),
            author: self.image.author.clone(),
            history: self.image.history.clone(),
            layers: self.layers,
            vars: self
                .vars
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            args: self.args,
        };
        let _ = fs::remove_dir_all(self.ws.stage_work(self.ps.index));
        workspace::write_json(&self.ws.stage_result(self.ps.index), &result)
            .map_err(|e| e.to_string())?;
        let carry = Carry {
            index: self.ps.index,
            root: self.root,
            baseline: self.baseline,
        };
        Ok((result, carry))
    }
}

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

fn is_url(s: &str) -> bool {
    s.starts_with("http://") || s.starts_with("https://")
}

/// The RUN as written, for error messages.
fn run_text(cmd: &Command) -> String {
    let o = cmd.original.trim();
    let rest = o
        .split_once(char::is_whitespace)
        .map(|(_, r)| r.trim_start())
        .unwrap_or("");
    rest.to_string()
}

/// The history text of a COPY/ADD: keyword, `--from`, sources and destination.
fn copy_history(kw: &str, paths: &instructions::SourcesAndDest, from: Option<&str>) -> String {
    let mut parts = vec![kw.to_string()];
    if let Some(f) = from {
        parts.push(format!("--from={f}"));
    }
    parts.extend(paths.sources.iter().cloned());
    parts.extend(paths.contents.iter().map(|f| format!("<<{}", f.name)));
    parts.push(paths.dest.clone());
    parts.join(" ")
}
