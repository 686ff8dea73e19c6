//! Writing COPY/ADD sources into a stage's tree. Every path written is recorded, so the layer
//! is made from that list without walking the filesystem. Destinations are resolved inside the
//! root (a `/lib -> usr/lib` link in the image is followed there, never out of it).

use std::collections::BTreeSet;
use std::ffi::OsString;
use std::fs;
use std::io;
use std::os::unix::fs::{MetadataExt, PermissionsExt, symlink};
use std::path::{Path, PathBuf};

use filetime::FileTime;

use crate::fs::root::{resolve_in_root, scoped_path};
use slipway_frontend::dockerignore::Matcher;

/// Who owns what a COPY writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Owner {
    /// `--chown`, or 0:0 for context files (Docker's rule).
    Set(u32, u32),
    /// Keep the source's owner (COPY --from a stage or an image).
    Keep,
}

impl Owner {
    /// The owner of what a copy makes itself (missing parents, inline files): the `--chown`
    /// owner, else root.
    pub fn of_new(self) -> (u32, u32) {
        match self {
            Owner::Set(u, g) => (u, g),
            Owner::Keep => (0, 0),
        }
    }
}

pub struct CopyOptions<'a> {
    pub owner: Owner,
    /// `--chmod`, applied to every file and directory copied.
    pub chmod: Option<u32>,
    /// `.dockerignore`, with the (canonical) context it is relative to.
    pub ignore: Option<(&'a Matcher, &'a Path)>,
}

/// The paths one COPY/ADD wrote, relative to the root, as they really are in it: raw bytes
/// (a name need not be UTF-8) in an `OsString`, which orders by bytes and so stays cheap for
/// a COPY of many thousand files, as [`crate::layer::snapshot::Snapshot`]'s keys do.
#[derive(Debug, Default)]
pub struct Written {
    pub paths: BTreeSet<OsString>,
}

impl Written {
    pub fn record(&mut self, root: &Path, p: &Path) {
        if let Ok(rel) = p.strip_prefix(root)
            && !rel.as_os_str().is_empty()
        {
            self.paths.insert(rel.as_os_str().to_os_string());
        }
    }
}

/// A `--chmod` value that is not an octal mode.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid --chmod={spec}: only octal modes such as 0755 are supported")]
pub struct ChmodError {
    pub spec: String,
}

fn chown(p: &Path, uid: u32, gid: u32) -> io::Result<()> {
    nix::unistd::fchownat(
        nix::fcntl::AT_FDCWD,
        p,
        Some(uid.into()),
        Some(gid.into()),
        nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
    )
    .map_err(io::Error::from)
}

/// Creates the missing directories of the in-image directory `dest_rel` (relative to `root`,
/// symlinks in it resolved inside the root) with `mode` and the owner; returns the real
/// directory. A COPY or ADD makes them with its `--chmod` mode when it has one, else 0755
/// (BuildKit's fsutil `MkdirAll` with the copy's mode).
pub fn make_dirs(
    root: &Path,
    dest_rel: &str,
    owner: (u32, u32),
    mode: u32,
    out: &mut Written,
) -> io::Result<PathBuf> {
    let mut cur = PathBuf::new();
    let mut real = root.to_path_buf();
    for part in dest_rel.split('/').filter(|p| !p.is_empty()) {
        cur.push(part);
        // Follow a symlink at this level too (a directory link in the image).
        let resolved = resolve_in_root(root, &cur)?;
        if resolved.is_dir() {
            real = resolved;
            continue;
        }
        // Not a directory: whatever is at this very name (a file, a dangling link) goes.
        real = scoped_path(root, &cur)?;
        if fs::symlink_metadata(&real).is_ok() {
            fs::remove_file(&real)?;
        }
        fs::create_dir(&real)?;
        fs::set_permissions(&real, fs::Permissions::from_mode(mode))?;
        chown(&real, owner.0, owner.1)?;
        out.record(root, &real);
        cur = real.strip_prefix(root).unwrap_or(&cur).to_path_buf();
    }
    Ok(real)
}

