//! Why a Dockerfile cannot be planned: one variant per rule, each with the line it is about,
//! and the parser, instruction, lexer, mount or reference error underneath where there is one.

use crate::dockerfile::instructions::{CommandError, InstructionError, MountError};
use crate::dockerfile::parser::ParseError;
use crate::dockerfile::shell::LexError;
use crate::reference::ReferenceError;

/// A Dockerfile the planner can't accept; `line` is 1-based where there is one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    #[error(transparent)]
    Parse(#[from] ParseError),
    #[error("{}: {}", .0.instruction.to_uppercase(), .0)]
    Instruction(#[from] InstructionError),
    #[error("dockerfile contains no stages to build")]
    NoStages,
    /// A variable in an instruction could not be expanded.
    #[error("{instruction}: {source}")]
    Expansion {
        line: usize,
        instruction: String,
        #[source]
        source: LexError,
    },
    #[error("FROM: empty platform value from expression {expression}")]
    EmptyPlatform { line: usize, expression: String },
    #[error("FROM: base name ({expression}) should not be blank")]
    BlankBaseName { line: usize, expression: String },
    #[error("FROM: {source}")]
    InvalidBase {
        line: usize,
        #[source]
        source: ReferenceError,
    },
    #[error(
        "FROM {name}: stage {name:?} is defined later (line {defined_at}); a stage can only build on an earlier one"
    )]
    FromLaterStage {
        line: usize,
        name: String,
        defined_at: usize,
    },
    #[error("COPY --from={index}: invalid stage index {index} (the Dockerfile has {count} stages)")]
    InvalidStageIndex {
        line: usize,
        index: String,
        count: usize,
    },
    #[error(
        "COPY --from={from}: variable expansion is not supported for --from, define a new stage with FROM using ARG from global scope as a workaround"
    )]
    CopyFromVariable { line: usize, from: String },
    #[error("COPY --from: no stage named {from:?}, and not an image: {source}")]
    CopyFrom {
        line: usize,
        from: String,
        #[source]
        source: ReferenceError,
    },
    #[error("RUN --mount: {source}")]
    Mount {
        line: usize,
        #[source]
        source: MountError,
    },
    #[error("RUN --mount: from={from}: no stage of that name, and not an image: {source}")]
    MountFrom {
        line: usize,
        from: String,
        #[source]
        source: ReferenceError,
    },
    #[error("ONBUILD trigger of the parent stage: {source}")]
    Onbuild {
        line: usize,
        #[source]
        source: TriggerError,
    },
    #[error("circular dependency detected on stage: {stage}")]
    Cycle { line: usize, stage: String },
    #[error("target stage {name:?} could not be found (stages: {known})")]
    UnknownTarget { name: String, known: String },
}

/// Why a parent stage's ONBUILD trigger could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TriggerError {
    #[error(transparent)]
    Parse(#[from] ParseError),
    #[error("onbuild trigger should be a single expression")]
    NotSingle,
    #[error(transparent)]
    Instruction(#[from] CommandError),
}

impl PlanError {
    /// The Dockerfile line the error is about, when there is one.
    pub fn line(&self) -> Option<usize> {
        match self {
            PlanError::Parse(e) => Some(e.start_line),
            PlanError::Instruction(e) => Some(e.line),
            PlanError::Expansion { line, .. }
            | PlanError::EmptyPlatform { line, .. }
            | PlanError::BlankBaseName { line, .. }
            | PlanError::InvalidBase { line, .. }
            | PlanError::FromLaterStage { line, .. }
            | PlanError::InvalidStageIndex { line, .. }
            | PlanError::CopyFromVariable { line, .. }
            | PlanError::CopyFrom { line, .. }
            | PlanError::Mount { line, .. }
            | PlanError::MountFrom { line, .. }
            | PlanError::Onbuild { line, .. }
            | PlanError::Cycle { line, .. } => Some(*line),
            PlanError::NoStages | PlanError::UnknownTarget { .. } => None,
        }
    }
}
