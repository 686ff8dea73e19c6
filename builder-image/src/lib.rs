//! Slipway's build engine. This crate holds the Dockerfile front end, the stage plan shared
//! with the operator, and `.dockerignore` matching; the binary `slipway-builder` exposes them.

pub mod archive;
pub mod copy_into;
pub mod copy_sources;
pub mod docker_config;
pub mod dockerfile;
pub mod dockerignore;
pub mod exec;
pub mod exports;
pub mod fetch;
pub mod git;
pub mod graph;
pub mod image_config;
pub mod layer;
pub mod local_build;
pub mod plan;
pub mod prepare;
pub mod push;
pub mod reference;
pub mod registry;
pub mod run_mounts;
pub mod runtime;
pub mod snapshot;
pub mod source;
pub mod stage;
pub mod stage_root;
pub mod unpack;
pub mod users;
pub mod workspace;
