//! Shell word splitting and variable expansion: a port of BuildKit's shell lexer
//! (`frontend/dockerfile/shell/lex.go`, `shell.Lex`), kept in one file to be read side by side
//! with it.
//!
//! This is not a shell: it expands `$VAR`, `${VAR}` and the `${VAR<op>word}` forms BuildKit
//! supports, processes quotes and the escape token, and splits words. The rules (and a few
//! quirks, kept on purpose so that Dockerfiles expand exactly as under `docker build`) are
//! BuildKit's.

use std::collections::BTreeSet;

use regex::Regex;

use crate::gocompat::{is_digit, is_letter, is_space, quote};

/// A lookup of variables for expansion.
pub trait Env {
    fn lookup(&self, key: &str) -> Option<&str>;
}

/// An ordered list of variables; later definitions replace earlier ones in place.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Vars(Vec<(String, String)>);

impl Vars {
    pub fn new() -> Self {
        Self::default()
    }

    /// `KEY=VALUE` strings, split at the first `=`; a later key wins.
    pub fn from_pairs<I: IntoIterator<Item = S>, S: AsRef<str>>(items: I) -> Self {
        let mut v = Vars::new();
        for item in items {
            let (k, val) = item.as_ref().split_once('=').unwrap_or((item.as_ref(), ""));
            v.set(k, val);
        }
        v
    }

    pub fn set(&mut self, key: &str, value: &str) {
        match self.0.iter_mut().find(|(k, _)| k == key) {
            Some(slot) => slot.1 = value.to_string(),
            None => self.0.push((key.to_string(), value.to_string())),
        }
    }

    pub fn remove(&mut self, key: &str) {
        self.0.retain(|(k, _)| k != key);
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(|(k, _)| k.as_str())
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }
}

impl Env for Vars {
    fn lookup(&self, key: &str) -> Option<&str> {
        self.get(key)
    }
}

/// An environment with nothing in it.
pub struct NoEnv;

