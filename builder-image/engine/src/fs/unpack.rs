//! Applying a layer to a root filesystem: base image layers, and a parent stage's layers for
//! `FROM <stage>`. Whiteouts delete, an opaque marker empties a directory of what lower layers
//! put there, and nothing is ever written outside the root: `..` entries are refused, and
//! symlinks met on the way are resolved inside the root, never followed out of it.
//!
//! A layer is untrusted: of its extended attributes only `user.*` and `security.capability`
//! are set ([`xattr_allowed`]); `trusted.*` (overlayfs's own opaque and redirect markers, on
//! the host's base trees that local mode uses as overlay lower layers), other `security.*`
//! labels and ACLs are skipped (L7). Owners, modes (setuid included) and device nodes are kept,
//! as an image needs them; local mode unpacks only into its 0700 state directory, where no
//! other user of the host reaches them (H6).

use std::collections::BTreeSet;
use std::ffi::OsStr;
use std::fs;
use std::io::{self, BufRead, BufReader, Read};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::{Component, Path, PathBuf};

use filetime::FileTime;
use flate2::read::GzDecoder;

use crate::fs::root::scoped_path;
use crate::workspace::ImageInfo;

/// The marker that empties a directory of what lower layers put there.
const OPAQUE: &[u8] = b".wh..wh..opq";
/// The prefix of a whiteout: `.wh.NAME` deletes `NAME`.
const WHITEOUT: &[u8] = b".wh.";

/// The extended attributes a layer may set (and a snapshot may capture): `user.*` and file
/// capabilities; nothing that overlayfs, an LSM or the ACL code would act on.
pub fn xattr_allowed(name: &str) -> bool {
    name.starts_with("user.") || name == "security.capability"
}

#[derive(Debug, thiserror::Error)]
pub enum UnpackError {
    #[error("layer entry {entry:?} would land outside the root")]
    OutsideRoot { entry: String },
    /// `.wh.`, `.wh..`, `.wh...`: a whiteout that names no file of its directory (it would
    /// delete the directory, or its parent: BuildKit CVE-2024-23652's class).
    #[error("layer entry {entry:?} is not a valid whiteout: it names no file in its directory")]
    BadWhiteout { entry: String },
    #[error("layer entry {entry:?}: {source}")]
    Entry { entry: String, source: io::Error },
    #[error("reading layer: {0}")]
    Read(#[from] io::Error),
}

/// An image could not be unpacked: a file, or one of its layers, named.
#[derive(Debug, thiserror::Error)]
pub enum ImageUnpackError {
    #[error(transparent)]
    Io(#[from] super::PathError),
    #[error("{image}: layer {digest}: {source}")]
    Layer {
        image: String,
        digest: String,
        #[source]
        source: UnpackError,
    },
}

/// Applies an image's layers (from the paths its [`ImageInfo`] names) to `dir`.
pub fn unpack_image(info: &ImageInfo, dir: &Path) -> Result<(), ImageUnpackError> {
    fs::create_dir_all(dir).map_err(super::at(dir))?;
    for l in &info.layers {
        let f = fs::File::open(&l.path).map_err(super::at(&l.path))?;
        apply_layer(f, dir, true).map_err(|source| ImageUnpackError::Layer {
            image: info.reference.clone(),
            digest: l.digest.clone(),
            source,
        })?;
    }
    Ok(())
}

/// The entry's path inside the root, relative and without `.`; `None` for the root itself.
fn entry_rel(raw: &Path) -> Result<Option<PathBuf>, ()> {
    let mut out = PathBuf::new();
    for c in raw.components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::CurDir | Component::RootDir => {}
            Component::ParentDir | Component::Prefix(_) => return Err(()),
        }
    }
    Ok(if out.as_os_str().is_empty() {
        None
    } else {
        Some(out)
    })
}

