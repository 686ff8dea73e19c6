//! The root filesystem a local stage container starts from. A base image is unpacked once per
//! digest into the state directory (`base-trees/`) and each stage gets an overlay of it (the
//! unpacked tree read-only below, the container's own writable directory above), as a
//! kubelet's snapshotter gives a pod; where overlayfs is not available the image is unpacked
//! into the container's directory instead.
//!
//! Every directory here is in the state directory, which is root's alone (0700) and which no
//! container can write: the `rootfs`, `upper` and `work` of a container live in its
//! [`crate::local::state::ContainerDir`], made fresh for it, never in the workspace (C1). The
//! setuid files and device nodes of untrusted base images stay beneath that 0700 directory,
//! out of reach of the host's other users (H6).

use std::fs;
use std::path::{Path, PathBuf};

use nix::mount::{MntFlags, MsFlags};

use crate::fs::unpack::ImageUnpackError;
use crate::fs::{PathError, at};
use crate::registry::digest::{DigestError, sha256_hex};
use crate::workspace::ImageInfo;

/// Why a stage's root could not be made.
#[derive(Debug, thiserror::Error)]
pub enum RootfsError {
    #[error(transparent)]
    Io(#[from] PathError),
    #[error(transparent)]
    Unpack(#[from] ImageUnpackError),
    #[error("{image}: {source}")]
    Digest {
        image: String,
        #[source]
        source: DigestError,
    },
}

/// A container's root: unmounted when dropped (the container directory removes the rest).
pub struct StageRoot {
    pub rootfs: PathBuf,
    mounted: bool,
}

/// The unpacked tree of an image, made once per digest under `cache`.
pub fn cached_tree(cache: &Path, info: &ImageInfo) -> Result<PathBuf, RootfsError> {
    let hex = sha256_hex(&info.digest).map_err(|source| RootfsError::Digest {
        image: info.reference.clone(),
        source,
    })?;
    let tree = cache.join(hex);
    if tree.join(".complete").exists() {
        return Ok(tree.join("tree"));
    }
    // Unpacked beside and renamed into place, so a half-written tree is never used; a fresh
    // name for each try (stages of one build may unpack the same base at once), removed on
    // every error path.
    let tmp = tempfile::Builder::new()
        .prefix(&format!("{hex}."))
        .suffix(".partial")
        .tempdir_in(cache)
        .map_err(at(cache))?;
    crate::fs::unpack::unpack_image(info, &tmp.path().join("tree"))?;
    fs::write(tmp.path().join(".complete"), b"").map_err(at(tmp.path()))?;
    // When another stage made it first, the rename fails and `tmp` goes.
    let _ = fs::rename(tmp.path(), &tree);
    Ok(tree.join("tree"))
}

impl StageRoot {
    /// A root for a stage container in its fresh directory `dir`: an overlay over the base's
    /// cached tree, an unpacked copy when overlays are not available, an empty directory for
    /// scratch.
    pub fn prepare(
        cache: &Path,
        dir: &Path,
        base: Option<&ImageInfo>,
    ) -> Result<Self, RootfsError> {
        let rootfs = dir.join("rootfs");
        fs::create_dir(&rootfs).map_err(at(&rootfs))?;
        let mut root = StageRoot {
            rootfs,
            mounted: false,
        };
        let Some(info) = base else { return Ok(root) };
        let lower = cached_tree(cache, info)?;
        let (upper, work) = (dir.join("upper"), dir.join("work"));
        fs::create_dir(&upper).map_err(at(&upper))?;
        fs::create_dir(&work).map_err(at(&work))?;
        let opts = format!(
            "lowerdir={},upperdir={},workdir={}",
            lower.display(),
            upper.display(),
            work.display()
        );
        let mount = |opts: &str| {
            nix::mount::mount(
                Some("overlay"),
                &root.rootfs,
                Some("overlay"),
                MsFlags::empty(),
                Some(opts),
            )
        };
        // `volatile` (Linux 5.10): no sync of the upper file system, neither for a RUN's
        // fsync nor when the overlay goes. Without it unmounting a stage's root writes every
        // dirty page of the host's file system to disk (what the stage wrote, and anything
        // else's), though the tree is read once and deleted; a build that dies with the host
        // is lost either way. Older kernels refuse the option: mounted without it.
        match mount(&format!("{opts},volatile")).or_else(|_| mount(&opts)) {
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
}

impl Drop for StageRoot {
    fn drop(&mut self) {
        if self.mounted {
            let _ = nix::mount::umount2(&self.rootfs, MntFlags::MNT_DETACH);
        }
    }
}
