//! The root filesystem a local stage container starts from. A base image is unpacked once per
//! digest into the state directory and each stage gets an overlay of it (the unpacked tree
//! read-only below, the stage's own writable directory above), as a kubelet's snapshotter
//! gives a pod; where overlayfs is not available the image is unpacked into the stage's
//! directory instead.

use std::fs;
use std::path::{Path, PathBuf};

use nix::mount::{MntFlags, MsFlags};

use crate::fs::unpack::ImageUnpackError;
use crate::fs::{PathError, at};
use crate::workspace::ImageInfo;

/// Why a stage's root could not be made.
#[derive(Debug, thiserror::Error)]
pub enum RootfsError {
    #[error(transparent)]
    Io(#[from] PathError),
    #[error(transparent)]
    Unpack(#[from] ImageUnpackError),
}

pub struct StageRoot {
    pub rootfs: PathBuf,
    dir: PathBuf,
    mounted: bool,
}

/// The unpacked tree of an image, made once per digest under `cache`.
pub fn cached_tree(cache: &Path, info: &ImageInfo) -> Result<PathBuf, RootfsError> {
    let hex = info.digest.trim_start_matches("sha256:");
    let tree = cache.join(hex);
    if tree.join(".complete").exists() {
        return Ok(tree.join("tree"));
    }
    // Unpacked beside and renamed into place, so a half-written tree is never used.
    let tmp = cache.join(format!("{hex}.{}.partial", std::process::id()));
    let _ = fs::remove_dir_all(&tmp);
    crate::fs::unpack::unpack_image(info, &tmp.join("tree"))?;
    fs::write(tmp.join(".complete"), b"").map_err(at(&tmp))?;
    if fs::rename(&tmp, &tree).is_err() {
        // Another stage made it first.
        let _ = fs::remove_dir_all(&tmp);
    }
    Ok(tree.join("tree"))
}

impl StageRoot {
    /// A root for a stage container in `dir`: an overlay over the base's cached tree, an
    /// unpacked copy when overlays are not available, an empty directory for scratch.
    pub fn prepare(
        cache: &Path,
        dir: &Path,
        base: Option<&ImageInfo>,
    ) -> Result<Self, RootfsError> {
        let rootfs = dir.join("rootfs");
        fs::create_dir_all(&rootfs).map_err(at(&rootfs))?;
        let mut root = StageRoot {
            rootfs,
            dir: dir.to_path_buf(),
            mounted: false,
        };
        let Some(info) = base else { return Ok(root) };
        let lower = cached_tree(cache, info)?;
        let (upper, work) = (dir.join("upper"), dir.join("work"));
        fs::create_dir_all(&upper).map_err(at(&upper))?;
        fs::create_dir_all(&work).map_err(at(&work))?;
        let opts = format!(
            "lowerdir={},upperdir={},workdir={}",
            lower.display(),
            upper.display(),
            work.display()
        );
        match nix::mount::mount(
            Some("overlay"),
            &root.rootfs,
            Some("overlay"),
            MsFlags::empty(),
            Some(opts.as_str()),
        ) {
            Ok(()) => root.mounted = true,
            Err(e) => {
                eprintln!(
                    "overlay mount failed ({e}); unpacking {} instead",
                    info.reference
                );
                crate::fs::unpack::unpack_image(info, &root.rootfs)?;
            }
        }
        Ok(root)
    }

    /// Unmounts and removes everything of the stage's root.
    pub fn release(self) {
        if self.mounted {
            let _ = nix::mount::umount2(&self.rootfs, MntFlags::MNT_DETACH);
        }
        let _ = fs::remove_dir_all(&self.dir);
    }
}
