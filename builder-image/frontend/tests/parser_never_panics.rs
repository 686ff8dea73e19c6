//! Property test: the front end never panics, whatever the input. The number of cases is
//! `PROPTEST_CASES` (default 512 here; raise it to fuzz for longer).

use proptest::prelude::*;
use slipway_frontend::dockerfile::shell::{Lex, Vars};
use slipway_frontend::plan::{PlanOptions, plan};

/// Fragments that exercise the parser's corners, mixed with arbitrary text.
fn fragment() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("FROM ".to_string()),
        Just("busybox AS b\n".to_string()),
        Just("RUN ".to_string()),
        Just("COPY --from=".to_string()),
        Just("<<EOF".to_string()),
        Just("<<-'E'".to_string()),
        Just("\nEOF\n".to_string()),
        Just("\\\n".to_string()),
        Just("`\n".to_string()),
        Just("# escape=`\n".to_string()),
        Just("# syntax=x\n".to_string()),
        Just("ARG A=${B:-c}".to_string()),
        Just("${X#*/}${Y%%.?}${Z//a/b}".to_string()),
        Just("ENV a=\"b c\" d='e'".to_string()),
        Just("[\"a\", 1]".to_string()),
        Just("ONBUILD ".to_string()),
        Just("HEALTHCHECK --interval=1s CMD ".to_string()),
        Just("--mount=type=cache,target=/c,".to_string()),
        Just("\t \r\n".to_string()),
        "[ -~\\t\\n\\u{80}-\\u{10ffff}]{0,12}",
    ]
}

fn dockerfile() -> impl Strategy<Value = String> {
    prop::collection::vec(fragment(), 0..40).prop_map(|v| v.concat())
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(512),
        ..ProptestConfig::default()
    })]

    #[test]
    fn front_end_never_panics(text in dockerfile(), target in prop::option::of("[a-z]{1,3}")) {
        let opts = PlanOptions { target, build_args: vec![("A".into(), "1".into())] };
        let _ = plan(&text, &opts);
        let _ = slipway_frontend::dockerfile::parser::parse(&text).map(|p| p.ast.dump());
    }

    #[test]
    fn lexer_never_panics(word in "[ -~\\u{80}-\\u{2ff}]{0,40}") {
        let env = Vars::from_pairs(["A=x y", "B="]);
        let _ = Lex::new('\\').process_words(&word, &env);
        let _ = Lex::new('`').process_word(&word, &env);
    }
}
