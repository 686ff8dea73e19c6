//! The content root ([`slipway_frontend::cache_key::ContentRoot`]) of what a COPY/ADD takes:
//! the sources [`plan_copy`](crate::stage::copy_sources::plan_copy) selected (globs expanded,
//! `.dockerignore` applied), walked the way [`copy_source`](crate::fs::copy::copy_source)
//! copies them (a directory's children by name, ignored ones skipped, symlinks never
//! followed), each entry as it will land: its path relative to `from` (raw bytes), type,
//! mode after `--chmod`, owner after `--chown`, link target and content sha256. Not the
//! mtime: touching a file, or a fresh checkout, keeps the root.

use std::fs;
use std::io::{self, Read};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;

use sha2::{Digest, Sha256};
use slipway_frontend::cache_key::{ContentRoot, Entry, EntryKind};

use crate::fs::copy::{CopyOptions, Owner};
use crate::fs::{PathError, at};

/// The content root of the selected `sources` (files, directories, links: a directory with
/// everything under it), paths relative to `from` (the context, or a stage's tree).
pub fn of_sources<'a>(
    from: &Path,
    sources: impl IntoIterator<Item = &'a Path>,
    opts: &CopyOptions,
) -> Result<ContentRoot, PathError> {
    let mut entries = Vec::new();
    for source in sources {
        walk(from, source, opts, &mut entries)?;
    }
    // Overlapping sources (`COPY src src/a.go /x/`) name one file twice, identically.
    entries.sort_by(|a, b| a.path.cmp(&b.path));
    entries.dedup();
    ContentRoot::of(entries).map_err(|d| PathError {
        path: from.join(std::ffi::OsStr::from_bytes(&d.0)),
        source: io::Error::other("listed twice with different contents"),
    })
}

fn ignored(opts: &CopyOptions, p: &Path) -> bool {
    let Some((m, ctx)) = opts.ignore else {
        return false;
    };
    // As the copy matches: the lossy text of the context-relative path.
    p.strip_prefix(ctx)
        .is_ok_and(|rel| m.matches_or_parent_matches(&rel.to_string_lossy()))
}

fn walk(from: &Path, p: &Path, opts: &CopyOptions, out: &mut Vec<Entry>) -> Result<(), PathError> {
    let meta = fs::symlink_metadata(p).map_err(at(p))?;
    let t = meta.file_type();
    let kind = if t.is_dir() {
        EntryKind::Dir
    } else if t.is_file() {
        EntryKind::File {
            sha256: sha256_file(p).map_err(at(p))?,
        }
    } else if t.is_symlink() {
        let target = fs::read_link(p).map_err(at(p))?;
        EntryKind::Symlink {
            target: target.as_os_str().as_bytes().to_vec(),
        }
    } else if t.is_fifo() {
        EntryKind::Fifo
    } else if t.is_char_device() {
        EntryKind::CharDevice { rdev: meta.rdev() }
    } else if t.is_block_device() {
        EntryKind::BlockDevice { rdev: meta.rdev() }
    } else {
        // A socket is never copied.
        return Ok(());
    };
    let (uid, gid) = match opts.owner {
        Owner::Set(u, g) => (u, g),
        Owner::Keep => (meta.uid(), meta.gid()),
    };
    let mode = match (opts.chmod, &kind) {
        (Some(m), EntryKind::Dir | EntryKind::File { .. }) => m,
        _ => meta.mode() & 0o7777,
    };
    let rel = p.strip_prefix(from).unwrap_or(p).as_os_str().as_bytes();
    let path = if rel.is_empty() {
        b".".to_vec()
    } else {
        rel.to_vec()
    };
    out.push(Entry {
        path,
        kind: kind.clone(),
        mode,
        uid,
        gid,
    });
    if kind == EntryKind::Dir {
        let mut names: Vec<_> = fs::read_dir(p)
            .map_err(at(p))?
            .map(|e| e.map(|e| e.file_name()))
            .collect::<Result<_, _>>()
            .map_err(at(p))?;
        names.sort();
        for n in names {
            let child = p.join(n);
            if !ignored(opts, &child) {
                walk(from, &child, opts, out)?;
            }
        }
    }
    Ok(())
}

