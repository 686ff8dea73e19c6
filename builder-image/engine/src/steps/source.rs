//! Fetching a cluster build's context into the workspace: inline files (from the
//! ImageBuild itself), a tar or tar.gz (a ConfigMap mounted into the prepare pod), an https
//! tarball checked against its sha256, an OCI artifact pinned by digest
//! ([`crate::registry::context`]), or a git repository. What an archive unpacks to is
//! counted as it is read: past the size limit (`--size-limit`) the unpacking stops with one
//! error, so a decompression bomb in a ConfigMap or a tarball ends there.

use std::cell::Cell;
use std::fs;
use std::io::{self, Read};
use std::os::unix::fs::PermissionsExt;
use std::path::{Component, Path, PathBuf};
use std::rc::Rc;

use slipway_contract::pod::Inline;
use slipway_contract::size::Size;
use slipway_contract::url::{UrlError, check_tarball, redacted};

use crate::fs::archive::OverLimit;
use crate::fs::{PathError, at};
use crate::net::{DownloadError, RuntimeError};
use crate::registry::client::{Registry, RegistryError, SetupError};

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
    /// The archive unpacks to more than the size limit.
    #[error("{shown}: unpacks to more than the size limit of {limit}")]
    TooLarge { shown: String, limit: Size },
    #[error(transparent)]
    Download(#[from] DownloadError),
    /// The tarball's URL is not https, or has credentials in it.
    #[error("tarball {0}")]
    Url(#[source] UrlError),
    /// The OCI artifact could not be pulled, or is not the one pinned.
    #[error(transparent)]
    Registry(#[from] RegistryError),
    #[error(transparent)]
    Setup(#[from] SetupError),
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
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

/// A reader that fails once more than `left` bytes came through, and says so in `tripped`.
struct Counted<R> {
    inner: R,
    left: u64,
    tripped: Rc<Cell<bool>>,
}

impl<R: Read> Read for Counted<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if n as u64 > self.left {
            self.tripped.set(true);
            return Err(io::Error::other(OverLimit));
        }
        self.left -= n as u64;
        Ok(n)
    }
}

/// Unpacks a tar (plain, gzip, bzip2 or xz) into `context`, at most `limit` bytes of tar
/// stream. Entries that would land outside it are refused by the tar reader; owners are not
/// kept (context files belong to whoever unpacks).
pub fn unpack_tar(
    archive: &Path,
    shown: &str,
    context: &Path,
    limit: Size,
) -> Result<(), SourceError> {
    let too_large = || SourceError::TooLarge {
        shown: shown.to_string(),
        limit,
    };
    let stream = crate::fs::archive::open_tar_limited(archive, limit.bytes())
        .map_err(|source| match source.get_ref() {
            Some(e) if e.is::<OverLimit>() => too_large(),
            _ => SourceError::Archive {
                shown: shown.to_string(),
                source,
            },
        })?
        .ok_or_else(|| SourceError::NotATar {
            shown: shown.to_string(),
        })?;
    let tripped = Rc::new(Cell::new(false));
    let counted = Counted {
        inner: stream,
        left: limit.bytes(),
        tripped: tripped.clone(),
    };
    unpack_stream(Box::new(counted), shown, context)
        .map_err(|e| if tripped.get() { too_large() } else { e })
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
    // A directory's own mode is set once everything is in it (as tar's `unpack` does): the
    // fetch step is not root, and a read-only directory would refuse its own entries.
    let mut dir_modes: Vec<(PathBuf, u32)> = Vec::new();
    let entries = t.entries().map_err(archive)?;
    for entry in entries {
        let mut entry = entry.map_err(archive)?;
        let name = entry
            .path()
            .map(|p| p.display().to_string())
            .unwrap_or_default();
        let entry_error = |source| SourceError::Entry {
            shown: shown.to_string(),
            name: name.clone(),
            source,
        };
        let dir_mode = entry
            .header()
            .entry_type()
            .is_dir()
            .then(|| entry.header().mode().unwrap_or(0o755));
        let ok = entry.unpack_in(context).map_err(entry_error)?;
        if !ok {
            return Err(SourceError::EntryOutside {
                shown: shown.to_string(),
                name,
            });
        }
        if let (Some(mode), Ok(rel)) = (dir_mode, entry.path()) {
            let dir: PathBuf = rel
                .components()
                .filter(|c| matches!(c, Component::Normal(_)))
                .collect();
            if dir.as_os_str().is_empty() {
                continue; // `./`: the context itself, which tar leaves as it is
            }
            let path = context.join(dir);
            fs::set_permissions(&path, fs::Permissions::from_mode(mode | 0o700))
                .map_err(entry_error)?;
            dir_modes.push((path, mode));
        }
    }
    for (path, mode) in dir_modes.into_iter().rev() {
        fs::set_permissions(&path, fs::Permissions::from_mode(mode)).map_err(at(&path))?;
    }
    Ok(())
}

/// Downloads an https tarball (streamed to a file beside the context, never held in
/// memory), checks its sha256 when given, and unpacks it into `context`; at most `limit`
/// bytes downloaded, and as many unpacked.
pub fn fetch_tarball(
    url: &str,
    sha256: Option<&str>,
    context: &Path,
    limit: Size,
) -> Result<(), SourceError> {
    check_tarball(url).map_err(SourceError::Url)?;
    let checksum = sha256.map(|h| {
        if h.starts_with("sha256:") {
            h.to_string()
        } else {
            format!("sha256:{h}")
        }
    });
    let tmp = context.with_extension("download");
    let r = crate::net::download_to(url, checksum.as_deref(), &tmp, limit)
        .map_err(SourceError::from)
        .and_then(|_| unpack_tar(&tmp, &redacted(url), context, limit));
    let _ = fs::remove_file(&tmp);
    r
}

/// Pulls the OCI artifact `image@digest` (streamed to a file beside the context, its manifest
/// and layer checked: [`Registry::pull_context`]) with the pod's pull credentials, and unpacks
/// its layer into `context` with the same checks as any archive; at most `limit` bytes pulled,
/// and as many unpacked.
pub fn fetch_oci(
    image: &str,
    digest: &str,
    insecure: &[String],
    context: &Path,
    limit: Size,
) -> Result<(), SourceError> {
    let tmp = context.with_extension("download");
    let registry = Registry::new(insecure, &context.with_extension("blobs"))?;
    let r = crate::net::block_on(registry.pull_context(image, digest, &tmp, limit))
        .map_err(SourceError::from)
        .and_then(|r| r.map_err(SourceError::from))
        .and_then(|_| unpack_tar(&tmp, &format!("oci {image}@{digest}"), context, limit));
    let _ = fs::remove_file(&tmp);
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A tar of one file of `size` zero bytes, and a read-only folder with a file in it.
    fn tar_of_zeros(size: usize) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        h.set_size(size as u64);
        h.set_mode(0o644);
        h.set_cksum();
        b.append_data(&mut h, "zeros", io::repeat(0).take(size as u64))
            .expect("append");
        let mut d = tar::Header::new_gnu();
        d.set_entry_type(tar::EntryType::Directory);
        d.set_size(0);
        d.set_mode(0o555);
        d.set_cksum();
        b.append_data(&mut d, "ro/", io::empty()).expect("dir");
        // The archive's own root, as `tar -C dir .` writes it: the context keeps its mode.
        let mut root = d.clone();
        root.set_mode(0o700);
        root.set_cksum();
        b.append_data(&mut root, "./", io::empty()).expect("root");
        let mut f = tar::Header::new_gnu();
        f.set_size(2);
        f.set_mode(0o444);
        f.set_cksum();
        b.append_data(&mut f, "ro/file", &b"hi"[..]).expect("file");
        b.into_inner().expect("tar")
    }

    fn gzip(data: &[u8]) -> Vec<u8> {
        use std::io::Write;
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        e.write_all(data).expect("gzip");
        e.finish().expect("gzip")
    }

    /// With the `xz` or `bzip2` tool (lzma-rs only stores; bzip2's encoder is the C one).
    fn compressed_by(tool: &str, data: &[u8]) -> Vec<u8> {
        use std::io::Write;
        use std::process::{Command, Stdio};
        let mut c = Command::new(tool)
            .arg("-c")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("the compressor runs");
        let mut stdin = c.stdin.take().expect("stdin");
        let data = data.to_vec();
        let writer = std::thread::spawn(move || stdin.write_all(&data));
        let out = c.wait_with_output().expect("compressed");
        writer.join().expect("writer").expect("written");
        out.stdout
    }

    #[test]
    fn a_decompression_bomb_ends_at_the_size_limit() {
        let dir = tempfile::tempdir().expect("tempdir");
        let tar = tar_of_zeros(4 << 20);
        for (name, bytes) in [
            ("bomb.tar.gz", gzip(&tar)),
            ("bomb.tar.xz", compressed_by("xz", &tar)),
            ("bomb.tar.bz2", compressed_by("bzip2", &tar)),
        ] {
            assert!(bytes.len() < 64 << 10, "{name} is small: {}", bytes.len());
            let archive = dir.path().join(name);
            fs::write(&archive, &bytes).expect("write");
            let ctx = dir.path().join(format!("ctx-{name}"));
            fs::create_dir_all(&ctx).expect("mkdir");
            let e = unpack_tar(&archive, "configMap web: key context", &ctx, Size(1 << 20))
                .expect_err("over the limit");
            assert_eq!(
                e.to_string(),
                "configMap web: key context: unpacks to more than the size limit of 1Mi"
            );
            // Under a limit that fits, the same archive unpacks, read-only folder and all.
            let ok = dir.path().join(format!("ok-{name}"));
            fs::create_dir_all(&ok).expect("mkdir");
            let before = fs::metadata(&ok).expect("ctx").permissions().mode();
            unpack_tar(&archive, "c", &ok, Size(8 << 20)).expect("fits");
            assert_eq!(fs::read(ok.join("ro/file")).expect("file"), b"hi");
            let mode = fs::metadata(ok.join("ro"))
                .expect("dir")
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o555);
            let after = fs::metadata(&ok).expect("ctx").permissions().mode();
            assert_eq!(after, before, "the context's own mode is kept");
        }
    }

    #[test]
    fn a_tarball_is_https_without_credentials() {
        let dir = tempfile::tempdir().expect("tempdir");
        let e = fetch_tarball("http://h/c.tgz", None, dir.path(), Size::DEFAULT_LIMIT)
            .expect_err("http");
        assert_eq!(
            e.to_string(),
            "tarball http://h/c.tgz: expected an https URL"
        );
        let e = fetch_tarball(
            "https://u:tok@h/c.tgz",
            None,
            dir.path(),
            Size::DEFAULT_LIMIT,
        )
        .expect_err("credentials");
        assert!(!e.to_string().contains("tok"), "{e}");
    }

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
