//! Layer emission throughput: a layer of `SLIPWAY_BENCH_MB` (default 500) MB of files written
//! through [`LayerWriter`] to a sink at gzip level 1, on 1 and on 2 compression threads,
//! against `pigz -1 -p1` and `pigz -1 -p2` over the same tar when pigz is installed. The four
//! run in turn within each round (so machine noise hits them alike); prints the medians of
//! `SLIPWAY_BENCH_RUNS` (default 3) rounds and the ratios. Our figure includes building the
//! tar and both sha256 (diff_id and digest); pigz's includes only piping the tar in.
//! Run: cargo bench -p slipway-engine --bench layer_emit (`SLIPWAY_BENCH_CONTENT=random`: random
//! bytes instead, which the writer stores; see `layer::parallel_gzip`)
//! Peak RSS of the writer alone: SLIPWAY_BENCH_PEER=0 SLIPWAY_BENCH_MB=1536 SLIPWAY_BENCH_RUNS=1
//! under `/usr/bin/time -v` (the peer's tar is held in memory, so it is left out then).
//!
//! Measured 2026-12-02 10:27-10:29 UTC, 2 shared cores, a CI run compiling beside it (load
//! average 2.4-4.0, vmstat idle 4-19%), with
//! `nice -n 19 env SLIPWAY_BENCH_RUNS=5 cargo bench -p slipway-engine --bench layer_emit`:
//! medians of 5 (MB/s of tar in) slipway 1 thread 141.5, 2 threads 184.3 (x1.30);
//! pigz 2.6 -1 -p1 74.3, -p2 109.1; slipway/pigz 1.90 at 1 thread, 1.69 at 2. The same
//! digest on 1 and 2 threads. zlib-rs's level 1 is zlib-ng's quick strategy: 274 MB out
//! against pigz's 228 MB on this data, so the level is equal but the ratio is not. An earlier
//! run at load 4.2-4.5 (idle 0-28%) gave 141.0 / 139.4 / 76.5 / 127.4: too loaded to tell.
//!
//! 3 December 2026 13:13-13:17 UTC, a CI run beside it (load 2.9-4.0, so 2 threads gained
//! nothing), `SLIPWAY_BENCH_MB=256 SLIPWAY_BENCH_RUNS=3`, medians of 3 at 1 thread: random
//! content stored 354.8 MB/s, 268.7 MB out; deflated as before (the probe disabled) 62.9 MB/s,
//! 283.1 MB out. The default content: 136.1 MB/s with the probe, 123.2 without, the same digest.

use std::io::{self, Read, Write};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use flate2::Compression;
use slipway_engine::layer::writer::{LayerDigests, LayerWriter, Meta};

const FILE_MB: usize = 4;

/// `SLIPWAY_BENCH_CONTENT=random`: bytes deflate cannot shrink (as `/dev/urandom`, or a file
/// that is already compressed), which the writer stores rather than deflates.
static RANDOM: AtomicBool = AtomicBool::new(false);

/// Deterministic, moderately compressible content (like binaries and text mixed).
struct Content {
    state: u64,
    left: usize,
}

impl Read for Content {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = buf.len().min(self.left);
        for chunk in buf[..n].chunks_mut(8) {
            self.state = self
                .state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let word = if RANDOM.load(Ordering::Relaxed) {
                self.state ^ (self.state >> 29)
            } else {
                (self.state >> 33) & 0x0F0F_0F0F_0F0F_0F0F
            };
            chunk.copy_from_slice(&word.to_le_bytes()[..chunk.len()]);
        }
        self.left -= n;
        Ok(n)
    }
}

fn content(i: usize) -> Content {
    Content {
        state: i as u64,
        left: FILE_MB << 20,
    }
}

/// Counts what is written, like a sink that remembers the blob's size.
#[derive(Default)]
struct Count(u64);

impl Write for Count {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0 += buf.len() as u64;
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Writes the layer on `threads` threads; returns its digests.
fn write_layer(mb: usize, threads: usize) -> LayerDigests {
    let mut w = LayerWriter::with_threads(Count::default(), Compression::fast(), threads);
    let meta = Meta {
        mode: 0o644,
        uid: 0,
        gid: 0,
        mtime: 0,
    };
    for i in 0..mb / FILE_MB {
        let size = (FILE_MB << 20) as u64;
        w.add_file(format!("data/f{i:05}"), meta, size, content(i))
            .expect("add file");
    }
    w.finish().expect("finish").1
}

/// An uncompressed tar of the same entries, for the peer.
fn plain_tar(mb: usize) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::with_capacity((mb + 1) << 20));
    for i in 0..mb / FILE_MB {
        let mut h = tar::Header::new_gnu();
        h.set_size((FILE_MB << 20) as u64);
        h.set_mode(0o644);
        b.append_data(&mut h, format!("data/f{i:05}"), content(i))
            .expect("tar");
    }
    b.into_inner().expect("tar")
}

