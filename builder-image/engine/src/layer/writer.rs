//! OCI layers: a gzip'd tar written in one streaming pass that also yields the layer's
//! `diff_id` (sha256 of the tar) and `digest` (sha256 of the gzip stream) and its size, so a
//! layer of any size costs the same memory. Entries are written in the order given; callers
//! give them sorted (see [`entry_order`]) so that equal trees give equal layers.
//! Deletions are `.wh.<name>` whiteouts; a replaced directory gets `.wh..wh..opq` (OCI
//! image-spec, layer.md).
//!
//! The bytes depend on nothing but the entries: GNU headers with no atime or ctime and empty
//! user and group names, PAX records only for xattrs (sorted), and a gzip header with no
//! name, mtime 0 and OS 255 ("unknown"). With a source date epoch
//! ([`LayerWriter::clamp_to`]), an mtime later than it is written as it, as BuildKit's
//! `rewrite-timestamp` does; earlier ones are kept, so a file copied from an old tree keeps
//! its time.
//!
//! The gzip stream is compressed on as many threads as the process may use
//! ([`gzip_threads`]), in pieces whose bytes do not depend on that number
//! ([`super::parallel_gzip`]): the same tree gives the same digest on any machine.

use std::cmp::Ordering;
use std::ffi::OsString;
use std::io::{self, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use flate2::Compression;
use sha2::{Digest, Sha256};

use super::parallel_gzip::ParallelGzip;

/// What a layer entry is (a walk records it from the file type; sockets are never written).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Dir,
    File,
    Symlink,
    Fifo,
    CharDevice,
    BlockDevice,
    Socket,
}

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
pub(crate) struct Hashing<W> {
    pub(crate) inner: W,
    pub(crate) hash: Sha256,
    pub(crate) count: u64,
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

pub(crate) fn hashing<W>(inner: W) -> Hashing<W> {
    Hashing {
        inner,
        hash: Sha256::new(),
        count: 0,
    }
}

/// `sha256:<hex>` of what `h` hashed: a digest as OCI writes it.
pub fn sha256_digest(h: Sha256) -> String {
    format!("sha256:{}", hex::encode(h.finalize()))
}

/// Reads exactly `left` bytes, or fails naming the file.
struct Exact<'a, R> {
    inner: io::Take<R>,
    left: u64,
    path: &'a Path,
}

impl<R: Read> Read for Exact<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if n == 0 && self.left > 0 && !buf.is_empty() {
            let msg = format!(
                "{}: the file shrank while the layer was written ({} bytes missing)",
                self.path.display(),
                self.left
            );
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, msg));
        }
        self.left -= n as u64;
        Ok(n)
    }
}

/// Ownership, mode and time of an entry (mtime in seconds since the epoch).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Meta {
    pub mode: u32,
    pub uid: u64,
    pub gid: u64,
    pub mtime: u64,
}

/// Writes one layer. `path`s are relative to the root, without a leading `/`; they are raw
/// bytes (a name need not be UTF-8), and one longer than a tar header holds goes in a GNU
/// long-name record.
pub struct LayerWriter<W: Write> {
    tar: tar::Builder<Hashing<ParallelGzip<Hashing<W>>>>,
    /// The source date epoch: no entry is written newer than this.
    clamp: Option<u64>,
}

/// An mtime as written under a source date epoch: never later than it.
pub fn clamp_mtime(mtime: u64, epoch: Option<u64>) -> u64 {
    match epoch {
        Some(e) if mtime > e => e,
        _ => mtime,
    }
}

/// The most threads a layer is compressed on: past this the tar, the two sha256 and the
/// disk on the calling thread are the limit, not deflate.
const MAX_GZIP_THREADS: usize = 4;

/// How many threads to compress on: the CPUs this process may use (std reads the affinity
/// mask and the cgroup's CPU quota, so a pod limited to one CPU compresses inline), at most
/// [`MAX_GZIP_THREADS`]. Only the speed depends on it, never the bytes.
pub fn gzip_threads() -> usize {
    std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(MAX_GZIP_THREADS)
}

impl<W: Write> LayerWriter<W> {
    pub fn new(out: W, level: Compression) -> Self {
        Self::with_threads(out, level, gzip_threads())
    }

