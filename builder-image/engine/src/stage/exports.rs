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

use sha2::Digest as _;
use slipway_contract::digest::Digest;

use crate::fs::glob::{Tree, expand_lenient};
use crate::fs::root::resolve_in_root;
use crate::fs::unpack::apply_layer;
use crate::layer::writer::hashing;

/// What [`write_exports`] wrote: how many entries, and the digest of the tar's bytes, taken
/// as they were written (reading the file again would cost as much as writing it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Written {
    pub entries: usize,
    pub digest: Digest,
}

/// Writes the export tar of `patterns` from the tree at `root`, leaving out `skip` (absolute
/// paths: mount points, the engine's own folder). With a source date epoch, no time in it is
/// later than the epoch, as in the layers: the same tree gives the same bytes, which is what
/// lets a stage that copies from this one hit the cache when this one was rebuilt to the same
/// files ([`crate::cache`]'s slow key).
pub fn write_exports(
    root: &Path,
    patterns: &[String],
    skip: &BTreeSet<PathBuf>,
    out: &Path,
    epoch: Option<u64>,
) -> io::Result<Written> {
    let tmp = out.with_extension("tar.tmp");
    let file = hashing(fs::File::create(&tmp)?);
    let mut b = tar::Builder::new(io::BufWriter::new(file));
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
            count += add_tree(&mut b, &real, &name, skip, epoch)?;
        }
    }
    let file = b.into_inner()?.into_inner().map_err(|e| e.into_error())?;
    fs::rename(&tmp, out)?;
    Ok(Written {
        entries: count,
        digest: Digest::from_sha256(&file.hash.finalize().into()),
    })
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
    epoch: Option<u64>,
) -> io::Result<usize> {
    // Below a path that is not skipped, only a skipped one itself can appear.
    if skip.contains(path) {
        return Ok(0);
    }
    let m = fs::symlink_metadata(path)?;
    match epoch {
        Some(e) => append_clamped(b, path, name, &m, e)?,
        None => b.append_path_with_name(path, name)?,
    }
    let mut n = 1;
    if m.is_dir() {
        let mut children: Vec<_> = fs::read_dir(path)?
            .flatten()
            .map(|e| e.file_name())
            .collect();
        children.sort();
        for c in children {
            // Raw bytes: a name that is not UTF-8 reaches the consumer as it is.
            n += add_tree(b, &path.join(&c), &name.join(&c), skip, epoch)?;
        }
    }
    Ok(n)
}

/// One entry as `append_path_with_name` writes it (GNU header, owner, mode, long names), its
/// mtime clamped to `epoch`.
fn append_clamped<W: io::Write>(
    b: &mut tar::Builder<W>,
    path: &Path,
    name: &Path,
    m: &fs::Metadata,
    epoch: u64,
) -> io::Result<()> {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    let t = m.file_type();
    let mut h = tar::Header::new_gnu();
    h.set_metadata_in_mode(m, tar::HeaderMode::Complete);
    if h.mtime()? > epoch {
        h.set_mtime(epoch);
    }
    if t.is_file() {
        return b.append_data(&mut h, name, fs::File::open(path)?);
    }
    h.set_size(0);
    if t.is_symlink() {
        return b.append_link(&mut h, name, fs::read_link(path)?);
    }
    if t.is_char_device() || t.is_block_device() {
        // tar's split of the device number (glibc's major/minor).
        let dev = m.rdev();
        h.set_device_major((((dev >> 32) & 0xffff_f000) | ((dev >> 8) & 0x0fff)) as u32)?;
        h.set_device_minor((((dev >> 12) & 0xffff_ff00) | (dev & 0xff)) as u32)?;
    } else if t.is_socket() {
        return Err(io::Error::other(format!(
            "{}: socket can not be archived",
            path.display()
        )));
    }
    b.append_data(&mut h, name, io::empty())
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
            None,
        )
        .expect("exports")
        .entries;
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
            Some(1_700_000_000),
        )
        .expect("exports")
        .entries;
        // `/dir` and what is in it, the links as links (through the clamped writer too).
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

    #[test]
    fn with_an_epoch_the_same_tree_gives_the_same_bytes() {
        use std::os::unix::fs::PermissionsExt;
        let d = tempfile::tempdir().expect("tmp");
        let r = d.path();
        fs::create_dir_all(r.join("out/sub")).expect("mkdir");
        fs::write(r.join("out/sub/file"), "built").expect("w");
        fs::set_permissions(r.join("out/sub/file"), fs::Permissions::from_mode(0o750))
            .expect("chmod");
        symlink("sub/file", r.join("out/link")).expect("ln");
        let write = |name: &str, epoch| {
            let out = d.path().join(name);
            let w =
                write_exports(r, &["/out".into()], &BTreeSet::new(), &out, epoch).expect("exports");
            let bytes = fs::read(&out).expect("tar");
            // The digest taken while writing is the file's.
            assert_eq!(
                w.digest,
                Digest::from_sha256(&sha2::Sha256::digest(&bytes).into())
            );
            bytes
        };
        let epoch = 1_700_000_000;
        let a = write("a.tar", Some(epoch));
        // Rebuilt a second later: the same files, newer times.
        std::thread::sleep(std::time::Duration::from_millis(1100));
        fs::write(r.join("out/sub/file"), "built").expect("w");
        let b = write("b.tar", Some(epoch));
        assert_eq!(a, b, "the same tree, other bytes");
        let plain = write("c.tar", None);
        assert_ne!(a, plain, "without an epoch the times are the files' own");
        // Each entry as the plain writer has it, but for the time.
        let entries = |bytes: &[u8]| {
            let mut t = tar::Archive::new(bytes);
            t.entries()
                .expect("entries")
                .map(|e| {
                    let e = e.expect("entry");
                    let h = e.header();
                    let link = e.link_name().expect("link").map(|l| l.into_owned());
                    (
                        e.path().expect("path").into_owned(),
                        h.mode().expect("mode"),
                        h.entry_type(),
                        h.size().expect("size"),
                        link,
                        h.mtime().expect("mtime"),
                    )
                })
                .collect::<Vec<_>>()
        };
        let (ea, ep) = (entries(&a), entries(&plain));
        assert_eq!(ea.len(), 4);
        for (x, y) in ea.iter().zip(&ep) {
            assert_eq!((&x.0, x.1, x.2, x.3, &x.4), (&y.0, y.1, y.2, y.3, &y.4));
            assert_eq!(x.5, epoch);
        }
    }
}
