//! Dockerfile text to a loose AST of [`Node`]s: a port of BuildKit's `parser` package
//! (`frontend/dockerfile/parser/{parser,line_parsers,directives}.go`), kept in one file to be
//! read side by side with it.
//!
//! This layer knows the line syntax only: parser directives, comments, line continuation,
//! heredocs, flags and each instruction's argument form. What the instructions mean is
//! [`super::instructions`]'s business.

use std::fmt::Write as _;

use super::shell::{Lex, LexError, NoEnv};
use crate::gocompat::{is_space, quote, trim_left_space, trim_space};

/// One node of the AST. The root's children are the instructions; an instruction's `next`
/// holds its arguments (ONBUILD's argument is a node whose only child is the inner
/// instruction).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Node {
    pub value: String,
    pub next: Vec<Node>,
    pub children: Vec<Node>,
    pub heredocs: Vec<Heredoc>,
    /// The arguments were given in JSON (exec) form.
    pub json: bool,
    pub original: String,
    pub flags: Vec<String>,
    pub start_line: usize,
    pub end_line: usize,
    pub prev_comment: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Heredoc {
    pub name: String,
    pub file_descriptor: u32,
    /// Unquoted delimiter: the content is subject to expansion (COPY/ADD).
    pub expand: bool,
    /// `<<-`: leading tabs are stripped from the content.
    pub chomp: bool,
    pub content: String,
}

/// The parsed file.
#[derive(Debug, Clone)]
pub struct Parsed {
    pub ast: Node,
    pub escape: char,
    pub warnings: Vec<Warning>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Warning {
    pub line: usize,
    pub message: String,
}

/// A parse error with the 1-based line range it refers to. It reads as its [`SyntaxError`]
/// alone; the caller adds the file and line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    pub start_line: usize,
    pub end_line: usize,
    pub kind: SyntaxError,
}

impl ParseError {
    fn at(start: usize, end: usize, kind: SyntaxError) -> Self {
        ParseError {
            start_line: start,
            end_line: end.max(start),
            kind,
        }
    }
}

impl std::fmt::Display for ParseError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.kind.fmt(f)
    }
}

// The message is the kind's, so the kind is not repeated as a source: its own source is.
impl std::error::Error for ParseError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.kind.source()
    }
}