    /// Compresses on `threads` threads (1: on the caller's); the bytes are the same for any.
    pub fn with_threads(out: W, level: Compression, threads: usize) -> Self {
        let gz = ParallelGzip::new(hashing(out), level, threads);
        let mut tar = tar::Builder::new(hashing(gz));
        tar.mode(tar::HeaderMode::Complete);
        tar.follow_symlinks(false);
        LayerWriter { tar, clamp: None }
    }

    /// Writes no mtime later than `epoch` (seconds), if one is given.
    pub fn clamp_to(mut self, epoch: Option<u64>) -> Self {
        self.clamp = epoch;
        self
    }

    fn header(&self, kind: tar::EntryType, meta: Meta, size: u64) -> tar::Header {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(kind);
        h.set_mode(meta.mode & 0o7777);
        h.set_uid(meta.uid);
        h.set_gid(meta.gid);
        h.set_mtime(clamp_mtime(meta.mtime, self.clamp));
        h.set_size(size);
        h
    }

    /// A file of exactly `size` bytes from `data`: tar writes the header first and then
    /// copies whatever it reads, so a file that grew or shrank since `size` was taken would
    /// make an entry whose length disagrees with its header (a corrupt, or smuggling, layer).
    /// More data is cut off at `size`; less fails.
    pub fn add_file(
        &mut self,
        path: impl AsRef<Path>,
        meta: Meta,
        size: u64,
        data: impl Read,
    ) -> io::Result<()> {
        let path = path.as_ref();
        let mut h = self.header(tar::EntryType::Regular, meta, size);
        let exact = Exact {
            inner: data.take(size),
            left: size,
            path,
        };
        self.tar.append_data(&mut h, path, exact)
    }

    pub fn add_dir(&mut self, path: impl AsRef<Path>, meta: Meta) -> io::Result<()> {
        let mut h = self.header(tar::EntryType::Directory, meta, 0);
        self.tar.append_data(&mut h, path, io::empty())
    }

    pub fn add_symlink(
        &mut self,
        path: impl AsRef<Path>,
        meta: Meta,
        target: impl AsRef<Path>,
    ) -> io::Result<()> {
        let mut h = self.header(tar::EntryType::Symlink, meta, 0);
        self.tar.append_link(&mut h, path, target)
    }

    /// A hard link to an entry earlier in the same layer.
    pub fn add_hardlink(
        &mut self,
        path: impl AsRef<Path>,
        meta: Meta,
        target: impl AsRef<Path>,
    ) -> io::Result<()> {
        let mut h = self.header(tar::EntryType::Link, meta, 0);
        self.tar.append_link(&mut h, path, target)
    }

    /// Extended attributes (security.capability, user.*, ...) of the entry added next, as
    /// PAX `SCHILY.xattr.<name>` records.
    pub fn add_xattrs(&mut self, xattrs: &[(String, Vec<u8>)]) -> io::Result<()> {
        // Sorted: the order a file system lists them in is not the same on every copy.
        let mut records: Vec<(String, &[u8])> = xattrs
            .iter()
            .map(|(k, v)| (format!("SCHILY.xattr.{k}"), v.as_slice()))
            .collect();
        records.sort();
        self.tar
            .append_pax_extensions(records.iter().map(|(k, v)| (k.as_str(), *v)))
    }

    /// A fifo or device node; `rdev` holds the device numbers.
    pub fn add_special(
        &mut self,
        path: impl AsRef<Path>,
        meta: Meta,
        kind: Kind,
        rdev: u64,
    ) -> io::Result<()> {
        let path = path.as_ref();
        let t = match kind {
            Kind::Fifo => tar::EntryType::Fifo,
            Kind::CharDevice => tar::EntryType::Char,
            Kind::BlockDevice => tar::EntryType::Block,
            _ => {
                let msg = format!("{}: not a special file", path.display());
                return Err(io::Error::other(msg));
            }
        };
        let mut h = self.header(t, meta, 0);
        let (major, minor) = (nix::sys::stat::major(rdev), nix::sys::stat::minor(rdev));
        h.set_device_major(major as u32)?;
        h.set_device_minor(minor as u32)?;
        self.tar.append_data(&mut h, path, io::empty())
    }

