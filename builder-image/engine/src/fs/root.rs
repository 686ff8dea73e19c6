//! Paths inside an image's root tree, resolved as if the root were `/`: a symlink met on the
//! way is followed inside the root (`/lib -> usr/lib` works, `x -> /../../etc` stays inside),
//! never out of it. Layers are applied, COPY destinations made, `RUN --mount` targets placed
//! and stage exports read through these two functions.
//!
//! Two other "path inside a directory" checks are deliberately not these:
//! - `steps::source::inside` is lexical: an inline file name with `..` or a leading `/` is
//!   refused, not resolved, since it names a file to create in a fresh context.
//! - `stage::copy_sources::resolve_in_context` refuses a context symlink that leads out of the
//!   context ("forbidden path outside the build context", as Docker does), where an image's
//!   tree clamps the same link inside its root.

use std::ffi::OsString;
use std::fs;
use std::io;
use std::path::{Component, Path, PathBuf};

/// How many symlinks one resolution follows before giving up (as Linux's `ELOOP` limit).
const MAX_LINKS: usize = 40;

fn too_many_links() -> io::Error {
    io::Error::other("too many levels of symbolic links")
}

/// Resolves `rel`'s parent directories inside `root`, following symlinks as if `root` were
/// `/`. The last component is not resolved. `rel`'s own `..`, `.` and leading `/` are
/// dropped (it is taken as a plain list of names); a link's `..` goes up, never above `root`.
pub fn scoped_path(root: &Path, rel: &Path) -> io::Result<PathBuf> {
    let mut parts: Vec<OsString> = rel
        .components()
        .filter_map(|c| match c {
            Component::Normal(n) => Some(n.to_os_string()),
            _ => None,
        })
        .collect();
    let Some(last) = parts.pop() else {
        return Ok(root.to_path_buf());
    };
    let mut resolved: Vec<OsString> = Vec::new();
    let mut pending: Vec<OsString> = parts.into_iter().rev().collect();
    let mut links = 0;
    while let Some(part) = pending.pop() {
        if part == ".." {
            resolved.pop();
            continue;
        }
        if part == "." || part.is_empty() {
            continue;
        }
        let here: PathBuf = root.join(resolved.iter().collect::<PathBuf>()).join(&part);
        match fs::symlink_metadata(&here) {
            Ok(m) if m.file_type().is_symlink() => {
                links += 1;
                if links > MAX_LINKS {
                    return Err(too_many_links());
                }
                let target = fs::read_link(&here)?;
                if target.is_absolute() {
                    resolved.clear();
                }
                let mut t: Vec<OsString> = target
                    .components()
                    .filter_map(|c| match c {
                        Component::Normal(n) => Some(n.to_os_string()),
                        Component::ParentDir => Some("..".into()),
                        _ => None,
                    })
                    .collect();
                t.reverse();
                pending.extend(t);
            }
            _ => resolved.push(part),
        }
    }
    Ok(root.join(resolved.iter().collect::<PathBuf>()).join(last))
}

/// `rel` resolved inside `root`, the last component too (a final symlink is followed),
/// through at most 40 links. A leading `/` in `rel` is ignored.
pub fn resolve_in_root(root: &Path, rel: impl AsRef<Path>) -> io::Result<PathBuf> {
    let mut rel = rel.as_ref().to_path_buf();
    for _ in 0..MAX_LINKS {
        let p = scoped_path(root, &rel)?;
        match fs::symlink_metadata(&p) {
            Ok(m) if m.file_type().is_symlink() => {
                let target = fs::read_link(&p)?;
                let parent = p
                    .parent()
                    .and_then(|d| d.strip_prefix(root).ok())
                    .map(Path::to_path_buf)
                    .unwrap_or_default();
                rel = if target.is_absolute() {
                    target.components().skip(1).collect()
                } else {
                    parent.join(target)
                };
            }
            _ => return Ok(p),
        }
    }
    Err(too_many_links())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::OsStr;
    use std::os::unix::ffi::OsStrExt;
    use std::os::unix::fs::symlink;

    #[test]
    fn links_resolve_inside_the_root() {
        let d = tempfile::tempdir().expect("tmp");
        let r = d.path();
        fs::create_dir_all(r.join("usr/lib")).expect("mkdir");
        fs::write(r.join("usr/lib/libx.so.1"), "x").expect("w");
        symlink("usr/lib", r.join("lib")).expect("ln");
        symlink("libx.so.1", r.join("usr/lib/libx.so")).expect("ln");
        symlink("/etc/passwd", r.join("escape")).expect("ln");
        symlink("/../../..", r.join("up")).expect("ln");
        // The parents resolve, the last name does not.
        assert_eq!(
            scoped_path(r, Path::new("lib/libx.so")).expect("scoped"),
            r.join("usr/lib/libx.so")
        );
        assert_eq!(
            scoped_path(r, Path::new("up/planted")).expect("scoped"),
            r.join("planted")
        );
        assert_eq!(scoped_path(r, Path::new("")).expect("root"), r);
        assert_eq!(
            resolve_in_root(r, "/lib/libx.so").expect("resolve"),
            r.join("usr/lib/libx.so.1")
        );
        // An absolute link resolves inside the root, never to the host's file.
        assert_eq!(
            resolve_in_root(r, "escape").expect("resolve"),
            r.join("etc/passwd")
        );
    }

    #[test]
    fn names_are_raw_bytes_and_loops_end() {
        let d = tempfile::tempdir().expect("tmp");
        let r = d.path();
        let dir = OsStr::from_bytes(b"dir\xe9");
        fs::create_dir(r.join(dir)).expect("mkdir");
        symlink(dir, r.join("to-dir")).expect("ln");
        assert_eq!(
            resolve_in_root(r, Path::new("to-dir")).expect("resolve"),
            r.join(dir)
        );
        symlink("b", r.join("a")).expect("ln");
        symlink("a", r.join("b")).expect("ln");
        let e = resolve_in_root(r, "a").expect_err("a loop");
        assert_eq!(e.to_string(), "too many levels of symbolic links");
        let e = scoped_path(r, Path::new("a/x")).expect_err("a loop");
        assert_eq!(e.to_string(), "too many levels of symbolic links");
    }
}
