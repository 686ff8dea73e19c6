//! The files one RUN needs to see besides its tree: secret stand-ins, `#!` heredoc scripts,
//! tmpfs stand-ins and private copies of `rw` bind mounts. They live in directories made
//! fresh for that RUN alone and removed as soon as it ends ([`RunFiles::remove`], or on drop
//! for any early return), so no other RUN ever sees them, and never in the tree the RUN's
//! walk records (H3, M1 of SECURITY.md):
//!
//! - a stage rooted at `/`: small files (secrets, scripts) in `/dev/pipes` (where BuildKit
//!   puts heredoc scripts; `/dev` is the container's own tmpfs, a mount point the walk skips,
//!   so secrets are never on disk), large ones (tmpfs, `rw` copies) in
//!   `/.slipway/run-<step>-<nonce>` (the engine's folder, never walked);
//! - a FROM scratch chain rooted in a directory (RUN is chrooted there, so whatever it reaches
//!   must be inside): `<root>/.slipway-run-<step>-<nonce>`, removed before the walk.
//!
//! An earlier RUN (A2) may have planted a symlink anywhere it can write, so nothing here
//! follows one: the parent is opened `O_NOFOLLOW|O_DIRECTORY`, the fresh directory is made
//! with `mkdirat` (which fails if anything is at the name), and files are created relative to
//! it with `O_CREAT|O_EXCL|O_NOFOLLOW`.

use std::fs;
use std::io::{self, Write};
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use nix::fcntl::{OFlag, openat};
use nix::sys::stat::{Mode, fchmod, mkdirat};

use slipway_contract::pod::paths;

/// Which of a RUN's fresh directories a file goes in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Area {
    /// Secrets and scripts: a memory file system where there is one.
    Small,
    /// tmpfs stand-ins and `rw` bind copies: on disk.
    Large,
}

/// Where a fresh directory is made: `name` in `parent`; `replace` removes whatever an earlier
/// RUN left at the name first (`/dev/pipes` has a fixed name, the others a nonce).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Place {
    pub parent: PathBuf,
    pub name: String,
    pub replace: bool,
}

impl Place {
    pub fn path(&self) -> PathBuf {
        self.parent.join(&self.name)
    }
}

/// Where RUN step `step`'s small and large files go, for a stage rooted at `root`; `dev_tmpfs`:
/// `/dev` is a mount point of its own. `nonce` makes the names nobody can plant in advance.
pub fn places(root: &Path, dev_tmpfs: bool, step: usize, nonce: &str) -> (Place, Place) {
    let fresh = format!("run-{step}-{nonce}");
    if root != Path::new("/") {
        let p = Place {
            parent: root.to_path_buf(),
            name: format!(".slipway-{fresh}"),
            replace: false,
        };
        return (p.clone(), p);
    }
    let large = Place {
        parent: PathBuf::from(paths::ROOT),
        name: fresh,
        replace: false,
    };
    let small = if dev_tmpfs {
        Place {
            parent: PathBuf::from("/dev"),
            name: "pipes".into(),
            replace: true,
        }
    } else {
        large.clone()
    };
    (small, large)
}

/// A directory made for this RUN, held open.
#[derive(Debug)]
struct Fresh {
    path: PathBuf,
    fd: OwnedFd,
}

fn nix_io(e: nix::Error) -> io::Error {
    io::Error::from(e)
}

fn open_dir_at(dir: &impl std::os::fd::AsFd, name: &Path) -> io::Result<OwnedFd> {
    let flags = OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
    openat(dir, name, flags, Mode::empty()).map_err(nix_io)
}

