//! A layer checked while it streams (security review H1): the push step and a stage applying a
//! parent's layers read layer files from a workspace that other stages' code ran beside, so
//! each blob's bytes are checked on their way: counted against the layer's size, hashed
//! against its digest and, through a streaming gzip decoder, against its diff_id. Where the
//! bytes are uploaded ([`checked`]), the stream ends in an error instead of its last chunk when
//! any of these differs, so the registry never completes the upload.

use std::io::{self, Write};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use flate2::write::MultiGzDecoder;
use futures::{Stream, StreamExt, stream};
use oci_client::manifest::{IMAGE_DOCKER_LAYER_TAR_MEDIA_TYPE, IMAGE_LAYER_MEDIA_TYPE};
use sha2::{Digest as _, Sha256};
use slipway_contract::digest::Digest;

use crate::workspace::LayerRef;

/// How a layer's bytes differ from what its reference says.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Mismatch {
    #[error("more than the {size} bytes the layer's size says")]
    TooLong { size: u64 },
    #[error("{got} bytes, not the {size} the layer's size says")]
    Size { got: u64, size: u64 },
    #[error("content has digest {got}, not {want}")]
    Digest { got: Digest, want: String },
    #[error("uncompressed content has digest {got}, not its diff_id {want}")]
    DiffId { got: Digest, want: String },
    #[error("not a gzip stream: {0}")]
    Gzip(String),
}

/// Bytes written into a sha256.
struct Hashing(Sha256);

