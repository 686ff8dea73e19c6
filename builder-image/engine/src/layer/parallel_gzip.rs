//! One gzip member compressed on several threads, byte for byte the same whatever their number.
//!
//! The input is cut into [`CHUNK`]-byte pieces at fixed offsets of the stream. Each piece is
//! deflated on its own, primed with the 32 KiB of input just before it as a dictionary (all a
//! deflate window could reach anyway), and ended with a sync flush (an empty stored block), so
//! the pieces end on byte boundaries and simply concatenate into one raw deflate stream; the
//! last piece (possibly empty) carries the final block. One gzip header and trailer wrap them,
//! the trailer's CRC-32 combined from the pieces' own. This is pigz's scheme.
//!
//! Why the bytes never depend on the thread count: a piece's deflate output is a function of
//! its input, its dictionary and the level only, and the pieces are cut at fixed offsets and
//! written in order. One thread compresses the very same pieces inline, so a layer built on a
//! one-core node has the digest of the same layer built on a 64-core one.
//!
//! Own code on flate2 (zlib-rs backend) and crc32fast rather than the `gzp` crate, which does
//! the same scheme: its `flush()` cuts a piece wherever the caller flushes (so the bytes would
//! follow the caller's flush pattern, not the data), it moves the sink onto a writer thread
//! (`Send + 'static`) and does not hand it back from `finish`, which the layer writer needs,
//! and it pulls in flume, core_affinity and num_cpus for what std's threads and channels do.

use std::collections::VecDeque;
use std::io::{self, Write};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use crc32fast::Hasher as Crc32;
use flate2::{Compress, Compression, FlushCompress, Status};

/// Uncompressed bytes per piece. Larger pieces cost less (one empty stored block and one
/// 32 KiB dictionary priming each, both under 1% here) but hold more memory per thread;
/// pigz uses 128 KiB. Changing it changes every layer's digest.
pub const CHUNK: usize = 256 << 10;

/// How far back deflate can refer: the dictionary each piece is primed with.
const WINDOW: usize = 32 << 10;

