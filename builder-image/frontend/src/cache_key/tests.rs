//! Issue 13's must-miss mutations and must-hit cases, each against the key of the unchanged
//! input.

use super::*;

fn sha(b: &[u8]) -> [u8; 32] {
    Sha256::digest(b).into()
}

fn file(path: &str, data: &[u8], mode: u32, owner: (u32, u32)) -> Entry {
    Entry {
        path: path.as_bytes().to_vec(),
        kind: EntryKind::File { sha256: sha(data) },
        mode,
        uid: owner.0,
        gid: owner.1,
    }
}

fn root(entries: Vec<Entry>) -> ContentRoot {
    ContentRoot::of(entries).expect("root")
}

const BASE: &str = "sha256:1111111111111111111111111111111111111111111111111111111111111111";

fn base() -> Origin {
    Origin::Image {
        manifest: BASE.into(),
    }
}

fn context() -> Vec<Entry> {
    vec![
        file("go.mod", b"module app\n", 0o644, (0, 0)),
        file("main.go", b"package main\n", 0o644, (0, 0)),
    ]
}

fn copy(from: Source, chown: Option<(u32, u32)>) -> Step {
    Step::Copy(CopyStep {
        kind: CopyKind::Copy,
        sources: vec![".".into()],
        dest: "/src/".into(),
        workdir: "/".into(),
        chown,
        chmod: None,
        link: false,
        parents: false,
        exclude: vec![],
        unpack: None,
        keep_git_dir: None,
        from,
    })
}

fn run(args: &[(&str, &str)]) -> Step {
    Step::Run(RunStep {
        argv: vec![
            "/bin/sh".into(),
            "-c".into(),
            "go build -o /out/app .".into(),
        ],
        args: args
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        env: [("PATH".to_string(), "/usr/bin:/bin".to_string())].into(),
        user: "root".into(),
        workdir: "/src".into(),
        shell: vec!["/bin/sh".into(), "-c".into()],
        ..Default::default()
    })
}

/// The build stage of a Go build: COPY the context, RUN go build, a CMD.
fn build_stage(origin: &Origin, ctx: Vec<Entry>, args: &[(&str, &str)]) -> Key {
    stage_key(
        origin,
        &[
            copy(Source::Context(root(ctx)), None),
            run(args),
            Step::Meta(Meta::Cmd(vec!["/out/app".into()])),
        ],
    )
}

fn reference() -> Key {
    build_stage(&base(), context(), &[("VERSION", "1")])
}

#[test]
fn the_same_input_gives_the_same_key() {
    assert_eq!(reference(), reference());
    assert!(reference().tag().starts_with("sw1-"));
    assert_eq!(reference().tag().len(), 68);
}

#[test]
fn renaming_a_copied_file_misses() {
    let mut ctx = context();
    ctx[1].path = b"app.go".to_vec();
    assert_ne!(build_stage(&base(), ctx, &[("VERSION", "1")]), reference());
}

#[test]
fn changing_only_a_mode_misses() {
    let mut ctx = context();
    ctx[1].mode = 0o755;
    assert_ne!(build_stage(&base(), ctx, &[("VERSION", "1")]), reference());
}

#[test]
fn changing_chown_misses() {
    let ctx = context();
    let plain = stage_key(&base(), &[copy(Source::Context(root(ctx.clone())), None)]);
    // The flag, and the owner the files end up with.
    let owned: Vec<Entry> = ctx
        .iter()
        .map(|e| Entry {
            uid: 1000,
            gid: 1000,
            ..e.clone()
        })
        .collect();
    let chowned = stage_key(
        &base(),
        &[copy(
            Source::Context(root(owned.clone())),
            Some((1000, 1000)),
        )],
    );
    assert_ne!(chowned, plain);
    let other = stage_key(
        &base(),
        &[copy(Source::Context(root(owned)), Some((1000, 1001)))],
    );
    assert_ne!(other, chowned);
}

#[test]
fn changing_a_build_arg_used_only_by_run_misses() {
    let ctx = context();
    let a = build_stage(&base(), ctx.clone(), &[("VERSION", "1")]);
    let b = build_stage(&base(), ctx, &[("VERSION", "2")]);
    assert_ne!(a, b);
    // The COPY before the RUN still hits: only the RUN and what follows miss.
    let steps = |v: &str| {
        step_keys(
            &base(),
            &[
                copy(Source::Context(root(context())), None),
                run(&[("VERSION", v)]),
            ],
        )
    };
    let (k1, k2) = (steps("1"), steps("2"));
    assert_eq!(k1[0], k2[0]);
    assert_ne!(k1[1], k2[1]);
}

