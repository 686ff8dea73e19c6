//! A git source (gitoxide, in-process: the builder image has no git). The repository is
//! fetched bare, the revision (branch, tag or commit; default the remote's HEAD) resolved,
//! and its tree written out as the context. Submodules are not fetched. Credentials, when
//! given, answer https basic-auth challenges (a token goes in as the password).

use std::fs;
use std::path::Path;
use std::sync::atomic::AtomicBool;

use backon::BlockingRetryable;

use crate::net::NoCaCertificates;

#[derive(Debug, Clone, Default)]
pub struct GitSpec {
    pub url: String,
    pub revision: Option<String>,
    pub context_dir: Option<String>,
    /// (username, password or token)
    pub credentials: Option<(String, String)>,
}

/// The credentials in a folder of `username` and `password` (or `token`) files, as a mounted
/// Secret gives them; the user name defaults to `git`.
pub fn read_credentials(dir: &Path) -> Option<(String, String)> {
    let read = |f: &str| {
        fs::read_to_string(dir.join(f))
            .ok()
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
    };
    match (read("username"), read("password"), read("token")) {
        (u, Some(p), _) | (u, None, Some(p)) => Some((u.unwrap_or_else(|| "git".into()), p)),
        _ => None,
    }
}

/// Why a git source could not be checked out; every message names the repository.
#[derive(Debug, thiserror::Error)]
pub enum GitError {
    #[error("git {url}: {source}")]
    Tls {
        url: String,
        #[source]
        source: NoCaCertificates,
    },
    /// A step (`clone`, `fetch`, `HEAD`, `revision`, `tree`, `checkout`, or a file's path).
    #[error("git {url}: {step}: {source}")]
    Step {
        url: String,
        step: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("git {url}: revision: {revision:?} not found")]
    RevisionNotFound { url: String, revision: String },
}

/// A fetch failure worth another try: gix's own classification (connection errors, server
/// errors, timeouts), and HTTP 429 (too many requests), which gix leaves unclassified.
fn transient(e: &gix::Error) -> bool {
    e.can_retry_lenient()
        || e.iter_errors().any(|e| {
            e.downcast_ref::<reqwest::Error>()
                .is_some_and(crate::net::retry::transient_reqwest)
        })
}

/// A step's error: `git URL: STEP: error`.
fn step<'a, E>(url: &'a str, step: &'a str) -> impl FnOnce(E) -> GitError + 'a
where
    E: Into<Box<dyn std::error::Error + Send + Sync>> + 'a,
{
    move |e| GitError::Step {
        url: url.to_string(),
        step: step.to_string(),
        source: e.into(),
    }
}

/// Fetches `spec.url` into a bare repository at `bare` (made anew); the error says which
/// step (`clone`, `fetch`) failed.
fn fetch(spec: &GitSpec, bare: &Path) -> Result<gix::Repository, (&'static str, gix::Error)> {
    let _ = fs::remove_dir_all(bare);
    let mut prepare = gix::prepare_clone_bare(spec.url.as_str(), bare).map_err(|e| ("clone", e))?;
    if let Some((user, password)) = spec.credentials.clone() {
        prepare = prepare.configure_connection(move |conn| {
            let (user, password) = (user.clone(), password.clone());
            conn.set_credentials(move |action| match action {
                gix::credentials::helper::Action::Get(ctx) => {
                    Ok(Some(gix::credentials::protocol::Outcome {
                        identity: gix::sec::identity::Account {
                            username: user.clone(),
                            password: password.clone(),
                            oauth_refresh_token: None,
                        },
                        next: ctx.into(),
                    }))
                }
                _ => Ok(None),
            });
            Ok(())
        });
    }
    let (repo, _) = prepare
        .fetch_only(gix::progress::Discard, &AtomicBool::new(false))
        .map_err(|e| ("fetch", e))?;
    Ok(repo)
}

