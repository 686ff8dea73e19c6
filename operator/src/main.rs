//! `slipway-operator`: the ImageBuild controller. The controller itself arrives with the
//! operator issue; today the binary checks its cluster connection and shows how a plan
//! made by `slipway-builder plan` would be scheduled.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use slipway_builder::plan::Plan;

mod api;
mod schedule;

#[derive(Parser)]
#[command(
    name = "slipway-operator",
    version,
    about = "Slipway's ImageBuild controller"
)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Connect to the cluster (KUBECONFIG or in-cluster) and report its version.
    /// The reconcile loop is not implemented yet.
    Run,
    /// Print the ImageBuild CustomResourceDefinition (the manifest in crds/).
    Crd,
    /// Print the waves of stage Jobs a plan (JSON from `slipway-builder plan`) runs in.
    Schedule {
        plan: PathBuf,
        /// At most this many stage Jobs at once.
        #[arg(long, default_value_t = 4)]
        max_parallel: usize,
    },
}

async fn run(cli: Cli) -> Result<(), String> {
    match cli.command {
        Cmd::Run => {
            let client = kube::Client::try_default()
                .await
                .map_err(|e| format!("cluster connection: {e}"))?;
            let v = client
                .apiserver_version()
                .await
                .map_err(|e| format!("cluster version: {e}"))?;
            println!(
                "connected to Kubernetes {}.{} ({})",
                v.major, v.minor, v.git_version
            );
            Err("the ImageBuild controller is not implemented yet".into())
        }
        Cmd::Crd => {
            print!("{}", api::crd_json());
            Ok(())
        }
        Cmd::Schedule { plan, max_parallel } => {
            let text =
                std::fs::read_to_string(&plan).map_err(|e| format!("{}: {e}", plan.display()))?;
            let plan: Plan =
                serde_json::from_str(&text).map_err(|e| format!("{}: {e}", plan.display()))?;
            for (n, wave) in schedule::waves(&plan, max_parallel).iter().enumerate() {
                println!("wave {n}: stages {wave:?}");
            }
            Ok(())
        }
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    match run(Cli::parse()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("slipway-operator: {e}");
            ExitCode::FAILURE
        }
    }
}
