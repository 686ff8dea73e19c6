//! A found entry is used only when everything in it is what the stage's key and chain say.

use super::*;
use crate::stage::config::Config;

const D1: &str = "sha256:1111111111111111111111111111111111111111111111111111111111111111";
const D2: &str = "sha256:2222222222222222222222222222222222222222222222222222222222222222";
const D3: &str = "sha256:3333333333333333333333333333333333333333333333333333333333333333";

fn layer(stage: usize, digest: &str, size: u64) -> LayerRef {
    LayerRef {
        path: format!("stages/{stage}/layers/{}.tar.gz", &digest[7..]),
        digest: digest.into(),
        diff_id: D3.into(),
        size,
        media_type: "application/vnd.oci.image.layer.v1.tar+gzip".into(),
    }
}

fn result(index: usize, layers: Vec<LayerRef>) -> Vec<u8> {
    serde_json::to_vec(&StageResult {
        index,
        name: Some("build".into()),
        base: None,
        config: Config::default(),
        author: String::new(),
        history: Vec::new(),
        layers,
        vars: Vec::new(),
        args: Vec::new(),
        checkpoints: Vec::new(),
        layers_skipped: false,
    })
    .expect("json")
}

fn record(v: &str) -> Record {
    let mut r = Record::new("stage");
    r.str("v", v);
    r
}

fn blob(digest: &str, size: u64) -> LayerRef {
    LayerRef {
        path: String::new(),
        digest: digest.into(),
        diff_id: String::new(),
        size,
        media_type: "application/vnd.oci.image.layer.v1.tar+gzip".into(),
    }
}

/// Stage 2 built FROM stage 1: its result lists both stages' layers.
fn entry(exports: bool) -> (Vec<u8>, Vec<u8>, Vec<LayerRef>) {
    let res = result(2, vec![layer(1, D1, 10), layer(2, D2, 20)]);
    let config = EntryConfig::new(Some(&record("fast")), Some(&record("slow")), &res, exports);
    let mut blobs = vec![blob(D1, 10), blob(D2, 20)];
    if exports {
        blobs.push(blob(D3, 30));
    }
    (config.to_bytes(), res, blobs)
}

#[test]
fn a_checked_hit_restores_the_very_result() {
    let (config, res, blobs) = entry(true);
    let hit = Hit::check(
        2,
        &[2, 1],
        true,
        KeyKind::Fast,
        &record("fast"),
        &config,
        blobs,
    )
    .expect("hit");
    assert_eq!(hit.result, res);
    assert_eq!(hit.layers.len(), 2);
    assert_eq!(hit.exports.as_ref().map(|e| e.digest.as_str()), Some(D3));
    assert_eq!(hit.bytes(), 60);
    let out = hit.outputs().expect("outputs");
    assert_eq!(out.result.to_string(), sha256_bytes(&res));
    assert_eq!(out.exports.map(|d| d.to_string()).as_deref(), Some(D3));
    // The slow record too.
    let (config, _, blobs) = entry(false);
    let hit = Hit::check(
        2,
        &[2, 1],
        true,
        KeyKind::Slow,
        &record("slow"),
        &config,
        blobs,
    )
    .expect("slow hit");
    assert_eq!(hit.exports, None);
}

/// A stage that made no layers (no later step read them) left its result and exports: its
/// entry serves a build that reads only its exports, never one built `FROM` it.
#[test]
fn an_entry_without_layers_serves_only_readers_of_its_exports() {
    let mut res: StageResult = serde_json::from_slice(&result(2, Vec::new())).expect("result");
    res.layers_skipped = true;
    let res = serde_json::to_vec(&res).expect("json");
    let config = EntryConfig::new(Some(&record("fast")), None, &res, true).to_bytes();
    let blobs = vec![blob(D3, 30)];
    let check = |needs| {
        Hit::check(
            2,
            &[2],
            needs,
            KeyKind::Fast,
            &record("fast"),
            &config,
            blobs.clone(),
        )
    };
    let hit = check(false).expect("a reader of its exports takes it");
    assert!(hit.layers.is_empty());
    assert_eq!(hit.exports.as_ref().map(|e| e.digest.as_str()), Some(D3));
    assert_eq!(
        check(true).expect_err("a stage FROM it"),
        Rejected::NoLayers
    );
    // A stage that wrote no files makes no layers either: that entry serves both.
    let config = EntryConfig::new(Some(&record("fast")), None, &result(2, Vec::new()), true);
    let hit = Hit::check(
        2,
        &[2],
        true,
        KeyKind::Fast,
        &record("fast"),
        &config.to_bytes(),
        blobs.clone(),
    );
    assert!(hit.expect("no files, no layers").layers.is_empty());
}

