//! `RUN --mount` without mount(2). Stage pods get no CAP_SYS_ADMIN, so the engine cannot bind
//! or mount tmpfs; instead it puts a symlink at the target that leads to the source (a stage's
//! export, the context, a cache directory kept outside the tree, an empty scratch directory, a
//! secret file outside the tree), and takes it away, with anything it moved aside put back,
//! before the tree is snapshotted. What RUN writes through the link never reaches the layer,
//! as with BuildKit's mounts. A program that inspects the target sees a symlink.
//!
//! Which source each mount kind uses is decided by [`mount_source`] from the parsed mount
//! alone; one `Engine` method per kind then prepares that source.

use std::fs;
use std::io;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::{Path, PathBuf};

use crate::fs::root::scoped_path;

use crate::stage::run::visible_path;
use crate::stage::{Engine, StageError, sanitize};
use slipway_frontend::dockerfile::instructions::{
    self, Command, Mount, MountError, MountKind, Run,
};

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

/// Why a `--mount` could not be put in place.
#[derive(Debug, thiserror::Error)]
pub enum MountSetupError {
    #[error("--mount: {0}")]
    Parse(#[source] MountError),
    #[error("--mount in a stage built FROM scratch is not supported")]
    FromScratch,
    #[error("--mount type=ssh is not supported")]
    Ssh,
    #[error("--mount source {path}: {source}")]
    Source {
        path: String,
        #[source]
        source: io::Error,
    },
    #[error("secret {0} is required but was not provided")]
    SecretRequired(String),
    /// Preparing a cache, tmpfs or secret directory or file (the I/O error alone, as it
    /// always read).
    #[error("{0}")]
    Prepare(#[source] io::Error),
    #[error("--mount needs a target")]
    NoTarget,
    #[error("--mount target {target}: {source}")]
    Target {
        target: String,
        #[source]
        source: io::Error,
    },
}

/// Where a mount's link leads, decided from the parsed mount alone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MountSource {
    /// `path` inside the context (`from` unset) or inside the tree `from` names.
    Bind {
        from: Option<String>,
        path: String,
    },
    /// A directory of the cache dir (named by [`cache_dir_name`]), made on first use.
    Cache {
        dir: String,
        mode: u32,
        uid: u32,
        gid: u32,
    },
    /// A fresh empty directory among the run files, named `dir`.
    Tmpfs {
        dir: String,
    },
    Secret(SecretMount),
}

/// A secret for one RUN: its value in `env`, and/or a file linked at a target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretMount {
    pub id: String,
    /// A missing secret fails the RUN (else the mount is left out).
    pub required: bool,
    pub env: Option<String>,
    /// `None` for a secret given as `env` only.
    pub file: Option<SecretFile>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretFile {
    /// The copy's file name among the run files.
    pub name: String,
    /// Where the link goes (`/run/secrets/<id>` by default).
    pub target: String,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
}

/// Where mount number `index` of RUN step `step` takes its source from. Only secrets work in
/// a stage rooted in a directory (`chroot`): a link there could not reach anything else.
pub fn mount_source(
    m: &Mount,
    chroot: bool,
    step: usize,
    index: usize,
) -> Result<MountSource, MountSetupError> {
    if chroot && m.kind != MountKind::Secret {
        return Err(MountSetupError::FromScratch);
    }
    let target = m.target.clone().unwrap_or_default();
    Ok(match m.kind {
        MountKind::Bind => MountSource::Bind {
            from: m.from.clone(),
            path: m.source.clone().unwrap_or_default(),
        },
        MountKind::Cache => MountSource::Cache {
            dir: cache_dir_name(m.id.as_deref().unwrap_or(&target)),
            mode: m.mode.unwrap_or(0o755),
            uid: m.uid.unwrap_or(0),
            gid: m.gid.unwrap_or(0),
        },
        MountKind::Tmpfs => MountSource::Tmpfs {
            dir: format!("tmpfs-{step}-{index}"),
        },
        MountKind::Secret => {
            let id = m.secret_id().unwrap_or_default().to_string();
            let file = (m.env.is_none() || m.target.is_some()).then(|| SecretFile {
                name: sanitize(&id),
                target: m
                    .target
                    .clone()
                    .unwrap_or_else(|| format!("/run/secrets/{id}")),
                mode: m.mode.unwrap_or(0o400),
                uid: m.uid.unwrap_or(0),
                gid: m.gid.unwrap_or(0),
            });
            MountSource::Secret(SecretMount {
                id,
                required: m.required,
                env: m.env.clone(),
                file,
            })
        }
        MountKind::Ssh => return Err(MountSetupError::Ssh),
    })
}

/// The in-image path a bind, cache or tmpfs mount is linked at: a relative target is taken
/// from WORKDIR as set (not cleaned: [`place`] keeps the link inside the root).
pub fn mount_target(target: Option<&str>, working_dir: &str) -> Result<String, MountSetupError> {
    let target = target.unwrap_or_default();
    if target.is_empty() {
        return Err(MountSetupError::NoTarget);
    }
    Ok(if target.starts_with('/') {
        target.to_string()
    } else {
        format!("{working_dir}/{target}")
    })
}

impl Engine<'_> {
    /// Puts RUN's mounts in place (one function per kind), recording what to undo in
    /// `placed` and the secrets given as variables in `secret_env`.
    pub(super) fn place_mounts(
        &mut self,
        cmd: &Command,
        run: &Run,
        placed: &mut Vec<Placed>,
        secret_env: &mut Vec<(String, String)>,
    ) -> Result<(), StageError> {
        for (i, spec) in run.mounts.iter().enumerate() {
            let vars = &self.vars;
            let lex = self.lex;
            let m = instructions::parse_mount_with(spec, &mut |v| lex.process_word(v, vars))
                .map_err(|e| self.fail(cmd, MountSetupError::Parse(e)))?;
            let chroot = self.root != Path::new("/");
            let source = mount_source(&m, chroot, self.step, i).map_err(|e| self.fail(cmd, e))?;
            let path = match source {
                MountSource::Bind { from, path } => {
                    self.bind_source(cmd, from.as_deref(), &path)?
                }
                MountSource::Cache {
                    dir,
                    mode,
                    uid,
                    gid,
                } => self.cache_source(cmd, &dir, mode, (uid, gid))?,
                MountSource::Tmpfs { dir } => self.tmpfs_source(cmd, &dir)?,
                MountSource::Secret(s) => {
                    placed.extend(self.place_secret(cmd, &s, secret_env)?);
                    continue;
                }
            };
            let target = mount_target(m.target.as_deref(), &self.image.config.working_dir)
                .map_err(|e| self.fail(cmd, e))?;
            placed
                .push(place(&self.root, &target, &path).map_err(|source| {
                    self.fail(cmd, MountSetupError::Target { target, source })
                })?);
        }
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

    /// A cache mount's directory, made with its mode and owner the first time.
    fn cache_source(
        &self,
        cmd: &Command,
        name: &str,
        mode: u32,
        (uid, gid): (u32, u32),
    ) -> Result<PathBuf, StageError> {
        let dir = self.cache_dir.join(name);
        if !dir.exists() {
            fs::create_dir_all(&dir).map_err(|e| self.fail(cmd, MountSetupError::Prepare(e)))?;
            let _ = fs::set_permissions(&dir, fs::Permissions::from_mode(mode));
            let _ = nix::unistd::chown(&dir, Some(uid.into()), Some(gid.into()));
        }
        Ok(dir)
    }

    /// A tmpfs mount's stand-in: an empty directory among the run files.
    fn tmpfs_source(&self, cmd: &Command, name: &str) -> Result<PathBuf, StageError> {
        let dir = self.run_files_dir().join(name);
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).map_err(|e| self.fail(cmd, MountSetupError::Prepare(e)))?;
        Ok(dir)
    }

