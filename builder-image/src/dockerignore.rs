//! `.dockerignore`: which file applies, how it is read (BuildKit / moby `ignorefile`), and how
//! its patterns match context paths (moby/patternmatcher). Pure logic; the caller reads files.

use std::path::{Path, PathBuf};

use regex::Regex;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IgnoreError {
    #[error("syntax error in pattern")]
    BadPattern,
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

/// The patterns that apply to a build: those of the first ignore file of [`candidates`] that
/// exists, or none.
pub fn load(context: &Path, dockerfile: &Path) -> std::io::Result<Vec<String>> {
    for file in candidates(context, dockerfile) {
        match std::fs::read(&file) {
            Ok(bytes) => return Ok(read_patterns(&String::from_utf8_lossy(&bytes))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(Vec::new())
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

/// Go's `path.Clean`.
pub fn clean(p: &str) -> String {
    if p.is_empty() {
        return ".".into();
    }
    let rooted = p.starts_with('/');
    let mut parts: Vec<&str> = Vec::new();
    for seg in p.split('/') {
        match seg {
            "" | "." => {}
            ".." => {
                if parts.last().is_some_and(|l| *l != "..") {
                    parts.pop();
                } else if !rooted {
                    parts.push("..");
                }
            }
            s => parts.push(s),
        }
    }
    let body = parts.join("/");
    match (rooted, body.is_empty()) {
        (true, _) => format!("/{body}"),
        (false, true) => ".".into(),
        (false, false) => body,
    }
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
        .map_err(|_| IgnoreError::BadPattern)
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
            go_match(&body, ".")?;
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

/// Go's `filepath.Match`, used as BuildKit does to reject malformed patterns.
pub fn go_match(pattern: &str, name: &str) -> Result<bool, IgnoreError> {
    let mut pattern = pattern.as_bytes();
    let mut name = name.as_bytes();
    'outer: while !pattern.is_empty() {
        let (star, chunk, rest) = scan_chunk(pattern);
        pattern = rest;
        if star && chunk.is_empty() {
            return Ok(!name.contains(&b'/'));
        }
        let r = match_chunk(chunk, name);
        if let Ok(Some(t)) = r
            && (t.is_empty() || !pattern.is_empty())
        {
            name = t;
            continue;
        }
        r?;
        if star {
            let mut i = 0;
            while i < name.len() && name[i] != b'/' {
                if let Some(t) = match_chunk(chunk, &name[i + 1..])? {
                    if pattern.is_empty() && !t.is_empty() {
                        i += 1;
                        continue;
                    }
                    name = t;
                    continue 'outer;
                }
                i += 1;
            }
        }
        while !pattern.is_empty() {
            let (_, chunk, rest) = scan_chunk(pattern);
            pattern = rest;
            match_chunk(chunk, b"")?;
        }
        return Ok(false);
    }
    Ok(name.is_empty())
}

fn scan_chunk(mut pattern: &[u8]) -> (bool, &[u8], &[u8]) {
    let mut star = false;
    while pattern.first() == Some(&b'*') {
        pattern = &pattern[1..];
        star = true;
    }
    let mut in_range = false;
    let mut i = 0;
    while i < pattern.len() {
        match pattern[i] {
            b'\\' if i + 1 < pattern.len() => i += 1,
            b'[' => in_range = true,
            b']' => in_range = false,
            b'*' if !in_range => break,
            _ => {}
        }
        i += 1;
    }
    (star, &pattern[..i], &pattern[i..])
}

fn decode_rune(s: &[u8]) -> (char, usize) {
    let n = match s.first() {
        None => return ('\u{FFFD}', 0),
        Some(b) if *b < 0x80 => 1,
        Some(b) if *b >= 0xF0 => 4,
        Some(b) if *b >= 0xE0 => 3,
        _ => 2,
    };
    match s
        .get(..n)
        .and_then(|b| std::str::from_utf8(b).ok())
        .and_then(|t| t.chars().next())
    {
        Some(c) => (c, n),
        None => ('\u{FFFD}', 1),
    }
}

/// Matches one chunk at the start of `s`; `Ok(Some(rest))` on a match.
fn match_chunk<'a>(mut chunk: &[u8], mut s: &'a [u8]) -> Result<Option<&'a [u8]>, IgnoreError> {
    let mut failed = false;
    while !chunk.is_empty() {
        if !failed && s.is_empty() {
            failed = true;
        }
        match chunk[0] {
            b'[' => {
                let mut r = '\0';
                if !failed {
                    let (c, n) = decode_rune(s);
                    r = c;
                    s = &s[n..];
                }
                chunk = &chunk[1..];
                let negated = chunk.first() == Some(&b'^');
                if negated {
                    chunk = &chunk[1..];
                }
                let mut matched = false;
                let mut nrange = 0;
                loop {
                    if chunk.first() == Some(&b']') && nrange > 0 {
                        chunk = &chunk[1..];
                        break;
                    }
                    let (lo, rest) = get_esc(chunk)?;
                    chunk = rest;
                    let mut hi = lo;
                    if chunk[0] == b'-' {
                        let (h, rest) = get_esc(&chunk[1..])?;
                        hi = h;
                        chunk = rest;
                    }
                    if lo <= r && r <= hi {
                        matched = true;
                    }
                    nrange += 1;
                }
                if matched == negated {
                    failed = true;
                }
            }
            b'?' => {
                if !failed {
                    if s[0] == b'/' {
                        failed = true;
                    }
                    let (_, n) = decode_rune(s);
                    s = &s[n.max(1)..];
                }
                chunk = &chunk[1..];
            }
            c => {
                let lit = if c == b'\\' {
                    chunk = &chunk[1..];
                    *chunk.first().ok_or(IgnoreError::BadPattern)?
                } else {
                    c
                };
                if !failed {
                    if lit != s[0] {
                        failed = true;
                    }
                    s = &s[1..];
                }
                chunk = &chunk[1..];
            }
        }
    }
    Ok(if failed { None } else { Some(s) })
}

fn get_esc(chunk: &[u8]) -> Result<(char, &[u8]), IgnoreError> {
    let mut chunk = chunk;
    match chunk.first() {
        None | Some(b'-') | Some(b']') => return Err(IgnoreError::BadPattern),
        Some(b'\\') => {
            chunk = &chunk[1..];
            if chunk.is_empty() {
                return Err(IgnoreError::BadPattern);
            }
        }
        _ => {}
    }
    let (r, n) = decode_rune(chunk);
    if r == '\u{FFFD}' && n == 1 {
        return Err(IgnoreError::BadPattern);
    }
    let rest = &chunk[n..];
    if rest.is_empty() {
        return Err(IgnoreError::BadPattern);
    }
    Ok((r, rest))
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

    #[test]
    fn the_dockerfile_specific_file_wins_when_present() {
        let dir = tempfile::tempdir().expect("tempdir");
        let df = dir.path().join("sub/app.Dockerfile");
        std::fs::create_dir_all(dir.path().join("sub")).expect("mkdir");
        assert!(load(dir.path(), &df).expect("no files").is_empty());
        std::fs::write(dir.path().join(".dockerignore"), "*.log\n").expect("write");
        assert_eq!(load(dir.path(), &df).expect("root file"), ["*.log"]);
        std::fs::write(
            dir.path().join("sub/app.Dockerfile.dockerignore"),
            "!keep.log\n",
        )
        .expect("write");
        assert_eq!(load(dir.path(), &df).expect("specific file"), ["!keep.log"]);
    }

    #[test]
    fn clean_like_go() {
        for (i, o) in [
            ("a/../..", ".."),
            ("/../a", "/a"),
            ("a//b/./c/", "a/b/c"),
            ("", "."),
            ("/", "/"),
        ] {
            assert_eq!(clean(i), o, "{i}");
        }
    }
}
