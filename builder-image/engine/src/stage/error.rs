//! Why a stage fails. [`StageError`]'s Display is the one line a user sees
//! (`stage "build" (#1): Dockerfile:5: RUN make: exit code 2`): tests/engine/failures.sh and
//! tests/e2e match it with regexes, so every text here, and in the seam errors it wraps
//! ([`RunError`], [`MountSetupError`], [`CopyAddError`], [`LayerError`], [`ConfigError`]), is
//! the interface and stays as it is.

use std::io;

use slipway_frontend::dockerfile::instructions::{self, CommandError};
use slipway_frontend::dockerfile::parser::ParseError;
use slipway_frontend::dockerfile::shell::LexError;
use slipway_frontend::plan::PlanError;

use crate::fs::PathError;
use crate::fs::unpack::UnpackError;
use crate::stage::commit::LayerError;
use crate::stage::config::ConfigError;
use crate::stage::copy::CopyAddError;
use crate::stage::mounts::MountSetupError;
use crate::stage::run::RunError;
use crate::stage::users::UserError;
use crate::workspace::WorkspaceError;

/// A stage failed: where (the stage's label, and the Dockerfile line where there is one) and
/// why.
#[derive(Debug, thiserror::Error)]
pub enum StageError {
    /// An instruction failed, or the Dockerfile could not be read as instructions
    /// (`instruction` is then `parse`, or the keyword the front end names).
    #[error("{stage}: Dockerfile:{line}: {instruction}: {source}")]
    Instruction {
        stage: String,
        line: usize,
        instruction: String,
        /// Boxed: the kinds are large, and every instruction returns this error.
        #[source]
        source: Box<InstructionFailure>,
    },
    #[error("{stage}: Dockerfile:{line}: RUN {command}: exit code {code}")]
    RunFailed {
        stage: String,
        line: usize,
        command: String,
        code: i32,
    },
    /// Before the first instruction or after the last: the plan, the base, the result.
    #[error("{stage}: {source}")]
    Setup {
        stage: String,
        #[source]
        source: SetupError,
    },
}

impl StageError {
    pub fn line(&self) -> Option<usize> {
        match self {
            StageError::Instruction { line, .. } | StageError::RunFailed { line, .. } => {
                Some(*line)
            }
            StageError::Setup { .. } => None,
        }
    }
}

/// Why one instruction failed; the seams' own errors, and the few that are the dispatch's.
#[derive(Debug, thiserror::Error)]
pub enum InstructionFailure {
    /// The Dockerfile (or an ONBUILD trigger) does not parse.
    #[error(transparent)]
    Parse(#[from] ParseError),
    /// An instruction of the Dockerfile is not valid.
    #[error(transparent)]
    Dockerfile(#[from] instructions::InstructionError),
    /// An ONBUILD trigger is not a valid instruction.
    #[error(transparent)]
    Trigger(#[from] CommandError),
    /// A word does not expand.
    #[error(transparent)]
    Expand(#[from] LexError),
    /// USER names no user of the stage (the directories WORKDIR makes).
    #[error(transparent)]
    User(#[from] UserError),
    #[error("{dir}: {source}")]
    Workdir {
        dir: String,
        #[source]
        source: io::Error,
    },
    #[error("VOLUME specified can not be an empty string")]
    EmptyVolume,
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Run(#[from] RunError),
    #[error(transparent)]
    Mount(#[from] MountSetupError),
    #[error(transparent)]
    Copy(#[from] CopyAddError),
    #[error(transparent)]
    Layer(#[from] LayerError),
}

/// Why a stage could not start or finish.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    /// The plan, a parent's result or an image's info could not be read, or the result
    /// written.
    #[error(transparent)]
    Workspace(#[from] WorkspaceError),
    #[error(transparent)]
    Path(#[from] PathError),
    /// Making the stage's layers directory (the message names no path, as it never did).
    #[error("{0}")]
    Layers(#[source] io::Error),
    #[error(transparent)]
    Plan(#[from] PlanError),
    #[error("applying {digest}: {source}")]
    Apply {
        digest: String,
        #[source]
        source: UnpackError,
    },
    #[error("writing exports: {0}")]
    Exports(#[source] io::Error),
    #[error("not in the plan")]
    NotInPlan,
    #[error("no stage given")]
    NoStage,
}
