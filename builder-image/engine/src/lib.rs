//! Slipway's build engine: everything that touches files, processes and registries.
//!
//! In the order of a build:
//!
//! - [`steps`]: the pod steps. [`steps::plan`] plans into the workspace and resolves the
//!   images (shared by the cluster's prepare pod and local mode; the Dockerfile and its ignore
//!   files read inside the context only, [`steps::context_file`]), [`steps::prepare`] fetches
//!   the source ([`steps::source`], [`steps::git`], [`steps::checkout`]) first, in a container
//!   of its own, [`steps::push`] assembles the image and pushes it.
//! - [`stage`]: one stage (or a FROM-chain of stages), instruction by instruction, inside the
//!   stage's base image: what a stage pod runs.
//! - [`layer`]: layer tarballs ([`layer::writer`]) from a RUN's file-system diff
//!   ([`layer::snapshot`]) or from the paths COPY wrote.
//! - [`fs`]: file-system primitives: writing trees, archives, applying layers, the context's
//!   `.dockerignore`.
//! - [`registry`]: pulling and pushing with oci-client, and credentials.
//! - [`workspace`]: the files the steps of a build share; [`trusted`]: reading them only
//!   when they are what the controller's digests say.
//! - [`net`]: TLS set-up and HTTP downloads (bounded: redirects, timeouts, size).
//! - [`local`]: local mode, the same steps on one machine with the stages in runc containers.
//!
//! The Dockerfile front end is `slipway_frontend`; what the operator and the pods say to each
//! other is `slipway_contract`.

pub mod awaited;
pub mod cache;
pub mod fs;
pub mod layer;
pub mod local;
pub mod net;
pub mod registry;
pub mod stage;
pub mod steps;
pub mod trusted;
pub mod workspace;
