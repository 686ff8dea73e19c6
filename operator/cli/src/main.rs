//! `slipway`: see the crate's documentation.

fn main() -> std::process::ExitCode {
    slipway_cli::main()
}
