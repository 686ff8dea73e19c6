//! COPY and ADD: sources from the context (filtered by `.dockerignore` and `--exclude`), from
//! another stage's exports or from an image's tree, heredoc files, local archives ADD unpacks,
//! and a URL ADD downloads; each writes one layer of exactly what it wrote. The rules (owner,
//! destinations, which stage a `--from` names, history text) are pure functions here; the
//! `Engine` methods do the I/O.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use slipway_frontend::dockerfile::instructions::{Add, Command, Copy, Dockerfile, SourcesAndDest};
use slipway_frontend::dockerignore::{IgnoreError, Matcher};

use crate::fs::PathError;
use crate::fs::archive::ExtractError;
use crate::fs::copy::{self as fscopy, ChmodError, CopyOptions, Owner, Written};
use crate::net::DownloadError;
use crate::stage::config::in_image_path;
use crate::stage::copy_sources::{self, CopyError};
use crate::stage::exports::{self, ExportsError};
use crate::stage::users::{self, UserError};
use crate::stage::{Engine, StageError};
use crate::trusted::{self, CopiedImageError, TrustError};

/// Why a COPY or ADD failed.
#[derive(Debug, thiserror::Error)]
pub enum CopyAddError {
    /// A stage's exports could not be unpacked for `--from`.
    #[error(transparent)]
    Exports(#[from] ExportsError),
    /// Making the (empty) tree of a stage that exported nothing (the I/O error alone).
    #[error("{0}")]
    FromDir(#[source] io::Error),
    #[error("--from={0}: the image was not unpacked into the workspace")]
    NotUnpacked(String),
    /// The image a `--from` names could not be unpacked into the stage's scratch space.
    #[error(transparent)]
    Image(#[from] CopiedImageError),
    #[error("--parents is not supported yet")]
    Parents,
    #[error("--checksum is only supported for URL sources")]
    Checksum,
    #[error("ADD of a URL takes exactly one source")]
    UrlSources,
    #[error("--chown={spec}: {source}")]
    Chown {
        spec: String,
        #[source]
        source: UserError,
    },
    #[error(transparent)]
    Chmod(#[from] ChmodError),
    /// A stage's exports or the build's ignore file that is not what the controller's digest
    /// says (or not one to read).
    #[error(transparent)]
    Trust(#[from] TrustError),
    #[error(".dockerignore or --exclude: {0}")]
    Patterns(#[source] IgnoreError),
    /// The tree the sources are in cannot be resolved.
    #[error(transparent)]
    SourceRoot(PathError),
    /// Which sources, and where they go (Docker's rules refused them).
    #[error(transparent)]
    Sources(#[from] CopyError),
    /// Writing a heredoc file or a download.
    #[error("{target}: {source}")]
    Write {
        target: String,
        #[source]
        source: io::Error,
    },
    #[error("{archive}: {source}")]
    Archive {
        archive: String,
        #[source]
        source: io::Error,
    },
    #[error(transparent)]
    Extract(#[from] ExtractError),
    #[error("{} -> {dest}: {source}", src.display())]
    Copy {
        src: PathBuf,
        dest: String,
        #[source]
        source: io::Error,
    },
    #[error(transparent)]
    Download(#[from] DownloadError),
    /// A heredoc or a download whose file name is empty, `.` or `..`: writing it would
    /// replace a directory of the tree, or its parent (L2 of SECURITY.md).
    #[error("{from}: {target} does not name a file")]
    NotAFile { from: String, target: String },
}

/// What ADD does with a local tar archive among its sources.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Archives {
    /// Copy it as a file (COPY, `ADD --unpack=false`).
    Copy,
    /// Unpack it: owners from the archive, or `--chown` for every entry.
    Unpack { chown: Option<(u32, u32)> },
}

impl Archives {
    /// ADD's rule: archives unpack unless `--unpack=false`.
    pub fn for_add(unpack: Option<bool>, chown: Option<(u32, u32)>) -> Self {
        if unpack.unwrap_or(true) {
            Archives::Unpack { chown }
        } else {
            Archives::Copy
        }
    }
}

/// What one COPY or ADD copies from where, and how.
struct CopySpec<'a> {
    paths: &'a SourcesAndDest,
    /// The tree the sources are in: the context, a stage's exports, an image's tree.
    src_root: &'a Path,
    /// The sources are the context's (so `.dockerignore` applies).
    from_context: bool,
    owner: Owner,
    chmod: Option<u32>,
    exclude: &'a [String],
    archives: Archives,
}

/// COPY's owner: `--chown`, else root for context files and the source's own for files from
/// a stage or an image (Docker's rule).
pub fn copy_owner(chown: Option<(u32, u32)>, from_context: bool) -> Owner {
    match (chown, from_context) {
        (Some((u, g)), _) => Owner::Set(u, g),
        (None, true) => Owner::Set(0, 0),
        (None, false) => Owner::Keep,
    }
}

/// The stage a `--from` names: by its `AS` name (case-insensitive), else, unless
/// `by_name_only`, by its index. `None`: an image.
pub fn from_stage(df: &Dockerfile, from: &str, by_name_only: bool) -> Option<usize> {
    let lower = from.to_lowercase();
    let by_name = df
        .stages
        .iter()
        .position(|s| s.name.as_deref() == Some(lower.as_str()));
    match by_name {
        Some(i) => Some(i),
        None if !by_name_only => from.parse::<usize>().ok(),
        None => None,
    }
}

/// The patterns sources are filtered by: `.dockerignore` for the context's, then `--exclude`.
pub fn filter_patterns(
    from_context: bool,
    dockerignore: Option<&[String]>,
    exclude: &[String],
) -> Vec<String> {
    let mut patterns: Vec<String> = if from_context {
        dockerignore.map(<[String]>::to_vec).unwrap_or_default()
    } else {
        Vec::new()
    };
    patterns.extend(exclude.iter().cloned());
    patterns
}

/// A destination that names a directory (BuildKit's `dispatchCopy`: `.`, empty, or a
/// trailing `/`; and `/.`, as for sources).
pub fn dest_is_dir(dest: &str) -> bool {
    dest.is_empty() || dest == "." || dest.ends_with('/') || dest.ends_with("/.")
}

/// Where a heredoc file lands: the destination itself, or a file named after its delimiter
/// in it when the destination is a directory or there is more than one source.
pub fn inline_target(paths: &SourcesAndDest, dest: &str, dest_abs: &str, name: &str) -> String {
    if dest_is_dir(dest) || paths.contents.len() + paths.sources.len() > 1 {
        format!("{}/{name}", dest_abs.trim_end_matches('/'))
    } else {
        dest_abs.to_string()
    }
}

/// Where a downloaded file lands: the destination, or `file_name` in it when it is a
/// directory.
pub fn url_target(workdir: &str, dest: &str, file_name: &str) -> String {
    let target = in_image_path(workdir, dest);
    if dest_is_dir(dest) {
        format!("{}/{file_name}", target.trim_end_matches('/'))
    } else {
        target
    }
}

/// `target` if its last name is a file's: not empty (the root), `.` or `..`. `source` names
/// what was to be written there, for the message.
pub fn file_target(source: &str, target: String) -> Result<String, CopyAddError> {
    match target.rsplit('/').next() {
        Some("" | "." | "..") | None => Err(CopyAddError::NotAFile {
            from: source.to_string(),
            target,
        }),
        Some(_) => Ok(target),
    }
}

pub fn is_url(s: &str) -> bool {
    s.starts_with("http://") || s.starts_with("https://")
}

/// The history text of a COPY/ADD as BuildKit writes it (dispatchCopy): keyword, then
/// `--chown` and `--chmod` (no `--from`, `--link` or other flags), sources, heredocs as
/// `<<NAME`, destination; every word already expanded.
pub fn copy_history(
    kw: &str,
    paths: &SourcesAndDest,
    chown: Option<&str>,
    chmod: Option<&str>,
) -> String {
    let mut parts = vec![kw.to_string()];
    parts.extend(chown.map(|c| format!("--chown={c}")));
    parts.extend(chmod.map(|c| format!("--chmod={c}")));
    parts.extend(paths.sources.iter().cloned());
    parts.extend(paths.contents.iter().map(|f| format!("<<{}", f.name)));
    parts.push(paths.dest.clone());
    parts.join(" ")
}

impl Engine<'_> {
    /// The tree a `--from` names: a stage's unpacked exports, or an external image's rootfs.
    pub(super) fn copy_from_root(
        &mut self,
        cmd: &Command,
        from: &str,
        by_name_only: bool,
    ) -> Result<PathBuf, StageError> {
        match from_stage(self.df, from, by_name_only) {
            Some(i) => {
                if let Some(p) = self.unpacked.get(&i) {
                    return Ok(p.clone());
                }
                let dir = self.ws.stage_work(self.ps.index).join(format!("from-{i}"));
                let _ = fs::remove_dir_all(&dir);
                let trust = |e: TrustError| self.fail(cmd, CopyAddError::Trust(e));
                // Read only when it is what the stage wrote (its digest, H1).
                if let Some(mut tar) = self.checked().exports(i).map_err(trust)? {
                    let extracted =
                        exports::extract_from(&mut tar, &self.ws.stage_exports(i), &dir);
                    tar.finish().map_err(trust)?;
                    extracted.map_err(|e| self.fail(cmd, CopyAddError::Exports(e)))?;
                } else {
                    fs::create_dir_all(&dir)
                        .map_err(|e| self.fail(cmd, CopyAddError::FromDir(e)))?;
                }
                self.unpacked.insert(i, dir.clone());
                Ok(dir)
            }
            None => {
                // Local mode's host unpacked it, read-only to the stage.
                let shared = self.ws.image_rootfs(from);
                if shared.is_dir() {
                    return Ok(shared);
                }
                if let Some(p) = self.unpacked_images.get(from) {
                    return Ok(p.clone());
                }
                // A cluster's prepare pod left its layers: unpacked here, into the stage's own
                // scratch space, each checked against its digests (H1).
                let key = crate::workspace::image_key(from);
                let dir = self
                    .ws
                    .stage_work(self.ps.index)
                    .join(format!("image-{key}"));
                let _ = fs::remove_dir_all(&dir);
                trusted::unpack_image(self.checked(), from, &dir)
                    .map_err(|e| self.fail(cmd, CopyAddError::Image(e)))?;
                self.unpacked_images.insert(from.to_string(), dir.clone());
                Ok(dir)
            }
        }
    }

    pub(super) fn copy(&mut self, cmd: &Command, c: &Copy) -> Result<(), StageError> {
        if c.parents {
            return Err(self.fail(cmd, CopyAddError::Parents));
        }
        let chown = self.chown(cmd, c.chown.as_deref())?;
        let chmod = self.chmod(cmd, c.chmod.as_deref())?;
        let (src_root, from_context) = match &c.from {
            None => (self.ws.context(), true),
            Some(f) => (self.copy_from_root(cmd, f, false)?, false),
        };
        let spec = CopySpec {
            paths: &c.paths,
            src_root: &src_root,
            from_context,
            owner: copy_owner(chown, from_context),
            chmod,
            exclude: &c.exclude,
            archives: Archives::Copy,
        };
        let w = self.copy_sources(cmd, &spec)?;
        let history = self.history_of(cmd, "COPY", &c.paths, &c.chown, &c.chmod)?;
        self.image.copy(history);
        self.commit_written(cmd, &w)
    }

    pub(super) fn add(&mut self, cmd: &Command, a: &Add) -> Result<(), StageError> {
        let chown = self.chown(cmd, a.chown.as_deref())?;
        let chmod = self.chmod(cmd, a.chmod.as_deref())?;
        let (u, g) = chown.unwrap_or((0, 0));
        let owner = Owner::Set(u, g);
        let ctx = self.ws.context();
        let w = if a.paths.sources.iter().any(|s| is_url(s)) {
            self.add_urls(cmd, a, owner, chmod)?
        } else {
            if a.checksum.is_some() {
                return Err(self.fail(cmd, CopyAddError::Checksum));
            }
            let spec = CopySpec {
                paths: &a.paths,
                src_root: &ctx,
                from_context: true,
                owner,
                chmod,
                exclude: &a.exclude,
                archives: Archives::for_add(a.unpack, chown),
            };
            self.copy_sources(cmd, &spec)?
        };
        let history = self.history_of(cmd, "ADD", &a.paths, &a.chown, &a.chmod)?;
        self.image.copy(history);
        self.commit_written(cmd, &w)
    }

    /// [`copy_history`] of the instruction's words, expanded as BuildKit expands them.
    fn history_of(
        &self,
        cmd: &Command,
        kw: &str,
        paths: &SourcesAndDest,
        chown: &Option<String>,
        chmod: &Option<String>,
    ) -> Result<String, StageError> {
        let opt = |w: &Option<String>| w.as_deref().map(|w| self.expand(cmd, w)).transpose();
        let mut expanded = paths.clone();
        for s in &mut expanded.sources {
            *s = self.expand(cmd, s)?;
        }
        expanded.dest = self.expand(cmd, &paths.dest)?;
        Ok(copy_history(
            kw,
            &expanded,
            opt(chown)?.as_deref(),
            opt(chmod)?.as_deref(),
        ))
    }

    fn chown(&self, cmd: &Command, spec: Option<&str>) -> Result<Option<(u32, u32)>, StageError> {
        let Some(s) = spec else { return Ok(None) };
        let s = self.expand(cmd, s)?;
        let (p, g) = self.read_users();
        users::chown_ids(&s, &p, &g).map(Some).map_err(|source| {
            let spec = s.clone();
            self.fail(cmd, CopyAddError::Chown { spec, source })
        })
    }

    fn chmod(&self, cmd: &Command, spec: Option<&str>) -> Result<Option<u32>, StageError> {
        let Some(s) = spec else { return Ok(None) };
        let s = self.expand(cmd, s)?;
        fscopy::parse_chmod(&s)
            .map(Some)
            .map_err(|e| self.fail(cmd, CopyAddError::Chmod(e)))
    }

    /// Copies the spec's heredoc files and sources into the tree.
    fn copy_sources(&mut self, cmd: &Command, spec: &CopySpec) -> Result<Written, StageError> {
        let paths = spec.paths;
        let dest = self.expand(cmd, &paths.dest)?;
        let mut sources = Vec::new();
        for s in &paths.sources {
            sources.push(self.expand(cmd, s)?);
        }
        if spec.from_context && self.ignore.is_none() {
            let patterns = self
                .checked()
                .ignore_patterns()
                .map_err(|e| self.fail(cmd, CopyAddError::Trust(e)))?;
            self.ignore = Some(patterns);
        }
        // .dockerignore (context only) and --exclude filter the same way.
        let patterns = filter_patterns(spec.from_context, self.ignore.as_deref(), spec.exclude);
        let combined =
            Matcher::new(&patterns).map_err(|e| self.fail(cmd, CopyAddError::Patterns(e)))?;
        let wd = self.workdir().to_string();
        let mut w = Written::default();
        let canonical = fs::canonicalize(spec.src_root)
            .map_err(crate::fs::at(spec.src_root))
            .map_err(|e| self.fail(cmd, CopyAddError::SourceRoot(e)))?;
        let dest_abs = in_image_path(&wd, &dest);
        for f in &paths.contents {
            let data = if f.expand {
                let mut raw = self.lex;
                raw.skip_process_quotes = true;
                raw.process_word(&f.data, &self.vars)
                    .map_err(|e| self.fail(cmd, e))?
            } else {
                f.data.clone()
            };
            let target = file_target(
                &format!("<<{}", f.name),
                inline_target(paths, &dest, &dest_abs, &f.name),
            )
            .map_err(|e| self.fail(cmd, e))?;
            fscopy::write_file(
                &self.root,
                &target,
                data.as_bytes(),
                spec.chmod.unwrap_or(0o644),
                spec.chmod.unwrap_or(0o755),
                spec.owner.of_new(),
                None,
                &mut w,
            )
            .map_err(|source| {
                let target = target.clone();
                self.fail(cmd, CopyAddError::Write { target, source })
            })?;
        }
        if sources.is_empty() {
            return Ok(w);
        }
        let items = copy_sources::plan_copy(&canonical, &sources, &dest, &wd, &combined)
            .map_err(|e| self.fail(cmd, CopyAddError::Sources(e)))?;
        let opts = CopyOptions {
            owner: spec.owner,
            chmod: spec.chmod,
            ignore: Some((&combined, &canonical)),
        };
        for item in items {
            if let Archives::Unpack { chown } = spec.archives
                && !item.is_dir
            {
                let shown = item.source.display().to_string();
                let tar = crate::fs::archive::open_tar(&item.source).map_err(|source| {
                    let archive = shown.clone();
                    self.fail(cmd, CopyAddError::Archive { archive, source })
                })?;
                if let Some(tar) = tar {
                    // An archive unpacks into the destination directory.
                    crate::fs::archive::extract_into(
                        &self.root, tar, &shown, &dest_abs, chown, &mut w,
                    )
                    .map_err(|e| self.fail(cmd, CopyAddError::Extract(e)))?;
                    continue;
                }
            }
            // A file copied onto an existing directory goes inside it by its own name, as in
            // BuildKit (`COPY --from=s /hello /tmp` writes /tmp/hello, kaniko's
            // Dockerfile_test_meta_arg).
            let mut dest = item.dest.clone();
            if !item.is_dir
                && let Some(name) = item.source.file_name()
                && crate::fs::root::resolve_in_root(&self.root, dest.trim_start_matches('/'))
                    .is_ok_and(|p| p.is_dir())
            {
                dest = format!("{}/{}", dest.trim_end_matches('/'), name.to_string_lossy());
            }
            fscopy::copy_source(&self.root, &item.source, item.is_dir, &dest, &opts, &mut w)
                .map_err(|source| {
                    let (src, dest) = (item.source.clone(), dest.clone());
                    self.fail(cmd, CopyAddError::Copy { src, dest, source })
                })?;
        }
        Ok(w)
    }

    /// ADD of a URL: the download written at the destination.
    fn add_urls(
        &mut self,
        cmd: &Command,
        a: &Add,
        owner: Owner,
        chmod: Option<u32>,
    ) -> Result<Written, StageError> {
        let [url] = a.paths.sources.as_slice() else {
            return Err(self.fail(cmd, CopyAddError::UrlSources));
        };
        let url = self.expand(cmd, url)?;
        let dest = self.expand(cmd, &a.paths.dest)?;
        // Before the download: the name comes from the URL alone.
        let name = crate::net::download::url_file_name(&url);
        file_target(&url, url_target(self.workdir(), &dest, &name))
            .map_err(|e| self.fail(cmd, e))?;
        let checksum = match &a.checksum {
            Some(c) => Some(self.expand(cmd, c)?),
            None => None,
        };
        let dl = crate::net::download(&url, checksum.as_deref())
            .map_err(|e| self.fail(cmd, CopyAddError::Download(e)))?;
        let target = file_target(&url, url_target(self.workdir(), &dest, &dl.file_name))
            .map_err(|e| self.fail(cmd, e))?;
        let mut w = Written::default();
        fscopy::write_file(
            &self.root,
            &target,
            &dl.data,
            chmod.unwrap_or(0o600),
            chmod.unwrap_or(0o755),
            owner.of_new(),
            dl.mtime,
            &mut w,
        )
        .map_err(|source| {
            let target = target.clone();
            self.fail(cmd, CopyAddError::Write { target, source })
        })?;
        Ok(w)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use slipway_frontend::dockerfile::instructions::{self, Instruction};
    use slipway_frontend::dockerfile::parser;

    fn dockerfile(text: &str) -> Dockerfile {
        let parsed = parser::parse(text).expect("parses");
        instructions::from_ast(&parsed.ast).expect("instructions")
    }

    /// The sources and destination of the last stage's first COPY or ADD in `text`.
    fn paths(text: &str) -> SourcesAndDest {
        let df = dockerfile(&format!("FROM scratch\n{text}\n"));
        match &df.stages[0].commands[0].instruction {
            Instruction::Copy(c) => c.paths.clone(),
            Instruction::Add(a) => a.paths.clone(),
            other => panic!("not a COPY or ADD: {other:?}"),
        }
    }

    #[test]
    fn owners_and_archives() {
        assert_eq!(copy_owner(Some((1, 2)), false), Owner::Set(1, 2));
        assert_eq!(copy_owner(None, true), Owner::Set(0, 0));
        assert_eq!(copy_owner(None, false), Owner::Keep);
        assert_eq!(
            Archives::for_add(None, Some((5, 5))),
            Archives::Unpack {
                chown: Some((5, 5))
            }
        );
        assert_eq!(
            Archives::for_add(Some(true), None),
            Archives::Unpack { chown: None }
        );
        assert_eq!(Archives::for_add(Some(false), Some((5, 5))), Archives::Copy);
    }

    #[test]
    fn from_names_a_stage_or_an_image() {
        let df =
            dockerfile("FROM alpine AS Build\nRUN true\nFROM scratch\nCOPY --from=build /a /a\n");
        assert_eq!(from_stage(&df, "build", false), Some(0));
        assert_eq!(from_stage(&df, "BUILD", true), Some(0));
        assert_eq!(from_stage(&df, "1", false), Some(1));
        // A mount's from= names stages only by name.
        assert_eq!(from_stage(&df, "1", true), None);
        assert_eq!(from_stage(&df, "alpine:3.20", false), None);
    }

    #[test]
    fn dockerignore_applies_to_the_context_only() {
        let ignore = vec!["*.env".to_string()];
        let exclude = vec!["*.md".to_string()];
        assert_eq!(
            filter_patterns(true, Some(&ignore), &exclude),
            ["*.env", "*.md"]
        );
        assert_eq!(filter_patterns(true, None, &exclude), ["*.md"]);
        assert_eq!(filter_patterns(false, Some(&ignore), &exclude), ["*.md"]);
    }

    #[test]
    fn destinations() {
        let one = paths("COPY <<EOF /etc/motd\nhi\nEOF");
        assert_eq!(
            inline_target(&one, "/etc/motd", "/etc/motd", "EOF"),
            "/etc/motd"
        );
        assert_eq!(inline_target(&one, "/etc/", "/etc", "EOF"), "/etc/EOF");
        let two = paths("COPY <<A <<B /out/\na\nA\nb\nB");
        assert_eq!(inline_target(&two, "/out", "/out", "A"), "/out/A");

        // `.` is the working directory, a directory (BuildKit's rule).
        assert_eq!(inline_target(&one, ".", "/app", "EOF"), "/app/EOF");
        assert_eq!(inline_target(&one, ".", "/", "EOF"), "/EOF");
        assert_eq!(inline_target(&one, "/", "/", "EOF"), "/EOF");
        assert_eq!(url_target("/", ".", "f.tgz"), "/f.tgz");
        assert_eq!(url_target("/app", "dl/", "f.tgz"), "/app/dl/f.tgz");
        assert_eq!(url_target("/app", "/x/../y", "f.tgz"), "/y");
        assert_eq!(url_target("/", "file", "f.tgz"), "/file");
        assert!(is_url("https://example.com/a") && is_url("http://h/a"));
        assert!(!is_url("ftp://h/a") && !is_url("./https://x"));
    }

    #[test]
    fn names_that_are_no_file_are_refused() {
        // `COPY <<.. /app/`, `ADD https://h/x/.. /app/`: never `/app/..` (L2).
        let many = paths("COPY <<A <<B /out/\na\nA\nb\nB");
        for name in ["..", "."] {
            let t = inline_target(&many, "/app/", "/app", name);
            let e = file_target(&format!("<<{name}"), t).expect_err(name);
            assert_eq!(
                e.to_string(),
                format!("<<{name}: /app/{name} does not name a file")
            );
        }
        let name = crate::net::download::url_file_name("https://h/x/..");
        assert_eq!(name, "..");
        let e = file_target("https://h/x/..", url_target("/", "/app/", &name)).expect_err("..");
        assert_eq!(
            e.to_string(),
            "https://h/x/..: /app/.. does not name a file"
        );
        // A destination that cleans to the root is not a file either (`COPY <<EOF /.`).
        let one = paths("COPY <<EOF /etc/motd\nhi\nEOF");
        let e = file_target("<<EOF", inline_target(&one, "/.x", "/", "EOF")).expect_err("/");
        assert_eq!(e.to_string(), "<<EOF: / does not name a file");
        assert_eq!(
            file_target("<<EOF", "/etc/motd".into()).expect("a file"),
            "/etc/motd"
        );
    }

    #[test]
    fn history_text() {
        // As BuildKit v0.34 writes it: --chown and --chmod kept, --from left out.
        let p = paths("COPY --from=build --chown=1:1 --chmod=640 /a /b /dest/");
        assert_eq!(
            copy_history("COPY", &p, Some("1:1"), Some("640")),
            "COPY --chown=1:1 --chmod=640 /a /b /dest/"
        );
        let p = paths("ADD <<EOF site.conf /etc/nginx/\nx\nEOF");
        assert_eq!(
            copy_history("ADD", &p, None, None),
            "ADD site.conf <<EOF /etc/nginx/"
        );
    }
}