/// What is wrong with the text, with BuildKit's message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SyntaxError {
    #[error("dockerfile line greater than max allowed size of {}", MAX_LINE - 1)]
    LineTooLong,
    #[error("only one {0} parser directive can be used")]
    RepeatedDirective(String),
    #[error("invalid escape token '{0}' does not match ` or \\")]
    InvalidEscape(String),
    #[error("file with no instructions")]
    NoInstructions,
    /// ENV or LABEL in the `KEY value` form without a value.
    #[error("{0} must have two arguments")]
    NoValue(&'static str),
    #[error("Syntax error - can't find = in {}. Must be of the form: name=value", quote(.0))]
    NoEquals(String),
    #[error("when using JSON array syntax, arrays must be comprised of strings only")]
    NotStringArray,
    #[error("unterminated heredoc")]
    UnterminatedHeredoc,
    /// A heredoc delimiter the shell lexer rejects.
    #[error(transparent)]
    HeredocName(#[from] LexError),
    #[error("internal lexing of heredoc produced inconsistent results: {0}")]
    InconsistentHeredoc(String),
}

/// BuildKit reads lines with a `bufio.Scanner` whose tokens are at most 64 KiB.
const MAX_LINE: usize = 64 * 1024;

impl Node {
    /// The AST as BuildKit's `Node.Dump()` prints it.
    pub fn dump(&self) -> String {
        let mut s = self.value.to_lowercase();
        if !self.flags.is_empty() {
            let flags: Vec<String> = self.flags.iter().map(|f| quote(f)).collect();
            let _ = write!(s, " [{}]", flags.join(" "));
        }
        for c in &self.children {
            s.push('(');
            s.push_str(&c.dump());
            s.push_str(")\n");
        }
        for n in &self.next {
            s.push(' ');
            if n.children.is_empty() {
                s.push_str(&quote(&n.value));
            } else {
                s.push_str(&n.dump());
            }
        }
        trim_space(&s).to_string()
    }

    fn can_contain_heredoc(&self) -> bool {
        let mut node = self;
        if self.value.eq_ignore_ascii_case("onbuild")
            && let Some(inner) = self.next.first().and_then(|n| n.children.first())
        {
            node = inner;
        }
        let v = node.value.to_lowercase();
        matches!(v.as_str(), "add" | "copy" | "run") && !node.json
    }

    /// The instruction's arguments flattened (`nodeArgs`): ONBUILD's inner instruction
    /// contributes its keyword and its own arguments.
    pub fn args(&self) -> Vec<String> {
        let mut out = Vec::new();
        for n in &self.next {
            match n.children.as_slice() {
                [] => out.push(n.value.clone()),
                [inner] => {
                    out.push(inner.value.clone());
                    out.extend(inner.args());
                }
                _ => {}
            }
        }
        out
    }
}

/// Parser directive state (`directives` and `DirectiveParser`).
struct Directives {
    escape: char,
    done: bool,
    seen: Vec<String>,
}

impl Directives {
    fn new() -> Self {
        Directives {
            escape: '\\',
            done: false,
            seen: Vec::new(),
        }
    }

    /// Looks for a parser directive in a (left-trimmed) line. Directives are only read
    /// until the first line that is not one.
    fn possible_directive(&mut self, line: &str) -> Result<bool, SyntaxError> {
        if self.done {
            return Ok(false);
        }
        let Some(rest) = line.strip_prefix('#') else {
            self.done = true;
            return Ok(false);
        };
        let Some((key, value)) = directive_parts(trim_left_space(rest)) else {
            self.done = true;
            return Ok(false);
        };
        let key = key.to_lowercase();
        if !matches!(key.as_str(), "syntax" | "escape" | "check") {
            self.done = true;
            return Ok(false);
        }
        if self.seen.contains(&key) {
            return Err(SyntaxError::RepeatedDirective(key));
        }
        self.seen.push(key.clone());
        if key == "escape" {
            match value {
                "`" => self.escape = '`',
                "\\" => self.escape = '\\',
                _ => return Err(SyntaxError::InvalidEscape(value.to_string())),
            }
        }
        Ok(true)
    }
}

fn is_go_regex_space(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\x0C' | '\r' | ' ')
}

/// `^([a-zA-Z][a-zA-Z0-9]*)\s*=\s*(.+?)\s*$`
fn directive_parts(s: &str) -> Option<(&str, &str)> {
    let first = s.chars().next()?;
    if !first.is_ascii_alphabetic() {
        return None;
    }
    let key_end = s
        .find(|c: char| !c.is_ascii_alphanumeric())
        .unwrap_or(s.len());
    let (key, rest) = s.split_at(key_end);
    let rest = rest
        .trim_start_matches(is_go_regex_space)
        .strip_prefix('=')?;
    let value = rest.trim_matches(is_go_regex_space);
    if value.is_empty() || value.contains('\n') {
        return None;
    }
    Some((key, value))
}

fn is_comment(line: &str) -> bool {
    trim_left_space(line).starts_with('#')
}

fn trim_newline(s: &str) -> &str {
    s.trim_end_matches(['\r', '\n'])
}

/// Removes a line-continuation escape at the end of the line. Returns the line and whether
/// the instruction ends here. An escaped escape token (`foo \\`) does not continue.
fn trim_continuation(line: &str, escape: char) -> (&str, bool) {
    let body = line.trim_end_matches([' ', '\t']);
    let Some(before) = body.strip_suffix(escape) else {
        return (line, true);
    };
    match before.chars().next_back() {
        None => ("", false),
        Some(c) if c == escape => (line, true),
        Some(_) => (before, false),
    }
}

/// Splits `[\t\v\f\r ]+` once.
fn split_ws_once(s: &str) -> (&str, Option<&str>) {
    let ws = |c: char| matches!(c, '\t' | '\x0B' | '\x0C' | '\r' | ' ');
    match s.find(ws) {
        None => (s, None),
        Some(i) => (&s[..i], Some(s[i..].trim_start_matches(ws))),
    }
}

fn split_ws_all(s: &str) -> Vec<&str> {
    s.split(['\t', '\x0B', '\x0C', '\r', ' '])
        .filter(|w| !w.is_empty())
        .collect::<Vec<_>>()
}

/// Parses a Dockerfile.
pub fn parse(text: &str) -> Result<Parsed, ParseError> {
    let text = text.strip_prefix('\u{FEFF}').unwrap_or(text);
    let lines: Vec<&str> = text.split_inclusive('\n').collect();
    let mut d = Directives::new();
    let mut root = Node::default();
    let mut root_start: Option<usize> = None;
    let mut warnings = Vec::new();
    let mut comments: Vec<String> = Vec::new();
    let mut current = 0usize;
    let mut i = 0usize;

    let too_long = |n: usize| ParseError::at(n, n, SyntaxError::LineTooLong);

    while i < lines.len() {
        let raw = lines[i];
        i += 1;
        if raw.len() > MAX_LINE {
            return Err(too_long(current + 1));
        }
        if is_comment(raw) {
            // BuildKit drops the first byte of the raw line, then trims.
            let mut cs = raw.chars();
            cs.next();
            let comment = trim_space(cs.as_str());
            if comment.is_empty() {
                comments.clear();
            } else {
                comments.push(comment.to_string());
            }
        }
        let (line, directive) = process_line(&mut d, raw, true)
            .map_err(|e| ParseError::at(current + 1, current + 1, e))?;
        if directive {
            comments.pop();
        }
        current += 1;
        let start_line = current;
        let (first, mut eol) = trim_continuation(line, d.escape);
        if eol && first.is_empty() {
            continue;
        }
        let mut buf = first.to_string();
        let mut empty_continuation = false;
        while !eol && i < lines.len() {
            let raw = lines[i];
            i += 1;
            if raw.len() > MAX_LINE {
                return Err(too_long(current + 1));
            }
            let (line, _) = process_line(&mut d, raw, false)
                .map_err(|e| ParseError::at(current + 1, current + 1, e))?;
            current += 1;
            if is_comment(raw) {
                continue;
            }
            if trim_left_space(trim_newline(line)).is_empty() {
                empty_continuation = true;
                continue;
            }
            let (part, e) = trim_continuation(line, d.escape);
            eol = e;
            buf.push_str(part);
        }
        if empty_continuation {
            warnings.push(Warning {
                line: current,
                message: format!("Empty continuation line found in: {buf}"),
            });
        }

        let mut child = node_from_line(&buf, d.escape, comments.clone())
            .map_err(|e| ParseError::at(start_line, current, e))?;

        if child.can_contain_heredoc() && buf.contains("<<") {
            for mut heredoc in
                heredocs_from_line(&buf).map_err(|e| ParseError::at(start_line, current, e))?
            {
                let mut terminated = false;
                let mut content = std::mem::take(&mut heredoc.content);
                while i < lines.len() {
                    let raw = lines[i];
                    i += 1;
                    current += 1;
                    let mut candidate = trim_newline(raw);
                    if heredoc.chomp {
                        candidate = candidate.trim_start_matches('\t');
                    }
                    if candidate == heredoc.name {
                        terminated = true;
                        break;
                    }
                    content.push_str(raw);
                }
                if !terminated {
                    return Err(ParseError::at(
                        start_line,
                        current,
                        SyntaxError::UnterminatedHeredoc,
                    ));
                }
                heredoc.content = content;
                child.heredocs.push(heredoc);
            }
        }

        child.start_line = start_line;
        child.end_line = current;
        root_start.get_or_insert(start_line);
        root.end_line = current;
        root.children.push(child);
        comments.clear();
    }

    let Some(start) = root_start else {
        return Err(ParseError::at(
            current.max(1),
            current.max(1),
            SyntaxError::NoInstructions,
        ));
    };
    root.start_line = start;
    Ok(Parsed {
        ast: root,
        escape: d.escape,
        warnings,
    })
}

fn process_line<'a>(
    d: &mut Directives,
    raw: &'a str,
    strip_left: bool,
) -> Result<(&'a str, bool), SyntaxError> {
    let mut token = trim_newline(raw);
    if strip_left {
        token = trim_left_space(token);
    }
    let directive = d.possible_directive(token)?;
    Ok((if is_comment(token) { "" } else { token }, directive))
}

