//! OCI layers: a gzip'd tar written in one streaming pass that also yields the layer's
//! `diff_id` (sha256 of the tar) and `digest` (sha256 of the gzip stream) and its size, so a
//! layer of any size costs the same memory. Entries are written in the order given; callers
//! give them sorted (see [`entry_order`]) so that equal trees give equal layers.
//! Deletions are `.wh.<name>` whiteouts; a replaced directory gets `.wh..wh..opq` (OCI
//! image-spec, layer.md).

use std::cmp::Ordering;
use std::io::{self, Read, Write};

use flate2::Compression;
use flate2::write::GzEncoder;
use sha2::{Digest, Sha256};

/// The names and sizes of a finished layer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerDigests {
    /// `sha256:<hex>` of the uncompressed tar.
    pub diff_id: String,
    /// `sha256:<hex>` of the compressed blob.
    pub digest: String,
    /// Size of the compressed blob in bytes.
    pub size: u64,
}

/// Passes bytes through while hashing and counting them.
struct Hashing<W> {
    inner: W,
    hash: Sha256,
    count: u64,
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hash.update(&buf[..n]);
        self.count += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

fn hashing<W>(inner: W) -> Hashing<W> {
    Hashing {
        inner,
        hash: Sha256::new(),
        count: 0,
    }
}

fn sha256_string(h: Sha256) -> String {
    let bytes = h.finalize();
    let mut s = String::with_capacity(71);
    s.push_str("sha256:");
    for b in bytes.iter() {
        s.push_str(&format!("{b:02x}"));
    }
    s
}

/// Ownership, mode and time of an entry (mtime in seconds since the epoch).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Meta {
    pub mode: u32,
    pub uid: u64,
    pub gid: u64,
    pub mtime: u64,
}

/// Writes one layer. `path`s are relative to the root, without a leading `/`.
pub struct LayerWriter<W: Write> {
    tar: tar::Builder<Hashing<GzEncoder<Hashing<W>>>>,
}

impl<W: Write> LayerWriter<W> {
    pub fn new(out: W, level: Compression) -> Self {
        let gz = GzEncoder::new(hashing(out), level);
        let mut tar = tar::Builder::new(hashing(gz));
        tar.mode(tar::HeaderMode::Complete);
        tar.follow_symlinks(false);
        LayerWriter { tar }
    }

    fn header(kind: tar::EntryType, meta: Meta, size: u64) -> tar::Header {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(kind);
        h.set_mode(meta.mode & 0o7777);
        h.set_uid(meta.uid);
        h.set_gid(meta.gid);
        h.set_mtime(meta.mtime);
        h.set_size(size);
        h
    }

    pub fn add_file(
        &mut self,
        path: &str,
        meta: Meta,
        size: u64,
        data: impl Read,
    ) -> io::Result<()> {
        let mut h = Self::header(tar::EntryType::Regular, meta, size);
        self.tar.append_data(&mut h, path, data)
    }

    pub fn add_dir(&mut self, path: &str, meta: Meta) -> io::Result<()> {
        let mut h = Self::header(tar::EntryType::Directory, meta, 0);
        self.tar.append_data(&mut h, path, io::empty())
    }

    pub fn add_symlink(&mut self, path: &str, meta: Meta, target: &str) -> io::Result<()> {
        let mut h = Self::header(tar::EntryType::Symlink, meta, 0);
        self.tar.append_link(&mut h, path, target)
    }

    /// A hard link to an entry earlier in the same layer.
    pub fn add_hardlink(&mut self, path: &str, meta: Meta, target: &str) -> io::Result<()> {
        let mut h = Self::header(tar::EntryType::Link, meta, 0);
        self.tar.append_link(&mut h, path, target)
    }

    /// Extended attributes (security.capability, user.*, ...) of the entry added next, as
    /// PAX `SCHILY.xattr.<name>` records.
    pub fn add_xattrs(&mut self, xattrs: &[(String, Vec<u8>)]) -> io::Result<()> {
        let records: Vec<(String, &[u8])> = xattrs
            .iter()
            .map(|(k, v)| (format!("SCHILY.xattr.{k}"), v.as_slice()))
            .collect();
        self.tar
            .append_pax_extensions(records.iter().map(|(k, v)| (k.as_str(), *v)))
    }

    /// A fifo or device node; `rdev` holds the device numbers.
    pub fn add_special(
        &mut self,
        path: &str,
        meta: Meta,
        kind: crate::layer::snapshot::Kind,
        rdev: u64,
    ) -> io::Result<()> {
        use crate::layer::snapshot::Kind;
        let t = match kind {
            Kind::Fifo => tar::EntryType::Fifo,
            Kind::CharDevice => tar::EntryType::Char,
            Kind::BlockDevice => tar::EntryType::Block,
            _ => return Err(io::Error::other(format!("{path}: not a special file"))),
        };
        let mut h = Self::header(t, meta, 0);
        // Linux dev_t: major in bits 8..20 and 32..44, minor in bits 0..8 and 20..32.
        let major = ((rdev >> 8) & 0xfff) | ((rdev >> 32) & !0xfff);
        let minor = (rdev & 0xff) | ((rdev >> 12) & !0xff);
        h.set_device_major(major as u32)?;
        h.set_device_minor(minor as u32)?;
        self.tar.append_data(&mut h, path, io::empty())
    }

