//! Talking to OCI registries (oci-client): resolving an image to its digest, config and layers
//! (blobs kept in a local cache by digest), and pushing a built image: blobs the registry
//! already has are skipped, base layers are mounted from the base's repository when it is on
//! the same registry, and the manifest goes last. Every error names the registry, the
//! operation and, when there is one, the HTTP status. Credentials come from the Docker config
//! file; plain HTTP only for registries named insecure.

use std::path::{Path, PathBuf};

use futures::StreamExt;
use oci_client::client::{ClientConfig, ClientProtocol};
use oci_client::errors::{OciDistributionError, OciErrorCode};
use oci_client::manifest::OciDescriptor;
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference, RegistryOperation};
use sha2::{Digest, Sha256};

use crate::registry::auth::DockerConfig;
use crate::workspace::{ImageInfo, LayerRef};

#[derive(Debug, thiserror::Error)]
#[error("registry {registry}: {operation}: {message}")]
pub struct RegistryError {
    pub registry: String,
    pub operation: String,
    pub message: String,
}

/// The HTTP status in an oci-client error, when it carries one.
fn describe(e: &OciDistributionError) -> String {
    match e {
        OciDistributionError::ServerError { code, message, .. } => {
            format!("HTTP {code}: {message}")
        }
        OciDistributionError::UnauthorizedError { url } => format!("HTTP 401 Unauthorized ({url})"),
        OciDistributionError::RequestError(r) => match r.status() {
            Some(s) => format!("HTTP {s}: {r}"),
            None => format!("{r}"),
        },
        OciDistributionError::RegistryError { envelope, .. } => {
            let status = envelope
                .errors
                .first()
                .map(|e| spec_status(&e.code))
                .unwrap_or("HTTP error");
            let what: Vec<String> = envelope
                .errors
                .iter()
                .map(|e| format!("{:?}: {}", e.code, e.message))
                .collect();
            format!("{status}: {}", what.join("; "))
        }
        OciDistributionError::ImageManifestNotFoundError(m) => {
            format!("HTTP 404 manifest unknown: {m}")
        }
        other => other.to_string(),
    }
}

/// The status the distribution spec gives each error code (oci-client keeps only the code).
fn spec_status(code: &OciErrorCode) -> &'static str {
    use OciErrorCode::*;
    match code {
        BlobUnknown | BlobUploadUnknown | ManifestUnknown | ManifestBlobUnknown | NameUnknown
        | NotFound => "HTTP 404",
        BlobUploadInvalid | DigestInvalid | ManifestInvalid | ManifestUnverified | NameInvalid
        | SizeInvalid | TagInvalid => "HTTP 400",
        Unauthorized => "HTTP 401",
        Denied => "HTTP 403",
        Unsupported => "HTTP 405",
        Toomanyrequests => "HTTP 429",
        Other(_) => "HTTP error",
    }
}

pub struct Registry {
    client: Client,
    config: DockerConfig,
    blob_cache: PathBuf,
}

/// An image to push: config JSON, layer blobs (files) and where base layers came from.
pub struct ImageToPush {
    pub config: Vec<u8>,
    pub layers: Vec<(LayerRef, PathBuf)>,
    /// The base image (for cross-repository mounts of its layers).
    pub base: Option<String>,
}

impl Registry {
    pub fn new(insecure: &[String], blob_cache: &Path) -> Result<Self, String> {
        crate::net::ensure_crypto_provider();
        crate::net::check_ca_certificates()?;
        let config = DockerConfig::load()?;
        let client = Client::new(ClientConfig {
            protocol: ClientProtocol::HttpsExcept(insecure.to_vec()),
            ..Default::default()
        });
        Ok(Registry {
            client,
            config,
            blob_cache: blob_cache.to_path_buf(),
        })
    }

    fn auth(&self, r: &Reference) -> RegistryAuth {
        match self.config.credentials(r.registry()) {
            Some((u, p)) => RegistryAuth::Basic(u, p),
            None => RegistryAuth::Anonymous,
        }
    }

    fn err(r: &Reference, operation: &str, e: impl std::fmt::Display) -> RegistryError {
        RegistryError {
            registry: r.registry().to_string(),
            operation: operation.to_string(),
            message: e.to_string(),
        }
    }

    /// Resolves `name` for this platform and caches its layers; returns what stages need.
    pub async fn pull(&self, name: &str) -> Result<ImageInfo, RegistryError> {
        let mut info = self.resolve(name).await?;
        let r = parse_ref(name)?;
        for l in &mut info.layers {
            let path = self.fetch_blob(&r, &descriptor(l)).await?;
            l.path = path.display().to_string();
        }
        Ok(info)
    }

