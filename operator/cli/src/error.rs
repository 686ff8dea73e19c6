//! The CLI's errors: each prints as one line, and says which exit code it ends with.

use slipway_api::Phase;

use crate::pack::PackError;
use crate::spec::TagError;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Flags that cannot work together, or a value the cluster cannot take.
    #[error("{0}")]
    Usage(String),
    #[error(transparent)]
    Tag(#[from] TagError),
    #[error("{0}")]
    Pack(#[from] PackError),
    #[error("kubeconfig: {0}")]
    Config(String),
    /// An API call failed; `what` says what it was for.
    #[error("{what}: {}", api_message(.source))]
    Api {
        what: String,
        #[source]
        source: kube::Error,
    },
    #[error("imagebuild {name} not found in namespace {namespace}")]
    NotFound { name: String, namespace: String },
    #[error("imagebuild {0} was deleted while it was followed")]
    Deleted(String),
    #[error("imagebuild {name}: still {phase} after {waited}")]
    Timeout {
        name: String,
        phase: String,
        waited: String,
    },
    /// `cancel` of a build whose current generation already Succeeded or Failed.
    #[error("imagebuild {name}: already {}; a build that ended cannot be cancelled", .phase.as_str())]
    Ended { name: String, phase: Phase },
    /// `cancel` of a build that ended otherwise before the controller saw the cancel.
    #[error("imagebuild {name}: {} before the cancel took effect", .phase.as_str())]
    EndedFirst { name: String, phase: Phase },
    /// A conditional patch refused (409) again and again: others keep changing the object.
    #[error(
        "{what} imagebuild {name}: it changed under every one of {tries} attempts (409 Conflict)"
    )]
    Conflict {
        what: &'static str,
        name: String,
        tries: u32,
    },
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// The context could not be pushed to its registry.
    #[error(transparent)]
    Push(#[from] crate::artifact::PushError),
    #[error(transparent)]
    Repo(#[from] crate::artifact::RepoError),
}

/// An API error's own message (the API server's, for a refused request).
fn api_message(e: &kube::Error) -> String {
    match e {
        kube::Error::Api(s) => {
            if s.message.is_empty() {
                format!("{} ({})", s.reason, s.code)
            } else {
                s.message.clone()
            }
        }
        other => other.to_string(),
    }
}

impl Error {
    pub fn api(what: &str, source: kube::Error) -> Error {
        Error::Api {
            what: what.to_string(),
            source,
        }
    }

    /// The process's exit code for it: 2 for usage, 3 for everything else.
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::Usage(_) | Error::Tag(_) | Error::Repo(_) => 2,
            _ => 3,
        }
    }

    /// Whether the API refused a conditional request: the object changed since it was read.
    pub fn is_conflict(e: &kube::Error) -> bool {
        matches!(e, kube::Error::Api(s) if s.code == 409)
    }

    /// Whether the API said the object does not exist.
    pub fn is_not_found(e: &kube::Error) -> bool {
        matches!(e, kube::Error::Api(s) if s.code == 404)
    }
}