/// What can go wrong compressing, apart from the sink's own I/O errors.
#[derive(Debug, thiserror::Error)]
pub enum GzipError {
    #[error("deflate failed: {0}")]
    Deflate(#[from] flate2::CompressError),
    #[error("deflate made no progress on a {0}-byte piece")]
    Stalled(usize),
    #[error("a compression thread stopped before returning its piece")]
    WorkerLost,
}

impl From<GzipError> for io::Error {
    fn from(e: GzipError) -> Self {
        io::Error::other(e)
    }
}

/// One piece to compress.
struct Piece {
    data: Vec<u8>,
    /// The input's last [`WINDOW`] bytes before this piece (empty for the first).
    dict: Vec<u8>,
    last: bool,
}

/// A compressed piece: its raw deflate bytes and the CRC-32 of its input.
type Done = Result<(Vec<u8>, Crc32), GzipError>;

/// How much of a piece is deflated first to tell whether the piece is worth deflating.
const PROBE: usize = 8 << 10;

/// Whether deflate at `level` makes the piece's first [`PROBE`] bytes smaller. At level 1
/// zlib-rs (zlib-ng's quick strategy) codes literals with the fixed Huffman table, so data
/// without repeats (random bytes, and what is already compressed: `.gz`, `.jar`, images)
/// comes out about 5% larger, and at a tenth of the speed of storing it. A function of the
/// piece alone, so the layer's bytes still depend on the data and the level only.
fn worth_deflating(level: Compression, data: &[u8]) -> Result<bool, GzipError> {
    if level.level() == 0 || data.len() < PROBE {
        return Ok(true);
    }
    let probe = &data[..PROBE];
    let mut out = Vec::with_capacity(PROBE + PROBE / 8 + 64);
    Compress::new(level, false).compress_vec(probe, &mut out, FlushCompress::Finish)?;
    Ok(out.len() < probe.len())
}

/// Deflates one piece on a fresh deflate state, or stores it (level 0) when deflate would
/// not make it smaller ([`worth_deflating`]). Not a reset state: a reset keeps the window's
/// old bytes past the new data's end, and the match finder reads there near a piece's end
/// (it clamps the length, but which match wins can change), so a piece would depend on what
/// its thread compressed before. A fresh state's window is zeroed; the cost, one allocation
/// and about 256 KiB of clearing per piece, is small next to deflating the piece.
fn deflate_piece(level: Compression, piece: &Piece) -> Done {
    let deflate = worth_deflating(level, &piece.data)?;
    let z = &mut Compress::new(if deflate { level } else { Compression::none() }, false);
    if deflate && !piece.dict.is_empty() {
        z.set_dictionary(&piece.dict)?;
    }
    let flush = if piece.last {
        FlushCompress::Finish
    } else {
        FlushCompress::Sync
    };
    // Room for stored blocks in the worst case, so one call usually suffices.
    let mut out = Vec::with_capacity(piece.data.len() + piece.data.len() / 8 + 64);
    let start = z.total_in();
    loop {
        let fed = (z.total_in() - start) as usize;
        let before = (z.total_in(), z.total_out());
        let status = z.compress_vec(&piece.data[fed..], &mut out, flush)?;
        let consumed_all = (z.total_in() - start) as usize == piece.data.len();
        let room_left = out.len() < out.capacity();
        match status {
            Status::StreamEnd => break,
            // A sync flush is complete once all input is in and output was not cut short.
            Status::Ok | Status::BufError if !piece.last && consumed_all && room_left => break,
            _ => {}
        }
        if !room_left {
            out.reserve(out.capacity().max(4096));
        } else if (z.total_in(), z.total_out()) == before {
            return Err(GzipError::Stalled(piece.data.len()));
        }
    }
    let mut crc = Crc32::new();
    crc.update(&piece.data);
    Ok((out, crc))
}

/// A job for a compression thread: the piece and where to send its result.
type Job = (Piece, SyncSender<Done>);

/// The compression threads, sharing one queue of jobs.
struct Workers {
    jobs: Option<SyncSender<Job>>,
    handles: Vec<JoinHandle<()>>,
}

impl Workers {
    fn spawn(threads: usize, level: Compression) -> Self {
        let (tx, rx) = sync_channel::<Job>(threads);
        let rx = Arc::new(Mutex::new(rx));
        let handles = (0..threads)
            .map(|_| {
                let rx = Arc::clone(&rx);
                std::thread::spawn(move || {
                    loop {
                        // Poisoned only if another worker panicked while holding it: stop too.
                        let job = match rx.lock() {
                            Ok(rx) => rx.recv(),
                            Err(_) => return,
                        };
                        let Ok((piece, reply)) = job else { return };
                        // The writer may have gone (dropped mid-layer): nothing to tell it.
                        let _ = reply.send(deflate_piece(level, &piece));
                    }
                })
            })
            .collect();
        Workers {
            jobs: Some(tx),
            handles,
        }
    }
}

impl Drop for Workers {
    fn drop(&mut self) {
        // Closing the queue ends every worker once it finishes its current piece.
        self.jobs = None;
        for h in self.handles.drain(..) {
            let _ = h.join();
        }
    }
}

/// A piece on its way: compressed inline already, or awaited from a worker.
enum Pending {
    Ready(Done),
    Waiting(Receiver<Done>),
}

/// Writes one gzip member to `W`: header with no name, mtime 0 and OS 255 ("unknown"), so
/// the bytes depend on the data and the level alone.
pub struct ParallelGzip<W: Write> {
    out: W,
    level: Compression,
    /// The piece being filled.
    buf: Vec<u8>,
    /// The last [`WINDOW`] bytes of the piece before `buf`.
    dict: Vec<u8>,
    /// Pieces sent off, oldest first: written in this order.
    pending: VecDeque<Pending>,
    /// None with one thread: pieces are compressed on the caller's.
    workers: Option<Workers>,
    max_pending: usize,
    crc: Crc32,
    header_written: bool,
}

/// The gzip header's OS byte: 255, "unknown", the same on every machine.
const GZIP_OS_UNKNOWN: u8 = 255;

impl<W: Write> ParallelGzip<W> {
    /// Compresses on `threads` threads (1: on the caller's own, no thread started).
    pub fn new(out: W, level: Compression, threads: usize) -> Self {
        let threads = threads.max(1);
        let workers = (threads > 1).then(|| Workers::spawn(threads, level));
        ParallelGzip {
            out,
            level,
            buf: Vec::with_capacity(CHUNK),
            dict: Vec::new(),
            pending: VecDeque::new(),
            workers,
            // Two pieces per thread in flight: the threads never wait for work, and memory
            // stays a few MiB whatever the layer's size.
            max_pending: 2 * threads,
            crc: Crc32::new(),
            header_written: false,
        }
    }

