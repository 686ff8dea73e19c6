//! The subcommands: build, logs, wait, get, list, rebuild and cancel.

use std::io::{IsTerminal, Write};
use std::time::Instant;

use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};
use slipway_api::{ImageBuild, Phase};

use crate::args::{
    BuildArgs, CancelArgs, Cli, ColorChoice, GetArgs, LogsArgs, OutputFormat, RebuildArgs,
    WaitArgs, build_arg,
};
use crate::control::{self, CancelEnd, CancelPlan};
use crate::error::Error;
use crate::follow::{self, Sink};
use crate::logs::LogLine;
use crate::output::{self, Change, Style, Summary};
use crate::pack;
use crate::spec::{self, Request};
use crate::spool::Spool;
use crate::upload::{Store, Stored};

/// How a command ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Done,
    /// The build failed (exit code 1).
    BuildFailed,
    /// Ctrl-C or SIGTERM (exit code 130).
    Interrupted,
}

/// What every command shares: the client, the namespace, how to print.
pub struct Ctx {
    pub client: Client,
    pub ns: String,
    pub json: bool,
    pub style: Style,
    /// stderr is a terminal: the progress line may be drawn.
    pub tty: bool,
    pub program: &'static str,
}

impl Ctx {
    pub async fn new(cli: &Cli, program: &'static str) -> Result<Ctx, Error> {
        let config = match &cli.kube_context {
            Some(c) => {
                let opts = KubeConfigOptions {
                    context: Some(c.clone()),
                    ..Default::default()
                };
                let kc = Kubeconfig::read().map_err(|e| Error::Config(e.to_string()))?;
                Config::from_custom_kubeconfig(kc, &opts)
                    .await
                    .map_err(|e| Error::Config(e.to_string()))?
            }
            None => Config::infer()
                .await
                .map_err(|e| Error::Config(e.to_string()))?,
        };
        let client = Client::try_from(config).map_err(|e| Error::Config(e.to_string()))?;
        let ns = cli
            .namespace
            .clone()
            .unwrap_or_else(|| client.default_namespace().to_string());
        let tty = std::io::stderr().is_terminal();
        let color = match cli.color {
            ColorChoice::Always => true,
            ColorChoice::Never => false,
            ColorChoice::Auto => tty && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty()),
        };
        Ok(Ctx {
            client,
            ns,
            json: cli.output == OutputFormat::Json,
            style: Style { color },
            tty,
            program,
        })
    }

    fn emit(&self, c: &Change) {
        if self.json {
            println!("{}", c.json());
        } else {
            eprintln!("{}", c.plain(self.style));
        }
    }

    /// The end of a build, on stdout (`ref@digest`, or the JSON result) and stderr (a failure).
    fn result(&self, ib: &ImageBuild) -> Outcome {
        let s = Summary::of(ib, jiff::Timestamp::now());
        let ok = ib.status.as_ref().and_then(|s| s.phase) == Some(Phase::Succeeded);
        if self.json {
            println!("{}", Change::Result(s).json());
        } else if ok {
            println!("{}", s.result_line(self.style));
        } else {
            eprintln!("{}", s.result_line(self.style));
        }
        if ok {
            Outcome::Done
        } else {
            Outcome::BuildFailed
        }
    }
}

/// Prints a followed build: logs, status changes (lines, or a progress line on a terminal),
/// or JSON lines.
struct Terminal<'a> {
    ctx: &'a Ctx,
    /// Status changes shown (not for `logs -f`).
    status: bool,
    /// Log lines shown, on stdout (`logs`) or stderr (`build`).
    logs: bool,
    logs_to_stdout: bool,
    started: Instant,
    drawn: bool,
    last: Option<ImageBuild>,
}

impl<'a> Terminal<'a> {
    fn new(ctx: &'a Ctx, status: bool, logs: bool, logs_to_stdout: bool) -> Self {
        Terminal {
            ctx,
            status,
            logs,
            logs_to_stdout,
            started: Instant::now(),
            drawn: false,
            last: None,
        }
    }

    fn progress_on(&self) -> bool {
        self.status && self.ctx.tty && !self.ctx.json
    }

    fn clear(&mut self) {
        if self.drawn {
            eprint!("\r\x1b[2K");
            let _ = std::io::stderr().flush();
            self.drawn = false;
        }
    }

