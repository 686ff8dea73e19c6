//! The build context as an OCI artifact (`spec.source.oci`): what `slipway build` pushes when a
//! context is too large for a ConfigMap, and the checks the fetch step makes of what a registry
//! sends back for it. Both sides compile against this module, so the format has one definition.
//!
//! The format is an OCI 1.1 artifact in its recommended shape: an image manifest with
//! `artifactType` [`ARTIFACT_TYPE`], the empty config (`application/vnd.oci.empty.v1+json`,
//! the two bytes `{}`: the context has no configuration), and exactly one layer, the context
//! as a gzip tar ([`LAYER_MEDIA_TYPE`], the ordinary layer type, so that skopeo, crane and oras
//! copy and inspect it). A registry that predates artifacts stores it as any image manifest.
//!
//! Everything a registry sends is untrusted: the manifest's bytes must hash to the digest the
//! ImageBuild pins ([`check_manifest`]), and it must name exactly one layer of a tar media
//! type, with a well-formed sha256 digest and a size within the pod's size limit; the layer's
//! bytes are then checked against that digest and size as they arrive (the engine's part).

use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use crate::digest::sha256_hex;
use crate::size::Size;

/// The manifest's media type (an OCI image manifest).
pub const MANIFEST_MEDIA_TYPE: &str = "application/vnd.oci.image.manifest.v1+json";
/// The manifest's `artifactType`: a Slipway build context.
pub const ARTIFACT_TYPE: &str = "application/vnd.slipway.context.v1";
/// The empty config's media type, and its bytes.
pub const EMPTY_CONFIG_MEDIA_TYPE: &str = "application/vnd.oci.empty.v1+json";
pub const EMPTY_CONFIG: &[u8] = b"{}";
/// The one layer: the context as a gzip tar.
pub const LAYER_MEDIA_TYPE: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
/// Layer media types the fetch step takes: a gzip tar, or a plain one.
pub const LAYER_MEDIA_TYPES: [&str; 2] =
    [LAYER_MEDIA_TYPE, "application/vnd.oci.image.layer.v1.tar"];

/// A content descriptor, as the manifest writes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    pub media_type: String,
    pub digest: String,
    pub size: i64,
}

/// The fields of an image manifest the context artifact uses.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Manifest {
    schema_version: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    media_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    artifact_type: Option<String>,
    config: Descriptor,
    layers: Vec<Descriptor>,
}

/// `sha256:<hex>` of `bytes`.
pub fn sha256_digest(bytes: &[u8]) -> String {
    let mut h = Sha256::new();
    h.update(bytes);
    format!("sha256:{}", hex(&h.finalize()))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The manifest of a context whose gzip tar has `digest` and `size`, serialized: the bytes to
/// push, whose sha256 is the artifact's digest.
pub fn manifest_json(digest: &str, size: u64) -> Vec<u8> {
    let m = Manifest {
        schema_version: 2,
        media_type: Some(MANIFEST_MEDIA_TYPE.into()),
        artifact_type: Some(ARTIFACT_TYPE.into()),
        config: Descriptor {
            media_type: EMPTY_CONFIG_MEDIA_TYPE.into(),
            digest: sha256_digest(EMPTY_CONFIG),
            size: EMPTY_CONFIG.len() as i64,
        },
        layers: vec![Descriptor {
            media_type: LAYER_MEDIA_TYPE.into(),
            digest: digest.into(),
            size: i64::try_from(size).unwrap_or(i64::MAX),
        }],
    };
    serde_json::to_vec(&m).unwrap_or_default()
}

/// Why a registry's answer for a context artifact is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ArtifactError {
    #[error("the manifest's digest is {got}, not the {want} the ImageBuild pins")]
    ManifestDigest { want: String, got: String },
    #[error("the manifest is not an OCI image manifest: {0}")]
    NotAManifest(String),
    #[error("the manifest's media type is {0:?}, not {MANIFEST_MEDIA_TYPE}")]
    ManifestMediaType(String),
    #[error("the manifest has {0} layers; a context artifact has exactly one")]
    LayerCount(usize),
    #[error("the layer's media type is {0:?}, not a tar ({LAYER_MEDIA_TYPE} or plain)")]
    LayerMediaType(String),
    #[error("the layer's digest {0:?} is not sha256: and 64 lowercase hex digits")]
    LayerDigest(String),
    #[error("the layer's size {size} is over the size limit of {limit}")]
    TooLarge { size: i64, limit: Size },
    #[error("the layer's size {0} is negative")]
    NegativeSize(i64),
}

