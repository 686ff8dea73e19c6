//! Registry credentials from the Docker config file (`$DOCKER_CONFIG/config.json`, else
//! `~/.docker/config.json`), as `docker login`, kaniko and Kubernetes dockerconfigjson secrets
//! write it: `auths.<registry>.auth` (base64 `user:password`) or `username`/`password`.
//! Credential helpers are not run.

use std::collections::BTreeMap;
use std::path::PathBuf;

use base64::Engine;
use serde::Deserialize;

/// A directory of more Docker config files (mounted Secrets), read after `DOCKER_CONFIG`.
pub const AUTH_DIR_ENV: &str = "SLIPWAY_AUTH_DIR";

#[derive(Debug, Default, Deserialize)]
pub struct DockerConfig {
    #[serde(default)]
    auths: BTreeMap<String, AuthEntry>,
}

#[derive(Debug, Default, Deserialize)]
struct AuthEntry {
    #[serde(default)]
    auth: String,
    #[serde(default)]
    username: String,
    #[serde(default)]
    password: String,
}

/// `https://index.docker.io/v1/`, `http://host:5000`, `host:5000/` all name a registry host.
fn host_of(key: &str) -> String {
    let k = key
        .trim_start_matches("https://")
        .trim_start_matches("http://");
    let host = k.split('/').next().unwrap_or(k);
    match host {
        "index.docker.io" | "registry-1.docker.io" | "docker.io" => "docker.io".into(),
        h => h.to_string(),
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
    /// `$SLIPWAY_AUTH_DIR` (the dockerconfigjson Secrets a build pod mounts), first one wins.
    pub fn load() -> Result<Self, String> {
        let mut files: Vec<PathBuf> = Self::path().into_iter().collect();
        if let Some(dir) = std::env::var_os(AUTH_DIR_ENV) {
            let mut more: Vec<PathBuf> = std::fs::read_dir(&dir)
                .map(|rd| {
                    rd.filter_map(|e| e.ok().map(|e| e.path()))
                        .filter(|p| p.extension().is_some_and(|x| x == "json"))
                        .collect()
                })
                .unwrap_or_default();
            more.sort();
            files.extend(more);
        }
        let mut out = Self::default();
        for p in files {
            let Ok(b) = std::fs::read(&p) else { continue };
            let c = Self::parse(&b).map_err(|e| format!("{}: {e}", p.display()))?;
            for (k, v) in c.auths {
                out.auths.entry(k).or_insert(v);
            }
        }
        Ok(out)
    }

    pub fn parse(bytes: &[u8]) -> Result<Self, String> {
        serde_json::from_slice(bytes).map_err(|e| e.to_string())
    }

    /// (user, password) for a registry host.
    pub fn credentials(&self, registry: &str) -> Option<(String, String)> {
        let want = host_of(registry);
        let e = self
            .auths
            .iter()
            .find(|(k, _)| host_of(k) == want)
            .map(|(_, e)| e)?;
        if !e.auth.is_empty() {
            let raw = base64::engine::general_purpose::STANDARD
                .decode(e.auth.trim())
                .ok()?;
            let text = String::from_utf8(raw).ok()?;
            let (u, p) = text.split_once(':')?;
            return Some((u.to_string(), p.to_string()));
        }
        (!e.username.is_empty()).then(|| (e.username.clone(), e.password.clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_by_registry_host() {
        let c = DockerConfig::parse(
            br#"{"auths": {
                "https://index.docker.io/v1/": {"auth": "dXNlcjpwYXNz"},
                "127.0.0.1:5000": {"username": "ci", "password": "s3cret"},
                "http://reg.example:443/": {"auth": "YTpiOmM="}
            }, "credsStore": "desktop"}"#,
        )
        .expect("parse");
        assert_eq!(
            c.credentials("docker.io"),
            Some(("user".into(), "pass".into()))
        );
        assert_eq!(
            c.credentials("127.0.0.1:5000"),
            Some(("ci".into(), "s3cret".into()))
        );
        assert_eq!(
            c.credentials("reg.example:443"),
            Some(("a".into(), "b:c".into()))
        );
        assert_eq!(c.credentials("quay.io"), None);
    }
}
