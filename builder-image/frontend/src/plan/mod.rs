//! The stage plan: which stages a build needs, in what order, what each builds on and what
//! later stages copy out of it. It is computed once (the prepare step, or `slipway-builder
//! plan`) and read by the operator, which schedules one Job per stage, and by the engine.
//! The serde types here are the contract between them; the operator imports them.
//!
//! Variable scoping follows BuildKit (`dockerfile2llb/convert.go`, see [`args`]): ARGs before
//! the first FROM are global and reach FROM lines; a stage sees one only when it redeclares
//! it; a `--build-arg` overrides defaults; ENV and ARG values accumulate in the stage's
//! environment in order, and a stage built on another inherits its environment.
//!
//! Where Slipway is deliberately stricter than BuildKit: a stage name in FROM matches
//! case-insensitively, and a FROM naming a later stage is an error
//! ([`PlanError::FromLaterStage`]).
//!
//! The parts: `planner` follows each stage's base, environment and needs instruction by
//! instruction; `order` derives transitive needs, the build order, exports and the fused
//! FROM-chains; [`args`] holds the predefined ARGs and the global scope; `error` holds
//! [`PlanError`].

pub mod args;
mod error;
mod order;
mod planner;
pub(crate) use planner::as_index;

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::dockerfile::instructions;
use crate::dockerfile::parser;
use crate::dockerfile::shell::Lex;

pub use args::{DEFAULT_PATH, PROXY_ARGS, global_args, host_arch, predefined_args};
pub use error::{PlanError, TriggerError};

/// What a stage builds on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Base {
    /// An earlier stage, by index.
    Stage(usize),
    /// An image reference as written (after ARG expansion), or `scratch`.
    Image(String),
}

