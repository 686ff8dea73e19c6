//! `slipway-builder fetch`: the prepare pod's init container (the source into the
//! workspace; the only container holding the git credentials).

use slipway_contract::pod::FetchArgs;
use slipway_contract::result::PodResult;
use slipway_engine::steps::prepare;

use super::CommandError;

pub fn run(a: &FetchArgs) -> Result<(), CommandError> {
    prepare::fetch(a).map_err(|e| {
        // The controller reads a failed init container's result like the main one's.
        PodResult::Failed {
            reason: e.reason,
            message: e.to_string(),
        }
        .report();
        CommandError::Message(e.to_string())
    })
}