impl Env for NoEnv {
    fn lookup(&self, _: &str) -> Option<&str> {
        None
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct LexError(pub String);

/// How deeply `${...}` words may nest (`${a:-${b:-...}}`). BuildKit sets no limit and recurses
/// until the stack overflows; a Dockerfile that nests this deep is an attack, not a build
/// (L6 of SECURITY.md), so it gets this error instead of a crash.
pub const MAX_NESTING: usize = 100;

fn err<T>(msg: impl Into<String>) -> Result<T, LexError> {
    Err(LexError(msg.into()))
}

/// The result of expanding one word, with the variables it referenced.
#[derive(Debug, Clone, Default)]
pub struct Expansion {
    pub result: String,
    pub words: Vec<String>,
    pub matched: BTreeSet<String>,
    pub unmatched: BTreeSet<String>,
}

/// Lexer settings (`shell.Lex`).
#[derive(Debug, Clone, Copy)]
pub struct Lex {
    pub escape: char,
    /// Keep quote characters in the output.
    pub raw_quotes: bool,
    /// Keep escape tokens in the output.
    pub raw_escapes: bool,
    /// Treat quotes as ordinary characters.
    pub skip_process_quotes: bool,
    /// Leave references to unset variables as they are.
    pub skip_unset_env: bool,
}

impl Lex {
    pub fn new(escape: char) -> Self {
        Lex {
            escape,
            raw_quotes: false,
            raw_escapes: false,
            skip_process_quotes: false,
            skip_unset_env: false,
        }
    }

    /// Expands `word` without splitting it.
    pub fn process_word(&self, word: &str, env: &dyn Env) -> Result<String, LexError> {
        self.process(word, env).map(|e| e.result)
    }

    /// Expands `word` and splits it into words (after expansion, honouring quotes).
    pub fn process_words(&self, word: &str, env: &dyn Env) -> Result<Vec<String>, LexError> {
        self.process(word, env).map(|e| e.words)
    }

    /// Expands `word` and reports which variables it used.
    pub fn process(&self, word: &str, env: &dyn Env) -> Result<Expansion, LexError> {
        let mut sw = ShellWord {
            lex: *self,
            chars: word.chars().collect(),
            pos: 0,
            env,
            raw_escapes: self.raw_escapes,
            words_buf: String::new(),
            matched: BTreeSet::new(),
            unmatched: BTreeSet::new(),
            depth: 0,
            too_deep: false,
        };
        match sw.process_stop_on(None, self.raw_escapes) {
            Ok((result, words)) => Ok(Expansion {
                result,
                words,
                matched: sw.matched,
                unmatched: sw.unmatched,
            }),
            Err(e) => err(format!("failed to process {}: {}", quote(word), e.0)),
        }
    }
}

struct ShellWord<'a> {
    lex: Lex,
    chars: Vec<char>,
    pos: usize,
    env: &'a dyn Env,
    raw_escapes: bool,
    // BuildKit shares one word buffer between nested calls (a `${x:-y}` inside a word resets
    // the partial word before it); kept so that splitting matches `docker build`.
    words_buf: String,
    matched: BTreeSet<String>,
    unmatched: BTreeSet<String>,
    /// `${...}` words being read, one inside the other ([`MAX_NESTING`]).
    depth: usize,
    /// The nesting went over [`MAX_NESTING`]: that error, not "missing '}'", is reported.
    too_deep: bool,
}

/// Word accumulator (`wordsStruct`); its buffer lives in `ShellWord::words_buf`.
#[derive(Default)]
struct Words {
    words: Vec<String>,
    in_word: bool,
}

impl Words {
    fn add_char(&mut self, buf: &mut String, ch: char) {
        if is_space(ch) && self.in_word {
            if !buf.is_empty() {
                self.words.push(std::mem::take(buf));
                self.in_word = false;
            }
        } else if !is_space(ch) {
            self.add_raw_char(buf, ch);
        }
    }

    fn add_raw_char(&mut self, buf: &mut String, ch: char) {
        buf.push(ch);
        self.in_word = true;
    }

    fn add_string(&mut self, buf: &mut String, s: &str) {
        for ch in s.chars() {
            self.add_char(buf, ch);
        }
    }

    fn add_raw_string(&mut self, buf: &mut String, s: &str) {
        buf.push_str(s);
        self.in_word = true;
    }

    fn finish(mut self, buf: &mut String) -> Vec<String> {
        if !buf.is_empty() {
            self.words.push(std::mem::take(buf));
        }
        self.words
    }
}

impl ShellWord<'_> {
    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    fn next(&mut self) -> Option<char> {
        let c = self.peek();
        if c.is_some() {
            self.pos += 1;
        }
        c
    }

    fn process_stop_on(
        &mut self,
        stop: Option<char>,
        raw_escapes: bool,
    ) -> Result<(String, Vec<String>), LexError> {
        let saved = self.raw_escapes;
        self.raw_escapes = raw_escapes;
        let r = self.process_stop_on_inner(stop);
        self.raw_escapes = saved;
        r
    }

