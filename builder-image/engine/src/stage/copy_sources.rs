//! Which context files a COPY/ADD takes and where they land (Docker's rules): sources are
//! relative to the context and may be globs; a directory source copies its contents; several
//! sources need a destination ending in `/`; a relative destination is taken from WORKDIR.
//! Nothing outside the context is ever read: `..` and symlinks leading out are refused.

use std::fs;
use std::path::{Component, Path, PathBuf};

use crate::fs::glob::{self, has_glob};
use slipway_frontend::dockerignore::Matcher;
use slipway_frontend::gocompat::clean;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CopyError {
    #[error("{0}: forbidden path outside the build context")]
    OutsideContext(String),
    #[error("{0}: not found in the build context (or excluded by .dockerignore)")]
    NotFound(String),
    #[error(
        "when using COPY with more than one source file, the destination must be a directory and end with a /"
    )]
    DestNotDir,
    #[error("{0}: {1}")]
    Io(String, String),
}

/// One top-level item to copy: a context path (file, directory or symlink) and the absolute
/// path it takes in the image. For a directory, its contents go under `dest`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CopyItem {
    pub source: PathBuf,
    pub dest: String,
    pub is_dir: bool,
}

/// The context-relative, cleaned form of a source; `..` leaving the context is refused.
fn context_rel(src: &str) -> Result<String, CopyError> {
    let c = clean(&format!("/{src}"));
    let rel = c.trim_start_matches('/');
    // Refuse a source that climbs above the context at any point (`a/../../x` too).
    let mut depth = 0i32;
    for comp in Path::new(src).components() {
        match comp {
            Component::ParentDir => depth -= 1,
            Component::Normal(_) => depth += 1,
            _ => {}
        }
        if depth < 0 {
            return Err(CopyError::OutsideContext(src.to_string()));
        }
    }
    Ok(rel.to_string())
}

/// Resolves `rel` inside `context` through symlinks, refusing any that lead out.
fn resolve_in_context(context: &Path, rel: &str, shown: &str) -> Result<PathBuf, CopyError> {
    let base = fs::canonicalize(context)
        .map_err(|e| CopyError::Io(context.display().to_string(), e.to_string()))?;
    let p = base.join(rel);
    match fs::canonicalize(&p) {
        Ok(real) if real.starts_with(&base) => Ok(p),
        Ok(_) => Err(CopyError::OutsideContext(shown.to_string())),
        Err(_) => Err(CopyError::NotFound(shown.to_string())),
    }
}

/// Expands a glob pattern component by component against the context.
fn expand_glob(context: &Path, pattern: &str) -> Result<Vec<String>, CopyError> {
    let found = glob::expand(glob::Tree::Plain(context), pattern)
        .map_err(|_| CopyError::NotFound(pattern.to_string()))?;
    // Sources stay text here (a destination is built from the name); lossy, as before.
    Ok(found
        .iter()
        .map(|f| f.to_string_lossy().into_owned())
        .filter(|f| !f.is_empty())
        .collect())
}

