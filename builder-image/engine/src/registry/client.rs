//! Talking to OCI registries (oci-client): resolving an image to its digest, config and layers
//! (blobs kept in a local cache by registry, repository and digest), and pushing a built image:
//! blobs the registry already has are skipped, base layers are mounted from the base's
//! repository when it is on the same registry (and any blob from the repositories the image
//! names, [`ImageToPush::mount_from`], that have it), and the manifest goes last, to each
//! destination once every blob is in at every one of them (M12): a failed push moves no tag.
//! Transient failures (HTTP 429 and 5xx, broken connections) are retried a bounded number of
//! times ([`crate::net::retry`]). Every error names the registry, the operation and, when
//! there is one, the HTTP status. Credentials come from the Docker config files
//! ([`crate::registry::auth`]); plain HTTP only for registries named insecure.
//!
//! A registry is untrusted: every digest it sends passes [`sha256_hex`] before it is used, and
//! a blob is written to a fresh `O_EXCL` temporary file in the cache directory, checked, and
//! renamed into place, the temporary file removed on every error path. So is the workspace a
//! pushed layer is read from: each layer's bytes are checked against its digests as they are
//! uploaded ([`crate::registry::verify`]), and one that changed since its stage wrote it is
//! never completed.

use std::collections::{BTreeMap, HashMap};
use std::io::{self, Seek, SeekFrom};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use backon::Retryable;
use bytes::Bytes;
use docker_credential::DockerCredential;
use futures::TryStreamExt;
use oci_client::client::{ClientConfig, ClientProtocol};
use oci_client::errors::OciDistributionError;
use oci_client::manifest::{OCI_IMAGE_MEDIA_TYPE, OciDescriptor};
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference, RegistryOperation};
use tokio_util::io::ReaderStream;

use crate::net::retry;
use crate::registry::auth::DockerConfig;
use crate::registry::digest::sha256_hex;
pub use crate::registry::error::{DigestOf, RegistryError, RegistryErrorKind, SetupError};
use crate::registry::manifest::{manifest_json, sha256_bytes, sha256_file};
use crate::registry::progress::{Counting, Progress};
use crate::registry::tally::Tally;
use crate::registry::verify::{LayerCheck, MismatchSlot, checked};
use crate::workspace::{ImageInfo, LayerRef, image_key, open_beneath};

use RegistryErrorKind::Protocol;

pub struct Registry {
    pub(super) client: Client,
    config: DockerConfig,
    /// Credentials by registry host, looked up (and credential helpers run) once.
    auths: Mutex<HashMap<String, RegistryAuth>>,
    blob_cache: PathBuf,
    /// Where blob transfers report (a line on a terminal in local mode; off elsewhere).
    progress: Arc<Progress>,
    /// What pushes did with their blobs so far.
    tally: Mutex<Tally>,
}

/// An image to push: config JSON, layer blobs and where base layers came from.
pub struct ImageToPush {
    pub config: Vec<u8>,
    pub layers: Vec<(LayerRef, BlobSource)>,
    /// The base image, pinned (for cross-repository mounts of its layers, and fetching them):
    /// the only repository other than the destinations' the push reads from.
    pub base: Option<String>,
    /// The manifest's annotations (a cluster build's: [`slipway_contract::annotations`]).
    pub annotations: BTreeMap<String, String>,
    /// Repositories (`registry/repository`) that may hold the image's blobs: one the
    /// destination lacks is mounted from the first on its registry that has it, not
    /// uploaded (the cache repository for an image push, the image's own repository for a
    /// cache write after it).
    pub mount_from: Vec<String>,
}

impl ImageToPush {
    /// The bytes of the config and layers the manifest lists: what the image takes in a
    /// registry (the manifest itself aside).
    pub fn size(&self) -> u64 {
        let layers: u64 = self.layers.iter().map(|(l, _)| l.size).sum();
        self.config.len() as u64 + layers
    }
}

/// Where a layer to push is read from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BlobSource {
    /// A stage's layer at its path (checked: `stages/<N>/layers/<hex>.tar.gz`) beneath this
    /// workspace root, opened without following a symlink, a regular file only.
    Workspace(PathBuf),
    /// A layer of the base image: from the blob cache, fetched from the base's repository
    /// when it is not there.
    Base,
}