/// Checks a registry's manifest bytes for the artifact pinned at `want`: they hash to `want`,
/// are an OCI image manifest of exactly one tar layer, whose digest is well formed and whose
/// size is within `limit`. Returns that layer.
pub fn check_manifest(bytes: &[u8], want: &str, limit: Size) -> Result<Descriptor, ArtifactError> {
    let got = sha256_digest(bytes);
    if got != want {
        return Err(ArtifactError::ManifestDigest {
            want: want.to_string(),
            got,
        });
    }
    let m: Manifest =
        serde_json::from_slice(bytes).map_err(|e| ArtifactError::NotAManifest(e.to_string()))?;
    if m.schema_version != 2 {
        return Err(ArtifactError::NotAManifest(format!(
            "schemaVersion {}",
            m.schema_version
        )));
    }
    if let Some(t) = m.media_type.filter(|t| t != MANIFEST_MEDIA_TYPE) {
        return Err(ArtifactError::ManifestMediaType(t));
    }
    let [layer] = <[Descriptor; 1]>::try_from(m.layers)
        .map_err(|layers| ArtifactError::LayerCount(layers.len()))?;
    if !LAYER_MEDIA_TYPES.contains(&layer.media_type.as_str()) {
        return Err(ArtifactError::LayerMediaType(layer.media_type));
    }
    if sha256_hex(&layer.digest).is_err() {
        return Err(ArtifactError::LayerDigest(layer.digest));
    }
    if layer.size < 0 {
        return Err(ArtifactError::NegativeSize(layer.size));
    }
    if layer.size as u64 > limit.bytes() {
        return Err(ArtifactError::TooLarge {
            size: layer.size,
            limit,
        });
    }
    Ok(layer)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layer_digest() -> String {
        sha256_digest(b"the context")
    }

    /// A manifest as a registry might send it, with its own digest.
    fn sent(v: serde_json::Value) -> (Vec<u8>, String) {
        let bytes = serde_json::to_vec(&v).expect("json");
        let d = sha256_digest(&bytes);
        (bytes, d)
    }

    fn manifest_with(layers: serde_json::Value) -> serde_json::Value {
        serde_json::json!({
            "schemaVersion": 2,
            "mediaType": MANIFEST_MEDIA_TYPE,
            "config": {"mediaType": EMPTY_CONFIG_MEDIA_TYPE, "digest": sha256_digest(b"{}"), "size": 2},
            "layers": layers,
        })
    }

    fn layer(media_type: &str, digest: &str, size: i64) -> serde_json::Value {
        serde_json::json!({"mediaType": media_type, "digest": digest, "size": size})
    }

    #[test]
    fn what_the_cli_pushes_the_fetch_step_takes() {
        let bytes = manifest_json(&layer_digest(), 1234);
        let v: serde_json::Value = serde_json::from_slice(&bytes).expect("json");
        assert_eq!(v["artifactType"], ARTIFACT_TYPE);
        assert_eq!(v["config"]["mediaType"], EMPTY_CONFIG_MEDIA_TYPE);
        assert_eq!(
            v["config"]["digest"],
            "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"
        );
        let got = check_manifest(&bytes, &sha256_digest(&bytes), Size(1 << 20)).expect("ok");
        assert_eq!(
            got,
            Descriptor {
                media_type: LAYER_MEDIA_TYPE.into(),
                digest: layer_digest(),
                size: 1234
            }
        );
    }

    #[test]
    fn a_manifest_that_is_not_the_pinned_one_is_refused() {
        let bytes = manifest_json(&layer_digest(), 1);
        let want = sha256_digest(b"another manifest");
        let e = check_manifest(&bytes, &want, Size(1 << 20)).expect_err("refused");
        assert_eq!(
            e.to_string(),
            format!(
                "the manifest's digest is {}, not the {want} the ImageBuild pins",
                sha256_digest(&bytes)
            )
        );
    }

    #[test]
    fn exactly_one_layer() {
        let l = layer(LAYER_MEDIA_TYPE, &layer_digest(), 5);
        for (layers, n) in [
            (serde_json::json!([l.clone(), l.clone()]), 2),
            (serde_json::json!([]), 0),
        ] {
            let (bytes, d) = sent(manifest_with(layers));
            assert_eq!(
                check_manifest(&bytes, &d, Size(1 << 20)),
                Err(ArtifactError::LayerCount(n))
            );
        }
    }

    #[test]
    fn an_oversized_layer_is_refused_before_it_is_fetched() {
        let (bytes, d) = sent(manifest_with(serde_json::json!([layer(
            LAYER_MEDIA_TYPE,
            &layer_digest(),
            (1 << 20) + 1
        )])));
        let e = check_manifest(&bytes, &d, Size(1 << 20)).expect_err("too large");
        assert_eq!(
            e.to_string(),
            "the layer's size 1048577 is over the size limit of 1Mi"
        );
        let (bytes, d) = sent(manifest_with(serde_json::json!([layer(
            LAYER_MEDIA_TYPE,
            &layer_digest(),
            -1
        )])));
        assert_eq!(
            check_manifest(&bytes, &d, Size(1 << 20)),
            Err(ArtifactError::NegativeSize(-1))
        );
    }

    #[test]
    fn wrong_media_types_and_digests_are_refused() {
        let (bytes, d) = sent(manifest_with(serde_json::json!([layer(
            "application/vnd.oci.image.layer.v1.tar+zstd",
            &layer_digest(),
            5
        )])));
        assert!(matches!(
            check_manifest(&bytes, &d, Size(1 << 20)),
            Err(ArtifactError::LayerMediaType(t)) if t.ends_with("zstd")
        ));
        let (bytes, d) = sent(manifest_with(serde_json::json!([layer(
            LAYER_MEDIA_TYPE,
            "sha256:../../etc/passwd",
            5
        )])));
        assert!(matches!(
            check_manifest(&bytes, &d, Size(1 << 20)),
            Err(ArtifactError::LayerDigest(_))
        ));
        let mut index = manifest_with(serde_json::json!([layer(
            LAYER_MEDIA_TYPE,
            &layer_digest(),
            5
        )]));
        index["mediaType"] = "application/vnd.oci.image.index.v1+json".into();
        let (bytes, d) = sent(index);
        assert!(matches!(
            check_manifest(&bytes, &d, Size(1 << 20)),
            Err(ArtifactError::ManifestMediaType(_))
        ));
        let (bytes, d) = sent(serde_json::json!({"schemaVersion": 2}));
        assert!(matches!(
            check_manifest(&bytes, &d, Size(1 << 20)),
            Err(ArtifactError::NotAManifest(_))
        ));
        // A plain tar layer is a context too.
        let (bytes, d) = sent(manifest_with(serde_json::json!([layer(
            "application/vnd.oci.image.layer.v1.tar",
            &layer_digest(),
            5
        )])));
        assert!(check_manifest(&bytes, &d, Size(1 << 20)).is_ok());
    }
}
