//! `slipway-builder parse`: the parser alone, for debugging and BuildKit's test data.

use std::path::PathBuf;

use slipway_frontend::dockerfile::{instructions, parser};

use super::{CommandError, located, read_dockerfile};

/// Parse a Dockerfile. With --dump, print the AST as BuildKit's `Node.Dump()` does;
/// without it, also check every instruction and print the stages as JSON.
#[derive(clap::Args)]
pub struct ParseArgs {
    /// Print BuildKit's AST dump (the parser alone, as BuildKit's parser tests do).
    #[arg(long)]
    dump: bool,
    file: PathBuf,
}

pub fn run(a: &ParseArgs) -> Result<(), CommandError> {
    let file = &a.file;
    let text = read_dockerfile(file)?;
    let parsed = parser::parse(&text)
        .map_err(|e| CommandError::Message(located(file, Some(e.start_line), &e)))?;
    for w in &parsed.warnings {
        eprintln!(
            "{}",
            located(file, Some(w.line), format!("warning: {}", w.message))
        );
    }
    if a.dump {
        println!("{}", parsed.ast.dump());
        return Ok(());
    }
    let df = instructions::from_ast(&parsed.ast).map_err(|e| {
        CommandError::Message(located(
            file,
            Some(e.line),
            format!("{}: {}", e.instruction.to_uppercase(), e),
        ))
    })?;
    println!("{}", serde_json::to_string_pretty(&df)?);
    Ok(())
}
