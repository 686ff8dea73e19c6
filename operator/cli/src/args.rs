//! The command line: `slipway build|logs|wait|get|list|rebuild|cancel`, the same under `kubectl slipway`.
//! Parsing only; flag values that need checking are checked here, without I/O.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Parser, Debug)]
#[command(
    name = "slipway",
    version,
    about = "Build container images on Kubernetes with Slipway",
    long_about = "Build container images on Kubernetes with Slipway: `build` packs a directory, \
                  uploads it, creates an ImageBuild and follows it to the pushed digest.\n\n\
                  Exit codes: 0 done, 1 the build failed, 2 a usage error, 3 any other error \
                  (cluster, files), 130 interrupted."
)]
pub struct Cli {
    /// The namespace (default: the kubeconfig context's, else `default`).
    #[arg(short = 'n', long, global = true)]
    pub namespace: Option<String>,
    /// The kubeconfig context to use (default: the current one).
    #[arg(long, global = true, value_name = "NAME")]
    pub kube_context: Option<String>,
    /// How to print: `text` for people and plain CI logs, `json` for programs (one JSON
    /// document per line).
    #[arg(short = 'o', long, value_enum, global = true, default_value_t = OutputFormat::Text)]
    pub output: OutputFormat,
    /// Colour: `auto` (on a terminal, unless NO_COLOR is set), `always` or `never`.
    #[arg(long, value_enum, global = true, default_value_t = ColorChoice::Auto)]
    pub color: ColorChoice,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    Text,
    Json,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub enum ColorChoice {
    Auto,
    Always,
    Never,
}

// Parsed once: the size difference between variants costs nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Build a directory: pack it (honouring .dockerignore), upload it, create an ImageBuild,
    /// follow it, and print `ref@digest`.
    Build(BuildArgs),
    /// Print a build's logs, every line prefixed with its stage (`-f` to follow).
    Logs(LogsArgs),
    /// Wait until a build is done; print `ref@digest`, or fail with its reason.
    Wait(WaitArgs),
    /// One build (phase, reason, digest, duration, stages), or all of the namespace's.
    Get(GetArgs),
    /// The namespace's builds: phase, reason, digest, duration, age.
    #[command(alias = "ls")]
    List,
    /// Build an existing ImageBuild again, unchanged (count `spec.rebuild` up), and follow
    /// the new build to `ref@digest`.
    Rebuild(RebuildArgs),
    /// Cancel a build (`spec.cancel: true`): its Jobs stop; waits until it is Cancelled.
    Cancel(CancelArgs),
}

#[derive(Args, Debug)]
pub struct BuildArgs {
    /// The build context, a directory.
    #[arg(default_value = ".")]
    pub dir: PathBuf,
    /// The image to push, `REGISTRY/REPOSITORY:TAG`; again for more tags of that repository.
    #[arg(short = 't', long = "tag", value_name = "REF", required = true)]
    pub tags: Vec<String>,
    /// The Dockerfile (default: DIR/Dockerfile); it must be inside the context.
    #[arg(short = 'f', long = "file", value_name = "PATH")]
    pub file: Option<PathBuf>,
    /// The stage to build (default: the last one).
    #[arg(long)]
    pub target: Option<String>,
    /// A build argument; `KEY` alone takes the value from the environment.
    #[arg(long = "build-arg", value_name = "KEY=VALUE")]
    pub build_args: Vec<String>,
    /// A Kubernetes Secret for `RUN --mount=type=secret,id=ID`: `id=ID,name=SECRET[,key=KEY]`
    /// (the key defaults to the id).
    #[arg(long = "secret", value_name = "id=ID,name=SECRET[,key=KEY]", value_parser = parse_secret)]
    pub secrets: Vec<SecretFlag>,
    /// Not supported yet: images are built for the platform of the cluster's nodes.
    #[arg(long, value_name = "PLATFORM")]
    pub platform: Option<String>,
    /// The ImageBuild's name (default: the repository's last part and a random suffix).
    #[arg(long)]
    pub name: Option<String>,
    /// A dockerconfigjson Secret with the push credentials.
    #[arg(long, value_name = "SECRET")]
    pub push_secret: Option<String>,
    /// Push over plain HTTP (the image, and a context pushed to the same registry).
    #[arg(long)]
    pub insecure: bool,
    /// Push the context as an OCI artifact to this repository, whatever its size (default:
    /// only a context over the 1 MiB a ConfigMap holds, to the image's own repository).
    #[arg(long, value_name = "REGISTRY/REPOSITORY")]
    pub context_repo: Option<String>,
    /// The layer cache (`spec.cache.repository`): stages found there run no Job, and the
    /// stages that ran are stored there after the push.
    #[arg(long, value_name = "REGISTRY/REPOSITORY")]
    pub cache_repo: Option<String>,
    /// The longest the build may take in the cluster (`30m`, `1h30m`).
    #[arg(long, value_parser = parse_go_duration_text)]
    pub timeout: Option<String>,
    /// Follow the build to its end (the default).
    #[arg(long, overrides_with = "no_follow")]
    pub follow: bool,
    /// Create the ImageBuild, print its name and return.
    #[arg(long, overrides_with = "follow")]
    pub no_follow: bool,
    /// On Ctrl-C, leave the build running (without it: ask, or cancel when not on a terminal).
    #[arg(long)]
    pub detach: bool,
}

