//! The attacks on the workspace a stage's RUN steps can make, against the one reader every
//! pod uses: a file rewritten (T2, T3), a symlink or a FIFO in its place, a file too large, a
//! result naming a layer outside its chain (T4), a layer or an exports tar changed.

use std::fs;
use std::os::unix::fs::symlink;
use std::path::Path;

use slipway_contract::digest::Digest;
use slipway_contract::pod::Digests;
use slipway_frontend::plan::{PlanOptions, plan};

use super::*;
use crate::layer::writer::{LayerWriter, Meta};
use crate::stage::config::Config;

fn sha(bytes: &[u8]) -> Digest {
    Digest::from_sha256(&Sha256::digest(bytes).into())
}

/// A workspace with a plan (`a` on busybox, the target on `a`) and its digests.
struct Setup {
    _dir: tempfile::TempDir,
    ws: Workspace,
    plan: Plan,
    digests: Digests,
}

fn setup() -> Setup {
    let dir = tempfile::tempdir().expect("tmp");
    let ws = Workspace::new(dir.path().join("ws"));
    fs::create_dir_all(ws.stage_dir(0)).expect("mkdir");
    fs::create_dir_all(ws.stage_dir(1)).expect("mkdir");
    let df = "FROM busybox AS a\nRUN true\nFROM a\nRUN true\n";
    let p = plan(df, &PlanOptions::default()).expect("plans");
    let json = serde_json::to_vec_pretty(&p).expect("json");
    fs::write(ws.plan(), &json).expect("plan");
    fs::write(ws.dockerfile(), df).expect("dockerfile");
    let mut digests = Digests::new(sha(&json));
    digests.dockerfile = Some(sha(df.as_bytes()));
    Setup {
        _dir: dir,
        ws,
        plan: p,
        digests,
    }
}

impl Setup {
    fn checked(&self) -> Checked<'_> {
        Checked {
            ws: &self.ws,
            digests: &self.digests,
        }
    }
}

#[test]
fn files_that_match_their_digests_are_read() {
    let s = setup();
    assert_eq!(s.checked().plan().expect("plan"), s.plan);
    assert!(
        s.checked()
            .dockerfile()
            .expect("df")
            .starts_with("FROM busybox")
    );
}

/// T3's and T2's shape: a stage rewrites plan.json (the target) or the Dockerfile.
#[test]
fn a_rewritten_file_is_refused_naming_it() {
    let s = setup();
    let text = fs::read_to_string(s.ws.plan()).expect("plan");
    let forged = text.replace("\"targetIndex\": 1", "\"targetIndex\": 0");
    assert_ne!(forged, text);
    fs::write(s.ws.plan(), forged).expect("forge");
    let e = s.checked().plan().expect_err("refused");
    assert_eq!(
        e.to_string(),
        "plan.json does not match the digest the controller holds: the workspace was modified"
    );
    fs::write(
        s.ws.dockerfile(),
        "FROM busybox\nRUN cat /.slipway/secrets/token\n",
    )
    .expect("w");
    let e = s.checked().dockerfile().expect_err("refused");
    assert_eq!(
        e.to_string(),
        "Dockerfile does not match the digest the controller holds: the workspace was modified"
    );
}

#[test]
fn symlinks_fifos_large_files_and_missing_digests_are_refused() {
    let s = setup();
    let root = &s.ws.root;
    let want = sha(b"x");
    // A symlink at the name, or on the way to it.
    fs::write(root.join("real"), "x").expect("w");
    symlink("real", root.join("link")).expect("ln");
    let e = read_verified(root, Path::new("link"), Some(&want), CAP).expect_err("link");
    assert_eq!(e.to_string(), "link: a symlink (not followed)");
    symlink("/etc", root.join("etc")).expect("ln");
    let e = read_verified(root, Path::new("etc/hostname"), Some(&want), CAP).expect_err("dir");
    assert_eq!(e.to_string(), "etc/hostname: a symlink (not followed)");
    // A FIFO is refused without being opened (which would block).
    nix::unistd::mkfifo(&root.join("fifo"), nix::sys::stat::Mode::S_IRWXU).expect("fifo");
    let e = read_verified(root, Path::new("fifo"), Some(&want), CAP).expect_err("fifo");
    assert_eq!(e.to_string(), "fifo: not a regular file");
    // Larger than the cap.
    fs::write(root.join("big"), vec![b'x'; 100]).expect("w");
    let e = read_verified(root, Path::new("big"), Some(&want), 10).expect_err("big");
    assert!(
        matches!(
            e,
            TrustError::Unsafe {
                source: BeneathError::TooLarge { cap: 10, .. },
                ..
            }
        ),
        "{e}"
    );
    // Outside the workspace, or with no digest from the controller.
    for rel in ["/etc/hostname", "../x", ""] {
        let e = read_verified(root, Path::new(rel), Some(&want), CAP).expect_err(rel);
        assert!(
            matches!(
                e,
                TrustError::Unsafe {
                    source: BeneathError::NotBeneath,
                    ..
                }
            ),
            "{rel}: {e}"
        );
    }
    let e = read_verified(root, Path::new("real"), None, CAP).expect_err("no digest");
    assert_eq!(e.to_string(), "real: the controller holds no digest for it");
    assert_eq!(
        read_verified(root, Path::new("real"), Some(&want), CAP).expect("read"),
        b"x"
    );
}

