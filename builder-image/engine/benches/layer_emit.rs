//! Layer emission throughput: a layer of `SLIPWAY_BENCH_MB` (default 500) MB of files written
//! through [`LayerWriter`] to a sink, gzip level 1, against `pigz -1 -p2` over the same tar
//! when pigz is installed. Prints medians of `SLIPWAY_BENCH_RUNS` (default 3) runs.
//! Run: cargo bench -p slipway-engine --bench layer_emit
//! Peak RSS of the writer alone: SLIPWAY_BENCH_PEER=0 SLIPWAY_BENCH_MB=1536 SLIPWAY_BENCH_RUNS=1
//! under `/usr/bin/time -v` (the peer's tar is held in memory, so it is left out then).

use std::io::{self, Read, Write};
use std::process::{Command, Stdio};
use std::time::Instant;

use flate2::Compression;
use slipway_engine::layer::writer::{LayerWriter, Meta};

const FILE_MB: usize = 4;

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
            let word = (self.state >> 33) & 0x0F0F_0F0F_0F0F_0F0F;
            chunk.copy_from_slice(&word.to_le_bytes()[..chunk.len()]);
        }
        self.left -= n;
        Ok(n)
    }
}

fn write_layer<W: Write>(out: W, mb: usize) -> W {
    let mut w = LayerWriter::new(out, Compression::fast());
    let meta = Meta {
        mode: 0o644,
        uid: 0,
        gid: 0,
        mtime: 0,
    };
    for i in 0..mb / FILE_MB {
        let size = FILE_MB << 20;
        w.add_file(
            format!("data/f{i:05}"),
            meta,
            size as u64,
            Content {
                state: i as u64,
                left: size,
            },
        )
        .expect("add file");
    }
    w.finish().expect("finish").0
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

    let mut ours = Vec::new();
    for _ in 0..runs {
        let t = Instant::now();
        write_layer(io::sink(), mb);
        ours.push(mb as f64 / t.elapsed().as_secs_f64());
    }
    println!(
        "layer_emit: slipway LayerWriter (gzip -1, 1 thread): median {:.1} MB/s over {runs} runs of {mb} MB",
        median(ours.clone())
    );

    if env("SLIPWAY_BENCH_PEER", 1) == 0 {
        return; // for measuring the writer's own peak RSS: the peer keeps the tar in memory
    }
    // The peer: the same uncompressed tar piped through pigz -1 -p2.
    let tar = {
        // An uncompressed tar of the same entries, built once.
        let mut b = tar::Builder::new(Vec::with_capacity((mb + 1) << 20));
        for i in 0..mb / FILE_MB {
            let size = FILE_MB << 20;
            let mut h = tar::Header::new_gnu();
            h.set_size(size as u64);
            h.set_mode(0o644);
            b.append_data(
                &mut h,
                format!("data/f{i:05}"),
                Content {
                    state: i as u64,
                    left: size,
                },
            )
            .expect("tar");
        }
        b.into_inner().expect("tar")
    };
    let mut peer = Vec::new();
    for _ in 0..runs {
        let t = Instant::now();
        let child = Command::new("pigz")
            .args(["-1", "-p2", "-c"])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .spawn();
        let Ok(mut child) = child else {
            println!("layer_emit: pigz not installed (apt-get install pigz); no peer figure");
            return;
        };
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(&tar)
            .expect("feed pigz");
        child.wait().expect("pigz");
        peer.push(mb as f64 / t.elapsed().as_secs_f64());
    }
    let (o, p) = (median(ours), median(peer));
    println!(
        "layer_emit: pigz -1 -p2 over the same tar: median {p:.1} MB/s; slipway/pigz = {:.2}",
        o / p
    );
}
