use std::sync::atomic::Ordering;

use super::*;
use crate::net::test_server::{response, serve};

fn registry(base: &str) -> (Registry, Reference) {
    registry_caching(base, Path::new(""))
}

fn registry_caching(base: &str, blob_cache: &Path) -> (Registry, Reference) {
    crate::net::ensure_crypto_provider();
    let host = base.trim_start_matches("http://").to_string();
    let r = parse_ref(&format!("{host}/team/app:1")).expect("reference");
    let registry = Registry {
        client: client(&[host]),
        config: DockerConfig::default(),
        auths: Mutex::default(),
        blob_cache: blob_cache.to_path_buf(),
        progress: Arc::new(Progress::off()),
        tally: Mutex::default(),
    };
    (registry, r)
}

/// Every file under `dir`, recursively.
fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(rd) = std::fs::read_dir(dir) else {
        return out;
    };
    for e in rd.flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(files(&p));
        } else {
            out.push(p);
        }
    }
    out
}

/// T7 (H4): a manifest naming a layer `sha256:../../...` is refused with the registry
/// named, before anything is fetched or written.
#[test]
fn a_manifest_with_a_path_for_a_digest_is_refused() {
    let config = r#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":["sha256:0000000000000000000000000000000000000000000000000000000000000000"]}}"#;
    let manifest = format!(
        r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{}","size":{}}},"layers":[{{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"sha256:../../../../../../var/tmp/slipway-h4","size":5}}]}}"#,
        sha256_bytes(config.as_bytes()),
        config.len()
    );
    // The API check (`/v2/`), the manifest, the API check again, the config.
    let (base, hits) = serve(vec![
        response("200 OK", "", ""),
        response(
            "200 OK",
            "Content-Type: application/vnd.oci.image.manifest.v1+json\r\n",
            &manifest,
        ),
        response("200 OK", "", ""),
        response("200 OK", "", config),
    ]);
    let cache = tempfile::tempdir().expect("tmp");
    let (registry, r) = registry_caching(&base, cache.path());
    let e = crate::net::block_on(registry.pull(&r.whole()))
        .expect("runtime")
        .expect_err("refused");
    let host = base.trim_start_matches("http://");
    assert_eq!(
        e.to_string(),
        format!(
            "registry {host}: pull {host}/team/app:1: layer: invalid digest \
             \"sha256:../../../../../../var/tmp/slipway-h4\" (want sha256: and 64 \
             lowercase hex digits)"
        )
    );
    assert_eq!(hits.load(Ordering::SeqCst), 4, "no layer was asked for");
    assert!(files(cache.path()).is_empty());
}

/// A blob whose bytes do not match its digest leaves nothing in the cache; a digest that
/// is a path is refused before any request.
#[test]
fn a_wrong_blob_leaves_no_file_behind() {
    let (base, hits) = serve(vec![response("200 OK", "", "pwned")]);
    let cache = tempfile::tempdir().expect("tmp");
    let (registry, r) = registry_caching(&base, cache.path());
    let want = sha256_bytes(b"the real layer");
    let l = OciDescriptor {
        digest: want.clone(),
        size: 5,
        ..Default::default()
    };
    let e = crate::net::block_on(registry.fetch_blob(&r, &l))
        .expect("runtime")
        .expect_err("mismatch");
    assert!(e.to_string().contains(&format!("fetch blob {want}")), "{e}");
    assert_eq!(hits.load(Ordering::SeqCst), 1);
    assert!(files(cache.path()).is_empty(), "{:?}", files(cache.path()));

    let l = OciDescriptor {
        digest: "sha256:../../../../etc/hostname".into(),
        ..Default::default()
    };
    let e = crate::net::block_on(registry.fetch_blob(&r, &l))
        .expect("runtime")
        .expect_err("refused");
    assert!(e.to_string().ends_with("layer: invalid digest \"sha256:../../../../etc/hostname\" (want sha256: and 64 lowercase hex digits)"), "{e}");
    assert_eq!(
        hits.load(Ordering::SeqCst),
        1,
        "no request for a bad digest"
    );
}

/// Blobs are cached per registry and repository: another repository's manifest naming the
/// same digest does not get the cached file.
#[test]
fn the_blob_cache_is_keyed_by_repository() {
    let blob = b"layer bytes";
    let (base, hits) = serve(vec![response(
        "200 OK",
        "",
        std::str::from_utf8(blob).expect("utf8"),
    )]);
    let cache = tempfile::tempdir().expect("tmp");
    let (registry, r) = registry_caching(&base, cache.path());
    let l = OciDescriptor {
        digest: sha256_bytes(blob),
        size: blob.len() as i64,
        ..Default::default()
    };
    let first = crate::net::block_on(registry.fetch_blob(&r, &l))
        .expect("runtime")
        .expect("fetched");
    assert_eq!(std::fs::read(&first).expect("read"), blob);
    let again = crate::net::block_on(registry.fetch_blob(&r, &l))
        .expect("runtime")
        .expect("cached");
    assert_eq!(again, first);
    assert_eq!(
        hits.load(Ordering::SeqCst),
        1,
        "the second time from the cache"
    );
    let other = parse_ref(&format!("{}/evil/x:1", r.registry())).expect("reference");
    let theirs = crate::net::block_on(registry.fetch_blob(&other, &l))
        .expect("runtime")
        .expect("fetched");
    assert_ne!(theirs, first);
    assert_eq!(
        hits.load(Ordering::SeqCst),
        2,
        "another repository asks its registry"
    );
}

#[test]
fn a_busy_registry_is_asked_again() {
    let (base, hits) = serve(vec![
        response("503 Service Unavailable", "", ""),
        response("200 OK", "", ""),
    ]);
    let (registry, r) = registry(&base);
    let digest = format!("sha256:{}", "a".repeat(64));
    let exists = crate::net::block_on(registry.blob_exists(&r, "push", &digest))
        .expect("runtime")
        .expect("exists");
    assert!(exists);
    assert_eq!(hits.load(Ordering::SeqCst), 2);
}

#[test]
fn a_refusal_is_final_and_keeps_its_shape() {
    let (base, hits) = serve(vec![response("403 Forbidden", "", "")]);
    let (registry, r) = registry(&base);
    let digest = format!("sha256:{}", "a".repeat(64));
    let e = crate::net::block_on(registry.blob_exists(&r, "push x: blob y", &digest))
        .expect("runtime")
        .expect_err("refused");
    let host = base.trim_start_matches("http://");
    assert!(
        e.to_string().starts_with(&format!(
            "registry {host}: push x: blob y: HTTP 403 Forbidden"
        )),
        "{e}"
    );
    assert_eq!(hits.load(Ordering::SeqCst), 1);
}
