//! The stage plan: ARG scoping, stage resolution, pruning, ordering, exports and errors.

use slipway_frontend::plan::{Base, Plan, PlanError, PlanOptions, StageRef, plan};

fn plan_of(df: &str, target: Option<&str>, args: &[(&str, &str)]) -> Result<Plan, PlanError> {
    let opts = PlanOptions {
        target: target.map(str::to_string),
        build_args: args
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    };
    plan(df, &opts)
}

fn ok(df: &str) -> Plan {
    plan_of(df, None, &[]).expect("plans")
}

fn indices(p: &Plan) -> Vec<usize> {
    p.stages.iter().map(|s| s.index).collect()
}

const ARTICLE_GO: &str = "\
FROM golang:1.17 AS base
WORKDIR /app
COPY go.mod go.sum ./
RUN go mod download

FROM base AS builder
COPY . .
RUN go build -o myapp

FROM alpine:latest
WORKDIR /root/
COPY --from=builder /app/myapp .
CMD [\"./myapp\"]

FROM builder AS tester
RUN go test ./...
";

#[test]
fn default_target_is_the_last_stage_and_unneeded_stages_are_pruned() {
    let p = ok(ARTICLE_GO);
    assert_eq!(p.target, StageRef::Name("tester".into()));
    assert_eq!(indices(&p), [0, 1, 3]);
    let tester = p.stage(3).expect("tester planned");
    assert_eq!(tester.from, Base::Stage(1));
    assert_eq!(tester.depends_on, [0, 1]);
    // The runtime stage is not needed for `tester`, so nothing exports for it.
    assert!(p.stage(1).expect("builder").exports.is_empty());
}

#[test]
fn unnamed_final_stage_as_target_by_default() {
    let df = ARTICLE_GO
        .split("FROM builder AS tester")
        .next()
        .expect("prefix");
    let p = ok(df);
    assert_eq!((p.target.clone(), p.target_index), (StageRef::Index(2), 2));
    assert_eq!(indices(&p), [0, 1, 2]);
    let runtime = p.stage(2).expect("runtime");
    assert_eq!(runtime.from, Base::Image("alpine:latest".into()));
    assert_eq!(runtime.depends_on, [0, 1]);
    assert_eq!(p.stage(1).expect("builder").exports, ["/app/myapp"]);
}

#[test]
fn target_is_case_insensitive_and_prunes() {
    let p = plan_of(ARTICLE_GO, Some("BUILDER"), &[]).expect("plans");
    assert_eq!(indices(&p), [0, 1]);
    assert_eq!(p.target, StageRef::Name("builder".into()));
    let e = plan_of(ARTICLE_GO, Some("nope"), &[]).expect_err("unknown target");
    assert!(matches!(e, PlanError::UnknownTarget { .. }), "{e}");
    assert!(e.to_string().contains("nope"));
}

#[test]
fn global_args_reach_from_but_not_stages_unless_redeclared() {
    let df = "\
ARG BASE=busybox
ARG TAG=1.36
FROM ${BASE}:${TAG} AS a
RUN echo $TAG
FROM a AS b
ARG TAG
COPY --from=a /opt/$TAG/$BASE /x
";
    let p = ok(df);
    assert_eq!(
        p.stage(0).expect("a").from,
        Base::Image("busybox:1.36".into())
    );
    // TAG is redeclared in b (value from the global scope); BASE is not, so it is empty.
    assert_eq!(p.stage(0).expect("a").exports, ["/opt/1.36"]);
    let p = plan_of(df, None, &[("TAG", "1.37"), ("BASE", "alpine")]).expect("plans");
    assert_eq!(
        p.stage(0).expect("a").from,
        Base::Image("alpine:1.37".into())
    );
    assert_eq!(p.stage(0).expect("a").exports, ["/opt/1.37"]);
    assert!(p.warnings.is_empty(), "{:?}", p.warnings);
}

#[test]
fn stage_defaults_build_args_and_env_shadowing() {
    let df = "\
FROM busybox AS src
FROM busybox
ARG DIR=/default
COPY --from=src $DIR/a /
ARG DIR
COPY --from=src $DIR/b /
ENV DIR=/from-env
COPY --from=src $DIR/c /
ARG V=1 W=$V-x
COPY --from=src /w/$W /
";
    let exports = |p: Plan| p.stage(0).expect("src").exports.clone();
    assert_eq!(
        exports(ok(df)),
        ["/default/a", "/default/b", "/from-env/c", "/w/1-x"]
    );
    let p = plan_of(df, None, &[("DIR", "/cli"), ("V", "2")]).expect("plans");
    // ENV set after the ARG shadows the build arg.
    assert_eq!(exports(p), ["/cli/a", "/cli/b", "/from-env/c", "/w/2-x"]);
}

#[test]
fn predefined_args_and_unused_build_args() {
    let df = "FROM busybox AS s\nFROM busybox\nARG TARGETARCH\nCOPY --from=s /bin/$TARGETARCH /\n";
    let p = plan_of(
        df,
        None,
        &[
            ("UNUSED", "1"),
            ("HTTP_PROXY", "http://p"),
            ("TARGETARCH", "riscv64"),
        ],
    )
    .expect("plans");
    assert_eq!(p.stage(0).expect("s").exports, ["/bin/riscv64"]);
    assert_eq!(p.warnings.len(), 1, "{:?}", p.warnings);
    assert!(p.warnings[0].contains("UNUSED"));
    let p = ok(df);
    let arch = p.stage(0).expect("s").exports[0].clone();
    assert!(arch.starts_with("/bin/") && arch.len() > 5, "{arch}");
}

#[test]
fn env_is_inherited_from_the_parent_stage() {
    let df = "\
FROM busybox AS base
ENV ROOT=/srv
ARG SUB=app
FROM base AS child
COPY --from=base $ROOT/$SUB/x /
";
    assert_eq!(ok(df).stage(0).expect("base").exports, ["/srv/app/x"]);
}

#[test]
fn copy_from_by_index_name_and_image() {
    let df = "\
FROM busybox AS one
FROM busybox AS two
FROM busybox
COPY --from=0 /a /
COPY --from=TWO /b/../c/ /
COPY --from=nginx:1.27 /etc/nginx /etc/nginx
RUN --mount=type=bind,from=one,source=/m,target=/mnt true
RUN --mount=type=cache,target=/c true
";
    let p = ok(df);
    assert_eq!(indices(&p), [0, 1, 2]);
    let last = p.stage(2).expect("final");
    assert_eq!(last.depends_on, [0, 1]);
    assert_eq!(last.images, ["nginx:1.27"]);
    assert_eq!(p.stage(0).expect("one").exports, ["/a", "/m"]);
    assert_eq!(p.stage(1).expect("two").exports, ["/c"]);
}

#[test]
fn fan_out_runs_independent_stages_in_file_order_before_the_join() {
    let df = "\
FROM busybox AS a
FROM busybox AS b
FROM busybox AS c
FROM busybox AS d
FROM busybox
COPY --from=d /d /
COPY --from=b /b /
COPY --from=c /c /
COPY --from=a /a /
";
    let p = ok(df);
    assert_eq!(indices(&p), [0, 1, 2, 3, 4]);
    assert_eq!(p.stage(4).expect("join").depends_on, [0, 1, 2, 3]);
}

#[test]
fn copy_from_a_later_stage_orders_it_first() {
    let df = "FROM busybox AS first\nCOPY --from=later /x /\nFROM busybox AS later\nFROM first\n";
    let p = ok(df);
    assert_eq!(indices(&p), [1, 0, 2]);
}

#[test]
fn onbuild_triggers_of_a_parent_stage_add_dependencies() {
    let df = "\
FROM busybox AS tools
FROM busybox AS base
ONBUILD COPY --from=tools /usr/bin/tool /usr/bin/
FROM base
";
    let p = ok(df);
    assert_eq!(indices(&p), [0, 1, 2]);
    assert_eq!(p.stage(0).expect("tools").exports, ["/usr/bin/tool"]);
}

#[test]
fn errors_name_the_line() {
    let cases: &[(&str, usize, &str)] = &[
        (
            "FROM busybox AS a\nFROM later\nFROM busybox AS later\n",
            2,
            "defined later",
        ),
        (
            "FROM busybox AS a\nCOPY --from=b /x /\nFROM busybox AS b\nCOPY --from=a /y /\n",
            4,
            "circular dependency",
        ),
        (
            "FROM busybox AS a\nCOPY --from=a /x /\n",
            2,
            "circular dependency",
        ),
        (
            "FROM busybox\nCOPY --from=7 /x /\n",
            2,
            "invalid stage index 7",
        ),
        (
            "FROM busybox\nARG S=x\nCOPY --from=$S /x /\n",
            3,
            "variable expansion is not supported",
        ),
        ("ARG B\nFROM $B\n", 2, "should not be blank"),
        ("FROM Not/Valid\n", 1, "lowercase"),
        (
            "FROM busybox\nCOPY --from=No_Such /x /\n",
            2,
            "no stage named",
        ),
        (
            "FROM busybox\nRUN --mount=type=secret,id=a,from=b true\n",
            2,
            "secret mount should not have a from",
        ),
        (
            "FROM busybox\nENV A=\"${B:?B is required}\"\n",
            2,
            "B is required",
        ),
        ("FROM busybox\nRUN <<EOF\necho\n", 2, "unterminated heredoc"),
        (
            "FROM busybox\nWORKDIR\n",
            2,
            "WORKDIR requires exactly one argument",
        ),
    ];
    for (df, line, needle) in cases {
        let e = plan_of(df, None, &[]).expect_err(df);
        assert_eq!(e.line(), Some(*line), "{df:?}: {e}");
        assert!(e.to_string().contains(needle), "{df:?}: {e}");
    }
    assert!(matches!(
        plan_of("ARG A=1\n", None, &[]),
        Err(PlanError::NoStages)
    ));
}

#[test]
fn plan_json_has_the_documented_shape() {
    let p = ok("FROM busybox AS a\nFROM a\nCOPY --from=a /x /\n");
    let v = serde_json::to_value(&p).expect("serializes");
    assert_eq!(v["target"], serde_json::json!(1));
    let s = &v["stages"][1];
    assert_eq!(s["index"], 1);
    assert_eq!(s["name"], serde_json::Value::Null);
    assert_eq!(s["from"], 0);
    assert_eq!(s["dependsOn"], serde_json::json!([0]));
    assert_eq!(v["stages"][0]["from"], "busybox");
    assert_eq!(v["stages"][0]["exports"], serde_json::json!(["/x"]));
    let back: Plan = serde_json::from_value(v).expect("round-trips");
    assert_eq!(back, p);
}

#[test]
fn linear_from_chains_are_fused() {
    let go = "FROM golang AS base\nRUN a\nFROM base AS builder\nRUN b\nFROM builder AS tester\nRUN c\nFROM alpine\nCOPY --from=builder /app /app\n";
    let p = plan(go, &PlanOptions::default()).expect("plan");
    // base joins builder (nothing else needs base alone); the final stage copies from
    // builder, so it runs after the chain, in its own container.
    assert_eq!(p.fused_chains(), vec![vec![0, 1], vec![3]]);
    let t = plan(
        go,
        &PlanOptions {
            target: Some("tester".into()),
            ..Default::default()
        },
    )
    .expect("plan");
    assert_eq!(t.fused_chains(), vec![vec![0, 1, 2]]);
    // Two children of one parent: no fusion, both wait for it.
    let fan = "FROM x AS p\nRUN a\nFROM p AS c1\nRUN b\nFROM p AS c2\nRUN c\nFROM scratch\nCOPY --from=c1 /a /a\nCOPY --from=c2 /b /b\n";
    let f = plan(fan, &PlanOptions::default()).expect("plan");
    assert_eq!(f.fused_chains(), vec![vec![0], vec![1], vec![2], vec![3]]);
    // A child that also copies from another stage waits for it: not fused.
    let extra = "FROM x AS p\nRUN a\nFROM y AS other\nRUN o\nFROM p\nCOPY --from=other /o /o\n";
    let e = plan(extra, &PlanOptions::default()).expect("plan");
    assert_eq!(e.fused_chains(), vec![vec![0], vec![1], vec![2]]);
}