/// Splits an instruction line into keyword, flags and arguments and parses the arguments
/// with the instruction's argument parser (`newNodeFromLine`).
fn node_from_line(line: &str, escape: char, comments: Vec<String>) -> Result<Node, SyntaxError> {
    let (cmd, rest) = split_ws_once(trim_space(line));
    let (flags, args) = match rest {
        Some(rest) => {
            let (args, flags) = extract_flags(rest, escape);
            (flags, trim_space(args).to_string())
        }
        None => (Vec::new(), String::new()),
    };
    let (next, json) = match cmd.to_lowercase().as_str() {
        "add" | "copy" | "volume" => parse_maybe_json_to_list(&args)?,
        "arg" => (
            parse_words(&args, escape).into_iter().map(leaf).collect(),
            false,
        ),
        "cmd" | "entrypoint" | "run" | "shell" => parse_maybe_json(&args)?,
        "env" => (parse_name_val(&args, "ENV", escape)?, false),
        "label" => (parse_name_val(&args, "LABEL", escape)?, false),
        "expose" | "from" => (split_ws_all(&args).into_iter().map(leaf).collect(), false),
        "healthcheck" => parse_health_config(&args)?,
        "maintainer" | "stopsignal" | "user" | "workdir" => (
            if args.is_empty() {
                vec![]
            } else {
                vec![leaf(&args)]
            },
            false,
        ),
        "onbuild" => {
            if args.is_empty() {
                (vec![], false)
            } else {
                let inner = node_from_line(&args, escape, Vec::new())?;
                (
                    vec![Node {
                        children: vec![inner],
                        ..Node::default()
                    }],
                    false,
                )
            }
        }
        // Unknown instructions parse (with one empty argument) and fail later, as in BuildKit.
        _ => (vec![Node::default()], false),
    };
    Ok(Node {
        value: cmd.to_string(),
        original: line.to_string(),
        flags,
        next,
        json,
        prev_comment: comments,
        ..Node::default()
    })
}

