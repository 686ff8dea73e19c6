//! Registries: pulls and pushes through oci-client, the manifests pushed, the errors, digest
//! validation, and credentials; the check of a layer's bytes against its digests as they
//! stream ([`verify`]); a progress line for transfers on a terminal ([`progress`]); what a
//! push did with its blobs ([`tally`]).

pub mod auth;
pub mod client;
pub mod context;
pub mod digest;
pub mod error;
pub mod manifest;
pub mod progress;
pub mod reference;
pub mod tally;
pub mod verify;
