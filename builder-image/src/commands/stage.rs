//! `slipway-builder stage`: what a stage pod (or a local stage container) runs. First it
//! unpacks the external images its stages copy from, when the prepare pod (which is not
//! root) left them as layers.

use slipway_contract::pod::StageArgs;
use slipway_contract::result::{PodResult, Reason};
use slipway_engine::stage::{self, StageOptions};
use slipway_engine::steps::plan::unpack_copied_images;
use slipway_engine::workspace::{self, Workspace};
use slipway_frontend::plan::Plan;

use super::CommandError;

/// The images the chain copies from, unpacked into the workspace. A plan that cannot be
/// read is left for the stage engine to report.
fn copied_images(a: &StageArgs) -> Result<(), String> {
    let ws = Workspace::new(&a.workspace);
    let Ok(plan) = workspace::read_json::<Plan>(&a.plan) else {
        return Ok(());
    };
    unpack_copied_images(&ws, &plan, &a.stages).map_err(|e| e.to_string())
}

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
    copied_images(a).map_err(failed)?;
    let opts = StageOptions {
        plan: a.plan.clone(),
        stages: a.stages.clone(),
        workspace: a.workspace.clone(),
        secrets_dir: None,
        cache_dir: None,
    };
    match stage::run_stage(&opts) {
        Ok(r) => {
            PodResult::Stage {
                layers: r.layers.len(),
            }
            .report();
            Ok(())
        }
        Err(e) => Err(failed(e.to_string())),
    }
}
