//! What a RUN changed: a parallel walk records every path's metadata, and the difference of
//! two walks becomes the layer's entries. Nothing is content-hashed: a file whose (ctime,
//! mtime, size, mode, uid, gid, inode) are all unchanged is unchanged. Mount points other
//! than the root (the workspace, /proc, /etc/hosts, ...) are never walked. Paths are kept as
//! raw bytes: a name that is not UTF-8 reaches the layer as it is on disk.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ffi::{OsStr, OsString};
use std::fs;
use std::io;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex};

use crate::fs::{PathError, at};
use crate::layer::writer::{Kind, LayerWriter, Meta, entry_order};

/// The metadata a walk records for one path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct State {
    pub kind: Kind,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub size: u64,
    pub mtime_ns: i128,
    pub ctime_ns: i128,
    pub dev: u64,
    pub ino: u64,
    pub nlink: u64,
}

impl State {
    fn of(m: &fs::Metadata) -> Self {
        let ft = m.file_type();
        let kind = if ft.is_dir() {
            Kind::Dir
        } else if ft.is_symlink() {
            Kind::Symlink
        } else if ft.is_fifo() {
            Kind::Fifo
        } else if ft.is_char_device() {
            Kind::CharDevice
        } else if ft.is_block_device() {
            Kind::BlockDevice
        } else if ft.is_socket() {
            Kind::Socket
        } else {
            Kind::File
        };
        let ns = |s: i64, n: i64| s as i128 * 1_000_000_000 + n as i128;
        State {
            kind,
            mode: m.mode(),
            uid: m.uid(),
            gid: m.gid(),
            size: m.size(),
            mtime_ns: ns(m.mtime(), m.mtime_nsec()),
            ctime_ns: ns(m.ctime(), m.ctime_nsec()),
            dev: m.dev(),
            ino: m.ino(),
            nlink: m.nlink(),
        }
    }
}

/// The state of one path (not following a symlink).
pub fn walk_one(path: &Path) -> io::Result<State> {
    fs::symlink_metadata(path).map(|m| State::of(&m))
}

/// Every path under a root (relative, `/`-separated, the root itself left out). Keys are
/// `OsString`s, which order by their bytes: `PathBuf` keys compare component by component,
/// and that made a walk of 100k files two to three times slower.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Snapshot {
    pub entries: BTreeMap<OsString, State>,
}

/// `rel/name` (just `name` at the top).
fn join_rel(rel: &OsStr, name: &OsStr) -> OsString {
    if rel.is_empty() {
        return name.to_os_string();
    }
    let mut out = OsString::with_capacity(rel.len() + 1 + name.len());
    out.push(rel);
    out.push("/");
    out.push(name);
    out
}

/// Walks `root` with `threads` workers, skipping the paths in `skip` (absolute paths of mount
/// points; see [`mount_points`]).
pub fn walk(root: &Path, skip: &BTreeSet<PathBuf>, threads: usize) -> io::Result<Snapshot> {
    struct Queue {
        dirs: Mutex<Vec<(PathBuf, OsString)>>,
        ready: Condvar,
        busy: AtomicUsize,
    }
    let q = Queue {
        dirs: Mutex::new(vec![(root.to_path_buf(), OsString::new())]),
        ready: Condvar::new(),
        busy: AtomicUsize::new(0),
    };
    let results: Mutex<Vec<(OsString, State)>> = Mutex::new(Vec::new());
    let error: Mutex<Option<io::Error>> = Mutex::new(None);

    std::thread::scope(|s| {
        for _ in 0..threads.max(1) {
            s.spawn(|| {
                let mut local = Vec::new();
                loop {
                    let next = {
                        let mut dirs = q.dirs.lock().unwrap_or_else(|p| p.into_inner());
                        loop {
                            if let Some(d) = dirs.pop() {
                                q.busy.fetch_add(1, Ordering::SeqCst);
                                break Some(d);
                            }
                            if q.busy.load(Ordering::SeqCst) == 0 {
                                break None;
                            }
                            dirs = q.ready.wait(dirs).unwrap_or_else(|p| p.into_inner());
                        }
                    };
                    let Some((dir, rel)) = next else {
                        q.ready.notify_all();
                        break;
                    };
                    let mut found = Vec::new();
                    match fs::read_dir(&dir) {
                        Ok(rd) => {
                            for e in rd.flatten() {
                                let path = e.path();
                                if skip.contains(&path) {
                                    continue;
                                }
                                let Ok(m) = fs::symlink_metadata(&path) else {
                                    continue;
                                };
                                let r = join_rel(&rel, &e.file_name());
                                let st = State::of(&m);
                                if st.kind == Kind::Dir {
                                    found.push((path, r.clone()));
                                }
                                local.push((r, st));
                            }
                        }
                        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                        Err(e) => {
                            error
                                .lock()
                                .unwrap_or_else(|p| p.into_inner())
                                .get_or_insert(e);
                        }
                    }
                    let mut dirs = q.dirs.lock().unwrap_or_else(|p| p.into_inner());
                    dirs.extend(found);
                    q.busy.fetch_sub(1, Ordering::SeqCst);
                    drop(dirs);
                    q.ready.notify_all();
                }
                results
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .extend(local);
            });
        }
    });
    if let Some(e) = error.into_inner().unwrap_or_else(|p| p.into_inner()) {
        return Err(e);
    }
    let entries = results
        .into_inner()
        .unwrap_or_else(|p| p.into_inner())
        .into_iter()
        .collect();
    Ok(Snapshot { entries })
}