#[derive(Args, Debug)]
pub struct LogsArgs {
    /// The ImageBuild.
    pub name: String,
    /// Follow the logs until the build is done.
    #[arg(short = 'f', long)]
    pub follow: bool,
}

#[derive(Args, Debug)]
pub struct WaitArgs {
    /// The ImageBuild.
    pub name: String,
    /// Give up after this long (`90s`, `10m`, `1h`); default: wait as long as it takes.
    #[arg(long, value_parser = parse_go_duration)]
    pub timeout: Option<std::time::Duration>,
}

#[derive(Args, Debug)]
pub struct RebuildArgs {
    /// The ImageBuild.
    pub name: String,
    /// Follow the new build to its end (the default).
    #[arg(long, overrides_with = "no_follow")]
    pub follow: bool,
    /// Start the new build, print the name and return.
    #[arg(long, overrides_with = "follow")]
    pub no_follow: bool,
    /// On Ctrl-C, leave the build running (without it: ask, or cancel when not on a terminal).
    #[arg(long)]
    pub detach: bool,
}

#[derive(Args, Debug)]
pub struct CancelArgs {
    /// The ImageBuild.
    pub name: String,
    /// Give up waiting for `Cancelled` after this long (`90s`, `10m`); default: as long as
    /// it takes.
    #[arg(long, value_parser = parse_go_duration)]
    pub timeout: Option<std::time::Duration>,
}

#[derive(Args, Debug)]
pub struct GetArgs {
    /// The ImageBuild (default: all of the namespace's).
    pub name: Option<String>,
}

/// `--secret id=ID,name=SECRET[,key=KEY]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretFlag {
    pub id: String,
    pub secret: String,
    pub key: String,
}

/// Parses `--secret`. Docker's `src=FILE` and `env=VAR` read the client's own files: a
/// cluster build reads Kubernetes Secrets, so those get a hint instead.
pub fn parse_secret(s: &str) -> Result<SecretFlag, String> {
    let (mut id, mut name, mut key) = (None, None, None);
    for part in s.split(',') {
        let (k, v) = part
            .split_once('=')
            .ok_or_else(|| format!("{part:?}: expected key=value"))?;
        match k {
            "id" => id = Some(v.to_string()),
            "name" => name = Some(v.to_string()),
            "key" => key = Some(v.to_string()),
            "src" | "source" | "env" => {
                return Err(format!(
                    "{k}=: a cluster build reads Kubernetes Secrets, not local files or \
                     variables; create one (kubectl create secret generic NAME \
                     --from-file=ID=FILE) and pass id=ID,name=NAME"
                ));
            }
            "type" if v == "file" => {}
            _ => return Err(format!("{k:?}: expected id, name or key")),
        }
    }
    let id = id.filter(|v| !v.is_empty()).ok_or("id= is missing")?;
    let secret = name.filter(|v| !v.is_empty()).ok_or("name= is missing")?;
    let key = key.unwrap_or_else(|| id.clone());
    Ok(SecretFlag { id, secret, key })
}

