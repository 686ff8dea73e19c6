//! Applies one layer blob to a directory and says how long it took:
//! `cargo run --release --example unpack -- LAYER DIR`.
fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (layer, dir) = (&args[1], std::path::Path::new(&args[2]));
    std::fs::create_dir_all(dir).expect("mkdir");
    let start = std::time::Instant::now();
    let f = std::fs::File::open(layer).expect("open layer");
    slipway_engine::fs::unpack::apply_layer(f, dir, true).expect("apply");
    eprintln!("applied in {:.2}s", start.elapsed().as_secs_f64());
}
