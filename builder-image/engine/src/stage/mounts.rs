//! `RUN --mount` without mount(2). Stage pods get no CAP_SYS_ADMIN, so the engine cannot bind
//! or mount tmpfs; instead it puts a symlink at the target that leads to the source (a stage's
//! export, the context, a cache directory kept outside the tree, an empty scratch directory, a
//! secret file outside the tree), and takes it away, with anything it moved aside put back,
//! before the tree is snapshotted. What RUN writes through the link never reaches the layer,
//! as with BuildKit's mounts. A program that inspects the target sees a symlink.

use std::fs;
use std::io;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::{Path, PathBuf};

use crate::fs::root::scoped_path;

/// One prepared mount: what to undo after the RUN.
#[derive(Debug)]
pub struct Placed {
    /// The link at the target, inside the root.
    link: PathBuf,
    /// What was at the target before, moved aside.
    moved: Option<(PathBuf, PathBuf)>,
    /// Directories made for the target, deepest first.
    made: Vec<PathBuf>,
}

/// Places a link at `target` (absolute, in-image) leading to `source` (a path the RUN
/// process can reach: absolute in the engine's namespace, or inside a chroot root).
pub fn place(root: &Path, target: &str, source: &Path) -> io::Result<Placed> {
    let rel = Path::new(target.trim_start_matches('/'));
    let link = scoped_path(root, rel)?;
    let mut made = Vec::new();
    if let Some(parent) = link.parent() {
        let mut missing = Vec::new();
        let mut p = parent.to_path_buf();
        while !p.exists() && p.starts_with(root) && p != root {
            missing.push(p.clone());
            if !p.pop() {
                break;
            }
        }
        for d in missing.iter().rev() {
            fs::create_dir(d)?;
            fs::set_permissions(d, fs::Permissions::from_mode(0o755))?;
        }
        made = missing;
    }
    let moved = if fs::symlink_metadata(&link).is_ok() {
        let aside = link.with_file_name(format!(
            ".slipway-hidden-{}",
            link.file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default()
        ));
        fs::rename(&link, &aside)?;
        Some((aside, link.clone()))
    } else {
        None
    };
    symlink(source, &link)?;
    Ok(Placed { link, moved, made })
}

/// Undoes [`place`]: the link goes, what it hid comes back, the made directories go.
pub fn remove(p: Placed) -> io::Result<()> {
    fs::remove_file(&p.link)?;
    if let Some((aside, back)) = p.moved {
        fs::rename(aside, back)?;
    }
    for d in p.made {
        // Only if RUN left it empty; otherwise what it wrote there belongs in the layer.
        let _ = fs::remove_dir(d);
    }
    Ok(())
}

/// A cache id as a directory name.
pub fn cache_dir_name(id: &str) -> String {
    let safe: String = id
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-_.".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    let h = crate::workspace::image_key(id);
    format!("{}-{h}", safe.trim_start_matches('.'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn place_and_remove_restore_the_tree() {
        let d = tempfile::tempdir().expect("tmp");
        let root = d.path().join("root");
        let src = d.path().join("cache");
        fs::create_dir_all(root.join("var/cache/apt")).expect("mkdir");
        fs::write(root.join("var/cache/apt/keep"), "k").expect("w");
        fs::create_dir_all(&src).expect("mkdir");

        let p = place(&root, "/var/cache/apt", &src).expect("place");
        fs::write(root.join("var/cache/apt/new"), "n").expect("write through the link");
        assert!(src.join("new").exists());
        remove(p).expect("remove");
        assert!(root.join("var/cache/apt/keep").exists());
        assert!(!root.join("var/cache/apt/new").exists());

        let p = place(&root, "/run/secrets/token", &src.join("new")).expect("place");
        assert_eq!(
            fs::read_to_string(root.join("run/secrets/token")).expect("read"),
            "n"
        );
        remove(p).expect("remove");
        assert!(!root.join("run").exists());
        assert_eq!(cache_dir_name("/root/.cache/go-build").len(), 38);
    }
}
