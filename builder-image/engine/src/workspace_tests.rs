//! Tests of the workspace's safe reads: the pure path and layer checks, and the opens against
//! the symlinks, FIFOs and oversized files a stage could plant (C1).

use std::fs;
use std::os::unix::fs::symlink;

use super::*;

fn hex(n: u8) -> String {
    hex::encode([n; 32])
}

fn layer(path: &str, n: u8) -> LayerRef {
    LayerRef {
        path: path.into(),
        digest: format!("sha256:{}", hex(n)),
        diff_id: format!("sha256:{}", hex(n + 1)),
        size: 1,
        media_type: "application/vnd.oci.image.layer.v1.tar+gzip".into(),
    }
}

/// A workspace in a temporary directory with a host "secret" beside it.
fn setup() -> (tempfile::TempDir, Workspace, PathBuf) {
    let d = tempfile::tempdir().expect("tmp");
    let ws = Workspace::new(d.path().join("ws"));
    fs::create_dir_all(ws.stage_layers(0)).expect("mkdir");
    let secret = d.path().join("host-secret");
    fs::write(&secret, "host secret").expect("write");
    (d, ws, secret)
}

#[test]
fn only_plain_relative_paths_are_beneath() {
    let parts = beneath_parts(Path::new("stages/./0/error.txt")).expect("beneath");
    assert_eq!(parts, ["stages", "0", "error.txt"]);
    for bad in [
        "",
        ".",
        "/etc/shadow",
        "stages/../../etc",
        "..",
        "stages/0/..",
    ] {
        assert!(
            matches!(beneath_parts(Path::new(bad)), Err(BeneathError::NotBeneath)),
            "{bad:?}"
        );
    }
}

#[test]
fn layer_paths_are_the_stage_engines_own() {
    let h = hex(7);
    assert_eq!(
        check_layer(
            &layer(&format!("stages/2/layers/{h}.tar.gz"), 7),
            &[0, 2, 3]
        ),
        Ok(())
    );
    for bad in [
        format!("/var/lib/slipway/blobs/sha256/{h}"),
        format!("stages/1/layers/{h}.tar.gz"), // not a stage of the plan
        format!("stages/02/layers/{h}.tar.gz"),
        format!("stages/+2/layers/{h}.tar.gz"),
        format!("stages/2/layers/{}.tar.gz", hex(8)), // not its digest
        format!("stages/2/layers/../../../{h}.tar.gz"),
        format!("stages/2/layers/{h}.tar.gz/"),
        format!("./stages/2/layers/{h}.tar.gz"),
        format!("stages/2/exports/{h}.tar.gz"),
        "/etc/shadow".into(),
        String::new(),
    ] {
        assert_eq!(
            check_layer(&layer(&bad, 7), &[0, 2, 3]),
            Err(LayerPathError::Path(bad.clone())),
            "{bad:?}"
        );
    }
    let mut l = layer(&format!("stages/0/layers/{h}.tar.gz"), 7);
    l.digest = format!("sha256:../../{h}");
    assert!(matches!(
        check_layer(&l, &[0]),
        Err(LayerPathError::Digest(DigestError::Invalid(_)))
    ));
    let mut l = layer(&format!("stages/0/layers/{h}.tar.gz"), 7);
    l.diff_id = "sha256:x".into();
    assert!(matches!(
        check_layer(&l, &[0]),
        Err(LayerPathError::DiffId(DigestError::Invalid(_)))
    ));
    assert_eq!(
        LayerPathError::Path("/etc/shadow".into()).to_string(),
        "layer path \"/etc/shadow\" is not stages/<N>/layers/<digest hex>.tar.gz"
    );
}

