//! Fetching a cluster build's context into the workspace: inline files (from the
//! ImageBuild itself), a tar or tar.gz (a ConfigMap mounted into the prepare pod), an https
//! tarball checked against its sha256, or a git repository.

use std::fs;
use std::io::{self, Read};
use std::path::{Component, Path, PathBuf};

use slipway_contract::pod::Inline;

use crate::fs::{PathError, at};
use crate::net::DownloadError;

/// A path that would leave the context.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?}: not a relative path inside the context")]
pub struct OutsideError(pub String);

/// Why the context could not be written.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("inline file {0}")]
    InlinePath(#[source] OutsideError),
    #[error(transparent)]
    Io(#[from] PathError),
    /// The archive (`shown`: how the user names it) could not be read.
    #[error("{shown}: {source}")]
    Archive {
        shown: String,
        #[source]
        source: io::Error,
    },
    #[error("{shown}: not a tar archive (plain, gzip, bzip2 or xz)")]
    NotATar { shown: String },
    #[error("{shown}: {name}: {source}")]
    Entry {
        shown: String,
        name: String,
        #[source]
        source: io::Error,
    },
    #[error("{shown}: {name}: entry would land outside the context")]
    EntryOutside { shown: String, name: String },
    #[error(transparent)]
    Download(#[from] DownloadError),
}

/// A relative path that stays inside its directory (no `..`, not absolute).
pub fn inside(dir: &Path, rel: &str) -> Result<PathBuf, OutsideError> {
    let p = Path::new(rel);
    if rel.is_empty()
        || p.components()
            .any(|c| !matches!(c, Component::Normal(_) | Component::CurDir))
    {
        return Err(OutsideError(rel.to_string()));
    }
    Ok(dir.join(p))
}

/// Writes inline files, and the Dockerfile at `dockerfile_path`, into `context`.
pub fn write_inline(
    inline: &Inline,
    dockerfile_path: &str,
    context: &Path,
) -> Result<(), SourceError> {
    let files = inline
        .files
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .chain([(dockerfile_path, inline.dockerfile.as_str())]);
    for (rel, text) in files {
        let path = inside(context, rel).map_err(SourceError::InlinePath)?;
        if let Some(d) = path.parent() {
            fs::create_dir_all(d).map_err(at(d))?;
        }
        fs::write(&path, text).map_err(at(&path))?;
    }
    Ok(())
}

/// Unpacks a tar (plain, gzip, bzip2 or xz) into `context`. Entries that would land outside
/// it are refused by the tar reader; owners are not kept (context files are 0:0).
pub fn unpack_tar(archive: &Path, shown: &str, context: &Path) -> Result<(), SourceError> {
    let stream = crate::fs::archive::open_tar(archive)
        .map_err(|source| SourceError::Archive {
            shown: shown.to_string(),
            source,
        })?
        .ok_or_else(|| SourceError::NotATar {
            shown: shown.to_string(),
        })?;
    unpack_stream(stream, shown, context)
}

fn unpack_stream(stream: Box<dyn Read>, shown: &str, context: &Path) -> Result<(), SourceError> {
    let archive = |source| SourceError::Archive {
        shown: shown.to_string(),
        source,
    };
    let mut t = tar::Archive::new(stream);
    t.set_preserve_permissions(true);
    t.set_preserve_ownerships(false);
    t.set_overwrite(true);
    let entries = t.entries().map_err(archive)?;
    for entry in entries {
        let mut entry = entry.map_err(archive)?;
        let name = entry
            .path()
            .map(|p| p.display().to_string())
            .unwrap_or_default();
        let ok = entry
            .unpack_in(context)
            .map_err(|source| SourceError::Entry {
                shown: shown.to_string(),
                name: name.clone(),
                source,
            })?;
        if !ok {
            return Err(SourceError::EntryOutside {
                shown: shown.to_string(),
                name,
            });
        }
    }
    Ok(())
}

/// Downloads an https tarball (streamed to a file beside the context, never held in
/// memory), checks its sha256 when given, and unpacks it into `context`.
pub fn fetch_tarball(url: &str, sha256: Option<&str>, context: &Path) -> Result<(), SourceError> {
    let checksum = sha256.map(|h| {
        if h.starts_with("sha256:") {
            h.to_string()
        } else {
            format!("sha256:{h}")
        }
    });
    let tmp = context.with_extension("download");
    let r = crate::net::download_to(url, checksum.as_deref(), &tmp)
        .map_err(SourceError::from)
        .and_then(|_| unpack_tar(&tmp, url, context));
    let _ = fs::remove_file(&tmp);
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inline_paths_stay_inside_the_context() {
        let dir = std::env::temp_dir().join(format!("slipway-inline-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).expect("dir");
        let mut i = Inline {
            dockerfile: "FROM scratch\n".into(),
            ..Default::default()
        };
        i.files
            .insert("src/main.go".into(), "package main\n".into());
        write_inline(&i, "build/Dockerfile", &dir).expect("writes");
        assert_eq!(
            fs::read_to_string(dir.join("src/main.go")).expect("file"),
            "package main\n"
        );
        assert!(dir.join("build/Dockerfile").is_file());
        i.files.insert("../escape".into(), "x".into());
        let e = write_inline(&i, "Dockerfile", &dir).expect_err("refused");
        assert_eq!(
            e.to_string(),
            r#"inline file "../escape": not a relative path inside the context"#
        );
        assert!(inside(&dir, "/etc/passwd").is_err());
        let _ = fs::remove_dir_all(&dir);
    }
}
