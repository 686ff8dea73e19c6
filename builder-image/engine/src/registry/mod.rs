//! Registries: pulls and pushes through oci-client, and credentials.

pub mod auth;
pub mod client;
