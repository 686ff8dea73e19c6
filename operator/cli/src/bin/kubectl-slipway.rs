//! `kubectl-slipway`: the same program as `slipway`, found by kubectl as the plugin
//! `kubectl slipway`.

fn main() -> std::process::ExitCode {
    slipway_cli::main()
}