/// Mount points listed in a `/proc/self/mountinfo` text, other than `/` (field 5, with the
/// kernel's octal escapes decoded).
pub fn mount_points(mountinfo: &str) -> BTreeSet<PathBuf> {
    let unescape = |s: &str| {
        let mut out = Vec::new();
        let b = s.as_bytes();
        let mut i = 0;
        while i < b.len() {
            if b[i] == b'\\'
                && i + 4 <= b.len()
                && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
            {
                out.push(u8::from_str_radix(&s[i + 1..i + 4], 8).unwrap_or(b'?'));
                i += 4;
            } else {
                out.push(b[i]);
                i += 1;
            }
        }
        PathBuf::from(OsString::from_vec(out))
    };
    mountinfo
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .filter(|p| *p != "/")
        .map(unescape)
        .collect()
}

/// One difference between two walks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// New or changed: write the entry.
    Upsert(PathBuf),
    /// Gone: write a whiteout.
    Delete(PathBuf),
    /// A directory that was removed and made again: its old contents are hidden (opaque).
    Replaced(PathBuf),
}

impl Change {
    /// The path the change is about.
    pub fn path(&self) -> &Path {
        match self {
            Change::Upsert(p) | Change::Delete(p) | Change::Replaced(p) => p,
        }
    }
}

/// The proper ancestors of a relative path, nearest first (`a/b/c`: `a/b`, `a`).
fn ancestors(p: &OsStr) -> impl Iterator<Item = &OsStr> {
    let b = p.as_bytes();
    let mut end = b.len();
    std::iter::from_fn(move || {
        end = b[..end].iter().rposition(|c| *c == b'/')?;
        Some(OsStr::from_bytes(&b[..end]))
    })
}

/// The changes from `before` to `after`, in layer order. Parents of changed entries are
/// included so the layer carries their ownership and mode; a deletion inside a deleted or
/// replaced directory is implied by it and left out.
pub fn diff(before: &Snapshot, after: &Snapshot) -> Vec<Change> {
    let mut changes: BTreeMap<OsString, Change> = BTreeMap::new();
    let change = |p: &OsString, make: fn(PathBuf) -> Change| (p.clone(), make(p.into()));
    for (path, now) in &after.entries {
        match before.entries.get(path) {
            None => {
                let (k, c) = change(path, Change::Upsert);
                changes.insert(k, c);
            }
            Some(old)
                if old.kind == Kind::Dir
                    && now.kind == Kind::Dir
                    && (old.ino != now.ino || old.dev != now.dev) =>
            {
                let (k, c) = change(path, Change::Replaced);
                changes.insert(k, c);
            }
            Some(old) if old != now => {
                // nlink alone changes when another name of the same file appears or goes.
                let same = State { nlink: 0, ..*old } == State { nlink: 0, ..*now };
                if !same {
                    let (k, c) = change(path, Change::Upsert);
                    changes.insert(k, c);
                }
            }
            Some(_) => {}
        }
    }
    let gone: Vec<&OsString> = before
        .entries
        .keys()
        .filter(|p| !after.entries.contains_key(*p))
        .collect();
    let hidden_by = |p: &OsStr| -> bool {
        ancestors(p).any(|a| {
            !after.entries.contains_key(a) || matches!(changes.get(a), Some(Change::Replaced(_)))
        })
    };
    let deletes: Vec<&OsString> = gone.into_iter().filter(|p| !hidden_by(p)).collect();
    for d in deletes {
        let (k, c) = change(d, Change::Delete);
        changes.insert(k, c);
    }
    // Ancestors of every change, with their current metadata.
    let mut parents = Vec::new();
    for p in changes.keys() {
        for a in ancestors(p) {
            if !changes.contains_key(a) && after.entries.contains_key(a) {
                parents.push(a.to_os_string());
            }
        }
    }
    for p in parents {
        changes
            .entry(p.clone())
            .or_insert_with(|| Change::Upsert(p.into()));
    }
    let mut out: Vec<Change> = changes.into_values().collect();
    out.sort_by(|a, b| entry_order(a.path(), b.path()));
    out
}