fn sha256_file(p: &Path) -> io::Result<[u8; 32]> {
    let mut f = fs::File::open(p)?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            return Ok(h.finalize().into());
        }
        h.update(&buf[..n]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::OsStr;
    use std::os::unix::fs::{PermissionsExt, symlink};

    use slipway_frontend::dockerignore::Matcher;

    use crate::stage::copy_sources::plan_copy;

    fn of_items(
        from: &Path,
        items: &[crate::stage::copy_sources::CopyItem],
        opts: &CopyOptions,
    ) -> Result<ContentRoot, PathError> {
        of_sources(from, items.iter().map(|i| i.source.as_path()), opts)
    }

    fn tree() -> tempfile::TempDir {
        let d = tempfile::tempdir().expect("tmp");
        let r = d.path();
        fs::create_dir_all(r.join("src/sub")).expect("mkdir");
        fs::write(r.join("src/a.go"), "package a").expect("w");
        fs::write(r.join("src/sub/b.go"), "package b").expect("w");
        fs::write(r.join(OsStr::from_bytes(b"src/caf\xe9")), "latin-1").expect("w");
        symlink("a.go", r.join("src/link")).expect("symlink");
        fs::write(r.join("src/.env"), "SECRET=1").expect("w");
        d
    }

    /// The root of `COPY src /app/` from `ctx` with `ignore` patterns and `owner`.
    fn root_of(ctx: &Path, ignore: &[&str], owner: Owner, chmod: Option<u32>) -> ContentRoot {
        let patterns: Vec<String> = ignore.iter().map(|s| s.to_string()).collect();
        let m = Matcher::new(&patterns).expect("patterns");
        let ctx = fs::canonicalize(ctx).expect("canonical");
        let items = plan_copy(&ctx, &["src".into()], "/app/", "/", &m).expect("items");
        let opts = CopyOptions {
            owner,
            chmod,
            ignore: Some((&m, &ctx)),
        };
        of_items(&ctx, &items, &opts).expect("root")
    }

    fn plain(ctx: &Path) -> ContentRoot {
        root_of(ctx, &["src/.env"], Owner::Set(0, 0), None)
    }

    #[test]
    fn the_root_follows_what_the_copy_would_write() {
        let d = tree();
        let r = d.path();
        let first = plain(r);
        assert_eq!(plain(r), first);
        // Touched (only the mtime changes): the same root.
        let f = fs::File::options()
            .append(true)
            .open(r.join("src/a.go"))
            .expect("open");
        f.set_modified(std::time::SystemTime::UNIX_EPOCH)
            .expect("mtime");
        assert_eq!(plain(r), first);
        // .dockerignore admitting a file: another root.
        assert_ne!(root_of(r, &[], Owner::Set(0, 0), None), first);
        // --chown and --chmod: what lands differs.
        assert_ne!(root_of(r, &["src/.env"], Owner::Set(1, 1), None), first);
        assert_ne!(
            root_of(r, &["src/.env"], Owner::Set(0, 0), Some(0o700)),
            first
        );
        // A mode, a rename, a symlink's target, content of the same size.
        fs::set_permissions(r.join("src/a.go"), fs::Permissions::from_mode(0o755)).expect("chmod");
        let moded = plain(r);
        assert_ne!(moded, first);
        fs::rename(r.join("src/sub/b.go"), r.join("src/sub/c.go")).expect("rename");
        let renamed = plain(r);
        assert_ne!(renamed, moded);
        fs::remove_file(r.join("src/link")).expect("rm");
        symlink("sub/c.go", r.join("src/link")).expect("symlink");
        let relinked = plain(r);
        assert_ne!(relinked, renamed);
        fs::write(r.join("src/sub/c.go"), "package c").expect("w");
        assert_ne!(plain(r), relinked);
    }

    #[test]
    fn names_that_are_not_utf8_are_their_own_bytes() {
        let d = tree();
        let r = d.path();
        let with_e9 = plain(r);
        fs::rename(
            r.join(OsStr::from_bytes(b"src/caf\xe9")),
            r.join(OsStr::from_bytes(b"src/caf\xc3\xa9")),
        )
        .expect("rename");
        assert_ne!(plain(r), with_e9);
    }

    #[test]
    fn a_symlink_is_its_target_never_what_it_points_to() {
        let d = tree();
        let r = d.path();
        // Pointing out of the context: hashed as a link, nothing outside is read.
        fs::remove_file(r.join("src/link")).expect("rm");
        symlink("/etc/shadow", r.join("src/link")).expect("symlink");
        let out = plain(r);
        fs::remove_file(r.join("src/link")).expect("rm");
        symlink("/etc/passwd", r.join("src/link")).expect("symlink");
        assert_ne!(plain(r), out);
        // A file that vanishes during the walk is an error naming it.
        let ctx = fs::canonicalize(r).expect("canonical");
        let opts = CopyOptions {
            owner: Owner::Keep,
            chmod: None,
            ignore: None,
        };
        let gone = ctx.join("gone");
        let e = of_sources(&ctx, [gone.as_path()], &opts).expect_err("missing");
        assert!(e.to_string().contains("gone"), "{e}");
    }
}
