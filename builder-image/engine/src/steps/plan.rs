//! The step every build starts with, on the cluster (the prepare pod) and in local mode alike:
//! read the Dockerfile, plan, write the plan and the Dockerfile into the workspace, then
//! resolve every external image the plan needs to a digest. The Dockerfile and its ignore
//! files are read from inside the context only ([`context_file`](super::context_file)).

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::path::Path;

use slipway_frontend::dockerignore;
use slipway_frontend::plan::{self, Plan, PlanError, PlanOptions};

use crate::fs::unpack::{ImageUnpackError, unpack_image};
use crate::fs::{PathError, at};
use crate::registry::client::{Registry, RegistryError};
use crate::steps::context_file::{self, ContextFileError};
use crate::workspace::{self, ImageInfo, Workspace, WorkspaceError};

/// Why planning into the workspace failed.
#[derive(Debug, thiserror::Error)]
pub enum PlanStepError {
    /// The Dockerfile could not be read (`shown`: how the user names it).
    #[error("{shown}: {source}")]
    Read {
        shown: String,
        #[source]
        source: io::Error,
    },
    /// The Dockerfile or an ignore file is a symlink leading out of the context, or a loop.
    #[error("{shown}: {source}")]
    ContextFile {
        shown: String,
        #[source]
        source: ContextFileError,
    },
    /// The Dockerfile is not valid: `Dockerfile:LINE: message`.
    #[error("{}", located(shown, source))]
    Invalid {
        shown: String,
        #[source]
        source: PlanError,
    },
    #[error(transparent)]
    Write(#[from] WorkspaceError),
    #[error(transparent)]
    Copy(#[from] PathError),
}

fn located(shown: &str, e: &PlanError) -> String {
    match e.line() {
        Some(l) => format!("{shown}:{l}: {e}"),
        None => format!("{shown}: {e}"),
    }
}

fn context_error(shown: String) -> impl FnOnce(ContextFileError) -> PlanStepError {
    move |e| match e {
        ContextFileError::Io(source) => PlanStepError::Read { shown, source },
        source => PlanStepError::ContextFile { shown, source },
    }
}

/// An ignore file's bytes, `None` when there is none (or it cannot be read: the stage that
/// applies it says so); a symlink out of the context is an error.
fn ignore_file(root: &Path, rel: &Path, shown: String) -> Result<Option<Vec<u8>>, PlanStepError> {
    match context_file::read(root, rel) {
        Ok(b) => Ok(Some(b)),
        Err(ContextFileError::Io(_)) => Ok(None),
        Err(e) => Err(context_error(shown)(e)),
    }
}

/// Reads and plans `dockerfile` (named `shown` in messages), and writes `plan.json`, the
/// Dockerfile and its own `.dockerignore` (which wins over the context's, as in BuildKit) into
/// the workspace. Warnings go to stderr. The Dockerfile and both ignore files resolve inside
/// the context (a Dockerfile outside it, inside its own folder): a symlink leading out is an
/// error naming the file.
pub fn plan_into(
    ws: &Workspace,
    context: &Path,
    dockerfile: &Path,
    shown: &str,
    opts: &PlanOptions,
) -> Result<Plan, PlanStepError> {
    let (root, rel) = context_file::dockerfile_root(context, dockerfile);
    let text = context_file::read(root, rel)
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .map_err(context_error(shown.to_string()))?;
    let mut specific_rel = rel.as_os_str().to_owned();
    specific_rel.push(".dockerignore");
    let specific = ignore_file(
        root,
        Path::new(&specific_rel),
        format!("{shown}.dockerignore"),
    )?;
    ignore_file(
        context,
        Path::new(".dockerignore"),
        ".dockerignore".to_string(),
    )?;
    let plan = plan::plan(&text, opts).map_err(|source| PlanStepError::Invalid {
        shown: shown.to_string(),
        source,
    })?;
    for w in &plan.warnings {
        eprintln!("{shown}: warning: {w}");
    }
    workspace::write_json(&ws.plan(), &plan)?;
    fs::write(ws.dockerfile(), &text).map_err(at(ws.dockerfile()))?;
    if let Some(t) = specific {
        let [to, _] = dockerignore::candidates(&ws.root, &ws.dockerfile());
        fs::write(&to, t).map_err(at(to))?;
    }
    Ok(plan)
}

/// How much of each external image to fetch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fetch {
    /// Every layer, and the images stages copy from unpacked (local mode, as root, which
    /// unpacks base images itself).
    Layers,
    /// Manifests and configs only, and the layers of images that stages copy from (the
    /// cluster, where the kubelet pulls stage pods' images). The prepare pod is not root and
    /// cannot unpack an image as it is (owners, devices): the stage pods that copy from one
    /// unpack it into their own folder, checked ([`crate::trusted::unpack_image`]).
    Manifests,
    /// Manifests and configs of the images stages build on, whose layers are fetched only
    /// when a stage container is rooted in one (local mode with the layer cache, where a
    /// stage that hits needs none); the images stages copy from as [`Fetch::Layers`] does.
    Copied,
}

/// Why an image could not be resolved.
#[derive(Debug, thiserror::Error)]
pub enum ResolveError {
    #[error(transparent)]
    Registry(#[from] RegistryError),
    #[error(transparent)]
    Write(#[from] WorkspaceError),
    #[error(transparent)]
    Unpack(#[from] ImageUnpackError),
}

/// Resolves every external image of the plan to a digest (concurrently), writes each one's
/// `images/<key>.json`, and unpacks the images stages copy from into the workspace.
pub async fn resolve_images(
    registry: &Registry,
    plan: &Plan,
    ws: &Workspace,
    fetch: Fetch,
) -> Result<BTreeMap<String, ImageInfo>, ResolveError> {
    let (names, copied) = plan.external_images();
    let pulls = names.iter().map(|n| {
        let layers = fetch == Fetch::Layers || copied.contains(n);
        async move {
            let r = if layers {
                registry.pull(n).await
            } else {
                registry.resolve(n).await
            };
            (n.clone(), r)
        }
    });
    let mut out = BTreeMap::new();
    for (n, r) in futures::future::join_all(pulls).await {
        let info = r?;
        eprintln!("resolved {n} to {}", info.pinned);
        workspace::write_json(&ws.image_info(&n), &info)?;
        if matches!(fetch, Fetch::Layers | Fetch::Copied) && copied.contains(&n) {
            unpack_image(&info, &ws.image_rootfs(&n))?;
        }
        out.insert(n, info);
    }
    Ok(out)
}

/// Each image's pinned reference, by the reference the Dockerfile uses.
pub fn pinned(images: &BTreeMap<String, ImageInfo>) -> BTreeMap<String, String> {
    images
        .iter()
        .map(|(n, i)| (n.clone(), i.pinned.clone()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;
    use std::path::PathBuf;

    /// A workspace, a context in it, and a marker file outside the context that an A1
    /// author's symlinks aim at (a git token, a pull secret, a host file).
    struct Setup {
        _dir: tempfile::TempDir,
        ws: Workspace,
        context: PathBuf,
        marker: PathBuf,
    }

    const MARKER: &str = "MARKER-7f3a";

    fn setup() -> Setup {
        let dir = tempfile::tempdir().expect("tmp");
        let ws = Workspace::new(dir.path().join("ws"));
        let context = ws.context();
        fs::create_dir_all(&context).expect("mkdir");
        let marker = dir.path().join("secret");
        fs::write(&marker, MARKER).expect("marker");
        Setup {
            _dir: dir,
            ws,
            context,
            marker,
        }
    }

    fn plan_in(s: &Setup, dockerfile: &str) -> Result<Plan, PlanStepError> {
        let df = s.context.join(dockerfile);
        plan_into(&s.ws, &s.context, &df, dockerfile, &PlanOptions::default())
    }

    /// The error, checked to name the file and to hold nothing of the marker; nothing of
    /// the marker in the workspace either.
    fn refused(s: &Setup, dockerfile: &str, file: &str) {
        let e = plan_in(s, dockerfile).expect_err("refused");
        assert_eq!(
            e.to_string(),
            format!("{file}: symlink leaves the build context")
        );
        for f in ["Dockerfile", "Dockerfile.dockerignore", "plan.json"] {
            let text = fs::read_to_string(s.ws.root.join(f)).unwrap_or_default();
            assert!(!text.contains(MARKER), "{f}");
        }
    }

    #[test]
    fn a_dockerfile_symlinked_out_of_the_context_is_refused() {
        let s = setup();
        symlink("/etc/passwd", s.context.join("Dockerfile")).expect("ln");
        refused(&s, "Dockerfile", "Dockerfile");
        let s = setup();
        symlink(&s.marker, s.context.join("Dockerfile")).expect("ln");
        refused(&s, "Dockerfile", "Dockerfile");
        // A directory component on the way: build -> .. (the workspace).
        let s = setup();
        fs::write(s.ws.root.join("Dockerfile.evil"), "FROM scratch\n").expect("w");
        symlink("..", s.context.join("build")).expect("ln");
        refused(&s, "build/Dockerfile.evil", "build/Dockerfile.evil");
    }

    #[test]
    fn ignore_files_symlinked_out_of_the_context_are_refused() {
        let s = setup();
        fs::write(s.context.join("Dockerfile"), "FROM scratch\n").expect("w");
        symlink("../../secret", s.context.join("Dockerfile.dockerignore")).expect("ln");
        refused(&s, "Dockerfile", "Dockerfile.dockerignore");
        let s = setup();
        fs::write(s.context.join("Dockerfile"), "FROM scratch\n").expect("w");
        symlink(&s.marker, s.context.join(".dockerignore")).expect("ln");
        refused(&s, "Dockerfile", ".dockerignore");
    }

    #[test]
    fn symlinks_inside_the_context_are_followed() {
        let s = setup();
        fs::create_dir_all(s.context.join("docker")).expect("mkdir");
        fs::write(s.context.join("docker/app.Dockerfile"), "FROM scratch\n").expect("w");
        fs::write(s.context.join("docker/ignore"), "*.log\n").expect("w");
        symlink("docker/app.Dockerfile", s.context.join("Dockerfile")).expect("ln");
        symlink("docker/ignore", s.context.join("Dockerfile.dockerignore")).expect("ln");
        let plan = plan_in(&s, "Dockerfile").expect("planned");
        assert_eq!(plan.stages.len(), 1);
        assert_eq!(
            fs::read_to_string(s.ws.dockerfile()).expect("copied"),
            "FROM scratch\n"
        );
        assert_eq!(
            fs::read_to_string(s.ws.root.join("Dockerfile.dockerignore")).expect("copied"),
            "*.log\n"
        );
        // A missing Dockerfile says so as before.
        let s = setup();
        let e = plan_in(&s, "Dockerfile").expect_err("missing");
        assert_eq!(
            e.to_string(),
            "Dockerfile: No such file or directory (os error 2)"
        );
    }
}