#[test]
fn an_entry_that_is_not_what_the_key_says_is_a_miss() {
    let (config, _, blobs) = entry(true);
    let check = |kind, rec: &Record, config: &[u8], blobs: Vec<LayerRef>, lineage: &[usize]| {
        Hit::check(2, lineage, true, kind, rec, config, blobs).expect_err("rejected")
    };
    // Another input under the same key (a collision, or a bug in what a key holds).
    assert_eq!(
        check(
            KeyKind::Fast,
            &record("other"),
            &config,
            blobs.clone(),
            &[2, 1]
        ),
        Rejected::Record(KeyKind::Fast)
    );
    assert_eq!(
        check(
            KeyKind::Slow,
            &record("fast"),
            &config,
            blobs.clone(),
            &[2, 1]
        ),
        Rejected::Record(KeyKind::Slow)
    );
    // Not an entry at all: an image's config pushed under the tag.
    assert_eq!(
        check(
            KeyKind::Fast,
            &record("fast"),
            br#"{"architecture":"amd64"}"#,
            blobs.clone(),
            &[2, 1]
        ),
        Rejected::NotAnEntry
    );
    // A layer swapped, or one missing.
    let mut swapped = blobs.clone();
    swapped[1] = blob(D1, 20);
    assert_eq!(
        check(KeyKind::Fast, &record("fast"), &config, swapped, &[2, 1]),
        Rejected::Layers
    );
    assert_eq!(
        check(
            KeyKind::Fast,
            &record("fast"),
            &config,
            blobs[..2].to_vec(),
            &[2, 1]
        ),
        Rejected::Layers
    );
    // A result whose layers lie outside this stage's chain (stage 1 is not its parent here).
    assert_eq!(
        check(KeyKind::Fast, &record("fast"), &config, blobs.clone(), &[2]),
        Rejected::LayerPath("stages/1/layers/1111111111111111111111111111111111111111111111111111111111111111.tar.gz".into())
    );
    // Another stage's result.
    let hit = Hit::check(
        5,
        &[5, 2, 1],
        true,
        KeyKind::Fast,
        &record("fast"),
        &config,
        blobs,
    );
    assert_eq!(hit.expect_err("index"), Rejected::Index(2));
}

fn checkpoint(steps: usize, layers: usize) -> crate::workspace::Checkpoint {
    crate::workspace::Checkpoint {
        steps,
        own: 0,
        layers,
        config: Config::default(),
        history: 0,
        author: String::new(),
        cmd_set: false,
        vars: Vec::new(),
        args: Vec::new(),
    }
}

/// A checkpoint of stage 2 after its 4th instruction, with its one layer.
fn prefix_entry(resume: &Resume) -> Vec<u8> {
    let json = serde_json::to_vec(resume).expect("json");
    let mut config = EntryConfig::new(Some(&record("prefix")), None, &json, false);
    config.kind = PREFIX_KIND.into();
    config.to_bytes()
}

fn resume_of(index: usize, path: &str) -> Resume {
    Resume {
        index,
        checkpoints: vec![checkpoint(2, 0), checkpoint(4, 1)],
        history: Vec::new(),
        parent: Vec::new(),
        layers: vec![LayerRef {
            path: path.into(),
            ..layer(2, D1, 10)
        }],
    }
}

#[test]
fn a_checkpoint_is_used_only_where_its_key_and_stage_say() {
    let good = resume_of(2, &format!("resume/2/{}.tar.gz", &D1[7..]));
    let config = prefix_entry(&good);
    let blobs = [blob(D1, 10)];
    let hit = PrefixHit::check(2, 4, &record("prefix"), &config, &blobs).expect("hit");
    assert_eq!((hit.steps, hit.bytes_reused()), (4, 10));
    assert_eq!(hit.resume, good);
    let reject = |index, steps, record: &Record, config: &[u8], blobs: &[LayerRef]| {
        PrefixHit::check(index, steps, record, config, blobs).expect_err("rejected")
    };
    // Another record (a swapped tag), another place in the stage, another stage.
    assert_eq!(
        reject(2, 4, &record("other"), &config, &blobs),
        Rejected::Record(KeyKind::Fast)
    );
    assert_eq!(
        reject(2, 2, &record("prefix"), &config, &blobs),
        Rejected::Checkpoint(2)
    );
    // A checkpoint whose shape is not what it says: out of order, layers it does not carry.
    let mut shuffled = good.clone();
    shuffled.checkpoints[0].steps = 5;
    let bad = prefix_entry(&shuffled);
    assert_eq!(
        reject(2, 4, &record("prefix"), &bad, &blobs),
        Rejected::Checkpoint(4)
    );
    let mut more = good.clone();
    more.checkpoints[1].layers = 2;
    let bad = prefix_entry(&more);
    assert_eq!(
        reject(2, 4, &record("prefix"), &bad, &blobs),
        Rejected::Checkpoint(4)
    );
    assert_eq!(
        reject(3, 4, &record("prefix"), &config, &blobs),
        Rejected::Index(2)
    );
    // Blobs that are not its layers.
    assert_eq!(
        reject(2, 4, &record("prefix"), &config, &[blob(D2, 10)]),
        Rejected::Layers
    );
    assert_eq!(
        reject(2, 4, &record("prefix"), &config, &[]),
        Rejected::Layers
    );
    // A layer path anywhere but resume/<its stage>/<hex>.tar.gz: it would be written there.
    for path in [
        "resume/3/1111111111111111111111111111111111111111111111111111111111111111.tar.gz",
        "stages/2/layers/1111111111111111111111111111111111111111111111111111111111111111.tar.gz",
        "resume/2/../../etc/passwd",
    ] {
        let bad = prefix_entry(&resume_of(2, path));
        assert!(matches!(
            reject(2, 4, &record("prefix"), &bad, &blobs),
            Rejected::LayerPath(_)
        ));
    }
    // A whole-stage entry is not a checkpoint, nor the other way round.
    let (whole, _, whole_blobs) = entry(false);
    assert_eq!(
        reject(2, 4, &record("fast"), &whole, &whole_blobs),
        Rejected::NotAnEntry
    );
    assert_eq!(
        Hit::check(
            2,
            &[2],
            true,
            KeyKind::Fast,
            &record("prefix"),
            &config,
            blobs.to_vec()
        )
        .expect_err("not an entry"),
        Rejected::NotAnEntry
    );
}
