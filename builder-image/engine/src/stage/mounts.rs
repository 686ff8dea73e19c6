//! `RUN --mount` without mount(2). Stage pods get no CAP_SYS_ADMIN, so the engine cannot bind
//! or mount tmpfs; instead it puts a symlink at the target that leads to the source (a stage's
//! export, the context, a cache directory kept outside the tree, an empty directory made for
//! the RUN, a secret file made for the RUN), and takes it away, with anything it moved aside
//! put back, before the tree is snapshotted. What RUN writes through the link never reaches
//! the layer, as with BuildKit's mounts. A program that inspects the target sees a symlink.
//!
//! What a link cannot do is made up for (M4 of SECURITY.md): a read-only bind (BuildKit's
//! default) is checked unchanged after the RUN, and the RUN fails if it wrote there; an `rw`
//! bind gets a private copy whose writes are discarded; a cache's `sharing=locked` takes a
//! lock, `sharing=private` a lock or else an empty directory of its own. What cannot be made
//! up for is refused, never ignored (a read-only cache, a cache seeded `from=` a stage).
//!
//! Which source each mount kind uses is decided by [`mount_source`] from the parsed mount
//! alone; `mount_sources` prepares it and undoes it.

use std::fs;
use std::io;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::{Path, PathBuf};

use crate::fs::root::scoped_path;

use crate::stage::sanitize;
use slipway_frontend::dockerfile::instructions::{Mount, MountError, MountKind, Sharing};

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
    #[error(
        "--mount target {target} is read-only (add rw to write; the writes are then discarded \
         after the RUN): the RUN changed {path}"
    )]
    ReadOnlyWritten { target: String, path: String },
    #[error("--mount target {target}: checking the read-only source: {source}")]
    ReadOnlyCheck {
        target: String,
        #[source]
        source: io::Error,
    },
    #[error(
        "--mount type=cache,ro is not supported: a cache cannot be made read-only without mount(2)"
    )]
    CacheReadOnly,
    #[error("--mount type=cache with from= is not supported")]
    CacheFrom,
    #[error("--mount type=cache,sharing={sharing}: locking {dir}: {source}")]
    Lock {
        sharing: Sharing,
        dir: String,
        #[source]
        source: io::Error,
    },
    /// The private copy of an `rw` bind mount.
    #[error("--mount target {target}: copying the source: {source}")]
    Copy {
        target: String,
        #[source]
        source: io::Error,
    },
}

/// Where a mount's link leads, decided from the parsed mount alone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MountSource {
    /// `path` inside the context (`from` unset) or inside the tree `from` names; read-only
    /// (checked), or else a private copy.
    Bind {
        from: Option<String>,
        path: String,
        read_only: bool,
    },
    /// A directory of the cache dir (named by [`cache_dir_name`]), made on first use.
    Cache {
        dir: String,
        mode: u32,
        uid: u32,
        gid: u32,
        sharing: Sharing,
    },
    /// A fresh empty directory among the RUN's files, named `dir`.
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
    /// The copy's file name among the RUN's files.
    pub name: String,
    /// Where the link goes (`/run/secrets/<id>` by default).
    pub target: String,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
}

/// Where mount number `index` of a RUN takes its source from. Only secrets work in a stage
/// rooted in a directory (`chroot`): a link there could not reach anything else.
pub fn mount_source(m: &Mount, chroot: bool, index: usize) -> Result<MountSource, MountSetupError> {
    if chroot && m.kind != MountKind::Secret {
        return Err(MountSetupError::FromScratch);
    }
    let target = m.target.clone().unwrap_or_default();
    Ok(match m.kind {
        MountKind::Bind => MountSource::Bind {
            from: m.from.clone(),
            path: m.source.clone().unwrap_or_default(),
            read_only: m.read_only,
        },
        MountKind::Cache => {
            if m.read_only {
                return Err(MountSetupError::CacheReadOnly);
            }
            if m.from.is_some() {
                return Err(MountSetupError::CacheFrom);
            }
            MountSource::Cache {
                dir: cache_dir_name(m.id.as_deref().unwrap_or(&target)),
                mode: m.mode.unwrap_or(0o755),
                uid: m.uid.unwrap_or(0),
                gid: m.gid.unwrap_or(0),
                sharing: m.sharing.unwrap_or(Sharing::Shared),
            }
        }
        MountKind::Tmpfs => MountSource::Tmpfs {
            dir: format!("tmpfs-{index}"),
        },
        MountKind::Secret => {
            let id = m.secret_id().unwrap_or_default().to_string();
            let file = (m.env.is_none() || m.target.is_some()).then(|| SecretFile {
                name: format!("secret-{index}-{}", sanitize(&id)),
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

#[cfg(test)]
mod tests {
    use super::*;
    use slipway_frontend::dockerfile::instructions;

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
        mount_source(&m, chroot, 1)
    }

    #[test]
    fn each_kind_takes_its_source() {
        assert_eq!(
            source("type=bind,source=go.sum,target=/src/go.sum", false).expect("bind"),
            MountSource::Bind {
                from: None,
                path: "go.sum".into(),
                read_only: true
            }
        );
        assert_eq!(
            source("target=/out,from=build,rw", false).expect("bind"),
            MountSource::Bind {
                from: Some("build".into()),
                path: String::new(),
                read_only: false
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
                gid: 0,
                sharing: Sharing::Shared
            }
        );
        assert_eq!(
            source(
                "type=cache,id=go,target=/c,mode=0700,uid=5,gid=6,sharing=locked",
                false
            )
            .expect("cache"),
            MountSource::Cache {
                dir: cache_dir_name("go"),
                mode: 0o700,
                uid: 5,
                gid: 6,
                sharing: Sharing::Locked
            }
        );
        assert_eq!(
            source("type=tmpfs,target=/tmp", false).expect("tmpfs"),
            MountSource::Tmpfs {
                dir: "tmpfs-1".into()
            }
        );
    }

    #[test]
    fn secrets_as_files_or_variables() {
        let file = |target: &str, mode| SecretFile {
            name: "secret-1-npm_token".into(),
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
            (
                "type=cache,target=/c,ro",
                false,
                "--mount type=cache,ro is not supported: a cache cannot be made read-only \
                 without mount(2)",
            ),
            (
                "type=cache,target=/c,from=build",
                false,
                "--mount type=cache with from= is not supported",
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
