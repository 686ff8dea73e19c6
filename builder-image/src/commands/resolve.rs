//! `slipway-builder resolve`: the prepare pod's main container (plan the fetched context,
//! resolve its images, copy the engine into the workspace, report the graph).

use slipway_contract::pod::ResolveArgs;
use slipway_engine::steps::prepare;

use super::CommandError;

pub fn run(a: &ResolveArgs) -> Result<(), CommandError> {
    super::prepare::reported(super::prepare::with_engine(
        prepare::resolve(a),
        &a.workspace,
    ))
}
