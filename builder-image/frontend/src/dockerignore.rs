//! `.dockerignore`: which file applies, how it is read (BuildKit / moby `ignorefile`), and how
//! its patterns match context paths (moby/patternmatcher). Pure logic; the caller reads files.
//!
//! Hand-written rather than `ignore`/`globset`: gitignore semantics differ from
//! patternmatcher's (exclusions, `**`, parent-directory matches), and a context must include
//! exactly the files `docker build` sends; moby/patternmatcher's own test cases check it.

use std::path::{Path, PathBuf};

use regex::Regex;

use crate::gocompat::{self, clean};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IgnoreError {
    #[error(transparent)]
    BadPattern(#[from] gocompat::BadPattern),
    #[error("illegal exclusion pattern: \"!\"")]
    BareExclusion,
}

/// The ignore files that may apply, best first: `<Dockerfile>.dockerignore` next to the
/// Dockerfile, then `.dockerignore` at the context root.
pub fn candidates(context: &Path, dockerfile: &Path) -> [PathBuf; 2] {
    let mut specific = dockerfile.as_os_str().to_owned();
    specific.push(".dockerignore");
    [PathBuf::from(specific), context.join(".dockerignore")]
}

/// Reads ignore-file text into patterns: a BOM is dropped, lines starting with `#` are
/// comments, `!` marks an exception, patterns are cleaned and a leading `/` removed.
pub fn read_patterns(text: &str) -> Vec<String> {
    let text = text.strip_prefix('\u{FEFF}').unwrap_or(text);
    let mut out = Vec::new();
    for line in text.lines() {
        if line.starts_with('#') {
            continue;
        }
        let mut pattern = line.trim();
        if pattern.is_empty() {
            continue;
        }
        let invert = pattern.starts_with('!');
        if invert {
            pattern = pattern[1..].trim();
        }
        let mut p = String::new();
        if !pattern.is_empty() {
            p = clean(pattern);
            if p.len() > 1 && p.starts_with('/') {
                p.remove(0);
            }
        }
        out.push(if invert { format!("!{p}") } else { p });
    }
    out
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum MatchType {
    Exact,
    Prefix,
    Suffix,
    Regex,
}

#[derive(Debug, Clone)]
struct Pattern {
    cleaned: String,
    dirs: usize,
    exclusion: bool,
    kind: MatchType,
    regex: Option<Regex>,
}

impl Pattern {
    fn new(cleaned: String, exclusion: bool) -> Result<Self, IgnoreError> {
        let (kind, regex) = compile(&cleaned)?;
        Ok(Pattern {
            dirs: cleaned.split('/').count(),
            cleaned,
            exclusion,
            kind,
            regex,
        })
    }

    fn matches(&self, path: &str) -> bool {
        match self.kind {
            MatchType::Exact => path == self.cleaned,
            MatchType::Prefix => path.starts_with(&self.cleaned[..self.cleaned.len() - 2]),
            MatchType::Suffix => {
                let suffix = &self.cleaned[2..];
                path.ends_with(suffix) || (suffix.starts_with('/') && path == &suffix[1..])
            }
            MatchType::Regex => self.regex.as_ref().is_some_and(|r| r.is_match(path)),
        }
    }
}

/// Translates a pattern to its match type (and regex): `*` and `?` stay in one path
/// element, `**` spans elements, `[...]` passes through, `\` escapes.
fn compile(pattern: &str) -> Result<(MatchType, Option<Regex>), IgnoreError> {
    let mut re = String::from("^");
    let mut kind = MatchType::Exact;
    let chars: Vec<char> = pattern.chars().collect();
    let mut i = 0;
    let mut first = true;
    while i < chars.len() {
        let ch = chars[i];
        i += 1;
        if ch == '*' {
            if chars.get(i) == Some(&'*') {
                i += 1;
                if chars.get(i) == Some(&'/') {
                    i += 1;
                }
                if i >= chars.len() {
                    if kind == MatchType::Exact {
                        kind = MatchType::Prefix;
                    } else {
                        re.push_str(".*");
                        kind = MatchType::Regex;
                    }
                } else {
                    re.push_str("(.*/)?");
                    kind = MatchType::Regex;
                }
                if first {
                    kind = MatchType::Suffix;
                }
            } else {
                re.push_str("[^/]*");
                kind = MatchType::Regex;
            }
        } else if ch == '?' {
            re.push_str("[^/]");
            kind = MatchType::Regex;
        } else if ".+()|{}$".contains(ch) {
            re.push('\\');
            re.push(ch);
        } else if ch == '\\' {
            match chars.get(i) {
                Some(&next) => {
                    i += 1;
                    re.push('\\');
                    re.push(next);
                    kind = MatchType::Regex;
                }
                None => re.push('\\'),
            }
        } else if ch == '[' || ch == ']' {
            re.push(ch);
            kind = MatchType::Regex;
        } else {
            re.push(ch);
        }
        first = false;
    }
    if kind != MatchType::Regex {
        return Ok((kind, None));
    }
    re.push('$');
    Regex::new(&re)
        .map(|r| (kind, Some(r)))
        .map_err(|_| IgnoreError::BadPattern(gocompat::BadPattern))
}

/// Ordered include/exclude patterns; the last pattern that matches a path decides.
#[derive(Debug, Clone, Default)]
pub struct Matcher {
    patterns: Vec<Pattern>,
}

/// Per-pattern results for a directory, passed down to its entries.
#[derive(Debug, Clone, Default)]
pub struct ParentMatches(Vec<bool>);

fn parent_prefixes(file: &str) -> Vec<&str> {
    // `a/b/c` → `a`, `a/b`.
    file.match_indices('/').map(|(i, _)| &file[..i]).collect()
}

impl Matcher {
    pub fn new<S: AsRef<str>>(patterns: &[S]) -> Result<Self, IgnoreError> {
        let mut out = Vec::new();
        for p in patterns {
            let p = p.as_ref().trim();
            if p.is_empty() {
                continue;
            }
            let p = clean(p);
            let (exclusion, body) = match p.strip_prefix('!') {
                Some("") => return Err(IgnoreError::BareExclusion),
                Some(rest) => (true, rest.to_string()),
                None => (false, p),
            };
            gocompat::go_match(&body, ".")?;
            out.push(Pattern::new(body, exclusion)?);
        }
        Ok(Matcher { patterns: out })
    }

    pub fn is_empty(&self) -> bool {
        self.patterns.is_empty()
    }

    /// Whether `file` (slash-separated, relative to the context) or one of its parent
    /// directories is excluded.
    pub fn matches_or_parent_matches(&self, file: &str) -> bool {
        let parents = parent_prefixes(file);
        let mut matched = false;
        for p in &self.patterns {
            if p.exclusion != matched {
                continue;
            }
            let hit = p.matches(file) || parents.iter().any(|d| p.matches(d));
            if hit {
                matched = !p.exclusion;
            }
        }
        matched
    }

    /// For tree walks: the decision for `file` given its parent directory's decision.
    pub fn matches_using_parent_result(&self, file: &str, parent_matched: bool) -> bool {
        let mut matched = parent_matched;
        for p in &self.patterns {
            if p.exclusion != matched {
                continue;
            }
            if p.matches(file) {
                matched = !p.exclusion;
            }
        }
        matched
    }

    /// For tree walks: the decision for `file` given per-pattern results of its parent
    /// (empty for a top-level entry); returns this entry's per-pattern results too.
    pub fn matches_using_parent_results(
        &self,
        file: &str,
        parent: &ParentMatches,
    ) -> (bool, ParentMatches) {
        let mut matched = false;
        let mut info = Vec::with_capacity(self.patterns.len());
        for (i, p) in self.patterns.iter().enumerate() {
            let mut hit = parent.0.get(i).copied().unwrap_or(false);
            if !hit {
                if p.exclusion != matched {
                    info.push(false);
                    continue;
                }
                hit = p.matches(file);
                if !hit && parent.0.is_empty() {
                    hit = parent_prefixes(file).iter().any(|d| p.matches(d));
                }
            }
            info.push(hit);
            if hit {
                matched = !p.exclusion;
            }
        }
        (matched, ParentMatches(info))
    }

    /// patternmatcher's package-level `Matches` (parents matched element-wise).
    pub fn matches(&self, file: &str) -> bool {
        let file = clean(file);
        if file == "." {
            return false;
        }
        let parent = match file.rfind('/') {
            Some(i) => &file[..i],
            None => ".",
        };
        let parent_dirs: Vec<&str> = parent.split('/').collect();
        let mut matched = false;
        for p in &self.patterns {
            if p.exclusion != matched {
                continue;
            }
            let mut hit = p.matches(&file);
            if !hit && parent != "." && p.dirs <= parent_dirs.len() {
                hit = p.matches(&parent_dirs[..p.dirs].join("/"));
            }
            if hit {
                matched = !p.exclusion;
            }
        }
        matched
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reading_rules() {
        let text =
            "\u{FEFF}# comment\n  # not a comment\n\n/abs/path\n! keep/me \nsub/../other\n*.md\n";
        assert_eq!(
            read_patterns(text),
            ["# not a comment", "abs/path", "!keep/me", "other", "*.md"]
        );
    }

    #[test]
    fn dockerfile_specific_file_comes_first() {
        let [a, b] = candidates(Path::new("/ctx"), Path::new("/ctx/build/app.Dockerfile"));
        assert_eq!(a, Path::new("/ctx/build/app.Dockerfile.dockerignore"));
        assert_eq!(b, Path::new("/ctx/.dockerignore"));
    }
}