/// The items of one COPY/ADD from the context.
pub fn plan_copy(
    context: &Path,
    sources: &[String],
    dest: &str,
    workdir: &str,
    ignore: &Matcher,
) -> Result<Vec<CopyItem>, CopyError> {
    let mut matched: Vec<(String, String)> = Vec::new(); // (as written, context-relative)
    for src in sources {
        let rel = context_rel(src)?;
        let candidates = if has_glob(&rel) {
            expand_glob(context, &rel)?
        } else {
            vec![rel.clone()]
        };
        let kept: Vec<String> = candidates
            .into_iter()
            .filter(|c| c.is_empty() || !ignore.matches_or_parent_matches(c))
            .collect();
        // A wildcard that matches nothing is no error when another source matches (BuildKit's
        // AllowEmptyWildcard: `COPY nothing* foo dst/` copies foo); a plain path must exist.
        if kept.is_empty() && !has_glob(&rel) {
            return Err(CopyError::NotFound(src.clone()));
        }
        matched.extend(kept.into_iter().map(|k| (src.clone(), k)));
    }
    if matched.is_empty() {
        return Err(CopyError::NotFound(sources.join(" ")));
    }
    let dest_is_dir = dest.ends_with('/') || dest == "." || dest.ends_with("/.");
    let dest_clean = crate::stage::config::in_image_path(workdir, dest);
    if matched.len() > 1 && !dest_is_dir {
        return Err(CopyError::DestNotDir);
    }
    let mut items = Vec::new();
    for (shown, rel) in matched {
        let source = resolve_in_context(context, &rel, &shown)?;
        let is_dir = fs::metadata(&source).map(|m| m.is_dir()).unwrap_or(false);
        let dest = if is_dir || !dest_is_dir {
            dest_clean.clone()
        } else {
            let name = Path::new(&rel)
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            clean(&format!("{dest_clean}/{name}"))
        };
        items.push(CopyItem {
            source,
            dest,
            is_dir,
        });
    }
    Ok(items)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx() -> tempfile::TempDir {
        let d = tempfile::tempdir().expect("tmp");
        let r = d.path();
        fs::create_dir_all(r.join("src/sub")).expect("mkdir");
        fs::write(r.join("src/a.go"), "a").expect("w");
        fs::write(r.join("src/b.go"), "b").expect("w");
        fs::write(r.join("src/sub/c.txt"), "c").expect("w");
        fs::write(r.join("README.md"), "r").expect("w");
        fs::write(r.join("secret.env"), "s").expect("w");
        std::os::unix::fs::symlink("/etc/passwd", r.join("escape")).expect("ln");
        std::os::unix::fs::symlink("src/a.go", r.join("inside")).expect("ln");
        d
    }

    fn plan(
        d: &tempfile::TempDir,
        srcs: &[&str],
        dest: &str,
        ignore: &[&str],
    ) -> Result<Vec<(String, String, bool)>, CopyError> {
        let m = Matcher::new(ignore).expect("patterns");
        let srcs: Vec<String> = srcs.iter().map(|s| s.to_string()).collect();
        let base = fs::canonicalize(d.path()).expect("canon");
        plan_copy(d.path(), &srcs, dest, "/app", &m).map(|v| {
            v.into_iter()
                .map(|i| {
                    let s = i
                        .source
                        .strip_prefix(&base)
                        .unwrap_or(&i.source)
                        .display()
                        .to_string();
                    (s, i.dest, i.is_dir)
                })
                .collect()
        })
    }

    #[test]
    fn destinations_follow_docker_rules() {
        let d = ctx();
        assert_eq!(
            plan(&d, &["README.md"], "/doc.md", &[]),
            Ok(vec![("README.md".into(), "/doc.md".into(), false)])
        );
        assert_eq!(
            plan(&d, &["README.md"], "docs/", &[]),
            Ok(vec![(
                "README.md".into(),
                "/app/docs/README.md".into(),
                false
            )])
        );
        assert_eq!(
            plan(&d, &["src"], ".", &[]),
            Ok(vec![("src".into(), "/app".into(), true)])
        );
        assert_eq!(
            plan(&d, &["src/*.go"], "/out/", &[]),
            Ok(vec![
                ("src/a.go".into(), "/out/a.go".into(), false),
                ("src/b.go".into(), "/out/b.go".into(), false)
            ])
        );
        assert_eq!(
            plan(&d, &["src/*.go"], "/out", &[]),
            Err(CopyError::DestNotDir)
        );
        assert_eq!(
            plan(&d, &["./inside"], "/x", &[]),
            Ok(vec![("inside".into(), "/x".into(), false)])
        );
    }

    #[test]
    fn dockerignore_and_missing_sources() {
        let d = ctx();
        assert_eq!(
            plan(&d, &["secret.env"], "/", &["*.env"]),
            Err(CopyError::NotFound("secret.env".into()))
        );
        assert_eq!(
            plan(&d, &["*"], "/all/", &["*.env", "src", "escape", "inside"]),
            Ok(vec![("README.md".into(), "/all/README.md".into(), false)])
        );
        assert_eq!(
            plan(&d, &["nope*"], "/", &[]),
            Err(CopyError::NotFound("nope*".into()))
        );
        // Beside a source that matches, an empty wildcard is skipped, as in BuildKit.
        assert_eq!(
            plan(&d, &["nope*", "README.md"], "/x/", &[]),
            Ok(vec![("README.md".into(), "/x/README.md".into(), false)])
        );
    }

    #[test]
    fn nothing_outside_the_context() {
        let d = ctx();
        assert_eq!(
            plan(&d, &["../etc/passwd"], "/", &[]),
            Err(CopyError::OutsideContext("../etc/passwd".into()))
        );
        assert_eq!(
            plan(&d, &["escape"], "/", &[]),
            Err(CopyError::OutsideContext("escape".into()))
        );
        assert!(plan(&d, &["src/../README.md"], "/r", &[]).is_ok());
        assert_eq!(
            plan(&d, &["src/../../x"], "/", &[]),
            Err(CopyError::OutsideContext("src/../../x".into()))
        );
    }
}