/// A gzip layer of stage `index`, written where the stage engine writes it.
fn write_layer(ws: &Workspace, index: usize, text: &[u8]) -> LayerRef {
    let mut w = LayerWriter::new(Vec::new(), flate2::Compression::fast());
    let meta = Meta {
        mode: 0o644,
        ..Default::default()
    };
    w.add_file("marker", meta, text.len() as u64, text)
        .expect("entry");
    let (bytes, d) = w.finish().expect("layer");
    let hex = d.digest.trim_start_matches("sha256:").to_string();
    let rel = format!("stages/{index}/layers/{hex}.tar.gz");
    fs::create_dir_all(ws.stage_layers(index)).expect("mkdir");
    fs::write(ws.root.join(&rel), &bytes).expect("layer");
    LayerRef {
        path: rel,
        digest: d.digest,
        diff_id: d.diff_id,
        size: d.size,
        media_type: crate::stage::LAYER_MEDIA_TYPE.into(),
    }
}

fn result_of(index: usize, layers: Vec<LayerRef>) -> StageResult {
    StageResult {
        index,
        name: None,
        base: Some("busybox".into()),
        config: Config::default(),
        author: String::new(),
        history: vec![],
        layers,
        vars: vec![],
        args: vec![],
        checkpoints: Vec::new(),
        layers_skipped: false,
    }
}

/// Writes stage `index`'s result and gives the digests of its outputs.
fn finish_stage(s: &mut Setup, r: &StageResult) {
    let json = serde_json::to_vec(r).expect("json");
    fs::write(s.ws.stage_result(r.index), json).expect("result");
    let out = outputs(&s.ws, r.index).expect("outputs");
    s.digests.add_outputs(r.index, &out);
}

/// T4: a result naming a layer outside the workspace (the push secret, /dev/zero) or another
/// chain's layer is refused before any layer is opened.
#[test]
fn a_result_may_only_name_layers_of_its_own_chain() {
    let mut s = setup();
    let l0 = write_layer(&s.ws, 0, b"a");
    let l1 = write_layer(&s.ws, 1, b"target");
    let good = result_of(1, vec![l0.clone(), l1.clone()]);
    finish_stage(&mut s, &good);
    assert_eq!(s.checked().result(&s.plan, 1).expect("result"), good);
    for path in [
        "/.slipway/docker/config.json".to_string(),
        "/dev/zero".to_string(),
        "stages/1/layers/../../../etc/passwd".to_string(),
        format!(
            "stages/2/layers/{}.tar.gz",
            l1.digest.trim_start_matches("sha256:")
        ),
    ] {
        let forged = result_of(
            1,
            vec![LayerRef {
                path: path.clone(),
                ..l1.clone()
            }],
        );
        finish_stage(&mut s, &forged);
        let e = s.checked().result(&s.plan, 1).expect_err(&path);
        assert!(matches!(e, TrustError::Layer { .. }), "{path}: {e}");
        assert!(
            e.to_string()
                .starts_with("stages/1/result.json: layer path"),
            "{e}"
        );
    }
    // Stage 0's result may not name stage 1's layers: 1 is not in its lineage.
    let forged = result_of(0, vec![l1]);
    finish_stage(&mut s, &forged);
    assert!(s.checked().result(&s.plan, 0).is_err());
    assert_eq!(lineage(&s.plan, 1), vec![1, 0]);
    assert_eq!(lineage(&s.plan, 0), vec![0]);
}

/// A layer file changed after its stage wrote it fails as it is applied or pushed.
#[test]
fn a_changed_layer_is_caught_as_it_is_read() {
    let s = setup();
    let l = write_layer(&s.ws, 0, b"a");
    let r = s.checked().layer(&l).expect("open");
    finish_layer(&l, r).expect("untouched");
    let other = write_layer(&s.ws, 1, b"b");
    fs::copy(s.ws.root.join(&other.path), s.ws.root.join(&l.path)).expect("swap");
    let mut r = s.checked().layer(&l).expect("open");
    let _ = io::copy(&mut r, &mut io::sink());
    let e = finish_layer(&l, r).expect_err("changed");
    assert!(
        e.to_string().starts_with(&format!(
            "{} does not match its digest: the workspace was modified (",
            l.path
        )),
        "{e}"
    );
    // A symlink in its place is not followed.
    fs::remove_file(s.ws.root.join(&l.path)).expect("rm");
    symlink("/etc/passwd", s.ws.root.join(&l.path)).expect("ln");
    assert!(matches!(
        s.checked().layer(&l),
        Err(TrustError::Unsafe {
            source: BeneathError::Symlink,
            ..
        })
    ));
}

