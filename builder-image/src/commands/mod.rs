//! One module per subcommand, each a thin `run` over the library crates.

pub mod build;
pub mod exec;
pub mod fetch;
pub mod install;
pub mod parse;
pub mod plan;
pub mod prepare;
pub mod push;
pub mod resolve;
pub mod stage;

use std::path::Path;

/// Why a command failed: the one line it prints.
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    /// A message already in its final shape (`FILE:LINE: ...`, or an engine error's text).
    #[error("{0}")]
    Message(String),
    #[error(transparent)]
    Io(#[from] slipway_engine::fs::PathError),
    #[error(transparent)]
    Json(#[from] serde_json::Error),
    /// A file a flag names could not be written.
    #[error("{flag} {}: {source}", path.display())]
    Flag {
        flag: &'static str,
        path: std::path::PathBuf,
        source: std::io::Error,
    },
}

/// `FILE:LINE: message`, or `FILE: message` without a line.
pub fn located(file: &Path, line: Option<usize>, message: impl std::fmt::Display) -> String {
    match line {
        Some(l) => format!("{}:{l}: {message}", file.display()),
        None => format!("{}: {message}", file.display()),
    }
}

/// A Dockerfile's text; bytes that are not UTF-8 are replaced, as BuildKit reads them.
pub fn read_dockerfile(file: &Path) -> Result<String, CommandError> {
    let bytes = std::fs::read(file).map_err(slipway_engine::fs::at(file))?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}
