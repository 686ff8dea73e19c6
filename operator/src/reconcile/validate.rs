//! The validate step: what the spec (and the status, for when this generation started) says
//! the reconcile works with: the build's identity, its timeout and deadline, how many stage
//! Jobs may run at once, and where the push step writes. No client; unit-tested.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;
use slipway_contract::epoch::{EpochError, SourceDateEpoch};
use slipway_contract::url::{self, UrlError};
use slipway_frontend::reference::{Reference, ReferenceError};

use super::context::Error;
use super::decide::Limits;
use super::render::Deadline;
use super::spare;
use crate::api::{ImageBuild, Output};

/// `spec.timeout` when the spec does not say.
pub const DEFAULT_TIMEOUT: &str = "1h";
/// `spec.maxParallelStages` when the spec does not say.
pub const DEFAULT_PARALLEL: usize = 4;

/// A spec the reconcile cannot work with.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Invalid {
    #[error("ImageBuild without a namespace")]
    NoNamespace,
    /// Every object the API server returns has one: its children are owned by it.
    #[error("ImageBuild without a uid")]
    NoUid,
    #[error("spec.timeout {0:?}: expected a duration like 30m or 1h")]
    Timeout(String),
    /// A source URL with credentials in it: refused before any Job holds it in its
    /// arguments (the message shows it without them).
    #[error("spec.source.{field}.url: {source}")]
    SourceUrl {
        field: &'static str,
        #[source]
        source: UrlError,
    },
    /// `spec.source.oci` names no repository, or no digest (the CRD holds both to their
    /// shapes; an object written without that schema is checked here too).
    #[error("spec.source.oci.{field} {value:?}: {why}")]
    OciSource {
        field: &'static str,
        value: String,
        why: &'static str,
    },
    #[error("spec.sourceDateEpoch: {0}")]
    SourceDateEpoch(#[source] EpochError),
    #[error("spec.sourceDateEpoch: git is the commit time of a git source (spec.source.git)")]
    EpochNotGit,
    /// A RUN step could write into a claim the next build takes as its fresh workspace.
    #[error(
        "spec.cacheVolume {0:?}: a spare workspace claim of the namespace's builds, not a cache"
    )]
    CacheVolumeSpare(String),
}

/// `spec.sourceDateEpoch` as the build uses it (the CRD's rule already holds it to seconds or
/// `git`; an object written before that rule, or without it, is checked here too).
pub fn source_date_epoch(ib: &ImageBuild) -> Result<Option<SourceDateEpoch>, Invalid> {
    let Some(v) = &ib.spec.source_date_epoch else {
        return Ok(None);
    };
    let text = match v {
        IntOrString::Int(n) => n.to_string(),
        IntOrString::String(s) => s.clone(),
    };
    let e: SourceDateEpoch = text.parse().map_err(Invalid::SourceDateEpoch)?;
    if e == SourceDateEpoch::Git && ib.spec.source.git.is_none() {
        return Err(Invalid::EpochNotGit);
    }
    Ok(Some(e))
}

/// Credentials never travel in a source URL (the fetch step checks the rest: https for a
/// tarball, and for a git secret).
fn check_source_urls(ib: &ImageBuild) -> Result<(), Invalid> {
    let src = &ib.spec.source;
    let urls = [
        ("git", src.git.as_ref().map(|g| g.url.as_str())),
        ("tarball", src.tarball.as_ref().map(|t| t.url.as_str())),
    ];
    for (field, u) in urls {
        if let Some(u) = u {
            url::check_git(u, false).map_err(|source| Invalid::SourceUrl { field, source })?;
        }
    }
    Ok(())
}

/// `spec.source.oci`: a repository and a sha256 digest, the shapes the fetch step takes.
pub fn oci_source(ib: &ImageBuild) -> Result<Option<Reference>, Invalid> {
    let Some(o) = &ib.spec.source.oci else {
        return Ok(None);
    };
    let hex = o.digest.strip_prefix("sha256:").unwrap_or("");
    if hex.len() != 64 || !hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return Err(Invalid::OciSource {
            field: "digest",
            value: o.digest.clone(),
            why: "expected sha256: and 64 lowercase hex digits",
        });
    }
    let r = Reference::parse(&o.image).map_err(|_| Invalid::OciSource {
        field: "image",
        value: o.image.clone(),
        why: "expected registry/repository",
    })?;
    if r.digest.is_some() {
        return Err(Invalid::OciSource {
            field: "image",
            value: o.image.clone(),
            why: "the digest goes in spec.source.oci.digest",
        });
    }
    Ok(Some(r))
}

