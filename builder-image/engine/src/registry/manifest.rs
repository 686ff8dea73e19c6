//! The OCI image manifest of a built image (oci-client's types and media types), and the
//! sha256 digests of blobs. The manifest pushed is exactly the bytes hashed for its digest.

use std::collections::BTreeMap;
use std::path::Path;

use oci_client::manifest::{
    IMAGE_CONFIG_MEDIA_TYPE, IMAGE_DOCKER_LAYER_TAR_MEDIA_TYPE, IMAGE_LAYER_GZIP_MEDIA_TYPE,
    IMAGE_LAYER_MEDIA_TYPE, OCI_IMAGE_MEDIA_TYPE, OciDescriptor, OciImageManifest,
};
use sha2::{Digest, Sha256};

use crate::workspace::LayerRef;

/// Docker's gzip layer type and OCI's are the same bytes; one manifest uses one family.
pub fn oci_layer_type(media_type: &str) -> &'static str {
    match media_type {
        IMAGE_DOCKER_LAYER_TAR_MEDIA_TYPE | IMAGE_LAYER_MEDIA_TYPE => IMAGE_LAYER_MEDIA_TYPE,
        _ => IMAGE_LAYER_GZIP_MEDIA_TYPE,
    }
}

/// The OCI manifest of a config and its layers, serialized; `annotations` only when there
/// are any (none: the bytes BuildKit writes for the same image).
pub fn manifest_json<'a>(
    config: &[u8],
    config_digest: &str,
    layers: impl IntoIterator<Item = &'a LayerRef>,
    annotations: &BTreeMap<String, String>,
) -> Vec<u8> {
    let manifest = OciImageManifest {
        schema_version: 2,
        media_type: Some(OCI_IMAGE_MEDIA_TYPE.into()),
        config: OciDescriptor {
            media_type: IMAGE_CONFIG_MEDIA_TYPE.into(),
            digest: config_digest.into(),
            size: config.len() as i64,
            ..Default::default()
        },
        layers: layers
            .into_iter()
            .map(|l| OciDescriptor {
                media_type: oci_layer_type(&l.media_type).into(),
                digest: l.digest.clone(),
                size: l.size as i64,
                ..Default::default()
            })
            .collect(),
        annotations: (!annotations.is_empty()).then(|| annotations.clone()),
        ..Default::default()
    };
    // Through a JSON value, whose maps sort their keys: the bytes (and so the digest) stay
    // what they were when the manifest was written with `json!` (pinned by a test).
    serde_json::to_value(&manifest)
        .and_then(|v| serde_json::to_vec(&v))
        .unwrap_or_default()
}

pub fn sha256_bytes(b: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(b)))
}