/// Makes `place` fresh (mode 0711: RUN's user may reach the files it is given, not list
/// them) and opens it without following links.
fn make_fresh(place: &Place) -> io::Result<Fresh> {
    let flags = OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
    let parent = nix::fcntl::open(&place.parent, flags, Mode::empty()).map_err(|e| {
        io::Error::new(
            io::Error::from(e).kind(),
            format!("{}: {}", place.parent.display(), e.desc()),
        )
    })?;
    let path = place.path();
    if place.replace {
        match fs::symlink_metadata(&path) {
            Ok(m) if m.is_dir() => fs::remove_dir_all(&path)?,
            Ok(_) => fs::remove_file(&path)?,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
    }
    let name = Path::new(&place.name);
    mkdirat(&parent, name, Mode::from_bits_truncate(0o711)).map_err(|e| {
        io::Error::new(
            io::Error::from(e).kind(),
            format!("{}: {}", path.display(), e.desc()),
        )
    })?;
    let fd = open_dir_at(&parent, name)?;
    // mkdir's mode is masked by the umask; the mode is set, not hoped for.
    fchmod(&fd, Mode::from_bits_truncate(0o711)).map_err(nix_io)?;
    Ok(Fresh { path, fd })
}

/// The fresh directories of one RUN, made on first use.
#[derive(Debug)]
pub struct RunFiles {
    small: Place,
    large: Place,
    made: Vec<(Area, Fresh)>,
}

impl RunFiles {
    pub fn new(small: Place, large: Place) -> Self {
        RunFiles {
            small,
            large,
            made: Vec::new(),
        }
    }

    fn fresh(&mut self, area: Area) -> io::Result<&Fresh> {
        let place = match area {
            Area::Small => self.small.clone(),
            Area::Large => self.large.clone(),
        };
        // Both areas may be one place (a scratch root): one directory then.
        let at = self
            .made
            .iter()
            .position(|(a, f)| *a == area || f.path == place.path());
        let i = match at {
            Some(i) => i,
            None => {
                let f = make_fresh(&place)?;
                self.made.push((area, f));
                self.made.len() - 1
            }
        };
        Ok(&self.made[i].1)
    }

    /// The fresh directory of `area` (made now if it was not yet).
    pub fn dir(&mut self, area: Area) -> io::Result<PathBuf> {
        self.fresh(area).map(|f| f.path.clone())
    }

    /// Creates the new file `name` in `area` with `data`, its mode and owner; returns its
    /// path. It never replaces or writes through anything.
    pub fn write(
        &mut self,
        area: Area,
        name: &str,
        data: &[u8],
        mode: u32,
        (uid, gid): (u32, u32),
    ) -> io::Result<PathBuf> {
        check_name(name)?;
        let dir = self.fresh(area)?;
        let flags =
            OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
        let fd = openat(&dir.fd, name, flags, Mode::from_bits_truncate(0o600)).map_err(nix_io)?;
        let path = dir.path.join(name);
        let mut f = fs::File::from(fd);
        f.write_all(data)?;
        nix::unistd::fchown(&f, Some(uid.into()), Some(gid.into())).map_err(nix_io)?;
        // After chown, which may clear set-id bits.
        fchmod(&f, Mode::from_bits_truncate(mode)).map_err(nix_io)?;
        Ok(path)
    }

    /// Creates the new empty directory `name` in `area` (mode 0755, root's); returns its path.
    pub fn make_dir(&mut self, area: Area, name: &str) -> io::Result<PathBuf> {
        check_name(name)?;
        let dir = self.fresh(area)?;
        mkdirat(&dir.fd, name, Mode::from_bits_truncate(0o755)).map_err(nix_io)?;
        let fd = open_dir_at(&dir.fd, Path::new(name))?;
        fchmod(&fd, Mode::from_bits_truncate(0o755)).map_err(nix_io)?;
        Ok(dir.path.join(name))
    }

    /// Removes every directory made, with what RUN left in them. Links are removed, never
    /// followed. The first error is returned after trying them all.
    pub fn remove(mut self) -> io::Result<()> {
        self.remove_all()
    }

    fn remove_all(&mut self) -> io::Result<()> {
        let mut first = None;
        for (_, f) in self.made.drain(..) {
            drop(f.fd);
            if let Err(e) = remove_any(&f.path) {
                first.get_or_insert(io::Error::new(
                    e.kind(),
                    format!("{}: {e}", f.path.display()),
                ));
            }
        }
        first.map_or(Ok(()), Err)
    }
}

impl Drop for RunFiles {
    fn drop(&mut self) {
        // An early return (a failed mount, a failed RUN): the files still go. Errors have
        // no one to go to here; the stage is failing already.
        let _ = self.remove_all();
    }
}

fn remove_any(p: &Path) -> io::Result<()> {
    match fs::symlink_metadata(p) {
        Ok(m) if m.is_dir() => fs::remove_dir_all(p),
        Ok(_) => fs::remove_file(p),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

/// One plain file name: not empty, not `.` or `..`, no `/`.
fn check_name(name: &str) -> io::Result<()> {
    let b = name.as_bytes();
    if b.is_empty() || b == b"." || b == b".." || b.contains(&b'/') {
        let msg = format!("{name:?} is not a file name");
        return Err(io::Error::new(io::ErrorKind::InvalidInput, msg));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{MetadataExt, PermissionsExt, symlink};

    fn me() -> (u32, u32) {
        (
            nix::unistd::getuid().as_raw(),
            nix::unistd::getgid().as_raw(),
        )
    }

    fn place(parent: &Path, name: &str, replace: bool) -> Place {
        Place {
            parent: parent.to_path_buf(),
            name: name.into(),
            replace,
        }
    }

    #[test]
    fn places_keep_run_files_out_of_the_walked_tree() {
        let (small, large) = places(Path::new("/"), true, 3, "n1");
        assert_eq!(small.path(), Path::new("/dev/pipes"));
        assert!(small.replace);
        assert_eq!(large.path(), Path::new("/.slipway/run-3-n1"));
        assert!(!large.replace);
        let (small, large) = places(Path::new("/"), false, 3, "n1");
        assert_eq!(small, large);
        // A chroot root: inside it (RUN must reach them), under a name made for this RUN.
        let (small, large) = places(Path::new("/ws/stages/1/rootfs"), true, 2, "n2");
        assert_eq!(small, large);
        assert_eq!(
            small.path(),
            Path::new("/ws/stages/1/rootfs/.slipway-run-2-n2")
        );
    }

    #[test]
    fn files_are_made_fresh_and_removed() {
        let d = tempfile::tempdir().expect("tmp");
        let mut rf = RunFiles::new(
            place(d.path(), "small", true),
            place(d.path(), "large", false),
        );
        let secret = rf
            .write(Area::Small, "secret-0-tok", b"s3cr3t", 0o440, me())
            .expect("write");
        assert_eq!(fs::read(&secret).expect("read"), b"s3cr3t");
        let m = fs::metadata(&secret).expect("meta");
        assert_eq!(m.permissions().mode() & 0o7777, 0o440);
        assert_eq!(
            fs::metadata(d.path().join("small"))
                .expect("dir")
                .permissions()
                .mode()
                & 0o7777,
            0o711
        );
        let tmp = rf.make_dir(Area::Large, "tmpfs-1").expect("mkdir");
        assert!(tmp.is_dir());
        // The same name twice is refused, never overwritten.
        let again = rf.write(Area::Small, "secret-0-tok", b"x", 0o400, me());
        assert_eq!(
            again.expect_err("exists").kind(),
            io::ErrorKind::AlreadyExists
        );
        for bad in ["", ".", "..", "a/b"] {
            assert!(rf.write(Area::Small, bad, b"x", 0o400, me()).is_err());
        }
        rf.remove().expect("remove");
        assert!(!d.path().join("small").exists());
        assert!(!d.path().join("large").exists());
    }

    #[test]
    fn planted_links_are_never_followed() {
        let d = tempfile::tempdir().expect("tmp");
        let tree = d.path().join("tree");
        fs::create_dir(&tree).expect("mkdir");
        // An earlier RUN made the fixed-name directory a link into the tree.
        symlink(&tree, d.path().join("pipes")).expect("ln");
        let mut rf = RunFiles::new(
            place(d.path(), "pipes", true),
            place(d.path(), "large", false),
        );
        let s = rf
            .write(Area::Small, "secret-0-tok", b"s", 0o400, me())
            .expect("write");
        assert_eq!(s, d.path().join("pipes/secret-0-tok"));
        assert!(fs::read_dir(&tree).expect("tree").next().is_none());
        // A link at a nonce name (it cannot be guessed; if it were, mkdir fails).
        symlink(&tree, d.path().join("large")).expect("ln");
        assert!(rf.make_dir(Area::Large, "tmpfs-0").is_err());
        // A link as the parent itself is refused.
        let linked = d.path().join("linked-parent");
        symlink(&tree, &linked).expect("ln");
        let mut rf2 = RunFiles::new(place(&linked, "x", false), place(&linked, "x", false));
        assert!(rf2.dir(Area::Small).is_err());
        drop(rf);
        assert!(!d.path().join("pipes").exists());
        assert!(fs::read_dir(&tree).expect("tree").next().is_none());
    }

    #[test]
    fn dropping_removes_too() {
        let d = tempfile::tempdir().expect("tmp");
        {
            let mut rf = RunFiles::new(place(d.path(), "r", false), place(d.path(), "r", false));
            rf.write(Area::Small, "s", b"x", 0o400, me())
                .expect("write");
            // One place for both areas: one directory.
            assert_eq!(
                rf.dir(Area::Large).expect("dir"),
                rf.dir(Area::Small).expect("dir")
            );
            let ino = fs::metadata(d.path().join("r")).expect("dir").ino();
            assert!(ino > 0);
        }
        assert!(!d.path().join("r").exists());
    }
}