#[test]
fn arg_values_containing_separators_do_not_collide() {
    // Joined as `k=v` with `,` or `-`, both would read A=1,B=2,C=3.
    let a = build_stage(&base(), context(), &[("A", "1,B=2"), ("C", "3")]);
    let b = build_stage(&base(), context(), &[("A", "1"), ("B", "2,C=3")]);
    assert_ne!(a, b);
    // kaniko fork #873: `A=x-B=z` against `A=x` and `B=z`.
    let c = build_stage(&base(), context(), &[("A", "x-B=z")]);
    let d = build_stage(&base(), context(), &[("A", "x"), ("B", "z")]);
    assert_ne!(c, d);
    // A separator in an argv word against two words.
    let argv = |v: &[&str]| {
        stage_key(
            &base(),
            &[Step::Run(RunStep {
                argv: v.iter().map(|s| s.to_string()).collect(),
                ..Default::default()
            })],
        )
    };
    assert_ne!(argv(&["echo", "a b"]), argv(&["echo a", "b"]));
}

/// A two-stage build: `build` makes /out/app, `runtime` copies it.
fn runtime_key(build_output: Source) -> Key {
    let runtime = Origin::Image {
        manifest: "sha256:2222222222222222222222222222222222222222222222222222222222222222".into(),
    };
    stage_key(
        &runtime,
        &[
            Step::Copy(CopyStep {
                sources: vec!["/out/app".into()],
                dest: "/usr/local/bin/app".into(),
                ..match copy(build_output, None) {
                    Step::Copy(c) => c,
                    _ => unreachable!(),
                }
            }),
            Step::Meta(Meta::Entrypoint(vec!["/usr/local/bin/app".into()])),
        ],
    )
}

#[test]
fn changing_what_a_copy_from_stage_produces_misses_even_at_the_same_size() {
    let out = |data: &[u8]| root(vec![file("app", data, 0o755, (0, 0))]);
    // Same length, other bytes: the producing stage's key changed (its input did) and so
    // did the content of what it produced; neither key of the consumer hits.
    let before = build_stage(&base(), context(), &[("VERSION", "1")]);
    let mut ctx = context();
    ctx[1] = file("main.go", b"package mai2\n", 0o644, (0, 0));
    let after = build_stage(&base(), ctx, &[("VERSION", "1")]);
    assert_ne!(before, after);
    assert_ne!(
        runtime_key(Source::Stage(before)),
        runtime_key(Source::Stage(after))
    );
    assert_ne!(
        runtime_key(Source::StageContent(out(b"ELF-1"))),
        runtime_key(Source::StageContent(out(b"ELF-2")))
    );
}

#[test]
fn dockerignore_admitting_a_file_misses() {
    let mut ctx = context();
    ctx.push(file(".env", b"SECRET=1\n", 0o600, (0, 0)));
    assert_ne!(build_stage(&base(), ctx, &[("VERSION", "1")]), reference());
}

#[test]
fn another_base_digest_behind_the_same_tag_misses() {
    let moved = Origin::Image {
        manifest: "sha256:3333333333333333333333333333333333333333333333333333333333333333".into(),
    };
    assert_ne!(
        build_stage(&moved, context(), &[("VERSION", "1")]),
        reference()
    );
    // And the stages built on it.
    assert_ne!(
        runtime_key(Source::Stage(build_stage(
            &moved,
            context(),
            &[("VERSION", "1")]
        ))),
        runtime_key(Source::Stage(reference()))
    );
}

#[test]
fn a_change_in_a_stage_the_target_does_not_need_hits() {
    // `tester` (not needed by `runtime`) gets another RUN; the target's keys depend on its
    // own chain and the stages it copies from only.
    let build = reference();
    let _tester_before = stage_key(&Origin::Stage(build), &[run(&[])]);
    let _tester_after = stage_key(&Origin::Stage(build), &[run(&[("RACE", "1")])]);
    assert_ne!(_tester_before, _tester_after);
    assert_eq!(
        runtime_key(Source::Stage(build)),
        runtime_key(Source::Stage(reference()))
    );
}

#[test]
fn an_upstream_stage_rebuilt_to_the_same_bytes_hits_by_content() {
    // A comment-only change to main.go: `build` reruns (its key changed), produces the same
    // binary; the fast key of `runtime` misses, the slow one (content) hits.
    let mut ctx = context();
    ctx[1] = file("main.go", b"package main\n// x\n", 0o644, (0, 0));
    let rebuilt = build_stage(&base(), ctx, &[("VERSION", "1")]);
    assert_ne!(rebuilt, reference());
    assert_ne!(
        runtime_key(Source::Stage(rebuilt)),
        runtime_key(Source::Stage(reference()))
    );
    let produced = || root(vec![file("app", b"ELF", 0o755, (0, 0))]);
    assert_eq!(
        runtime_key(Source::StageContent(produced())),
        runtime_key(Source::StageContent(produced()))
    );
    // The fast and slow keys are different names for the entry: never equal to each other.
    assert_ne!(
        runtime_key(Source::Stage(reference())),
        runtime_key(Source::StageContent(produced()))
    );
}

