//! `slipway-builder __exec`: the helper the engine starts a RUN command through.

use slipway_engine::stage::exec::{self, ExecSpec};

use super::CommandError;

pub fn run(spec: &ExecSpec) -> Result<(), CommandError> {
    match exec::exec(spec) {
        Ok(never) => match never {},
        Err(e) => Err(CommandError::Message(e.to_string())),
    }
}
