//! A git source (gitoxide, in-process: the builder image has no git). The repository is
//! fetched bare, the revision (branch, tag or commit; default the remote's HEAD) resolved,
//! and its tree written out as the context ([`checkout`](super::checkout): never through a
//! symlink, size-capped). Submodules are not fetched. Credentials, when given, answer https
//! basic-auth challenges (a token goes in as the password), and only for the repository's
//! own host over https: never for another host a redirect leads to, never over plain http.
//! A URL with credentials in it is refused, and URLs are shown without user information.

use std::fs;
use std::path::Path;
use std::sync::atomic::AtomicBool;

use backon::BlockingRetryable;
use gix::credentials::protocol::Context;
use slipway_contract::pod::GIT_AUTH_KEYS;
use slipway_contract::size::Size;
use slipway_contract::url::{UrlError, check_git, redacted};

use crate::net::NoCaCertificates;
use crate::steps::checkout::{self, CheckoutError};

#[derive(Debug, Clone)]
pub struct GitSpec {
    pub url: String,
    pub revision: Option<String>,
    pub context_dir: Option<String>,
    /// (username, password or token)
    pub credentials: Option<(String, String)>,
    /// The most the checkout writes.
    pub limit: Size,
}

impl Default for GitSpec {
    fn default() -> Self {
        GitSpec {
            url: String::new(),
            revision: None,
            context_dir: None,
            credentials: None,
            limit: Size::DEFAULT_LIMIT,
        }
    }
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
    let [user, password, token] = GIT_AUTH_KEYS.map(read);
    match (user, password, token) {
        (u, Some(p), _) | (u, None, Some(p)) => Some((u.unwrap_or_else(|| "git".into()), p)),
        _ => None,
    }
}

/// Why a git source could not be checked out; every message names the repository (without
/// user information).
#[derive(Debug, thiserror::Error)]
pub enum GitError {
    #[error("git {0}")]
    Url(#[source] UrlError),
    #[error("git {url}: {source}")]
    Tls {
        url: String,
        #[source]
        source: NoCaCertificates,
    },
    /// Writing the tree out (a file's path, or the size limit).
    #[error("git {url}: {source}")]
    Checkout {
        url: String,
        #[source]
        source: CheckoutError,
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

/// `https` and `host[:port]` of a credential request, as git's credential protocol names
/// them (a default port left out).
fn origin(ctx: &Context) -> Option<(String, String)> {
    let mut ctx = ctx.clone();
    ctx.destructure_url_in_place(false).ok()?;
    Some((
        ctx.protocol?.to_ascii_lowercase(),
        ctx.host?.to_ascii_lowercase(),
    ))
}

/// Whether a credential request is one the secret of `configured` answers: https, to the
/// configured URL's own host and port. A redirect to another host, or down to http, gets
/// nothing.
pub fn answers(configured: &str, asked: &Context) -> bool {
    let mine = origin(&Context::from_url(configured, Default::default()));
    match (mine, origin(asked)) {
        (Some(mine), Some(asked)) => mine.0 == "https" && mine == asked,
        _ => false,
    }
}

/// Fetches `spec.url` into a bare repository at `bare` (made anew); the error says which
/// step (`clone`, `fetch`) failed.
fn fetch(spec: &GitSpec, bare: &Path) -> Result<gix::Repository, (&'static str, gix::Error)> {
    let _ = fs::remove_dir_all(bare);
    let mut prepare = gix::prepare_clone_bare(spec.url.as_str(), bare).map_err(|e| ("clone", e))?;
    if let Some((user, password)) = spec.credentials.clone() {
        let configured = spec.url.clone();
        prepare = prepare.configure_connection(move |conn| {
            let (user, password) = (user.clone(), password.clone());
            let configured = configured.clone();
            conn.set_credentials(move |action| match action {
                gix::credentials::helper::Action::Get(ctx) if answers(&configured, &ctx) => {
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

/// What a clone checked out.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Cloned {
    /// The revision's commit time in seconds (`sourceDateEpoch: git`), `None` for a revision
    /// that is no commit or a time before 1970.
    pub time: Option<u64>,
    /// The commit the revision names (a tag peeled to it), full hex; `None` for a revision
    /// that is no commit.
    pub commit: Option<String>,
}

/// Clones `spec.url` and writes the revision's tree into `dest` (made anew); returns the
/// revision's commit and its time.
pub fn clone(spec: &GitSpec, dest: &Path) -> Result<Cloned, GitError> {
    check_git(&spec.url, spec.credentials.is_some()).map_err(GitError::Url)?;
    let shown = redacted(&spec.url);
    let url: &str = &shown;
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
    let object = repo.find_object(id).map_err(step(url, "revision"))?;
    // The committer's time, as `git log -1 --format=%ct` (and BuildKit's
    // SOURCE_DATE_EPOCH=context) says it.
    let commit = object.clone().peel_to_commit().ok();
    let time = commit
        .as_ref()
        .and_then(|c| c.time().ok())
        .and_then(|t| u64::try_from(t.seconds).ok());
    let commit = commit.map(|c| c.id.to_string());
    let tree = object.peel_to_tree().map_err(step(url, "revision"))?.id;
    let _ = fs::remove_dir_all(dest);
    checkout::write_tree(&repo, tree, dest, spec.limit).map_err(|source| GitError::Checkout {
        url: url.to_string(),
        source,
    })?;
    let _ = fs::remove_dir_all(&bare);
    eprintln!("git {url}: checked out {id}");
    Ok(Cloned { time, commit })
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

    fn asking(url: &str) -> Context {
        Context::from_url(url, Default::default())
    }

    #[test]
    fn credentials_answer_only_their_own_https_host() {
        let mine = "https://git.example/team/r.git";
        assert!(answers(mine, &asking("https://git.example/team/r.git")));
        assert!(answers(mine, &asking("https://GIT.example:443/other.git")));
        // A redirect elsewhere, or down to plain http, gets nothing.
        assert!(!answers(mine, &asking("https://attacker.example/r.git")));
        assert!(!answers(mine, &asking("http://git.example/team/r.git")));
        assert!(!answers(
            mine,
            &asking("https://git.example:8443/team/r.git")
        ));
        assert!(!answers(mine, &Context::default()));
        // A secret configured for plain http answers nothing (validation refuses it first).
        let http = "http://git.example/r.git";
        assert!(!answers(http, &asking(http)));
    }

    #[test]
    fn a_url_with_credentials_is_refused_without_showing_them() {
        let dir = tempfile::tempdir().expect("tempdir");
        let spec = GitSpec {
            url: "https://bob:ghp_secret@git.example/r.git".into(),
            ..Default::default()
        };
        let e = clone(&spec, &dir.path().join("ctx")).expect_err("refused");
        let shown = e.to_string();
        assert!(
            !shown.contains("ghp_secret") && !shown.contains("bob"),
            "{shown}"
        );
        assert!(shown.starts_with("git https://***@git.example/r.git: credentials in the URL"));
        let spec = GitSpec {
            url: "http://git.example/r.git".into(),
            credentials: Some(("git".into(), "tok".into())),
            ..Default::default()
        };
        let e = clone(&spec, &dir.path().join("ctx")).expect_err("refused");
        assert_eq!(
            e.to_string(),
            "git http://git.example/r.git: credentials are only sent over https"
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
