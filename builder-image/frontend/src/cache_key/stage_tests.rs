//! Whole-stage keys: what must change a key, what must not, and what the context use of a
//! stage is.

use super::*;
use crate::dockerfile::{instructions, parser};

fn stages(text: &str) -> Vec<Stage> {
    let parsed = parser::parse(text).expect("parse");
    instructions::from_ast(&parsed.ast)
        .expect("instructions")
        .stages
}

fn inputs(text: &str) -> StageInputs {
    let s = &stages(text)[0];
    StageInputs {
        builder: "sha256:engine".into(),
        index: 0,
        name: s.name.clone(),
        from: From::Image {
            name: "registry.example/base:1".into(),
            manifest: "sha256:base".into(),
        },
        platform: "linux/amd64".into(),
        instructions: s
            .commands
            .iter()
            .map(|c| instruction_json(&c.instruction))
            .collect(),
        meta_args: Vec::new(),
        build_args: BTreeMap::new(),
        context: Some(ContentRoot([1; 32])),
        images: BTreeMap::new(),
        exports: Vec::new(),
        source_date_epoch: None,
    }
}

fn key(s: &StageInputs) -> Key {
    stage_key(s, &BTreeMap::new()).0
}

const DF: &str = "FROM base AS build\nCOPY app.txt /app/\nRUN echo hi > /out\n";

#[test]
fn the_same_stage_gives_the_same_key_wherever_it_is_in_the_file() {
    let a = inputs(DF);
    // Lines above it (another stage, comments) move it, but change nothing it does.
    let b = inputs(&format!("# a comment\n\n{DF}"));
    assert_eq!(key(&a), key(&b));
    assert_eq!(a.instructions, b.instructions);
}

#[test]
fn every_input_changes_the_key() {
    let a = inputs(DF);
    let k = key(&a);
    let mut changed: Vec<(&str, StageInputs)> = Vec::new();
    let mut m = |what, f: &dyn Fn(&mut StageInputs)| {
        let mut s = a.clone();
        f(&mut s);
        changed.push((what, s));
    };
    m("builder", &|s| s.builder = "sha256:other".into());
    m("index", &|s| s.index = 1);
    m("name", &|s| s.name = None);
    m("base", &|s| {
        s.from = From::Image {
            name: "registry.example/base:1".into(),
            manifest: "sha256:moved".into(),
        }
    });
    // The same image under another name: the stage's result names its base (the push takes
    // the base's layers and `base.name` by that name), so one name's entry is not the other's.
    m("the base's name", &|s| {
        s.from = From::Image {
            name: "mirror.example/base:1".into(),
            manifest: "sha256:base".into(),
        }
    });
    m("scratch", &|s| s.from = From::Scratch);
    m("platform", &|s| s.platform = "linux/arm64".into());
    m("a RUN", &|s| {
        s.instructions[1] = s.instructions[1].replace("hi", "ho")
    });
    m("meta args", &|s| s.meta_args.push("{}".into()));
    m("a build arg", &|s| {
        s.build_args.insert("V".into(), "1".into());
    });
    m("the context", &|s| s.context = Some(ContentRoot([2; 32])));
    m("no context", &|s| s.context = None);
    m("an image", &|s| {
        s.images.insert("img".into(), "sha256:i".into());
    });
    m("exports", &|s| s.exports.push("/out".into()));
    m("the epoch", &|s| s.source_date_epoch = Some(1));
    for (what, s) in &changed {
        assert_ne!(key(s), k, "{what} did not change the key");
    }
}

#[test]
fn build_arg_values_with_separators_do_not_collide() {
    // kaniko #873: "a=b,c" + "d" and "a" + "b,c=d" joined the same.
    let mut a = inputs(DF);
    a.build_args = BTreeMap::from([("A".into(), "b,C=d".into())]);
    let mut b = inputs(DF);
    b.build_args = BTreeMap::from([("A".into(), "b".into()), ("C".into(), "d".into())]);
    assert_ne!(key(&a), key(&b));
}

