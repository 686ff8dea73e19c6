//! What a registry operation failed with: the registry, the operation, and what went wrong,
//! with the HTTP status when there is one (the one-line shape users and tests match:
//! `registry HOST: pull REF: HTTP 404: ...`), and which failures are worth another try.

use std::path::PathBuf;

use oci_client::errors::{OciDistributionError, OciErrorCode};
use slipway_frontend::reference::ReferenceError;

use crate::net::NoCaCertificates;
use crate::net::retry;
use crate::registry::auth::AuthError;
use crate::registry::digest::DigestError;

/// A registry operation that failed.
#[derive(Debug, thiserror::Error)]
#[error("registry {registry}: {operation}: {kind}")]
pub struct RegistryError {
    /// The registry host, `?` when the reference could not be parsed.
    pub registry: String,
    /// `pull REF`, `push REF: blob DIGEST`, `fetch blob DIGEST`...
    pub operation: String,
    #[source]
    pub kind: RegistryErrorKind,
}

/// What went wrong in a registry operation.
#[derive(Debug, thiserror::Error)]
pub enum RegistryErrorKind {
    /// What the registry, or the connection to it, answered.
    #[error("{}", describe(.0))]
    Protocol(#[source] OciDistributionError),
    /// The local blob cache.
    #[error("{0}")]
    Io(#[source] std::io::Error),
    /// A layer file to push.
    #[error("{}: {source}", path.display())]
    File {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("config: {0}")]
    Config(#[source] serde_json::Error),
    #[error("the config's diff_ids do not match the manifest's layers")]
    DiffIds,
    #[error("only sha256 digests are supported")]
    NotSha256,
    /// A digest the registry sent that is not `sha256:` and 64 lowercase hex digits.
    #[error("{of}: {source}")]
    BadDigest {
        of: DigestOf,
        #[source]
        source: DigestError,
    },
    #[error("content has digest {0}")]
    Digest(String),
    #[error("a layer with no file and no base image")]
    NoLayerSource,
    /// A layer file whose bytes are not those of its digests (it changed after its stage
    /// wrote it): the upload was never completed.
    #[error("{}: {source}: the workspace was modified", path.display())]
    Mismatch {
        path: PathBuf,
        #[source]
        source: Box<crate::registry::verify::Mismatch>,
    },
    #[error("{0}")]
    Reference(#[source] ReferenceError),
    /// A context artifact's manifest that is not the one pinned, or not of its shape.
    #[error("{0}")]
    Artifact(#[source] slipway_contract::context_artifact::ArtifactError),
    /// A blob with more, or fewer, bytes than its manifest says.
    #[error("the blob is not the {declared} bytes its manifest says ({got} came)")]
    BlobSize { declared: u64, got: String },
}

/// Which digest of an image a registry sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DigestOf {
    Image,
    Config,
    Layer,
    DiffId,
}

impl std::fmt::Display for DigestOf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            DigestOf::Image => "image",
            DigestOf::Config => "config",
            DigestOf::Layer => "layer",
            DigestOf::DiffId => "diff_id",
        })
    }
}

impl RegistryErrorKind {
    /// A digest that failed [`crate::registry::digest::sha256_hex`]; another algorithm keeps
    /// the message it always had.
    pub fn digest(of: DigestOf, e: DigestError) -> Self {
        match e {
            DigestError::NotSha256 => RegistryErrorKind::NotSha256,
            source => RegistryErrorKind::BadDigest { of, source },
        }
    }

    /// Worth another try: only what the registry or the connection says can pass.
    pub fn transient(&self) -> bool {
        matches!(self, RegistryErrorKind::Protocol(e) if transient(e))
    }
}

