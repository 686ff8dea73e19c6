//! `slipway-builder`: the in-pod build binary, and the front end's debugging commands.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use slipway_builder::dockerfile::{instructions, parser};
use slipway_builder::plan::{self, PlanOptions};

#[derive(Parser)]
#[command(name = "slipway-builder", version, about = "Slipway's build engine")]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Parse a Dockerfile. With --dump, print the AST as BuildKit's `Node.Dump()` does;
    /// without it, also check every instruction and print the stages as JSON.
    Parse {
        /// Print BuildKit's AST dump (the parser alone, as BuildKit's parser tests do).
        #[arg(long)]
        dump: bool,
        file: PathBuf,
    },
    /// Print the stage plan as JSON: the needed stages, each after its dependencies.
    Plan {
        #[arg(long, short = 'f')]
        dockerfile: PathBuf,
        /// Stage to build (default: the last one).
        #[arg(long)]
        target: Option<String>,
        /// KEY=VALUE, or KEY to take the value from the environment. Repeatable.
        #[arg(long = "build-arg", value_name = "KEY=VALUE")]
        build_args: Vec<String>,
    },
}

/// An error for the user: `FILE:LINE: message` when there is a line.
fn located(file: &Path, line: Option<usize>, message: impl std::fmt::Display) -> String {
    match line {
        Some(l) => format!("{}:{l}: {message}", file.display()),
        None => format!("{}: {message}", file.display()),
    }
}

fn read(file: &Path) -> Result<String, String> {
    let bytes = std::fs::read(file).map_err(|e| format!("{}: {e}", file.display()))?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

/// `--build-arg K=V`; a bare `K` takes its value from the environment, or is dropped.
fn build_args(raw: &[String]) -> Vec<(String, String)> {
    raw.iter()
        .filter_map(|a| match a.split_once('=') {
            Some((k, v)) => Some((k.to_string(), v.to_string())),
            None => std::env::var(a).ok().map(|v| (a.clone(), v)),
        })
        .collect()
}

fn run(cli: Cli) -> Result<(), String> {
    match cli.command {
        Cmd::Parse { dump, file } => {
            let text = read(&file)?;
            let parsed =
                parser::parse(&text).map_err(|e| located(&file, Some(e.start_line), &e.message))?;
            for w in &parsed.warnings {
                eprintln!(
                    "{}",
                    located(&file, Some(w.line), format!("warning: {}", w.message))
                );
            }
            if dump {
                println!("{}", parsed.ast.dump());
                return Ok(());
            }
            let df = instructions::from_ast(&parsed.ast).map_err(|e| {
                located(
                    &file,
                    Some(e.line),
                    format!("{}: {}", e.instruction.to_uppercase(), e.message),
                )
            })?;
            let json = serde_json::to_string_pretty(&df).map_err(|e| e.to_string())?;
            println!("{json}");
            Ok(())
        }
        Cmd::Plan {
            dockerfile,
            target,
            build_args: raw,
        } => {
            let text = read(&dockerfile)?;
            let opts = PlanOptions {
                target,
                build_args: build_args(&raw),
            };
            let plan = plan::plan(&text, &opts).map_err(|e| located(&dockerfile, e.line(), &e))?;
            for w in &plan.warnings {
                eprintln!("{}", located(&dockerfile, None, format!("warning: {w}")));
            }
            let json = serde_json::to_string_pretty(&plan).map_err(|e| e.to_string())?;
            println!("{json}");
            Ok(())
        }
    }
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("{message}");
            ExitCode::FAILURE
        }
    }
}