#[test]
fn deps_enter_by_key_or_by_output() {
    let s = inputs(DF);
    let by_key = |k: u8| BTreeMap::from([(3, Dep::Key(Key([k; 32])))]);
    assert_ne!(stage_key(&s, &by_key(1)).0, stage_key(&s, &by_key(2)).0);
    let out = |r: &str, e: Option<&str>| {
        BTreeMap::from([(
            3,
            Dep::Output {
                result: Some(r.into()),
                exports: e.map(Into::into),
            },
        )])
    };
    // The same bytes produced, however they were produced: the same key.
    assert_eq!(
        stage_key(&s, &out("sha256:r", Some("sha256:e"))).0,
        stage_key(&s, &out("sha256:r", Some("sha256:e"))).0
    );
    assert_ne!(
        stage_key(&s, &out("sha256:r", Some("sha256:e"))).0,
        stage_key(&s, &out("sha256:r", Some("sha256:f"))).0
    );
    assert_ne!(
        stage_key(&s, &out("sha256:r", None)).0,
        stage_key(&s, &out("sha256:r", Some("sha256:e"))).0
    );
    // Copied from only: its result is not read, so not keyed.
    let copied = BTreeMap::from([(
        3,
        Dep::Output {
            result: None,
            exports: Some("sha256:e".into()),
        },
    )]);
    assert_ne!(
        stage_key(&s, &copied).0,
        stage_key(&s, &out("sha256:r", Some("sha256:e"))).0
    );
    // Another stage index is another dependency.
    let other = BTreeMap::from([(4, Dep::Key(Key([1; 32])))]);
    assert_ne!(stage_key(&s, &by_key(1)).0, stage_key(&s, &other).0);
    // The record kept with an entry is what was hashed.
    let (k, r) = stage_key(&s, &by_key(1));
    assert_eq!(stage_key(&s, &by_key(1)).1, r);
    assert_ne!(k.0, [0; 32]);
}

#[test]
fn context_use_follows_copy_add_and_bind_mounts() {
    let u = |text: &str| context_use(&stages(text)[0]);
    assert_eq!(
        u("FROM a\nRUN true\nCOPY --from=b /x /y\n"),
        ContextUse::None
    );
    assert_eq!(u("FROM a\nCOPY <<EOF /f\nhi\nEOF\n"), ContextUse::None);
    assert_eq!(
        u("FROM a\nCOPY go.mod ./go.sum /src/\nADD ./cmd/../pkg/ /p\n"),
        ContextUse::Paths(BTreeSet::from([
            "go.mod".into(),
            "go.sum".into(),
            "pkg".into()
        ]))
    );
    assert_eq!(
        u("FROM a\nCOPY src/*.go /x/\n"),
        ContextUse::Paths(BTreeSet::from(["src".into()]))
    );
    assert_eq!(u("FROM a\nCOPY *.go /x/\n"), ContextUse::Whole);
    assert_eq!(u("FROM a\nCOPY . /x/\n"), ContextUse::Whole);
    assert_eq!(u("FROM a\nARG F=a\nCOPY $F /x/\n"), ContextUse::Whole);
    // Quotes and escapes the lexer removes: `"src"` reads src, not a file named `"src"`.
    assert_eq!(u("FROM a\nCOPY \"src\" /x/\n"), ContextUse::Whole);
    assert_eq!(u("FROM a\nCOPY 'src' /x/\n"), ContextUse::Whole);
    assert_eq!(u("# escape=`\nFROM a\nCOPY s`rc /x/\n"), ContextUse::Whole);
    // A mount's quotes are the mount parser's (CSV), already gone.
    assert_eq!(
        u("FROM a\nRUN --mount=type=bind,source=\"go.mod\",target=/m true\n"),
        ContextUse::Paths(BTreeSet::from(["go.mod".into()]))
    );
    assert_eq!(
        u("FROM a\nCOPY ../../etc/passwd /x\n"),
        ContextUse::Paths(BTreeSet::from(["etc/passwd".into()]))
    );
    assert_eq!(
        u("FROM a\nRUN --mount=type=bind,source=go.mod,target=/m true\n"),
        ContextUse::Paths(BTreeSet::from(["go.mod".into()]))
    );
    assert_eq!(u("FROM a\nRUN --mount=target=/m true\n"), ContextUse::Whole);
    assert_eq!(
        u("FROM a\nRUN --mount=type=bind,from=b,target=/m --mount=type=cache,target=/c true\n"),
        ContextUse::None
    );
    assert_eq!(
        u("FROM a\nADD https://example.invalid/f /f\n"),
        ContextUse::None
    );
}

