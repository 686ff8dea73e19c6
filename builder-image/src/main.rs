//! `slipway-builder`: the binary every build pod runs (fetch and resolve, or prepare; stage,
//! push, install), local
//! mode (`build`), and the front end's debugging commands (`parse`, `plan`). Each subcommand
//! is one file of `commands/`; the pod subcommands' arguments are the contract's
//! (`slipway_contract::pod`), so what the operator renders is what this parses.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use slipway_contract::pod::PodCommand;
use slipway_engine::stage::exec::ExecSpec;

mod commands;

#[derive(Parser)]
#[command(name = "slipway-builder", version, about = "Slipway's build engine")]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    Parse(commands::parse::ParseArgs),
    Plan(commands::plan::PlanCommand),
    Build(commands::build::BuildArgs),
    #[command(flatten)]
    Pod(PodCommand),
    /// Internal: how the engine starts a RUN command as the stage's user.
    #[command(name = "__exec", hide = true)]
    Exec(ExecSpec),
}

fn main() -> ExitCode {
    let result = match Cli::parse().command {
        Cmd::Parse(a) => commands::parse::run(&a),
        Cmd::Plan(a) => commands::plan::run(&a),
        Cmd::Build(a) => commands::build::run(&a),
        Cmd::Pod(PodCommand::Prepare(a)) => commands::prepare::run(&a),
        Cmd::Pod(PodCommand::Fetch(a)) => commands::fetch::run(&a),
        Cmd::Pod(PodCommand::Resolve(a)) => commands::resolve::run(&a),
        Cmd::Pod(PodCommand::Stage(a)) => commands::stage::run(&a),
        Cmd::Pod(PodCommand::Push(a)) => commands::push::run(&a),
        Cmd::Pod(PodCommand::PullAhead) => Ok(()),
        Cmd::Exec(spec) => commands::exec::run(&spec),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{e}");
            ExitCode::FAILURE
        }
    }
}
