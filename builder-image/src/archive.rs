//! ADD of a local archive: tar, tar.gz, tar.bz2 and tar.xz are recognised by their first
//! bytes (as Docker does, not by name) and unpacked into the destination directory, keeping
//! the archive's owners unless `--chown` is given. No entry may land outside the root.

use std::fs;
use std::io::{self, Read};
use std::path::Path;

use crate::copy_into::{Written, make_dirs};
use crate::unpack::{ApplyOptions, apply_tar};

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

fn head(path: &Path) -> io::Result<Vec<u8>> {
    let mut f = fs::File::open(path)?;
    let mut buf = vec![0u8; 512];
    let mut n = 0;
    while n < buf.len() {
        let r = f.read(&mut buf[n..])?;
        if r == 0 {
            break;
        }
        n += r;
    }
    buf.truncate(n);
    Ok(buf)
}

/// A compressed file counts only if what it holds is a tar.
pub fn is_archive(path: &Path) -> bool {
    let Ok(h) = head(path) else { return false };
    match detect(&h) {
        None => false,
        Some(Compression::None) => true,
        Some(c) => decompressed(path, c)
            .and_then(|mut r| {
                let mut inner = vec![0u8; 512];
                let mut n = 0;
                while n < inner.len() {
                    let k = r.read(&mut inner[n..])?;
                    if k == 0 {
                        break;
                    }
                    n += k;
                }
                inner.truncate(n);
                Ok(detect(&inner) == Some(Compression::None))
            })
            .unwrap_or(false),
    }
}

fn decompressed(path: &Path, c: Compression) -> io::Result<Box<dyn Read>> {
    let f = io::BufReader::new(fs::File::open(path)?);
    Ok(match c {
        Compression::None => Box::new(f),
        Compression::Gzip => Box::new(flate2::read::GzDecoder::new(f)),
        Compression::Bzip2 => Box::new(bzip2::read::BzDecoder::new(f)),
        Compression::Xz => {
            // lzma-rs decodes into a writer; archives for ADD are small enough to hold.
            let mut out = Vec::new();
            lzma_rs::xz_decompress(&mut io::BufReader::new(fs::File::open(path)?), &mut out)
                .map_err(|e| io::Error::other(format!("xz: {e:?}")))?;
            Box::new(io::Cursor::new(out))
        }
    })
}

/// Unpacks the archive at `src` into the in-image directory `dest`.
pub fn extract_into(
    root: &Path,
    src: &Path,
    dest: &str,
    owner: Option<(u32, u32)>,
    out: &mut Written,
) -> Result<(), String> {
    let shown = src.display().to_string();
    let h = head(src).map_err(|e| format!("{shown}: {e}"))?;
    let c = detect(&h).ok_or_else(|| format!("{shown}: not an archive"))?;
    let dir = make_dirs(
        root,
        dest.trim_start_matches('/'),
        owner.unwrap_or((0, 0)),
        out,
    )
    .map_err(|e| format!("{dest}: {e}"))?;
    let reader = decompressed(src, c).map_err(|e| format!("{shown}: {e}"))?;
    let opts = ApplyOptions {
        chown: true,
        owner,
        whiteouts: false,
    };
    // The tar is plain by now; apply_tar would also take gzip, which is fine.
    let written = apply_tar(reader, &dir, &opts).map_err(|e| format!("{shown}: {e}"))?;
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
}