fn remove_any(p: &Path) -> io::Result<()> {
    match fs::symlink_metadata(p) {
        Ok(m) if m.is_dir() => fs::remove_dir_all(p),
        Ok(_) => fs::remove_file(p),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

/// Applies one layer (gzip'd or plain tar) to `root`. `chown`: set owners from the entries
/// (needs root).
pub fn apply_layer(layer: impl Read, root: &Path, chown: bool) -> Result<(), UnpackError> {
    let opts = ApplyOptions {
        chown,
        owner: None,
        whiteouts: true,
    };
    apply_tar(layer, root, &opts).map(|_| ())
}

/// How [`apply_tar`] treats entries.
#[derive(Debug, Clone, Copy)]
pub struct ApplyOptions {
    /// Set owners (from the entries, or `owner`); needs root.
    pub chown: bool,
    /// One owner for everything (ADD --chown of an archive).
    pub owner: Option<(u32, u32)>,
    /// `.wh.` names are whiteouts (image layers), not files (a user's archive).
    pub whiteouts: bool,
}

/// Applies a tar (gzip'd or plain) to `root`; returns the paths it wrote.
pub fn apply_tar(
    layer: impl Read,
    root: &Path,
    opts: &ApplyOptions,
) -> Result<BTreeSet<PathBuf>, UnpackError> {
    let chown = opts.chown;
    let mut buf = BufReader::new(layer);
    let gz = buf.fill_buf()?.starts_with(&[0x1f, 0x8b]);
    let reader: Box<dyn Read> = if gz {
        Box::new(GzDecoder::new(buf))
    } else {
        Box::new(buf)
    };
    let mut ar = tar::Archive::new(reader);
    // Paths this layer wrote: an opaque marker hides only what lower layers had.
    let mut written: BTreeSet<PathBuf> = BTreeSet::new();
    let mut dir_times: Vec<(PathBuf, FileTime)> = Vec::new();

    for entry in ar.entries()? {
        let mut e = entry?;
        let raw = e.path()?.into_owned();
        let name = raw.to_string_lossy().into_owned();
        let fail = |source: io::Error| UnpackError::Entry {
            entry: name.clone(),
            source,
        };
        let Some(rel) = entry_rel(&raw).map_err(|_| UnpackError::OutsideRoot {
            entry: name.clone(),
        })?
        else {
            continue;
        };
        // The entry's own name, raw: a whiteout hides a name that need not be UTF-8.
        let file_name = rel.file_name().map_or(&b""[..], OsStr::as_bytes);
        let dest = scoped_path(root, &rel).map_err(fail)?;
        if !dest.starts_with(root) {
            return Err(UnpackError::OutsideRoot { entry: name });
        }

        if opts.whiteouts && file_name == OPAQUE {
            let dir = dest.parent().unwrap_or(root);
            if let Ok(rd) = fs::read_dir(dir) {
                for child in rd.flatten() {
                    let p = child.path();
                    if !written.contains(&p) {
                        remove_any(&p).map_err(fail)?;
                    }
                }
            }
            continue;
        }
        if let Some(hidden) = file_name.strip_prefix(WHITEOUT).filter(|_| opts.whiteouts) {
            if matches!(hidden, b"" | b"." | b"..") || hidden.contains(&b'/') {
                return Err(UnpackError::BadWhiteout { entry: name });
            }
            let target = dest.with_file_name(OsStr::from_bytes(hidden));
            remove_any(&target).map_err(fail)?;
            continue;
        }

        if let Some(parent) = dest.parent() {
            fs::create_dir_all(parent).map_err(fail)?;
        }
        let h = e.header().clone();
        let xattrs: Vec<(String, Vec<u8>)> = match e.pax_extensions().map_err(fail)? {
            Some(exts) => exts
                .flatten()
                .filter_map(|x| {
                    let key = x.key().ok()?.strip_prefix("SCHILY.xattr.")?.to_string();
                    xattr_allowed(&key).then(|| (key, x.value_bytes().to_vec()))
                })
                .collect(),
            None => Vec::new(),
        };
        let mode = h.mode().map_err(fail)?;
        let kind = h.entry_type();
        // Whatever is in the way goes, except a directory a directory entry updates.
        let existing_dir = fs::symlink_metadata(&dest)
            .map(|m| m.is_dir())
            .unwrap_or(false);
        if !(kind.is_dir() && existing_dir) {
            remove_any(&dest).map_err(fail)?;
        }
        match kind {
            tar::EntryType::Directory => {
                fs::create_dir_all(&dest).map_err(fail)?;
                fs::set_permissions(&dest, fs::Permissions::from_mode(mode)).map_err(fail)?;
            }
            tar::EntryType::Regular | tar::EntryType::Continuous => {
                let mut f = fs::File::create(&dest).map_err(fail)?;
                io::copy(&mut e, &mut f).map_err(fail)?;
                fs::set_permissions(&dest, fs::Permissions::from_mode(mode)).map_err(fail)?;
            }
            tar::EntryType::Symlink => {
                let target = e
                    .link_name()
                    .map_err(fail)?
                    .unwrap_or_default()
                    .into_owned();
                symlink(&target, &dest).map_err(fail)?;
            }
            tar::EntryType::Link => {
                let target = e
                    .link_name()
                    .map_err(fail)?
                    .unwrap_or_default()
                    .into_owned();
                let trel = entry_rel(&target).map_err(|_| UnpackError::OutsideRoot {
                    entry: name.clone(),
                })?;
                let Some(trel) = trel else {
                    return Err(UnpackError::OutsideRoot { entry: name });
                };
                let src = scoped_path(root, &trel).map_err(fail)?;
                if !src.starts_with(root) {
                    return Err(UnpackError::OutsideRoot { entry: name });
                }
                fs::hard_link(&src, &dest).map_err(fail)?;
            }
            tar::EntryType::Fifo | tar::EntryType::Char | tar::EntryType::Block => {
                use nix::sys::stat::{Mode, SFlag, makedev, mknod};
                let sflag = match kind {
                    tar::EntryType::Fifo => SFlag::S_IFIFO,
                    tar::EntryType::Char => SFlag::S_IFCHR,
                    _ => SFlag::S_IFBLK,
                };
                let major = h.device_major().ok().flatten().unwrap_or(0);
                let minor = h.device_minor().ok().flatten().unwrap_or(0);
                mknod(
                    &dest,
                    sflag,
                    Mode::from_bits_truncate(mode),
                    makedev(major.into(), minor.into()),
                )
                .map_err(|errno| fail(io::Error::from(errno)))?;
            }
            _ => continue, // pax headers and the like carry no file
        }
        if chown {
            let (uid, gid) = match opts.owner {
                Some(ids) => ids,
                None => (h.uid().map_err(fail)? as u32, h.gid().map_err(fail)? as u32),
            };
            nix::unistd::fchownat(
                nix::fcntl::AT_FDCWD,
                &dest,
                Some(uid.into()),
                Some(gid.into()),
                nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
            )
            .map_err(|errno| fail(io::Error::from(errno)))?;
            if kind != tar::EntryType::Symlink && mode & 0o7000 != 0 {
                // chown clears setuid/setgid: put the mode back.
                fs::set_permissions(&dest, fs::Permissions::from_mode(mode)).map_err(fail)?;
            }
        }
        // After chown, which drops security.capability.
        for (k, v) in &xattrs {
            xattr::set(&dest, k, v).map_err(fail)?;
        }
        let mtime = FileTime::from_unix_time(h.mtime().unwrap_or(0) as i64, 0);
        if kind.is_dir() {
            dir_times.push((dest.clone(), mtime));
        } else {
            filetime::set_symlink_file_times(&dest, mtime, mtime).map_err(fail)?;
        }
        written.insert(dest);
    }
    // Directory times last: writing their contents changed them.
    for (d, t) in dir_times.into_iter().rev() {
        let _ = filetime::set_file_times(&d, t, t);
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layer::writer::{LayerWriter, Meta};

    fn m(mode: u32) -> Meta {
        Meta {
            mode,
            uid: 0,
            gid: 0,
            mtime: 1_600_000_000,
        }
    }

    fn layer(build: impl FnOnce(&mut LayerWriter<Vec<u8>>)) -> Vec<u8> {
        let mut w = LayerWriter::new(Vec::new(), flate2::Compression::fast());
        build(&mut w);
        w.finish().expect("finish").0
    }

    #[test]
    fn layers_stack_with_whiteouts_and_opaque_dirs() {
        let root = tempfile::tempdir().expect("tmp");
        let r = root.path();
        let base = layer(|w| {
            w.add_dir("usr", m(0o755)).expect("layer entry");
            w.add_dir("usr/lib", m(0o755)).expect("layer entry");
            w.add_file("usr/lib/a.so", m(0o644), 1, &b"a"[..])
                .expect("layer entry");
            w.add_symlink("lib", m(0o777), "usr/lib")
                .expect("layer entry");
            w.add_dir("etc", m(0o755)).expect("layer entry");
            w.add_file("etc/old", m(0o600), 3, &b"old"[..])
                .expect("layer entry");
            w.add_dir("cache", m(0o755)).expect("layer entry");
            w.add_file("cache/stale", m(0o644), 1, &b"s"[..])
                .expect("layer entry");
        });
        apply_layer(&base[..], r, false).expect("base");
        let top = layer(|w| {
            // Through the /lib symlink, as merged-/usr images do.
            w.add_file("lib/b.so", m(0o755), 1, &b"b"[..])
                .expect("layer entry");
            w.add_whiteout("etc/old").expect("layer entry");
            w.add_dir("cache", m(0o700)).expect("layer entry");
            w.add_opaque("cache").expect("layer entry");
            w.add_file("cache/fresh", m(0o644), 1, &b"f"[..])
                .expect("layer entry");
            w.add_hardlink("cache/fresh2", m(0o644), "cache/fresh")
                .expect("layer entry");
        });
        apply_layer(&top[..], r, false).expect("top");
        assert_eq!(fs::read(r.join("usr/lib/b.so")).expect("b"), b"b");
        assert!(
            fs::symlink_metadata(r.join("lib"))
                .expect("lib")
                .file_type()
                .is_symlink()
        );
        assert!(!r.join("etc/old").exists());
        assert!(r.join("etc").is_dir());
        assert!(!r.join("cache/stale").exists());
        assert_eq!(fs::read(r.join("cache/fresh2")).expect("link"), b"f");
        assert_eq!(
            fs::metadata(r.join("cache"))
                .expect("cache")
                .permissions()
                .mode()
                & 0o777,
            0o700
        );
        assert_eq!(
            fs::metadata(r.join("usr/lib/a.so"))
                .expect("a")
                .modified()
                .expect("mtime"),
            std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_600_000_000)
        );
    }

    #[test]
    fn xattrs_survive_snapshot_layer_and_unpack() {
        use crate::layer::snapshot::{diff, walk, write_changes};
        let src = tempfile::tempdir().expect("tmp");
        let before = walk(src.path(), &Default::default(), 1).expect("walk");
        let f = src.path().join("tool");
        fs::write(&f, "bin").expect("write");
        if xattr::set(&f, "user.slipway", b"yes").is_err() {
            eprintln!("skipped: this filesystem has no user xattrs");
            return;
        }
        let after = walk(src.path(), &Default::default(), 1).expect("walk");
        let mut w = LayerWriter::new(Vec::new(), flate2::Compression::fast());
        write_changes(src.path(), &after, &diff(&before, &after), &mut w).expect("write");
        let (blob, _) = w.finish().expect("finish");
        let dst = tempfile::tempdir().expect("tmp");
        apply_layer(&blob[..], dst.path(), false).expect("apply");
        assert_eq!(
            xattr::get(dst.path().join("tool"), "user.slipway").expect("get"),
            Some(b"yes".to_vec())
        );
    }

    /// L7: of an untrusted layer's xattrs only `user.*` and `security.capability` are set;
    /// overlayfs's `trusted.overlay.*` markers and `security.*` labels never reach the tree.
    #[test]
    fn only_user_xattrs_and_file_capabilities_are_applied() {
        assert!(xattr_allowed("user.mime_type"));
        assert!(xattr_allowed("security.capability"));
        for name in [
            "trusted.overlay.opaque",
            "trusted.overlay.redirect",
            "security.selinux",
            "security.ima",
            "system.posix_acl_access",
            "userx",
        ] {
            assert!(!xattr_allowed(name), "{name}");
        }
        let mut b = tar::Builder::new(Vec::new());
        b.append_pax_extensions([
            ("SCHILY.xattr.trusted.overlay.opaque", &b"y"[..]),
            (
                "SCHILY.xattr.security.selinux",
                &b"system_u:object_r:shadow_t:s0"[..],
            ),
            ("SCHILY.xattr.user.slipway", &b"kept"[..]),
        ])
        .expect("pax");
        let mut h = tar::Header::new_ustar();
        h.set_entry_type(tar::EntryType::Directory);
        h.set_path("dir").expect("path");
        h.set_mode(0o755);
        h.set_size(0);
        h.set_cksum();
        b.append(&h, &b""[..]).expect("append");
        let evil = b.into_inner().expect("tar");
        let root = tempfile::tempdir().expect("tmp");
        apply_layer(&evil[..], root.path(), false).expect("apply");
        let dir = root.path().join("dir");
        assert!(dir.is_dir());
        let names: Vec<String> = xattr::list(&dir)
            .map(|l| l.map(|n| n.to_string_lossy().into_owned()).collect())
            .unwrap_or_default();
        assert!(
            !names.iter().any(|n| n.starts_with("trusted.")),
            "{names:?}"
        );
        assert!(
            !names.iter().any(|n| n == "security.selinux") || selinux_labels_everything(),
            "{names:?}"
        );
    }

    /// On an SELinux host every file has a label whatever the layer said.
    fn selinux_labels_everything() -> bool {
        Path::new("/sys/fs/selinux/enforce").exists()
    }

    #[test]
    fn whiteouts_of_no_name_are_refused() {
        // `.wh..` (CVE-2024-23652's class) would remove the parent's `.`, `.wh...` its `..`,
        // `.wh.` the directory itself.
        for bad in [".wh..", ".wh...", ".wh."] {
            let outer = tempfile::tempdir().expect("tmp");
            let root = outer.path().join("root");
            fs::create_dir_all(root.join("dir")).expect("mkdir");
            fs::write(root.join("dir/keep"), "k").expect("w");
            fs::write(outer.path().join("beside"), "b").expect("w");
            for entry in [format!("dir/{bad}"), bad.to_string()] {
                let evil = layer(|w| {
                    w.add_file(&entry, m(0o644), 0, &b""[..])
                        .expect("layer entry");
                });
                let err = apply_layer(&evil[..], &root, false).expect_err(&entry);
                assert_eq!(
                    err.to_string(),
                    format!(
                        "layer entry {entry:?} is not a valid whiteout: it names no file in its \
                         directory"
                    )
                );
                assert!(root.join("dir/keep").exists(), "{entry}");
                assert!(outer.path().join("beside").exists(), "{entry}");
            }
        }
    }

    #[test]
    fn entries_outside_the_root_are_refused() {
        let outer = tempfile::tempdir().expect("tmp");
        let root = outer.path().join("root");
        fs::create_dir(&root).expect("mkdir");
        // A raw tar with a `..` entry (LayerWriter would not write one).
        let mut b = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        h.set_size(1);
        h.set_mode(0o644);
        h.as_gnu_mut().expect("gnu").name[..9].copy_from_slice(b"../escape");
        h.set_cksum();
        b.append(&h, &b"x"[..]).expect("append");
        let evil = b.into_inner().expect("tar");
        let err = apply_layer(&evil[..], &root, false).expect_err("refused");
        assert!(matches!(err, UnpackError::OutsideRoot { .. }), "{err}");
        assert!(!outer.path().join("escape").exists());

        // A symlink that points out of the root is resolved inside it.
        let sneaky = layer(|w| {
            w.add_symlink("up", m(0o777), "/../../..")
                .expect("layer entry");
            w.add_file("up/planted", m(0o644), 1, &b"p"[..])
                .expect("layer entry");
            w.add_hardlink("hl", m(0o644), "up/planted")
                .expect("layer entry");
        });
        apply_layer(&sneaky[..], &root, false).expect("applies inside");
        assert!(root.join("planted").exists());
        assert!(!outer.path().join("planted").exists());
        assert!(
            fs::symlink_metadata(root.join("up"))
                .expect("up")
                .file_type()
                .is_symlink()
        );
    }
}