    /// Marks `path` as deleted: a `.wh.<name>` entry beside it.
    pub fn add_whiteout(&mut self, path: impl AsRef<Path>) -> io::Result<()> {
        let path = path.as_ref();
        let Some(name) = path.file_name() else {
            let msg = format!("{}: no name to white out", path.display());
            return Err(io::Error::new(io::ErrorKind::InvalidInput, msg));
        };
        let mut wh = OsString::from(".wh.");
        wh.push(name);
        let entry = path.parent().unwrap_or(Path::new("")).join(wh);
        self.add_file(entry, Meta::default(), 0, io::empty())
    }

    /// Hides everything lower layers have in directory `dir` (added before this).
    pub fn add_opaque(&mut self, dir: impl AsRef<Path>) -> io::Result<()> {
        let entry = dir.as_ref().join(OPAQUE);
        self.add_file(entry, Meta::default(), 0, io::empty())
    }

    /// Ends the tar and the gzip stream; returns the sink and the layer's digests.
    pub fn finish(self) -> io::Result<(W, LayerDigests)> {
        let mut outer = self.tar.into_inner()?;
        outer.flush()?;
        let diff_id = sha256_digest(outer.hash);
        let inner = outer.inner.finish()?;
        let digests = LayerDigests {
            diff_id,
            digest: sha256_digest(inner.hash),
            size: inner.count,
        };
        Ok((inner.inner, digests))
    }
}

/// The name of the opaque marker: `<dir>/.wh..wh..opq`.
const OPAQUE: &str = ".wh..wh..opq";

