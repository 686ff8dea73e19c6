//! The state directory of local builds and the host-side directories of stage containers.
//!
//! ```text
//! <state>/                      0700: root's alone (the trees below hold untrusted images'
//!                               setuid files and device nodes, and secret copies)
//!   blobs/                      fetched blobs, by registry and repository, then digest
//!   base-trees/<hex>/tree       unpacked base images, by digest (overlay lower layers)
//!   builds/<build>/             workspaces (see crate::workspace)
//!   containers/<build>-<N>/     one stage container's: rootfs, upper, work, bundle/, secrets/
//!   run-cache/                  RUN --mount=type=cache directories
//! ```
//!
//! No container can write anything here but its own root (the overlay over `upper`), the
//! cache directories and, through the workspace, its own stages' outputs: a container
//! directory is made by the host, fresh, where no container can reach it, so a RUN step cannot
//! plant a symlink the host then mounts or writes through (C1).

use std::fs::{self, DirBuilder, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// The state directory, made (or made again) root's alone.
pub struct StateDir {
    root: PathBuf,
}

const SUBDIRS: [&str; 5] = ["blobs", "base-trees", "builds", "containers", "run-cache"];

impl StateDir {
    /// Makes `root` and its directories, each 0700 (also when an older Slipway made them
    /// 0755).
    pub fn open(root: &Path) -> io::Result<Self> {
        for dir in std::iter::once(root.to_path_buf()).chain(SUBDIRS.iter().map(|d| root.join(d))) {
            DirBuilder::new().recursive(true).mode(0o700).create(&dir)?;
            fs::set_permissions(&dir, fs::Permissions::from_mode(0o700))?;
        }
        Ok(StateDir {
            root: root.to_path_buf(),
        })
    }
    pub fn root(&self) -> &Path {
        &self.root
    }
    pub fn blobs(&self) -> PathBuf {
        self.root.join("blobs")
    }
    pub fn base_trees(&self) -> PathBuf {
        self.root.join("base-trees")
    }
    pub fn builds(&self) -> PathBuf {
        self.root.join("builds")
    }
    pub fn containers(&self) -> PathBuf {
        self.root.join("containers")
    }
    pub fn run_cache(&self) -> PathBuf {
        self.root.join("run-cache")
    }
}

/// One stage container's host-side directory, `<state>/containers/<build>-<N>`: made fresh
/// (it must not exist), 0700, removed with everything in it when dropped.
#[derive(Debug)]
pub struct ContainerDir {
    path: PathBuf,
}

impl ContainerDir {
    pub fn create(state: &StateDir, build: &str, index: usize) -> io::Result<Self> {
        let path = state.containers().join(format!("{build}-{index}"));
        DirBuilder::new().mode(0o700).create(&path)?;
        Ok(ContainerDir { path })
    }
    pub fn path(&self) -> &Path {
        &self.path
    }
    /// The runc bundle (`config.json`).
    pub fn bundle(&self) -> PathBuf {
        self.path.join("bundle")
    }
}

impl Drop for ContainerDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.path);
    }
}

/// A secret id that can be a file name: not empty, no `/`, not `.` or `..`, no NUL.
pub fn valid_secret_id(id: &str) -> bool {
    !id.is_empty() && id != "." && id != ".." && !id.contains(['/', '\0'])
}

/// The secrets one container may read, copied into a directory of its own (0700, files
/// 0600): only those `wanted` (the ids its chain's RUN steps mount). Removed when dropped,
/// whatever way the container's run ends.
#[derive(Debug)]
pub struct SecretCopies {
    dir: PathBuf,
}

impl SecretCopies {
    pub fn write(dir: PathBuf, wanted: &[String], all: &[(String, Vec<u8>)]) -> io::Result<Self> {
        DirBuilder::new().mode(0o700).create(&dir)?;
        // Made before the first copy, so a failed copy is removed too.
        let copies = SecretCopies { dir };
        for (id, data) in all.iter().filter(|(id, _)| wanted.contains(id)) {
            if !valid_secret_id(id) {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("secret id {id:?} is not a file name"),
                ));
            }
            OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(copies.dir.join(id))?
                .write_all(data)?;
        }
        Ok(copies)
    }
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

impl Drop for SecretCopies {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.dir);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(p: &Path) -> u32 {
        fs::metadata(p).expect("stat").permissions().mode() & 0o7777
    }

    #[test]
    fn the_state_directory_is_roots_alone() {
        let d = tempfile::tempdir().expect("tmp");
        let root = d.path().join("state");
        fs::create_dir_all(root.join("base-trees")).expect("mkdir");
        fs::set_permissions(&root, fs::Permissions::from_mode(0o755)).expect("chmod");
        fs::set_permissions(root.join("base-trees"), fs::Permissions::from_mode(0o755))
            .expect("chmod");
        let s = StateDir::open(&root).expect("open");
        assert_eq!(mode(s.root()), 0o700);
        for p in [
            s.blobs(),
            s.base_trees(),
            s.builds(),
            s.containers(),
            s.run_cache(),
        ] {
            assert_eq!(mode(&p), 0o700, "{}", p.display());
        }
    }

    #[test]
    fn a_container_directory_is_fresh_private_and_removed() {
        let d = tempfile::tempdir().expect("tmp");
        let s = StateDir::open(d.path()).expect("open");
        let c = ContainerDir::create(&s, "1-2", 3).expect("create");
        let path = c.path().to_path_buf();
        assert_eq!(path, s.containers().join("1-2-3"));
        assert_eq!(mode(&path), 0o700);
        // One that is there already (planted or left over) is never reused.
        assert!(ContainerDir::create(&s, "1-2", 3).is_err());
        fs::create_dir_all(c.bundle()).expect("mkdir");
        drop(c);
        assert!(!path.exists());
    }

    #[test]
    fn a_container_gets_only_its_secrets_and_they_go() {
        let d = tempfile::tempdir().expect("tmp");
        let all = vec![
            ("npm".to_string(), b"npm-token".to_vec()),
            ("aws".to_string(), b"aws-key".to_vec()),
        ];
        let dir = d.path().join("secrets");
        let copies =
            SecretCopies::write(dir.clone(), &["npm".into(), "gone".into()], &all).expect("write");
        assert_eq!(mode(copies.dir()), 0o700);
        assert_eq!(fs::read(dir.join("npm")).expect("npm"), b"npm-token");
        assert_eq!(mode(&dir.join("npm")), 0o600);
        assert!(!dir.join("aws").exists());
        drop(copies);
        assert!(!dir.exists());

        // A bad id fails, and what was written is removed.
        let bad = vec![
            ("ok".to_string(), b"x".to_vec()),
            ("../escape".to_string(), b"y".to_vec()),
        ];
        let e = SecretCopies::write(dir.clone(), &["ok".into(), "../escape".into()], &bad)
            .expect_err("refused");
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
        assert!(!dir.exists());
        assert!(!d.path().join("escape").exists());
        for id in ["", ".", "..", "a/b", "/abs", "nul\0"] {
            assert!(!valid_secret_id(id), "{id:?}");
        }
        assert!(valid_secret_id("npm.token-1"));
    }
}
