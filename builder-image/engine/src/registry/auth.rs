//! Registry credentials from Docker config files, read as Docker reads them by the
//! docker_credential crate: `auths.<registry>` (base64 `auth`, or `username`/`password`),
//! `credHelpers.<registry>` and `credsStore` (the `docker-credential-<name>` programs).
//! The files are `$DOCKER_CONFIG/config.json` (else `~/.docker/config.json`), then every
//! `*.json` in the directory [`env::AUTH_DIR`] names (the dockerconfigjson Secrets a build pod
//! mounts), in name order; the first file with a credential for a registry wins.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use docker_credential::{CredentialRetrievalError, DockerCredential};
use serde::Deserialize;
use slipway_contract::pod::env;

/// The Docker config files in the order they are asked.
#[derive(Debug, Default)]
pub struct DockerConfig {
    files: Vec<ConfigFile>,
}

#[derive(Debug)]
struct ConfigFile {
    path: PathBuf,
    bytes: Vec<u8>,
}

/// A config file that is not a Docker config.
#[derive(Debug, thiserror::Error)]
#[error("{}: {source}", path.display())]
pub struct AuthError {
    pub path: PathBuf,
    #[source]
    pub source: serde_json::Error,
}

/// A credential that a config file names but that could not be had (a helper that failed or
/// is missing, an `auth` that is not base64 `user:password`).
#[derive(Debug, thiserror::Error)]
#[error("{}: {source}", path.display())]
pub struct CredentialError {
    pub path: PathBuf,
    #[source]
    pub source: CredentialRetrievalError,
}

/// The shape docker_credential reads, checked when the files are loaded: that crate only
/// says "Unable to read config", and a broken Secret should say where and why at once.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
#[allow(dead_code)] // read for its shape only
struct Shape {
    auths: Option<BTreeMap<String, AuthShape>>,
    creds_store: Option<String>,
    cred_helpers: Option<BTreeMap<String, String>>,
}

#[derive(Deserialize)]
#[allow(dead_code)] // read for its shape only
struct AuthShape {
    auth: Option<String>,
    username: Option<String>,
    password: Option<String>,
    identitytoken: Option<String>,
}

/// Docker Hub as `docker login` keys it, and as credential helpers expect to be asked.
const DOCKER_HUB_SERVER: &str = "https://index.docker.io/v1/";

/// The server names to ask a config file for a registry host. Docker Hub is asked as
/// `https://index.docker.io/v1/` first (credential helpers and stores know it by that name),
/// then as `docker.io`, which matches an `auths` key of any spelling of Docker Hub.
fn servers(registry: &str) -> Vec<&str> {
    match registry {
        "docker.io" | "index.docker.io" | "registry-1.docker.io" => {
            vec![DOCKER_HUB_SERVER, "docker.io"]
        }
        host => vec![host],
    }
}

impl DockerConfig {
    pub fn path() -> Option<PathBuf> {
        if let Some(d) = std::env::var_os("DOCKER_CONFIG") {
            return Some(PathBuf::from(d).join("config.json"));
        }
        std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".docker/config.json"))
    }

    /// The config file, or no credentials when there is none; then every `*.json` in
    /// `$SLIPWAY_AUTH_DIR`.
    pub fn load() -> Result<Self, AuthError> {
        Self::load_from(
            Self::path().as_deref(),
            std::env::var_os(env::AUTH_DIR).as_deref().map(Path::new),
        )
    }

    /// [`Self::load`] from the given config file and directory. Files that cannot be read
    /// are skipped; a file that is not a Docker config is an error.
    pub fn load_from(config: Option<&Path>, auth_dir: Option<&Path>) -> Result<Self, AuthError> {
        let mut paths: Vec<PathBuf> = config.into_iter().map(Path::to_path_buf).collect();
        if let Some(dir) = auth_dir {
            let mut more: Vec<PathBuf> = std::fs::read_dir(dir)
                .map(|rd| {
                    rd.filter_map(|e| e.ok().map(|e| e.path()))
                        .filter(|p| p.extension().is_some_and(|x| x == "json"))
                        .collect()
                })
                .unwrap_or_default();
            more.sort();
            paths.extend(more);
        }
        let mut files = Vec::new();
        for path in paths {
            let Ok(bytes) = std::fs::read(&path) else {
                continue;
            };
            if let Err(source) = serde_json::from_slice::<Shape>(&bytes) {
                return Err(AuthError { path, source });
            }
            files.push(ConfigFile { path, bytes });
        }
        Ok(DockerConfig { files })
    }

    /// The credential for a registry host (`docker.io`, `host:port`), from the first file
    /// that has one; `None` when no file has one. A credential that a file names but that
    /// cannot be had is an error only when no later file has one either.
    pub fn credential(&self, registry: &str) -> Result<Option<DockerCredential>, CredentialError> {
        let mut failed = None;
        for f in &self.files {
            for server in servers(registry) {
                match docker_credential::get_credential_from_reader(f.bytes.as_slice(), server) {
                    Ok(c) => return Ok(Some(c)),
                    Err(CredentialRetrievalError::NoCredentialConfigured) => {}
                    Err(source) => {
                        failed.get_or_insert(CredentialError {
                            path: f.path.clone(),
                            source,
                        });
                    }
                }
            }
        }
        failed.map_or(Ok(None), Err)
    }
}

#[cfg(test)]
#[path = "auth_tests.rs"]
mod tests;