/// The order entries are written in: by path, component by component (by their bytes), so a
/// directory comes right before its contents; within a directory an opaque marker comes
/// first.
pub fn entry_order(a: &Path, b: &Path) -> Ordering {
    fn key(p: &Path) -> impl Iterator<Item = (bool, &[u8])> {
        let b = p.as_os_str().as_bytes();
        let start = b.iter().position(|c| *c != b'/').unwrap_or(b.len());
        let end = b.iter().rposition(|c| *c != b'/').map_or(start, |i| i + 1);
        b[start..end]
            .split(|c| *c == b'/')
            .map(|c| (c != OPAQUE.as_bytes(), c))
    }
    key(a).cmp(key(b))
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::read::GzDecoder;

    fn sha(bytes: &[u8]) -> String {
        let mut h = Sha256::new();
        h.update(bytes);
        sha256_digest(h)
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
    fn a_file_is_exactly_the_size_its_header_says() {
        // Grew since the walk: cut at the walked size, the tar stays whole.
        let mut w = LayerWriter::new(Vec::new(), Compression::fast());
        w.add_file("grew", Meta::default(), 3, &b"abcdef"[..])
            .expect("add");
        w.add_file("next", Meta::default(), 1, &b"n"[..])
            .expect("add");
        let (blob, _) = w.finish().expect("finish");
        let mut ar = tar::Archive::new(GzDecoder::new(&blob[..]));
        let got: Vec<(String, Vec<u8>)> = ar
            .entries()
            .expect("entries")
            .map(|e| {
                let mut e = e.expect("entry");
                let mut data = Vec::new();
                io::Read::read_to_end(&mut e, &mut data).expect("read");
                (e.path().expect("path").display().to_string(), data)
            })
            .collect();
        assert_eq!(
            got,
            [
                ("grew".to_string(), b"abc".to_vec()),
                ("next".to_string(), b"n".to_vec())
            ]
        );
        // Shrank: the layer fails, naming the file.
        let mut w = LayerWriter::new(Vec::new(), Compression::fast());
        let e = w
            .add_file("usr/big", Meta::default(), 10, &b"abc"[..])
            .expect_err("shrank");
        assert_eq!(
            e.to_string(),
            "usr/big: the file shrank while the layer was written (7 bytes missing)"
        );
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
    fn a_layer_is_the_same_on_any_number_of_threads() {
        // Big enough for several gzip pieces, so the threads really share the work.
        let layer = |threads| {
            let mut w = LayerWriter::with_threads(Vec::new(), Compression::fast(), threads);
            for i in 0..3u8 {
                let data: Vec<u8> = (0..700_000u32).map(|j| (j % 251) as u8 ^ i).collect();
                w.add_file(
                    format!("f{i}"),
                    Meta::default(),
                    data.len() as u64,
                    &data[..],
                )
                .expect("file");
            }
            w.finish().expect("finish")
        };
        let (one, d1) = layer(1);
        for threads in [2, 4] {
            let (blob, d) = layer(threads);
            assert_eq!((&blob, &d), (&one, &d1), "{threads} threads");
        }
        assert_eq!(d1.digest, sha(&one));
        assert!(gzip_threads() >= 1);
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

    /// (raw path, entry type, raw link target) of every entry of a layer.
    type Raw = (Vec<u8>, tar::EntryType, Option<Vec<u8>>);

    fn raw_entries(blob: &[u8]) -> Vec<Raw> {
        let mut ar = tar::Archive::new(GzDecoder::new(blob));
        ar.entries()
            .expect("entries")
            .map(|e| {
                let e = e.expect("entry");
                let link = e.link_name_bytes().map(|l| l.into_owned());
                (e.path_bytes().into_owned(), e.header().entry_type(), link)
            })
            .collect()
    }

    #[test]
    fn names_are_written_as_raw_bytes() {
        use std::ffi::OsStr;
        let raw = |b: &[u8]| OsStr::from_bytes(b).to_os_string();
        // Longer than the 100 bytes a tar header holds: a GNU long-name record.
        let long: Vec<u8> = [&b"dir\xe9/"[..], &[b'x'; 120], b"\xff"].concat();
        let mut w = LayerWriter::new(Vec::new(), Compression::fast());
        let m = Meta::default();
        w.add_dir(raw(b"dir\xe9"), m).expect("dir");
        w.add_file(raw(b"dir\xe9/caf\xe9"), m, 1, &b"c"[..])
            .expect("file");
        w.add_file(raw(&long), m, 0, io::empty()).expect("long");
        w.add_symlink("link", m, raw(b"dir\xe9/caf\xe9"))
            .expect("symlink");
        w.add_hardlink(raw(b"hard\xff"), m, raw(b"dir\xe9/caf\xe9"))
            .expect("hardlink");
        w.add_whiteout(raw(b"dir\xe9/gone\xe9")).expect("whiteout");
        w.add_opaque(raw(b"dir\xe9")).expect("opaque");
        let (blob, _) = w.finish().expect("finish");
        use tar::EntryType as T;
        let target = Some(b"dir\xe9/caf\xe9".to_vec());
        assert_eq!(
            raw_entries(&blob),
            vec![
                (b"dir\xe9".to_vec(), T::Directory, None),
                (b"dir\xe9/caf\xe9".to_vec(), T::Regular, None),
                (long, T::Regular, None),
                (b"link".to_vec(), T::Symlink, target.clone()),
                (b"hard\xff".to_vec(), T::Link, target),
                (b"dir\xe9/.wh.gone\xe9".to_vec(), T::Regular, None),
                (b"dir\xe9/.wh..wh..opq".to_vec(), T::Regular, None),
            ]
        );
    }

    #[test]
    fn device_numbers_split_like_the_kernel() {
        // makedev(259, 65537): major 259, minor 65537 (both past their old 8-bit fields).
        let rdev = nix::sys::stat::makedev(259, 65537);
        let mut w = LayerWriter::new(Vec::new(), Compression::fast());
        w.add_special("dev/nvme", Meta::default(), Kind::BlockDevice, rdev)
            .expect("block device");
        let e = w.add_special("dev/x", Meta::default(), Kind::File, 0);
        assert_eq!(
            e.expect_err("not special").to_string(),
            "dev/x: not a special file"
        );
        let (blob, _) = w.finish().expect("finish");
        let mut ar = tar::Archive::new(GzDecoder::new(&blob[..]));
        let e = ar
            .entries()
            .expect("entries")
            .next()
            .expect("one")
            .expect("entry");
        let h = e.header();
        assert_eq!(h.entry_type(), tar::EntryType::Block);
        assert_eq!(h.device_major().expect("major"), Some(259));
        assert_eq!(h.device_minor().expect("minor"), Some(65537));
    }

    #[test]
    fn order_puts_directories_before_contents_and_opaque_first() {
        let mut v = vec!["a/b/c", "a.txt", "a/.wh..wh..opq", "a", "a/b", "a-b", "a/a"];
        v.sort_by(|x, y| entry_order(Path::new(x), Path::new(y)));
        assert_eq!(
            v,
            ["a", "a/.wh..wh..opq", "a/a", "a/b", "a/b/c", "a-b", "a.txt"]
        );
        // Bytes, not characters: a name that is not UTF-8 sorts by its bytes.
        use std::ffi::OsStr;
        let (e9, ff) = (OsStr::from_bytes(b"a\xe9"), OsStr::from_bytes(b"a\xff"));
        assert_eq!(entry_order(Path::new(e9), Path::new(ff)), Ordering::Less);
        assert_eq!(
            entry_order(Path::new("a/"), Path::new("/a")),
            Ordering::Equal
        );
    }

    #[test]
    fn a_source_date_epoch_clamps_newer_times_only() {
        assert_eq!(clamp_mtime(5, None), 5);
        assert_eq!(clamp_mtime(5, Some(10)), 5);
        assert_eq!(clamp_mtime(10, Some(10)), 10);
        assert_eq!(clamp_mtime(11, Some(10)), 10);
        let epoch = 1_600_000_000;
        let m = |mtime| Meta {
            mode: 0o644,
            mtime,
            ..Meta::default()
        };
        let mut w = LayerWriter::new(Vec::new(), Compression::fast()).clamp_to(Some(epoch));
        w.add_dir("new", m(1_700_000_000)).expect("dir");
        w.add_file("new/old", m(1_000), 1, &b"o"[..]).expect("file");
        w.add_symlink("new/link", m(u64::from(u32::MAX)), "old")
            .expect("symlink");
        w.add_whiteout("gone").expect("whiteout");
        let (blob, _) = w.finish().expect("finish");
        let mut ar = tar::Archive::new(GzDecoder::new(&blob[..]));
        let times: Vec<(String, u64)> = ar
            .entries()
            .expect("entries")
            .map(|e| {
                let e = e.expect("entry");
                let p = e.path().expect("path").display().to_string();
                (p, e.header().mtime().expect("mtime"))
            })
            .collect();
        assert_eq!(
            times,
            [
                ("new".to_string(), epoch),
                ("new/old".to_string(), 1_000),
                ("new/link".to_string(), epoch),
                (".wh.gone".to_string(), 0),
            ]
        );
    }

    #[test]
    fn the_bytes_depend_only_on_the_entries() {
        // The same tree, its xattrs listed in another order, at another moment.
        let layer = |xattrs: &[(String, Vec<u8>)]| {
            let mut w = LayerWriter::new(Vec::new(), Compression::fast()).clamp_to(Some(100));
            w.add_dir("d", Meta::default()).expect("dir");
            w.add_xattrs(xattrs).expect("xattrs");
            let m = Meta {
                mode: 0o755,
                mtime: 200,
                ..Meta::default()
            };
            w.add_file("d/f", m, 2, &b"hi"[..]).expect("file");
            w.finish().expect("finish")
        };
        let x = |k: &str| (k.to_string(), b"v".to_vec());
        let (a, da) = layer(&[x("user.a"), x("security.capability")]);
        std::thread::sleep(std::time::Duration::from_millis(1100));
        let (b, db) = layer(&[x("security.capability"), x("user.a")]);
        assert_eq!(a, b);
        assert_eq!(da, db);
        // gzip: no name or comment (FLG 0), MTIME 0, XFL 4 (fastest), OS 255.
        assert_eq!(&a[..10], &[0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 4, 255]);
        // tar: no atime or ctime (GNU fields zero), no user or group names.
        let mut ar = tar::Archive::new(GzDecoder::new(&a[..]));
        for e in ar.entries().expect("entries") {
            let e = e.expect("entry");
            let h = e.header();
            assert_eq!(h.username_bytes(), Some(&b""[..]));
            assert_eq!(h.groupname_bytes(), Some(&b""[..]));
            if let Some(gnu) = h.as_gnu() {
                assert!(gnu.atime.iter().chain(&gnu.ctime).all(|b| *b == 0));
            }
        }
    }
}