pub fn sha256_file(path: &Path) -> std::io::Result<String> {
    let mut f = std::fs::File::open(path)?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = std::io::Read::read(&mut f, &mut buf)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(format!("sha256:{}", hex::encode(h.finalize())))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layer(media_type: &str, n: u8, size: u64) -> (LayerRef, ()) {
        let l = LayerRef {
            path: format!("l{n}"),
            digest: format!("sha256:{}", hex::encode([n; 32])),
            diff_id: format!("sha256:{}", hex::encode([n + 100; 32])),
            size,
            media_type: media_type.into(),
        };
        (l, ())
    }

    /// Pinned on the `json!` serialization this replaced (keys sorted, no null fields): the
    /// same inputs must keep giving the same manifest bytes, so the same digest.
    #[test]
    fn manifest_bytes_are_pinned() {
        let config = br#"{"architecture":"amd64","os":"linux"}"#;
        let layers = [
            layer("application/vnd.docker.image.rootfs.diff.tar.gzip", 1, 1234),
            layer("application/vnd.oci.image.layer.v1.tar", 2, 10),
            layer("application/vnd.docker.image.rootfs.diff.tar", 3, 0),
            layer(
                "application/vnd.oci.image.layer.v1.tar+gzip",
                4,
                5_000_000_000,
            ),
        ];
        let none = BTreeMap::new();
        let m = manifest_json(
            config,
            &sha256_bytes(config),
            layers.iter().map(|(l, _)| l),
            &none,
        );
        let want = concat!(
            r#"{"config":{"digest":"sha256:9d99a75171aea000c711b34c0e5e3f28d3d537dd99d110eafbfbc2bd8e52c2bf","#,
            r#""mediaType":"application/vnd.oci.image.config.v1+json","size":37},"layers":["#,
            r#"{"digest":"sha256:0101010101010101010101010101010101010101010101010101010101010101","#,
            r#""mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","size":1234},"#,
            r#"{"digest":"sha256:0202020202020202020202020202020202020202020202020202020202020202","#,
            r#""mediaType":"application/vnd.oci.image.layer.v1.tar","size":10},"#,
            r#"{"digest":"sha256:0303030303030303030303030303030303030303030303030303030303030303","#,
            r#""mediaType":"application/vnd.oci.image.layer.v1.tar","size":0},"#,
            r#"{"digest":"sha256:0404040404040404040404040404040404040404040404040404040404040404","#,
            r#""mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","size":5000000000}],"#,
            r#""mediaType":"application/vnd.oci.image.manifest.v1+json","schemaVersion":2}"#,
        );
        assert_eq!(String::from_utf8_lossy(&m), want);
        assert_eq!(
            sha256_bytes(&m),
            "sha256:855866bd151d9f8376764f3c7c6414560e2d87eed7b6279383b890ac3d984d1b"
        );
        let m = manifest_json(config, &sha256_bytes(config), [], &none);
        assert_eq!(
            sha256_bytes(&m),
            "sha256:74d4bbce0ab7e5f5352de3596eb5e25ea0d175a85b1d6b0ff9fbc7e37758ffb0"
        );
    }

    /// Annotations go last but one, keys sorted; the same ones give the same bytes.
    #[test]
    fn annotations_are_written_sorted_when_there_are_any() {
        let config = br#"{"architecture":"amd64","os":"linux"}"#;
        let a = BTreeMap::from([
            (
                "org.opencontainers.image.revision".to_string(),
                "ab12".to_string(),
            ),
            (
                "org.opencontainers.image.base.name".to_string(),
                "alpine:3".to_string(),
            ),
        ]);
        let m = manifest_json(config, &sha256_bytes(config), [], &a);
        let text = String::from_utf8_lossy(&m).into_owned();
        assert!(
            text.contains(concat!(
                r#""annotations":{"org.opencontainers.image.base.name":"alpine:3","#,
                r#""org.opencontainers.image.revision":"ab12"},"config""#
            )),
            "{text}"
        );
        assert_eq!(
            m,
            manifest_json(config, &sha256_bytes(config), [], &a.clone())
        );
        assert_ne!(
            sha256_bytes(&m),
            "sha256:74d4bbce0ab7e5f5352de3596eb5e25ea0d175a85b1d6b0ff9fbc7e37758ffb0"
        );
    }

    #[test]
    fn layer_types_and_digests() {
        assert_eq!(
            oci_layer_type("application/vnd.docker.image.rootfs.diff.tar"),
            "application/vnd.oci.image.layer.v1.tar"
        );
        assert_eq!(
            oci_layer_type("application/vnd.docker.image.rootfs.diff.tar.gzip"),
            "application/vnd.oci.image.layer.v1.tar+gzip"
        );
        let dir = tempfile::tempdir().expect("tempdir");
        let f = dir.path().join("blob");
        std::fs::write(&f, b"hello").expect("write");
        assert_eq!(
            sha256_file(&f).expect("hash"),
            "sha256:2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"
        );
        assert_eq!(sha256_file(&f).ok(), Some(sha256_bytes(b"hello")));
    }
}
