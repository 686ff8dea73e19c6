//! `slipway-builder build`: a whole build on this machine (local mode).

use std::path::PathBuf;

use slipway_contract::pod::{PlanArgs, RegistryArgs};
use slipway_engine::local::{self, BuildOptions};

use super::CommandError;

/// Build a Dockerfile on this machine (stages in runc containers) and push the image.
#[derive(clap::Args)]
pub struct BuildArgs {
    #[arg(long)]
    context: PathBuf,
    /// Default: Dockerfile in the context.
    #[arg(long, short = 'f')]
    dockerfile: Option<PathBuf>,
    /// Where to push (repeatable); without one the image is built and not pushed.
    #[arg(long = "destination", short = 'd')]
    destinations: Vec<String>,
    #[command(flatten)]
    plan: PlanArgs,
    #[command(flatten)]
    registries: RegistryArgs,
    /// id=ID,src=FILE: a secret for RUN --mount=type=secret (repeatable).
    #[arg(long = "secret")]
    secrets: Vec<String>,
    /// Blob cache, cache mounts and workspaces.
    #[arg(long, default_value = "/var/lib/slipway")]
    state_dir: PathBuf,
    #[arg(long)]
    keep_workspace: bool,
    /// At most this many stages at once (default: all that are ready).
    #[arg(long, default_value_t = 0)]
    max_parallel: usize,
    /// Reproducible images: the config's and new history's `created`, and no file in the
    /// build's own layers newer than this (seconds since 1970). Without it (or empty, as CI
    /// systems often export it), as before.
    #[arg(long, env = "SOURCE_DATE_EPOCH", value_name = "SECONDS")]
    source_date_epoch: Option<String>,
    /// The layer cache: a repository (`registry/repository`, no tag) where each stage's
    /// result is looked up before it runs and stored after the push (read and written with
    /// the same credentials as the destinations).
    #[arg(long, value_name = "REPOSITORY")]
    cache_repo: Option<String>,
}

/// `--secret id=ID,src=FILE` (also `source=`); without `src` the file is named like the id.
fn secret(raw: &str) -> Result<(String, PathBuf), CommandError> {
    let bad = || CommandError::Message(format!("--secret {raw}: expected id=ID,src=FILE"));
    let mut id = None;
    let mut src = None;
    for field in raw.split(',') {
        match field.split_once('=') {
            Some(("id", v)) => id = Some(v.to_string()),
            Some(("src" | "source", v)) => src = Some(PathBuf::from(v)),
            _ => return Err(bad()),
        }
    }
    let id = id.ok_or_else(bad)?;
    let src = src.unwrap_or_else(|| PathBuf::from(&id));
    Ok((id, src))
}

/// `--source-date-epoch` / `SOURCE_DATE_EPOCH`: seconds, or unset when empty.
fn source_date_epoch(raw: Option<&str>) -> Result<Option<u64>, CommandError> {
    match raw.map(str::trim) {
        None | Some("") => Ok(None),
        Some(s) => slipway_contract::epoch::parse_seconds(s)
            .map(Some)
            .map_err(|e| CommandError::Message(format!("--source-date-epoch: {e}"))),
    }
}

pub fn run(a: &BuildArgs) -> Result<(), CommandError> {
    let opts = BuildOptions {
        context: a.context.clone(),
        dockerfile: a.dockerfile.clone(),
        destinations: a.destinations.clone(),
        plan: a.plan.to_options(),
        insecure_registries: a.registries.insecure_registries.clone(),
        secrets: a
            .secrets
            .iter()
            .map(|s| secret(s))
            .collect::<Result<_, _>>()?,
        state_dir: a.state_dir.clone(),
        keep_workspace: a.keep_workspace,
        max_parallel: a.max_parallel,
        source_date_epoch: source_date_epoch(a.source_date_epoch.as_deref())?,
        cache_repo: a.cache_repo.clone(),
    };
    let out = local::build(&opts).map_err(|e| CommandError::Message(e.to_string()))?;
    println!("{}", out.digest);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn source_date_epoch_is_seconds_or_unset() {
        assert_eq!(source_date_epoch(None).ok(), Some(None));
        assert_eq!(source_date_epoch(Some("")).ok(), Some(None));
        assert_eq!(
            source_date_epoch(Some("1700000000")).ok(),
            Some(Some(1_700_000_000))
        );
        let e = source_date_epoch(Some("yesterday")).expect_err("not seconds");
        assert_eq!(
            e.to_string(),
            "--source-date-epoch: source date epoch \"yesterday\": expected whole seconds since \
             1970 (0 to 253402300799)"
        );
    }
}
