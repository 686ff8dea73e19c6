//! The content root of a set of files: one hash over every selected entry's relative path,
//! type, mode, resulting owner, link target and content hash, in path order. Not the mtime
//! (BuildKit's contenthash leaves it out too): a fresh checkout of the same tree has the same
//! root, and a renamed, re-moded or re-owned file a different one (kaniko #2241, #1678 hashed
//! contents only). The entries come from the engine, which walks the files; this is the pure
//! part.

use sha2::{Digest, Sha256};

use super::record::Record;

/// What an entry is, with what of it is content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EntryKind {
    Dir,
    /// A regular file (a hard link counts as the file it links to): its bytes' sha256.
    File {
        sha256: [u8; 32],
    },
    /// The link's target, as bytes (it need not be UTF-8, nor point anywhere).
    Symlink {
        target: Vec<u8>,
    },
    Fifo,
    CharDevice {
        rdev: u64,
    },
    BlockDevice {
        rdev: u64,
    },
}

/// One selected file, as it lands: `path` relative to the selection's root, raw bytes;
/// `uid`/`gid` the owner it will have in the layer (after `--chown`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub path: Vec<u8>,
    pub kind: EntryKind,
    /// Permission bits with setuid, setgid and sticky (`mode & 0o7777`).
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
}

/// Two entries with one path: a walk that listed a file twice is a bug, not a tree.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("content root: {} is listed twice", String::from_utf8_lossy(.0))]
pub struct DuplicateEntry(pub Vec<u8>);

/// The root itself: sha256 over the framed entry records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ContentRoot(pub [u8; 32]);

impl ContentRoot {
    /// The root of `entries`, in any order (they are sorted by path bytes here).
    pub fn of(entries: impl IntoIterator<Item = Entry>) -> Result<ContentRoot, DuplicateEntry> {
        let mut entries: Vec<Entry> = entries.into_iter().collect();
        entries.sort_by(|a, b| a.path.cmp(&b.path));
        if let Some(w) = entries.windows(2).find(|w| w[0].path == w[1].path) {
            return Err(DuplicateEntry(w[0].path.clone()));
        }
        let mut h = Sha256::new();
        h.update(super::DOMAIN);
        h.update(b"content-root\0");
        h.update((entries.len() as u64).to_be_bytes());
        for e in &entries {
            let r = record(e);
            h.update((r.as_bytes().len() as u64).to_be_bytes());
            h.update(r.as_bytes());
        }
        Ok(ContentRoot(h.finalize().into()))
    }

    pub fn hex(&self) -> String {
        hex::encode(self.0)
    }
}

/// As 64 hex digits.
impl serde::Serialize for ContentRoot {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.hex())
    }
}

impl<'de> serde::Deserialize<'de> for ContentRoot {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = <String as serde::Deserialize>::deserialize(d)?;
        let mut out = [0u8; 32];
        hex::decode_to_slice(&text, &mut out).map_err(serde::de::Error::custom)?;
        Ok(ContentRoot(out))
    }
}

fn record(e: &Entry) -> Record {
    let mut r = Record::new("entry");
    r.bytes("path", &e.path);
    match &e.kind {
        EntryKind::Dir => r.str("type", "dir"),
        EntryKind::File { sha256 } => r.str("type", "file").bytes("sha256", sha256),
        EntryKind::Symlink { target } => r.str("type", "symlink").bytes("target", target),
        EntryKind::Fifo => r.str("type", "fifo"),
        EntryKind::CharDevice { rdev } => r.str("type", "char").u64("rdev", *rdev),
        EntryKind::BlockDevice { rdev } => r.str("type", "block").u64("rdev", *rdev),
    };
    r.u64("mode", u64::from(e.mode & 0o7777))
        .u64("uid", u64::from(e.uid))
        .u64("gid", u64::from(e.gid));
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(path: &str, data: &[u8]) -> Entry {
        Entry {
            path: path.as_bytes().to_vec(),
            kind: EntryKind::File {
                sha256: Sha256::digest(data).into(),
            },
            mode: 0o644,
            uid: 0,
            gid: 0,
        }
    }

    fn root(e: Vec<Entry>) -> ContentRoot {
        ContentRoot::of(e).expect("root")
    }

    #[test]
    fn the_root_covers_path_type_mode_owner_link_and_content() {
        let base = vec![file("a.txt", b"hello"), file("b/c", b"x")];
        let r = root(base.clone());
        // The order entries come in does not matter.
        assert_eq!(root(base.iter().rev().cloned().collect()), r);
        let changed = |f: &dyn Fn(&mut Entry)| {
            let mut v = base.clone();
            f(&mut v[0]);
            root(v)
        };
        assert_ne!(changed(&|e| e.path = b"a2.txt".to_vec()), r, "rename");
        assert_ne!(changed(&|e| e.mode = 0o755), r, "mode");
        assert_ne!(changed(&|e| e.uid = 1000), r, "owner");
        assert_ne!(changed(&|e| e.gid = 1000), r, "group");
        assert_ne!(changed(&|e| *e = file("a.txt", b"hellO")), r, "content");
        let link = |t: &[u8]| Entry {
            kind: EntryKind::Symlink { target: t.to_vec() },
            ..file("a.txt", b"")
        };
        assert_ne!(changed(&|e| *e = link(b"b/c")), r, "type");
        assert_ne!(
            root(vec![link(b"x")]),
            root(vec![link(b"y")]),
            "link target"
        );
        // A file more (a .dockerignore that admits it) or less.
        let mut more = base.clone();
        more.push(file(".env", b""));
        assert_ne!(root(more), r);
        assert_ne!(root(base[..1].to_vec()), r);
        // Paths are bytes: a name that is not UTF-8 is its own name.
        let raw = |p: &[u8]| Entry {
            path: p.to_vec(),
            ..file("", b"")
        };
        assert_ne!(root(vec![raw(b"caf\xe9")]), root(vec![raw(b"caf\xc3\xa9")]));
    }

    #[test]
    fn a_path_listed_twice_is_an_error() {
        let e = ContentRoot::of(vec![file("a", b"1"), file("a", b"2")]).expect_err("twice");
        assert_eq!(e.to_string(), "content root: a is listed twice");
    }
}
