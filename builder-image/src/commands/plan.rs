//! `slipway-builder plan`: the stage plan of a Dockerfile, as JSON.

use std::path::PathBuf;

use slipway_contract::pod::PlanArgs;
use slipway_frontend::plan;

use super::{CommandError, located, read_dockerfile};

/// Print the stage plan as JSON: the needed stages, each after its dependencies.
#[derive(clap::Args)]
pub struct PlanCommand {
    #[arg(long, short = 'f')]
    dockerfile: PathBuf,
    #[command(flatten)]
    plan: PlanArgs,
}

pub fn run(a: &PlanCommand) -> Result<(), CommandError> {
    let text = read_dockerfile(&a.dockerfile)?;
    let plan = plan::plan(&text, &a.plan.to_options())
        .map_err(|e| CommandError::Message(located(&a.dockerfile, e.line(), &e)))?;
    for w in &plan.warnings {
        eprintln!("{}", located(&a.dockerfile, None, format!("warning: {w}")));
    }
    println!("{}", serde_json::to_string_pretty(&plan)?);
    Ok(())
}
