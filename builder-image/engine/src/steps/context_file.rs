//! Reading the Dockerfile and its ignore files (`<Dockerfile>.dockerignore`, the context's
//! `.dockerignore`) from inside the build context only (security review H2). An A1 context
//! may hold `Dockerfile.dockerignore -> /.slipway/git-auth/token` or `Dockerfile ->
//! /etc/shadow`: read as-is, the file's bytes would be copied into the workspace (where every
//! RUN step reads them) or printed in a parse error, on the cluster and, in local mode, on the
//! host.
//!
//! BuildKit reads these files through the context's own filesystem, where a symlink resolves
//! inside the context root. Here a symlink is followed the same way while it stays inside,
//! and one that leads out (an absolute target, or `..` above the root, at any component) is
//! refused with an error naming the file, rather than clamped to the root as BuildKit does: a
//! link that pointed at a file outside in its author's checkout names no file of the context.
//! The file itself is then opened with `O_NOFOLLOW`.

use std::ffi::OsString;
use std::fs;
use std::io::{self, Read};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Component, Path, PathBuf};

/// How many symlinks one resolution follows (Linux's `ELOOP` limit).
const MAX_LINKS: usize = 40;

/// Why a file of the context cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum ContextFileError {
    #[error("symlink leaves the build context")]
    Leaves,
    #[error("too many levels of symbolic links")]
    Loop,
    #[error(transparent)]
    Io(io::Error),
}

impl ContextFileError {
    /// The file (or a folder on its way) does not exist.
    pub fn not_found(&self) -> bool {
        matches!(self, ContextFileError::Io(e) if e.kind() == io::ErrorKind::NotFound)
    }
}

/// The names of a relative path, `..` kept, `.` dropped; `None` for an absolute path.
fn names(p: &Path) -> Option<Vec<OsString>> {
    p.components()
        .filter_map(|c| match c {
            Component::Normal(n) => Some(Some(n.to_os_string())),
            Component::ParentDir => Some(Some("..".into())),
            Component::CurDir => None,
            Component::RootDir | Component::Prefix(_) => Some(None),
        })
        .collect()
}

/// The path `rel` names inside `root`, every symlink on the way (the last component too)
/// followed while it stays inside `root`.
pub fn resolve(root: &Path, rel: &Path) -> Result<PathBuf, ContextFileError> {
    let mut pending = names(rel).ok_or(ContextFileError::Leaves)?;
    pending.reverse();
    let mut resolved = PathBuf::new();
    let mut links = 0;
    while let Some(part) = pending.pop() {
        if part == ".." {
            if !resolved.pop() {
                return Err(ContextFileError::Leaves);
            }
            continue;
        }
        let here = root.join(&resolved).join(&part);
        match fs::symlink_metadata(&here) {
            Ok(m) if m.file_type().is_symlink() => {
                links += 1;
                if links > MAX_LINKS {
                    return Err(ContextFileError::Loop);
                }
                let target = fs::read_link(&here).map_err(ContextFileError::Io)?;
                let mut t = names(&target).ok_or(ContextFileError::Leaves)?;
                t.reverse();
                pending.extend(t);
            }
            // A missing name stays as it is: opening it says so.
            Ok(_) => resolved.push(part),
            Err(e) if e.kind() == io::ErrorKind::NotFound => resolved.push(part),
            Err(e) => return Err(ContextFileError::Io(e)),
        }
    }
    Ok(root.join(resolved))
}

/// The bytes of the file `rel` names inside `root` (see [`resolve`]).
pub fn read(root: &Path, rel: &Path) -> Result<Vec<u8>, ContextFileError> {
    let path = resolve(root, rel)?;
    let mut f = fs::OpenOptions::new()
        .read(true)
        .custom_flags(nix::libc::O_NOFOLLOW)
        .open(&path)
        .map_err(ContextFileError::Io)?;
    let mut out = Vec::new();
    f.read_to_end(&mut out).map_err(ContextFileError::Io)?;
    Ok(out)
}