fn leaf(value: impl Into<String>) -> Node {
    Node {
        value: value.into(),
        ..Node::default()
    }
}

/// Takes the leading `--flag` words (quotes and escapes processed); a bare `--` ends them.
/// Returns the rest of the line and the flags.
fn extract_flags(line: &str, escape: char) -> (&str, Vec<String>) {
    #[derive(PartialEq)]
    enum Phase {
        Spaces,
        Word,
        Quote,
    }
    let chars: Vec<(usize, char)> = line.char_indices().collect();
    let mut words = Vec::new();
    let mut phase = Phase::Spaces;
    let mut word = String::new();
    let mut quote = '\0';
    let mut blank_ok = false;
    let mut k = 0;
    loop {
        let at_end = k >= chars.len();
        let (pos, ch) = if at_end { (line.len(), '\0') } else { chars[k] };
        if phase == Phase::Spaces {
            if at_end {
                break;
            }
            if is_space(ch) {
                k += 1;
                continue;
            }
            let dashdash = ch == '-' && chars.get(k + 1).is_some_and(|(_, c)| *c == '-');
            if !dashdash {
                return (&line[pos..], words);
            }
            phase = Phase::Word;
        }
        if at_end {
            if word != "--" && (blank_ok || !word.is_empty()) {
                words.push(word);
            }
            break;
        }
        if phase == Phase::Word {
            if is_space(ch) {
                phase = Phase::Spaces;
                if word == "--" {
                    return (&line[pos..], words);
                }
                if blank_ok || !word.is_empty() {
                    words.push(std::mem::take(&mut word));
                }
                word.clear();
                blank_ok = false;
                k += 1;
                continue;
            }
            if ch == '\'' || ch == '"' {
                quote = ch;
                blank_ok = true;
                phase = Phase::Quote;
                k += 1;
                continue;
            }
            let mut c = ch;
            if ch == escape {
                if k + 1 == chars.len() {
                    k += 1;
                    continue;
                }
                k += 1;
                c = chars[k].1;
            }
            word.push(c);
            k += 1;
            continue;
        }
        // In quotes.
        if ch == quote {
            phase = Phase::Word;
            k += 1;
            continue;
        }
        let mut c = ch;
        if ch == escape {
            if k + 1 == chars.len() {
                phase = Phase::Word;
                k += 1;
                continue;
            }
            k += 1;
            c = chars[k].1;
        }
        word.push(c);
        k += 1;
    }
    ("", words)
}