fn ids(opts: &CopyOptions, m: &fs::Metadata) -> (u32, u32) {
    match opts.owner {
        Owner::Set(u, g) => (u, g),
        Owner::Keep => (m.uid(), m.gid()),
    }
}

/// Copies one entry (not recursing) from `src` to `dst`, replacing what is in the way.
fn copy_entry(src: &Path, dst: &Path, opts: &CopyOptions) -> io::Result<bool> {
    let m = fs::symlink_metadata(src)?;
    let ft = m.file_type();
    let existing = fs::symlink_metadata(dst).ok();
    if let Some(e) = &existing
        && !(e.is_dir() && ft.is_dir())
    {
        if e.is_dir() {
            fs::remove_dir_all(dst)?;
        } else {
            fs::remove_file(dst)?;
        }
    }
    let (uid, gid) = ids(opts, &m);
    let mode = opts.chmod.unwrap_or(m.mode() & 0o7777);
    if ft.is_dir() {
        if !dst.is_dir() {
            fs::create_dir(dst)?;
        }
    } else if ft.is_symlink() {
        symlink(fs::read_link(src)?, dst)?;
        chown(dst, uid, gid)?;
        let t = FileTime::from_last_modification_time(&m);
        filetime::set_symlink_file_times(dst, t, t)?;
        return Ok(true);
    } else if ft.is_file() {
        fs::copy(src, dst)?;
    } else {
        return Ok(false); // sockets, fifos and devices are not copied from a context
    }
    chown(dst, uid, gid)?;
    fs::set_permissions(dst, fs::Permissions::from_mode(mode))?;
    let t = FileTime::from_last_modification_time(&m);
    filetime::set_file_times(dst, t, t)?;
    Ok(true)
}

/// Copies `src` (a file, or a directory whose contents go into `dst`) to the absolute
/// in-image path `dest`, creating missing parents.
pub fn copy_source(
    root: &Path,
    src: &Path,
    is_dir: bool,
    dest: &str,
    opts: &CopyOptions,
    out: &mut Written,
) -> io::Result<()> {
    let parent_owner = opts.owner.of_new();
    let dir_mode = opts.chmod.unwrap_or(0o755);
    let dest_rel = dest.trim_start_matches('/');
    if is_dir {
        let dir = make_dirs(root, dest_rel, parent_owner, dir_mode, out)?;
        // The top directory takes the source's metadata only when the COPY made it.
        copy_children(root, src, &dir, opts, out)
    } else {
        let (parent, name) = match dest_rel.rsplit_once('/') {
            Some((p, n)) => (p, n),
            None => ("", dest_rel),
        };
        let dir = make_dirs(root, parent, parent_owner, dir_mode, out)?;
        let dst = dir.join(name);
        if copy_entry(src, &dst, opts)? {
            out.record(root, &dst);
        }
        Ok(())
    }
}

fn ignored(opts: &CopyOptions, src: &Path) -> bool {
    let Some((m, ctx)) = opts.ignore else {
        return false;
    };
    // Patterns are text: a name that is not UTF-8 is matched in its lossy form.
    match src.strip_prefix(ctx) {
        Ok(rel) => m.matches_or_parent_matches(&rel.to_string_lossy()),
        Err(_) => false,
    }
}

fn copy_children(
    root: &Path,
    src_dir: &Path,
    dst_dir: &Path,
    opts: &CopyOptions,
    out: &mut Written,
) -> io::Result<()> {
    let mut names: Vec<_> = fs::read_dir(src_dir)?
        .flatten()
        .map(|e| e.file_name())
        .collect();
    names.sort();
    for n in names {
        let s = src_dir.join(&n);
        if ignored(opts, &s) {
            continue;
        }
        let d = dst_dir.join(&n);
        if copy_entry(&s, &d, opts)? {
            out.record(root, &d);
            if fs::symlink_metadata(&s)?.is_dir() {
                copy_children(root, &s, &d, opts, out)?;
                // Writing children moved the directory's mtime: put the source's back.
                let t = FileTime::from_last_modification_time(&fs::metadata(&s)?);
                filetime::set_file_times(&d, t, t)?;
            }
        }
    }
    Ok(())
}