/// Where a Dockerfile's symlinks resolve, and its path there: the context when the
/// Dockerfile is in it (always on the cluster), else the Dockerfile's own folder (local mode's
/// `--dockerfile` elsewhere, as BuildKit roots it).
pub fn dockerfile_root<'a>(context: &'a Path, dockerfile: &'a Path) -> (&'a Path, &'a Path) {
    if let Ok(rel) = dockerfile.strip_prefix(context)
        && !rel.as_os_str().is_empty()
    {
        return (context, rel);
    }
    let dir = match dockerfile.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let name = dockerfile
        .file_name()
        .map(Path::new)
        .unwrap_or(Path::new(""));
    (dir, name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    /// A context with a marker file beside it (outside), as an A1 author would aim at.
    fn context() -> (tempfile::TempDir, PathBuf, PathBuf) {
        let d = tempfile::tempdir().expect("tmp");
        let ctx = d.path().join("ctx");
        fs::create_dir_all(ctx.join("docker/sub")).expect("mkdir");
        let secret = d.path().join("secret");
        fs::write(&secret, "TOKEN-123").expect("write");
        (d, ctx, secret)
    }

    #[test]
    fn links_inside_the_context_are_followed() {
        let (_d, ctx, _) = context();
        fs::write(ctx.join("docker/Dockerfile.real"), "FROM scratch\n").expect("w");
        symlink("docker/Dockerfile.real", ctx.join("Dockerfile")).expect("ln");
        symlink("../Dockerfile.real", ctx.join("docker/sub/Dockerfile")).expect("ln");
        symlink("docker", ctx.join("d")).expect("ln");
        assert_eq!(
            read(&ctx, Path::new("Dockerfile")).expect("read"),
            b"FROM scratch\n"
        );
        assert_eq!(
            read(&ctx, Path::new("docker/sub/Dockerfile")).expect("read"),
            b"FROM scratch\n"
        );
        assert_eq!(
            read(&ctx, Path::new("d/Dockerfile.real")).expect("read"),
            b"FROM scratch\n"
        );
        let e = read(&ctx, Path::new("missing")).expect_err("missing");
        assert!(e.not_found(), "{e}");
    }

    #[test]
    fn links_out_of_the_context_are_refused() {
        let (d, ctx, secret) = context();
        // Dockerfile -> an absolute path (the classic: /etc/passwd, a mounted secret).
        symlink("/etc/passwd", ctx.join("Dockerfile")).expect("ln");
        // Dockerfile.dockerignore -> ../secret.
        symlink("../secret", ctx.join("Dockerfile.dockerignore")).expect("ln");
        // A directory component that leads out: up/secret through `up -> ..`.
        symlink("..", ctx.join("up")).expect("ln");
        // A relative link that climbs out from a subfolder.
        symlink("../../../secret", ctx.join("docker/sub/x")).expect("ln");
        // Absolute, even when it names the context itself.
        symlink(ctx.join("docker"), ctx.join("abs")).expect("ln");
        for rel in [
            "Dockerfile",
            "Dockerfile.dockerignore",
            "up/secret",
            "docker/sub/x",
            "abs/sub",
            "../secret",
            "/etc/passwd",
        ] {
            let e = read(&ctx, Path::new(rel)).expect_err(rel);
            assert!(matches!(e, ContextFileError::Leaves), "{rel}: {e}");
            assert_eq!(e.to_string(), "symlink leaves the build context");
        }
        assert_eq!(fs::read(&secret).expect("intact"), b"TOKEN-123");
        drop(d);
    }

    #[test]
    fn loops_end() {
        let (_d, ctx, _) = context();
        symlink("b", ctx.join("a")).expect("ln");
        symlink("a", ctx.join("b")).expect("ln");
        assert!(matches!(
            read(&ctx, Path::new("a")),
            Err(ContextFileError::Loop)
        ));
    }

    #[test]
    fn a_dockerfile_is_rooted_in_the_context_or_its_own_folder() {
        let ctx = Path::new("/w/ctx");
        assert_eq!(
            dockerfile_root(ctx, Path::new("/w/ctx/build/Dockerfile")),
            (ctx, Path::new("build/Dockerfile"))
        );
        assert_eq!(
            dockerfile_root(ctx, Path::new("/elsewhere/Dockerfile")),
            (Path::new("/elsewhere"), Path::new("Dockerfile"))
        );
        assert_eq!(
            dockerfile_root(ctx, Path::new("Dockerfile")),
            (Path::new("."), Path::new("Dockerfile"))
        );
    }
}
