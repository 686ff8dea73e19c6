//! `slipway-builder build`: a whole build on this machine (local mode).

use std::path::PathBuf;

use serde_json::{Value, json};
use slipway_contract::pod::{PlanArgs, RegistryArgs};
use slipway_engine::local::{self, BuildOptions, BuildOutput};

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
    /// A label of the image's config (repeatable), set after the Dockerfile's LABELs (as
    /// `docker build --label`).
    #[arg(long = "label", value_name = "KEY=VALUE", value_parser = label)]
    labels: Vec<(String, String)>,
    /// Write the image's manifest digest (`sha256:...`, no newline) to this file, as kaniko's
    /// --digest-file does; also without --destination (the digest it would have).
    #[arg(long, value_name = "PATH")]
    digest_file: Option<PathBuf>,
    /// How to print the result on stdout: `text`, the digest; `json`, one object with the
    /// image, its digest, the references pushed and the cache's outcome. Logs stay on stderr.
    #[arg(long, value_enum, default_value_t = Output::Text)]
    output: Output,
}

/// `--output`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum Output {
    Text,
    Json,
}

/// Why a `--label` is refused.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
enum LabelError {
    #[error("expected KEY=VALUE")]
    NoValue,
    #[error("the key is empty")]
    EmptyKey,
}

/// `--label KEY=VALUE` (the value may be empty or hold `=`; the key may not be empty).
fn label(raw: &str) -> Result<(String, String), LabelError> {
    let (k, v) = raw.split_once('=').ok_or(LabelError::NoValue)?;
    if k.is_empty() {
        return Err(LabelError::EmptyKey);
    }
    Ok((k.to_string(), v.to_string()))
}

/// `--output json`'s object: the image (the first destination), its digest, every reference
/// pushed as `ref@digest`, and the cache's outcome (stage indexes) with `--cache-repo`.
fn result_json(out: &BuildOutput) -> Value {
    let mut v = json!({
        "digest": out.digest,
        "pushed": out.pushed.iter().map(|r| format!("{r}@{}", out.digest)).collect::<Vec<_>>(),
    });
    if let Some(first) = out.pushed.first() {
        v["image"] = json!(first);
    }
    if let Some(c) = &out.cache {
        v["cache"] = json!({
            "hits": c.hits.keys().collect::<Vec<_>>(),
            "misses": c.misses,
            "uncacheable": c.uncacheable,
            "bytesReused": c.bytes_reused,
        });
    }
    v
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
        labels: a.labels.clone(),
    };
    let out = local::build(&opts).map_err(|e| CommandError::Message(e.to_string()))?;
    if let Some(path) = &a.digest_file {
        std::fs::write(path, &out.digest).map_err(|source| CommandError::Flag {
            flag: "--digest-file",
            path: path.clone(),
            source,
        })?;
    }
    match a.output {
        Output::Text => println!("{}", out.digest),
        Output::Json => println!("{}", result_json(&out)),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;
    use slipway_engine::cache::entry::KeyKind;
    use slipway_engine::cache::store::Outcome;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        build: BuildArgs,
    }

    fn parse(args: &[&str]) -> Result<BuildArgs, clap::Error> {
        Cli::try_parse_from(["build", "--context", "."].iter().chain(args)).map(|c| c.build)
    }

    #[test]
    fn labels_are_key_value() {
        assert_eq!(label("a=b"), Ok(("a".into(), "b".into())));
        assert_eq!(label("a="), Ok(("a".into(), String::new())));
        assert_eq!(label("a=b=c"), Ok(("a".into(), "b=c".into())));
        assert_eq!(label("a"), Err(LabelError::NoValue));
        assert_eq!(label("=b"), Err(LabelError::EmptyKey));
        let a = parse(&["--label", "x=1", "--label", "org.example.y=two words"]).expect("parses");
        assert_eq!(
            a.labels,
            [
                ("x".into(), "1".into()),
                ("org.example.y".into(), "two words".into())
            ]
        );
        let e = parse(&["--label", "nokey"]).err().map(|e| e.to_string());
        assert!(
            e.as_deref().is_some_and(|e| e
                .contains("invalid value 'nokey' for '--label <KEY=VALUE>': expected KEY=VALUE")),
            "{e:?}"
        );
    }

    #[test]
    fn output_and_digest_file_flags() {
        let a = parse(&[]).expect("parses");
        assert_eq!((a.output, a.digest_file), (Output::Text, None));
        let a = parse(&["--output", "json", "--digest-file", "/tmp/d"]).expect("parses");
        assert_eq!(a.output, Output::Json);
        assert_eq!(a.digest_file, Some(PathBuf::from("/tmp/d")));
        assert!(parse(&["--output", "yaml"]).is_err());
    }

    #[test]
    fn the_json_result() {
        let mut out = BuildOutput {
            digest: "sha256:ab".into(),
            pushed: vec!["r/x:1".into(), "r/x:latest".into()],
            cache: None,
        };
        assert_eq!(
            result_json(&out),
            json!({"digest": "sha256:ab", "image": "r/x:1",
                   "pushed": ["r/x:1@sha256:ab", "r/x:latest@sha256:ab"]})
        );
        out.pushed.clear();
        out.cache = Some(Outcome {
            hits: [(0, KeyKind::Fast), (2, KeyKind::Slow)]
                .into_iter()
                .collect(),
            misses: vec![1],
            uncacheable: vec![3],
            bytes_reused: 42,
        });
        assert_eq!(
            result_json(&out),
            json!({"cache": {"bytesReused": 42, "hits": [0, 2], "misses": [1], "uncacheable": [3]},
                   "digest": "sha256:ab", "pushed": []})
        );
    }

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
