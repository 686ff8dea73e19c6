//! `slipway` (also `kubectl slipway`): Slipway from a developer's shell or a CI job.
//!
//! `build DIR -t REF` packs the directory as `docker build` sends a context (honouring
//! `.dockerignore`), uploads it (a ConfigMap, or an OCI artifact when it is larger:
//! [`upload`], [`artifact`]), creates an ImageBuild,
//! follows it (phases, stages, every pod's log lines prefixed with their stage) and prints
//! `ref@digest`; a failed build exits 1 with the `Succeeded` condition's reason and message.
//! `logs`, `wait`, `get` and `list` read builds that exist; `rebuild` builds one again and
//! follows it, `cancel` stops one ([`control`]: their patches, conditional on the version
//! read).
//!
//! Pure parts, unit-tested without a cluster: [`args`], [`pack`], [`spec`], [`logs`],
//! [`output`], [`control`]. The parts that talk to the API server: [`upload`], [`follow`], [`commands`].

use std::process::ExitCode;

use clap::{CommandFactory, FromArgMatches};

pub mod args;
pub mod artifact;
pub mod commands;
pub mod control;
pub mod error;
pub mod follow;
pub mod logs;
pub mod output;
pub mod pack;
pub mod spec;
pub mod spool;
pub mod upload;

use args::{Cli, Command};
use commands::{Ctx, Outcome};

/// The exit code of an interrupted command (128 + SIGINT, as shells report it).
const INTERRUPTED: u8 = 130;

/// The program: parses its arguments, runs the command, prints an error as one line.
pub fn main() -> ExitCode {
    let argv0 = std::env::args().next();
    let program = args::display_name(argv0.as_deref());
    let matches = Cli::command().name(program).bin_name(program).get_matches();
    let cli = match Cli::from_arg_matches(&matches) {
        Ok(c) => c,
        Err(e) => e.exit(),
    };
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(3);
        }
    };
    let result = rt.block_on(run(&cli, program));
    // Not waiting for a prompt's read of stdin that a second Ctrl-C answered.
    rt.shutdown_background();
    match result {
        Ok(Outcome::Done) => ExitCode::SUCCESS,
        Ok(Outcome::BuildFailed) => ExitCode::from(1),
        Ok(Outcome::Interrupted) => ExitCode::from(INTERRUPTED),
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}

async fn run(cli: &Cli, program: &'static str) -> Result<Outcome, error::Error> {
    if let Command::Build(a) = &cli.command {
        // The flags and the context are checked before the cluster is asked anything.
        let prepared = commands::prepare(a)?;
        let ctx = Ctx::new(cli, program).await?;
        return commands::build(&ctx, a, prepared).await;
    }
    let ctx = Ctx::new(cli, program).await?;
    match &cli.command {
        Command::Build(_) => unreachable!("handled above"),
        Command::Logs(a) => commands::logs(&ctx, a).await,
        Command::Wait(a) => commands::wait(&ctx, a).await,
        Command::Get(a) => commands::get(&ctx, a).await,
        Command::List => commands::list(&ctx).await,
        Command::Rebuild(a) => commands::rebuild(&ctx, a).await,
        Command::Cancel(a) => commands::cancel(&ctx, a).await,
    }
}
