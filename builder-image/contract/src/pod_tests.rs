//! The pod contract's arguments: what the operator renders is what the binary parses.

use super::*;
use crate::annotations;
use crate::digest::Digest;
use crate::trust::Outputs;
use clap::Parser;

#[derive(Parser, Debug)]
struct Cli {
    #[command(subcommand)]
    command: PodCommand,
}

/// What the operator renders is what the binary parses back, field for field.
fn round_trip(c: PodCommand) {
    let argv = std::iter::once("slipway-builder".to_string()).chain(c.to_args());
    let parsed = Cli::try_parse_from(argv).expect("parses").command;
    assert_eq!(parsed, c);
}

fn prepare_args(source: Source, limit: Size) -> PrepareArgs {
    PrepareArgs {
        cache: Default::default(),
        workspace: PathBuf::from(paths::WORKSPACE),
        dockerfile: "build/Dockerfile".into(),
        plan: PlanArgs {
            target: Some("runtime".into()),
            build_args: vec!["A=1".into(), "B=x=y".into()],
        },
        registries: RegistryArgs {
            insecure_registries: vec!["reg:5000".into()],
        },
        source: source.into(),
        limits: SizeLimitArgs { size_limit: limit },
    }
}

fn prepare(source: Source) -> PodCommand {
    PodCommand::Prepare(prepare_args(source, Size::DEFAULT_LIMIT))
}

#[test]
fn the_prepare_pod_splits_into_fetch_and_resolve() {
    let git = Source::Git {
        url: "https://git.example/r.git".into(),
        revision: None,
        context_dir: None,
        auth_dir: Some(PathBuf::from(paths::GIT_AUTH)),
    };
    let p = prepare_args(git, Size(512 << 20));
    round_trip(PodCommand::Prepare(p.clone()));
    let fetch = p.fetch();
    let args = fetch.to_args();
    assert!(args.windows(2).any(|w| w == ["--size-limit", "512Mi"]));
    assert!(
        args.windows(2)
            .any(|w| w == ["--git-auth-dir", paths::GIT_AUTH])
    );
    assert!(
        !args
            .iter()
            .any(|a| a == "--insecure-registry" || a == "--target")
    );
    round_trip(PodCommand::Fetch(fetch));
    let resolve = p.resolve();
    let args = resolve.to_args();
    // The main container is told nothing about the source or its credentials.
    assert!(
        !args
            .iter()
            .any(|a| a.starts_with("--git") || a == "--size-limit")
    );
    assert!(
        args.windows(2)
            .any(|w| w == ["--insecure-registry", "reg:5000"])
    );
    assert!(
        args.windows(2)
            .any(|w| w == ["--dockerfile", "build/Dockerfile"])
    );
    round_trip(PodCommand::Resolve(resolve));
    let mut stage = StageArgs::in_pod(vec![3], Digests::new(digest('3')));
    assert!(!stage.to_args().iter().any(|a| a == "--size-limit"));
    stage.limits.size_limit = Size(2 << 30);
    round_trip(PodCommand::Stage(stage));
}

#[test]
fn every_pod_command_round_trips() {
    round_trip(prepare(Source::Inline));
    round_trip(prepare(Source::ContextTar {
        path: PathBuf::from(paths::SOURCE_ARCHIVE),
        shown: "configMap web: key context.tar".into(),
    }));
    round_trip(prepare(Source::Tarball {
        url: "https://example.invalid/c.tgz".into(),
        sha256: Some("ab".into()),
    }));
    round_trip(prepare(Source::Git {
        url: "git://10.0.0.1/repo".into(),
        revision: Some("v1".into()),
        context_dir: Some("app".into()),
        auth_dir: Some(PathBuf::from(paths::GIT_AUTH)),
    }));
    round_trip(prepare(Source::Oci {
        image: "reg:5000/team/web".into(),
        digest: format!("sha256:{}", "a".repeat(64)),
    }));
    round_trip(PodCommand::Stage(StageArgs::in_pod(vec![0, 1], digests())));
    round_trip(PodCommand::Stage(StageArgs::in_pod(
        vec![2],
        Digests::new(digest('1')),
    )));
    let mut stamped = StageArgs::in_pod(vec![3], digests());
    stamped.epoch.source_date_epoch = Some(0);
    round_trip(PodCommand::Stage(stamped));
    let mut read_only = StageArgs::in_pod(vec![4], digests());
    read_only.layers = StageLayers::for_cache(false);
    assert!(
        read_only
            .to_args()
            .windows(2)
            .any(|w| w == ["--layers", "read"])
    );
    round_trip(PodCommand::Stage(read_only));
    round_trip(PodCommand::Push(PushArgs {
        cache_repo: None,
        workspace: PathBuf::from(paths::WORKSPACE),
        destinations: vec![
            "reg:5000/team/web:1".into(),
            "reg:5000/team/web:latest".into(),
        ],
        registries: RegistryArgs::default(),
        blob_cache: None,
        epoch: EpochArgs::default(),
        digests: digests(),
        annotations: vec![],
    }));
    round_trip(PodCommand::Push(PushArgs {
        cache_repo: None,
        workspace: PathBuf::from(paths::WORKSPACE),
        destinations: vec!["reg:5000/team/web:1".into()],
        registries: RegistryArgs::default(),
        blob_cache: Some(PathBuf::from(paths::PUSH_BLOBS)),
        epoch: EpochArgs {
            source_date_epoch: Some(1_700_000_000),
        },
        digests: Digests::new(digest('2')),
        annotations: vec![
            Annotation::new(annotations::BASE_NAME, "alpine:3.20"),
            Annotation::new(annotations::SOURCE, "https://g.example/r.git?a=b"),
        ],
    }));
    round_trip(PodCommand::PullAhead);
}