/// A stage named or numbered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum StageRef {
    Index(usize),
    Name(String),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PlannedStage {
    /// Position in the Dockerfile, from 0.
    pub index: usize,
    /// The `AS` name, lower-cased.
    pub name: Option<String>,
    pub from: Base,
    /// Every stage that must be built before this one, sorted.
    pub depends_on: Vec<usize>,
    /// Absolute paths (glob patterns allowed) that other needed stages copy or mount from
    /// this one; sorted.
    pub exports: Vec<String>,
    /// Line of the FROM instruction.
    pub line: usize,
    /// `--platform` after expansion.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<String>,
    /// External images this stage copies or mounts from (`COPY --from=image`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub images: Vec<String>,
    /// Secret ids its RUN commands mount (`--mount=type=secret`): the only secrets its Job sees.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub secrets: Vec<String>,
    /// Whether a RUN mounts a cache (`--mount=type=cache`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub cache_mounts: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Plan {
    /// The target stage: its name, or its index when it has none.
    pub target: StageRef,
    pub target_index: usize,
    /// The needed stages, each after every stage it depends on.
    pub stages: Vec<PlannedStage>,
    /// The `--build-arg` values the plan was made with.
    #[serde(default)]
    pub build_args: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

impl Plan {
    pub fn stage(&self, index: usize) -> Option<&PlannedStage> {
        self.stages.iter().find(|s| s.index == index)
    }

    /// Every external image the needed stages build on or copy from, and of those the ones
    /// copied from (`COPY --from=image`, whose trees a build unpacks).
    pub fn external_images(&self) -> (BTreeSet<String>, BTreeSet<String>) {
        let mut names = BTreeSet::new();
        let mut copied = BTreeSet::new();
        for s in &self.stages {
            if let Base::Image(n) = &s.from
                && n != "scratch"
            {
                names.insert(n.clone());
            }
            for i in &s.images {
                names.insert(i.clone());
                copied.insert(i.clone());
            }
        }
        (names, copied)
    }

    /// Whether a later step reads the layers of stage `index`: the push reads the target's,
    /// and a stage built `FROM` it starts from them. Every other stage is read only through
    /// its exports (`COPY --from`, `RUN --mount=from=`), so without a layer cache to fill,
    /// its layers need not be made at all, as BuildKit never compresses such a stage.
    pub fn layers_read(&self, index: usize) -> bool {
        index == self.target_index || self.stages.iter().any(|s| s.from == Base::Stage(index))
    }

    /// [`Plan::layers_read`] for stage `index` run in one process with the rest of `chain`
    /// (a FROM-chain, each stage starting from the tree the one before left): a child in the
    /// chain starts from that tree, not from the layers, so they are read only when a child
    /// elsewhere reads them, or when that child's own layers are read (they include them).
    /// The Go example's `base`, whose child `builder` is in its chain and is read only by
    /// `COPY --from`, makes none: no walk of the Go image's tree around its RUN.
    pub fn layers_read_in(&self, index: usize, chain: &[usize]) -> bool {
        index == self.target_index
            || self.stages.iter().any(|s| {
                s.from == Base::Stage(index)
                    && (!chain.contains(&s.index) || self.layers_read_in(s.index, chain))
            })
    }
}

/// Inputs to planning besides the Dockerfile.
#[derive(Debug, Clone, Default)]
pub struct PlanOptions {
    pub target: Option<String>,
    /// `--build-arg` values; a later value for the same name wins.
    pub build_args: Vec<(String, String)>,
}

/// Parses and plans a Dockerfile.
pub fn plan(text: &str, opts: &PlanOptions) -> Result<Plan, PlanError> {
    let parsed = parser::parse(text)?;
    let df = instructions::from_ast(&parsed.ast)?;
    planner::Planner::new(df, Lex::new(parsed.escape), opts)?.run()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layers_are_read_for_the_target_and_from_parents_only() {
        let text = "FROM busybox AS base\nRUN true\n\
                    FROM base AS builder\nRUN true\n\
                    FROM busybox AS tool\nRUN true\n\
                    FROM busybox\nCOPY --from=builder /a /a\nCOPY --from=tool /b /b\n";
        let p = plan(text, &PlanOptions::default()).expect("plan");
        assert_eq!(p.target_index, 3);
        // base: builder is FROM it; builder and tool: only COPY --from; the target: pushed.
        let read: Vec<bool> = (0..4).map(|i| p.layers_read(i)).collect();
        assert_eq!(read, [true, false, false, true]);
        // Targeting the builder: its own layers are pushed.
        let opts = PlanOptions {
            target: Some("builder".into()),
            ..Default::default()
        };
        let p = plan(text, &opts).expect("plan");
        assert!(p.layers_read(1) && p.layers_read(0));
    }

    #[test]
    fn a_chain_reads_its_stages_layers_only_where_a_later_step_does() {
        let text = "FROM busybox AS base\nRUN true\n\
                    FROM base AS builder\nRUN true\n\
                    FROM builder AS tester\nRUN true\n\
                    FROM busybox\nCOPY --from=builder /a /a\n";
        let p = plan(text, &PlanOptions::default()).expect("plan");
        // base and builder in one process: builder starts from base's tree, and only
        // COPY --from reads builder.
        assert!(!p.layers_read_in(0, &[0, 1]) && !p.layers_read_in(1, &[0, 1]));
        // builder in a process of its own reads base's layers.
        assert!(p.layers_read_in(0, &[0]));
        assert!(p.layers_read_in(3, &[3]), "the target's are pushed");
        // Targeting the tester: the chain's layers are all the image's.
        let opts = PlanOptions {
            target: Some("tester".into()),
            ..Default::default()
        };
        let p = plan(text, &opts).expect("plan");
        assert!((0..3).all(|i| p.layers_read_in(i, &[0, 1, 2])));
        // Targeting the builder with the tester elsewhere (it is not planned: not needed).
        let opts = PlanOptions {
            target: Some("builder".into()),
            ..Default::default()
        };
        let p = plan(text, &opts).expect("plan");
        assert!(p.layers_read_in(0, &[0, 1]) && p.layers_read_in(1, &[0, 1]));
    }
}