#[test]
fn open_beneath_follows_no_symlink_in_any_component() {
    let (d, ws, secret) = setup();
    fs::write(ws.stage_error(0), "fine").expect("write");
    let rel = Path::new("stages/0/error.txt");
    let mut text = String::new();
    open_beneath(&ws.root, rel)
        .expect("open")
        .read_to_string(&mut text)
        .expect("read");
    assert_eq!(text, "fine");

    // The file itself a symlink: to the host file, and to a file inside the workspace.
    fs::remove_file(ws.stage_error(0)).expect("rm");
    symlink(&secret, ws.stage_error(0)).expect("ln");
    assert!(matches!(
        open_beneath(&ws.root, rel),
        Err(BeneathError::Symlink)
    ));
    fs::remove_file(ws.stage_error(0)).expect("rm");
    symlink("layers", ws.stage_error(0)).expect("ln");
    assert!(matches!(
        open_beneath(&ws.root, rel),
        Err(BeneathError::Symlink)
    ));

    // A directory on the way a symlink.
    fs::remove_dir_all(ws.stage_dir(0)).expect("rm");
    fs::create_dir_all(d.path().join("elsewhere")).expect("mkdir");
    fs::write(d.path().join("elsewhere/error.txt"), "host").expect("write");
    symlink(d.path().join("elsewhere"), ws.stage_dir(0)).expect("ln");
    assert!(matches!(
        open_beneath(&ws.root, rel),
        Err(BeneathError::Symlink)
    ));
    fs::remove_file(ws.stage_dir(0)).expect("rm");
    symlink("/", ws.root.join("stages/0")).expect("ln");
    assert!(matches!(
        open_beneath(&ws.root, Path::new("stages/0/etc/hostname")),
        Err(BeneathError::Symlink)
    ));

    // Not a file, and missing.
    fs::remove_file(ws.stage_dir(0)).expect("rm");
    fs::create_dir_all(ws.stage_error(0)).expect("mkdir");
    assert!(matches!(
        open_beneath(&ws.root, rel),
        Err(BeneathError::NotFile)
    ));
    assert!(matches!(
        open_beneath(&ws.root, Path::new("stages/0/error.txt/x")),
        Err(BeneathError::Io(e)) if e.kind() == io::ErrorKind::NotFound
    ));
    fs::write(ws.root.join("stages/file"), "").expect("write");
    assert!(matches!(
        open_beneath(&ws.root, Path::new("stages/file/x")),
        Err(BeneathError::NotDirectory)
    ));
    assert!(matches!(
        open_beneath(&ws.root, Path::new("/etc/hostname")),
        Err(BeneathError::NotBeneath)
    ));
    assert!(matches!(
        open_beneath(&ws.root, Path::new("stages/../../host-secret")),
        Err(BeneathError::NotBeneath)
    ));
}

#[test]
fn a_fifo_is_refused_without_blocking() {
    let (_d, ws, _) = setup();
    nix::unistd::mkfifo(&ws.stage_error(0), Mode::from_bits_truncate(0o644)).expect("mkfifo");
    assert!(matches!(
        ws.read_stage_error(0),
        Err(WorkspaceError::Unsafe {
            source: BeneathError::NotFile,
            ..
        })
    ));
    nix::unistd::mkfifo(&ws.stage_result(0), Mode::from_bits_truncate(0o644)).expect("mkfifo");
    assert!(matches!(
        read_json::<serde_json::Value>(&ws.stage_result(0)),
        Err(WorkspaceError::Unsafe {
            source: BeneathError::NotFile,
            ..
        })
    ));
}

#[test]
fn stage_errors_are_read_safely_and_capped() {
    let (_d, ws, secret) = setup();
    assert_eq!(ws.read_stage_error(0).expect("none"), None);
    fs::write(
        ws.stage_error(0),
        "stage \"a\" (#0): Dockerfile:2: RUN false: exit code 1\n",
    )
    .expect("write");
    assert_eq!(
        ws.read_stage_error(0).expect("read").as_deref(),
        Some("stage \"a\" (#0): Dockerfile:2: RUN false: exit code 1")
    );
    fs::write(ws.stage_error(0), "x".repeat(100_000)).expect("write");
    let long = ws.read_stage_error(0).expect("read").expect("some");
    assert_eq!(long.len(), ERROR_CAP as usize + " [...]".len());
    assert!(long.ends_with("x [...]"));

    fs::remove_file(ws.stage_error(0)).expect("rm");
    symlink(&secret, ws.stage_error(0)).expect("ln");
    let e = ws.read_stage_error(0).expect_err("refused");
    assert_eq!(
        e.to_string(),
        format!("{}: a symlink (not followed)", ws.stage_error(0).display())
    );
    assert!(!e.to_string().contains("host secret"));
}