/// The layer of exactly the `written` paths (relative to `root`) and their parents, as they
/// are now: what a COPY, ADD or WORKDIR wrote. Returns their states (for the next RUN's
/// baseline) and the changes in layer order.
pub fn of_written(
    root: &Path,
    written: &BTreeSet<OsString>,
) -> Result<(Snapshot, Vec<Change>), PathError> {
    let mut paths: BTreeSet<&OsStr> = BTreeSet::new();
    for p in written {
        paths.insert(p);
        paths.extend(ancestors(p));
    }
    let mut snap = Snapshot::default();
    for p in &paths {
        let s = walk_one(&root.join(p)).map_err(at(p))?;
        snap.entries.insert(p.to_os_string(), s);
    }
    let mut changes: Vec<Change> = paths
        .into_iter()
        .map(|p| Change::Upsert(p.into()))
        .collect();
    changes.sort_by(|a, b| entry_order(a.path(), b.path()));
    Ok((snap, changes))
}

/// Writes `changes` (from [`diff`]) of the tree at `root` into a layer. Files with several
/// links become one file entry and tar hard links to it.
pub fn write_changes<W: io::Write>(
    root: &Path,
    after: &Snapshot,
    changes: &[Change],
    layer: &mut LayerWriter<W>,
) -> io::Result<()> {
    let mut first_name: HashMap<(u64, u64), &Path> = HashMap::new();
    for c in changes {
        match c {
            Change::Delete(p) => layer.add_whiteout(p)?,
            Change::Upsert(p) | Change::Replaced(p) => {
                let Some(st) = after.entries.get(p.as_os_str()) else {
                    continue;
                };
                let full = root.join(p);
                let is_second_link = st.kind == Kind::File
                    && st.nlink > 1
                    && first_name.contains_key(&(st.dev, st.ino));
                if st.kind != Kind::Socket && !is_second_link {
                    layer.add_xattrs(&read_xattrs(&full))?;
                }
                let meta = Meta {
                    mode: st.mode,
                    uid: st.uid as u64,
                    gid: st.gid as u64,
                    mtime: (st.mtime_ns.max(0) / 1_000_000_000) as u64,
                };
                match st.kind {
                    Kind::Dir => {
                        layer.add_dir(p, meta)?;
                        if matches!(c, Change::Replaced(_)) {
                            layer.add_opaque(p)?;
                        }
                    }
                    Kind::Symlink => {
                        let target = fs::read_link(&full)?;
                        layer.add_symlink(p, meta, target)?;
                    }
                    Kind::File => {
                        if st.nlink > 1 {
                            if let Some(first) = first_name.get(&(st.dev, st.ino)) {
                                layer.add_hardlink(p, meta, first)?;
                                continue;
                            }
                            first_name.insert((st.dev, st.ino), p);
                        }
                        // The file walked, not whatever is at its name now: a link put
                        // there since is not followed, another file is refused. The size is
                        // the walked one too (`add_file`).
                        let f = fs::OpenOptions::new()
                            .read(true)
                            .custom_flags(nix::fcntl::OFlag::O_NOFOLLOW.bits())
                            .open(&full)?;
                        let now = f.metadata()?;
                        if (now.dev(), now.ino()) != (st.dev, st.ino) {
                            let msg =
                                format!("{}: replaced while the layer was written", p.display());
                            return Err(io::Error::other(msg));
                        }
                        layer.add_file(p, meta, st.size, f)?;
                    }
                    // Fifos and device nodes: their tar headers carry kind and numbers.
                    Kind::Fifo | Kind::CharDevice | Kind::BlockDevice => {
                        let m = fs::symlink_metadata(&full)?;
                        layer.add_special(p, meta, st.kind, m.rdev())?;
                    }
                    Kind::Socket => {} // sockets are not carried in layers
                }
            }
        }
    }
    Ok(())
}