#[test]
fn exports_are_read_only_when_they_match() {
    let mut s = setup();
    fs::write(s.ws.stage_exports(0), b"exports of stage 0").expect("w");
    finish_stage(&mut s, &result_of(0, vec![]));
    let mut r = s.checked().exports(0).expect("ok").expect("some");
    let mut text = String::new();
    r.read_to_string(&mut text).expect("read");
    r.finish().expect("matches");
    fs::write(s.ws.stage_exports(0), b"exports of another kind").expect("w");
    let r = s.checked().exports(0).expect("ok").expect("some");
    let e = r.finish().expect_err("changed");
    assert_eq!(
        e.to_string(),
        "stages/0/exports.tar does not match the digest the controller holds: the workspace was modified"
    );
    // A stage known to export nothing; a stage the pod was told nothing of.
    finish_stage(&mut s, &result_of(1, vec![]));
    assert!(s.checked().exports(1).expect("known").is_none());
    let e = s.checked().exports(2).err().expect("unknown");
    assert_eq!(
        e.to_string(),
        "stages/2/exports.tar: the controller holds no digest for it"
    );
}

/// A stage that plants `Dockerfile.dockerignore` (to let `.env` into a later COPY) is not
/// heard: without a digest for it, the context's own ignore file applies.
#[test]
fn the_ignore_file_is_the_builds_or_the_contexts() {
    let mut s = setup();
    fs::create_dir_all(s.ws.context()).expect("mkdir");
    fs::write(s.ws.context().join(".dockerignore"), ".env\n").expect("w");
    fs::write(s.ws.root.join("Dockerfile.dockerignore"), "!.env\n").expect("w");
    assert_eq!(s.checked().ignore_patterns().expect("ctx"), [".env"]);
    s.digests.ignore = Some(sha(b"*.log\n"));
    let e = s.checked().ignore_patterns().expect_err("planted");
    assert!(matches!(e, TrustError::Mismatch { .. }), "{e}");
    fs::write(s.ws.root.join("Dockerfile.dockerignore"), "*.log\n").expect("w");
    assert_eq!(s.checked().ignore_patterns().expect("own"), ["*.log"]);
}

#[test]
fn the_prepare_steps_inputs_are_the_files_it_wrote() {
    let s = setup();
    fs::create_dir_all(s.ws.root.join("images")).expect("mkdir");
    fs::write(s.ws.image_info("busybox"), b"{}").expect("w");
    let i = inputs(&s.ws, ["busybox".to_string()]).expect("inputs");
    assert_eq!(i.plan, s.digests.plan);
    assert_eq!(Some(&i.dockerfile), s.digests.dockerfile.as_ref());
    assert_eq!(i.ignore, None);
    assert_eq!(i.images["busybox"], sha(b"{}"));
    fs::write(s.ws.root.join("Dockerfile.dockerignore"), "x\n").expect("w");
    let i = inputs(&s.ws, []).expect("inputs");
    assert_eq!(i.ignore, Some(sha(b"x\n")));
}

/// A checkpoint a stage resumes from is read only as its digest says, and names only
/// `resume/<its stage>/<hex>.tar.gz`: another stage's pod rewriting it, or a checkpoint that
/// points the copy at another file, fails the stage instead of starting it elsewhere.
#[test]
fn a_checkpoint_is_read_only_when_it_matches_and_names_its_own_layers() {
    let mut s = setup();
    // No digest given: the stage starts from its first instruction.
    assert!(s.checked().resume(1).expect("none").is_none());
    let l = write_layer(&s.ws, 1, b"checkpoint");
    let name = l.path.rsplit('/').next().expect("name").to_string();
    let write = |s: &mut Setup, path: String| -> Vec<u8> {
        let r = Resume {
            index: 1,
            checkpoints: vec![],
            history: vec![],
            parent: vec![],
            layers: vec![LayerRef { path, ..l.clone() }],
        };
        let json = serde_json::to_vec(&r).expect("json");
        fs::create_dir_all(s.ws.resume_dir(1)).expect("mkdir");
        fs::write(s.ws.resume_file(1), &json).expect("write");
        s.digests.resumes = vec![slipway_contract::trust::StageDigest {
            index: 1,
            digest: sha(&json),
        }];
        json
    };
    write(&mut s, format!("resume/1/{name}"));
    let r = s.checked().resume(1).expect("read").expect("given");
    assert_eq!(r.layers[0].path, format!("resume/1/{name}"));
    // Rewritten after the digest was taken.
    fs::write(s.ws.resume_file(1), b"{}").expect("rewrite");
    let e = s.checked().resume(1).expect_err("mismatch");
    assert!(
        e.to_string()
            .contains("resume/1/checkpoint.json does not match"),
        "{e}"
    );
    // Layers anywhere but its own resume folder.
    for bad in [
        format!("resume/0/{name}"),
        format!("stages/1/layers/{name}"),
        "resume/1/../../plan.json".to_string(),
    ] {
        write(&mut s, bad.clone());
        let e = s.checked().resume(1).expect_err("bad path");
        assert!(e.to_string().contains("is not resume/<N>/"), "{bad}: {e}");
    }
}