    fn process_stop_on_inner(
        &mut self,
        stop: Option<char>,
    ) -> Result<(String, Vec<String>), LexError> {
        let mut result = String::new();
        self.words_buf.clear();
        let mut words = Words::default();

        while let Some(ch) = self.peek() {
            if Some(ch) == stop {
                self.next();
                let w = words.finish(&mut self.words_buf);
                return Ok((result, w));
            }
            match ch {
                '$' => {
                    let tmp = self.process_dollar()?;
                    result.push_str(&tmp);
                    words.add_string(&mut self.words_buf, &tmp);
                }
                '<' => {
                    let tmp = self.process_possible_heredoc();
                    result.push_str(&tmp);
                    words.add_raw_string(&mut self.words_buf, &tmp);
                }
                '\'' | '"' if !self.lex.skip_process_quotes => {
                    let tmp = if ch == '\'' {
                        self.process_single_quote()?
                    } else {
                        self.process_double_quote()?
                    };
                    result.push_str(&tmp);
                    words.add_raw_string(&mut self.words_buf, &tmp);
                }
                _ => {
                    self.next();
                    if ch == self.lex.escape {
                        if self.raw_escapes {
                            words.add_raw_char(&mut self.words_buf, ch);
                            result.push(ch);
                        }
                        // The escape token escapes the next character, except at the end.
                        let Some(escaped) = self.next() else { break };
                        words.add_raw_char(&mut self.words_buf, escaped);
                        result.push(escaped);
                    } else {
                        words.add_char(&mut self.words_buf, ch);
                        result.push(ch);
                    }
                }
            }
        }
        if let Some(stop) = stop {
            return err(format!(
                "unexpected end of statement while looking for matching {stop}"
            ));
        }
        let w = words.finish(&mut self.words_buf);
        Ok((result, w))
    }

    fn process_single_quote(&mut self) -> Result<String, LexError> {
        // Everything up to the next single quote is literal; a single quote can't be escaped.
        let mut result = String::new();
        let open = self.next();
        if self.lex.raw_quotes {
            result.extend(open);
        }
        loop {
            match self.next() {
                None => {
                    return err(
                        "unexpected end of statement while looking for matching single-quote",
                    );
                }
                Some('\'') => {
                    if self.lex.raw_quotes {
                        result.push('\'');
                    }
                    return Ok(result);
                }
                Some(c) => result.push(c),
            }
        }
    }

    fn process_double_quote(&mut self) -> Result<String, LexError> {
        // Literal except `$` and the escape token, which escapes only `"`, `$` and itself.
        let mut result = String::new();
        let open = self.next();
        if self.lex.raw_quotes {
            result.extend(open);
        }
        loop {
            match self.peek() {
                None => {
                    return err(
                        "unexpected end of statement while looking for matching double-quote",
                    );
                }
                Some('"') => {
                    self.next();
                    if self.lex.raw_quotes {
                        result.push('"');
                    }
                    return Ok(result);
                }
                Some('$') => {
                    let v = self.process_dollar()?;
                    result.push_str(&v);
                }
                Some(_) => {
                    let mut ch = self.next().unwrap_or_default();
                    if ch == self.lex.escape {
                        if self.raw_escapes {
                            result.push(ch);
                        }
                        match self.peek() {
                            None => continue,
                            Some(c) if c == '"' || c == '$' || c == self.lex.escape => {
                                ch = c;
                                self.next();
                            }
                            Some(_) => {}
                        }
                    }
                    result.push(ch);
                }
            }
        }
    }