/// Opens a blob file to upload, never through a symlink.
fn open_blob(layer: &LayerRef, source: &BlobSource, cached: &Path) -> io::Result<std::fs::File> {
    match source {
        BlobSource::Workspace(root) => {
            open_beneath(root, Path::new(&layer.path)).map_err(io::Error::other)
        }
        BlobSource::Base => std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(nix::fcntl::OFlag::O_NOFOLLOW.bits())
            .open(cached),
    }
}

pub(super) fn err(r: &Reference, operation: &str, kind: RegistryErrorKind) -> RegistryError {
    RegistryError {
        registry: r.registry().to_string(),
        operation: operation.to_string(),
        kind,
    }
}

pub(super) fn parse_ref(name: &str) -> Result<Reference, RegistryError> {
    crate::registry::reference::parse(name).map_err(|e| RegistryError {
        registry: "?".into(),
        operation: format!("parse {name}"),
        kind: RegistryErrorKind::Reference(e),
    })
}

/// Runs `attempt` again while it fails transiently, at most [`retry::ATTEMPTS`] times; the
/// last error is returned as `registry HOST: OPERATION: ...`.
pub(super) async fn retrying<T, Fut>(
    r: &Reference,
    operation: &str,
    attempt: impl FnMut() -> Fut,
) -> Result<T, RegistryError>
where
    Fut: Future<Output = Result<T, RegistryErrorKind>>,
{
    attempt
        .retry(retry::policy())
        .when(RegistryErrorKind::transient)
        .notify(|e, d| {
            retry::notice(
                &format_args!("registry {}: {operation}: {e}", r.registry()),
                d,
            )
        })
        .await
        .map_err(|kind| err(r, operation, kind))
}

/// The OCI client: plain HTTP only to the registries named insecure.
fn client(insecure: &[String]) -> Client {
    Client::new(ClientConfig {
        protocol: ClientProtocol::HttpsExcept(insecure.to_vec()),
        // A blob is one PUT that streams it whole (its size is always known), as containerd
        // pushes; the default, 4 MiB PATCHes each waiting for its answer, took a fifth more
        // time on the local build of 128 MB of random bytes (benches/local_build.sh bigfile).
        use_monolithic_push: true,
        ..Default::default()
    })
}

impl Registry {
    pub fn new(insecure: &[String], blob_cache: &Path) -> Result<Self, SetupError> {
        crate::net::ensure_crypto_provider();
        crate::net::check_ca_certificates()?;
        let config = DockerConfig::load()?;
        Ok(Registry {
            client: client(insecure),
            config,
            auths: Mutex::default(),
            blob_cache: blob_cache.to_path_buf(),
            progress: Arc::new(Progress::off()),
            tally: Mutex::default(),
        })
    }

