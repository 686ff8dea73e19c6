//! Layers: the streaming gzip tar writer with its digests, the parallel gzip under it, and
//! the RUN snapshot diff that feeds it.

pub mod parallel_gzip;
pub mod snapshot;
pub mod writer;
