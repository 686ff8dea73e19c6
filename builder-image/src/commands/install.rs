//! The engine, copied into the workspace by the prepare pod, where stage pods run it.

use std::fs;
use std::path::Path;

use slipway_contract::pod::paths;
use slipway_engine::fs::{PathError, at};

/// The prepare pod's last step: this binary into the workspace's engine folder, which stage
/// pods mount read-only. Whatever is there is removed first, never followed (nothing but this
/// pod has written the workspace, but its fetch step unpacked the user's files into it).
pub fn into_workspace(workspace: &Path) -> Result<(), PathError> {
    let dir = workspace.join(paths::ENGINE);
    match fs::symlink_metadata(&dir) {
        Ok(m) if m.is_dir() => fs::remove_dir_all(&dir).map_err(at(&dir))?,
        Ok(_) => fs::remove_file(&dir).map_err(at(&dir))?,
        Err(_) => {}
    }
    let exe = std::env::current_exe().map_err(at("locating myself"))?;
    fs::create_dir_all(&dir).map_err(at(&dir))?;
    let to = dir.join("slipway-builder");
    fs::copy(&exe, &to).map_err(at(&to))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{PermissionsExt, symlink};

    #[test]
    fn the_engine_replaces_what_is_in_its_place_without_following_it() {
        let t = tempfile::tempdir().expect("tmp");
        let ws = t.path().join("ws");
        let outside = t.path().join("outside");
        fs::create_dir_all(&ws).expect("ws");
        fs::create_dir_all(&outside).expect("outside");
        let me = fs::read(std::env::current_exe().expect("exe")).expect("read myself");
        let engine = ws.join(paths::ENGINE).join("slipway-builder");
        // A symlink out of the workspace, a file, a folder with a planted binary.
        symlink(&outside, ws.join(paths::ENGINE)).expect("link");
        into_workspace(&ws).expect("over a link");
        assert!(fs::read_dir(&outside).expect("outside").next().is_none());
        assert_eq!(fs::read(&engine).expect("engine"), me);
        fs::remove_dir_all(ws.join(paths::ENGINE)).expect("rm");
        fs::write(ws.join(paths::ENGINE), "not a folder").expect("file");
        into_workspace(&ws).expect("over a file");
        assert_eq!(fs::read(&engine).expect("engine"), me);
        fs::write(&engine, "planted").expect("plant");
        fs::write(ws.join(paths::ENGINE).join("other"), "x").expect("other");
        into_workspace(&ws).expect("over a folder");
        assert_eq!(fs::read(&engine).expect("engine"), me);
        assert!(!ws.join(paths::ENGINE).join("other").exists());
        let mode = fs::metadata(&engine).expect("meta").permissions().mode();
        assert_eq!(mode & 0o111, 0o111, "executable by all: {mode:o}");
    }
}