#[test]
fn proxies_change_no_key_and_unused_args_are_in_none() {
    let with_proxy = build_stage(
        &base(),
        context(),
        &[("VERSION", "1"), ("HTTPS_PROXY", "http://proxy:3128")],
    );
    assert_eq!(with_proxy, reference());
}

#[test]
fn every_field_of_a_run_counts() {
    let r = |f: &dyn Fn(&mut RunStep)| {
        let mut s = match run(&[]) {
            Step::Run(s) => s,
            _ => unreachable!(),
        };
        f(&mut s);
        stage_key(&base(), &[Step::Run(s)])
    };
    let plain = r(&|_| {});
    let changed = [
        r(&|s| s.user = "app".into()),
        r(&|s| s.workdir = "/".into()),
        r(&|s| s.shell = vec!["/bin/bash".into(), "-c".into()]),
        r(&|s| s.network = NetworkMode::None),
        r(&|s| s.security = SecurityMode::Insecure),
        r(&|s| {
            s.env
                .insert("CGO_ENABLED".into(), "0".into())
                .map_or((), |_| ())
        }),
        r(&|s| s.files = vec![("script".into(), "echo hi\n".into())]),
        r(&|s| s.devices = vec!["/dev/fuse".into()]),
        r(&|s| {
            s.mounts = vec![MountKey::Cache {
                id: "go".into(),
                target: "/root/.cache/go-build".into(),
                sharing: Sharing::Shared,
                read_only: false,
                mode: None,
                uid: None,
                gid: None,
            }]
        }),
    ];
    for (i, k) in changed.iter().enumerate() {
        assert_ne!(*k, plain, "field {i}");
    }
}

#[test]
fn mounts_count_by_options_and_bind_content_never_cache_or_secret_contents() {
    let with = |m: MountKey| {
        let mut s = match run(&[]) {
            Step::Run(s) => s,
            _ => unreachable!(),
        };
        s.mounts = vec![m];
        stage_key(&base(), &[Step::Run(s)])
    };
    let cache = |sharing| MountKey::Cache {
        id: "npm".into(),
        target: "/root/.npm".into(),
        sharing,
        read_only: false,
        mode: None,
        uid: None,
        gid: None,
    };
    assert_ne!(with(cache(Sharing::Shared)), with(cache(Sharing::Locked)));
    let secret = |id: &str| MountKey::Secret {
        id: id.into(),
        target: None,
        env: None,
        required: true,
        mode: None,
        uid: None,
        gid: None,
    };
    // Only the id is there to change: the value is not an input.
    assert_ne!(with(secret("npmrc")), with(secret("token")));
    let bind = |data: &[u8]| MountKey::Bind {
        target: "/src".into(),
        selector: ".".into(),
        read_write: false,
        source: Source::Context(root(vec![file("a", data, 0o644, (0, 0))])),
    };
    assert_eq!(with(bind(b"1")), with(bind(b"1")));
    assert_ne!(with(bind(b"1")), with(bind(b"2")));
}

#[test]
fn metadata_extends_the_chain() {
    let k = |m: Meta| stage_key(&base(), &[Step::Meta(m)]);
    assert_ne!(k(Meta::User("app".into())), stage_key(&base(), &[]));
    assert_ne!(k(Meta::User("app".into())), k(Meta::Workdir("app".into())));
    assert_ne!(
        k(Meta::Env(vec![("A".into(), "1 B=2".into())])),
        k(Meta::Env(vec![
            ("A".into(), "1".into()),
            ("B".into(), "2".into())
        ]))
    );
    assert_ne!(
        k(Meta::Cmd(vec!["a".into()])),
        k(Meta::Entrypoint(vec!["a".into()]))
    );
}

#[test]
fn origins_and_add_sources_are_told_apart() {
    let scratch = |p: &str| Origin::Scratch { platform: p.into() };
    assert_ne!(
        stage_key(&scratch("linux/amd64"), &[]),
        stage_key(&scratch("linux/arm64"), &[])
    );
    assert_ne!(stage_key(&base(), &[]), stage_key(&scratch(BASE), &[]));
    let add = |from: Source| {
        let Step::Copy(mut c) = copy(from, None) else {
            unreachable!()
        };
        c.kind = CopyKind::Add;
        stage_key(&base(), &[Step::Copy(c)])
    };
    let url = |d: &str| Source::Url { digest: d.into() };
    assert_eq!(add(url(BASE)), add(url(BASE)));
    assert_ne!(add(url(BASE)), add(url(&BASE.replace('1', "2"))));
    assert_ne!(
        add(Source::Git {
            commit: "a".repeat(40)
        }),
        add(Source::Git {
            commit: "b".repeat(40)
        })
    );
    assert_ne!(add(url(BASE)), stage_key(&base(), &[copy(url(BASE), None)]));
}