    fn draw(&mut self, ib: &ImageBuild) {
        if !self.progress_on() || output::stale(ib) {
            return;
        }
        let width = std::env::var("COLUMNS")
            .ok()
            .and_then(|c| c.parse::<usize>().ok())
            .unwrap_or(80);
        let line = output::progress(ib, self.started.elapsed().as_secs(), self.ctx.style, width);
        eprint!("\r\x1b[2K{line}");
        let _ = std::io::stderr().flush();
        self.drawn = true;
    }
}

impl Sink for Terminal<'_> {
    fn build(&mut self, before: Option<&ImageBuild>, now: &ImageBuild) {
        // The previous generation's status (a rebuild not picked up yet) is not this build's.
        if !self.status || output::stale(now) {
            return;
        }
        let before = before.filter(|b| !output::stale(b));
        self.last = Some(now.clone());
        if self.progress_on() {
            self.draw(now);
            return;
        }
        for c in output::changes(before, now) {
            self.ctx.emit(&c);
        }
    }

    fn log(&mut self, line: &LogLine) {
        if !self.logs {
            return;
        }
        if self.ctx.json {
            let c = Change::Log {
                stage: line.prefix.clone(),
                line: line.text.clone(),
            };
            println!("{}", c.json());
            return;
        }
        let text = self.ctx.style.log_line(line);
        self.clear();
        if self.logs_to_stdout {
            println!("{text}");
        } else {
            eprintln!("{text}");
        }
        if let Some(ib) = self.last.take() {
            self.draw(&ib);
            self.last = Some(ib);
        }
    }

    fn tick(&mut self, now: &ImageBuild) {
        self.draw(now);
    }
}

/// Ctrl-C or SIGTERM.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Signal {
    Interrupt,
    Terminate,
}

async fn signalled() -> Signal {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
            return Signal::Interrupt;
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => Signal::Interrupt,
        _ = term.recv() => Signal::Terminate,
    }
}

/// A build's flags checked and its context packed: all that needs no cluster.
pub struct Prepared {
    req: Request,
    archive: Spool,
    summary: String,
    store: Store,
}

pub fn prepare(a: &BuildArgs) -> Result<Prepared, Error> {
    if let Some(p) = &a.platform {
        return Err(Error::Usage(format!(
            "--platform {p}: not supported yet; images are built for the platform of the \
             cluster's nodes"
        )));
    }
    let (image, additional_tags) = spec::tags(&a.tags)?;
    let mut build_args = Vec::new();
    for raw in &a.build_args {
        if let Some((k, v)) = build_arg(raw, |k| std::env::var(k).ok()) {
            if k.is_empty() {
                return Err(Error::Usage(format!("--build-arg {raw:?}: no name")));
            }
            build_args.push((k, v));
        }
    }
    // Packed once, up to the larger store's limit; the size then picks the store.
    let repository = crate::artifact::repository(a.context_repo.as_deref(), &image)?;
    let largest = Store::Oci {
        repository: repository.clone(),
        insecure: a.insecure,
    };
    let packed = pack::pack(
        &a.dir,
        a.file.as_deref(),
        largest.limit(),
        largest.describe(),
    )?;
    let store = Store::choose(
        packed.archive.len(),
        a.context_repo.is_some(),
        repository,
        a.insecure,
    );
    let req = Request {
        name: a.name.clone(),
        image,
        additional_tags,
        dockerfile: packed.dockerfile.clone(),
        target: a.target.clone(),
        build_args,
        secrets: a.secrets.clone(),
        push_secret: a.push_secret.clone(),
        insecure: a.insecure,
        timeout: a.timeout.clone(),
        cache_repo: a.cache_repo.clone(),
    };
    let summary = format!(
        "{} files, {} packed, {} left out by .dockerignore",
        packed.entries,
        pack::human(packed.archive.len()),
        packed.excluded
    );
    Ok(Prepared {
        req,
        archive: packed.archive,
        summary,
        store,
    })
}

