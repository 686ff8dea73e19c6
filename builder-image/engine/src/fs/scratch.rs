//! A directory made inside a stage's root for one `COPY --from`: the stage's exports are
//! unpacked there and their files renamed into place, so each byte is written once. The
//! workspace is another file system (a volume, a bind mount), where an unpacked copy has to be
//! copied again byte by byte.
//!
//! The name carries 64 random bits, chosen after the exports were written and after every
//! RUN before the COPY has ended (nothing a RUN starts outlives it): neither the image nor the
//! exports can name it, so no destination of the copy falls inside it. The root's walk leaves
//! the root directory itself out, and an overlay keeps nothing of a directory made and removed
//! in its upper layer, so once removed it leaves no trace in a layer.

use std::collections::hash_map::RandomState;
use std::fs;
use std::hash::{BuildHasher, Hasher};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use crate::fs::{PathError, at};

/// A scratch directory under a stage's root; removed by [`Scratch::remove`], or when dropped
/// (an error path).
#[derive(Debug)]
pub struct Scratch {
    path: Option<PathBuf>,
}

impl Scratch {
    /// Makes `ROOT/.slipway-LABEL-RANDOM`, mode 0700. `create_dir` fails on anything already
    /// at that name, a symlink included, so it is always a new, real directory.
    pub fn new(root: &Path, label: &str) -> Result<Scratch, PathError> {
        // RandomState's keys are random per process: a cheap unpredictable name, no new crate.
        let n = RandomState::new().build_hasher().finish();
        let path = root.join(format!(".slipway-{label}-{n:016x}"));
        fs::create_dir(&path).map_err(at(&path))?;
        let dir = Scratch { path: Some(path) };
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o700))
            .map_err(at(dir.path()))?;
        Ok(dir)
    }

    pub fn path(&self) -> &Path {
        self.path.as_deref().unwrap_or(Path::new(""))
    }

    /// Removes it, reporting a failure: a scratch left in the tree would end up in the next
    /// layer.
    pub fn remove(mut self) -> Result<(), PathError> {
        match self.path.take() {
            Some(p) => fs::remove_dir_all(&p).map_err(at(p)),
            None => Ok(()),
        }
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if let Some(p) = self.path.take() {
            let _ = fs::remove_dir_all(p);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_scratch_is_a_new_private_directory_removed_afterwards() {
        let d = tempfile::tempdir().expect("tmp");
        let s = Scratch::new(d.path(), "from-1").expect("scratch");
        let m = fs::symlink_metadata(s.path()).expect("stat");
        assert!(m.is_dir());
        assert_eq!(m.permissions().mode() & 0o7777, 0o700);
        let name = s
            .path()
            .file_name()
            .expect("name")
            .to_string_lossy()
            .into_owned();
        assert!(
            name.starts_with(".slipway-from-1-") && name.len() == ".slipway-from-1-".len() + 16
        );
        fs::create_dir_all(s.path().join("a/b")).expect("mkdir");
        fs::write(s.path().join("a/b/f"), "x").expect("w");
        let p = s.path().to_path_buf();
        s.remove().expect("remove");
        assert!(fs::symlink_metadata(&p).is_err());
        // Dropped without remove (an error path): gone too.
        let s = Scratch::new(d.path(), "from-1").expect("scratch");
        let p = s.path().to_path_buf();
        drop(s);
        assert!(fs::symlink_metadata(&p).is_err());
        assert_eq!(fs::read_dir(d.path()).expect("ls").count(), 0);
    }

    #[test]
    fn two_scratches_never_share_a_name() {
        let d = tempfile::tempdir().expect("tmp");
        let a = Scratch::new(d.path(), "x").expect("a");
        let b = Scratch::new(d.path(), "x").expect("b");
        assert_ne!(a.path(), b.path());
    }
}
