//! What a stage hands to the stages that `COPY --from` or `RUN --mount from=` it: the paths the
//! plan lists, resolved inside the stage's root (symlinks as if the root were `/`, so a path
//! through `/lib -> usr/lib` works), written as one plain tar so ownership and modes survive
//! any volume. A matched path that is itself a symlink is stored as what it points to, since
//! COPY follows a source symlink; symlinks further down stay symlinks.
//!
//! Only the stage's own tree is exported: a path that resolves into a mount point or the
//! engine's folder (`/.slipway`: secrets, workspace, engine), or into `/proc`, `/sys` or
//! `/dev` of a stage rooted at `/`, is treated as outside the root, as a dangling link is
//! (L3 of SECURITY.md: `dir/leak -> /.slipway/secrets/token` exports nothing).

use std::collections::BTreeSet;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use crate::fs::glob::{Tree, expand_lenient};
use crate::fs::root::resolve_in_root;
use crate::fs::unpack::apply_layer;

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
    let mut done: BTreeSet<PathBuf> = BTreeSet::new();
    let mut count = 0;
    for pattern in patterns {
        for name in expand_lenient(Tree::Root(root), pattern) {
            if !done.insert(name.clone()) {
                continue;
            }
            let real = resolve_in_root(root, &name)?;
            if off_tree(root, &real, skip) || fs::symlink_metadata(&real).is_err() {
                continue; // outside, or a dangling link: the consumer reports it missing
            }
            count += add_tree(&mut b, &real, &name, skip)?;
        }
    }
    b.into_inner()?.into_inner().map_err(|e| e.into_error())?;
    fs::rename(&tmp, out)?;
    Ok(count)
}

/// The kernel's file systems, never part of a stage rooted at `/`.
const KERNEL: [&str; 3] = ["/proc", "/sys", "/dev"];

/// Whether `real`, a path resolved in the tree at `root`, is not the stage's: at or under a
/// skipped path, or a kernel file system of a stage rooted at `/`.
pub fn off_tree(root: &Path, real: &Path, skip: &BTreeSet<PathBuf>) -> bool {
    skip.iter().any(|s| real.starts_with(s))
        || (root == Path::new("/") && KERNEL.iter().any(|k| real.starts_with(k)))
}

fn add_tree<W: io::Write>(
    b: &mut tar::Builder<W>,
    path: &Path,
    name: &Path,
    skip: &BTreeSet<PathBuf>,
) -> io::Result<usize> {
    // Below a path that is not skipped, only a skipped one itself can appear.
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
            // Raw bytes: a name that is not UTF-8 reaches the consumer as it is.
            n += add_tree(b, &path.join(&c), &name.join(&c), skip)?;
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
    let f = fs::File::open(tar_path).map_err(crate::fs::at(tar_path))?;
    extract_from(f, tar_path, dest)
}

/// Unpacks an export tar read from `tar` (the file `tar_path`, named in errors) into `dest`.
pub fn extract_from(tar: impl io::Read, tar_path: &Path, dest: &Path) -> Result<(), ExportsError> {
    fs::create_dir_all(dest).map_err(crate::fs::at(dest))?;
    apply_layer(tar, dest, true).map_err(|source| ExportsError::Unpack {
        tar: tar_path.to_path_buf(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::ffi::OsStrExt;
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
        let odd = std::ffi::OsStr::from_bytes(b"dir\xe9");
        fs::create_dir(r.join(odd)).expect("mkdir");
        fs::write(r.join(odd).join(odd), "odd").expect("w");

        let out = r.join("exports.tar");
        let n = write_exports(
            r,
            &[
                "/lib/libx.so".into(),
                "/app/dist/*.js".into(),
                "/nope".into(),
                "/dir?".into(),
            ],
            &BTreeSet::new(),
            &out,
        )
        .expect("exports");
        assert_eq!(n, 5);
        let into = tempfile::tempdir().expect("tmp");
        extract(&out, into.path()).expect("extract");
        assert_eq!(
            fs::read_to_string(into.path().join("lib/libx.so")).expect("read"),
            "x"
        );
        assert!(into.path().join("app/dist/b.js").is_file());
        assert!(!into.path().join("app/dist/c.css").exists());
        assert_eq!(
            fs::read(into.path().join(odd).join(odd)).expect("raw name"),
            b"odd"
        );
    }

    #[test]
    fn links_into_the_engine_folder_export_nothing() {
        let d = tempfile::tempdir().expect("tmp");
        let r = d.path();
        fs::create_dir_all(r.join(".slipway/secrets")).expect("mkdir");
        fs::write(r.join(".slipway/secrets/token"), "s3cr3t").expect("w");
        fs::create_dir_all(r.join("dir")).expect("mkdir");
        fs::write(r.join("dir/ok"), "ok").expect("w");
        symlink("/.slipway/secrets/token", r.join("dir/leak")).expect("ln");
        symlink("/.slipway/secrets", r.join("dir/leakdir")).expect("ln");
        let skip: BTreeSet<PathBuf> = [r.join(".slipway")].into_iter().collect();
        let out = r.join("exports.tar");
        let n = write_exports(
            r,
            &[
                "/dir/leak".into(),
                "/dir/leakdir/token".into(),
                "/dir/leakdir".into(),
                "/dir".into(),
            ],
            &skip,
            &out,
        )
        .expect("exports");
        // `/dir` and what is in it, the links as links.
        assert_eq!(n, 4);
        let into = tempfile::tempdir().expect("tmp");
        extract(&out, into.path()).expect("extract");
        let bytes = fs::read(&out).expect("tar");
        assert!(!bytes.windows(6).any(|w| w == b"s3cr3t"));
        assert!(
            fs::symlink_metadata(into.path().join("dir/leak"))
                .expect("a link")
                .file_type()
                .is_symlink()
        );
        assert!(into.path().join("dir/ok").is_file());
        assert!(off_tree(
            Path::new("/"),
            Path::new("/proc/1/environ"),
            &skip
        ));
        assert!(off_tree(Path::new("/"), Path::new("/dev/pipes/x"), &skip));
        assert!(!off_tree(Path::new("/"), Path::new("/devices"), &skip));
        assert!(!off_tree(r, &r.join("proc/x"), &skip));
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
