//! Putting a RUN's `--mount`s in place ([`mounts`] decides which source each takes) and
//! undoing them: one `Engine` method per kind prepares the source, [`Engine::unmount`] takes
//! the links away, checks that read-only binds were left as they were, and lets go of cache
//! locks. Secret stand-ins, tmpfs directories and `rw` copies live in the RUN's own files
//! ([`RunFiles`]), removed with them.

use std::collections::BTreeSet;
use std::ffi::OsStr;
use std::fs;
use std::io;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg, OFlag};

use slipway_frontend::dockerfile::instructions::{self, Command, Run, Sharing};

use crate::fs::copy::{self as fscopy, CopyOptions, Owner, Written};
use crate::layer::snapshot::{self, Snapshot};
use crate::stage::mounts::{
    self, MountSetupError, MountSource, Placed, SecretMount, mount_source, mount_target,
};
use crate::stage::run::visible_path;
use crate::stage::run_files::{Area, RunFiles};
use crate::stage::{Engine, StageError};

/// A read-only bind: its source as it was before the RUN.
#[derive(Debug)]
pub struct ReadOnly {
    target: String,
    source: PathBuf,
    before: Snapshot,
}

/// What a RUN's mounts hold until it ends.
#[derive(Debug, Default)]
pub struct Mounted {
    placed: Vec<Placed>,
    read_only: Vec<ReadOnly>,
    /// Cache locks (`sharing=locked`, `private`), let go when dropped.
    locks: Vec<Flock<fs::File>>,
    /// Secrets given as variables (`env=`).
    pub secret_env: Vec<(String, String)>,
}

/// The state of a bind source: the path itself and, for a directory, all under it.
fn fingerprint(source: &Path, threads: usize) -> io::Result<Snapshot> {
    let top = snapshot::walk_one(source)?;
    let mut s = if source.is_dir() {
        snapshot::walk(source, &BTreeSet::new(), threads)?
    } else {
        Snapshot::default()
    };
    s.entries.insert(Default::default(), top);
    Ok(s)
}

/// A path under `target` that differs between two fingerprints: the first changed entry
/// that is not just the parent of another change (changes come parents first, each
/// directory right before its contents), else the target itself.
fn first_change(target: &str, before: &Snapshot, after: &Snapshot) -> Option<String> {
    let top = OsStr::new("");
    let rest = |s: &Snapshot| {
        let mut s = s.clone();
        s.entries.remove(top);
        s
    };
    let changes = snapshot::diff(&rest(before), &rest(after));
    let leaf = changes.iter().enumerate().find(|(i, c)| {
        changes
            .get(i + 1)
            .is_none_or(|next| !next.path().starts_with(c.path()))
    });
    if let Some((_, c)) = leaf {
        let t = target.trim_end_matches('/');
        return Some(format!("{t}/{}", c.path().display()));
    }
    (before.entries.get(top) != after.entries.get(top)).then(|| target.to_string())
}

