//! What a stage hands to the stages that `COPY --from` or `RUN --mount from=` it: the paths the
//! plan lists, resolved inside the stage's root (symlinks as if the root were `/`, so a path
//! through `/lib -> usr/lib` works), written as one plain tar so ownership and modes survive
//! any volume. A matched path that is itself a symlink is stored as what it points to, since
//! COPY follows a source symlink; symlinks further down stay symlinks.

use std::collections::BTreeSet;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use crate::fs::unpack::{apply_layer, scoped_path};
use slipway_frontend::gocompat::go_match;

fn has_glob(s: &str) -> bool {
    s.contains(['*', '?', '['])
}

/// `rel` resolved inside `root`, the last component too, through at most 40 links.
pub fn resolve_in_root(root: &Path, rel: &str) -> io::Result<PathBuf> {
    let mut rel = PathBuf::from(rel.trim_start_matches('/'));
    for _ in 0..40 {
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
    Err(io::Error::other("too many levels of symbolic links"))
}

/// Expands a pattern (absolute, glob characters allowed in any component) against `root`;
/// the matches are root-relative paths as named, not as resolved.
pub fn expand(root: &Path, pattern: &str) -> Vec<String> {
    let mut found = vec![String::new()];
    for part in pattern.split('/').filter(|p| !p.is_empty() && *p != ".") {
        let mut next = Vec::new();
        for prefix in &found {
            let join = |n: &str| {
                if prefix.is_empty() {
                    n.to_string()
                } else {
                    format!("{prefix}/{n}")
                }
            };
            if !has_glob(part) {
                let cand = join(part);
                if scoped_path(root, Path::new(&cand))
                    .and_then(fs::symlink_metadata)
                    .is_ok()
                {
                    next.push(cand);
                }
                continue;
            }
            let Ok(dir) = resolve_in_root(root, prefix) else {
                continue;
            };
            let Ok(rd) = fs::read_dir(dir) else { continue };
            let mut names: Vec<String> = rd
                .flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect();
            names.sort();
            for n in names {
                if go_match(part, &n).unwrap_or(false) {
                    next.push(join(&n));
                }
            }
        }
        found = next;
    }
    found
}

/// Writes the export tar of `patterns` from the tree at `root`, leaving out `skip` (absolute
/// paths: mount points, the engine's own folder).
pub fn write_exports(
    root: &Path,
    patterns: &[String],
    skip: &BTreeSet<PathBuf>,
    out: &Path,
) -> io::Result<usize> {
    let tmp = out.with_extension("tar.tmp");
    let mut b = tar::Builder::new(io::BufWriter::new(fs::File::create(&tmp)?));
    b.follow_symlinks(false);
    let mut done: BTreeSet<String> = BTreeSet::new();
    let mut count = 0;
    for pattern in patterns {
        for name in expand(root, pattern) {
            if !done.insert(name.clone()) {
                continue;
            }
            let real = resolve_in_root(root, &name)?;
            if fs::symlink_metadata(&real).is_err() {
                continue; // a dangling link: the consumer reports the missing source
            }
            count += add_tree(&mut b, &real, &name, skip)?;
        }
    }
    b.into_inner()?.into_inner().map_err(|e| e.into_error())?;
    fs::rename(&tmp, out)?;
    Ok(count)
}

fn add_tree<W: io::Write>(
    b: &mut tar::Builder<W>,
    path: &Path,
    name: &str,
    skip: &BTreeSet<PathBuf>,
) -> io::Result<usize> {
    if skip.contains(path) {
        return Ok(0);
    }
    b.append_path_with_name(path, name)?;
    let mut n = 1;
    let m = fs::symlink_metadata(path)?;
    if m.is_dir() {
        let mut children: Vec<_> = fs::read_dir(path)?
            .flatten()
            .map(|e| e.file_name())
            .collect();
        children.sort();
        for c in children {
            let child_name = format!("{name}/{}", c.to_string_lossy());
            n += add_tree(b, &path.join(&c), &child_name, skip)?;
        }
    }
    Ok(n)
}

/// Why a stage's exports could not be unpacked.
#[derive(Debug, thiserror::Error)]
pub enum ExportsError {
    #[error(transparent)]
    Io(#[from] crate::fs::PathError),
    #[error("{}: {source}", tar.display())]
    Unpack {
        tar: PathBuf,
        #[source]
        source: crate::fs::unpack::UnpackError,
    },
}

/// Unpacks a stage's export tar into `dest` with owners and modes.
pub fn extract(tar_path: &Path, dest: &Path) -> Result<(), ExportsError> {
    fs::create_dir_all(dest).map_err(crate::fs::at(dest))?;
    let f = fs::File::open(tar_path).map_err(crate::fs::at(tar_path))?;
    apply_layer(f, dest, true).map_err(|source| ExportsError::Unpack {
        tar: tar_path.to_path_buf(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn exports_resolve_links_inside_the_root() {
        let d = tempfile::tempdir().expect("tmp");
        let r = d.path();
        fs::create_dir_all(r.join("usr/lib")).expect("mkdir");
        fs::create_dir_all(r.join("app/dist")).expect("mkdir");
        fs::write(r.join("usr/lib/libx.so.1"), "x").expect("w");
        symlink("usr/lib", r.join("lib")).expect("ln");
        symlink("libx.so.1", r.join("usr/lib/libx.so")).expect("ln");
        symlink("/etc/passwd", r.join("app/escape")).expect("ln");
        fs::write(r.join("app/dist/a.js"), "a").expect("w");
        fs::write(r.join("app/dist/b.js"), "b").expect("w");
        fs::write(r.join("app/dist/c.css"), "c").expect("w");
        assert_eq!(
            expand(r, "/app/dist/*.js"),
            vec!["app/dist/a.js", "app/dist/b.js"]
        );
        assert_eq!(expand(r, "/lib/libx.so"), vec!["lib/libx.so"]);
        assert_eq!(
            resolve_in_root(r, "/lib/libx.so").expect("resolve"),
            r.join("usr/lib/libx.so.1")
        );
        // An absolute link resolves inside the root, never to the host's file.
        assert_eq!(
            resolve_in_root(r, "app/escape").expect("resolve"),
            r.join("etc/passwd")
        );

        let out = r.join("exports.tar");
        let n = write_exports(
            r,
            &[
                "/lib/libx.so".into(),
                "/app/dist/*.js".into(),
                "/nope".into(),
            ],
            &BTreeSet::new(),
            &out,
        )
        .expect("exports");
        assert_eq!(n, 3);
        let into = tempfile::tempdir().expect("tmp");
        extract(&out, into.path()).expect("extract");
        assert_eq!(
            fs::read_to_string(into.path().join("lib/libx.so")).expect("read"),
            "x"
        );
        assert!(into.path().join("app/dist/b.js").is_file());
        assert!(!into.path().join("app/dist/c.css").exists());
    }

    #[test]
    fn extract_errors_name_the_file() {
        let d = tempfile::tempdir().expect("tmp");
        let tar = d.path().join("missing.tar");
        let err = extract(&tar, &d.path().join("into")).expect_err("no tar");
        let text = err.to_string();
        assert!(text.starts_with(&format!("{}: ", tar.display())), "{text}");
        assert!(matches!(err, ExportsError::Io(_)));
    }
}