pub async fn build(ctx: &Ctx, a: &BuildArgs, p: Prepared) -> Result<Outcome, Error> {
    let Prepared {
        req,
        archive,
        summary,
        store,
    } = p;
    let base = req.name.clone().unwrap_or_else(|| {
        spec::generate_name(&req.image)
            .trim_end_matches('-')
            .to_string()
    });
    let stored = store.put(&ctx.client, &ctx.ns, &base, archive).await?;
    let summary = match &stored {
        Stored::Oci { image, digest } => format!("{summary}, pushed to {image}@{digest}"),
        Stored::ConfigMap { .. } => summary,
    };
    let api: Api<ImageBuild> = Api::namespaced(ctx.client.clone(), &ctx.ns);
    let ib = spec::image_build(&req, &ctx.ns, stored.source());
    let created = match api.create(&PostParams::default(), &ib).await {
        Ok(c) => c,
        Err(e) => {
            stored.remove(&ctx.client, &ctx.ns).await;
            let what = if Error::is_not_found(&e) {
                "create the ImageBuild (is Slipway installed? the cluster has no ImageBuild \
                 kind)"
            } else {
                "create the ImageBuild"
            };
            return Err(Error::api(what, e));
        }
    };
    let name = created.metadata.name.clone().unwrap_or_default();
    if let Err(e) = stored.adopt(&ctx.client, &ctx.ns, &created).await {
        eprintln!("warning: {e} (delete it with the build)");
    }
    ctx.emit(&Change::Created {
        name: name.clone(),
        namespace: ctx.ns.clone(),
        context: summary,
    });
    if a.no_follow {
        if !ctx.json {
            println!("{name}");
        }
        return Ok(Outcome::Done);
    }
    follow_started(ctx, &name, a.detach, Stop::Delete).await
}

/// How Ctrl-C stops a build the command started.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stop {
    /// `build` created the ImageBuild: delete it (its Jobs and its context go with it).
    Delete,
    /// `rebuild` started a new build of an ImageBuild that was there before: set
    /// `spec.cancel`, and keep the ImageBuild and its history.
    Cancel,
}

/// Follows a build the command started to its end (logs, status), printing `ref@digest` or
/// the failure; Ctrl-C stops it as `stop` says (or leaves it, `--detach`).
async fn follow_started(ctx: &Ctx, name: &str, detach: bool, stop: Stop) -> Result<Outcome, Error> {
    let mut term = Terminal::new(ctx, true, true, false);
    let sig = tokio::select! {
        r = follow::follow(&ctx.client, &ctx.ns, name, true, &mut term) => {
            term.clear();
            return Ok(ctx.result(&r?));
        }
        s = signalled() => s,
    };
    term.clear();
    interrupted(ctx, name, detach, sig, stop).await
}

/// Ctrl-C (or SIGTERM) while following a build this command started: `--detach` leaves it;
/// on a terminal, ask; else stop it as `stop` says.
async fn interrupted(
    ctx: &Ctx,
    name: &str,
    detach: bool,
    sig: Signal,
    stop: Stop,
) -> Result<Outcome, Error> {
    let keep = |ctx: &Ctx| {
        eprintln!(
            "imagebuild/{name} keeps running; follow it with `{p} logs -f {name}`, cancel it \
             with `{p} cancel {name}`",
            p = ctx.program
        );
        Ok(Outcome::Interrupted)
    };
    if detach {
        return keep(ctx);
    }
    let ask = sig == Signal::Interrupt && std::io::stdin().is_terminal() && ctx.tty;
    if ask {
        let what = match stop {
            Stop::Delete => "delete it, its Jobs and its context",
            Stop::Cancel => "stop its Jobs; the ImageBuild stays",
        };
        eprint!("\nCancel imagebuild/{name} ({what})? [y/N] ");
        let _ = std::io::stderr().flush();
        let answer = tokio::task::spawn_blocking(|| {
            let mut s = String::new();
            std::io::stdin().read_line(&mut s).map(|_| s)
        });
        let yes = tokio::select! {
            a = answer => matches!(a, Ok(Ok(s)) if matches!(s.trim(), "y" | "Y" | "yes")),
            // A second Ctrl-C: yes.
            _ = tokio::signal::ctrl_c() => { eprintln!(); true }
        };
        if !yes {
            return keep(ctx);
        }
    }
    let api: Api<ImageBuild> = Api::namespaced(ctx.client.clone(), &ctx.ns);
    match stop {
        Stop::Delete => {
            api.delete(name, &DeleteParams::background())
                .await
                .map_err(|e| Error::api(&format!("cancel imagebuild {name}"), e))?;
            eprintln!("imagebuild/{name} cancelled (deleted)");
        }
        Stop::Cancel => {
            let (ib, _) = patch_read(&api, &ctx.ns, name, "cancel", cancel_body).await?;
            match control::cancel_plan(&ib) {
                CancelPlan::Ended(p) => {
                    eprintln!(
                        "imagebuild/{name} already {}; nothing cancelled",
                        p.as_str()
                    )
                }
                _ => eprintln!("imagebuild/{name} cancelled (spec.cancel set)"),
            }
        }
    }
    Ok(Outcome::Interrupted)
}

