//! `slipway-builder stage`: what a stage pod (or a local stage container) runs. The external
//! images its stages copy from, which the prepare pod (not root) left as layers, the stage
//! engine unpacks into the stage's own folder when a COPY first names one.

use slipway_contract::pod::StageArgs;
use slipway_contract::result::{PodResult, Reason};
use slipway_engine::stage::{self, StageOptions};

use super::CommandError;

fn failed(message: String) -> CommandError {
    PodResult::Failed {
        reason: Reason::StageFailed,
        message: message.clone(),
    }
    .report();
    CommandError::Message(message)
}

pub fn run(a: &StageArgs) -> Result<(), CommandError> {
    slipway_engine::net::download::set_size_limit(a.limits.size_limit);
    let opts = StageOptions {
        plan: a.plan.clone(),
        stages: a.stages.clone(),
        workspace: a.workspace.clone(),
        secrets_dir: None,
        cache_dir: None,
        digests: a.digests.clone(),
        epoch: a.epoch.source_date_epoch,
        layers: a.layers,
    };
    match stage::run_stage(&opts) {
        Ok(done) => {
            // The digests of what the chain wrote: the controller hands them to the pods
            // that read those files.
            PodResult::Stage {
                layers: done.result.layers.len(),
                outputs: done.outputs,
            }
            .report();
            Ok(())
        }
        Err(e) => Err(failed(e.to_string())),
    }
}
