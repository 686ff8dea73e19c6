//! Writing a git tree into a fresh directory without ever writing through a symlink
//! (security review M9). A crafted tree may hold a symlink `a -> /etc` and then an entry
//! `a/passwd`, the same name twice, or names with `/`, `..` or `.git` in them: a checkout that
//! creates parents with `create_dir_all` and files with `fs::write` would follow the link and
//! write outside the context.
//!
//! Here every name is checked as git checks it (`gix::validate`: not empty, no `/`, not `.`
//! or `..`, not `.git` in any spelling, `.gitmodules` no symlink), and every path is built
//! only from directories this checkout created itself from tree entries, so no parent can be
//! a symlink; the last component is created with `mkdir`, `symlink` or
//! `O_CREAT|O_EXCL|O_NOFOLLOW`, none of which follows or reuses what is there. A name seen
//! twice fails on the second creation.
//!
//! gix's own worktree checkout (feature `worktree-mutation`) would validate paths too, but it
//! also applies `.gitattributes` filters (eol conversion, `ident`), changing the bytes written
//! (this writes blobs as they are, as before), and has no size cap. Sizes are capped here:
//! each blob's size is read from its header before it is loaded, and every entry counts
//! [`ENTRY_COST`] bytes on top, so that neither a huge blob nor a tree repeating a subtree
//! thousands of times (a "billion laughs" tree) fills the volume.

use std::ffi::OsStr;
use std::fs;
use std::io::{self, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use gix::bstr::BStr;
use gix::validate::path::component;
use slipway_contract::size::Size;

/// What each entry counts towards the size limit besides its bytes (a tar header's worth).
pub const ENTRY_COST: u64 = 512;

/// Why a tree could not be written; every message names the entry's path.
#[derive(Debug, thiserror::Error)]
pub enum CheckoutError {
    #[error("{path}: not a file name git allows: {source}")]
    Name {
        path: String,
        #[source]
        source: component::Error,
    },
    #[error("{path}: the tree names it twice")]
    Duplicate { path: String },
    #[error("{path}: the checkout is larger than the size limit of {limit}")]
    TooLarge { path: String, limit: Size },
    #[error("{path}: {source}")]
    Object {
        path: String,
        #[source]
        source: gix::Error,
    },
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: io::Error,
    },
}

/// Names as git checks them on Linux (`core.protectHFS`/`protectNTFS` spellings of `.git`
/// are refused too: such an entry has no business in a build context).
fn checked<'a>(name: &'a BStr, link: bool, path: &Path) -> Result<&'a OsStr, CheckoutError> {
    let opts = component::Options {
        protect_windows: false,
        protect_hfs: true,
        protect_ntfs: true,
    };
    let mode = link.then_some(component::Mode::Symlink);
    component(name, mode, opts).map_err(|source| CheckoutError::Name {
        path: shown(&path.join(OsStr::from_bytes(name))),
        source,
    })?;
    Ok(OsStr::from_bytes(name))
}

fn shown(rel: &Path) -> String {
    rel.display().to_string()
}

/// The writer's running count against the limit.
struct Budget {
    used: u64,
    limit: Size,
}

impl Budget {
    fn charge(&mut self, bytes: u64, rel: &Path) -> Result<(), CheckoutError> {
        self.used = self.used.saturating_add(bytes).saturating_add(ENTRY_COST);
        if self.used > self.limit.bytes() {
            return Err(CheckoutError::TooLarge {
                path: shown(rel),
                limit: self.limit,
            });
        }
        Ok(())
    }
}

/// Creation that never follows or reuses what is at `path`: an existing name is a duplicate.
fn created(r: io::Result<()>, rel: &Path) -> Result<(), CheckoutError> {
    r.map_err(|source| match source.kind() {
        io::ErrorKind::AlreadyExists => CheckoutError::Duplicate { path: shown(rel) },
        _ => CheckoutError::Io {
            path: shown(rel),
            source,
        },
    })
}

fn write_file(path: &Path, data: &[u8], executable: bool) -> io::Result<()> {
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .custom_flags(nix::libc::O_NOFOLLOW)
        .mode(0o600)
        .open(path)?;
    f.write_all(data)?;
    // Through the descriptor, and whatever the umask: as git writes them.
    let perm = if executable { 0o755 } else { 0o644 };
    f.set_permissions(fs::Permissions::from_mode(perm))
}

/// Writes the tree `tree` of `repo` into `root`, which must not exist yet. Submodules are
/// skipped. At most `limit` bytes (blobs, and [`ENTRY_COST`] per entry).
pub fn write_tree(
    repo: &gix::Repository,
    tree: gix::ObjectId,
    root: &Path,
    limit: Size,
) -> Result<(), CheckoutError> {
    created(fs::create_dir(root), Path::new("."))?;
    let mut budget = Budget { used: 0, limit };
    // Depth first with a stack of our own: a deep tree cannot exhaust the call stack.
    let mut pending: Vec<(gix::ObjectId, PathBuf)> = vec![(tree, PathBuf::new())];
    while let Some((id, dir)) = pending.pop() {
        let object = |source| CheckoutError::Object {
            path: shown(&dir),
            source,
        };
        let tree = repo.find_tree(id).map_err(object)?;
        for entry in tree.iter() {
            let entry = entry.map_err(object)?;
            let mode = entry.mode();
            let name = checked(entry.filename(), mode.is_link(), &dir)?;
            let rel = dir.join(name);
            // Every parent of `rel` is a directory created below, from a tree entry.
            let path = root.join(&rel);
            if mode.is_tree() {
                budget.charge(0, &rel)?;
                created(fs::create_dir(&path), &rel)?;
                pending.push((entry.object_id(), rel));
                continue;
            }
            if mode.is_commit() {
                continue; // a submodule
            }
            let blob = |source| CheckoutError::Object {
                path: shown(&rel),
                source,
            };
            let size = repo.find_header(entry.object_id()).map_err(blob)?.size();
            budget.charge(size, &rel)?;
            let data = repo
                .find_object(entry.object_id())
                .map_err(blob)?
                .detach()
                .data;
            if mode.is_link() {
                let target = OsStr::from_bytes(&data);
                created(std::os::unix::fs::symlink(target, &path), &rel)?;
            } else {
                created(write_file(&path, &data, mode.is_executable()), &rel)?;
            }
        }
    }
    Ok(())
}

/// A folder of a checkout (`contextDir`), reached through real directories only: a
/// component that is a symlink (which the tree may hold) would lead out of the checkout.
pub fn subdir(root: &Path, rel: &str) -> Result<PathBuf, SubdirError> {
    let mut path = root.to_path_buf();
    for c in Path::new(rel).components() {
        match c {
            std::path::Component::CurDir => continue,
            std::path::Component::Normal(n) => path.push(n),
            _ => return Err(SubdirError::Outside),
        }
        match fs::symlink_metadata(&path) {
            Ok(m) if m.file_type().is_symlink() => return Err(SubdirError::Symlink),
            Ok(m) if m.is_dir() => {}
            Ok(_) => return Err(SubdirError::NotADirectory),
            Err(e) => return Err(SubdirError::Io(e)),
        }
    }
    Ok(path)
}

/// Why `contextDir` does not name a folder of the checkout.
#[derive(Debug, thiserror::Error)]
pub enum SubdirError {
    #[error("not a relative path inside the context")]
    Outside,
    #[error("a symlink on the way: not followed")]
    Symlink,
    #[error("not a directory")]
    NotADirectory,
    #[error(transparent)]
    Io(io::Error),
}

#[cfg(test)]
#[path = "checkout_tests.rs"]
mod tests;
