//! Slipway's build engine. This crate holds the Dockerfile front end, the stage plan shared
//! with the operator, and `.dockerignore` matching; the binary `slipway-builder` exposes them.

pub mod copy_sources;
pub mod dockerfile;
pub mod dockerignore;
pub mod image_config;
pub mod layer;
pub mod plan;
pub mod reference;
pub mod snapshot;
pub mod unpack;
pub mod users;
