//! `slipway-builder push`: a cluster build's last pod, the only one with push credentials.

use slipway_contract::pod::PushArgs;
use slipway_contract::result::{PodResult, Reason};
use slipway_engine::steps::push;

use super::CommandError;

pub fn run(a: &PushArgs) -> Result<(), CommandError> {
    match push::push(a) {
        Ok(pushed) => {
            PodResult::Pushed {
                digest: pushed.digest,
                refs: a.destinations.clone(),
                size: Some(pushed.size),
                cache: pushed.cache,
            }
            .report();
            Ok(())
        }
        Err(e) => {
            PodResult::Failed {
                reason: Reason::PushFailed,
                message: e.to_string(),
            }
            .report();
            Err(CommandError::Message(e.to_string()))
        }
    }
}