/// Pipes `tar` through `pigz -1 -p<threads>`; `count` keeps the output's size (untimed runs),
/// otherwise it goes to /dev/null. `None` when pigz is not installed.
fn pigz(tar: &[u8], threads: usize, count: bool) -> Option<u64> {
    let out = if count { Stdio::piped() } else { Stdio::null() };
    let p = format!("-p{threads}");
    let mut child = Command::new("pigz")
        .args(["-1", &p, "-c"])
        .stdin(Stdio::piped())
        .stdout(out)
        .spawn()
        .ok()?;
    let mut stdin = child.stdin.take().expect("stdin");
    let mut stdout = child.stdout.take();
    std::thread::scope(|s| {
        let reader = s.spawn(move || {
            let mut n = Count::default();
            if let Some(o) = stdout.as_mut() {
                io::copy(o, &mut n).expect("read pigz");
            }
            n.0
        });
        stdin.write_all(tar).expect("feed pigz");
        drop(stdin);
        let n = reader.join().expect("reader");
        assert!(child.wait().expect("pigz").success(), "pigz failed");
        Some(n)
    })
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn main() {
    let env = |k: &str, d: usize| {
        std::env::var(k)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(d)
    };
    let mb = env("SLIPWAY_BENCH_MB", 500);
    let runs = env("SLIPWAY_BENCH_RUNS", 3);
    let with_peer = env("SLIPWAY_BENCH_PEER", 1) != 0;
    RANDOM.store(
        std::env::var("SLIPWAY_BENCH_CONTENT").is_ok_and(|c| c == "random"),
        Ordering::Relaxed,
    );
    let tar = if with_peer { plain_tar(mb) } else { Vec::new() };
    let has_pigz = with_peer && pigz(b"", 1, false).is_some();
    if with_peer && !has_pigz {
        println!("layer_emit: pigz not installed (apt-get install pigz); no peer figures");
    }

    let rate = |t: Instant| mb as f64 / t.elapsed().as_secs_f64();
    let names = [
        "slipway 1 thread",
        "slipway 2 threads",
        "pigz -1 -p1",
        "pigz -1 -p2",
    ];
    let mut rates: [Vec<f64>; 4] = Default::default();
    let mut sizes = [0u64; 4];
    let mut digests = Vec::new();
    for _ in 0..runs {
        for threads in [1, 2] {
            let t = Instant::now();
            let d = write_layer(mb, threads);
            rates[threads - 1].push(rate(t));
            sizes[threads - 1] = d.size;
            digests.push(d.digest);
        }
        if has_pigz {
            for threads in [1, 2] {
                let t = Instant::now();
                pigz(&tar, threads, false);
                rates[threads + 1].push(rate(t));
            }
        }
    }
    if has_pigz {
        for threads in [1, 2] {
            sizes[threads + 1] = pigz(&tar, threads, true).unwrap_or(0);
        }
    }
    // The point of the piece scheme: the thread count never shows in the bytes.
    digests.dedup();
    assert_eq!(
        digests.len(),
        1,
        "the layer's digest depends on the threads"
    );
    let med: Vec<f64> = rates
        .iter()
        .map(|r| if r.is_empty() { 0.0 } else { median(r.clone()) })
        .collect();
    for (i, name) in names.iter().enumerate() {
        if rates[i].is_empty() {
            continue;
        }
        let all: Vec<String> = rates[i].iter().map(|r| format!("{r:.0}")).collect();
        println!(
            "layer_emit: {name:<18} median {:>6.1} MB/s (runs: {}), {} bytes out of {mb} MB",
            med[i],
            all.join(" "),
            sizes[i]
        );
    }
    println!(
        "layer_emit: slipway 2 threads / 1 thread = {:.2}; digest {} on both",
        med[1] / med[0],
        digests[0]
    );
    if has_pigz {
        println!(
            "layer_emit: slipway/pigz at 1 thread = {:.2}, at 2 threads = {:.2}",
            med[0] / med[2],
            med[1] / med[3]
        );
    }
}
