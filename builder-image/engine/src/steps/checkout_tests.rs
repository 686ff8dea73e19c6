//! Tests of the checkout against crafted trees: repositories built with git's plumbing
//! (`hash-object --literally` writes trees `git mktree` and `git fsck` would refuse), as an
//! A1 repository author on a server without `receive.fsckObjects` can push them.

use std::io::Write;
use std::process::{Command, Stdio};

use super::*;
use crate::steps::git::{GitError, GitSpec, clone};

/// A bare repository in a tempdir, written object by object.
struct Repo {
    dir: tempfile::TempDir,
}

impl Repo {
    fn new() -> Repo {
        let dir = tempfile::tempdir().expect("tempdir");
        let r = Repo { dir };
        r.git(&["init", "-q", "--bare", "-b", "main"], b"");
        r
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn git(&self, args: &[&str], stdin: &[u8]) -> String {
        let mut c = Command::new("git")
            .args(args)
            .current_dir(self.dir.path())
            .env("GIT_DIR", self.dir.path())
            // Commits made here are at a known time (sourceDateEpoch: git).
            .env("GIT_COMMITTER_DATE", "1650000000 +0000")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("git runs");
        c.stdin
            .take()
            .expect("stdin")
            .write_all(stdin)
            .expect("stdin");
        let out = c.wait_with_output().expect("git");
        assert!(
            out.status.success(),
            "git {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    fn blob(&self, data: &[u8]) -> String {
        self.git(&["hash-object", "-w", "--stdin"], data)
    }

    /// A tree of raw entries (mode, name, id), in the order given: duplicates, slashes and
    /// `..` included.
    fn tree(&self, entries: &[(&str, &[u8], &str)]) -> String {
        let mut raw = Vec::new();
        for (mode, name, id) in entries {
            raw.extend_from_slice(mode.as_bytes());
            raw.push(b' ');
            raw.extend_from_slice(name);
            raw.push(0);
            raw.extend_from_slice(&hex::decode(id).expect("hex id"));
        }
        self.git(
            &["hash-object", "-t", "tree", "--literally", "-w", "--stdin"],
            &raw,
        )
    }

    /// Makes `tree` the tip of `main` (the remote's HEAD); returns the commit's id.
    fn commit(&self, tree: &str) -> String {
        let c = self.git(
            &[
                "-c",
                "user.name=t",
                "-c",
                "user.email=t@t",
                "commit-tree",
                tree,
                "-m",
                "crafted",
            ],
            b"",
        );
        self.git(&["update-ref", "refs/heads/main", &c], b"");
        c
    }

    fn open(&self) -> gix::Repository {
        gix::open(self.path()).expect("open")
    }
}

fn oid(hex: &str) -> gix::ObjectId {
    gix::ObjectId::from_hex(hex.as_bytes()).expect("oid")
}

/// A checkout of `tree` into a fresh directory, and that directory.
fn check_out(
    repo: &Repo,
    tree: &str,
    limit: Size,
) -> (tempfile::TempDir, Result<(), CheckoutError>) {
    let out = tempfile::tempdir().expect("tempdir");
    let r = write_tree(&repo.open(), oid(tree), &out.path().join("ctx"), limit);
    (out, r)
}

#[test]
fn an_ordinary_tree_is_written_as_git_writes_it() {
    let repo = Repo::new();
    let hello = repo.blob(b"hello\n");
    let script = repo.blob(b"#!/bin/sh\n");
    let sub = repo.tree(&[("100644", b"inner.txt", &hello)]);
    let link = repo.blob(b"sub/inner.txt");
    let top = repo.tree(&[
        ("100644", b"a.txt", &hello),
        ("100755", b"run.sh", &script),
        ("120000", b"link", &link),
        ("40000", b"sub", &sub),
    ]);
    let (out, r) = check_out(&repo, &top, Size::DEFAULT_LIMIT);
    r.expect("written");
    let ctx = out.path().join("ctx");
    assert_eq!(
        fs::read(ctx.join("sub/inner.txt")).expect("file"),
        b"hello\n"
    );
    let mode = |p: &str| {
        fs::metadata(ctx.join(p))
            .expect("meta")
            .permissions()
            .mode()
            & 0o777
    };
    assert_eq!(mode("a.txt"), 0o644);
    assert_eq!(mode("run.sh"), 0o755);
    assert_eq!(
        fs::read_link(ctx.join("link")).expect("link"),
        Path::new("sub/inner.txt")
    );
}

/// M9: `a -> <outside>`, then an entry under `a`: nothing is written through the link.
#[test]
fn nothing_is_written_through_a_symlink_the_tree_planted() {
    let outside = tempfile::tempdir().expect("tempdir");
    let target = outside.path().display().to_string();
    let repo = Repo::new();
    let link = repo.blob(target.as_bytes());
    let evil = repo.blob(b"owned\n");
    let sub = repo.tree(&[("100644", b"b", &evil)]);

    // The same name as a symlink, then as a tree holding `b`.
    let twice = repo.tree(&[("120000", b"a", &link), ("40000", b"a", &sub)]);
    let (_out, r) = check_out(&repo, &twice, Size::DEFAULT_LIMIT);
    let e = r.expect_err("refused");
    assert_eq!(e.to_string(), "a: the tree names it twice");
    // A name with a slash in it, under the link.
    let slash = repo.tree(&[("120000", b"a", &link), ("100644", b"a/b", &evil)]);
    let (_out, r) = check_out(&repo, &slash, Size::DEFAULT_LIMIT);
    let e = r.expect_err("refused");
    assert!(
        e.to_string()
            .starts_with("a/b: not a file name git allows: "),
        "{e}"
    );
    assert_eq!(
        fs::read_dir(outside.path()).expect("dir").count(),
        0,
        "nothing was written outside"
    );
}

#[test]
fn relative_and_git_names_are_refused() {
    let repo = Repo::new();
    let blob = repo.blob(b"x");
    for name in [&b".."[..], b".", b".git", b".GIT", b"git~1"] {
        let tree = repo.tree(&[("100644", name, &blob)]);
        let (out, r) = check_out(&repo, &tree, Size::DEFAULT_LIMIT);
        let e = r.expect_err("refused");
        assert!(matches!(e, CheckoutError::Name { .. }), "{e}");
        assert!(!out.path().join(".git").exists());
    }
    let sub = repo.tree(&[("100644", b"config", &blob)]);
    let tree = repo.tree(&[("40000", b".git", &sub)]);
    let (out, r) = check_out(&repo, &tree, Size::DEFAULT_LIMIT);
    assert!(r.is_err());
    assert!(!out.path().join("ctx/.git").exists());
}

#[test]
fn a_blob_or_a_repeated_subtree_over_the_limit_ends_the_checkout() {
    let repo = Repo::new();
    let big = repo.blob(&[b'x'; 4096]);
    let tree = repo.tree(&[("100644", b"big", &big)]);
    let (_out, r) = check_out(&repo, &tree, Size(4000));
    assert_eq!(
        r.expect_err("too large").to_string(),
        "big: the checkout is larger than the size limit of 4000"
    );
    // A "billion laughs" tree: 10 names for the same subtree, five levels deep, is 10^5
    // files from a few hundred bytes of objects.
    let mut level = repo.tree(&[("100644", b"f", &repo.blob(b"1"))]);
    for _ in 0..5 {
        let names: Vec<String> = (0..10).map(|i| format!("d{i}")).collect();
        let entries: Vec<(&str, &[u8], &str)> = names
            .iter()
            .map(|n| ("40000", n.as_bytes(), level.as_str()))
            .collect();
        level = repo.tree(&entries);
    }
    let (_out, r) = check_out(&repo, &level, Size(1 << 20));
    let e = r.expect_err("too large");
    assert!(matches!(e, CheckoutError::TooLarge { .. }), "{e}");
}

#[test]
fn a_context_dir_behind_a_symlink_is_not_followed() {
    let d = tempfile::tempdir().expect("tempdir");
    fs::create_dir_all(d.path().join("app/src")).expect("mkdir");
    std::os::unix::fs::symlink("/etc", d.path().join("escape")).expect("ln");
    std::os::unix::fs::symlink("app", d.path().join("alias")).expect("ln");
    assert_eq!(
        subdir(d.path(), "app/src").expect("real"),
        d.path().join("app/src")
    );
    assert!(matches!(
        subdir(d.path(), "escape"),
        Err(SubdirError::Symlink)
    ));
    assert!(matches!(
        subdir(d.path(), "alias/src"),
        Err(SubdirError::Symlink)
    ));
    assert!(matches!(
        subdir(d.path(), "../x"),
        Err(SubdirError::Outside)
    ));
    assert!(matches!(
        subdir(d.path(), "nope"),
        Err(SubdirError::Io(e)) if e.kind() == std::io::ErrorKind::NotFound
    ));
}

/// The whole git source, over a `file://`-less local path (gix runs `git upload-pack`).
#[test]
fn a_crafted_repository_cannot_write_outside_the_context() {
    let outside = tempfile::tempdir().expect("tempdir");
    let repo = Repo::new();
    let link = repo.blob(outside.path().display().to_string().as_bytes());
    let evil = repo.blob(b"owned\n");
    let sub = repo.tree(&[("100644", b"b", &evil)]);
    let tree = repo.tree(&[("120000", b"a", &link), ("40000", b"a", &sub)]);
    repo.commit(&tree);
    let ws = tempfile::tempdir().expect("tempdir");
    let spec = GitSpec {
        url: repo.path().display().to_string(),
        ..Default::default()
    };
    let e = clone(&spec, &ws.path().join("git")).expect_err("refused");
    assert!(matches!(e, GitError::Checkout { .. }), "{e}");
    assert_eq!(
        e.to_string(),
        format!("git {}: a: the tree names it twice", repo.path().display())
    );
    assert_eq!(fs::read_dir(outside.path()).expect("dir").count(), 0);
}

/// `sourceDateEpoch: git`: the clone reports the revision's committer time, and its commit
/// (the image's `org.opencontainers.image.revision`).
#[test]
fn a_clone_reports_the_commit_and_its_time() {
    let repo = Repo::new();
    let file = repo.blob(b"hello\n");
    let tree = repo.tree(&[("100644", b"hello.txt", &file)]);
    let commit = repo.commit(&tree);
    let ws = tempfile::tempdir().expect("tempdir");
    let spec = GitSpec {
        url: repo.path().display().to_string(),
        ..Default::default()
    };
    let got = clone(&spec, &ws.path().join("git")).expect("cloned");
    assert_eq!(got.time, Some(1_650_000_000));
    assert_eq!(got.commit.as_deref(), Some(commit.trim()));
}
