//! A git source (gitoxide, in-process: the builder image has no git). The repository is
//! fetched bare, the revision (branch, tag or commit; default the remote's HEAD) resolved,
//! and its tree written out as the context. Submodules are not fetched. Credentials, when
//! given, answer https basic-auth challenges (a token goes in as the password).

use std::fs;
use std::path::Path;
use std::sync::atomic::AtomicBool;

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

/// Clones `spec.url` and writes the revision's tree into `dest`.
pub fn clone(spec: &GitSpec, dest: &Path) -> Result<(), String> {
    let err = |what: &str, e: &dyn std::fmt::Display| format!("git {}: {what}: {e}", spec.url);
    crate::net::ensure_crypto_provider();
    if spec.url.starts_with("http") {
        crate::net::check_ca_certificates().map_err(|e| format!("git {}: {e}", spec.url))?;
    }
    let bare = dest.with_extension("git");
    let _ = fs::remove_dir_all(&bare);
    let mut prepare =
        gix::prepare_clone_bare(spec.url.as_str(), &bare).map_err(|e| err("clone", &e))?;
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
        .map_err(|e| err("fetch", &e))?;
    let id = match spec.revision.as_deref().filter(|r| !r.is_empty()) {
        None => repo.head_id().map_err(|e| err("HEAD", &e))?.detach(),
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
            .ok_or_else(|| err("revision", &format!("{rev:?} not found")))?,
        },
    };
    let tree = repo
        .find_object(id)
        .map_err(|e| err("revision", &e))?
        .peel_to_tree()
        .map_err(|e| err("revision", &e))?;
    let mut recorder = gix::traverse::tree::Recorder::default();
    tree.traverse()
        .breadthfirst(&mut recorder)
        .map_err(|e| err("tree", &e))?;
    fs::create_dir_all(dest).map_err(|e| err("checkout", &e))?;
    for entry in recorder.records {
        let rel = entry.filepath.to_string();
        let path = crate::steps::source::inside(dest, &rel).map_err(|e| err("checkout", &e))?;
        let mode = entry.mode;
        if mode.is_tree() {
            fs::create_dir_all(&path).map_err(|e| err(&rel, &e))?;
            continue;
        }
        if mode.is_commit() {
            continue; // a submodule
        }
        let data = repo
            .find_object(entry.oid)
            .map_err(|e| err(&rel, &e))?
            .detach()
            .data;
        if let Some(d) = path.parent() {
            fs::create_dir_all(d).map_err(|e| err(&rel, &e))?;
        }
        if mode.is_link() {
            let target = String::from_utf8_lossy(&data).into_owned();
            std::os::unix::fs::symlink(target, &path).map_err(|e| err(&rel, &e))?;
        } else {
            fs::write(&path, &data).map_err(|e| err(&rel, &e))?;
            let perm = if mode.is_executable() { 0o755 } else { 0o644 };
            use std::os::unix::fs::PermissionsExt;
            fs::set_permissions(&path, fs::Permissions::from_mode(perm))
                .map_err(|e| err(&rel, &e))?;
        }
    }
    let _ = fs::remove_dir_all(&bare);
    eprintln!("git {}: checked out {id}", spec.url);
    Ok(())
}
