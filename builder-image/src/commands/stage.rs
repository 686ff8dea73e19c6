//! `slipway-builder stage`: what a stage pod (or a local stage container) runs. The external
//! images its stages copy from, which the prepare pod (not root) left as layers, the stage
//! engine unpacks into the stage's own folder when a COPY first names one.

use slipway_contract::pod::StageArgs;
use slipway_contract::result::{PodResult, Reason};
use slipway_engine::awaited;
use slipway_engine::stage::{self, StageOptions};
use slipway_engine::workspace::Workspace;

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
    let ws = Workspace::new(&a.workspace);
    awaited::withdraw(&ws, &a.stages).map_err(|e| failed(e.to_string()))?;
    // The stages it needs that still ran when its pod was made: it starts once they are done.
    let mut digests = a.digests.clone();
    let awaited = awaited::take(&ws, &mut digests).map_err(|e| failed(e.to_string()))?;
    let opts = StageOptions {
        plan: a.plan.clone(),
        stages: a.stages.clone(),
        workspace: a.workspace.clone(),
        secrets_dir: None,
        cache_dir: None,
        digests,
        epoch: a.epoch.source_date_epoch,
        layers: a.layers,
    };
    match stage::run_stage(&opts) {
        Ok(done) => {
            // The digests of what the chain wrote: the controller hands them to the pods
            // that read those files, and pods already waiting take them from the workspace.
            awaited::publish(&ws, &done.outputs).map_err(|e| failed(e.to_string()))?;
            PodResult::Stage {
                layers: done.result.layers.len(),
                outputs: done.outputs,
                awaited,
            }
            .report();
            Ok(())
        }
        Err(e) => Err(failed(e.to_string())),
    }
}