impl Engine<'_> {
    /// Puts RUN's mounts in place (one function per kind) and returns what to undo.
    /// On an error, what was already placed is in `mounted` for [`Self::unmount`].
    pub(super) fn place_mounts(
        &mut self,
        cmd: &Command,
        run: &Run,
        files: &mut RunFiles,
        mounted: &mut Mounted,
    ) -> Result<(), StageError> {
        for (i, spec) in run.mounts.iter().enumerate() {
            let vars = &self.vars;
            let lex = self.lex;
            let m = instructions::parse_mount_with(spec, &mut |v| lex.process_word(v, vars))
                .map_err(|e| self.fail(cmd, MountSetupError::Parse(e)))?;
            let chroot = self.root != Path::new("/");
            let source = mount_source(&m, chroot, i).map_err(|e| self.fail(cmd, e))?;
            if let MountSource::Secret(s) = &source {
                mounted
                    .placed
                    .extend(self.place_secret(cmd, s, files, &mut mounted.secret_env)?);
                continue;
            }
            let target = mount_target(m.target.as_deref(), &self.image.config.working_dir)
                .map_err(|e| self.fail(cmd, e))?;
            let path = match source {
                MountSource::Bind {
                    from,
                    path,
                    read_only,
                } => {
                    let src = self.bind_source(cmd, from.as_deref(), &path)?;
                    if read_only {
                        let before = fingerprint(&src, self.threads).map_err(|source| {
                            let target = target.clone();
                            self.fail(cmd, MountSetupError::ReadOnlyCheck { target, source })
                        })?;
                        mounted.read_only.push(ReadOnly {
                            target: target.clone(),
                            source: src.clone(),
                            before,
                        });
                        src
                    } else {
                        self.private_copy(cmd, &src, &target, i, files)?
                    }
                }
                MountSource::Cache {
                    dir,
                    mode,
                    uid,
                    gid,
                    sharing,
                } => {
                    let d = self.cache_source(cmd, &dir, mode, (uid, gid))?;
                    match self.cache_lock(cmd, &d, sharing)? {
                        Some(lock) => {
                            mounted.locks.push(lock);
                            d
                        }
                        // sharing=private, and another RUN has the cache: one of its own.
                        None if sharing == Sharing::Private => files
                            .make_dir(Area::Large, &format!("cache-{i}"))
                            .map_err(|e| self.fail(cmd, MountSetupError::Prepare(e)))?,
                        None => d,
                    }
                }
                MountSource::Tmpfs { dir } => files
                    .make_dir(Area::Large, &dir)
                    .map_err(|e| self.fail(cmd, MountSetupError::Prepare(e)))?,
                MountSource::Secret(_) => continue,
            };
            let link_to = PathBuf::from(visible_path(&self.root, &path));
            let placed = mounts::place(&self.root, &target, &link_to)
                .map_err(|source| self.fail(cmd, MountSetupError::Target { target, source }))?;
            mounted.placed.push(placed);
        }
        Ok(())
    }

    /// Undoes [`Self::place_mounts`]: every link goes (all are tried; the first error is
    /// returned), then each read-only bind is checked unchanged, then the locks go.
    pub(super) fn unmount(&self, cmd: &Command, mounted: Mounted) -> Result<(), StageError> {
        let mut first = None;
        for p in mounted.placed {
            if let Err(e) = mounts::remove(p) {
                first.get_or_insert(e);
            }
        }
        if let Some(e) = first {
            return Err(self.fail(cmd, crate::stage::run::RunError::Unmount(e)));
        }
        for ro in mounted.read_only {
            let after = fingerprint(&ro.source, self.threads).map_err(|source| {
                let target = ro.target.clone();
                self.fail(cmd, MountSetupError::ReadOnlyCheck { target, source })
            })?;
            if let Some(path) = first_change(&ro.target, &ro.before, &after) {
                let target = ro.target.clone();
                return Err(self.fail(cmd, MountSetupError::ReadOnlyWritten { target, path }));
            }
        }
        drop(mounted.locks);
        Ok(())
    }

    /// A bind mount's source: `path` in the context, or in the stage or image `from` names.
    fn bind_source(
        &mut self,
        cmd: &Command,
        from: Option<&str>,
        path: &str,
    ) -> Result<PathBuf, StageError> {
        let src_root = match from {
            None => self.ws.context(),
            Some(from) => self.copy_from_root(cmd, from, true)?,
        };
        crate::fs::root::resolve_in_root(&src_root, path).map_err(|source| {
            let path = path.to_string();
            self.fail(cmd, MountSetupError::Source { path, source })
        })
    }

    /// An `rw` bind's source, copied among the RUN's files: BuildKit discards what a RUN
    /// writes to it, and a link would write through to the context or a shared tree.
    fn private_copy(
        &self,
        cmd: &Command,
        src: &Path,
        target: &str,
        index: usize,
        files: &mut RunFiles,
    ) -> Result<PathBuf, StageError> {
        let copy = |e| {
            let target = target.to_string();
            self.fail(cmd, MountSetupError::Copy { target, source: e })
        };
        let dir = files.dir(Area::Large).map_err(copy)?;
        let name = format!("bind-{index}");
        let meta = fs::symlink_metadata(src).map_err(copy)?;
        let opts = CopyOptions {
            owner: Owner::Keep,
            chmod: None,
            ignore: None,
        };
        fscopy::copy_source(
            &dir,
            src,
            meta.is_dir(),
            &format!("/{name}"),
            &opts,
            &mut Written::default(),
        )
        .map_err(copy)?;
        Ok(dir.join(name))
    }

    /// A cache mount's directory, made with its mode and owner the first time. A RUN may
    /// have put a link where a cache was: that is refused, not followed.
    fn cache_source(
        &self,
        cmd: &Command,
        name: &str,
        mode: u32,
        (uid, gid): (u32, u32),
    ) -> Result<PathBuf, StageError> {
        let prepare = |e| self.fail(cmd, MountSetupError::Prepare(e));
        let dir = self.cache_dir.join(name);
        match fs::symlink_metadata(&dir) {
            Ok(m) if m.is_dir() => {}
            Ok(_) => {
                let msg = format!("{}: not a directory", dir.display());
                return Err(prepare(io::Error::other(msg)));
            }
            Err(_) => {
                fs::create_dir_all(&dir).map_err(prepare)?;
                let _ = fs::set_permissions(&dir, fs::Permissions::from_mode(mode));
                let _ = nix::unistd::chown(&dir, Some(uid.into()), Some(gid.into()));
            }
        }
        Ok(dir)
    }

    /// `sharing=locked`: waits for the cache; `private`: takes it if free (`None` if not);
    /// `shared`: no lock.
    fn cache_lock(
        &self,
        cmd: &Command,
        dir: &Path,
        sharing: Sharing,
    ) -> Result<Option<Flock<fs::File>>, StageError> {
        let how = match sharing {
            Sharing::Shared => return Ok(None),
            Sharing::Locked => FlockArg::LockExclusive,
            Sharing::Private => FlockArg::LockExclusiveNonblock,
        };
        let lock = |source: io::Error| {
            let dir = dir.display().to_string();
            self.fail(
                cmd,
                MountSetupError::Lock {
                    sharing,
                    dir,
                    source,
                },
            )
        };
        let f = fs::OpenOptions::new()
            .read(true)
            .custom_flags((OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW).bits())
            .open(dir)
            .map_err(lock)?;
        match Flock::lock(f, how) {
            Ok(l) => Ok(Some(l)),
            Err((_, Errno::EWOULDBLOCK)) if sharing == Sharing::Private => Ok(None),
            Err((_, e)) => Err(lock(io::Error::from(e))),
        }
    }

    /// A secret: its value into `secret_env`, and/or a copy among the RUN's own files linked
    /// at its target. `None` when nothing is linked (a missing optional secret, an env-only
    /// one).
    fn place_secret(
        &self,
        cmd: &Command,
        s: &SecretMount,
        files: &mut RunFiles,
        secret_env: &mut Vec<(String, String)>,
    ) -> Result<Option<Placed>, StageError> {
        let data = match fs::read(self.secrets_dir.join(&s.id)) {
            Ok(d) => d,
            Err(_) if s.required => {
                return Err(self.fail(cmd, MountSetupError::SecretRequired(s.id.clone())));
            }
            Err(_) => return Ok(None),
        };
        if let Some(var) = &s.env {
            secret_env.push((var.clone(), String::from_utf8_lossy(&data).into_owned()));
        }
        let Some(f) = &s.file else { return Ok(None) };
        let file = files
            .write(Area::Small, &f.name, &data, f.mode, (f.uid, f.gid))
            .map_err(|e| self.fail(cmd, MountSetupError::Prepare(e)))?;
        let link_to = PathBuf::from(visible_path(&self.root, &file));
        mounts::place(&self.root, &f.target, &link_to)
            .map(Some)
            .map_err(|source| {
                let target = f.target.clone();
                self.fail(cmd, MountSetupError::Target { target, source })
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn read_only_sources_are_fingerprinted() {
        let d = tempfile::tempdir().expect("tmp");
        let src = d.path().join("src");
        fs::create_dir_all(src.join("pkg")).expect("mkdir");
        fs::write(src.join("pkg/a.go"), "package a").expect("w");
        let file = d.path().join("go.sum");
        fs::write(&file, "sum").expect("w");
        let before = fingerprint(&src, 2).expect("fp");
        let before_file = fingerprint(&file, 2).expect("fp");
        assert_eq!(
            first_change("/src", &before, &fingerprint(&src, 2).expect("fp")),
            None
        );

        std::thread::sleep(std::time::Duration::from_millis(20));
        fs::write(src.join("pkg/a.go"), "package evil").expect("w");
        assert_eq!(
            first_change("/src/", &before, &fingerprint(&src, 2).expect("fp")),
            Some("/src/pkg/a.go".into())
        );
        fs::write(&file, "changed").expect("w");
        assert_eq!(
            first_change("/go.sum", &before_file, &fingerprint(&file, 2).expect("fp")),
            Some("/go.sum".into())
        );
        let e = MountSetupError::ReadOnlyWritten {
            target: "/src".into(),
            path: "/src/pkg/a.go".into(),
        };
        assert_eq!(
            e.to_string(),
            "--mount target /src is read-only (add rw to write; the writes are then discarded \
             after the RUN): the RUN changed /src/pkg/a.go"
        );
    }
}