/// `spec.output` is not an image reference.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("spec.output: {0}")]
pub struct InvalidOutput(#[source] pub ReferenceError);

/// Where the push step writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushTarget {
    /// `output.image`, then each additional tag of its repository.
    pub destinations: Vec<String>,
    /// The output registry's host (and port), for `output.insecureRegistry`.
    pub registry: String,
}

/// One generation of one build, as the reconcile sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct Build {
    pub namespace: String,
    pub name: String,
    /// The ImageBuild's uid: the owner of every object the build adopts or removes.
    pub uid: String,
    pub generation: i64,
    /// The status describes this generation (else it is the previous one's).
    pub same_generation: bool,
    /// When this generation started: kept in the status, else now.
    pub start: Time,
    /// `spec.timeout`, in seconds.
    pub limit: i64,
    /// Seconds since `start`.
    pub elapsed: i64,
    pub deadline: Deadline,
    pub limits: Limits,
    /// Checked here, reported when the push Job is due (as before: prepare and stage Jobs run
    /// without it).
    pub push: Result<PushTarget, InvalidOutput>,
    /// `spec.sourceDateEpoch`; `git` is resolved from the prepare pod's report.
    pub epoch: Option<SourceDateEpoch>,
}

impl Build {
    /// `namespace/name`, for logs.
    pub fn key(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }
}

/// The build's settings at `now`.
pub fn validate(ib: &ImageBuild, now: Timestamp) -> Result<Build, Error> {
    settings(ib, now).map_err(Error::Validate)
}

fn settings(ib: &ImageBuild, now: Timestamp) -> Result<Build, Invalid> {
    let namespace = ib.namespace().ok_or(Invalid::NoNamespace)?;
    let uid = ib.uid().ok_or(Invalid::NoUid)?;
    check_source_urls(ib)?;
    oci_source(ib)?;
    if let Some(v) = ib
        .spec
        .cache_volume
        .as_ref()
        .filter(|v| spare::named_like(v))
    {
        return Err(Invalid::CacheVolumeSpare(v.clone()));
    }
    let epoch = source_date_epoch(ib)?;
    let generation = ib.metadata.generation.unwrap_or(1);
    let status = ib.status.as_ref();
    let same_generation = status.and_then(|s| s.observed_generation) == Some(generation);
    let start = status
        .filter(|_| same_generation)
        .and_then(|s| s.start_time.clone())
        .unwrap_or(Time(now));
    let timeout = ib
        .spec
        .timeout
        .clone()
        .unwrap_or_else(|| DEFAULT_TIMEOUT.into());
    let limit = parse_duration(&timeout)
        .and_then(|s| i64::try_from(s).ok())
        .ok_or_else(|| Invalid::Timeout(timeout.clone()))?;
    let elapsed = now.as_second() - start.0.as_second();
    let max_parallel = ib
        .spec
        .max_parallel_stages
        .map(|n| n as usize)
        .unwrap_or(DEFAULT_PARALLEL);
    Ok(Build {
        namespace,
        name: ib.name_any(),
        uid,
        generation,
        same_generation,
        start,
        limit,
        elapsed,
        deadline: Deadline(Some(limit - elapsed)),
        limits: Limits {
            max_parallel,
            timeout,
            timed_out: elapsed > limit,
            cancel: ib.spec.cancel,
        },
        push: push_target(&ib.spec.output),
        epoch,
    })
}

/// Where `output` pushes to.
pub fn push_target(output: &Output) -> Result<PushTarget, InvalidOutput> {
    let registry = Reference::parse(&output.image)
        .map_err(InvalidOutput)?
        .registry;
    Ok(PushTarget {
        destinations: destinations(&output.image, &output.additional_tags)
            .map_err(InvalidOutput)?,
        registry,
    })
}

/// Every reference the push step writes: `output.image`, then each additional tag.
pub fn destinations(image: &str, tags: &[String]) -> Result<Vec<String>, ReferenceError> {
    let repo = Reference::parse(image)?.name();
    Ok(std::iter::once(image.to_string())
        .chain(tags.iter().map(|t| format!("{repo}:{t}")))
        .collect())
}

