//! Layers: the streaming gzip tar writer with its digests, and the RUN snapshot diff that
//! feeds it.

pub mod snapshot;
pub mod writer;
