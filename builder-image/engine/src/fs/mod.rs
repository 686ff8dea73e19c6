//! File-system primitives shared by the stage engine and the pod steps. Names read from
//! a tree are carried as `Path`/`OsStr` (raw bytes), never through `String`, so a file whose
//! name is not UTF-8 is copied, archived and found under its own name.

use std::io;
use std::path::PathBuf;

pub mod archive;
pub mod content_root;
pub mod copy;
pub mod glob;
pub mod root;
pub mod unpack;

/// An I/O error on a named path: `PATH: error`, the shape of every file error users see.
#[derive(Debug, thiserror::Error)]
#[error("{}: {source}", path.display())]
pub struct PathError {
    pub path: PathBuf,
    #[source]
    pub source: io::Error,
}

/// `map_err(at(&path))`: names the path an I/O error happened on.
pub fn at(path: impl Into<PathBuf>) -> impl FnOnce(io::Error) -> PathError {
    let path = path.into();
    move |source| PathError { path, source }
}