/// Writes an inline file (a COPY heredoc, a downloaded URL) at `dest` with `mode`; missing
/// parents get `dir_mode`.
#[allow(clippy::too_many_arguments)]
pub fn write_file(
    root: &Path,
    dest: &str,
    data: &[u8],
    mode: u32,
    dir_mode: u32,
    owner: (u32, u32),
    mtime: Option<FileTime>,
    out: &mut Written,
) -> io::Result<()> {
    let dest_rel = dest.trim_start_matches('/');
    let (parent, name) = match dest_rel.rsplit_once('/') {
        Some((p, n)) => (p, n),
        None => ("", dest_rel),
    };
    let dir = make_dirs(root, parent, owner, dir_mode, out)?;
    let dst = dir.join(name);
    if let Ok(m) = fs::symlink_metadata(&dst) {
        if m.is_dir() {
            fs::remove_dir_all(&dst)?;
        } else {
            fs::remove_file(&dst)?;
        }
    }
    fs::write(&dst, data)?;
    chown(&dst, owner.0, owner.1)?;
    fs::set_permissions(&dst, fs::Permissions::from_mode(mode))?;
    if let Some(t) = mtime {
        filetime::set_file_times(&dst, t, t)?;
    }
    out.record(root, &dst);
    Ok(())
}

