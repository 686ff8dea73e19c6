//! `slipway-builder prepare`: a cluster build's first pod.

use slipway_contract::pod::PrepareArgs;
use slipway_contract::result::PodResult;
use slipway_engine::steps::prepare;

use super::CommandError;

pub fn run(a: &PrepareArgs) -> Result<(), CommandError> {
    match prepare::prepare(a) {
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
