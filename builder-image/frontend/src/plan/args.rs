//! Build arguments as BuildKit scopes them (`dockerfile2llb/convert.go`): the predefined
//! platform ARGs, the global scope (ARGs before the first FROM, `--build-arg` winning), and
//! the `--build-arg` values nothing declared.

use std::collections::{BTreeMap, BTreeSet};

use super::PlanError;
use crate::dockerfile::instructions::Dockerfile;
use crate::dockerfile::shell::{Lex, Vars};

/// Build arguments that need no ARG to be passed to RUN, and never count as unused.
pub const PROXY_ARGS: [&str; 10] = [
    "HTTP_PROXY",
    "http_proxy",
    "HTTPS_PROXY",
    "https_proxy",
    "FTP_PROXY",
    "ftp_proxy",
    "NO_PROXY",
    "no_proxy",
    "ALL_PROXY",
    "all_proxy",
];

/// PATH of a stage whose base image sets none (BuildKit `system.DefaultPathEnv`).
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// The platform this machine builds for, as (architecture, variant).
fn host_platform() -> (&'static str, &'static str) {
    match std::env::consts::ARCH {
        "x86_64" => ("amd64", ""),
        "aarch64" => ("arm64", ""),
        "arm" => ("arm", "v7"),
        "x86" => ("386", ""),
        "powerpc64" => ("ppc64le", ""),
        "s390x" => ("s390x", ""),
        "riscv64" => ("riscv64", ""),
        other => (other, ""),
    }
}

/// This machine's architecture in OCI terms (`amd64`, `arm64`, ...).
pub fn host_arch() -> &'static str {
    host_platform().0
}

/// BuildKit's predefined ARGs (`defaultArgs`), which `--build-arg` may override.
pub fn predefined_args(target: Option<&str>, overrides: &BTreeMap<String, String>) -> Vars {
    let (arch, variant) = host_platform();
    let platform = if variant.is_empty() {
        format!("linux/{arch}")
    } else {
        format!("linux/{arch}/{variant}")
    };
    let mut v = Vars::new();
    for (k, val) in [
        ("BUILDPLATFORM", platform.as_str()),
        ("BUILDOS", "linux"),
        ("BUILDOSVERSION", ""),
        ("BUILDARCH", arch),
        ("BUILDVARIANT", variant),
        ("TARGETPLATFORM", platform.as_str()),
        ("TARGETOS", "linux"),
        ("TARGETOSVERSION", ""),
        ("TARGETARCH", arch),
        ("TARGETVARIANT", variant),
        (
            "TARGETSTAGE",
            target.filter(|t| !t.is_empty()).unwrap_or("default"),
        ),
    ] {
        v.set(k, overrides.get(k).map(String::as_str).unwrap_or(val));
    }
    v
}

/// The global scope: predefined ARGs plus the ARGs before the first FROM (defaults expanded,
/// `--build-arg` winning), and the names those declare.
pub fn global_args(
    df: &Dockerfile,
    lex: &Lex,
    build_args: &BTreeMap<String, String>,
    target_name: Option<&str>,
) -> Result<(Vars, BTreeSet<String>), PlanError> {
    let mut global = predefined_args(target_name, build_args);
    let mut meta_declared = BTreeSet::new();
    for (args, span) in &df.meta_args {
        for a in args {
            meta_declared.insert(a.key.clone());
            let value = match (build_args.get(&a.key), &a.value) {
                (Some(v), _) => Some(v.clone()),
                (None, Some(default)) => {
                    Some(lex.process_word(default, &global).map_err(|source| {
                        PlanError::Expansion {
                            line: span.start,
                            instruction: "ARG".into(),
                            source,
                        }
                    })?)
                }
                (None, None) => None,
            };
            if let Some(v) = value {
                global.set(&a.key, &v);
            }
        }
    }
    Ok((global, meta_declared))
}

/// A warning for each `--build-arg` that no ARG in `declared` consumes, unless it is a proxy
/// or predefined one.
pub(super) fn unused_build_args(
    build_args: &BTreeMap<String, String>,
    declared: &BTreeSet<&str>,
) -> Vec<String> {
    let predefined = predefined_args(None, &BTreeMap::new());
    build_args
        .keys()
        .filter(|k| {
            !declared.contains(k.as_str())
                && !PROXY_ARGS.contains(&k.as_str())
                && predefined.get(k).is_none()
        })
        .map(|k| {
            format!(
                "build-arg {k:?} was not consumed: no ARG {k} in the global scope or the needed stages"
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn predefined_args_follow_the_host_and_overrides() {
        let v = predefined_args(Some("build"), &BTreeMap::new());
        assert_eq!(v.get("TARGETARCH"), Some(host_arch()));
        assert_eq!(v.get("TARGETOS"), Some("linux"));
        assert_eq!(v.get("TARGETSTAGE"), Some("build"));
        let over = BTreeMap::from([("TARGETARCH".to_string(), "riscv64".to_string())]);
        let v = predefined_args(Some(""), &over);
        assert_eq!(v.get("TARGETARCH"), Some("riscv64"));
        assert_eq!(v.get("TARGETSTAGE"), Some("default"));
    }

    #[test]
    fn unused_build_args_skip_proxies_and_predefined() {
        let args: BTreeMap<String, String> = ["A", "B", "HTTP_PROXY", "TARGETARCH"]
            .iter()
            .map(|k| (k.to_string(), String::new()))
            .collect();
        let declared = BTreeSet::from(["A"]);
        assert_eq!(
            unused_build_args(&args, &declared),
            ["build-arg \"B\" was not consumed: no ARG B in the global scope or the needed stages"]
        );
    }
}
