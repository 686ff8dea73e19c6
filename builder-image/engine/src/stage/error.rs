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
use crate::trusted::TrustError;
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
    /// A workspace file that is not what the controller's digest says, or not one to read.
    #[error(transparent)]
    Trust(#[from] TrustError),
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
    /// Making the engine the reaper of what RUN steps leave running, and not dumpable.
    #[error("guarding the engine from its RUN steps: {0}")]
    Reaper(#[source] nix::Error),
    #[error("no stage given")]
    NoStage,
    #[error("copying the cache checkpoint's layer {digest}: {source}")]
    ResumeLayer {
        digest: String,
        #[source]
        source: io::Error,
    },
}

#[cfg(test)]
mod tests {
    //! The texts users see, byte for byte, as the tiers' regexes (tests/engine/failures.sh,
    //! tests/engine/run.sh, tests/e2e) and the String messages before these types expect.

    use std::error::Error as _;

    use super::*;
    use crate::stage::copy_sources::CopyError;
    use crate::stage::run::run_text;

    fn at(stage: &str, line: usize, instruction: &str, f: impl Into<InstructionFailure>) -> String {
        StageError::Instruction {
            stage: stage.into(),
            line,
            instruction: instruction.into(),
            source: Box::new(f.into()),
        }
        .to_string()
    }

    #[test]
    fn run_failures() {
        let e = StageError::RunFailed {
            stage: r#"stage "build" (#1)"#.into(),
            line: 5,
            command: run_text("RUN echo failing && exit 3"),
            code: 3,
        };
        assert_eq!(
            e.to_string(),
            r#"stage "build" (#1): Dockerfile:5: RUN echo failing && exit 3: exit code 3"#
        );
        assert_eq!(e.line(), Some(5));
        assert_eq!(
            at("stage #0", 2, "RUN", RunError::Insecure),
            "stage #0: Dockerfile:2: RUN: --security=insecure is not allowed: stages run unprivileged"
        );
        assert_eq!(
            at("stage #0", 3, "RUN", MountSetupError::Ssh),
            "stage #0: Dockerfile:3: RUN: --mount type=ssh is not supported"
        );
        assert_eq!(
            at(
                "stage #0",
                3,
                "RUN",
                MountSetupError::SecretRequired("tok".into())
            ),
            "stage #0: Dockerfile:3: RUN: secret tok is required but was not provided"
        );
        // Refused, never silently ignored (M4 of SECURITY.md).
        assert_eq!(
            at("stage #0", 2, "RUN", RunError::NetworkNone),
            "stage #0: Dockerfile:2: RUN: --network=none is not supported: stages run without \
             CAP_SYS_ADMIN, so a RUN cannot be given a network namespace of its own and would \
             still reach the network"
        );
        assert_eq!(
            at("stage #0", 2, "RUN", RunError::NetworkHost),
            "stage #0: Dockerfile:2: RUN: --network=host is not allowed: it needs the \
             network.host entitlement, which Slipway does not grant"
        );
        assert_eq!(
            at("stage #0", 4, "RUN", MountSetupError::CacheReadOnly),
            "stage #0: Dockerfile:4: RUN: --mount type=cache,ro is not supported: a cache \
             cannot be made read-only without mount(2)"
        );
        let walk = RunError::Walk(io::Error::other("boom"));
        assert_eq!(
            at("s", 1, "RUN", walk),
            "s: Dockerfile:1: RUN: walking the tree: boom"
        );
    }

    #[test]
    fn copy_failures() {
        assert_eq!(
            at(
                "stage #0",
                2,
                "COPY",
                CopyAddError::Sources(CopyError::OutsideContext("../secret.txt".into()))
            ),
            "stage #0: Dockerfile:2: COPY: ../secret.txt: forbidden path outside the build context"
        );
        let extract = crate::fs::archive::ExtractError::Unpack {
            shown: "/ctx/evil.tar".into(),
            source: UnpackError::OutsideRoot {
                entry: "../../evil.txt".into(),
            },
        };
        assert_eq!(
            at("stage #0", 2, "ADD", CopyAddError::Extract(extract)),
            r#"stage #0: Dockerfile:2: ADD: /ctx/evil.tar: layer entry "../../evil.txt" would land outside the root"#
        );
        let e = CopyAddError::NotAFile {
            from: "<<..".into(),
            target: "/app/..".into(),
        };
        assert_eq!(
            at("stage #0", 2, "COPY", e),
            "stage #0: Dockerfile:2: COPY: <<..: /app/.. does not name a file"
        );
        let chmod = crate::fs::copy::ChmodError { spec: "u+x".into() };
        assert_eq!(
            at("s", 3, "COPY", CopyAddError::Chmod(chmod)),
            "s: Dockerfile:3: COPY: invalid --chmod=u+x: only octal modes such as 0755 are supported"
        );
        let e = CopyAddError::Chown {
            spec: "ghost".into(),
            source: UserError::NoUser("ghost".into()),
        };
        assert_eq!(
            at("s", 4, "COPY", e),
            "s: Dockerfile:4: COPY: --chown=ghost: unable to find user ghost: no matching entries in passwd file"
        );
        let e = CopyAddError::Copy {
            src: "/ctx/a".into(),
            dest: "/a".into(),
            source: io::Error::other("full"),
        };
        assert_eq!(
            at("s", 4, "COPY", e),
            "s: Dockerfile:4: COPY: /ctx/a -> /a: full"
        );
        assert_eq!(
            at("s", 4, "COPY", CopyAddError::NotUnpacked("alpine".into())),
            "s: Dockerfile:4: COPY: --from=alpine: the image was not unpacked into the workspace"
        );
    }

    #[test]
    fn dispatch_and_layer_failures() {
        assert_eq!(
            at("s", 7, "VOLUME", InstructionFailure::EmptyVolume),
            "s: Dockerfile:7: VOLUME: VOLUME specified can not be an empty string"
        );
        assert_eq!(
            at("s", 7, "STOPSIGNAL", ConfigError::Signal("SIGNOPE".into())),
            "s: Dockerfile:7: STOPSIGNAL: Invalid signal: SIGNOPE"
        );
        assert_eq!(
            at("s", 7, "ENV", LexError("missing '}'".into())),
            "s: Dockerfile:7: ENV: missing '}'"
        );
        let e = InstructionFailure::Workdir {
            dir: "/app".into(),
            source: io::Error::other("read-only"),
        };
        assert_eq!(
            at("s", 8, "WORKDIR", e),
            "s: Dockerfile:8: WORKDIR: /app: read-only"
        );
        let e = LayerError::Write(io::Error::other("no space"));
        assert_eq!(
            at("s", 9, "COPY", e),
            "s: Dockerfile:9: COPY: writing layer: no space"
        );
    }

    #[test]
    fn setup_failures() {
        let setup = |stage: &str, source: SetupError| {
            StageError::Setup {
                stage: stage.into(),
                source,
            }
            .to_string()
        };
        assert_eq!(
            setup("stage #4", SetupError::NotInPlan),
            "stage #4: not in the plan"
        );
        assert_eq!(setup("stage", SetupError::NoStage), "stage: no stage given");
        let apply = SetupError::Apply {
            digest: "sha256:ab".into(),
            source: UnpackError::OutsideRoot {
                entry: "../x".into(),
            },
        };
        assert_eq!(
            setup("stage #1", apply),
            r#"stage #1: applying sha256:ab: layer entry "../x" would land outside the root"#
        );
        let path = crate::fs::at("/ws/stages/1/result.json")(io::Error::other("gone"));
        assert_eq!(
            setup("stage #1", path.into()),
            "stage #1: /ws/stages/1/result.json: gone"
        );
        let exports = SetupError::Exports(io::Error::other("full"));
        assert_eq!(
            setup("stage #1", exports),
            "stage #1: writing exports: full"
        );
    }

    #[test]
    fn sources_chain_to_the_cause() {
        let e = StageError::Instruction {
            stage: "s".into(),
            line: 1,
            instruction: "COPY".into(),
            source: Box::new(
                CopyAddError::Chown {
                    spec: "ghost".into(),
                    source: UserError::NoUser("ghost".into()),
                }
                .into(),
            ),
        };
        let failure = e.source().expect("the instruction's failure");
        // Transparent: the seam's error is the failure's own source chain.
        let cause = failure.source().expect("the user lookup");
        assert_eq!(
            cause.to_string(),
            "unable to find user ghost: no matching entries in passwd file"
        );
        assert_eq!(
            StageError::Setup {
                stage: "s".into(),
                source: SetupError::NoStage
            }
            .line(),
            None
        );
    }
}
