//! `slipway-builder prepare`: a cluster build's first step in one process (fetch, then
//! resolve).

use slipway_contract::graph::BuildGraph;
use slipway_contract::pod::PrepareArgs;
use slipway_contract::result::PodResult;
use slipway_engine::steps::prepare::{self, PrepareError};

use super::CommandError;

pub fn run(a: &PrepareArgs) -> Result<(), CommandError> {
    reported(prepare::prepare(a))
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