#[test]
fn downloads_without_a_checksum_are_not_cached() {
    let un = |text: &str| uncacheable(&stages(text)[0]);
    assert_eq!(un(DF), None);
    assert_eq!(
        un("FROM a\nADD https://example.invalid/f /f\n"),
        Some(Uncacheable::AddUrl)
    );
    assert_eq!(
        un(
            "FROM a\nADD --checksum=sha256:24454f830cdb571e2c4ad15481119c43b3cafd48dd869a9b2945d1036d1dc68d https://example.invalid/f /f\n"
        ),
        None
    );
    assert_eq!(
        un("FROM a\nADD git@example.invalid:a/b.git /src\n"),
        Some(Uncacheable::AddGit)
    );
}

#[test]
fn declared_args_are_the_stage_arg_names() {
    let s = &stages("FROM a\nARG X=1 Y\nRUN true\nARG Z\n")[0];
    assert_eq!(
        declared_args(s),
        BTreeSet::from(["X".into(), "Y".into(), "Z".into()])
    );
}

#[test]
fn stage_inputs_survive_the_keys_file_and_key_the_same() {
    let a = inputs(DF);
    let json = serde_json::to_string(&a).expect("json");
    let b: StageInputs = serde_json::from_str(&json).expect("parse");
    assert_eq!(a, b);
    assert_eq!(key(&a), key(&b));
    // A content root is 64 hex digits; anything else is refused.
    assert!(json.contains(&"01".repeat(32)), "{json}");
    let bad = json.replace(&"01".repeat(32), "0g");
    assert!(serde_json::from_str::<StageInputs>(&bad).is_err());
}

#[test]
fn a_prefix_key_sees_its_instructions_and_nothing_after_them() {
    let df = "FROM base\nRUN one\nRUN two\nCOPY late.txt /\nRUN three\n";
    let a = inputs(df);
    let p = |s: &StageInputs, steps| prefix_key(&s.prefix(steps, None), steps, &BTreeMap::new()).0;
    // A change after the cut: no prefix before it changes.
    let b = inputs(&df.replace("RUN three", "RUN four"));
    assert_eq!(p(&a, 1), p(&b, 1));
    assert_eq!(p(&a, 2), p(&b, 2));
    // A change before the cut changes it; so does where the cut is.
    let c = inputs(&df.replace("RUN two", "RUN deux"));
    assert_eq!(p(&a, 1), p(&c, 1));
    assert_ne!(p(&a, 2), p(&c, 2));
    assert_ne!(p(&a, 1), p(&a, 2));
    // Never a whole stage's key, even cut after every instruction.
    let whole = a.prefix(a.instructions.len(), a.context);
    assert_ne!(
        prefix_key(&whole, a.instructions.len(), &BTreeMap::new()).0,
        key(&whole)
    );
    // The context it reads and the stages it needs are in it.
    assert_ne!(
        prefix_key(
            &a.prefix(1, Some(ContentRoot([2; 32]))),
            1,
            &BTreeMap::new()
        )
        .0,
        p(&a, 1)
    );
    let dep = BTreeMap::from([(3, Dep::Key(Key([9; 32])))]);
    assert_ne!(prefix_key(&a.prefix(1, None), 1, &dep).0, p(&a, 1));
}

#[test]
fn stage_refs_are_the_from_names_and_none_when_one_has_a_variable() {
    let s = &stages(
        "FROM base\nCOPY --from=Build /a /a\nRUN --mount=type=bind,from=tools,target=/t true\nCOPY --from=0 /b /b\nCOPY c /c\n",
    )[0];
    let refs = stage_refs(&s.commands).expect("refs");
    assert_eq!(
        refs,
        BTreeSet::from(["build".to_string(), "tools".into(), "0".into()])
    );
    assert_eq!(
        stage_refs(&s.commands[..1]),
        Some(BTreeSet::from(["build".to_string()]))
    );
    // An index as the planner reads it.
    let n = &stages("FROM base\nCOPY --from=+1 /a /a\nCOPY --from=01 /b /b\n")[0];
    assert_eq!(
        stage_refs(&n.commands),
        Some(BTreeSet::from(["1".to_string()]))
    );
    let v = &stages("FROM base\nARG S=build\nCOPY --from=$S /a /a\n")[0];
    assert_eq!(stage_refs(&v.commands), None);
    // What a prefix reads of the context: only its own COPY sources.
    let u = &stages("FROM base\nCOPY deps.txt /\nRUN x\nCOPY src/ /src\n")[0];
    assert_eq!(
        context_use_of(&u.commands[..2]),
        ContextUse::Paths(BTreeSet::from(["deps.txt".to_string()]))
    );
}