/// Quote-aware word splitting that keeps quotes and escapes (`parseWords`): they are
/// removed later, during expansion.
pub fn parse_words(rest: &str, escape: char) -> Vec<String> {
    #[derive(PartialEq)]
    enum Phase {
        Spaces,
        Word,
        Quote,
    }
    let chars: Vec<char> = rest.chars().collect();
    let mut words = Vec::new();
    let mut phase = Phase::Spaces;
    let mut quote = '\0';
    let mut blank_ok = false;
    let mut word = String::new();
    let mut k = 0;
    loop {
        let at_end = k >= chars.len();
        let ch = if at_end { '\0' } else { chars[k] };
        if phase == Phase::Spaces {
            if at_end {
                break;
            }
            if is_space(ch) {
                k += 1;
                continue;
            }
            phase = Phase::Word;
        }
        if at_end {
            if blank_ok || !word.is_empty() {
                words.push(word);
            }
            break;
        }
        if phase == Phase::Word {
            if is_space(ch) {
                phase = Phase::Spaces;
                if blank_ok || !word.is_empty() {
                    words.push(std::mem::take(&mut word));
                }
                blank_ok = false;
                k += 1;
                continue;
            }
            if ch == '\'' || ch == '"' {
                quote = ch;
                blank_ok = true;
                phase = Phase::Quote;
            }
            let mut c = ch;
            if ch == escape {
                if k + 1 == chars.len() {
                    k += 1;
                    continue;
                }
                // Unquoted: keep the escape and the character it escapes.
                word.push(ch);
                k += 1;
                c = chars[k];
            }
            word.push(c);
            k += 1;
            continue;
        }
        // In quotes.
        if ch == quote {
            phase = Phase::Word;
        }
        let mut c = ch;
        if ch == escape && quote != '\'' {
            if k + 1 == chars.len() {
                phase = Phase::Word;
                k += 1;
                continue;
            }
            k += 1;
            word.push(ch);
            c = chars[k];
        }
        word.push(c);
        k += 1;
    }
    words
}

fn key_value(key: &str, value: &str, sep: &str) -> [Node; 3] {
    [leaf(key), leaf(value), leaf(sep)]
}

/// ENV and LABEL: the legacy `KEY value...` form or `k=v` pairs (`parseNameVal`).
fn parse_name_val(
    rest: &str,
    keyword: &'static str,
    escape: char,
) -> Result<Vec<Node>, SyntaxError> {
    let words = parse_words(rest, escape);
    let Some(first) = words.first() else {
        return Ok(vec![]);
    };
    if !first.contains('=') {
        let (key, value) = split_ws_once(rest);
        return match value {
            Some(v) if !v.is_empty() || rest.len() > key.len() => {
                Ok(key_value(key, v, "").to_vec())
            }
            _ => Err(SyntaxError::NoValue(keyword)),
        };
    }
    let mut out = Vec::new();
    for w in &words {
        let Some((k, v)) = w.split_once('=') else {
            return Err(SyntaxError::NoEquals(w.clone()));
        };
        out.extend(key_value(k, v, "="));
    }
    Ok(out)
}

enum JsonError {
    NotStrings,
    Invalid,
}