    /// Marks `path` as deleted.
    pub fn add_whiteout(&mut self, path: &str) -> io::Result<()> {
        let (dir, name) = split_parent(path);
        self.add_file(&format!("{dir}.wh.{name}"), Meta::default(), 0, io::empty())
    }

    /// Hides everything lower layers have in directory `dir` (added before this).
    pub fn add_opaque(&mut self, dir: &str) -> io::Result<()> {
        let dir = dir.trim_end_matches('/');
        self.add_file(
            &format!("{dir}/.wh..wh..opq"),
            Meta::default(),
            0,
            io::empty(),
        )
    }

    /// Ends the tar and the gzip stream; returns the sink and the layer's digests.
    pub fn finish(self) -> io::Result<(W, LayerDigests)> {
        let mut outer = self.tar.into_inner()?;
        outer.flush()?;
        let diff_id = sha256_string(outer.hash);
        let inner = outer.inner.finish()?;
        let digests = LayerDigests {
            diff_id,
            digest: sha256_string(inner.hash),
            size: inner.count,
        };
        Ok((inner.inner, digests))
    }
}

fn split_parent(path: &str) -> (&str, &str) {
    let path = path.trim_end_matches('/');
    match path.rfind('/') {
        Some(i) => (&path[..=i], &path[i + 1..]),
        None => ("", path),
    }
}

/// The order entries are written in: by path, component by component, so a directory comes
/// right before its contents; within a directory an opaque marker comes first.
pub fn entry_order(a: &str, b: &str) -> Ordering {
    let key = |p: &str| -> Vec<(bool, String)> {
        p.trim_matches('/')
            .split('/')
            .map(|c| (c != ".wh..wh..opq", c.to_string()))
            .collect()
    };
    key(a).cmp(&key(b))
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::read::GzDecoder;

    fn sha(bytes: &[u8]) -> String {
        let mut h = Sha256::new();
        h.update(bytes);
        sha256_string(h)
    }

    fn sample() -> (Vec<u8>, LayerDigests) {
        let mut w = LayerWriter::new(Vec::new(), Compression::fast());
        let m = Meta {
            mode: 0o755,
            uid: 1000,
            gid: 1000,
            mtime: 1_700_000_000,
        };
        w.add_dir("app", m).expect("dir");
        w.add_opaque("app").expect("opaque");
        w.add_file("app/run", Meta { mode: 0o4755, ..m }, 5, &b"hello"[..])
            .expect("file");
        w.add_hardlink("app/run2", m, "app/run").expect("hardlink");
        w.add_symlink("app/latest", m, "run").expect("symlink");
        w.add_whiteout("etc/old.conf").expect("whiteout");
        w.finish().expect("finish")
    }

    #[test]
    fn digests_match_the_bytes_written() {
        let (blob, d) = sample();
        assert_eq!(d.digest, sha(&blob));
        assert_eq!(d.size, blob.len() as u64);
        let mut tar = Vec::new();
        GzDecoder::new(&blob[..])
            .read_to_end(&mut tar)
            .expect("gunzip");
        assert_eq!(d.diff_id, sha(&tar));
        assert_ne!(d.diff_id, d.digest);
        // The same input gives the same layer.
        assert_eq!(sample().1, d);
    }

    #[test]
    fn entries_keep_kind_metadata_and_whiteouts() {
        let (blob, _) = sample();
        let mut ar = tar::Archive::new(GzDecoder::new(&blob[..]));
        let got: Vec<(String, tar::EntryType, u32, u64, Option<String>)> = ar
            .entries()
            .expect("entries")
            .map(|e| {
                let e = e.expect("entry");
                let h = e.header();
                (
                    e.path().expect("path").to_string_lossy().into_owned(),
                    h.entry_type(),
                    h.mode().expect("mode"),
                    h.uid().expect("uid"),
                    e.link_name()
                        .expect("link")
                        .map(|l| l.to_string_lossy().into_owned()),
                )
            })
            .collect();
        use tar::EntryType as T;
        assert_eq!(
            got,
            vec![
                ("app".into(), T::Directory, 0o755, 1000, None),
                ("app/.wh..wh..opq".into(), T::Regular, 0, 0, None),
                ("app/run".into(), T::Regular, 0o4755, 1000, None),
                (
                    "app/run2".into(),
                    T::Link,
                    0o755,
                    1000,
                    Some("app/run".into())
                ),
                (
                    "app/latest".into(),
                    T::Symlink,
                    0o755,
                    1000,
                    Some("run".into())
                ),
                ("etc/.wh.old.conf".into(), T::Regular, 0, 0, None),
            ]
        );
    }

    #[test]
    fn order_puts_directories_before_contents_and_opaque_first() {
        let mut v = vec!["a/b/c", "a.txt", "a/.wh..wh..opq", "a", "a/b", "a-b", "a/a"];
        v.sort_by(|x, y| entry_order(x, y));
        assert_eq!(
            v,
            ["a", "a/.wh..wh..opq", "a/a", "a/b", "a/b/c", "a-b", "a.txt"]
        );
    }
}