/// `30m`, `1h30m`, `90s`, `2h`: Go duration syntax, whole units (the CRD's pattern). `None`
/// also for a number of seconds that does not fit (L5: no overflow, in any build profile).
pub fn parse_duration(s: &str) -> Option<u64> {
    let s = s.trim();
    if s.is_empty() {
        return None;
    }
    let mut total = 0u64;
    let mut num = String::new();
    for c in s.chars() {
        if c.is_ascii_digit() {
            num.push(c);
            continue;
        }
        let n: u64 = num.parse().ok()?;
        num.clear();
        let unit = match c {
            'h' => 3600,
            'm' => 60,
            's' => 1,
            _ => return None,
        };
        total = total.checked_add(n.checked_mul(unit)?)?;
    }
    num.is_empty().then_some(total)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::GitSource;
    use crate::reconcile::fixtures;

    #[test]
    fn source_date_epoch_is_seconds_or_git_of_a_git_source() {
        let mut ib = fixtures::build();
        assert_eq!(source_date_epoch(&ib), Ok(None));
        ib.spec.source_date_epoch = Some(IntOrString::Int(1_700_000_000));
        assert_eq!(
            source_date_epoch(&ib),
            Ok(Some(SourceDateEpoch::Seconds(1_700_000_000)))
        );
        ib.spec.source_date_epoch = Some(IntOrString::String("17".into()));
        assert_eq!(
            source_date_epoch(&ib),
            Ok(Some(SourceDateEpoch::Seconds(17)))
        );
        for bad in [IntOrString::Int(-1), IntOrString::String("now".into())] {
            ib.spec.source_date_epoch = Some(bad);
            let e = validate(&ib, Timestamp::UNIX_EPOCH).expect_err("invalid");
            assert!(e.to_string().contains("spec.sourceDateEpoch"), "{e}");
        }
        ib.spec.source_date_epoch = Some(IntOrString::String("git".into()));
        assert_eq!(source_date_epoch(&ib), Err(Invalid::EpochNotGit));
        ib.spec.source.git = Some(GitSource {
            url: "https://git.example/app.git".into(),
            ..Default::default()
        });
        assert_eq!(source_date_epoch(&ib), Ok(Some(SourceDateEpoch::Git)));
    }

    #[test]
    fn a_source_url_with_credentials_is_refused_without_showing_them() {
        use crate::api::{GitSource, TarballSource};
        let mut ib = fixtures::build();
        ib.spec.source.inline = None;
        ib.spec.source.git = Some(GitSource {
            url: "https://bob:ghp_secret@git.example/r.git".into(),
            ..Default::default()
        });
        let now = Timestamp::from_second(1_000).expect("time");
        let e = settings(&ib, now).expect_err("refused");
        let shown = e.to_string();
        assert!(
            !shown.contains("ghp_secret") && !shown.contains("bob"),
            "{shown}"
        );
        assert!(
            shown.starts_with("spec.source.git.url: https://***@git.example/r.git: credentials"),
            "{shown}"
        );
        ib.spec.source.git = None;
        ib.spec.source.tarball = Some(TarballSource {
            url: "https://u:p@files.example/c.tgz".into(),
            sha256: None,
        });
        assert!(matches!(
            settings(&ib, now),
            Err(Invalid::SourceUrl {
                field: "tarball",
                ..
            })
        ));
        ib.spec.source.tarball = Some(TarballSource {
            url: "https://files.example/c.tgz".into(),
            sha256: None,
        });
        assert!(settings(&ib, now).is_ok());
    }

    #[test]
    fn an_oci_source_is_a_repository_and_a_sha256_digest() {
        use crate::api::OciSource;
        let mut ib = fixtures::build();
        ib.spec.source.inline = None;
        let now = Timestamp::from_second(1_000).expect("time");
        let good = format!("sha256:{}", "c".repeat(64));
        ib.spec.source.oci = Some(OciSource {
            image: "reg:5000/team/web-context".into(),
            digest: good.clone(),
        });
        assert!(settings(&ib, now).is_ok());
        let r = oci_source(&ib).expect("valid").expect("oci");
        assert_eq!(r.registry, "reg:5000");
        for bad in [
            "sha256:abc",
            "sha512:00",
            &format!("sha256:{}", "C".repeat(64)),
        ] {
            ib.spec.source.oci = Some(OciSource {
                image: "reg:5000/team/web-context".into(),
                digest: bad.to_string(),
            });
            assert_eq!(
                settings(&ib, now).expect_err("refused").to_string(),
                format!(
                    "spec.source.oci.digest {bad:?}: expected sha256: and 64 lowercase hex \
                     digits"
                )
            );
        }
        for bad in ["reg:5000/Team/x", &format!("reg:5000/x@{good}")] {
            ib.spec.source.oci = Some(OciSource {
                image: bad.to_string(),
                digest: good.clone(),
            });
            assert!(
                matches!(
                    settings(&ib, now),
                    Err(Invalid::OciSource { field: "image", .. })
                ),
                "{bad}"
            );
        }
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("30m"), Some(1800));
        assert_eq!(parse_duration("1h30m"), Some(5400));
        assert_eq!(parse_duration("45s"), Some(45));
        assert_eq!(parse_duration("soon"), None);
        assert_eq!(parse_duration("10"), None);
        // Overflow is no duration, not a wrap or a panic.
        assert_eq!(parse_duration("5124095576030432h"), None);
        assert_eq!(parse_duration("18446744073709551615s1s"), None);
        assert_eq!(parse_duration("99999999999999999999h"), None);
        assert_eq!(
            parse_duration("5124095576030431h").and_then(|s| i64::try_from(s).ok()),
            None
        );
    }

    #[test]
    fn a_timeout_too_large_for_seconds_is_invalid() {
        let mut ib = fixtures::build();
        ib.spec.timeout = Some("9223372036854775808s".into());
        let now = Timestamp::from_second(0).expect("time");
        assert!(matches!(settings(&ib, now), Err(Invalid::Timeout(_))));
    }

    #[test]
    fn repositories_and_tags() {
        let d = |image: &str, tags: &[&str]| {
            destinations(
                image,
                &tags.iter().map(|t| t.to_string()).collect::<Vec<_>>(),
            )
        };
        assert_eq!(
            d("reg:5000/a/b:1.0", &["2"]),
            Ok(vec![
                "reg:5000/a/b:1.0".to_string(),
                "reg:5000/a/b:2".to_string()
            ])
        );
        // A Docker Hub repository with a namespace: `team` is not a registry host.
        assert_eq!(
            d("team/web:1", &["latest"]),
            Ok(vec![
                "team/web:1".to_string(),
                "docker.io/team/web:latest".to_string()
            ])
        );
        assert!(d("Not A Reference", &[]).is_err());
    }

    #[test]
    fn a_new_generation_starts_now_with_the_default_limits() {
        let now = Timestamp::from_second(1_000).expect("time");
        let b = validate(&fixtures::build(), now).expect("valid");
        assert_eq!(b.key(), "ns/web");
        assert_eq!((b.generation, b.same_generation), (3, false));
        assert_eq!((b.start.0, b.limit, b.elapsed), (now, 3600, 0));
        assert_eq!(b.deadline, Deadline(Some(3600)));
        assert_eq!(b.limits.max_parallel, DEFAULT_PARALLEL);
        assert!(!b.limits.timed_out);
        let push = b.push.expect("a reference");
        assert_eq!(push.registry, "reg:5000");
        assert_eq!(
            push.destinations,
            ["reg:5000/team/web:1.0", "reg:5000/team/web:latest"]
        );
    }

    #[test]
    fn the_same_generation_keeps_its_start_and_times_out() {
        let mut ib = fixtures::build();
        ib.spec.timeout = Some("10m".into());
        ib.spec.max_parallel_stages = Some(2);
        ib.status = Some(crate::api::ImageBuildStatus {
            observed_generation: Some(3),
            start_time: Some(Time(Timestamp::from_second(100).expect("time"))),
            ..Default::default()
        });
        let b = validate(&ib, Timestamp::from_second(800).expect("time")).expect("valid");
        assert!(b.same_generation);
        assert_eq!((b.limit, b.elapsed), (600, 700));
        assert_eq!(b.deadline, Deadline(Some(-100)));
        assert!(b.limits.timed_out);
        assert_eq!(
            (b.limits.max_parallel, b.limits.timeout.as_str()),
            (2, "10m")
        );
    }

    #[test]
    fn what_cannot_be_built_is_named() {
        let now = Timestamp::from_second(0).expect("time");
        let mut ib = fixtures::build();
        ib.spec.timeout = Some("soon".into());
        let e = settings(&ib, now).expect_err("invalid");
        assert_eq!(
            e.to_string(),
            "spec.timeout \"soon\": expected a duration like 30m or 1h"
        );
        let mut ib = fixtures::build();
        ib.metadata.namespace = None;
        assert_eq!(settings(&ib, now), Err(Invalid::NoNamespace));
        assert_eq!(
            validate(&ib, now)
                .map_err(|e| e.to_string())
                .err()
                .as_deref(),
            Some("ImageBuild without a namespace")
        );
        let mut ib = fixtures::build();
        ib.spec.output.image = "Not A Reference".into();
        let e = validate(&ib, now).expect("valid otherwise").push;
        assert!(
            e.expect_err("no reference")
                .to_string()
                .starts_with("spec.output: invalid reference format")
        );
    }
}