/// A path's extended attributes (not following symlinks); none where the filesystem has none.
pub fn read_xattrs(path: &Path) -> Vec<(String, Vec<u8>)> {
    let Ok(names) = xattr::list(path) else {
        return Vec::new();
    };
    let mut out: Vec<(String, Vec<u8>)> = names
        // Not the build pod's own `security.selinux` labels (L7).
        .filter(|n| crate::fs::unpack::xattr_allowed(&n.to_string_lossy()))
        .filter_map(|n| {
            let value = xattr::get(path, &n).ok().flatten()?;
            Some((n.to_string_lossy().into_owned(), value))
        })
        .collect();
    out.sort();
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::read::GzDecoder;
    use std::os::unix::fs::PermissionsExt;

    fn snap(root: &Path) -> Snapshot {
        walk(root, &BTreeSet::new(), 2).expect("walk")
    }

    fn names(changes: &[Change]) -> Vec<String> {
        changes
            .iter()
            .map(|c| match c {
                Change::Upsert(p) => format!("+{}", p.display()),
                Change::Delete(p) => format!("-{}", p.display()),
                Change::Replaced(p) => format!("!{}", p.display()),
            })
            .collect()
    }

    #[test]
    fn diff_finds_new_changed_deleted_and_replaced() {
        let d = tempfile::tempdir().expect("tmp");
        let r = d.path();
        for dir in ["etc", "opt/app/lib", "var/cache/x", "keep"] {
            fs::create_dir_all(r.join(dir)).expect("mkdir");
        }
        fs::write(r.join("etc/conf"), "a").expect("w");
        fs::write(r.join("opt/app/lib/old.so"), "x").expect("w");
        fs::write(r.join("var/cache/x/blob"), "x").expect("w");
        fs::write(r.join("keep/same"), "same").expect("w");
        fs::write(r.join("etc/mode"), "m").expect("w");
        let before = snap(r);

        std::thread::sleep(std::time::Duration::from_millis(20));
        fs::write(r.join("etc/conf"), "bb").expect("w");
        fs::set_permissions(r.join("etc/mode"), fs::Permissions::from_mode(0o600)).expect("chmod");
        fs::remove_dir_all(r.join("var/cache")).expect("rm");
        // Made beside the old one, so the new directory surely has another inode.
        fs::create_dir(r.join("opt/app/lib.new")).expect("mkdir");
        fs::write(r.join("opt/app/lib.new/new.so"), "n").expect("w");
        fs::remove_dir_all(r.join("opt/app/lib")).expect("rm");
        fs::rename(r.join("opt/app/lib.new"), r.join("opt/app/lib")).expect("mv");
        fs::write(r.join("etc/new"), "n").expect("w");
        fs::hard_link(r.join("etc/new"), r.join("etc/new-link")).expect("ln");
        let after = snap(r);

        let changes = diff(&before, &after);
        assert_eq!(
            names(&changes),
            [
                "+etc",
                "+etc/conf",
                "+etc/mode",
                "+etc/new",
                "+etc/new-link",
                "+opt",
                "+opt/app",
                "!opt/app/lib",
                "+opt/app/lib/new.so",
                "+var",
                "-var/cache"
            ]
        );

        let mut w = LayerWriter::new(Vec::new(), flate2::Compression::fast());
        write_changes(r, &after, &changes, &mut w).expect("write");
        let (blob, _) = w.finish().expect("finish");
        let mut ar = tar::Archive::new(GzDecoder::new(&blob[..]));
        let listed: Vec<String> = ar
            .entries()
            .expect("entries")
            .map(|e| {
                let e = e.expect("entry");
                let kind = if e.header().entry_type() == tar::EntryType::Link {
                    "link:"
                } else {
                    ""
                };
                format!("{kind}{}", e.path().expect("path").display())
            })
            .collect();
        assert_eq!(
            listed,
            [
                "etc",
                "etc/conf",
                "etc/mode",
                "etc/new",
                "link:etc/new-link",
                "opt",
                "opt/app",
                "opt/app/lib",
                "opt/app/lib/.wh..wh..opq",
                "opt/app/lib/new.so",
                "var",
                "var/.wh.cache"
            ]
        );
    }

    #[test]
    fn names_that_are_not_utf8_survive_walk_diff_layer_and_unpack() {
        use std::ffi::OsStr;
        use std::os::unix::ffi::OsStrExt;
        let raw = |b: &[u8]| PathBuf::from(OsStr::from_bytes(b));
        let d = tempfile::tempdir().expect("tmp");
        let r = d.path();
        fs::create_dir(r.join("keep")).expect("mkdir");
        fs::write(r.join(raw(b"keep/old\xe9")), "o").expect("w");
        let before = snap(r);

        fs::create_dir(r.join(raw(b"dir\xe9"))).expect("mkdir");
        fs::write(r.join(raw(b"dir\xe9/caf\xe9")), "cafe").expect("w");
        // A name past the 100 bytes of a tar header: a GNU long-name record.
        let long = [&b"dir\xe9/"[..], &[b'l'; 110], b"\xff"].concat();
        fs::write(r.join(raw(&long)), "long").expect("w");
        std::os::unix::fs::symlink(raw(b"dir\xe9/caf\xe9"), r.join(raw(b"link\xff"))).expect("ln");
        fs::remove_file(r.join(raw(b"keep/old\xe9"))).expect("rm");
        let after = snap(r);
        assert!(
            after
                .entries
                .contains_key(raw(b"dir\xe9/caf\xe9").as_os_str())
        );

        let changes = diff(&before, &after);
        let want: Vec<Change> = vec![
            Change::Upsert(raw(b"dir\xe9")),
            Change::Upsert(raw(b"dir\xe9/caf\xe9")),
            Change::Upsert(raw(&long)),
            Change::Upsert(raw(b"keep")),
            Change::Delete(raw(b"keep/old\xe9")),
            Change::Upsert(raw(b"link\xff")),
        ];
        assert_eq!(changes, want);

        let mut w = LayerWriter::new(Vec::new(), flate2::Compression::fast());
        write_changes(r, &after, &changes, &mut w).expect("write");
        let (blob, _) = w.finish().expect("finish");
        let mut ar = tar::Archive::new(GzDecoder::new(&blob[..]));
        let listed: Vec<(Vec<u8>, Option<Vec<u8>>)> = ar
            .entries()
            .expect("entries")
            .map(|e| {
                let e = e.expect("entry");
                let link = e.link_name_bytes().map(|l| l.into_owned());
                (e.path_bytes().into_owned(), link)
            })
            .collect();
        assert_eq!(
            listed,
            vec![
                (b"dir\xe9".to_vec(), None),
                (b"dir\xe9/caf\xe9".to_vec(), None),
                (long.clone(), None),
                (b"keep".to_vec(), None),
                (b"keep/.wh.old\xe9".to_vec(), None),
                (b"link\xff".to_vec(), Some(b"dir\xe9/caf\xe9".to_vec())),
            ]
        );

        // Applied to another tree: the same bytes, and the whiteout deletes its own name.
        let other = tempfile::tempdir().expect("tmp");
        let o = other.path();
        fs::create_dir(o.join("keep")).expect("mkdir");
        fs::write(o.join(raw(b"keep/old\xe9")), "o").expect("w");
        crate::fs::unpack::apply_layer(&blob[..], o, false).expect("apply");
        assert_eq!(
            fs::read(o.join(raw(b"dir\xe9/caf\xe9"))).expect("file"),
            b"cafe"
        );
        assert_eq!(fs::read(o.join(raw(&long))).expect("long"), b"long");
        assert_eq!(
            fs::read_link(o.join(raw(b"link\xff"))).expect("link"),
            raw(b"dir\xe9/caf\xe9")
        );
        assert_eq!(
            fs::read(o.join(raw(b"link\xff"))).expect("through"),
            b"cafe"
        );
        assert!(!o.join(raw(b"keep/old\xe9")).exists());
        assert_eq!(
            snap(o).entries.keys().collect::<Vec<_>>(),
            after.entries.keys().collect::<Vec<_>>()
        );
    }

    #[test]
    fn a_file_replaced_after_the_walk_is_refused() {
        let d = tempfile::tempdir().expect("tmp");
        let r = d.path();
        let before = snap(r);
        fs::write(r.join("f"), "walked").expect("w");
        let after = snap(r);
        let changes = diff(&before, &after);
        // Another file at the name (a background process swapped it), then a link.
        fs::write(r.join("other"), "swapped").expect("w");
        fs::rename(r.join("other"), r.join("f")).expect("mv");
        let mut w = LayerWriter::new(Vec::new(), flate2::Compression::fast());
        let e = write_changes(r, &after, &changes, &mut w).expect_err("replaced");
        assert_eq!(e.to_string(), "f: replaced while the layer was written");
        fs::remove_file(r.join("f")).expect("rm");
        std::os::unix::fs::symlink("/etc/hostname", r.join("f")).expect("ln");
        let mut w = LayerWriter::new(Vec::new(), flate2::Compression::fast());
        assert!(write_changes(r, &after, &changes, &mut w).is_err());
    }

    #[test]
    fn written_paths_bring_their_parents() {
        let up: Vec<&OsStr> = ancestors(OsStr::new("a/b/c")).collect();
        assert_eq!(up, ["a/b", "a"]);
        assert_eq!(ancestors(OsStr::new("a")).count(), 0);
        assert_eq!(join_rel(OsStr::new(""), OsStr::new("a")), "a");
        assert_eq!(join_rel(OsStr::new("a/b"), OsStr::new("c")), "a/b/c");
        let d = tempfile::tempdir().expect("tmp");
        let r = d.path();
        fs::create_dir_all(r.join("usr/lib/app")).expect("mkdir");
        fs::write(r.join("usr/lib/app/a"), "a").expect("w");
        fs::write(r.join("top"), "t").expect("w");
        let written: BTreeSet<OsString> = ["usr/lib/app/a", "top"]
            .iter()
            .map(OsString::from)
            .collect();
        let (s, changes) = of_written(r, &written).expect("states");
        assert_eq!(
            names(&changes),
            ["+top", "+usr", "+usr/lib", "+usr/lib/app", "+usr/lib/app/a"]
        );
        assert_eq!(s.entries.len(), 5);
        let gone: BTreeSet<OsString> = [OsString::from("usr/nope")].into_iter().collect();
        let e = of_written(r, &gone).expect_err("missing");
        assert!(e.to_string().starts_with("usr/nope: "), "{e}");
    }

    #[test]
    fn unchanged_tree_gives_no_changes_and_mounts_are_skipped() {
        let d = tempfile::tempdir().expect("tmp");
        fs::create_dir_all(d.path().join("a/b")).expect("mkdir");
        fs::create_dir_all(d.path().join("mnt/inside")).expect("mkdir");
        fs::write(d.path().join("a/b/f"), "x").expect("w");
        let s1 = snap(d.path());
        assert!(diff(&s1, &snap(d.path())).is_empty());
        let skip: BTreeSet<PathBuf> = [d.path().join("mnt")].into_iter().collect();
        let s = walk(d.path(), &skip, 3).expect("walk");
        assert!(
            s.entries.keys().all(|k| !Path::new(k).starts_with("mnt")),
            "{:?}",
            s.entries.keys()
        );
        assert_eq!(s.entries.len(), 3);
    }

    #[test]
    fn mountinfo_parsing() {
        let text = "22 1 0:21 / / rw - ext4 /dev/vda rw\n\
                    23 22 0:5 / /proc rw - proc proc rw\n\
                    24 22 0:6 /x /etc/hosts rw - ext4 /dev/vda rw\n\
                    25 22 0:7 / /work\\040space rw - tmpfs t rw\n";
        let m = mount_points(text);
        let want: BTreeSet<PathBuf> = ["/proc", "/etc/hosts", "/work space"]
            .iter()
            .map(PathBuf::from)
            .collect();
        assert_eq!(m, want);
        // The kernel escapes bytes, not characters: a mount point need not be UTF-8.
        let m = mount_points("26 22 0:8 / /caf\\351 rw - tmpfs t rw\n");
        let raw = PathBuf::from(OsString::from_vec(b"/caf\xe9".to_vec()));
        assert_eq!(m, [raw].into_iter().collect());
    }
}