fn result_with(layers: Vec<LayerRef>) -> StageResult {
    StageResult {
        index: 1,
        name: Some("b".into()),
        base: None,
        config: Config::default(),
        author: String::new(),
        history: Vec::new(),
        layers,
        vars: Vec::new(),
        args: Vec::new(),
        checkpoints: Vec::new(),
        layers_skipped: false,
    }
}

#[test]
fn stage_results_name_only_their_own_layers() {
    let (_d, ws, secret) = setup();
    fs::create_dir_all(ws.stage_layers(1)).expect("mkdir");
    let good = format!("stages/0/layers/{}.tar.gz", hex(1));
    fs::write(ws.root.join(&good), "layer").expect("write");
    write_json(&ws.stage_result(1), &result_with(vec![layer(&good, 1)])).expect("write");
    let r = ws.read_stage_result(1, &[0, 1]).expect("valid");
    assert_eq!(r.layers[0].path, good);

    // A layer path at a host file.
    let host = secret.display().to_string();
    write_json(&ws.stage_result(1), &result_with(vec![layer(&host, 1)])).expect("write");
    let e = ws.read_stage_result(1, &[0, 1]).expect_err("refused");
    assert_eq!(
        e.to_string(),
        format!(
            "{}: layer path {host:?} is not stages/<N>/layers/<digest hex>.tar.gz",
            ws.stage_result(1).display()
        )
    );

    // The right name, but a symlink to the host file.
    let planted = format!("stages/1/layers/{}.tar.gz", hex(3));
    symlink(&secret, ws.root.join(&planted)).expect("ln");
    write_json(&ws.stage_result(1), &result_with(vec![layer(&planted, 3)])).expect("write");
    let e = ws.read_stage_result(1, &[0, 1]).expect_err("refused");
    assert_eq!(
        e.to_string(),
        format!(
            "{}: a symlink (not followed)",
            ws.root.join(&planted).display()
        )
    );

    // result.json itself a symlink to a forged result elsewhere, or too large.
    let forged = ws.root.join("forged.json");
    fs::rename(ws.stage_result(1), &forged).expect("mv");
    symlink(&forged, ws.stage_result(1)).expect("ln");
    assert!(matches!(
        ws.read_stage_result(1, &[0, 1]),
        Err(WorkspaceError::Unsafe {
            source: BeneathError::Symlink,
            ..
        })
    ));
    assert!(matches!(
        read_json::<StageResult>(&ws.stage_result(1)),
        Err(WorkspaceError::Unsafe {
            source: BeneathError::Symlink,
            ..
        })
    ));
    fs::remove_file(ws.stage_result(1)).expect("rm");
    let f = File::create(ws.stage_result(1)).expect("create");
    f.set_len(RESULT_CAP + 1).expect("grow");
    assert!(matches!(
        ws.read_stage_result(1, &[0, 1]),
        Err(WorkspaceError::Unsafe {
            source: BeneathError::TooLarge { .. },
            ..
        })
    ));
}

/// A symlink planted at the temporary name is replaced, not written through (it would have
/// become `result.json` itself).
#[test]
fn write_json_never_writes_through_a_planted_link() {
    let (_d, ws, secret) = setup();
    let tmp = ws.stage_result(0).with_extension("json.tmp");
    symlink(&secret, &tmp).expect("ln");
    write_json(&ws.stage_result(0), &result_with(Vec::new())).expect("write");
    assert_eq!(fs::read_to_string(&secret).expect("read"), "host secret");
    assert!(
        !fs::symlink_metadata(ws.stage_result(0))
            .expect("stat")
            .file_type()
            .is_symlink()
    );
    assert_eq!(ws.read_stage_result(0, &[0]).expect("read").index, 1);
}