    /// A secret: its value into `secret_env`, and/or a copy among the run files linked at its
    /// target. `None` when nothing is linked (a missing optional secret, an env-only one).
    fn place_secret(
        &self,
        cmd: &Command,
        s: &SecretMount,
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
        let prepare = |e| self.fail(cmd, MountSetupError::Prepare(e));
        let dir = self.run_files_dir().join("secrets");
        fs::create_dir_all(&dir).map_err(prepare)?;
        let file = dir.join(&f.name);
        fs::write(&file, &data).map_err(prepare)?;
        fs::set_permissions(&file, fs::Permissions::from_mode(f.mode)).map_err(prepare)?;
        let _ = nix::unistd::chown(&file, Some(f.uid.into()), Some(f.gid.into()));
        let link_to = PathBuf::from(visible_path(&self.root, &file));
        place(&self.root, &f.target, &link_to)
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

    fn source(spec: &str, chroot: bool) -> Result<MountSource, MountSetupError> {
        let m = instructions::parse_mount(spec).expect("a valid --mount");
        mount_source(&m, chroot, 3, 1)
    }

    #[test]
    fn each_kind_takes_its_source() {
        assert_eq!(
            source("type=bind,source=go.sum,target=/src/go.sum", false).expect("bind"),
            MountSource::Bind {
                from: None,
                path: "go.sum".into()
            }
        );
        assert_eq!(
            source("target=/out,from=build", false).expect("bind"),
            MountSource::Bind {
                from: Some("build".into()),
                path: String::new()
            }
        );
        // A cache's id defaults to its target.
        let by_target = source("type=cache,target=/root/.cache", false).expect("cache");
        assert_eq!(
            by_target,
            MountSource::Cache {
                dir: cache_dir_name("/root/.cache"),
                mode: 0o755,
                uid: 0,
                gid: 0
            }
        );
        assert_eq!(
            source("type=cache,id=go,target=/c,mode=0700,uid=5,gid=6", false).expect("cache"),
            MountSource::Cache {
                dir: cache_dir_name("go"),
                mode: 0o700,
                uid: 5,
                gid: 6
            }
        );
        assert_eq!(
            source("type=tmpfs,target=/tmp", false).expect("tmpfs"),
            MountSource::Tmpfs {
                dir: "tmpfs-3-1".into()
            }
        );
    }

    #[test]
    fn secrets_as_files_or_variables() {
        let file = |target: &str, mode| SecretFile {
            name: "npm_token".into(),
            target: target.into(),
            mode,
            uid: 0,
            gid: 0,
        };
        assert_eq!(
            source("type=secret,id=npm.token", false).expect("secret"),
            MountSource::Secret(SecretMount {
                id: "npm.token".into(),
                required: false,
                env: None,
                file: Some(file("/run/secrets/npm.token", 0o400)),
            })
        );
        // The id defaults to the target's last component.
        let MountSource::Secret(s) =
            source("type=secret,target=/etc/npm.token,required,mode=0440", true).expect("secret")
        else {
            panic!("not a secret")
        };
        assert_eq!((s.id.as_str(), s.required), ("npm.token", true));
        assert_eq!(s.file, Some(file("/etc/npm.token", 0o440)));
        // As a variable only, unless a target is given too.
        let MountSource::Secret(s) = source("type=secret,id=tok,env=TOKEN", false).expect("secret")
        else {
            panic!("not a secret")
        };
        assert_eq!((s.env.as_deref(), s.file), (Some("TOKEN"), None));
        let MountSource::Secret(s) =
            source("type=secret,id=tok,env=TOKEN,target=/t", false).expect("secret")
        else {
            panic!("not a secret")
        };
        assert_eq!(s.file.map(|f| f.target), Some("/t".to_string()));
    }

    #[test]
    fn refused_mounts_say_why() {
        for (spec, chroot, message) in [
            ("type=ssh", false, "--mount type=ssh is not supported"),
            (
                "type=cache,target=/c",
                true,
                "--mount in a stage built FROM scratch is not supported",
            ),
            (
                "type=ssh",
                true,
                "--mount in a stage built FROM scratch is not supported",
            ),
        ] {
            let err = source(spec, chroot).expect_err(spec);
            assert_eq!(err.to_string(), message, "{spec}");
        }
    }

    #[test]
    fn targets_are_taken_from_workdir() {
        assert_eq!(mount_target(Some("/abs"), "/app").expect("t"), "/abs");
        assert_eq!(
            mount_target(Some("rel/x"), "/app").expect("t"),
            "/app/rel/x"
        );
        assert_eq!(mount_target(Some("rel"), "").expect("t"), "/rel");
        for missing in [None, Some("")] {
            assert_eq!(
                mount_target(missing, "/app").map_err(|e| e.to_string()),
                Err("--mount needs a target".to_string())
            );
        }
    }
}
