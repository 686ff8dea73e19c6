use super::*;
use std::collections::BTreeMap;
use std::io::Read;
use std::os::unix::fs::symlink;

fn sel(patterns: &[&str], always: &[&str]) -> Selector {
    let text = patterns.join("\n");
    Selector::new(
        &dockerignore::read_patterns(&text),
        always.iter().map(|s| s.to_string()).collect(),
    )
    .expect("patterns")
}

/// Walks a virtual tree (paths, directories ending in `/`) as `walk` does.
fn kept(s: &Selector, tree: &[&str]) -> Vec<String> {
    fn go(
        s: &Selector,
        tree: &[&str],
        dir: &str,
        parent: &ParentMatches,
        out: &mut Vec<String>,
    ) -> bool {
        let mut any = false;
        for entry in tree {
            let is_dir = entry.ends_with('/');
            let path = entry.trim_end_matches('/');
            let (d, name) = match path.rsplit_once('/') {
                Some((d, n)) => (d, n),
                None => ("", path),
            };
            if d != dir {
                continue;
            }
            let _ = name;
            let (decision, info) = s.decide(path, is_dir, parent);
            match decision {
                Decision::Include => {
                    out.push(entry.to_string());
                    any = true;
                    if is_dir {
                        go(s, tree, path, &info, out);
                    }
                }
                Decision::Exclude { descend: true } => {
                    let mut sub = Vec::new();
                    if go(s, tree, path, &info, &mut sub) {
                        out.push(entry.to_string());
                        out.extend(sub);
                        any = true;
                    }
                }
                Decision::Exclude { descend: false } => {}
            }
        }
        any
    }
    let mut out = Vec::new();
    go(s, tree, "", &ParentMatches::default(), &mut out);
    out
}

const TREE: &[&str] = &[
    ".dockerignore",
    ".git/",
    ".git/HEAD",
    "Dockerfile",
    "main.go",
    "node_modules/",
    "node_modules/a/",
    "node_modules/a/index.js",
    "node_modules/keep/",
    "node_modules/keep/index.js",
    "src/",
    "src/app.log",
    "src/app.go",
    "src/deep/",
    "src/deep/x.log",
];

#[test]
fn ignore_patterns_decide_what_is_sent() {
    let s = sel(&[".git", "node_modules", "**/*.log"], &[]);
    assert_eq!(
        kept(&s, TREE),
        [
            ".dockerignore",
            "Dockerfile",
            "main.go",
            "src/",
            "src/app.go",
            "src/deep/"
        ]
    );
}

#[test]
fn an_exception_takes_a_path_back_with_its_parents() {
    let s = sel(&["node_modules", "!node_modules/keep"], &[]);
    let k = kept(&s, TREE);
    assert!(k.contains(&"node_modules/".to_string()), "{k:?}");
    assert!(
        k.contains(&"node_modules/keep/index.js".to_string()),
        "{k:?}"
    );
    assert!(!k.contains(&"node_modules/a/index.js".to_string()), "{k:?}");
}

#[test]
fn the_dockerfile_and_the_ignore_file_are_always_sent() {
    let s = sel(&["*", "!main.go"], &["Dockerfile", ".dockerignore"]);
    assert_eq!(kept(&s, TREE), [".dockerignore", "Dockerfile", "main.go"]);
    // A Dockerfile in an excluded directory brings the directory.
    let s = sel(&["build"], &["build/Dockerfile"]);
    assert_eq!(
        kept(&s, &["build/", "build/Dockerfile", "build/other"]),
        ["build/", "build/Dockerfile"]
    );
}

fn unpack(archive: &[u8]) -> BTreeMap<String, (tar::EntryType, String, u32)> {
    let mut out = BTreeMap::new();
    let mut t = tar::Archive::new(flate2::read::GzDecoder::new(archive));
    for e in t.entries().expect("entries") {
        let mut e = e.expect("entry");
        let path = e.path().expect("path").to_string_lossy().into_owned();
        let kind = e.header().entry_type();
        let mode = e.header().mode().expect("mode");
        assert_eq!(e.header().uid().ok(), Some(0));
        let mut body = String::new();
        if kind == tar::EntryType::Symlink {
            body = e
                .link_name()
                .ok()
                .flatten()
                .map(|l| l.to_string_lossy().into_owned())
                .unwrap_or_default();
        } else {
            e.read_to_string(&mut body).expect("read");
        }
        out.insert(path, (kind, body, mode));
    }
    out
}

