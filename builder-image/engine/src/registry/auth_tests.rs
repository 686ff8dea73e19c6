//! Tests of credentials from Docker config files, with a fake credential helper.

use std::os::unix::fs::PermissionsExt;
use std::process::Command;

use super::*;

fn user_pass(u: &str, p: &str) -> Option<DockerCredential> {
    Some(DockerCredential::UsernamePassword(u.into(), p.into()))
}

fn write(path: &Path, text: &str) {
    std::fs::write(path, text).expect("write");
}

#[test]
fn auths_in_both_forms_by_registry_host() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("config.json");
    write(
        &config,
        r#"{"auths": {
            "https://index.docker.io/v1/": {"auth": "dXNlcjpwYXNz"},
            "127.0.0.1:5000": {"username": "ci", "password": "s3cret"},
            "http://reg.example:443/": {"auth": "YTpiOmM="},
            "k8s.example": {"username": "u", "password": "p", "auth": "dTpw", "email": "x@y"}
        }}"#,
    );
    let c = DockerConfig::load_from(Some(&config), None).expect("load");
    let get = |r: &str| c.credential(r).expect(r);
    assert_eq!(get("docker.io"), user_pass("user", "pass"));
    assert_eq!(get("127.0.0.1:5000"), user_pass("ci", "s3cret"));
    assert_eq!(get("reg.example:443"), user_pass("a", "b:c"));
    assert_eq!(get("k8s.example"), user_pass("u", "p"));
    assert_eq!(get("quay.io"), None);
}

#[test]
fn docker_hub_keys_of_any_spelling() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("config.json");
    write(
        &config,
        r#"{"auths": {"docker.io": {"username": "hub", "password": "pw"}}}"#,
    );
    let c = DockerConfig::load_from(Some(&config), None).expect("load");
    assert_eq!(
        c.credential("docker.io").expect("ok"),
        user_pass("hub", "pw")
    );
}

#[test]
fn the_auth_dir_is_merged_first_file_first() {
    let dir = tempfile::tempdir().expect("tempdir");
    let main = dir.path().join("config.json");
    write(
        &main,
        r#"{"auths": {"a.example": {"username": "main", "password": "1"}}}"#,
    );
    let secrets = dir.path().join("secrets");
    std::fs::create_dir(&secrets).expect("dir");
    write(
        &secrets.join("b.json"),
        r#"{"auths": {"a.example": {"username": "b", "password": "2"},
                      "c.example": {"username": "b", "password": "3"}}}"#,
    );
    write(
        &secrets.join("a.json"),
        r#"{"auths": {"c.example": {"username": "a", "password": "4"}}}"#,
    );
    write(&secrets.join("notes.txt"), "not json, not read");
    let c = DockerConfig::load_from(Some(&main), Some(&secrets)).expect("load");
    assert_eq!(
        c.credential("a.example").expect("ok"),
        user_pass("main", "1")
    );
    assert_eq!(c.credential("c.example").expect("ok"), user_pass("a", "4"));
    // No config file at all is no credentials.
    let none = DockerConfig::load_from(Some(&dir.path().join("missing.json")), None);
    assert_eq!(
        none.expect("load").credential("a.example").expect("ok"),
        None
    );
    // A file that is not a Docker config says where and why.
    write(&secrets.join("c.json"), r#"{"auths": 5}"#);
    let e = DockerConfig::load_from(Some(&main), Some(&secrets)).expect_err("refused");
    assert!(
        e.to_string().starts_with(&format!(
            "{}: invalid type",
            secrets.join("c.json").display()
        )),
        "{e}"
    );
}

/// Set in the child process that runs [`credential_helpers_are_run`] with the fake helper
/// on its PATH (a test cannot change its own process's environment).
const HELPER_DIR: &str = "SLIPWAY_TEST_FAKE_HELPER_DIR";

#[test]
fn credential_helpers_are_run() {
    if let Some(dir) = std::env::var_os(HELPER_DIR) {
        return helper_checks(Path::new(&dir));
    }
    let dir = tempfile::tempdir().expect("tempdir");
    // The protocol: the server on stdin, `{"Username": ..., "Secret": ...}` on stdout.
    let helper = dir.path().join("docker-credential-fake");
    write(
        &helper,
        "#!/bin/sh\nread -r server\n\
         printf '{\"ServerURL\":\"%s\",\"Username\":\"fake-user\",\"Secret\":\"for %s\"}' \
         \"$server\" \"$server\"\n",
    );
    std::fs::set_permissions(&helper, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let path = format!(
        "{}:{}",
        dir.path().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let test = "registry::auth::tests::credential_helpers_are_run";
    let out = Command::new(std::env::current_exe().expect("test binary"))
        .args([test, "--exact", "--nocapture", "--test-threads=1"])
        .env("PATH", path)
        .env(HELPER_DIR, dir.path())
        .output()
        .expect("run the child test");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("1 passed"),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn helper_checks(dir: &Path) {
    let config = dir.join("config.json");
    write(
        &config,
        r#"{"auths": {"plain.example": {"username": "u", "password": "p"}},
            "credHelpers": {"ecr.example": "fake", "broken.example": "missing"},
            "credsStore": "fake"}"#,
    );
    let c = DockerConfig::load_from(Some(&config), None).expect("load");
    let get = |r: &str| c.credential(r);
    assert_eq!(
        get("ecr.example").expect("helper"),
        user_pass("fake-user", "for ecr.example")
    );
    // The store answers for registries with no helper and no auths entry; Docker Hub is
    // asked for by the name `docker login` uses.
    assert_eq!(
        get("docker.io").expect("store"),
        user_pass("fake-user", "for https://index.docker.io/v1/")
    );
    assert_eq!(get("plain.example").expect("auths"), user_pass("u", "p"));
    let e = get("broken.example").expect_err("no such helper");
    assert_eq!(
        e.to_string(),
        format!(
            "{}: Unable to communicate with credential helper",
            config.display()
        )
    );
}