fn digest(c: char) -> Digest {
    Digest::parse(&format!("sha256:{}", c.to_string().repeat(64))).expect("digest")
}

/// Every kind of digest a pod is given.
fn digests() -> Digests {
    let mut d = Digests::new(digest('1'));
    d.dockerfile = Some(digest('2'));
    d.ignore = Some(digest('3'));
    d.images = vec![
        "busybox=sha256:4444444444444444444444444444444444444444444444444444444444444444"
            .parse()
            .expect("pair"),
        format!("reg:5000/team/base:1={}", digest('5'))
            .parse()
            .expect("pair"),
    ];
    d.add_outputs(
        0,
        &Outputs {
            result: digest('6'),
            exports: Some(digest('7')),
        },
    );
    d.add_outputs(
        3,
        &Outputs {
            result: digest('8'),
            exports: None,
        },
    );
    d.resumes = vec![format!("3={}", digest('a')).parse().expect("pair")];
    d.awaits = vec![4, 6];
    d
}

#[test]
fn digests_are_looked_up_and_replaced_by_stage() {
    let mut d = digests();
    assert_eq!(d.image("busybox"), Some(&digest('4')));
    assert_eq!(d.image("reg:5000/team/base:1"), Some(&digest('5')));
    assert_eq!(d.image("alpine"), None);
    assert_eq!(
        (d.result(0), d.exports(0)),
        (Some(&digest('6')), Some(&digest('7')))
    );
    assert_eq!((d.result(3), d.exports(3)), (Some(&digest('8')), None));
    assert_eq!(d.result(1), None);
    d.add_outputs(
        0,
        &Outputs {
            result: digest('9'),
            exports: None,
        },
    );
    assert_eq!((d.result(0), d.exports(0)), (Some(&digest('9')), None));
    assert_eq!(d.results.len(), 2);
    // A pod is not started without the plan's digest, nor with a digest that is none.
    assert!(Cli::try_parse_from(["b", "push", "--workspace", "/w", "-d", "r/x:1"]).is_err());
    let bad = [
        "b",
        "stage",
        "--plan",
        "/p",
        "--stage",
        "0",
        "--workspace",
        "/w",
        "--plan-digest",
        "sha256:../../etc/passwd",
    ];
    assert!(Cli::try_parse_from(bad).is_err());
}

/// An OCI source's fetch talks to a registry: it gets the insecure registries (and its flags
/// parse back); a fetch of any other source gets none.
#[test]
fn only_an_oci_fetch_is_told_the_insecure_registries() {
    let oci = Source::Oci {
        image: "reg:5000/team/web".into(),
        digest: format!("sha256:{}", "b".repeat(64)),
    };
    let fetch = prepare_args(oci.clone(), Size::DEFAULT_LIMIT).fetch();
    let args = fetch.to_args();
    assert!(
        args.windows(2)
            .any(|w| w == ["--insecure-registry", "reg:5000"])
    );
    assert!(
        args.windows(2)
            .any(|w| w == ["--oci-image", "reg:5000/team/web"])
    );
    assert_eq!(fetch.source.source(), Some(oci));
    round_trip(PodCommand::Fetch(fetch));
    let other = prepare_args(Source::Inline, Size::DEFAULT_LIMIT).fetch();
    assert!(!other.to_args().iter().any(|a| a == "--insecure-registry"));
    let half = ["b", "fetch", "--workspace", "/w", "--oci-image", "r/x"];
    assert!(Cli::try_parse_from(half).is_err(), "a digest is required");
}

#[test]
fn prepare_takes_exactly_one_source() {
    let two = [
        "b",
        "prepare",
        "--workspace",
        "/w",
        "--inline",
        "--git-url",
        "git://x/y",
    ];
    assert!(Cli::try_parse_from(two).is_err());
    assert!(Cli::try_parse_from(["b", "prepare", "--workspace", "/w"]).is_err());
}

#[test]
fn the_binary_lives_in_the_bin_dir() {
    assert_eq!(
        std::path::Path::new(paths::BIN).parent(),
        Some(std::path::Path::new(paths::BIN_DIR))
    );
    assert!(paths::PLAN.starts_with(paths::WORKSPACE));
    assert!(paths::SOURCE_ARCHIVE.starts_with(paths::SOURCE));
}
