//! Pushing a packed context as an OCI artifact (`spec.source.oci`, the format in
//! [`slipway_contract::context_artifact`]): the gzip tar streamed from its temporary file in
//! chunks, its sha256 computed as it is uploaded (oci-client's chunked upload), then the empty
//! config and the manifest. The manifest is pushed by its digest, with no tag: the ImageBuild
//! pins that digest, and the repository's tags (the output image's, by default) stay the user's.
//!
//! Credentials are the user's Docker ones (`~/.docker/config.json`, its credential helpers);
//! plain HTTP only with `--insecure`. Every error names the registry and the step, with the
//! HTTP status when the registry answered.

use std::io::IsTerminal;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use futures::{StreamExt, TryStreamExt};
use oci_client::client::{ClientConfig, ClientProtocol};
use oci_client::errors::OciDistributionError;
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference, RegistryOperation};
use slipway_contract::context_artifact::{
    EMPTY_CONFIG, MANIFEST_MEDIA_TYPE, manifest_json, sha256_digest,
};
use tokio_util::io::ReaderStream;

use crate::pack::human;
use crate::spool::Spool;

/// A push of a context that failed.
#[derive(Debug, thiserror::Error)]
#[error("registry {registry}: push the context to {repository}: {step}: {kind}")]
pub struct PushError {
    pub registry: String,
    pub repository: String,
    pub step: &'static str,
    #[source]
    pub kind: PushErrorKind,
}

#[derive(Debug, thiserror::Error)]
pub enum PushErrorKind {
    #[error("{}", describe(.0))]
    Registry(#[source] OciDistributionError),
    #[error("{0}")]
    Io(#[source] std::io::Error),
    /// The registry took another number of bytes than the archive has.
    #[error("the registry took {took} bytes of a {size}-byte archive")]
    Size { took: u64, size: u64 },
}

/// Not a repository to push a context to.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("--context-repo {0:?}: expected REGISTRY/REPOSITORY (no tag, no digest)")]
pub struct RepoError(pub String);

/// An oci-client error in one line, with the HTTP status when there is one.
fn describe(e: &OciDistributionError) -> String {
    match e {
        OciDistributionError::ServerError { code, message, .. } => {
            format!("HTTP {code}: {message}")
        }
        OciDistributionError::UnauthorizedError { url } => {
            format!("HTTP 401 Unauthorized ({url}); log in with `docker login`")
        }
        OciDistributionError::RequestError(r) => match r.status() {
            Some(s) => format!("HTTP {s}: {r}"),
            None => r.to_string(),
        },
        other => other.to_string().replace('\n', " "),
    }
}

/// The repository (`registry/repository`) a context goes to: `--context-repo`, else the
/// output image's repository.
pub fn repository(context_repo: Option<&str>, image: &str) -> Result<String, RepoError> {
    use slipway_frontend::reference::Reference as Named;
    match context_repo {
        Some(repo) => match Named::parse(repo) {
            Ok(r) if r.tag.is_none() && r.digest.is_none() => Ok(r.name()),
            _ => Err(RepoError(repo.to_string())),
        },
        None => Named::parse(image)
            .map(|r| r.name())
            .map_err(|_| RepoError(image.to_string())),
    }
}

/// The user's Docker credentials for `host`, else anonymous.
fn credentials(host: &str) -> RegistryAuth {
    let server = if host == "docker.io" || host == "index.docker.io" {
        "https://index.docker.io/v1/"
    } else {
        host
    };
    match docker_credential::get_credential(server) {
        Ok(docker_credential::DockerCredential::UsernamePassword(u, p)) => {
            RegistryAuth::Basic(u, p)
        }
        _ => RegistryAuth::Anonymous,
    }
}

/// Pushes `archive` as a context artifact to `repository` (`registry/repository`); returns the
/// manifest's digest. `insecure`: plain HTTP to that registry.
pub async fn push(repository: &str, insecure: bool, archive: &Spool) -> Result<String, PushError> {
    // oci-client's TLS takes the process's crypto provider (a second install is refused: fine).
    let _ = rustls::crypto::ring::default_provider().install_default();
    let r: Reference = format!("{repository}:context")
        .parse()
        .map_err(|_| PushError {
            registry: "?".into(),
            repository: repository.to_string(),
            step: "parse",
            kind: PushErrorKind::Io(std::io::Error::other("not a repository")),
        })?;
    let fail = |step: &'static str| {
        let registry = r.registry().to_string();
        move |kind| PushError {
            registry,
            repository: repository.to_string(),
            step,
            kind,
        }
    };
    let client = Client::new(ClientConfig {
        protocol: if insecure {
            ClientProtocol::HttpsExcept(vec![r.registry().to_string()])
        } else {
            ClientProtocol::Https
        },
        ..Default::default()
    });
    let auth = credentials(r.registry());
    client
        .auth(&r, &auth, RegistryOperation::Push)
        .await
        .map_err(|e| fail("authenticate")(PushErrorKind::Registry(e)))?;

    let size = archive.len();
    let file = archive
        .reader()
        .map_err(|e| fail("read the archive")(PushErrorKind::Io(e)))?;
    let sent = Arc::new(AtomicU64::new(0));
    let progress = Arc::new(Progress::new(size));
    let (counter, shown) = (sent.clone(), progress.clone());
    let stream = ReaderStream::with_capacity(tokio::fs::File::from_std(file), 1 << 20)
        .inspect_ok(move |chunk| {
            let n = counter.fetch_add(chunk.len() as u64, Ordering::Relaxed) + chunk.len() as u64;
            shown.show(n);
        })
        .map_err(OciDistributionError::IoError)
        .boxed();
    let pushed = client
        .push_blob_stream_chunked(&r, stream)
        .await
        .map_err(|e| fail("upload the archive")(PushErrorKind::Registry(e)))?;
    progress.done();
    if pushed.size != size {
        return Err(fail("upload the archive")(PushErrorKind::Size {
            took: pushed.size,
            size,
        }));
    }

    let config_digest = sha256_digest(EMPTY_CONFIG);
    let has_config = client
        .blob_exists(&r, &config_digest)
        .await
        .map_err(|e| fail("the empty config")(PushErrorKind::Registry(e)))?;
    if !has_config {
        client
            .push_blob(&r, EMPTY_CONFIG.to_vec(), &config_digest)
            .await
            .map_err(|e| fail("the empty config")(PushErrorKind::Registry(e)))?;
    }

    let manifest = manifest_json(&pushed.blob_digest, pushed.size);
    let digest = sha256_digest(&manifest);
    let pinned = Reference::with_digest(
        r.registry().to_string(),
        r.repository().to_string(),
        digest.clone(),
    );
    client
        .push_manifest_raw(
            &pinned,
            manifest,
            reqwest::header::HeaderValue::from_static(MANIFEST_MEDIA_TYPE),
        )
        .await
        .map_err(|e| fail("the manifest")(PushErrorKind::Registry(e)))?;
    Ok(digest)
}

/// `uploading the context: 12.0 MiB of 48.0 MiB` on stderr, rewritten in place on a terminal
/// (every 8 MiB at most); nothing elsewhere.
struct Progress {
    size: u64,
    tty: bool,
    shown: AtomicU64,
}

impl Progress {
    fn new(size: u64) -> Self {
        Progress {
            size,
            tty: std::io::stderr().is_terminal(),
            shown: AtomicU64::new(0),
        }
    }