    fn process_dollar(&mut self) -> Result<String, LexError> {
        self.next();

        if self.peek() != Some('{') {
            let name = self.process_name();
            if name.is_empty() {
                return Ok("$".into());
            }
            return Ok(match self.get_env(&name) {
                Some(v) => v,
                None if self.lex.skip_unset_env => format!("${name}"),
                None => String::new(),
            });
        }

        self.next();
        match self.peek() {
            None => return err("syntax error: missing '}'"),
            Some('{' | '}' | ':') => return err("syntax error: bad substitution"),
            _ => {}
        }
        let name = self.process_name();
        let first = self.next();
        // Go renders a missing rune (EOF) as U+FFFD in messages.
        let mut chs: String = first.unwrap_or('\u{FFFD}').to_string();

        match first {
            Some('}') => Ok(match self.get_env(&name) {
                Some(v) => v,
                None if self.lex.skip_unset_env => format!("${{{name}}}"),
                None => String::new(),
            }),
            Some(':' | '+' | '-' | '?' | '#' | '%') => {
                let mut ch = first;
                let null_is_unset = ch == Some(':');
                if null_is_unset {
                    ch = self.next();
                    chs.push(ch.unwrap_or('\u{FFFD}'));
                }
                let raw = matches!(ch, Some('#' | '%'));
                if null_is_unset && raw {
                    return err(format!("unsupported modifier ({chs}) in substitution"));
                }
                let word = self.word_until('}', raw, "syntax error: missing '}'")?;
                let value = self.get_env(&name);
                if self.lex.skip_unset_env && value.is_none() {
                    return Ok(format!("${{{name}{chs}{word}}}"));
                }
                let set = value.is_some();
                let value = value.unwrap_or_default();
                let unset_or_null = !set || (null_is_unset && value.is_empty());
                match ch {
                    Some('-') => Ok(if unset_or_null { word } else { value }),
                    Some('+') => Ok(if unset_or_null { String::new() } else { word }),
                    Some('?') => {
                        if !set {
                            let msg = if word.is_empty() {
                                "is not allowed to be unset"
                            } else {
                                &word
                            };
                            return err(format!("{name}: {msg}"));
                        }
                        if null_is_unset && value.is_empty() {
                            let msg = if word.is_empty() {
                                "is not allowed to be empty"
                            } else {
                                &word
                            };
                            return err(format!("{name}: {msg}"));
                        }
                        Ok(value)
                    }
                    Some(op @ ('%' | '#')) => {
                        // `%`/`#` remove the shortest match, `%%`/`##` the longest.
                        let (greedy, pattern) = match word.strip_prefix(op) {
                            Some(rest) => (true, rest.to_string()),
                            None => (false, word),
                        };
                        if op == '%' {
                            trim_suffix(&pattern, &value, greedy)
                        } else {
                            trim_prefix(&pattern, &value, greedy)
                        }
                    }
                    _ => err(format!("unsupported modifier ({chs}) in substitution")),
                }
            }
            Some('/') => {
                let replace_all = self.peek() == Some('/');
                if replace_all {
                    self.next();
                }
                let pattern = self.word_until('/', true, "syntax error: missing '/' in ${}")?;
                let replacement = self.word_until('}', true, "syntax error: missing '}'")?;
                let value = self.get_env(&name);
                if self.lex.skip_unset_env && value.is_none() {
                    return Ok(format!("${{{name}/{pattern}/{replacement}}}"));
                }
                let value = value.unwrap_or_default();
                let re = shell_pattern_to_regex(&pattern, true, false).map_err(|e| {
                    LexError(format!(
                        "invalid pattern ({pattern}) in substitution: {}",
                        e.0
                    ))
                })?;
                if replace_all {
                    Ok(re.replace_all(&value, replacement.as_str()).into_owned())
                } else if let Some(m) = re.find(&value) {
                    Ok(format!(
                        "{}{}{}",
                        &value[..m.start()],
                        replacement,
                        &value[m.end()..]
                    ))
                } else {
                    Ok(value)
                }
            }
            _ => err(format!("unsupported modifier ({chs}) in substitution")),
        }
    }

    /// The expanded word up to `stop` inside `${...}`; `missing` when the input ends first.
    fn word_until(
        &mut self,
        stop: char,
        raw_escapes: bool,
        missing: &str,
    ) -> Result<String, LexError> {
        // The one way back into the lexer from inside a `${...}`: the depth is counted here.
        if self.depth >= MAX_NESTING {
            self.too_deep = true;
            return err(format!(
                "more than {MAX_NESTING} nested ${{...}} substitutions"
            ));
        }
        self.depth += 1;
        let r = self.process_stop_on(Some(stop), raw_escapes);
        self.depth -= 1;
        match r {
            Ok((w, _)) => Ok(w),
            Err(_) if self.peek().is_none() && !self.too_deep => err(missing),
            Err(e) => Err(e),
        }
    }