/// How often a conditional patch is tried again after a 409 Conflict.
const CONFLICT_TRIES: u32 = 5;

/// Reads `name` and patches it with the JSON merge patch `body` makes of it (which carries
/// the resourceVersion read, a precondition); on 409 Conflict (it changed in between) reads
/// it again and asks `body` again. `body` says `None` for nothing to patch. Returns the
/// object as patched (or as read) and whether it was patched.
async fn patch_read(
    api: &Api<ImageBuild>,
    ns: &str,
    name: &str,
    what: &'static str,
    body: impl Fn(&ImageBuild) -> Result<Option<serde_json::Value>, Error>,
) -> Result<(ImageBuild, bool), Error> {
    for _ in 0..CONFLICT_TRIES {
        let ib = api
            .get_opt(name)
            .await
            .map_err(|e| Error::api(&format!("read imagebuild {name}"), e))?
            .ok_or_else(|| Error::NotFound {
                name: name.to_string(),
                namespace: ns.to_string(),
            })?;
        let Some(patch) = body(&ib)? else {
            return Ok((ib, false));
        };
        match api
            .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
            Ok(patched) => return Ok((patched, true)),
            Err(e) if Error::is_conflict(&e) => continue,
            Err(e) => return Err(Error::api(&format!("{what} imagebuild {name}"), e)),
        }
    }
    Err(Error::Conflict {
        what,
        name: name.to_string(),
        tries: CONFLICT_TRIES,
    })
}

/// `cancel`'s patch of the build as read: set `spec.cancel` while the build runs; nothing
/// when it is set already or the build is over (the caller says which).
fn cancel_body(ib: &ImageBuild) -> Result<Option<serde_json::Value>, Error> {
    Ok(match control::cancel_plan(ib) {
        CancelPlan::Patch => Some(control::cancel_patch(ib)),
        CancelPlan::Wait | CancelPlan::AlreadyCancelled | CancelPlan::Ended(_) => None,
    })
}

/// `rebuild NAME`: counts `spec.rebuild` up (conditional on the version read, so a
/// concurrent rebuild is not lost) and follows the new generation like `build`.
pub async fn rebuild(ctx: &Ctx, a: &RebuildArgs) -> Result<Outcome, Error> {
    let api: Api<ImageBuild> = Api::namespaced(ctx.client.clone(), &ctx.ns);
    let (ib, _) = patch_read(&api, &ctx.ns, &a.name, "rebuild", |ib| {
        Ok(Some(control::rebuild_patch(ib)))
    })
    .await?;
    ctx.emit(&Change::Rebuild {
        name: a.name.clone(),
        namespace: ctx.ns.clone(),
        rebuild: ib.spec.rebuild.unwrap_or_default(),
        generation: ib.metadata.generation.unwrap_or_default(),
    });
    if a.no_follow {
        if !ctx.json {
            println!("{}", a.name);
        }
        return Ok(Outcome::Done);
    }
    follow_started(ctx, &a.name, a.detach, Stop::Cancel).await
}

/// `cancel NAME`: sets `spec.cancel` (unless the build is over) and waits for `Cancelled`.
pub async fn cancel(ctx: &Ctx, a: &CancelArgs) -> Result<Outcome, Error> {
    let api: Api<ImageBuild> = Api::namespaced(ctx.client.clone(), &ctx.ns);
    let (ib, patched) = patch_read(&api, &ctx.ns, &a.name, "cancel", cancel_body).await?;
    match control::cancel_plan(&ib) {
        CancelPlan::Ended(phase) if !patched => {
            return Err(Error::Ended {
                name: a.name.clone(),
                phase,
            });
        }
        CancelPlan::AlreadyCancelled if !patched => {
            if ctx.json {
                let s = Summary::of(&ib, jiff::Timestamp::now());
                println!("{}", Change::Result(s).json());
            } else {
                println!("imagebuild/{} was already cancelled", a.name);
            }
            return Ok(Outcome::Done);
        }
        _ => {}
    }
    ctx.emit(&Change::Cancel {
        name: a.name.clone(),
        namespace: ctx.ns.clone(),
    });
    let done = wait_for(ctx, &a.name, a.timeout).await?;
    let phase = output::finished(&done).unwrap_or(Phase::Cancelled);
    match control::cancel_end(phase) {
        CancelEnd::Cancelled => {
            if ctx.json {
                let s = Summary::of(&done, jiff::Timestamp::now());
                println!("{}", Change::Result(s).json());
            } else {
                println!("imagebuild/{} cancelled", a.name);
            }
            Ok(Outcome::Done)
        }
        CancelEnd::EndedFirst(phase) => Err(Error::EndedFirst {
            name: a.name.clone(),
            phase,
        }),
    }
}

