//! What the cache stores is only what the stage's own chain made: a result that names another
//! stage's layer (a stage container wrote it) is refused before anything is read or sent.

use super::*;
use crate::stage::config::Config;
use crate::workspace::StageResult;
use slipway_frontend::cache_key::Record;

const D1: &str = "sha256:1111111111111111111111111111111111111111111111111111111111111111";

#[test]
fn a_result_naming_a_layer_outside_its_chain_is_not_stored() {
    let dir = tempfile::tempdir().expect("tmp");
    let ws = Workspace::new(dir.path().join("ws"));
    fs::create_dir_all(ws.stage_dir(1)).expect("mkdir");
    // Stage 1 (built on nothing) claims stage 0's layer: another Job's files, or with a
    // forged path anything in the workspace (the context, another stage's secrets).
    let forged = LayerRef {
        path: format!("stages/0/layers/{}.tar.gz", &D1[7..]),
        digest: D1.into(),
        diff_id: D1.into(),
        size: 10,
        media_type: IMAGE_LAYER_MEDIA_TYPE.into(),
    };
    let result = StageResult {
        index: 1,
        name: None,
        base: None,
        config: Config::default(),
        author: String::new(),
        history: Vec::new(),
        layers: vec![forged],
        vars: Vec::new(),
        args: Vec::new(),
        checkpoints: Vec::new(),
        layers_skipped: false,
    };
    fs::write(
        ws.stage_result(1),
        serde_json::to_vec(&result).expect("json"),
    )
    .expect("write");
    // A registry nobody listens on: reaching it would be another error than the refusal.
    let registry =
        Registry::new(&["127.0.0.1:1".into()], &dir.path().join("blobs")).expect("registry");
    let store = Store {
        registry: &registry,
        repository: "127.0.0.1:1/cache".into(),
        mount_from: Vec::new(),
    };
    let keyed = Keyed {
        key: Key([7; 32]),
        record: Record::new("stage"),
    };
    let e = crate::cache::build::run(store.write(&ws, 1, &[1], None, Some(&keyed), None))
        .expect_err("refused");
    assert!(matches!(e, CacheError::Layer { index: 1, .. }), "{e}");
    assert!(e.to_string().starts_with("stage #1: "), "{e}");
    // Its own chain's layer path passes the check (and then meets the absent registry).
    let e = crate::cache::build::run(store.write(&ws, 1, &[1, 0], None, Some(&keyed), None))
        .expect_err("no registry");
    assert!(!matches!(e, CacheError::Layer { .. }), "{e}");
}
