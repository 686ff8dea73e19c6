//! The `slipway-builder parse` and `plan` commands, run as a user runs them.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn builder(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_slipway-builder"))
        .args(args)
        .output()
        .expect("runs slipway-builder")
}

fn fixtures() -> PathBuf {
    match std::env::var_os("SLIPWAY_FIXTURES") {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/fixtures"),
    }
}

fn subdirs(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("entry").path())
        .filter(|p| p.is_dir())
        .collect();
    v.sort();
    v
}

#[test]
fn buildkit_parse_dump_command_prints_the_result_files() {
    let mut failures = Vec::new();
    let dirs = subdirs(&fixtures().join("buildkit/parser/testfiles"));
    for dir in &dirs {
        let file = dir.join("Dockerfile");
        let out = builder(&["parse", "--dump", file.to_str().expect("utf-8 path")]);
        let want = std::fs::read(dir.join("result")).expect("result file");
        if !out.status.success() || out.stdout != want {
            failures.push(format!(
                "{}: status {}, stdout {:?}, stderr {:?}",
                dir.display(),
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} differ:\n{}",
        failures.len(),
        dirs.len(),
        failures.join("\n")
    );
}

#[test]
fn buildkit_parse_dump_command_rejects_negative_cases_with_file_and_line() {
    for dir in subdirs(&fixtures().join("buildkit/parser/testfiles-negative")) {
        let file = dir.join("Dockerfile");
        let file = file.to_str().expect("utf-8 path");
        let out = builder(&["parse", "--dump", file]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{file}: {stderr}");
        assert!(
            out.stdout.is_empty(),
            "{file}: printed {:?}",
            String::from_utf8_lossy(&out.stdout)
        );
        let rest = stderr
            .strip_prefix(&format!("{file}:"))
            .unwrap_or_else(|| panic!("{stderr}"));
        let (line, message) = rest.split_once(": ").unwrap_or_else(|| panic!("{stderr}"));
        assert!(line.parse::<usize>().is_ok_and(|l| l >= 1), "{stderr}");
        assert!(!message.trim().is_empty(), "{stderr}");
        assert_eq!(stderr.lines().count(), 1, "one error line: {stderr}");
    }
}

#[test]
fn plan_command_prints_json_and_reports_bad_input() {
    let dir = tempfile::tempdir().expect("tempdir");
    let df = dir.path().join("Dockerfile");
    std::fs::write(
        &df,
        "ARG V=1\nFROM busybox AS build\nARG V\nRUN echo $V > /out\nFROM busybox AS unused\nFROM busybox\nCOPY --from=build /out /\n",
    )
    .expect("write");
    let dfs = df.to_str().expect("utf-8");
    let out = builder(&[
        "plan",
        "--dockerfile",
        dfs,
        "--build-arg",
        "V=2",
        "--build-arg",
        "NOPE=1",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON on stdout");
    assert_eq!(v["target"], 2);
    let idx: Vec<u64> = v["stages"]
        .as_array()
        .expect("stages")
        .iter()
        .map(|s| s["index"].as_u64().expect("index"))
        .collect();
    assert_eq!(idx, [0, 2]);
    assert_eq!(v["stages"][0]["exports"], serde_json::json!(["/out"]));
    assert_eq!(v["stages"][1]["dependsOn"], serde_json::json!([0]));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("NOPE"),
        "unused build-arg warning"
    );

    let out = builder(&["plan", "--dockerfile", dfs, "--target", "missing"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("\"missing\" could not be found"));

    std::fs::write(&df, "FROM busybox\nRUN true\nCOPY only-one\n").expect("write");
    let out = builder(&["plan", "--dockerfile", dfs]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.starts_with(&format!(
            "{dfs}:3: COPY: COPY requires at least two arguments"
        )),
        "{stderr}"
    );
    assert!(out.stdout.is_empty());
}
