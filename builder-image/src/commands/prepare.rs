//! `slipway-builder prepare`: a cluster build's first step in one process (fetch, then
//! resolve, then the engine into the workspace).

use std::path::Path;

use slipway_contract::graph::BuildGraph;
use slipway_contract::pod::PrepareArgs;
use slipway_contract::result::PodResult;
use slipway_engine::steps::prepare::{self, PrepareError};

use super::CommandError;

pub fn run(a: &PrepareArgs) -> Result<(), CommandError> {
    reported(with_engine(prepare::prepare(a), &a.workspace))
}

/// The graph once the engine is in the workspace for the stage pods
/// ([`install::into_workspace`](super::install::into_workspace)), or why not.
pub fn with_engine(
    r: Result<BuildGraph, PrepareError>,
    workspace: &Path,
) -> Result<BuildGraph, PrepareError> {
    let graph = r?;
    super::install::into_workspace(workspace)?;
    Ok(graph)
}

/// The graph, or the failure, reported where the controller reads it.
pub fn reported(r: Result<BuildGraph, PrepareError>) -> Result<(), CommandError> {
    match r {
        Ok(g) => {
            PodResult::Graph(g).report();
            Ok(())
        }
        Err(e) => {
            PodResult::Failed {
                reason: e.reason,
                message: e.to_string(),
            }
            .report();
            Err(CommandError::Message(e.to_string()))
        }
    }
}