    /// What this client's pushes did with their blobs so far.
    pub fn tally(&self) -> Tally {
        *self.tally.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn count(&self, f: impl FnOnce(&mut Tally)) {
        f(&mut self.tally.lock().unwrap_or_else(|e| e.into_inner()));
    }

    /// Mounts `digest` into `r` from the first of `from` on `r`'s registry (another
    /// repository) that has it. Any failure is `false`: the blob is uploaded instead.
    async fn mount_from(&self, r: &Reference, from: &[String], digest: &str) -> bool {
        for name in from {
            let Ok(m) = parse_ref(name) else { continue };
            if m.registry() != r.registry() || m.repository() == r.repository() {
                continue;
            }
            // Read access to the other repository first (a token of its own where the
            // registry wants one); no retries: the upload is the fallback.
            let auth = self.auth(&m);
            if self
                .client
                .auth(&m, &auth, RegistryOperation::Pull)
                .await
                .is_err()
                || !self.client.blob_exists(&m, digest).await.unwrap_or(false)
            {
                continue;
            }
            if self.client.mount_blob(r, &m, digest).await.is_ok()
                && self.client.blob_exists(r, digest).await.unwrap_or(false)
            {
                return true;
            }
        }
        false
    }

    /// The same client, reporting blob transfers to `progress`.
    pub fn with_progress(self, progress: Progress) -> Self {
        Registry {
            progress: Arc::new(progress),
            ..self
        }
    }

    /// A client of `host` over plain HTTP, anonymous, without a blob cache (tests).
    #[cfg(test)]
    pub(super) fn plain_http(host: &str) -> Self {
        crate::net::ensure_crypto_provider();
        Registry {
            client: client(&[host.to_string()]),
            config: DockerConfig::default(),
            auths: Mutex::default(),
            blob_cache: PathBuf::new(),
            progress: Arc::new(Progress::off()),
            tally: Mutex::default(),
        }
    }

    /// The credentials for `r`'s registry. One that cannot be had (a credential helper that
    /// fails, an identity token) is said on stderr, and the registry is tried anonymously,
    /// which is enough for public images.
    pub(super) fn auth(&self, r: &Reference) -> RegistryAuth {
        let host = r.registry();
        let mut auths = self.auths.lock().unwrap_or_else(|e| e.into_inner());
        auths
            .entry(host.to_string())
            .or_insert_with(|| match self.config.credential(host) {
                Ok(Some(DockerCredential::UsernamePassword(u, p))) => RegistryAuth::Basic(u, p),
                Ok(Some(DockerCredential::IdentityToken(_))) => {
                    eprintln!(
                        "warning: registry {host}: credentials: identity tokens are not \
                         supported; trying anonymously"
                    );
                    RegistryAuth::Anonymous
                }
                Ok(None) => RegistryAuth::Anonymous,
                Err(e) => {
                    eprintln!("warning: registry {host}: credentials: {e}; trying anonymously");
                    RegistryAuth::Anonymous
                }
            })
            .clone()
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
        let (manifest, digest, config) = retrying(&r, &op, || async {
            self.client
                .pull_manifest_and_config(&r, &auth)
                .await
                .map_err(Protocol)
        })
        .await?;
        let config: serde_json::Value = serde_json::from_str(&config)
            .map_err(|e| err(&r, &op, RegistryErrorKind::Config(e)))?;
        let diff_ids: Vec<String> = config
            .pointer("/rootfs/diff_ids")
            .and_then(|v| serde_json::from_value(v.clone()).ok())
            .unwrap_or_default();
        if diff_ids.len() != manifest.layers.len() {
            return Err(err(&r, &op, RegistryErrorKind::DiffIds));
        }
        // Every digest the registry sent, before any of them names a file.
        let digests = std::iter::once((DigestOf::Image, &digest))
            .chain(std::iter::once((DigestOf::Config, &manifest.config.digest)))
            .chain(manifest.layers.iter().map(|l| (DigestOf::Layer, &l.digest)))
            .chain(diff_ids.iter().map(|d| (DigestOf::DiffId, d)));
        for (of, d) in digests {
            sha256_hex(d).map_err(|e| err(&r, &op, RegistryErrorKind::digest(of, e)))?;
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

    /// A manifest and its config, looked up by reference: `None` when the registry has no
    /// such manifest or repository (a cache miss). Layers come back with their digests, sizes
    /// and media types (no path, no diff_id); every digest is checked for shape first.
    pub async fn lookup(
        &self,
        name: &str,
    ) -> Result<Option<(Vec<LayerRef>, Vec<u8>)>, RegistryError> {
        let r = parse_ref(name)?;
        let auth = self.auth(&r);
        let op = format!("look up {}", r.whole());
        let found = retrying(&r, &op, || async {
            match self.client.pull_manifest_and_config(&r, &auth).await {
                Ok(m) => Ok(Some(m)),
                Err(e) if not_found(&e) => Ok(None),
                Err(e) => Err(Protocol(e)),
            }
        })
        .await?;
        let Some((manifest, _, config)) = found else {
            return Ok(None);
        };
        let digests = std::iter::once((DigestOf::Config, &manifest.config.digest))
            .chain(manifest.layers.iter().map(|l| (DigestOf::Layer, &l.digest)));
        for (of, d) in digests {
            sha256_hex(d).map_err(|e| err(&r, &op, RegistryErrorKind::digest(of, e)))?;
        }
        let layers = manifest
            .layers
            .iter()
            .map(|l| LayerRef {
                path: String::new(),
                digest: l.digest.clone(),
                diff_id: String::new(),
                size: l.size.max(0) as u64,
                media_type: l.media_type.clone(),
            })
            .collect();
        Ok(Some((layers, config.into_bytes())))
    }

    /// One blob of `name`'s repository, in the blob cache (downloaded and checked once).
    pub async fn fetch(&self, name: &str, blob: &LayerRef) -> Result<PathBuf, RegistryError> {
        let r = parse_ref(name)?;
        self.fetch_blob(&r, &descriptor(blob)).await
    }

    /// Where `r`'s blobs are cached: by registry and repository, so a manifest can only name
    /// blobs its own repository served (a digest alone would hand another image's private
    /// layer to whoever knows its digest).
    fn blob_dir(&self, r: &Reference) -> PathBuf {
        self.blob_cache
            .join(image_key(&format!("{}/{}", r.registry(), r.repository())))
            .join("sha256")
    }

    /// A blob in the cache, downloaded and checked once. The cache is root's alone (the state
    /// directory is 0700) and holds only blobs checked before they were renamed into place, so
    /// a cached blob is not hashed again.
    async fn fetch_blob(&self, r: &Reference, l: &OciDescriptor) -> Result<PathBuf, RegistryError> {
        let op = format!("fetch blob {}", l.digest);
        let fail = |kind| err(r, &op, kind);
        let io = |e| fail(RegistryErrorKind::Io(e));
        let hex = sha256_hex(&l.digest)
            .map_err(|e| fail(RegistryErrorKind::digest(DigestOf::Layer, e)))?;
        let dir = self.blob_dir(r);
        let path = dir.join(hex);
        if std::fs::symlink_metadata(&path).is_ok_and(|m| m.is_file()) {
            return Ok(path);
        }
        std::fs::create_dir_all(&dir).map_err(io)?;
        // O_EXCL in the cache directory; removed when dropped, on every error path.
        let tmp = tempfile::Builder::new()
            .prefix(&format!("{hex}."))
            .suffix(".partial")
            .tempfile_in(&dir)
            .map_err(io)?;
        // Every try starts the file over.
        self.progress.start(
            &format!("pull {}", r.repository()),
            &l.digest,
            l.size.max(0) as u64,
        );
        let pulled = retrying(r, &op, || async {
            let mut f = tmp.as_file().try_clone().map_err(RegistryErrorKind::Io)?;
            f.set_len(0).map_err(RegistryErrorKind::Io)?;
            f.seek(SeekFrom::Start(0)).map_err(RegistryErrorKind::Io)?;
            self.progress.restart();
            let mut f = Counting {
                inner: tokio::fs::File::from_std(f),
                progress: &self.progress,
            };
            self.client.pull_blob(r, l, &mut f).await.map_err(Protocol)
        })
        .await;
        self.progress.finish();
        pulled?;
        let got = sha256_file(tmp.path()).map_err(io)?;
        if got != l.digest {
            return Err(fail(RegistryErrorKind::Digest(got)));
        }
        tmp.persist(&path).map_err(|e| io(e.error))?;
        Ok(path)
    }

    /// Pushes the image to every destination; returns the manifest digest. Every blob goes to
    /// every destination first; the manifest (the tags) only then, once per destination.
    pub async fn push(
        &self,
        destinations: &[String],
        image: &ImageToPush,
    ) -> Result<String, RegistryError> {
        let refs = destinations
            .iter()
            .map(|d| parse_ref(d))
            .collect::<Result<Vec<_>, _>>()?;
        for r in &refs {
            self.push_blobs(r, image).await?;
        }
        let config_digest = sha256_bytes(&image.config);
        // The bytes hashed are the bytes pushed (push_manifest would serialize again).
        let manifest = Bytes::from(manifest_json(
            &image.config,
            &config_digest,
            image.layers.iter().map(|(l, _)| l),
            &image.annotations,
        ));
        let digest = sha256_bytes(&manifest);
        for r in &refs {
            let op = format!("push {}: manifest", r.whole());
            retrying(r, &op, || async {
                self.client
                    .push_manifest_raw(
                        r,
                        manifest.clone(),
                        reqwest::header::HeaderValue::from_static(OCI_IMAGE_MEDIA_TYPE),
                    )
                    .await
                    .map_err(Protocol)
            })
            .await?;
        }
        Ok(digest)
    }

    /// The image's layers and config into `r`'s repository (those it does not have).
    async fn push_blobs(&self, r: &Reference, image: &ImageToPush) -> Result<(), RegistryError> {
        let auth = self.auth(r);
        let op = format!("push {}", r.whole());
        retrying(r, &format!("{op}: authenticate"), || async {
            self.client
                .auth(r, &auth, RegistryOperation::Push)
                .await
                .map_err(Protocol)
        })
        .await?;
        let base: Option<Reference> = image.base.as_deref().and_then(|b| parse_ref(b).ok());
        let mut base_authed = false;
        for (layer, source) in &image.layers {
            let bop = format!("{op}: blob {}", layer.digest);
            if self.blob_exists(r, &bop, &layer.digest).await? {
                self.count(|t| t.present += 1);
                continue;
            }
            if self.mount_from(r, &image.mount_from, &layer.digest).await {
                self.count(|t| t.mounted += 1);
                continue;
            }
            if *source == BlobSource::Base
                && let Some(b) = &base
                && b.registry() == r.registry()
                && b.repository() != r.repository()
                && self.client.mount_blob(r, b, &layer.digest).await.is_ok()
                && self
                    .client
                    .blob_exists(r, &layer.digest)
                    .await
                    .unwrap_or(false)
            {
                self.count(|t| t.mounted += 1);
                continue;
            }
            // A base layer: from the cache, or fetched from the base's registry.
            let cached = match source {
                BlobSource::Workspace(_) => PathBuf::new(),
                BlobSource::Base => {
                    let b = base
                        .as_ref()
                        .ok_or_else(|| err(r, &bop, RegistryErrorKind::NoLayerSource))?;
                    if !base_authed {
                        let b_auth = self.auth(b);
                        retrying(b, &format!("pull {}: authenticate", b.whole()), || async {
                            self.client
                                .auth(b, &b_auth, RegistryOperation::Pull)
                                .await
                                .map_err(Protocol)
                        })
                        .await?;
                        base_authed = true;
                    }
                    self.fetch_blob(b, &descriptor(layer)).await?
                }
            };
            let shown = match source {
                BlobSource::Workspace(_) => PathBuf::from(&layer.path),
                BlobSource::Base => cached.clone(),
            };
            // The file is opened again for every try: a failed upload restarts from byte 0.
            self.progress.start(&op, &layer.digest, layer.size);
            let uploaded = retrying(r, &bop, || async {
                self.progress.restart();
                let file = open_blob(layer, source, &cached).map_err(|source| {
                    RegistryErrorKind::File {
                        path: shown.clone(),
                        source,
                    }
                })?;
                let slot = MismatchSlot::default();
                let bytes = ReaderStream::with_capacity(tokio::fs::File::from_std(file), 4 << 20);
                let stream = checked(bytes, LayerCheck::new(layer), slot.clone())
                    .inspect_ok({
                        // The stream outlives this borrow of self (oci-client wants 'static).
                        let progress = self.progress.clone();
                        move |b| progress.add(b.len() as u64)
                    })
                    .map_err(OciDistributionError::IoError);
                let pushed = self
                    .client
                    .push_blob_stream(r, stream, &layer.digest, Some(layer.size))
                    .await;
                let mismatch = slot.lock().unwrap_or_else(|p| p.into_inner()).take();
                match (pushed, mismatch) {
                    (Ok(_), _) => Ok(()),
                    (Err(_), Some(m)) => Err(RegistryErrorKind::Mismatch {
                        path: shown.clone(),
                        source: Box::new(m),
                    }),
                    (Err(e), None) => Err(Protocol(e)),
                }
            })
            .await;
            self.progress.finish();
            uploaded?;
            self.count(|t| {
                t.uploaded += 1;
                t.bytes += layer.size;
            });
        }
        let config_digest = sha256_bytes(&image.config);
        let cop = format!("{op}: config");
        if !self.blob_exists(r, &cop, &config_digest).await? {
            let config = Bytes::from(image.config.clone());
            retrying(r, &cop, || async {
                self.client
                    .push_blob(r, config.clone(), &config_digest)
                    .await
                    .map_err(Protocol)
            })
            .await?;
        }
        Ok(())
    }

    async fn blob_exists(
        &self,
        r: &Reference,
        operation: &str,
        digest: &str,
    ) -> Result<bool, RegistryError> {
        retrying(r, operation, || async {
            self.client.blob_exists(r, digest).await.map_err(Protocol)
        })
        .await
    }
}

/// A registry's "no such manifest" (or repository): a miss, not a failure.
fn not_found(e: &OciDistributionError) -> bool {
    use oci_client::errors::OciErrorCode;
    match e {
        OciDistributionError::ImageManifestNotFoundError(_) => true,
        OciDistributionError::ServerError { code: 404, .. } => true,
        OciDistributionError::RegistryError { envelope, .. } => envelope.errors.iter().any(|e| {
            matches!(
                e.code,
                OciErrorCode::ManifestUnknown | OciErrorCode::NameUnknown | OciErrorCode::NotFound
            )
        }),
        _ => false,
    }
}

fn descriptor(l: &LayerRef) -> OciDescriptor {
    OciDescriptor {
        media_type: l.media_type.clone(),
        digest: l.digest.clone(),
        size: l.size as i64,
        ..Default::default()
    }
}

#[cfg(test)]
#[path = "client_tests.rs"]
mod tests;