fn parse_json(rest: &str) -> Result<Vec<Node>, JsonError> {
    let rest = trim_left_space(rest);
    if !rest.starts_with('[') {
        return Err(JsonError::Invalid);
    }
    let values: Vec<serde_json::Value> =
        serde_json::from_str(rest).map_err(|_| JsonError::Invalid)?;
    values
        .into_iter()
        .map(|v| match v {
            serde_json::Value::String(s) => Ok(leaf(s)),
            _ => Err(JsonError::NotStrings),
        })
        .collect()
}

/// RUN/CMD/ENTRYPOINT/SHELL: a JSON string array, else the whole rest as one argument.
fn parse_maybe_json(rest: &str) -> Result<(Vec<Node>, bool), SyntaxError> {
    if rest.is_empty() {
        return Ok((vec![], false));
    }
    match parse_json(rest) {
        Ok(nodes) => Ok((nodes, true)),
        Err(JsonError::NotStrings) => Err(SyntaxError::NotStringArray),
        Err(JsonError::Invalid) => Ok((vec![leaf(rest)], false)),
    }
}

/// ADD/COPY/VOLUME: a JSON string array, else whitespace-separated words.
fn parse_maybe_json_to_list(rest: &str) -> Result<(Vec<Node>, bool), SyntaxError> {
    match parse_json(rest) {
        Ok(nodes) => Ok((nodes, true)),
        Err(JsonError::NotStrings) => Err(SyntaxError::NotStringArray),
        Err(JsonError::Invalid) => Ok((split_ws_all(rest).into_iter().map(leaf).collect(), false)),
    }
}

/// HEALTHCHECK: a type word (`CMD`, `NONE`), then the command as in RUN.
fn parse_health_config(rest: &str) -> Result<(Vec<Node>, bool), SyntaxError> {
    let sep = rest.find(is_space).unwrap_or(rest.len());
    if sep == 0 {
        return Ok((vec![], false));
    }
    let typ = &rest[..sep];
    let (cmd, json) = parse_maybe_json(trim_left_space(&rest[sep..]))?;
    let mut out = vec![leaf(typ)];
    out.extend(cmd);
    Ok((out, json))
}

/// `^(\d*)<<(-?)\s*([^<]*)$`: a heredoc redirection word.
pub fn parse_heredoc(word: &str) -> Result<Option<Heredoc>, SyntaxError> {
    let digits = word
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(word.len());
    let Some(after) = word[digits..].strip_prefix("<<") else {
        return Ok(None);
    };
    let (chomp, after) = match after.strip_prefix('-') {
        Some(a) => (true, a),
        None => (false, after),
    };
    let rest = after.trim_start_matches(is_go_regex_space);
    if rest.contains('<') || rest.is_empty() {
        return Ok(None);
    }
    let fd = word[..digits].parse::<u32>().unwrap_or(0);

    // Lex the delimiter with and without quote processing: if the quote counts differ, part
    // of the word was quoted and the content must not be expanded.
    let mut lex = Lex::new('\\');
    lex.skip_unset_env = true;
    let words = lex.process_words(rest, &NoEnv)?;
    if words.len() != 1 {
        return Ok(None);
    }
    lex.raw_quotes = true;
    let raw = lex.process_words(rest, &NoEnv)?;
    if raw.len() != words.len() {
        return Err(SyntaxError::InconsistentHeredoc(rest.to_string()));
    }
    let quotes = |s: &str| s.chars().filter(|c| *c == '\'' || *c == '"').count();
    Ok(Some(Heredoc {
        expand: quotes(&words[0]) == quotes(&raw[0]),
        name: words[0].clone(),
        chomp,
        file_descriptor: fd,
        content: String::new(),
    }))
}

fn heredocs_from_line(line: &str) -> Result<Vec<Heredoc>, SyntaxError> {
    let mut lex = Lex::new('\\');
    lex.raw_quotes = true;
    lex.raw_escapes = true;
    lex.skip_unset_env = true;
    let words = lex.process_words(line, &NoEnv).unwrap_or_default();
    let mut docs = Vec::new();
    for w in words {
        if let Some(h) = parse_heredoc(&w)? {
            docs.push(h);
        }
    }
    Ok(docs)
}