    fn show(&self, n: u64) {
        if !self.tty || n < self.shown.load(Ordering::Relaxed) + (8 << 20) {
            return;
        }
        self.shown.store(n, Ordering::Relaxed);
        eprint!(
            "\ruploading the context: {} of {}",
            human(n),
            human(self.size)
        );
    }

    fn done(&self) {
        if self.tty {
            eprint!("\r\x1b[K");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_context_goes_to_the_output_repository_unless_told() {
        assert_eq!(
            repository(None, "reg:5000/team/web:1.0").as_deref(),
            Ok("reg:5000/team/web")
        );
        assert_eq!(
            repository(Some("reg:5000/team/contexts"), "reg:5000/team/web:1.0").as_deref(),
            Ok("reg:5000/team/contexts")
        );
        for bad in ["reg:5000/team/contexts:v1", "reg:5000/Team/x", ""] {
            assert_eq!(
                repository(Some(bad), "reg:5000/team/web:1.0"),
                Err(RepoError(bad.to_string())),
                "{bad}"
            );
        }
    }

    #[test]
    fn a_refusal_names_the_registry_the_step_and_the_status() {
        let e = PushError {
            registry: "reg:5000".into(),
            repository: "reg:5000/team/web".into(),
            step: "upload the archive",
            kind: PushErrorKind::Registry(OciDistributionError::ServerError {
                code: 413,
                url: "http://reg:5000/v2/team/web/blobs/uploads/".into(),
                message: "Request Entity Too Large".into(),
            }),
        };
        assert_eq!(
            e.to_string(),
            "registry reg:5000: push the context to reg:5000/team/web: upload the archive: \
             HTTP 413: Request Entity Too Large"
        );
    }
}
