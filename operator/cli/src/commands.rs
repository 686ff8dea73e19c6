//! The subcommands: build, logs, wait, get and list.

use std::io::{IsTerminal, Write};
use std::time::Instant;

use kube::api::{Api, DeleteParams, ListParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};
use slipway_api::{ImageBuild, Phase};

use crate::args::{
    BuildArgs, Cli, ColorChoice, GetArgs, LogsArgs, OutputFormat, WaitArgs, build_arg,
};
use crate::error::Error;
use crate::follow::{self, Sink};
use crate::logs::LogLine;
use crate::output::{self, Change, Style, Summary};
use crate::pack;
use crate::spec::{self, Request};
use crate::upload::Store;

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
        if !self.progress_on() {
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
        if !self.status {
            return;
        }
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
    archive: Vec<u8>,
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
    let store = Store::ConfigMap;
    let packed = pack::pack(&a.dir, a.file.as_deref(), store.limit(), store.describe())?;
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
    };
    let summary = format!(
        "{} files, {} packed, {} left out by .dockerignore",
        packed.entries,
        pack::human(packed.archive.len() as u64),
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
    let mut term = Terminal::new(ctx, true, true, false);
    let sig = tokio::select! {
        r = follow::follow(&ctx.client, &ctx.ns, &name, true, &mut term) => {
            term.clear();
            return Ok(ctx.result(&r?));
        }
        s = signalled() => s,
    };
    term.clear();
    interrupted(ctx, &name, a.detach, sig).await
}

/// Ctrl-C (or SIGTERM) while following a build this command created: `--detach` leaves it;
/// on a terminal, ask; else cancel it (delete the ImageBuild, and so its Jobs and context).
async fn interrupted(ctx: &Ctx, name: &str, detach: bool, sig: Signal) -> Result<Outcome, Error> {
    let keep = |ctx: &Ctx| {
        eprintln!(
            "imagebuild/{name} keeps running; follow it with `{} logs -f {name}`, cancel it \
             with `kubectl delete imagebuild {name}`",
            ctx.program
        );
        Ok(Outcome::Interrupted)
    };
    if detach {
        return keep(ctx);
    }
    let ask = sig == Signal::Interrupt && std::io::stdin().is_terminal() && ctx.tty;
    if ask {
        eprint!("\nCancel imagebuild/{name} (delete it, its Jobs and its context)? [y/N] ");
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
    api.delete(name, &DeleteParams::background())
        .await
        .map_err(|e| Error::api(&format!("cancel imagebuild {name}"), e))?;
    eprintln!("imagebuild/{name} cancelled (deleted)");
    Ok(Outcome::Interrupted)
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
    let mut term = Terminal::new(ctx, ctx.tty && !ctx.json, false, false);
    let fut = follow::wait(&ctx.client, &ctx.ns, &a.name, &mut term);
    let done = match a.timeout {
        Some(t) => match tokio::time::timeout(t, fut).await {
            Ok(r) => r?,
            Err(_) => {
                let ib = follow::get(&ctx.client, &ctx.ns, &a.name).await?;
                let phase = ib
                    .status
                    .and_then(|s| s.phase)
                    .map_or("waiting for the controller", |p| p.as_str());
                return Err(Error::Timeout {
                    name: a.name.clone(),
                    phase: phase.to_string(),
                    waited: output::elapsed(t.as_secs()),
                });
            }
        },
        None => fut.await?,
    };
    term.clear();
    Ok(ctx.result(&done))
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
