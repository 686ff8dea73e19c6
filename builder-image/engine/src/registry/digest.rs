//! The one check every digest passes before Slipway uses it: a registry's manifest (layer,
//! config and image digests) and the workspace's JSON (stage results) are untrusted, and a
//! digest ends up in file names (`blobs/.../sha256/<hex>`, `base-trees/<hex>`,
//! `stages/<N>/layers/<hex>.tar.gz`). Only `sha256:` and 64 lowercase hex digits pass, so a
//! digest can never be `sha256:../../etc/x`. The check lives in the contract
//! (`slipway_contract::digest`, with its tests), where the operator and the pods' arguments
//! use it too; the engine's callers name it here.

pub use slipway_contract::digest::{DigestError, sha256_hex};
