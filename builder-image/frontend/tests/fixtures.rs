//! Runs every case under the fixtures folder (BuildKit's own parser and shell-lexer test data,
//! moby/patternmatcher's `.dockerignore` cases). The folder is `$SLIPWAY_FIXTURES` when set,
//! else `../shared/fixtures` beside the repository; every file found runs, so a new case
//! needs no code change. Each test collects all failures and reports them together.

use std::fs;
use std::path::PathBuf;

use slipway_frontend::dockerfile::parser::parse;
use slipway_frontend::dockerfile::shell::{Lex, Vars};
use slipway_frontend::dockerignore::Matcher;

fn fixtures() -> PathBuf {
    match std::env::var_os("SLIPWAY_FIXTURES") {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/fixtures"),
    }
}

fn case_dirs(dir: PathBuf) -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("fixtures folder {}: {e}", dir.display()))
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    assert!(!dirs.is_empty(), "no cases in {}", dir.display());
    dirs
}

fn read_text(p: &PathBuf) -> String {
    let bytes = fs::read(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    String::from_utf8_lossy(&bytes).into_owned()
}

fn report(what: &str, ran: usize, failures: Vec<String>) {
    eprintln!("{what}: {ran} cases, {} failed", failures.len());
    assert!(
        failures.is_empty(),
        "{what}: {} of {ran} failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn buildkit_parser_testfiles_dump_like_buildkit() {
    let mut failures = Vec::new();
    let dirs = case_dirs(fixtures().join("buildkit/parser/testfiles"));
    for dir in &dirs {
        let name = dir
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned();
        let expected = read_text(&dir.join("result"));
        match parse(&read_text(&dir.join("Dockerfile"))) {
            Ok(p) => {
                let got = p.ast.dump() + "\n";
                if got != expected {
                    failures.push(format!("{name}:\n--- expected\n{expected}--- got\n{got}"));
                }
            }
            Err(e) => failures.push(format!("{name}: parse error: {e}")),
        }
    }
    report("buildkit parser testfiles", dirs.len(), failures);
}

#[test]
fn buildkit_parser_negative_cases_are_rejected() {
    let mut failures = Vec::new();
    let dirs = case_dirs(fixtures().join("buildkit/parser/testfiles-negative"));
    for dir in &dirs {
        let name = dir
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned();
        if let Ok(p) = parse(&read_text(&dir.join("Dockerfile"))) {
            failures.push(format!("{name}: accepted, dump {}", p.ast.dump()));
        }
    }
    report("buildkit negative testfiles", dirs.len(), failures);
}

#[test]
fn buildkit_testfile_line_numbers() {
    // Expectations of BuildKit's TestParseIncludesLineNumbers for this file.
    let p = parse(&read_text(
        &fixtures().join("buildkit/parser/testfile-line.Dockerfile"),
    ))
    .expect("testfile-line parses");
    assert_eq!((p.ast.start_line, p.ast.end_line), (5, 31));
    let spans: Vec<(usize, usize)> = p
        .ast
        .children
        .iter()
        .map(|c| (c.start_line, c.end_line))
        .collect();
    assert_eq!(spans, [(5, 5), (11, 12), (17, 31)]);
}

#[test]
fn buildkit_env_var_test_expands_like_buildkit() {
    let env = Vars::from_pairs(["PWD=/home", "SHELL=bash", "KOREAN=한국어", "NULL="]);
    let lex = Lex::new('\\');
    let text = read_text(&fixtures().join("buildkit/shell/envVarTest"));
    let (mut ran, mut failures) = (0, Vec::new());
    for (n, line) in text.lines().enumerate() {
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let cols: Vec<&str> = line.trim().split('|').collect();
        assert_eq!(cols.len(), 3, "line {}: {line:?}", n + 1);
        let (platform, source, expected) = (cols[0].trim(), cols[1].trim(), cols[2].trim());
        if platform == "W" {
            continue; // Windows-only expectations (escape rules differ there).
        }
        ran += 1;
        match (lex.process_word(source, &env), expected) {
            (Err(_), "error") => {}
            (Ok(got), "error") => failures.push(format!(
                "line {}: {source:?} gave {got:?}, want error",
                n + 1
            )),
            (Ok(got), want) if got == want => {}
            (got, want) => failures.push(format!(
                "line {}: {source:?} gave {got:?}, want {want:?}",
                n + 1
            )),
        }
    }
    report("buildkit envVarTest", ran, failures);
}

#[test]
fn buildkit_words_test_splits_like_buildkit() {
    let lex = Lex::new('\\');
    let text = read_text(&fixtures().join("buildkit/shell/wordsTest"));
    let (mut ran, mut failures, mut env) = (0, Vec::new(), Vec::<String>::new());
    for (n, line) in text.lines().enumerate() {
        if line.starts_with('#') {
            continue;
        }
        if let Some(rest) = line.strip_prefix("ENV ") {
            env.push(rest.trim_start_matches(' ').to_string());
            continue;
        }
        let cols: Vec<&str> = line.split('|').collect();
        assert_eq!(cols.len(), 2, "line {}: {line:?}", n + 1);
        let input = cols[0].trim();
        let expected: Vec<&str> = cols[1].trim_start_matches(' ').split(',').collect();
        ran += 1;
        let got = lex
            .process_words(input, &Vars::from_pairs(&env))
            .unwrap_or_else(|_| vec!["error".to_string()]);
        if got != expected {
            failures.push(format!(
                "line {}: {input:?} gave {got:?}, want {expected:?}",
                n + 1
            ));
        }
    }
    report("buildkit wordsTest", ran, failures);
}

fn tsv_rows(file: &str) -> Vec<(usize, Vec<String>)> {
    let text = read_text(&fixtures().join("patternmatcher").join(file));
    let mut rows = Vec::new();
    let mut header_seen = false;
    for (n, line) in text.lines().enumerate() {
        if line.starts_with('#') || line.is_empty() {
            continue;
        }
        if !header_seen {
            header_seen = true; // column names
            continue;
        }
        rows.push((n + 1, line.split('\t').map(str::to_string).collect()));
    }
    assert!(!rows.is_empty(), "no rows in {file}");
    rows
}

#[test]
fn dockerignore_match_cases() {
    let rows = tsv_rows("match_cases.tsv");
    let mut failures = Vec::new();
    for (line, cols) in &rows {
        let col = |i: usize| cols.get(i).map(String::as_str).unwrap_or("");
        let (suite, pattern, path, want, want_err) =
            (col(0), col(2), col(3), col(4) == "true", col(5));
        let fail = |msg: String| format!("line {line} ({suite} {pattern:?} vs {path:?}): {msg}");
        match suite {
            s if s.starts_with("TestMatches") => {
                let m = match Matcher::new(&[pattern]) {
                    Ok(m) => m,
                    Err(e) => {
                        failures.push(fail(format!("pattern rejected: {e}")));
                        continue;
                    }
                };
                let a = m.matches_or_parent_matches(path);
                // Walk parents first, as a context walk does.
                let mut parent = false;
                let mut info = Default::default();
                let parts: Vec<&str> = path.split('/').collect();
                for i in 0..parts.len() {
                    let prefix = parts[..=i].join("/");
                    if prefix.is_empty() && i + 1 < parts.len() {
                        continue;
                    }
                    parent = m.matches_using_parent_result(&prefix, parent);
                    info = m.matches_using_parent_results(&prefix, &info).1;
                }
                let b = parent;
                let c = m.matches_using_parent_results(path, &Default::default()).0;
                if (a, b, c) != (want, want, want) {
                    failures.push(fail(format!("got {a}/{b}/{c}, want {want}")));
                }
            }
            "matchTests" => {
                let got = Matcher::new(&[pattern]).map(|m| m.matches(path));
                match (got, want_err.is_empty()) {
                    (Err(_), false) => {}
                    (Ok(g), true) if g == want => {}
                    (g, _) => failures.push(fail(format!("got {g:?}, want {want} {want_err}"))),
                }
            }
            other => failures.push(fail(format!("unknown suite {other}"))),
        }
    }
    report("dockerignore match cases", rows.len(), failures);
}

#[test]
fn dockerignore_multi_pattern_cases() {
    let rows = tsv_rows("multi_pattern_cases.tsv");
    let mut failures = Vec::new();
    for (line, cols) in &rows {
        let patterns: Vec<String> =
            serde_json::from_str(&cols[0]).expect("patterns column is JSON");
        let (path, want) = (cols[1].as_str(), cols[2] == "true");
        let m = Matcher::new(&patterns).expect("valid patterns");
        let a = m.matches_or_parent_matches(path);
        let b = m.matches_using_parent_results(path, &Default::default()).0;
        if (a, b) != (want, want) {
            failures.push(format!(
                "line {line}: {patterns:?} vs {path}: got {a}/{b}, want {want}"
            ));
        }
    }
    report("dockerignore multi-pattern cases", rows.len(), failures);
}
