//! Packing a build context: the directory as a gzip tar, without what `.dockerignore` (or
//! `<Dockerfile>.dockerignore`, which wins) excludes, with the rules `docker build` sends a
//! context by (slipway-frontend's matcher, moby/patternmatcher's). The Dockerfile and the
//! ignore file are always sent, as Docker does: the build reads them, and its COPY applies
//! the same ignore file again. Entries are sorted, owned 0:0 without names, with their own
//! modes and modification times; symlinks stay symlinks; sockets, FIFOs and devices are left
//! out. The archive is cut off as soon as it grows past the limit the upload can take.

use std::fs;
use std::io;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use flate2::Compression;
use flate2::write::GzEncoder;
use slipway_frontend::dockerignore::{self, IgnoreError, Matcher, ParentMatches};

use crate::spool::Spool;

/// Why a context could not be packed.
#[derive(Debug, thiserror::Error)]
pub enum PackError {
    #[error("{0}: not a directory")]
    NotADirectory(PathBuf),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{0}: no Dockerfile there (name one with -f)")]
    NoDockerfile(PathBuf),
    #[error("{dockerfile}: the Dockerfile must be inside the context {context}")]
    DockerfileOutside {
        dockerfile: PathBuf,
        context: PathBuf,
    },
    #[error("{file}: {source}")]
    Ignore {
        file: PathBuf,
        #[source]
        source: IgnoreError,
    },
    #[error("{0}: a file name that is not UTF-8 (the context's paths must be)")]
    NotUtf8(PathBuf),
    /// The archive grew past `limit` bytes; `largest` are the biggest top-level entries.
    #[error(
        "the packed context is {} after {files} files, over the {} {holder}; leave out \
         what the build does not need with .dockerignore{}, or build from a git or tarball \
         source",
        human(*.size),
        human(*.limit),
        largest_hint(largest)
    )]
    TooLarge {
        size: u64,
        limit: u64,
        /// What takes the context, and holds no more than `limit`.
        holder: &'static str,
        files: usize,
        largest: Vec<(String, u64)>,
    },
}

fn largest_hint(largest: &[(String, u64)]) -> String {
    if largest.is_empty() {
        return String::new();
    }
    let list: Vec<String> = largest
        .iter()
        .map(|(p, n)| format!("{p} {}", human(*n)))
        .collect();
    format!(" (largest: {})", list.join(", "))
}

/// Bytes as people read them: `512 B`, `3.2 KiB`, `1.0 MiB`.
pub fn human(n: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut v = n as f64 / 1024.0;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    format!("{v:.1} {}", UNITS[u])
}

/// A packed context.
#[derive(Debug)]
pub struct Packed {
    /// The gzip tar, in a temporary file.
    pub archive: Spool,
    /// The Dockerfile's path in the context, `/`-separated.
    pub dockerfile: String,
    /// Entries written (files, directories, symlinks) and left out.
    pub entries: usize,
    pub excluded: usize,
    /// Bytes of file content before compression.
    pub content_bytes: u64,
}

/// What one entry of the context becomes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Include,
    /// Left out; a directory is still walked when an exception (`!pattern`) may take a
    /// path below it back in.
    Exclude {
        descend: bool,
    },
}

/// The ignore rules of one context: which entries go, and which always stay.
#[derive(Debug, Default)]
pub struct Selector {
    matcher: Matcher,
    has_exceptions: bool,
    always: Vec<String>,
}

impl Selector {
    /// `patterns` as the ignore file reads (`read_patterns`); `always` are paths sent
    /// whatever the patterns say (the Dockerfile and the ignore file).
    pub fn new(patterns: &[String], always: Vec<String>) -> Result<Selector, IgnoreError> {
        Ok(Selector {
            matcher: Matcher::new(patterns)?,
            has_exceptions: patterns.iter().any(|p| p.starts_with('!')),
            always,
        })
    }

    /// The decision for `rel` (relative, `/`-separated) given its parent directory's
    /// per-pattern results; returns its own results for its entries.
    pub fn decide(
        &self,
        rel: &str,
        is_dir: bool,
        parent: &ParentMatches,
    ) -> (Decision, ParentMatches) {
        let (excluded, info) = self.matcher.matches_using_parent_results(rel, parent);
        let kept = !excluded
            || self.always.iter().any(|a| a == rel)
            || (is_dir
                && self
                    .always
                    .iter()
                    .any(|a| a.starts_with(&format!("{rel}/"))));
        let d = if kept {
            Decision::Include
        } else {
            Decision::Exclude {
                descend: is_dir && self.has_exceptions,
            }
        };
        (d, info)
    }
}

