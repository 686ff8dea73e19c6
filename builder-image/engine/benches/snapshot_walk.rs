//! RUN snapshot walk: entries per second over trees of 20k and 100k files, against `du -s`
//! over the same tree in the same run (the page cache is warm for both: each is run once
//! before measuring). Prints medians of `SLIPWAY_BENCH_RUNS` (default 5) runs.
//! Run: cargo bench -p slipway-engine --bench snapshot_walk

use std::collections::BTreeSet;
use std::fs;
use std::path::Path;
use std::process::Command;
use std::time::Instant;

use slipway_engine::layer::snapshot::walk;

fn make_tree(root: &Path, files: usize) {
    // 100 files per directory, 20 directories per parent: a shape like /usr.
    for i in 0..files {
        let dir = root.join(format!("d{}/e{}", i / 2000, (i / 100) % 20));
        if i % 100 == 0 {
            fs::create_dir_all(&dir).expect("mkdir");
        }
        fs::write(dir.join(format!("f{i}")), b"x").expect("write");
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn main() {
    let runs: usize = std::env::var("SLIPWAY_BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5);
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    for files in [20_000, 100_000] {
        let dir = tempfile::tempdir().expect("tempdir");
        make_tree(dir.path(), files);
        let skip = BTreeSet::new();
        let entries = walk(dir.path(), &skip, threads)
            .expect("walk")
            .entries
            .len();
        let mut ours = Vec::new();
        for _ in 0..runs {
            let t = Instant::now();
            walk(dir.path(), &skip, threads).expect("walk");
            ours.push(entries as f64 / t.elapsed().as_secs_f64());
        }
        let du = |_: ()| {
            let t = Instant::now();
            let ok = Command::new("du")
                .arg("-s")
                .arg(dir.path())
                .output()
                .expect("du")
                .status
                .success();
            assert!(ok, "du failed");
            entries as f64 / t.elapsed().as_secs_f64()
        };
        du(());
        let peer: Vec<f64> = (0..runs).map(|_| du(())).collect();
        let (o, p) = (median(ours), median(peer));
        println!(
            "snapshot_walk: {files} files ({entries} entries), {threads} threads: median {o:.0} entries/s; du -s {p:.0} entries/s; slipway/du = {:.2}",
            o / p
        );
    }
}