impl Write for Hashing {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.update(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

fn digest_of(h: Sha256) -> Digest {
    Digest::from_sha256(&h.finalize().into())
}

/// What the uncompressed bytes are checked with.
enum Uncompressed {
    /// A gzip layer: its tar through a decoder.
    Gzip(Box<MultiGzDecoder<Hashing>>),
    /// A tar layer: the diff_id is the digest.
    Same,
    /// A compression this build cannot decode (a base image's zstd layer): the digest alone,
    /// which the registry the base came from vouched for.
    Unchecked,
    /// The gzip stream broke: said at the end, unless the digest already differs.
    Broken(String),
}

/// The running check of one layer's bytes.
pub struct LayerCheck {
    digest: Sha256,
    uncompressed: Uncompressed,
    count: u64,
    layer: LayerRef,
}

impl LayerCheck {
    pub fn new(layer: &LayerRef) -> Self {
        let uncompressed = match layer.media_type.as_str() {
            IMAGE_LAYER_MEDIA_TYPE | IMAGE_DOCKER_LAYER_TAR_MEDIA_TYPE => Uncompressed::Same,
            t if t.contains("zstd") => Uncompressed::Unchecked,
            _ => Uncompressed::Gzip(Box::new(MultiGzDecoder::new(Hashing(Sha256::new())))),
        };
        LayerCheck {
            digest: Sha256::new(),
            uncompressed,
            count: 0,
            layer: layer.clone(),
        }
    }

    /// The next bytes of the layer.
    pub fn update(&mut self, chunk: &[u8]) -> Result<(), Mismatch> {
        self.count += chunk.len() as u64;
        if self.count > self.layer.size {
            return Err(Mismatch::TooLong {
                size: self.layer.size,
            });
        }
        self.digest.update(chunk);
        if let Uncompressed::Gzip(d) = &mut self.uncompressed
            && let Err(e) = d.write_all(chunk)
        {
            self.uncompressed = Uncompressed::Broken(e.to_string());
        }
        Ok(())
    }

    /// The end of the layer: every byte was what its reference says.
    pub fn finish(self) -> Result<(), Mismatch> {
        let size = self.layer.size;
        if self.count != size {
            return Err(Mismatch::Size {
                got: self.count,
                size,
            });
        }
        let got = digest_of(self.digest);
        if got.as_str() != self.layer.digest {
            return Err(Mismatch::Digest {
                got,
                want: self.layer.digest,
            });
        }
        let diff = match self.uncompressed {
            Uncompressed::Gzip(d) => {
                let h = d.finish().map_err(|e| Mismatch::Gzip(e.to_string()))?;
                Some(digest_of(h.0))
            }
            Uncompressed::Same => Some(got),
            Uncompressed::Unchecked => None,
            Uncompressed::Broken(e) => return Err(Mismatch::Gzip(e)),
        };
        match diff {
            Some(d) if d.as_str() != self.layer.diff_id => Err(Mismatch::DiffId {
                got: d,
                want: self.layer.diff_id,
            }),
            _ => Ok(()),
        }
    }
}

/// Where [`checked`] leaves the mismatch it ended a stream with, for the error to say.
pub type MismatchSlot = Arc<Mutex<Option<Mismatch>>>;

/// `stream` (a layer file's chunks) checked with `check`: a chunk that makes the layer longer
/// than its size, or an end where its digests differ, is an error (also left in `slot`), and
/// the stream ends there.
pub fn checked<S>(
    stream: S,
    check: LayerCheck,
    slot: MismatchSlot,
) -> impl Stream<Item = io::Result<Bytes>> + Send + 'static
where
    S: Stream<Item = io::Result<Bytes>> + Send + Unpin + 'static,
{
    let fail = move |m: Mismatch, slot: &MismatchSlot| {
        let e = io::Error::other(m.clone());
        *slot.lock().unwrap_or_else(|p| p.into_inner()) = Some(m);
        e
    };
    stream::unfold(Some((stream, check, slot)), move |state| async move {
        let (mut inner, mut check, slot) = state?;
        match inner.next().await {
            Some(Ok(chunk)) => match check.update(&chunk) {
                Ok(()) => Some((Ok(chunk), Some((inner, check, slot)))),
                Err(m) => Some((Err(fail(m, &slot)), None)),
            },
            Some(Err(e)) => Some((Err(e), None)),
            None => match check.finish() {
                Ok(()) => None,
                Err(m) => Some((Err(fail(m, &slot)), None)),
            },
        }
    })
}

/// A reader whose bytes are checked with a [`LayerCheck`] as they are read: a stage applying
/// a parent's layer. Read it to its end, then [`CheckedRead::finish`].
pub struct CheckedRead<R> {
    inner: R,
    check: LayerCheck,
}

impl<R: io::Read> CheckedRead<R> {
    pub fn new(inner: R, layer: &LayerRef) -> Self {
        CheckedRead {
            inner,
            check: LayerCheck::new(layer),
        }
    }

    /// Reads what the consumer left (the end of a gzip stream, padding after a tar), then
    /// says whether every byte was the layer's.
    pub fn finish(mut self) -> Result<(), FinishError> {
        io::copy(&mut self, &mut io::sink()).map_err(FinishError::Read)?;
        self.check.finish().map_err(FinishError::Mismatch)
    }
}

/// A checked read that did not end well.
#[derive(Debug, thiserror::Error)]
pub enum FinishError {
    #[error(transparent)]
    Mismatch(Mismatch),
    #[error("{0}")]
    Read(#[source] io::Error),
}

impl FinishError {
    /// The mismatch, also when a read stopped at it.
    pub fn mismatch(&self) -> Option<&Mismatch> {
        match self {
            FinishError::Mismatch(m) => Some(m),
            FinishError::Read(e) => e.get_ref().and_then(|e| e.downcast_ref()),
        }
    }
}

impl<R: io::Read> io::Read for CheckedRead<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.check.update(&buf[..n]).map_err(io::Error::other)?;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layer::writer::LayerWriter;
    use std::io::Read;

    /// A small gzip layer and its reference.
    fn layer() -> (Vec<u8>, LayerRef) {
        let mut w = LayerWriter::new(Vec::new(), flate2::Compression::fast());
        let meta = crate::layer::writer::Meta {
            mode: 0o644,
            ..Default::default()
        };
        w.add_file("etc/marker", meta, 7, &b"target\n"[..])
            .expect("entry");
        let (bytes, d) = w.finish().expect("layer");
        let l = LayerRef {
            path: "stages/1/layers/x.tar.gz".into(),
            digest: d.digest,
            diff_id: d.diff_id,
            size: d.size,
            media_type: crate::stage::LAYER_MEDIA_TYPE.into(),
        };
        (bytes, l)
    }

    fn chunks(bytes: &[u8]) -> Vec<io::Result<Bytes>> {
        bytes
            .chunks(7)
            .map(|c| Ok(Bytes::copy_from_slice(c)))
            .collect()
    }

    /// Streams `bytes` checked as `l`: the bytes that went through and the error, if any.
    fn stream(bytes: &[u8], l: &LayerRef) -> (Vec<u8>, Option<Mismatch>) {
        let slot = MismatchSlot::default();
        let s = checked(
            stream::iter(chunks(bytes)),
            LayerCheck::new(l),
            slot.clone(),
        );
        let items: Vec<io::Result<Bytes>> = futures::executor::block_on(s.collect());
        let mut out = Vec::new();
        let mut errors = 0;
        for i in items {
            match i {
                Ok(b) => out.extend_from_slice(&b),
                Err(_) => errors += 1,
            }
        }
        let m = slot.lock().expect("slot").clone();
        assert_eq!(errors, usize::from(m.is_some()));
        (out, m)
    }

    #[test]
    fn a_layer_that_is_what_it_says_streams_whole() {
        let (bytes, l) = layer();
        let (out, m) = stream(&bytes, &l);
        assert_eq!((out, m), (bytes.clone(), None));
        let mut r = CheckedRead::new(&bytes[..], &l);
        let mut buf = [0u8; 10];
        r.read_exact(&mut buf).expect("read");
        r.finish().expect("the rest is drained and checked");
    }

    /// T4's push side: a layer file swapped for other bytes of the same size, or for a
    /// valid gzip of another tar whose digest the forged result claims, never completes.
    #[test]
    fn a_tampered_layer_ends_in_an_error() {
        let (mut bytes, l) = layer();
        let last = bytes.len() - 10;
        bytes[last] ^= 0xff;
        let (_, m) = stream(&bytes, &l);
        assert!(matches!(m, Some(Mismatch::Digest { .. })), "{m:?}");
        let e = CheckedRead::new(&bytes[..], &l)
            .finish()
            .expect_err("tampered");
        assert!(matches!(e.mismatch(), Some(Mismatch::Digest { .. })), "{e}");

        // The right digest and size, a wrong diff_id: caught through the decoder.
        let (good, l) = layer();
        let forged = LayerRef {
            diff_id: format!("sha256:{}", "0".repeat(64)),
            ..l.clone()
        };
        let (_, m) = stream(&good, &forged);
        assert!(matches!(m, Some(Mismatch::DiffId { .. })), "{m:?}");

        // /dev/zero-style: more bytes than the size says stop at once.
        let long = vec![0u8; l.size as usize + 100];
        let (out, m) = stream(&long, &l);
        assert_eq!(m, Some(Mismatch::TooLong { size: l.size }));
        assert!(out.len() as u64 <= l.size);
        let (_, m) = stream(&good[..good.len() - 1], &l);
        assert!(matches!(m, Some(Mismatch::Size { .. })), "{m:?}");
    }

    #[test]
    fn tar_layers_have_their_digest_for_diff_id_and_zstd_the_digest_alone() {
        let data = b"not really a tar".to_vec();
        let d = crate::registry::manifest::sha256_bytes(&data);
        let tar = LayerRef {
            path: String::new(),
            digest: d.clone(),
            diff_id: d.clone(),
            size: data.len() as u64,
            media_type: IMAGE_LAYER_MEDIA_TYPE.into(),
        };
        assert_eq!(stream(&data, &tar).1, None);
        let wrong = LayerRef {
            diff_id: format!("sha256:{}", "1".repeat(64)),
            ..tar.clone()
        };
        assert!(matches!(
            stream(&data, &wrong).1,
            Some(Mismatch::DiffId { .. })
        ));
        let zstd = LayerRef {
            media_type: "application/vnd.oci.image.layer.v1.tar+zstd".into(),
            ..wrong
        };
        assert_eq!(stream(&data, &zstd).1, None);
    }
}