    /// Resolves `name` for this platform to its digest, config and layer list, without
    /// downloading layers (their `path` stays empty): what a cluster build's prepare step
    /// needs, since the kubelet pulls the base images of stage pods itself.
    pub async fn resolve(&self, name: &str) -> Result<ImageInfo, RegistryError> {
        let r = parse_ref(name)?;
        let auth = self.auth(&r);
        let op = format!("pull {}", r.whole());
        let (manifest, digest, config) = self
            .client
            .pull_manifest_and_config(&r, &auth)
            .await
            .map_err(|e| Self::err(&r, &op, describe(&e)))?;
        let config: serde_json::Value = serde_json::from_str(&config)
            .map_err(|e| Self::err(&r, &op, format!("config: {e}")))?;
        let diff_ids: Vec<String> = config
            .pointer("/rootfs/diff_ids")
            .and_then(|v| serde_json::from_value(v.clone()).ok())
            .unwrap_or_default();
        if diff_ids.len() != manifest.layers.len() {
            return Err(Self::err(
                &r,
                &op,
                "the config's diff_ids do not match the manifest's layers",
            ));
        }
        let layers = manifest
            .layers
            .iter()
            .zip(diff_ids)
            .map(|(l, diff_id)| LayerRef {
                path: String::new(),
                digest: l.digest.clone(),
                diff_id,
                size: l.size as u64,
                media_type: l.media_type.clone(),
            })
            .collect();
        Ok(ImageInfo {
            reference: name.to_string(),
            pinned: format!("{}/{}@{digest}", r.registry(), r.repository()),
            digest,
            config,
            layers,
        })
    }

    /// A blob in the cache, downloaded and checked once.
    async fn fetch_blob(&self, r: &Reference, l: &OciDescriptor) -> Result<PathBuf, RegistryError> {
        let op = format!("fetch blob {}", l.digest);
        let hex = l
            .digest
            .strip_prefix("sha256:")
            .ok_or_else(|| Self::err(r, &op, "only sha256 digests are supported"))?;
        let path = self.blob_cache.join("sha256").join(hex);
        if path.exists() {
            return Ok(path);
        }
        let dir = self.blob_cache.join("sha256");
        std::fs::create_dir_all(&dir).map_err(|e| Self::err(r, &op, e))?;
        let tmp = dir.join(format!("{hex}.{}.partial", std::process::id()));
        let mut f = tokio::fs::File::create(&tmp)
            .await
            .map_err(|e| Self::err(r, &op, e))?;
        self.client
            .pull_blob(r, l, &mut f)
            .await
            .map_err(|e| Self::err(r, &op, describe(&e)))?;
        drop(f);
        let got = sha256_file(&tmp).map_err(|e| Self::err(r, &op, e))?;
        if got != l.digest {
            let _ = std::fs::remove_file(&tmp);
            return Err(Self::err(r, &op, format!("content has digest {got}")));
        }
        std::fs::rename(&tmp, &path).map_err(|e| Self::err(r, &op, e))?;
        Ok(path)
    }

    /// Pushes the image to `dest`; returns the manifest digest.
    pub async fn push(&self, dest: &str, image: &ImageToPush) -> Result<String, RegistryError> {
        let r = parse_ref(dest)?;
        let auth = self.auth(&r);
        let op = format!("push {}", r.whole());
        self.client
            .auth(&r, &auth, RegistryOperation::Push)
            .await
            .map_err(|e| Self::err(&r, &format!("{op}: authenticate"), describe(&e)))?;
        let base: Option<Reference> = image.base.as_deref().and_then(|b| b.parse().ok());
        let mut base_authed = false;
        for (layer, path) in &image.layers {
            let bop = format!("{op}: blob {}", layer.digest);
            let exists = self
                .client
                .blob_exists(&r, &layer.digest)
                .await
                .map_err(|e| Self::err(&r, &bop, describe(&e)))?;
            if exists {
                continue;
            }
            if let Some(b) = &base
                && b.registry() == r.registry()
                && b.repository() != r.repository()
                && self.client.mount_blob(&r, b, &layer.digest).await.is_ok()
                && self
                    .client
                    .blob_exists(&r, &layer.digest)
                    .await
                    .unwrap_or(false)
            {
                continue;
            }
            // A base layer the prepare step only resolved: fetched from the base's registry.
            let fetched;
            let path = if path.as_os_str().is_empty() || !path.exists() {
                let b = base
                    .as_ref()
                    .ok_or_else(|| Self::err(&r, &bop, "a layer with no file and no base image"))?;
                if !base_authed {
                    self.client
                        .auth(b, &self.auth(b), RegistryOperation::Pull)
                        .await
                        .map_err(|e| {
                            let op = format!("pull {}: authenticate", b.whole());
                            Self::err(b, &op, describe(&e))
                        })?;
                    base_authed = true;
                }
                fetched = self.fetch_blob(b, &descriptor(layer)).await?;
                &fetched
            } else {
                path
            };
            let file = tokio::fs::File::open(path)
                .await
                .map_err(|e| Self::err(&r, &bop, format!("{}: {e}", path.display())))?;
            let stream = tokio_file_stream(file);
            self.client
                .push_blob_stream(&r, stream, &layer.digest, Some(layer.size))
                .await
                .map_err(|e| Self::err(&r, &bop, describe(&e)))?;
        }
        let config_digest = format!("sha256:{}", hex::encode(Sha256::digest(&image.config)));
        if !self
            .client
            .blob_exists(&r, &config_digest)
            .await
            .map_err(|e| Self::err(&r, &format!("{op}: config"), describe(&e)))?
        {
            self.client
                .push_blob(&r, image.config.clone(), &config_digest)
                .await
                .map_err(|e| Self::err(&r, &format!("{op}: config"), describe(&e)))?;
        }
        let manifest = manifest_json(&image.config, &config_digest, &image.layers);
        let digest = format!("sha256:{}", hex::encode(Sha256::digest(&manifest)));
        self.client
            .push_manifest_raw(
                &r,
                manifest,
                reqwest::header::HeaderValue::from_static(MANIFEST_MEDIA_TYPE),
            )
            .await
            .map_err(|e| Self::err(&r, &format!("{op}: manifest"), describe(&e)))?;
        Ok(digest)
    }
}