    fn header(&self) -> [u8; 10] {
        // XFL as zlib and flate2 set it: 2 for the best level, 4 for the fastest.
        let xfl = match self.level.level() {
            l if l >= Compression::best().level() => 2,
            l if l <= Compression::fast().level() => 4,
            _ => 0,
        };
        [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, xfl, GZIP_OS_UNKNOWN]
    }

    /// Sends the filled piece off (or compresses it, with one thread).
    fn dispatch(&mut self, last: bool) -> io::Result<()> {
        let data = std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK));
        let next_dict = data[data.len().saturating_sub(WINDOW)..].to_vec();
        let dict = std::mem::replace(&mut self.dict, next_dict);
        let piece = Piece { data, dict, last };
        if self.pending.len() >= self.max_pending {
            self.write_oldest()?;
        }
        let p = match &self.workers {
            Some(w) => {
                let (reply, rx) = sync_channel(1);
                let queue = w.jobs.as_ref().ok_or(GzipError::WorkerLost)?;
                queue
                    .send((piece, reply))
                    .map_err(|_| GzipError::WorkerLost)?;
                Pending::Waiting(rx)
            }
            None => Pending::Ready(deflate_piece(self.level, &piece)),
        };
        self.pending.push_back(p);
        Ok(())
    }

    /// Waits for the oldest piece and writes it.
    fn write_oldest(&mut self) -> io::Result<()> {
        let Some(p) = self.pending.pop_front() else {
            return Ok(());
        };
        let done = match p {
            Pending::Ready(d) => d,
            Pending::Waiting(rx) => rx.recv().map_err(|_| GzipError::WorkerLost)?,
        };
        let (bytes, crc) = done?;
        if !self.header_written {
            let h = self.header();
            self.out.write_all(&h)?;
            self.header_written = true;
        }
        self.out.write_all(&bytes)?;
        self.crc.combine(&crc);
        Ok(())
    }

    /// Ends the stream (the last piece, then CRC-32 and length) and returns the sink.
    pub fn finish(mut self) -> io::Result<W> {
        self.dispatch(true)?;
        while !self.pending.is_empty() {
            self.write_oldest()?;
        }
        let mut trailer = [0u8; 8];
        trailer[..4].copy_from_slice(&self.crc.clone().finalize().to_le_bytes());
        // ISIZE: the input's length modulo 2^32, as RFC 1952 says.
        trailer[4..].copy_from_slice(&(self.crc.total_len() as u32).to_le_bytes());
        self.out.write_all(&trailer)?;
        self.out.flush()?;
        drop(self.workers.take());
        Ok(self.out)
    }
}