/// Packs `dir` (the Dockerfile: `dockerfile`, relative to the working directory, else
/// `dir/Dockerfile`), stopping with [`PackError::TooLarge`] past `limit` compressed bytes,
/// the most `holder` holds.
pub fn pack(
    dir: &Path,
    dockerfile: Option<&Path>,
    limit: u64,
    holder: &'static str,
) -> Result<Packed, PackError> {
    let io_err = |path: &Path| {
        let path = path.to_path_buf();
        move |source| PackError::Io { path, source }
    };
    let context = fs::canonicalize(dir).map_err(io_err(dir))?;
    if !context.is_dir() {
        return Err(PackError::NotADirectory(dir.to_path_buf()));
    }
    let given = dockerfile
        .map(Path::to_path_buf)
        .unwrap_or_else(|| dir.join("Dockerfile"));
    let df_abs = match fs::canonicalize(&given) {
        Ok(p) if p.is_file() => p,
        _ => return Err(PackError::NoDockerfile(given)),
    };
    let df_rel = df_abs
        .strip_prefix(&context)
        .map_err(|_| PackError::DockerfileOutside {
            dockerfile: given.clone(),
            context: dir.to_path_buf(),
        })?
        .to_str()
        .ok_or_else(|| PackError::NotUtf8(given.clone()))?
        .to_string();

    // `<Dockerfile>.dockerignore` next to the Dockerfile wins over the context's.
    let mut always = vec![df_rel.clone()];
    let mut patterns = Vec::new();
    for candidate in dockerignore::candidates(&context, &df_abs) {
        let Ok(text) = fs::read_to_string(&candidate) else {
            continue;
        };
        patterns = dockerignore::read_patterns(&text);
        if let Some(rel) = candidate.strip_prefix(&context).ok().and_then(Path::to_str) {
            always.push(rel.to_string());
        }
        Selector::new(&patterns, Vec::new()).map_err(|source| PackError::Ignore {
            file: candidate.clone(),
            source,
        })?;
        break;
    }
    let selector = Selector::new(&patterns, always).map_err(|source| PackError::Ignore {
        file: context.join(".dockerignore"),
        source,
    })?;

    let mut w = Writer {
        tar: tar::Builder::new(GzEncoder::new(
            Spool::new().map_err(io_err(&context))?,
            Compression::default(),
        )),
        limit,
        holder,
        entries: 0,
        excluded: 0,
        content_bytes: 0,
        top: Vec::new(),
    };
    w.tar.mode(tar::HeaderMode::Deterministic);
    walk(&context, "", &selector, &ParentMatches::default(), &mut w)?;
    let Writer {
        tar,
        entries,
        excluded,
        content_bytes,
        top,
        ..
    } = w;
    let archive = tar
        .into_inner()
        .and_then(|gz| gz.finish())
        .map_err(io_err(&context))?;
    if archive.len() > limit {
        return Err(too_large(archive.len(), limit, holder, entries, top));
    }
    Ok(Packed {
        archive,
        dockerfile: df_rel,
        entries,
        excluded,
        content_bytes,
    })
}

struct Writer {
    tar: tar::Builder<GzEncoder<Spool>>,
    limit: u64,
    holder: &'static str,
    entries: usize,
    excluded: usize,
    content_bytes: u64,
    /// Content bytes under each top-level entry, for the hint of an over-large context.
    top: Vec<(String, u64)>,
}

impl Writer {
    fn count(&mut self, rel: &str, n: u64) {
        self.content_bytes += n;
        let top = rel.split('/').next().unwrap_or(rel);
        match self.top.iter_mut().find(|(p, _)| p == top) {
            Some((_, total)) => *total += n,
            None => self.top.push((top.to_string(), n)),
        }
    }

