//! What Slipway's operator and its build pods say to each other, in one place.
//!
//! The operator and the builder image ship separately; this crate is the interface between
//! them, and both sides compile against it:
//!
//! - [`pod`]: how a build pod is started: the paths inside it (`/.slipway/...`), the
//!   environment it reads, and each subcommand's arguments as clap structs that the operator
//!   renders with `to_args()` and `slipway-builder` parses.
//! - [`graph`]: the graph of stage Jobs the prepare pod computes from the plan, and the one
//!   scheduler over it ([`graph::BuildGraph::ready`], [`graph::BuildGraph::waves`]) used by the
//!   operator, local mode and `slipway-operator schedule`.
//! - [`result`]: what each pod reports back (termination message, or a log line when large).
//! - [`trust`]: the digests of the workspace files, which the controller keeps and hands each
//!   pod for what it reads ([`digest`]: the one form of digest accepted).
//! - [`url`]: what a source URL may be (no credentials in it, https where it matters) and
//!   how one is shown (without user information).
//! - [`epoch`]: `SOURCE_DATE_EPOCH`, the time a reproducible build stamps.
//! - [`annotations`]: the OCI annotations of a cluster build's image.
//! - [`size`]: byte sizes as settings and flags write them (`--size-limit 1Gi`).
//! - [`context_artifact`]: the build context as an OCI artifact (`spec.source.oci`): the
//!   manifest the CLI pushes and the checks the fetch step makes of it.

pub mod annotations;
pub mod context_artifact;
pub mod digest;
pub mod epoch;
pub mod graph;
pub mod pod;
pub mod result;
pub mod size;
pub mod trust;
pub mod url;