/// `--build-arg KEY=VALUE`, or `KEY` with the value from `env` (Docker's rule); a `KEY`
/// the environment lacks is left out, as Docker does.
pub fn build_arg(s: &str, env: impl Fn(&str) -> Option<String>) -> Option<(String, String)> {
    match s.split_once('=') {
        Some((k, v)) => Some((k.to_string(), v.to_string())),
        None => env(s).map(|v| (s.to_string(), v)),
    }
}

/// A Go duration in whole units (`1h30m`, `90s`), the form `spec.timeout` takes.
pub fn parse_go_duration(s: &str) -> Result<std::time::Duration, String> {
    let bad = || format!("{s:?}: expected a duration such as 90s, 10m or 1h30m");
    let mut secs = 0u64;
    let mut num = String::new();
    let mut last_unit = 0;
    for c in s.chars() {
        if c.is_ascii_digit() {
            num.push(c);
            continue;
        }
        let (rank, factor) = match c {
            'h' => (1, 3600),
            'm' => (2, 60),
            's' => (3, 1),
            _ => return Err(bad()),
        };
        if num.is_empty() || rank <= last_unit {
            return Err(bad());
        }
        let n: u64 = num.parse().map_err(|_| bad())?;
        secs = secs
            .checked_add(n.checked_mul(factor).ok_or_else(bad)?)
            .ok_or_else(bad)?;
        num.clear();
        last_unit = rank;
    }
    if !num.is_empty() || last_unit == 0 {
        return Err(bad());
    }
    Ok(std::time::Duration::from_secs(secs))
}

fn parse_go_duration_text(s: &str) -> Result<String, String> {
    parse_go_duration(s).map(|_| s.to_string())
}

