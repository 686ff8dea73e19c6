//! `slipway-builder push`: a cluster build's last pod, the only one with push credentials.

use slipway_contract::pod::PushArgs;
use slipway_contract::result::{PodResult, Reason};
use slipway_engine::awaited;
use slipway_engine::steps::push;
use slipway_engine::workspace::Workspace;

use super::CommandError;

pub fn run(a: &PushArgs) -> Result<(), CommandError> {
    // The stages that still ran when its pod was made: it pushes once they are done.
    let mut a = a.clone();
    let awaited = match awaited::take(&Workspace::new(&a.workspace), &mut a.digests) {
        Ok(took) => took,
        Err(e) => return Err(failed(e.to_string())),
    };
    match push::push(&a) {
        Ok(pushed) => {
            PodResult::Pushed {
                awaited,
                digest: pushed.digest,
                refs: a.destinations.clone(),
                size: Some(pushed.size),
                cache: pushed.cache,
            }
            .report();
            Ok(())
        }
        Err(e) => Err(failed(e.to_string())),
    }
}

fn failed(message: String) -> CommandError {
    PodResult::Failed {
        reason: Reason::PushFailed,
        message: message.clone(),
    }
    .report();
    CommandError::Message(message)
}
