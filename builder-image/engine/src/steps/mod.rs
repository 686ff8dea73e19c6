//! The steps of a cluster build's pods, and what local mode shares with them.

pub mod checkout;
pub mod context_file;
pub mod git;
pub mod plan;
pub mod prepare;
pub mod push;
pub mod source;