/// How the program was called: `kubectl-slipway` shows itself as `kubectl slipway`.
pub fn display_name(argv0: Option<&str>) -> &'static str {
    let base = argv0
        .map(|a| a.rsplit('/').next().unwrap_or(a))
        .unwrap_or("slipway");
    if base.starts_with("kubectl-") {
        "kubectl slipway"
    } else {
        "slipway"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("slipway").chain(args.iter().copied()))
    }

    #[test]
    fn build_takes_docker_s_flags() {
        let cli = parse(&[
            "build",
            "examples/go",
            "-t",
            "r:5000/demo/go:1",
            "-t",
            "r:5000/demo/go:latest",
            "-f",
            "examples/go/Dockerfile",
            "--target",
            "tester",
            "--build-arg",
            "A=1",
            "--build-arg",
            "B",
            "--secret",
            "id=npmrc,name=npm",
            "-n",
            "ci",
            "--no-follow",
            "-o",
            "json",
        ])
        .expect("parses");
        assert_eq!(cli.namespace.as_deref(), Some("ci"));
        assert_eq!(cli.output, OutputFormat::Json);
        let Command::Build(b) = cli.command else {
            panic!("not build")
        };
        assert_eq!(b.dir, PathBuf::from("examples/go"));
        assert_eq!(b.tags, ["r:5000/demo/go:1", "r:5000/demo/go:latest"]);
        assert_eq!(b.file, Some(PathBuf::from("examples/go/Dockerfile")));
        assert_eq!(b.target.as_deref(), Some("tester"));
        assert_eq!(b.build_args, ["A=1", "B"]);
        assert_eq!(
            b.secrets,
            [SecretFlag {
                id: "npmrc".into(),
                secret: "npm".into(),
                key: "npmrc".into()
            }]
        );
        assert!(b.no_follow && !b.follow && !b.detach);
    }

    #[test]
    fn build_defaults_and_required_tag() {
        let cli = parse(&["build", "-t", "x/y:1"]).expect("parses");
        let Command::Build(b) = cli.command else {
            panic!("not build")
        };
        assert_eq!(b.dir, PathBuf::from("."));
        assert!(!b.no_follow);
        assert_eq!(cli.output, OutputFormat::Text);
        assert!(parse(&["build", "."]).is_err(), "-t is required");
        // The last of --follow / --no-follow wins.
        let cli = parse(&["build", "-t", "x", "--no-follow", "--follow"]).expect("parses");
        let Command::Build(b) = cli.command else {
            panic!("not build")
        };
        assert!(b.follow && !b.no_follow);
    }

    #[test]
    fn the_other_subcommands() {
        let cli = parse(&["logs", "web", "-f"]).expect("parses");
        assert!(
            matches!(cli.command, Command::Logs(LogsArgs { ref name, follow: true }) if name == "web")
        );
        let cli = parse(&["wait", "web", "--timeout", "10m"]).expect("parses");
        assert!(
            matches!(cli.command, Command::Wait(WaitArgs { timeout: Some(t), .. }) if t.as_secs() == 600)
        );
        assert!(parse(&["wait", "web", "--timeout", "10 minutes"]).is_err());
        let cli = parse(&["get"]).expect("parses");
        assert!(matches!(cli.command, Command::Get(GetArgs { name: None })));
        assert!(matches!(
            parse(&["ls"]).expect("alias").command,
            Command::List
        ));
        assert!(matches!(
            parse(&["list", "-n", "x"]).expect("list").command,
            Command::List
        ));
    }

    #[test]
    fn rebuild_and_cancel() {
        let cli = parse(&["rebuild", "web", "-n", "ci", "-o", "json"]).expect("parses");
        assert_eq!(cli.namespace.as_deref(), Some("ci"));
        assert_eq!(cli.output, OutputFormat::Json);
        let Command::Rebuild(r) = cli.command else {
            panic!("not rebuild")
        };
        assert!(r.name == "web" && !r.no_follow && !r.detach);
        let cli = parse(&["rebuild", "web", "--no-follow"]).expect("parses");
        assert!(matches!(
            cli.command,
            Command::Rebuild(RebuildArgs {
                no_follow: true,
                ..
            })
        ));
        let cli = parse(&["rebuild", "web", "--detach"]).expect("parses");
        assert!(matches!(
            cli.command,
            Command::Rebuild(RebuildArgs { detach: true, .. })
        ));
        assert!(parse(&["rebuild"]).is_err(), "NAME is required");
        let cli = parse(&["cancel", "web", "-n", "ci", "--timeout", "2m"]).expect("parses");
        assert!(
            matches!(cli.command, Command::Cancel(CancelArgs { ref name, timeout: Some(t) }) if name == "web" && t.as_secs() == 120)
        );
        assert!(parse(&["cancel"]).is_err(), "NAME is required");
        assert!(parse(&["cancel", "web", "--timeout", "soon"]).is_err());
    }

    #[test]
    fn secrets_name_kubernetes_secrets() {
        let s = parse_secret("id=tok,name=git,key=token").expect("parses");
        assert_eq!(
            (s.id.as_str(), s.secret.as_str(), s.key.as_str()),
            ("tok", "git", "token")
        );
        let e = parse_secret("id=npmrc,src=/home/me/.npmrc").expect_err("local file");
        assert!(e.contains("kubectl create secret generic"), "{e}");
        assert!(parse_secret("id=x").is_err());
        assert!(parse_secret("name=x").is_err());
        assert!(parse_secret("id=x,name=y,mode=0400").is_err());
        assert!(parse_secret("type=file,id=x,name=y").is_ok());
    }

    #[test]
    fn build_args_take_missing_values_from_the_environment() {
        let env = |k: &str| (k == "HOME").then(|| "/root".to_string());
        assert_eq!(build_arg("A=1=2", env), Some(("A".into(), "1=2".into())));
        assert_eq!(build_arg("A=", env), Some(("A".into(), String::new())));
        assert_eq!(
            build_arg("HOME", env),
            Some(("HOME".into(), "/root".into()))
        );
        assert_eq!(build_arg("UNSET", env), None);
    }

    #[test]
    fn go_durations() {
        let d = |s| parse_go_duration(s).map(|d| d.as_secs());
        assert_eq!(d("90s"), Ok(90));
        assert_eq!(d("1h30m"), Ok(5400));
        assert_eq!(d("2m5s"), Ok(125));
        for bad in ["", "5", "m", "1s1m", "1m1m", "1.5h", "-1s", "10ms"] {
            assert!(d(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_plugin_name_shows_as_kubectl_slipway() {
        assert_eq!(
            display_name(Some("/usr/local/bin/kubectl-slipway")),
            "kubectl slipway"
        );
        assert_eq!(display_name(Some("slipway")), "slipway");
        assert_eq!(display_name(None), "slipway");
    }
}