#[test]
fn packs_a_directory_into_a_gzip_tar() {
    let d = tempfile::tempdir().expect("tmp");
    let ctx = d.path();
    fs::write(ctx.join("Dockerfile"), "FROM scratch\n").expect("w");
    fs::write(ctx.join(".dockerignore"), "# comment\n*.log\nsecret/\n").expect("w");
    fs::write(ctx.join("app.sh"), "echo hi\n").expect("w");
    fs::set_permissions(ctx.join("app.sh"), fs::Permissions::from_mode(0o755)).expect("chmod");
    fs::write(ctx.join("debug.log"), "noise").expect("w");
    fs::create_dir_all(ctx.join("secret")).expect("mkdir");
    fs::write(ctx.join("secret/key"), "k").expect("w");
    fs::create_dir_all(ctx.join("lib")).expect("mkdir");
    fs::write(ctx.join("lib/a.txt"), "a").expect("w");
    symlink("lib/a.txt", ctx.join("link")).expect("ln");
    let p = pack(ctx, None, 1 << 20, "a test").expect("packs");
    assert_eq!(p.dockerfile, "Dockerfile");
    let got = unpack(&p.archive.bytes().expect("archive"));
    let names: Vec<&str> = got.keys().map(String::as_str).collect();
    assert_eq!(
        names,
        [
            ".dockerignore",
            "Dockerfile",
            "app.sh",
            "lib/",
            "lib/a.txt",
            "link"
        ]
    );
    assert_eq!(got["app.sh"].2, 0o755);
    assert_eq!(
        got["link"],
        (tar::EntryType::Symlink, "lib/a.txt".into(), got["link"].2)
    );
    assert_eq!(got["lib/a.txt"].1, "a");
    assert_eq!((p.entries, p.excluded), (6, 2));
    // The same tree packs to the same bytes.
    assert_eq!(
        pack(ctx, None, 1 << 20, "a test")
            .expect("again")
            .archive
            .bytes()
            .expect("archive"),
        p.archive.bytes().expect("archive")
    );
}

#[test]
fn a_dockerfile_s_own_ignore_file_wins() {
    let d = tempfile::tempdir().expect("tmp");
    let ctx = d.path();
    fs::create_dir_all(ctx.join("docker")).expect("mkdir");
    fs::write(ctx.join("docker/app.Dockerfile"), "FROM scratch\n").expect("w");
    fs::write(ctx.join("docker/app.Dockerfile.dockerignore"), "a.txt\n").expect("w");
    fs::write(ctx.join(".dockerignore"), "b.txt\n").expect("w");
    fs::write(ctx.join("a.txt"), "a").expect("w");
    fs::write(ctx.join("b.txt"), "b").expect("w");
    let df = ctx.join("docker/app.Dockerfile");
    let p = pack(ctx, Some(&df), 1 << 20, "a test").expect("packs");
    assert_eq!(p.dockerfile, "docker/app.Dockerfile");
    let got = unpack(&p.archive.bytes().expect("archive"));
    assert!(
        got.contains_key("b.txt") && !got.contains_key("a.txt"),
        "{got:?}"
    );
    assert!(got.contains_key("docker/app.Dockerfile.dockerignore"));
}

#[test]
fn errors_name_the_problem() {
    let d = tempfile::tempdir().expect("tmp");
    let ctx = d.path().join("ctx");
    fs::create_dir_all(&ctx).expect("mkdir");
    let e = pack(&ctx, None, 1 << 20, "a test").expect_err("no Dockerfile");
    assert!(
        e.to_string()
            .ends_with("ctx/Dockerfile: no Dockerfile there (name one with -f)"),
        "{e}"
    );
    fs::write(d.path().join("Dockerfile"), "FROM scratch\n").expect("w");
    let e = pack(&ctx, Some(&d.path().join("Dockerfile")), 1 << 20, "a test").expect_err("outside");
    assert!(matches!(e, PackError::DockerfileOutside { .. }), "{e}");
    fs::write(ctx.join("Dockerfile"), "FROM scratch\n").expect("w");
    fs::write(ctx.join(".dockerignore"), "!\n").expect("w");
    let e = pack(&ctx, None, 1 << 20, "a test").expect_err("bad pattern");
    assert!(
        e.to_string()
            .contains(".dockerignore: illegal exclusion pattern"),
        "{e}"
    );
}

#[test]
fn an_over_large_context_stops_with_its_size_and_largest_parts() {
    let d = tempfile::tempdir().expect("tmp");
    let ctx = d.path();
    fs::write(ctx.join("Dockerfile"), "FROM scratch\n").expect("w");
    fs::create_dir_all(ctx.join("data")).expect("mkdir");
    // Incompressible bytes: a simple generator, 64 KiB a file.
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    for i in 0..8 {
        let bytes: Vec<u8> = (0..65536)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        fs::write(ctx.join(format!("data/{i}.bin")), bytes).expect("w");
    }
    let e = pack(ctx, None, 200 * 1024, "a test").expect_err("too large");
    let PackError::TooLarge {
        limit,
        largest,
        size,
        ..
    } = &e
    else {
        panic!("{e}")
    };
    assert_eq!(*limit, 200 * 1024);
    assert!(*size > 200 * 1024);
    assert_eq!(largest[0].0, "data");
    let msg = e.to_string();
    assert!(msg.starts_with("the packed context is "), "{msg}");
    assert!(
        msg.contains(", over the 200.0 KiB a test; leave out"),
        "{msg}"
    );
    assert!(msg.contains("(largest: data "), "{msg}");
    assert!(pack(ctx, None, 1 << 20, "a test").is_ok());
}

#[test]
fn sizes_read_as_people_read_them() {
    assert_eq!(human(512), "512 B");
    assert_eq!(human(1536), "1.5 KiB");
    assert_eq!(human(1 << 20), "1.0 MiB");
}
