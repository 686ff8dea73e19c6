//! Reading the `.dockerignore` that applies to a build from the context (the matching itself
//! is pure and lives in `slipway_frontend::dockerignore`).

use std::path::Path;

use slipway_frontend::dockerignore::{candidates, read_patterns};

/// The patterns that apply to a build: those of the first ignore file of [`candidates`] that
/// exists, or none.
pub fn load(context: &Path, dockerfile: &Path) -> std::io::Result<Vec<String>> {
    for file in candidates(context, dockerfile) {
        match std::fs::read(&file) {
            Ok(bytes) => return Ok(read_patterns(&String::from_utf8_lossy(&bytes))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(Vec::new())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_dockerfile_specific_file_wins_when_present() {
        let dir = tempfile::tempdir().expect("tempdir");
        let df = dir.path().join("sub/app.Dockerfile");
        std::fs::create_dir_all(dir.path().join("sub")).expect("mkdir");
        assert!(load(dir.path(), &df).expect("no files").is_empty());
        std::fs::write(dir.path().join(".dockerignore"), "*.log\n").expect("write");
        assert_eq!(load(dir.path(), &df).expect("root file"), ["*.log"]);
        std::fs::write(
            dir.path().join("sub/app.Dockerfile.dockerignore"),
            "!keep.log\n",
        )
        .expect("write");
        assert_eq!(load(dir.path(), &df).expect("specific file"), ["!keep.log"]);
    }
}
