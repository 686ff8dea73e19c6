//! ADD of a local archive: tar, tar.gz, tar.bz2 and tar.xz are recognised by their first
//! bytes (as Docker does, not by name) and unpacked into the destination directory, keeping
//! the archive's owners unless `--chown` is given. No entry may land outside the root.

use std::fs;
use std::io::{self, Read};
use std::path::Path;

use crate::fs::copy::{Written, make_dirs};
use crate::fs::unpack::{ApplyOptions, UnpackError, apply_tar};

/// An archive could not be unpacked: its destination, or the archive (as shown), named.
#[derive(Debug, thiserror::Error)]
pub enum ExtractError {
    #[error("{dest}: {source}")]
    Dest {
        dest: String,
        #[source]
        source: io::Error,
    },
    #[error("{shown}: {source}")]
    Unpack {
        shown: String,
        #[source]
        source: UnpackError,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
    Bzip2,
    Xz,
}

/// What kind of archive the bytes start, if any.
pub fn detect(head: &[u8]) -> Option<Compression> {
    if head.starts_with(&[0x1f, 0x8b]) {
        Some(Compression::Gzip)
    } else if head.starts_with(b"BZh") {
        Some(Compression::Bzip2)
    } else if head.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0]) {
        Some(Compression::Xz)
    } else if head.len() >= 262 && &head[257..262] == b"ustar" {
        Some(Compression::None)
    } else {
        None
    }
}

/// Up to `n` bytes from the start of `r` (fewer only at its end).
fn read_up_to(r: &mut impl Read, n: usize) -> io::Result<Vec<u8>> {
    let mut buf = Vec::with_capacity(n);
    r.take(n as u64).read_to_end(&mut buf)?;
    Ok(buf)
}

/// Decompressing an archive would give more than the caller's limit (see [`open_tar_limited`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("larger than the size limit")]
pub struct OverLimit;

/// A `Vec` writer that refuses to grow past `limit` bytes.
struct Capped {
    out: Vec<u8>,
    limit: u64,
    tripped: bool,
}

impl io::Write for Capped {
    fn write(&mut self, b: &[u8]) -> io::Result<usize> {
        if self.out.len() as u64 + b.len() as u64 > self.limit {
            self.tripped = true;
            return Err(io::Error::other(OverLimit));
        }
        self.out.extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

fn decompressed(path: &Path, c: Compression, limit: u64) -> io::Result<Box<dyn Read>> {
    let f = io::BufReader::new(fs::File::open(path)?);
    Ok(match c {
        Compression::None => Box::new(f),
        Compression::Gzip => Box::new(flate2::read::GzDecoder::new(f)),
        Compression::Bzip2 => Box::new(bzip2::read::BzDecoder::new(f)),
        Compression::Xz => {
            // lzma-rs decodes into a writer; archives for ADD are small enough to hold, and
            // the writer stops at `limit` (a decompression bomb ends there).
            let mut out = Capped {
                out: Vec::new(),
                limit,
                tripped: false,
            };
            let r =
                lzma_rs::xz_decompress(&mut io::BufReader::new(fs::File::open(path)?), &mut out);
            if out.tripped {
                return Err(io::Error::other(OverLimit));
            }
            r.map_err(|e| io::Error::other(format!("xz: {e:?}")))?;
            Box::new(io::Cursor::new(out.out))
        }
    })
}

/// The tar stream of the file at `path` when it is a tar, plain or compressed (a compressed
/// file counts only if what it holds is a tar); `None` for any other file. Decompression
/// starts once, and the same stream is then unpacked.
pub fn open_tar(path: &Path) -> io::Result<Option<Box<dyn Read>>> {
    open_tar_limited(path, u64::MAX)
}

/// [`open_tar`], where an xz archive that decompresses to more than `limit` bytes fails with
/// [`OverLimit`] (xz is decompressed whole up front; the other streams are read as they go,
/// and the caller counts what it reads).
pub fn open_tar_limited(path: &Path, limit: u64) -> io::Result<Option<Box<dyn Read>>> {
    let head = read_up_to(&mut fs::File::open(path)?, 512)?;
    let Some(c) = detect(&head) else {
        return Ok(None);
    };
    let mut r = decompressed(path, c, limit)?;
    let inner = read_up_to(&mut r, 512)?;
    if detect(&inner) != Some(Compression::None) {
        return Ok(None);
    }
    Ok(Some(Box::new(io::Cursor::new(inner).chain(r))))
}

/// Unpacks a tar stream (from [`open_tar`]; `shown` names it) into the in-image directory
/// `dest`.
pub fn extract_into(
    root: &Path,
    tar: impl Read,
    shown: &str,
    dest: &str,
    owner: Option<(u32, u32)>,
    out: &mut Written,
) -> Result<(), ExtractError> {
    let dir = make_dirs(
        root,
        dest.trim_start_matches('/'),
        owner.unwrap_or((0, 0)),
        0o755,
        out,
    )
    .map_err(|source| ExtractError::Dest {
        dest: dest.to_string(),
        source,
    })?;
    let opts = ApplyOptions {
        chown: true,
        owner,
        whiteouts: false,
    };
    let written = apply_tar(tar, &dir, &opts).map_err(|source| ExtractError::Unpack {
        shown: shown.to_string(),
        source,
    })?;
    for p in written {
        out.record(root, &p);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn archives_are_known_by_their_bytes() {
        assert_eq!(detect(&[0x1f, 0x8b, 8]), Some(Compression::Gzip));
        assert_eq!(detect(b"BZh91AY"), Some(Compression::Bzip2));
        assert_eq!(
            detect(&[0xfd, b'7', b'z', b'X', b'Z', 0, 0]),
            Some(Compression::Xz)
        );
        assert_eq!(detect(b"hello"), None);
        let mut tar = vec![0u8; 512];
        tar[257..262].copy_from_slice(b"ustar");
        assert_eq!(detect(&tar), Some(Compression::None));
    }

    #[test]
    fn an_entry_outside_the_root_names_the_archive_and_the_entry() {
        let root = tempfile::tempdir().expect("tmp");
        let mut b = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        h.set_size(1);
        h.set_mode(0o644);
        let name = b"../../evil.txt";
        h.as_gnu_mut().expect("gnu").name[..name.len()].copy_from_slice(name);
        h.set_cksum();
        b.append(&h, &b"x"[..]).expect("append");
        let evil = b.into_inner().expect("tar");
        let mut w = Written::default();
        let e = extract_into(root.path(), &evil[..], "/ctx/evil.tar", "/x", None, &mut w)
            .expect_err("refused");
        // tests/engine/failures.sh matches this message.
        assert_eq!(
            e.to_string(),
            r#"/ctx/evil.tar: layer entry "../../evil.txt" would land outside the root"#
        );
        assert!(std::error::Error::source(&e).is_some());
    }
}