    /// Stops once the compressed bytes so far (what the encoder has handed on; the rest is
    /// checked when the archive is finished) are over the limit.
    fn check(&mut self) -> Result<(), PackError> {
        let size = self.tar.get_ref().get_ref().len();
        if size <= self.limit {
            return Ok(());
        }
        Err(too_large(
            size,
            self.limit,
            self.holder,
            self.entries,
            std::mem::take(&mut self.top),
        ))
    }
}

fn too_large(
    size: u64,
    limit: u64,
    holder: &'static str,
    files: usize,
    mut largest: Vec<(String, u64)>,
) -> PackError {
    largest.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    largest.truncate(3);
    PackError::TooLarge {
        size,
        limit,
        holder,
        files,
        largest,
    }
}

fn walk(
    dir: &Path,
    rel_dir: &str,
    sel: &Selector,
    parent: &ParentMatches,
    w: &mut Writer,
) -> Result<(), PackError> {
    let io_err = |path: &Path| {
        let path = path.to_path_buf();
        move |source| PackError::Io { path, source }
    };
    let mut names: Vec<_> = fs::read_dir(dir)
        .map_err(io_err(dir))?
        .map(|e| e.map(|e| e.file_name()))
        .collect::<Result<_, _>>()
        .map_err(io_err(dir))?;
    names.sort();
    for name in names {
        let path = dir.join(&name);
        let name = name
            .to_str()
            .ok_or_else(|| PackError::NotUtf8(path.clone()))?;
        let rel = if rel_dir.is_empty() {
            name.to_string()
        } else {
            format!("{rel_dir}/{name}")
        };
        let meta = fs::symlink_metadata(&path).map_err(io_err(&path))?;
        let ft = meta.file_type();
        let (decision, info) = sel.decide(&rel, ft.is_dir(), parent);
        match decision {
            Decision::Exclude { descend } => {
                w.excluded += 1;
                if descend {
                    // Walk it for exceptions; a path taken back in brings its parents.
                    let mut sub = Writer {
                        tar: tar::Builder::new(GzEncoder::new(
                            Spool::discard(),
                            Compression::none(),
                        )),
                        limit: u64::MAX,
                        holder: "",
                        entries: 0,
                        excluded: 0,
                        content_bytes: 0,
                        top: Vec::new(),
                    };
                    sub.tar.mode(tar::HeaderMode::Deterministic);
                    walk(&path, &rel, sel, &info, &mut sub)?;
                    if sub.entries > 0 {
                        header(w, &rel, &meta, &path)?;
                        walk(&path, &rel, sel, &info, w)?;
                    }
                }
                continue;
            }
            Decision::Include => {}
        }
        if ft.is_dir() {
            header(w, &rel, &meta, &path)?;
            walk(&path, &rel, sel, &info, w)?;
        } else if ft.is_file() || ft.is_symlink() {
            header(w, &rel, &meta, &path)?;
        } else {
            // Sockets, FIFOs, devices: nothing a build can COPY.
            w.excluded += 1;
        }
        w.check()?;
    }
    Ok(())
}

/// Writes one entry (a directory, a regular file with its content, or a symlink).
fn header(w: &mut Writer, rel: &str, meta: &fs::Metadata, path: &Path) -> Result<(), PackError> {
    let io_err = |source| PackError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut h = tar::Header::new_gnu();
    h.set_mode(meta.permissions().mode() & 0o7777);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(meta.mtime().max(0) as u64);
    let ft = meta.file_type();
    if ft.is_dir() {
        h.set_entry_type(tar::EntryType::Directory);
        h.set_size(0);
        w.tar
            .append_data(&mut h, format!("{rel}/"), io::empty())
            .map_err(io_err)?;
    } else if ft.is_symlink() {
        let target = fs::read_link(path).map_err(io_err)?;
        h.set_entry_type(tar::EntryType::Symlink);
        h.set_size(0);
        w.tar.append_link(&mut h, rel, &target).map_err(io_err)?;
    } else {
        let file = fs::File::open(path).map_err(io_err)?;
        let len = file.metadata().map_err(io_err)?.len();
        h.set_entry_type(tar::EntryType::Regular);
        h.set_size(len);
        w.tar
            .append_data(&mut h, rel, io::Read::take(file, len))
            .map_err(io_err)?;
        w.count(rel, len);
    }
    w.entries += 1;
    Ok(())
}

#[cfg(test)]
#[path = "pack_tests.rs"]
mod tests;
