//! `slipway-builder stage`: what a stage pod (or a local stage container) runs.

use slipway_contract::pod::StageArgs;
use slipway_contract::result::{PodResult, Reason};
use slipway_engine::stage::{self, StageOptions};

use super::CommandError;

pub fn run(a: &StageArgs) -> Result<(), CommandError> {
    let opts = StageOptions {
        plan: a.plan.clone(),
        stages: a.stages.clone(),
        workspace: a.workspace.clone(),
        secrets_dir: None,
        cache_dir: None,
        digests: a.digests.clone(),
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
        Err(e) => {
            PodResult::Failed {
                reason: Reason::StageFailed,
                message: e.to_string(),
            }
            .report();
            Err(CommandError::Message(e.to_string()))
        }
    }
}