/// `--chmod`: octal digits (symbolic modes are not supported yet).
pub fn parse_chmod(s: &str) -> Result<u32, ChmodError> {
    u32::from_str_radix(s, 8)
        .ok()
        .filter(|m| *m <= 0o7777)
        .ok_or_else(|| ChmodError {
            spec: s.to_string(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chmod_octal_only() {
        assert_eq!(parse_chmod("755"), Ok(0o755));
        assert_eq!(parse_chmod("0640"), Ok(0o640));
        assert_eq!(
            parse_chmod("u+x").map_err(|e| e.to_string()),
            Err("invalid --chmod=u+x: only octal modes such as 0755 are supported".into())
        );
        assert!(parse_chmod("17777").is_err());
    }

    #[test]
    fn copies_record_what_they_write() {
        let ctx = tempfile::tempdir().expect("tmp");
        let root = tempfile::tempdir().expect("tmp");
        let c = ctx.path();
        fs::create_dir_all(c.join("src/sub")).expect("mkdir");
        fs::write(c.join("src/a.txt"), "a").expect("w");
        fs::write(c.join("src/sub/b.txt"), "b").expect("w");
        fs::write(c.join("src/skip.log"), "x").expect("w");
        symlink("a.txt", c.join("src/link")).expect("ln");
        // The image has /lib -> usr/lib.
        fs::create_dir_all(root.path().join("usr/lib")).expect("mkdir");
        symlink("usr/lib", root.path().join("lib")).expect("ln");

        let m = Matcher::new(&["src/*.log"]).expect("patterns");
        let me = (
            nix::unistd::getuid().as_raw(),
            nix::unistd::getgid().as_raw(),
        );
        let opts = CopyOptions {
            owner: Owner::Set(me.0, me.1),
            chmod: None,
            ignore: Some((&m, c)),
        };
        let mut w = Written::default();
        copy_source(root.path(), &c.join("src"), true, "/lib/app", &opts, &mut w).expect("copy");
        let got: Vec<&str> = w.paths.iter().filter_map(|p| p.to_str()).collect();
        assert_eq!(
            got,
            vec![
                "usr/lib/app",
                "usr/lib/app/a.txt",
                "usr/lib/app/link",
                "usr/lib/app/sub",
                "usr/lib/app/sub/b.txt"
            ]
        );
        assert!(!root.path().join("usr/lib/app/skip.log").exists());
        assert_eq!(
            fs::read_link(root.path().join("usr/lib/app/link")).expect("link"),
            Path::new("a.txt")
        );
    }

    #[test]
    fn chmod_applies_to_the_directories_a_copy_makes() {
        // As BuildKit: `COPY --chmod=751 sub/ /out/modes` makes /out and /out/modes 0751,
        // `COPY --chmod=700 a rel/` makes rel/ 0700 (0600 there too: the engine runs as root);
        // a directory already there keeps its mode, and without --chmod new ones are 0755.
        let ctx = tempfile::tempdir().expect("tmp");
        let root = tempfile::tempdir().expect("tmp");
        let (c, r) = (ctx.path(), root.path());
        fs::create_dir_all(c.join("sub/deeper")).expect("mkdir");
        fs::write(c.join("sub/deeper/x"), "x").expect("w");
        fs::write(c.join("a"), "a").expect("w");
        fs::create_dir(r.join("kept")).expect("mkdir");
        fs::set_permissions(r.join("kept"), fs::Permissions::from_mode(0o750)).expect("chmod");
        let me = (
            nix::unistd::getuid().as_raw(),
            nix::unistd::getgid().as_raw(),
        );
        let opts = |chmod| CopyOptions {
            owner: Owner::Set(me.0, me.1),
            chmod,
            ignore: None,
        };
        let mode = |p: &str| fs::symlink_metadata(r.join(p)).expect(p).mode() & 0o7777;
        let mut w = Written::default();
        copy_source(
            r,
            &c.join("sub"),
            true,
            "/out/modes",
            &opts(Some(0o751)),
            &mut w,
        )
        .expect("copy dir");
        copy_source(r, &c.join("a"), false, "/rel/a", &opts(Some(0o700)), &mut w)
            .expect("copy file");
        copy_source(
            r,
            &c.join("a"),
            false,
            "/kept/a",
            &opts(Some(0o700)),
            &mut w,
        )
        .expect("copy into existing");
        copy_source(r, &c.join("a"), false, "/plain/a", &opts(None), &mut w).expect("plain");
        assert_eq!(
            [mode("out"), mode("out/modes"), mode("out/modes/deeper")],
            [0o751; 3]
        );
        assert_eq!(mode("out/modes/deeper/x"), 0o751);
        assert_eq!([mode("rel"), mode("rel/a")], [0o700, 0o700]);
        assert_eq!(mode("kept"), 0o750);
        assert_eq!(mode("plain"), 0o755);
    }

    #[test]
    fn names_that_are_not_utf8_are_copied_as_they_are() {
        use std::ffi::OsStr;
        use std::os::unix::ffi::OsStrExt;
        let raw = |b: &[u8]| PathBuf::from(OsStr::from_bytes(b));
        let src = tempfile::tempdir().expect("tmp");
        let root = tempfile::tempdir().expect("tmp");
        let s = src.path();
        fs::create_dir_all(s.join(raw(b"data/dir\xe9"))).expect("mkdir");
        fs::write(s.join(raw(b"data/dir\xe9/caf\xe9")), "c").expect("w");
        symlink(raw(b"dir\xe9/caf\xe9"), s.join(raw(b"data/link\xff"))).expect("ln");
        let opts = CopyOptions {
            owner: Owner::Keep,
            chmod: None,
            ignore: None,
        };
        let mut w = Written::default();
        copy_source(root.path(), &s.join("data"), true, "/copied", &opts, &mut w).expect("copy");
        let want: BTreeSet<OsString> = [
            raw(b"copied"),
            raw(b"copied/dir\xe9"),
            raw(b"copied/dir\xe9/caf\xe9"),
            raw(b"copied/link\xff"),
        ]
        .into_iter()
        .map(PathBuf::into_os_string)
        .collect();
        assert_eq!(w.paths, want);
        let r = root.path();
        assert_eq!(
            fs::read(r.join(raw(b"copied/link\xff"))).expect("through"),
            b"c"
        );
        assert_eq!(
            fs::read_link(r.join(raw(b"copied/link\xff"))).expect("link"),
            raw(b"dir\xe9/caf\xe9")
        );
    }
}