pub async fn logs(ctx: &Ctx, a: &LogsArgs) -> Result<Outcome, Error> {
    let ib = follow::get(&ctx.client, &ctx.ns, &a.name).await?;
    let mut term = Terminal::new(ctx, false, true, true);
    if a.follow {
        let done = follow::follow(&ctx.client, &ctx.ns, &a.name, true, &mut term).await?;
        if !ctx.json {
            let s = Summary::of(&done, jiff::Timestamp::now());
            eprintln!("{}", s.result_line(ctx.style));
        }
        return Ok(Outcome::Done);
    }
    let n = follow::snapshot(&ctx.client, &ctx.ns, &ib, &mut term).await?;
    if n == 0 {
        eprintln!(
            "imagebuild/{}: no pods (not started yet, or removed ttlSecondsAfterFinished after \
             the build finished)",
            a.name
        );
    }
    Ok(Outcome::Done)
}

pub async fn wait(ctx: &Ctx, a: &WaitArgs) -> Result<Outcome, Error> {
    let done = wait_for(ctx, &a.name, a.timeout).await?;
    Ok(ctx.result(&done))
}

/// Waits until the build's current generation is over (a progress line on a terminal), at
/// most `timeout`.
async fn wait_for(
    ctx: &Ctx,
    name: &str,
    timeout: Option<std::time::Duration>,
) -> Result<ImageBuild, Error> {
    let mut term = Terminal::new(ctx, ctx.tty && !ctx.json, false, false);
    let fut = follow::wait(&ctx.client, &ctx.ns, name, &mut term);
    let done = match timeout {
        Some(t) => match tokio::time::timeout(t, fut).await {
            Ok(r) => r?,
            Err(_) => {
                let ib = follow::get(&ctx.client, &ctx.ns, name).await?;
                let phase = ib
                    .status
                    .and_then(|s| s.phase)
                    .map_or("waiting for the controller", |p| p.as_str());
                return Err(Error::Timeout {
                    name: name.to_string(),
                    phase: phase.to_string(),
                    waited: output::elapsed(t.as_secs()),
                });
            }
        },
        None => fut.await?,
    };
    term.clear();
    Ok(done)
}

pub async fn get(ctx: &Ctx, a: &GetArgs) -> Result<Outcome, Error> {
    let Some(name) = &a.name else {
        return list(ctx).await;
    };
    let ib = follow::get(&ctx.client, &ctx.ns, name).await?;
    let s = Summary::of(&ib, jiff::Timestamp::now());
    if ctx.json {
        println!("{}", serde_json::to_string(&s).unwrap_or_default());
    } else {
        println!("{}", s.detail(ctx.style));
    }
    Ok(Outcome::Done)
}

pub async fn list(ctx: &Ctx) -> Result<Outcome, Error> {
    let api: Api<ImageBuild> = Api::namespaced(ctx.client.clone(), &ctx.ns);
    let list = api
        .list(&ListParams::default())
        .await
        .map_err(|e| Error::api("list imagebuilds", e))?;
    let now = jiff::Timestamp::now();
    let mut rows: Vec<Summary> = list.items.iter().map(|ib| Summary::of(ib, now)).collect();
    rows.sort_by(|a, b| a.name.cmp(&b.name));
    if ctx.json {
        for r in &rows {
            println!("{}", serde_json::to_string(r).unwrap_or_default());
        }
    } else if rows.is_empty() {
        eprintln!("no imagebuilds in namespace {}", ctx.ns);
    } else {
        println!("{}", output::table(&rows, ctx.style));
    }
    Ok(Outcome::Done)
}

#[cfg(test)]
#[path = "commands_tests.rs"]
mod commands_tests;