    /// A variable name: letters, digits and `_`; or a run of digits; or one special parameter.
    fn process_name(&mut self) -> String {
        let mut name = String::new();
        while let Some(ch) = self.peek() {
            if name.is_empty() && is_digit(ch) {
                while let Some(d) = self.peek().filter(|c| is_digit(*c)) {
                    name.push(d);
                    self.next();
                }
                return name;
            }
            if name.is_empty() && matches!(ch, '@' | '*' | '#' | '?' | '-' | '$' | '!' | '0') {
                self.next();
                return ch.to_string();
            }
            if !is_letter(ch) && !is_digit(ch) && ch != '_' {
                break;
            }
            name.push(ch);
            self.next();
        }
        name
    }

    fn process_possible_heredoc(&mut self) -> String {
        self.next();
        if self.peek() != Some('<') {
            return "<".into();
        }
        self.next();
        // A heredoc may have whitespace between `<<` and its delimiter word.
        let mut out = String::from("<<");
        while let Some(c) = self.peek().filter(|c| matches!(c, '\t' | '\r' | ' ')) {
            out.push(c);
            self.next();
        }
        out
    }

    fn get_env(&mut self, name: &str) -> Option<String> {
        match self.env.lookup(name) {
            Some(v) => {
                self.matched.insert(name.to_string());
                Some(v.to_string())
            }
            None => {
                self.unmatched.insert(name.to_string());
                None
            }
        }
    }
}

/// Converts a shell wildcard pattern (`?`, `*`, no bracket expressions) to a regex.
fn shell_pattern_to_regex(pattern: &str, greedy: bool, anchored: bool) -> Result<Regex, LexError> {
    let chars: Vec<char> = pattern.chars().collect();
    let mut out = String::with_capacity(pattern.len() + 4);
    if anchored {
        out.push('^');
    }
    let star = if greedy { ".*" } else { ".*?" };
    let mut i = 0;
    while i < chars.len() {
        let mut tok = chars[i];
        i += 1;
        match tok {
            '*' => {
                out.push_str(star);
                continue;
            }
            '?' => {
                out.push('.');
                continue;
            }
            '\\' => {
                // `}` and `/` are escaped inside `${}`, but the escape is not part of the pattern.
                if matches!(chars.get(i), Some('}' | '/')) {
                    continue;
                }
                out.push('\\');
                let next = chars.get(i).copied();
                i += 1;
                match next {
                    Some(c @ ('*' | '?' | '\\')) => tok = c,
                    other => {
                        return err(format!(
                            "invalid escape '\\{}'",
                            other.unwrap_or('\u{FFFD}')
                        ));
                    }
                }
            }
            '[' | ']' | '{' | '}' | '.' | '+' | '(' | ')' | '|' | '^' | '$' => out.push('\\'),
            _ => {}
        }
        out.push(tok);
    }
    Regex::new(&out).map_err(|e| LexError(e.to_string()))
}

fn trim_prefix(pattern: &str, value: &str, greedy: bool) -> Result<String, LexError> {
    let re = shell_pattern_to_regex(pattern, greedy, true).map_err(|e| {
        LexError(format!(
            "invalid pattern ({pattern}) in substitution: {}",
            e.0
        ))
    })?;
    Ok(match re.find(value) {
        Some(m) => value[m.end()..].to_string(),
        None => value.to_string(),
    })
}

/// Reverses a pattern without reversing its escapes (`a\*c` becomes `c\*a`).
fn reverse_pattern(pattern: &str) -> String {
    let p: Vec<char> = pattern.chars().collect();
    let last = p.len().wrapping_sub(1);
    let mut out = vec!['\0'; p.len()];
    let mut i = 0;
    while i < p.len() {
        let out_idx = last - i;
        if p[i] == '\\' && i != last {
            out[out_idx - 1] = p[i];
            out[out_idx] = p[i + 1];
            i += 2;
        } else {
            out[out_idx] = p[i];
            i += 1;
        }
    }
    out.into_iter().collect()
}