impl<W: Write> Write for ParallelGzip<W> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let n = data.len().min(CHUNK - self.buf.len());
        self.buf.extend_from_slice(&data[..n]);
        if self.buf.len() == CHUNK {
            self.dispatch(false)?;
        }
        Ok(n)
    }

    /// Writes out what is compressed so far, without cutting a piece: cutting one here would
    /// make the bytes depend on when callers flush, not only on the data.
    fn flush(&mut self) -> io::Result<()> {
        while !self.pending.is_empty() {
            self.write_oldest()?;
        }
        self.out.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::read::GzDecoder;
    use std::io::Read;
    use std::process::{Command, Stdio};

    /// Pseudo-random bytes (xorshift), the same on every run.
    fn random(n: usize, seed: u64) -> Vec<u8> {
        let mut s = seed | 1;
        (0..n)
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                (s >> 24) as u8
            })
            .collect()
    }

    /// Text-like data: compressible, with matches reaching across piece boundaries.
    fn text(n: usize) -> Vec<u8> {
        let words = ["layer ", "digest ", "tar ", "gzip\n", "sha256 ", "slipway "];
        let mut out = Vec::with_capacity(n + 16);
        let mut i = 0usize;
        while out.len() < n {
            out.extend_from_slice(words[(i * 7 + i / 5) % words.len()].as_bytes());
            i += 1;
        }
        out.truncate(n);
        out
    }

    /// Compresses `data` on `threads` threads, handing it over in `step`-byte writes.
    fn gz(data: &[u8], threads: usize, step: usize) -> Vec<u8> {
        let mut g = ParallelGzip::new(Vec::new(), Compression::fast(), threads);
        for part in data.chunks(step.max(1)) {
            g.write_all(part).expect("write");
        }
        g.finish().expect("finish")
    }

    fn gunzip(blob: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        let mut d = GzDecoder::new(blob);
        d.read_to_end(&mut out).expect("gunzip");
        // One member: nothing may follow its trailer.
        assert_eq!(d.into_inner(), &[] as &[u8], "bytes after the gzip member");
        out
    }

    /// `gzip -t` and `zcat` on the blob; `None` when gzip is not installed.
    fn gzip_cli(blob: &[u8]) -> Option<Vec<u8>> {
        let dir = tempfile::tempdir().expect("tempdir");
        let f = dir.path().join("blob.gz");
        std::fs::write(&f, blob).expect("write blob");
        let test = Command::new("gzip").arg("-t").arg(&f).status();
        let Ok(test) = test else {
            eprintln!("gzip not installed: CLI check skipped");
            return None;
        };
        assert!(test.success(), "gzip -t rejected the stream");
        let out = Command::new("zcat")
            .arg(&f)
            .stderr(Stdio::inherit())
            .output()
            .expect("zcat");
        assert!(out.status.success(), "zcat failed");
        Some(out.stdout)
    }

    #[test]
    fn round_trips_through_flate2_and_the_gzip_cli() {
        for data in [
            text(3 * CHUNK + 12_345),
            random(CHUNK + 7, 1),
            b"hi".to_vec(),
        ] {
            let blob = gz(&data, 2, 10_000);
            assert_eq!(gunzip(&blob), data);
            if let Some(cli) = gzip_cli(&blob) {
                assert_eq!(cli, data);
            }
        }
    }

    #[test]
    fn the_bytes_do_not_depend_on_threads_or_write_sizes() {
        let data = [text(5 * CHUNK / 2), random(CHUNK, 2), vec![0; CHUNK + 1]].concat();
        let one = gz(&data, 1, 1 << 20);
        for (threads, step) in [(1, 4096), (2, 1 << 20), (2, 777), (4, 65_536), (4, 1)] {
            assert_eq!(
                gz(&data, threads, step),
                one,
                "{threads} threads, {step}-byte writes"
            );
        }
        // Flushing along the way writes out what is ready but cuts nothing.
        let mut g = ParallelGzip::new(Vec::new(), Compression::fast(), 2);
        for part in data.chunks(100_000) {
            g.write_all(part).expect("write");
            g.flush().expect("flush");
        }
        assert_eq!(g.finish().expect("finish"), one);
        println!(
            "{} bytes -> {} bytes, same on 1, 2 and 4 threads",
            data.len(),
            one.len()
        );
    }

    /// Random bytes of 16 values: matches of every length everywhere, up to the piece's end.
    fn nibbles(n: usize, seed: u64) -> Vec<u8> {
        random(n, seed).iter().map(|b| b & 0x0f).collect()
    }

    #[test]
    fn a_piece_does_not_depend_on_what_its_thread_compressed_before() {
        // On one thread each piece follows the one before on the same thread; on four, most
        // do not. A reused deflate state keeps the old piece's bytes past the window's end,
        // which the match finder reads near a piece's end: this data catches it.
        let data = nibbles(4 * CHUNK + 1000, 3);
        let one = gz(&data, 1, 1 << 20);
        assert_eq!(gz(&data, 4, 1 << 20), one);
        assert_eq!(gz(&data, 2, 1 << 20), one);
        assert_eq!(gunzip(&one), data);
    }

    #[test]
    fn empty_input_is_a_valid_empty_stream() {
        for threads in [1, 2, 4] {
            let blob = gz(&[], threads, 1);
            // Header, a final empty fixed block (03 00), CRC-32 0 and length 0.
            let want = [
                0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 4, 255, 3, 0, 0, 0, 0, 0, 0, 0, 0, 0,
            ];
            assert_eq!(blob, want);
            assert_eq!(gunzip(&blob), b"");
            if let Some(cli) = gzip_cli(&blob) {
                assert!(cli.is_empty());
            }
        }
    }

    #[test]
    fn input_at_and_around_piece_boundaries() {
        for n in [
            WINDOW - 1,
            WINDOW,
            CHUNK - 1,
            CHUNK,
            CHUNK + 1,
            2 * CHUNK,
            3 * CHUNK - 1,
        ] {
            let data = text(n);
            let blob = gz(&data, 1, CHUNK);
            assert_eq!(gunzip(&blob), data, "{n} bytes");
            assert_eq!(gz(&data, 4, 1000), blob, "{n} bytes on 4 threads");
            // The trailer: CRC-32 and length of the whole input.
            let t = &blob[blob.len() - 8..];
            assert_eq!(t[..4], crc32fast::hash(&data).to_le_bytes());
            assert_eq!(t[4..], (n as u32).to_le_bytes());
        }
    }

    #[test]
    fn a_large_input_of_random_and_zero_data() {
        // 24 MiB: random (stored blocks), zeros (long runs) and text, interleaved.
        let mut data = Vec::new();
        for i in 0..4u64 {
            data.extend(random(3 << 20, i + 10));
            data.extend(std::iter::repeat_n(0u8, (2 << 20) + 333));
            data.extend(text((1 << 20) - 333));
        }
        let blob = gz(&data, 4, 1 << 16);
        assert_eq!(gz(&data, 1, 1 << 20), blob);
        assert_eq!(gz(&data, 2, 12_345), blob);
        assert_eq!(gunzip(&blob), data);
        if let Some(cli) = gzip_cli(&blob) {
            assert!(cli == data, "zcat gave other bytes");
        }
        // Pieces cost little against one deflate stream at the same level.
        let mut whole = flate2::write::GzEncoder::new(Vec::new(), Compression::fast());
        whole.write_all(&data).expect("gzip");
        let whole = whole.finish().expect("gzip").len();
        println!(
            "{} MiB: pieces {} bytes, one stream {whole} bytes",
            data.len() >> 20,
            blob.len()
        );
        assert!(blob.len() as f64 <= whole as f64 * 1.01);
        // The random pieces are stored, not coded with the fixed table (about 5% larger).
        assert!(
            blob.len() < 4 * ((3 << 20) + (1 << 20) / 2),
            "{}",
            blob.len()
        );
    }

    #[test]
    fn pieces_deflate_cannot_shrink_are_stored() {
        let data = random(5 * CHUNK + 77, 7);
        for threads in [1, 3] {
            let blob = gz(&data, threads, 1 << 16);
            assert_eq!(gunzip(&blob), data);
            // Stored blocks cost 5 bytes per 64 KiB, plus the header, trailer and flushes.
            assert!(
                blob.len() <= data.len() + data.len() / 1000 + 64,
                "{}",
                blob.len()
            );
        }
        // Text next to it is still deflated.
        let mut mixed = random(2 * CHUNK, 8);
        mixed.extend(text(2 * CHUNK));
        let blob = gz(&mixed, 2, 1 << 16);
        assert_eq!(gunzip(&blob), mixed);
        assert!(blob.len() < 2 * CHUNK + CHUNK, "{}", blob.len());
        assert!(worth_deflating(Compression::fast(), &text(CHUNK)).expect("probe"));
        assert!(!worth_deflating(Compression::fast(), &random(CHUNK, 9)).expect("probe"));
    }

    #[test]
    fn a_failing_sink_fails_the_stream() {
        struct Full;
        impl Write for Full {
            fn write(&mut self, _: &[u8]) -> io::Result<usize> {
                Err(io::Error::new(io::ErrorKind::StorageFull, "disk full"))
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        for threads in [1, 2] {
            let mut g = ParallelGzip::new(Full, Compression::fast(), threads);
            let r = g
                .write_all(&text(8 * CHUNK))
                .and_then(|()| g.finish().map(drop));
            assert_eq!(r.expect_err("full").kind(), io::ErrorKind::StorageFull);
        }
    }
}
