//! Glob expansion for COPY sources, component by component with Go's `filepath.Match` rules
//! (`slipway_frontend::gocompat::go_match`), against the build context or a stage's tree.
//! Matches keep the names' raw bytes, so a file whose name is not UTF-8 is found as it is.

use std::ffi::OsString;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use slipway_frontend::gocompat::go_match;

use crate::fs::root::{resolve_in_root, scoped_path};

/// Whether a source has glob characters and needs expanding.
pub fn has_glob(s: &str) -> bool {
    s.contains(['*', '?', '['])
}

/// A pattern `filepath.Match` refuses (an unclosed `[`, a bad range).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{pattern}: syntax error in pattern")]
pub struct BadPattern {
    pub pattern: String,
}

/// The tree a pattern is expanded in, and how its paths are looked up.
#[derive(Debug, Clone, Copy)]
pub enum Tree<'a> {
    /// A directory as the host sees it (the build context): symlinks are followed as they
    /// are, and whoever uses a match checks that it stays inside.
    Plain(&'a Path),
    /// An image's tree: paths resolve inside it as if it were `/` ([`crate::fs::root`]).
    Root(&'a Path),
}

impl Tree<'_> {
    fn exists(self, rel: &Path) -> bool {
        match self {
            Tree::Plain(dir) => fs::symlink_metadata(dir.join(rel)).is_ok(),
            Tree::Root(root) => scoped_path(root, rel)
                .and_then(fs::symlink_metadata)
                .is_ok(),
        }
    }

    /// The names in directory `rel`, sorted by their bytes; `None` when it cannot be read.
    fn names(self, rel: &Path) -> Option<Vec<OsString>> {
        let dir = match self {
            Tree::Plain(dir) => dir.join(rel),
            Tree::Root(root) => resolve_in_root(root, rel).ok()?,
        };
        let mut names: Vec<OsString> = fs::read_dir(dir)
            .ok()?
            .flatten()
            .map(|e| e.file_name())
            .collect();
        names.sort();
        Some(names)
    }
}

/// Expands `pattern` (`/`-separated, relative to the tree; a leading `/` and `.` components
/// are ignored; glob characters allowed in any component). The matches are tree-relative
/// paths as named, not as resolved, sorted within each directory. A bad pattern is an error
/// as soon as a name is tested against it. A pattern with no components gives one empty path.
pub fn expand(tree: Tree, pattern: &str) -> Result<Vec<PathBuf>, BadPattern> {
    expand_with(tree, pattern, true)
}

/// [`expand`], where a name a bad pattern cannot be tested against simply does not match
/// (what a stage's exports have always done).
pub fn expand_lenient(tree: Tree, pattern: &str) -> Vec<PathBuf> {
    expand_with(tree, pattern, false).unwrap_or_default()
}

fn expand_with(tree: Tree, pattern: &str, strict: bool) -> Result<Vec<PathBuf>, BadPattern> {
    let mut found = vec![PathBuf::new()];
    for part in pattern.split('/').filter(|p| !p.is_empty() && *p != ".") {
        let mut next = Vec::new();
        for prefix in &found {
            if !has_glob(part) {
                let cand = prefix.join(part);
                if tree.exists(&cand) {
                    next.push(cand);
                }
                continue;
            }
            let Some(names) = tree.names(prefix) else {
                continue;
            };
            for n in names {
                // Patterns are text: a name that is not UTF-8 is matched in its lossy form
                // (each bad byte one character, as Go decodes it) and kept as it is.
                let matched = match go_match(part, &String::from_utf8_lossy(n.as_bytes())) {
                    Ok(m) => m,
                    Err(_) if strict => {
                        return Err(BadPattern {
                            pattern: pattern.to_string(),
                        });
                    }
                    Err(_) => false,
                };
                if matched {
                    next.push(prefix.join(n));
                }
            }
        }
        found = next;
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::OsStr;
    use std::os::unix::fs::symlink;

    fn strs(v: &[PathBuf]) -> Vec<String> {
        v.iter().map(|p| p.to_string_lossy().into_owned()).collect()
    }

    #[test]
    fn globs_in_any_component() {
        let d = tempfile::tempdir().expect("tmp");
        let r = d.path();
        fs::create_dir_all(r.join("app/dist")).expect("mkdir");
        fs::create_dir_all(r.join("app/src")).expect("mkdir");
        for f in [
            "app/dist/a.js",
            "app/dist/b.js",
            "app/dist/c.css",
            "app/src/d.js",
        ] {
            fs::write(r.join(f), "x").expect("w");
        }
        for tree in [Tree::Plain(r), Tree::Root(r)] {
            assert_eq!(
                strs(&expand(tree, "/app/dist/*.js").expect("expand")),
                ["app/dist/a.js", "app/dist/b.js"]
            );
            assert_eq!(
                strs(&expand(tree, "app/*/?.js").expect("expand")),
                ["app/dist/a.js", "app/dist/b.js", "app/src/d.js"]
            );
            assert_eq!(
                strs(&expand(tree, "./app/./nope*").expect("expand")),
                Vec::<String>::new()
            );
            assert_eq!(strs(&expand(tree, "/").expect("expand")), [""]);
        }
        assert_eq!(
            expand(Tree::Plain(r), "app/dist/[a"),
            Err(BadPattern {
                pattern: "app/dist/[a".into()
            })
        );
        assert!(expand_lenient(Tree::Root(r), "app/dist/[a").is_empty());
        assert!(has_glob("a[bc]") && has_glob("?") && !has_glob("plain/path"));
    }

    #[test]
    fn a_root_resolves_links_inside_it_and_plain_does_not() {
        let d = tempfile::tempdir().expect("tmp");
        let r = d.path().join("root");
        fs::create_dir_all(r.join("usr/lib")).expect("mkdir");
        fs::write(r.join("usr/lib/libx.so"), "x").expect("w");
        symlink("/usr/lib", r.join("lib")).expect("ln");
        // Through an absolute link: inside the root it is the root's /usr/lib.
        assert_eq!(
            strs(&expand(Tree::Root(&r), "/lib/*.so").expect("expand")),
            ["lib/libx.so"]
        );
        assert_eq!(
            strs(&expand(Tree::Root(&r), "/lib/libx.so").expect("expand")),
            ["lib/libx.so"]
        );
        // The host's /usr/lib has no libx.so.
        assert!(
            !expand(Tree::Plain(&r), "lib/*.so")
                .expect("expand")
                .contains(&PathBuf::from("lib/libx.so"))
        );
    }

    #[test]
    fn names_that_are_not_utf8_are_kept() {
        let d = tempfile::tempdir().expect("tmp");
        let r = d.path();
        let name = OsStr::from_bytes(b"caf\xe9.txt");
        fs::write(r.join(name), "x").expect("w");
        fs::write(r.join("cafe.txt"), "x").expect("w");
        let got = expand(Tree::Root(r), "/caf?.txt").expect("expand");
        assert_eq!(got, [PathBuf::from("cafe.txt"), PathBuf::from(name)]);
        assert!(r.join(&got[1]).is_file());
    }
}
