//! `slipway-builder install DIR`: a stage pod's init container copies the engine with it.

use slipway_contract::pod::InstallArgs;
use slipway_engine::fs::at;

use super::CommandError;

pub fn run(a: &InstallArgs) -> Result<(), CommandError> {
    let exe = std::env::current_exe().map_err(at("locating myself"))?;
    std::fs::create_dir_all(&a.dir).map_err(at(&a.dir))?;
    let to = a.dir.join("slipway-builder");
    std::fs::copy(&exe, &to).map_err(at(&to))?;
    Ok(())
}