/// Why a registry client could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error(transparent)]
    Tls(#[from] NoCaCertificates),
    #[error(transparent)]
    Auth(#[from] AuthError),
}

/// An oci-client error worth another try: HTTP 429 or 5xx, or the connection failing.
pub fn transient(e: &OciDistributionError) -> bool {
    match e {
        OciDistributionError::ServerError { code, .. } => retry::transient_status(*code),
        OciDistributionError::RequestError(r) => retry::transient_reqwest(r),
        OciDistributionError::RegistryError { envelope, .. } => envelope
            .errors
            .iter()
            .any(|e| e.code == OciErrorCode::Toomanyrequests),
        _ => false,
    }
}

/// The HTTP status in an oci-client error, when it carries one.
pub fn describe(e: &OciDistributionError) -> String {
    match e {
        OciDistributionError::ServerError { code, message, .. } => {
            format!("HTTP {code}: {message}")
        }
        OciDistributionError::UnauthorizedError { url } => format!("HTTP 401 Unauthorized ({url})"),
        OciDistributionError::RequestError(r) => match r.status() {
            Some(s) => format!("HTTP {s}: {r}"),
            None => format!("{r}"),
        },
        OciDistributionError::RegistryError { envelope, .. } => {
            let status = envelope
                .errors
                .first()
                .map(|e| spec_status(&e.code))
                .unwrap_or("HTTP error");
            let what: Vec<String> = envelope
                .errors
                .iter()
                .map(|e| format!("{:?}: {}", e.code, e.message))
                .collect();
            format!("{status}: {}", what.join("; "))
        }
        OciDistributionError::ImageManifestNotFoundError(m) => {
            format!("HTTP 404 manifest unknown: {m}")
        }
        other => other.to_string(),
    }
}

/// The status the distribution spec gives each error code (oci-client keeps only the code).
fn spec_status(code: &OciErrorCode) -> &'static str {
    use OciErrorCode::*;
    match code {
        BlobUnknown | BlobUploadUnknown | ManifestUnknown | ManifestBlobUnknown | NameUnknown
        | NotFound => "HTTP 404",
        BlobUploadInvalid | DigestInvalid | ManifestInvalid | ManifestUnverified | NameInvalid
        | SizeInvalid | TagInvalid => "HTTP 400",
        Unauthorized => "HTTP 401",
        Denied => "HTTP 403",
        Unsupported => "HTTP 405",
        Toomanyrequests => "HTTP 429",
        Other(_) => "HTTP error",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use oci_client::errors::{OciEnvelope, OciError};

    fn envelope(code: OciErrorCode, message: &str) -> OciDistributionError {
        OciDistributionError::RegistryError {
            envelope: OciEnvelope {
                errors: vec![OciError {
                    code,
                    message: message.into(),
                    detail: serde_json::Value::Null,
                }],
            },
            url: "http://r/v2/x".into(),
        }
    }

    fn server(code: u16, message: &str) -> OciDistributionError {
        OciDistributionError::ServerError {
            code,
            url: "http://r/v2/x".into(),
            message: message.into(),
        }
    }

    #[test]
    fn messages_keep_their_shape() {
        let e = RegistryError {
            registry: "127.0.0.1:5055".into(),
            operation: "pull 127.0.0.1:5055/slipway-test/does-not-exist:latest".into(),
            kind: RegistryErrorKind::Protocol(envelope(
                OciErrorCode::ManifestUnknown,
                "manifest unknown",
            )),
        };
        assert_eq!(
            e.to_string(),
            "registry 127.0.0.1:5055: pull 127.0.0.1:5055/slipway-test/does-not-exist:latest: \
             HTTP 404: ManifestUnknown: manifest unknown"
        );
        let digest = format!("sha256:{}", "a".repeat(64));
        let e = RegistryError {
            registry: "10.233.0.1:5001".into(),
            operation: format!("push 10.233.0.1:5001/refused/image:latest: blob {digest}"),
            kind: RegistryErrorKind::Protocol(server(405, "Method not allowed")),
        };
        assert_eq!(
            e.to_string(),
            format!(
                "registry 10.233.0.1:5001: push 10.233.0.1:5001/refused/image:latest: \
                 blob {digest}: HTTP 405: Method not allowed"
            )
        );
        let unauthorized = OciDistributionError::UnauthorizedError {
            url: "http://r/v2/".into(),
        };
        assert_eq!(
            describe(&unauthorized),
            "HTTP 401 Unauthorized (http://r/v2/)"
        );
        assert_eq!(
            RegistryErrorKind::Digest("sha256:00".into()).to_string(),
            "content has digest sha256:00"
        );
        let e = RegistryError {
            registry: "127.0.0.1:5058".into(),
            operation: "pull 127.0.0.1:5058/evil/x:latest".into(),
            kind: RegistryErrorKind::digest(
                DigestOf::Layer,
                DigestError::Invalid("sha256:../../etc/x".into()),
            ),
        };
        assert_eq!(
            e.to_string(),
            "registry 127.0.0.1:5058: pull 127.0.0.1:5058/evil/x:latest: layer: invalid digest \
             \"sha256:../../etc/x\" (want sha256: and 64 lowercase hex digits)"
        );
        assert_eq!(
            RegistryErrorKind::digest(DigestOf::Image, DigestError::NotSha256).to_string(),
            "only sha256 digests are supported"
        );
    }

    #[test]
    fn only_rate_limits_server_errors_and_connections_are_transient() {
        assert!(transient(&server(503, "busy")));
        assert!(transient(&server(500, "")));
        assert!(transient(&server(429, "slow down")));
        assert!(transient(&envelope(OciErrorCode::Toomanyrequests, "")));
        assert!(!transient(&server(404, "")));
        assert!(!transient(&server(405, "Method not allowed")));
        assert!(!transient(&envelope(OciErrorCode::Denied, "")));
        assert!(!transient(&envelope(OciErrorCode::Unauthorized, "")));
        assert!(!transient(&envelope(OciErrorCode::ManifestUnknown, "")));
        assert!(!transient(&OciDistributionError::UnauthorizedError {
            url: String::new()
        }));
        assert!(!transient(&OciDistributionError::IoError(
            std::io::Error::other("disk full")
        )));
        let kind = RegistryErrorKind::Protocol(server(502, ""));
        assert!(kind.transient());
        assert!(!RegistryErrorKind::NotSha256.transient());
    }
}