fn parse_ref(name: &str) -> Result<Reference, RegistryError> {
    name.parse().map_err(|e| RegistryError {
        registry: "?".into(),
        operation: format!("parse {name}"),
        message: format!("{e}"),
    })
}

fn descriptor(l: &LayerRef) -> OciDescriptor {
    OciDescriptor {
        media_type: l.media_type.clone(),
        digest: l.digest.clone(),
        size: l.size as i64,
        ..Default::default()
    }
}

pub const MANIFEST_MEDIA_TYPE: &str = "application/vnd.oci.image.manifest.v1+json";
pub const CONFIG_MEDIA_TYPE: &str = "application/vnd.oci.image.config.v1+json";

/// Docker's gzip layer type and OCI's are the same bytes; one manifest uses one family.
pub fn oci_layer_type(media_type: &str) -> &'static str {
    match media_type {
        "application/vnd.docker.image.rootfs.diff.tar"
        | "application/vnd.oci.image.layer.v1.tar" => "application/vnd.oci.image.layer.v1.tar",
        _ => "application/vnd.oci.image.layer.v1.tar+gzip",
    }
}

/// The OCI manifest of a config and its layers.
pub fn manifest_json(
    config: &[u8],
    config_digest: &str,
    layers: &[(LayerRef, PathBuf)],
) -> Vec<u8> {
    let layers: Vec<serde_json::Value> = layers
        .iter()
        .map(|(l, _)| {
            serde_json::json!({
                "mediaType": oci_layer_type(&l.media_type),
                "digest": l.digest,
                "size": l.size,
            })
        })
        .collect();
    let m = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": MANIFEST_MEDIA_TYPE,
        "config": {
            "mediaType": CONFIG_MEDIA_TYPE,
            "digest": config_digest,
            "size": config.len(),
        },
        "layers": layers,
    });
    serde_json::to_vec(&m).unwrap_or_default()
}

fn tokio_file_stream(
    file: tokio::fs::File,
) -> impl futures::Stream<Item = oci_client::errors::Result<bytes::Bytes>> + Send + 'static {
    use tokio::io::AsyncReadExt;
    futures::stream::unfold(Some(file), |state| async move {
        let mut f = state?;
        let mut buf = vec![0u8; 4 << 20];
        match f.read(&mut buf).await {
            Ok(0) => None,
            Ok(n) => {
                buf.truncate(n);
                Some((Ok(bytes::Bytes::from(buf)), Some(f)))
            }
            Err(e) => Some((Err(OciDistributionError::IoError(e)), None)),
        }
    })
    .boxed()
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

    fn layer(media_type: &str, n: u8, size: u64) -> (LayerRef, PathBuf) {
        let l = LayerRef {
            path: format!("l{n}"),
            digest: format!("sha256:{}", hex::encode([n; 32])),
            diff_id: format!("sha256:{}", hex::encode([n + 100; 32])),
            size,
            media_type: media_type.into(),
        };
        (l, PathBuf::from(format!("/x/l{n}")))
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
        let m = manifest_json(config, &sha256_bytes(config), &layers);
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
        let m = manifest_json(config, &sha256_bytes(config), &[]);
        assert_eq!(
            sha256_bytes(&m),
            "sha256:74d4bbce0ab7e5f5352de3596eb5e25ea0d175a85b1d6b0ff9fbc7e37758ffb0"
        );
    }
}
