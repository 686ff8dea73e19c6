//! The layer cache across builds (issue 13), by whole stage: a stage whose key is in the
//! cache repository is restored instead of run, so a build whose stages all hit starts no
//! container (no Job on a cluster), and the image is the same bytes as a cold build's.
//!
//! - [`keys`]: each stage's inputs and keys ([`slipway_frontend::cache_key::stage`]), from
//!   trusted inputs only (the plan, the Dockerfile and context as the host read them, the
//!   resolved digests), never from what a stage container wrote about another stage;
//! - [`entry`]: what an entry holds, and the checks a found one passes before it is used;
//! - [`store`]: the registry side: look up, restore into the workspace, write.
//!
//! Only the build's own trusted side (local mode's host, the cluster's push pod) writes the
//! cache, after the image is pushed.

pub mod build;
pub mod cluster;
pub mod entry;
pub mod keys;
pub mod store;