/// Strips leading tabs from every line of a `<<-` heredoc.
pub fn chomp_heredoc(content: &str) -> String {
    content
        .split_inclusive('\n')
        .map(|l| l.trim_start_matches('\t'))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dump(src: &str) -> String {
        parse(src)
            .map(|p| p.ast.dump())
            .unwrap_or_else(|e| format!("error: {e}"))
    }

    #[test]
    fn parse_words_keeps_quotes() {
        assert_eq!(
            parse_words("foo bar 'abc xyz'", '\\'),
            ["foo", "bar", "'abc xyz'"]
        );
        assert_eq!(parse_words("foo\\ bar", '\\'), ["foo\\ bar"]);
        assert_eq!(
            parse_words(r#"föo bàr "âbc xÿz""#, '\\'),
            ["föo", "bàr", r#""âbc xÿz""#]
        );
    }

    #[test]
    fn heredocs_are_read_with_their_options() {
        let src = "FROM busybox\nRUN <<EOF <<-'TWO' 3<<\"x\"y\necho $A\nEOF\n\tquoted $B\n\tTWO\nz\nxy\nCMD x\n";
        let p = parse(src).expect("parses");
        let run = &p.ast.children[1];
        assert_eq!(run.heredocs.len(), 3);
        assert_eq!(
            run.heredocs[0],
            Heredoc {
                name: "EOF".into(),
                expand: true,
                content: "echo $A\n".into(),
                ..Default::default()
            }
        );
        assert_eq!(
            run.heredocs[1],
            Heredoc {
                name: "TWO".into(),
                chomp: true,
                content: "\tquoted $B\n".into(),
                ..Default::default()
            }
        );
        assert_eq!(run.heredocs[2].name, "xy");
        assert_eq!(run.heredocs[2].file_descriptor, 3);
        assert!(!run.heredocs[2].expand);
        assert_eq!((run.start_line, run.end_line), (2, 8));
        assert_eq!(p.ast.children[2].start_line, 9);
        assert_eq!(chomp_heredoc("\tquoted\n\t\tx\n"), "quoted\nx\n");
    }

    #[test]
    fn heredoc_in_json_form_is_not_a_heredoc() {
        assert_eq!(
            dump("FROM a\nRUN [\"<<EOF\"]\nEOF\n"),
            "(from \"a\")\n(run \"<<EOF\")\n(eof \"\")"
        );
    }

    #[test]
    fn unterminated_heredoc_is_an_error() {
        let e = parse("FROM a\nCOPY <<EOF /x\nhello\n").expect_err("unterminated");
        assert_eq!(
            (e.start_line, &e.kind),
            (2, &SyntaxError::UnterminatedHeredoc)
        );
        assert_eq!(e.to_string(), "unterminated heredoc");
    }

    #[test]
    fn directives_only_at_the_top() {
        let p = parse("# escape=`\nFROM a\nRUN x `\n  y\n").expect("parses");
        assert_eq!(p.escape, '`');
        assert_eq!(p.ast.dump(), "(from \"a\")\n(run \"x   y\")");
        let p = parse("# hello\n# escape=`\nFROM a\nRUN x \\\n y\n").expect("parses");
        assert_eq!(p.escape, '\\');
        let e = parse("# escape=`\n# escape=\\\nFROM a").expect_err("repeated directive");
        assert_eq!(
            e.to_string(),
            "only one escape parser directive can be used"
        );
        let e = parse("# escape=x\nFROM a").expect_err("bad escape");
        assert_eq!(
            e.to_string(),
            "invalid escape token 'x' does not match ` or \\"
        );
    }

    #[test]
    fn comments_and_blank_lines_inside_continuations() {
        let p = parse("FROM a\nRUN a \\\n# comment\n\n  b\n").expect("parses");
        assert_eq!(p.ast.children[1].dump(), "run \"a   b\"");
        assert_eq!(p.warnings.len(), 1);
    }
}