/// Clones `spec.url` and writes the revision's tree into `dest`.
pub fn clone(spec: &GitSpec, dest: &Path) -> Result<(), GitError> {
    let url = spec.url.as_str();
    crate::net::ensure_crypto_provider();
    if url.starts_with("http") {
        crate::net::check_ca_certificates().map_err(|source| GitError::Tls {
            url: url.to_string(),
            source,
        })?;
    }
    let bare = dest.with_extension("git");
    let repo = (|| fetch(spec, &bare))
        .retry(crate::net::retry::policy())
        .when(|(_, e)| transient(e))
        .notify(|(what, e), d| {
            crate::net::retry::notice(&format_args!("git {url}: {what}: {e}"), d)
        })
        .call()
        .map_err(|(what, e)| step(url, what)(e))?;
    let id = match spec.revision.as_deref().filter(|r| !r.is_empty()) {
        None => repo.head_id().map_err(step(url, "HEAD"))?.detach(),
        Some(rev) => match gix::ObjectId::from_hex(rev.as_bytes()) {
            Ok(id) => id,
            Err(_) => [
                format!("refs/heads/{rev}"),
                format!("refs/tags/{rev}"),
                format!("refs/remotes/origin/{rev}"),
                rev.to_string(),
            ]
            .iter()
            .find_map(|name| {
                let mut r = repo.try_find_reference(name.as_str()).ok().flatten()?;
                r.peel_to_id().ok().map(|id| id.detach())
            })
            .ok_or_else(|| GitError::RevisionNotFound {
                url: url.to_string(),
                revision: rev.to_string(),
            })?,
        },
    };
    let tree = repo
        .find_object(id)
        .map_err(step(url, "revision"))?
        .peel_to_tree()
        .map_err(step(url, "revision"))?;
    let mut recorder = gix::traverse::tree::Recorder::default();
    tree.traverse()
        .breadthfirst(&mut recorder)
        .map_err(step(url, "tree"))?;
    fs::create_dir_all(dest).map_err(step(url, "checkout"))?;
    for entry in recorder.records {
        let rel = entry.filepath.to_string();
        let path = crate::steps::source::inside(dest, &rel).map_err(step(url, "checkout"))?;
        let mode = entry.mode;
        if mode.is_tree() {
            fs::create_dir_all(&path).map_err(step(url, &rel))?;
            continue;
        }
        if mode.is_commit() {
            continue; // a submodule
        }
        let data = repo
            .find_object(entry.oid)
            .map_err(step(url, &rel))?
            .detach()
            .data;
        if let Some(d) = path.parent() {
            fs::create_dir_all(d).map_err(step(url, &rel))?;
        }
        if mode.is_link() {
            let target = String::from_utf8_lossy(&data).into_owned();
            std::os::unix::fs::symlink(target, &path).map_err(step(url, &rel))?;
        } else {
            fs::write(&path, &data).map_err(step(url, &rel))?;
            let perm = if mode.is_executable() { 0o755 } else { 0o644 };
            use std::os::unix::fs::PermissionsExt;
            fs::set_permissions(&path, fs::Permissions::from_mode(perm))
                .map_err(step(url, &rel))?;
        }
    }
    let _ = fs::remove_dir_all(&bare);
    eprintln!("git {}: checked out {id}", spec.url);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_the_repository() {
        let url = "https://git.example/r.git".to_string();
        let e = GitError::RevisionNotFound {
            url: url.clone(),
            revision: "v9".into(),
        };
        assert_eq!(
            e.to_string(),
            r#"git https://git.example/r.git: revision: "v9" not found"#
        );
        let e = GitError::Step {
            url,
            step: "checkout".into(),
            source: Box::new(std::io::Error::other("disk full")),
        };
        assert_eq!(
            e.to_string(),
            "git https://git.example/r.git: checkout: disk full"
        );
    }

    #[test]
    fn a_missing_local_repository_is_not_retried() {
        let dir = tempfile::tempdir().expect("tempdir");
        let spec = GitSpec {
            url: dir.path().join("nothing-here").display().to_string(),
            ..Default::default()
        };
        let (what, e) = fetch(&spec, &dir.path().join("bare.git")).expect_err("no repository");
        assert_eq!(what, "fetch");
        assert!(!transient(&e), "{e:?}");
    }

    /// What an HTTP git server answering `status` makes of a fetch.
    fn fetch_answered(status: &str) -> bool {
        let (base, _) =
            crate::net::test_server::serve(vec![crate::net::test_server::response(status, "", "")]);
        let dir = tempfile::tempdir().expect("tempdir");
        let spec = GitSpec {
            url: format!("{base}/repo.git"),
            ..Default::default()
        };
        let (what, e) = fetch(&spec, &dir.path().join("bare.git")).expect_err("refused");
        assert_eq!(what, "fetch");
        transient(&e)
    }

    #[test]
    fn server_errors_and_rate_limits_are_transient_refusals_are_not() {
        assert!(fetch_answered("503 Service Unavailable"));
        assert!(fetch_answered("429 Too Many Requests"));
        assert!(!fetch_answered("404 Not Found"));
        assert!(!fetch_answered("403 Forbidden"));
    }
}