fn trim_suffix(pattern: &str, value: &str, greedy: bool) -> Result<String, LexError> {
    // A regex can't find the shortest rightmost match, so reverse both and trim a prefix.
    let rev_value: String = value.chars().rev().collect();
    let trimmed = trim_prefix(&reverse_pattern(pattern), &rev_value, greedy)?;
    Ok(trimmed.chars().rev().collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn expand(word: &str, env: &[&str]) -> Result<String, LexError> {
        Lex::new('\\').process_word(word, &Vars::from_pairs(env))
    }

    #[test]
    fn pattern_conversion_matches_buildkit() {
        assert_eq!(
            shell_pattern_to_regex("*", true, true).map(|r| r.to_string()),
            Ok("^.*".into())
        );
        assert_eq!(
            shell_pattern_to_regex(r"(()[]{\}^$.\*\?|\\", true, true).map(|r| r.to_string()),
            Ok(r"^\(\(\)\[\]\{\}\^\$\.\*\?\|\\".into())
        );
        for bad in ["\\", "\\x", "\\\\\\"] {
            assert!(shell_pattern_to_regex(bad, true, true).is_err(), "{bad}");
        }
        assert_eq!(reverse_pattern(r"a\*c"), r"c\*a");
        assert_eq!(reverse_pattern(r"\\\ab"), r"b\a\\");
        assert_eq!(reverse_pattern("ab\\"), "\\ba");
    }

    #[test]
    fn mandatory_variables() {
        let word = "${VAR:?message here$ARG}";
        assert_eq!(expand(word, &["VAR=plain", "ARG=x"]), Ok("plain".into()));
        assert!(expand(word, &["VAR=", "ARG=x"]).is_err_and(|e| e.0.contains("message herex")));
        assert!(expand(word, &["ARG=x"]).is_err_and(|e| e.0.contains("message herex")));
        let word = "${VAR?message here$ARG}";
        assert_eq!(expand(word, &["VAR=", "ARG=x"]), Ok("".into()));
        assert!(expand(word, &["ARG=x"]).is_err_and(|e| e.0.contains("message herex")));
    }

    #[test]
    fn substitutions() {
        let env = ["V=/usr/local/bin/tool.tar.gz"];
        assert_eq!(
            expand("${V#*/}", &env),
            Ok("usr/local/bin/tool.tar.gz".into())
        );
        assert_eq!(expand("${V##*/}", &env), Ok("tool.tar.gz".into()));
        assert_eq!(
            expand("${V%.*}", &env),
            Ok("/usr/local/bin/tool.tar".into())
        );
        assert_eq!(expand("${V%%.*}", &env), Ok("/usr/local/bin/tool".into()));
        assert_eq!(
            expand("${V/local/opt}", &env),
            Ok("/usr/opt/bin/tool.tar.gz".into())
        );
        assert_eq!(
            expand("${V//o/0}", &env),
            Ok("/usr/l0cal/bin/t00l.tar.gz".into())
        );
        assert_eq!(expand("${U:-dflt}", &env), Ok("dflt".into()));
        assert_eq!(expand("${V:+set}", &env), Ok("set".into()));
        assert!(expand("${V:=x}", &env).is_err());
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_stack_overflow() {
        let nest = |n: usize| format!("{}x{}", "${a:-".repeat(n), "}".repeat(n));
        assert_eq!(expand(&nest(MAX_NESTING), &[]), Ok("x".into()));
        let deep = nest(100_000);
        let e = expand(&deep, &[]).expect_err("too deep");
        assert!(
            e.0.ends_with(": more than 100 nested ${...} substitutions"),
            "{}",
            &e.0[e.0.len() - 80..]
        );
        // Unterminated at depth: still the nesting error, not "missing '}'".
        let open = "${a:-".repeat(200);
        assert!(expand(&open, &[]).is_err_and(|e| e.0.contains("nested")));
    }
}
