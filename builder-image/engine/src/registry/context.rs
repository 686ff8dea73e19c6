//! Pulling a build context stored as an OCI artifact (`spec.source.oci`,
//! [`slipway_contract::context_artifact`]): the manifest by the digest the ImageBuild pins,
//! checked against that digest and for its shape (one tar layer within the size limit) before
//! any layer byte is asked for; then its one layer, streamed to a file, counted against the
//! size the manifest declares (a registry that sends more is cut off there) and hashed as it
//! arrives. The file is only left behind when every check passed.

use std::io;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use futures::TryStreamExt;
use oci_client::errors::OciDistributionError;
use oci_client::manifest::OciDescriptor;
use sha2::{Digest as _, Sha256};
use slipway_contract::context_artifact::{MANIFEST_MEDIA_TYPE, check_manifest};
use slipway_contract::size::Size;
use slipway_frontend::reference::Reference as Named;
use tokio::io::AsyncWriteExt;

use super::client::{Registry, err, parse_ref, retrying};
use super::digest::sha256_hex;
use super::error::{DigestOf, RegistryError, RegistryErrorKind};

use RegistryErrorKind::Protocol;

impl Registry {
    /// The context artifact `image` (`registry/repository`; a tag is ignored) at manifest
    /// `digest`: its one layer, checked, written to `dest` (a new file; removed on failure).
    pub async fn pull_context(
        &self,
        image: &str,
        digest: &str,
        dest: &Path,
        limit: Size,
    ) -> Result<(), RegistryError> {
        let name = Named::parse(image)
            .map(|n| n.name())
            .map_err(|e| RegistryError {
                registry: "?".into(),
                operation: format!("pull context {image}"),
                kind: RegistryErrorKind::Reference(e),
            })?;
        let pinned = format!("{name}@{digest}");
        let r = parse_ref(&pinned)?;
        let op = format!("pull context {pinned}");
        sha256_hex(digest)
            .map_err(|e| err(&r, &op, RegistryErrorKind::digest(DigestOf::Image, e)))?;
        let auth = self.auth(&r);
        let (bytes, _) = retrying(&r, &op, || async {
            self.client
                .pull_manifest_raw(&r, &auth, &[MANIFEST_MEDIA_TYPE])
                .await
                .map_err(Protocol)
        })
        .await?;
        let layer = check_manifest(&bytes, digest, limit)
            .map_err(|e| err(&r, &op, RegistryErrorKind::Artifact(e)))?;
        let bop = format!("{op}: layer {}", layer.digest);
        let declared = layer.size as u64;
        let desc = OciDescriptor {
            media_type: layer.media_type.clone(),
            digest: layer.digest.clone(),
            size: layer.size,
            ..Default::default()
        };
        let got = retrying(&r, &bop, || async {
            let file = std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .custom_flags(nix::fcntl::OFlag::O_NOFOLLOW.bits())
                .open(dest)
                .map_err(RegistryErrorKind::Io)?;
            let mut f = tokio::fs::File::from_std(file);
            let mut stream = self
                .client
                .pull_blob_stream(&r, &desc)
                .await
                .map_err(Protocol)?;
            let mut hash = Sha256::new();
            let mut n: u64 = 0;
            while let Some(chunk) = stream
                .try_next()
                .await
                .map_err(|e| Protocol(OciDistributionError::IoError(e)))?
            {
                n += chunk.len() as u64;
                if n > declared {
                    return Err(RegistryErrorKind::BlobSize {
                        declared,
                        got: format!("more than {declared}"),
                    });
                }
                hash.update(&chunk);
                f.write_all(&chunk).await.map_err(RegistryErrorKind::Io)?;
            }
            f.flush().await.map_err(RegistryErrorKind::Io)?;
            if n != declared {
                return Err(RegistryErrorKind::BlobSize {
                    declared,
                    got: n.to_string(),
                });
            }
            Ok(format!("sha256:{}", hex::encode(hash.finalize())))
        })
        .await;
        let checked = got.and_then(|got| {
            if got == layer.digest {
                Ok(())
            } else {
                Err(err(&r, &bop, RegistryErrorKind::Digest(got)))
            }
        });
        if checked.is_err() {
            let _ = std::fs::remove_file(dest).or_else(|e| match e.kind() {
                io::ErrorKind::NotFound => Ok(()),
                _ => Err(e),
            });
        }
        checked
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::Ordering;

    use slipway_contract::context_artifact::{manifest_json, sha256_digest};

    use super::*;
    use crate::net::test_server::{response, serve};

    const MANIFEST: &str = "Content-Type: application/vnd.oci.image.manifest.v1+json\r\n";

    /// A registry answering the API check, the manifest of a context whose layer is `declared`
    /// (digest and size), and then `blob` (to the API check and the layer); the pull's result,
    /// the requests, and whether the file is there.
    fn pull(
        declared: &[u8],
        blob: &str,
        pin: Option<&str>,
    ) -> (Result<(), RegistryError>, usize, bool) {
        let manifest = manifest_json(&sha256_digest(declared), declared.len() as u64);
        let manifest = String::from_utf8(manifest).expect("utf8");
        let digest = pin
            .map(String::from)
            .unwrap_or_else(|| sha256_digest(manifest.as_bytes()));
        let (base, hits) = serve(vec![
            response("200 OK", "", ""),
            response("200 OK", MANIFEST, &manifest),
            response("200 OK", "", blob),
        ]);
        let host = base.trim_start_matches("http://");
        let dir = tempfile::tempdir().expect("tmp");
        let dest = dir.path().join("context.download");
        let registry = Registry::plain_http(host);
        let r = crate::net::block_on(registry.pull_context(
            &format!("{host}/team/web-context:ignored"),
            &digest,
            &dest,
            Size(1 << 20),
        ))
        .expect("runtime");
        if r.is_ok() {
            assert_eq!(std::fs::read(&dest).expect("layer"), declared);
        }
        (r, hits.load(Ordering::SeqCst), dest.exists())
    }

    #[test]
    fn the_pinned_context_is_pulled_and_checked() {
        let (r, hits, left) = pull(b"the context", "the context", None);
        r.expect("pulled");
        // The API check and the manifest, the API check and the layer (served the last
        // answer again).
        assert_eq!(hits, 4);
        assert!(left);
    }

    #[test]
    fn a_manifest_that_is_not_the_pinned_one_is_refused_before_the_layer() {
        let pin = format!("sha256:{}", "e".repeat(64));
        let (r, hits, left) = pull(b"the context", "the context", Some(&pin));
        let e = r.expect_err("refused").to_string();
        // oci-client checks a manifest pulled by digest itself; either check names the pin.
        assert!(e.contains(&pin), "{e}");
        assert!(e.starts_with("registry 127.0.0.1:"), "{e}");
        assert!(hits <= 2, "no layer was asked for ({hits} requests)");
        assert!(!left);
    }

    #[test]
    fn a_layer_that_is_not_its_digest_leaves_nothing() {
        let (r, _, left) = pull(b"the context", "evil bytes!", None);
        let e = r.expect_err("refused").to_string();
        assert!(e.contains(": layer sha256:"), "{e}");
        assert!(!left, "no file is left behind");
    }

    #[test]
    fn a_registry_sending_more_than_the_declared_size_is_cut_off() {
        let (r, _, left) = pull(b"the context", "the context and much more", None);
        let e = r.expect_err("refused").to_string();
        assert!(
            e.ends_with("the blob is not the 11 bytes its manifest says (more than 11 came)"),
            "{e}"
        );
        assert!(!left);
        let (r, _, _) = pull(b"the context", "the", None);
        let e = r.expect_err("short").to_string();
        assert!(e.contains("(3 came)") || e.contains("sha256"), "{e}");
    }
}

/// Against a real registry (Debian's `docker-registry` on loopback, as the engine tier runs
/// it): a context pushed in the CLI's format is pulled, checked and unpacked; a pin that is
/// not its digest is refused. Without `docker-registry` on the PATH the test says so and
/// passes.
#[cfg(test)]
mod registry_tests {
    use std::net::TcpListener;
    use std::process::{Child, Command, Stdio};

    use bytes::Bytes;
    use oci_client::Reference;
    use slipway_contract::context_artifact::{EMPTY_CONFIG, manifest_json, sha256_digest};

    use super::*;

    /// The registry process (stopped when dropped) and its storage.
    struct Served {
        child: Child,
        _dir: tempfile::TempDir,
    }

    impl Drop for Served {
        fn drop(&mut self) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }

    fn docker_registry() -> Option<(Served, String)> {
        if Command::new("docker-registry")
            .arg("--version")
            .stdout(Stdio::null())
            .status()
            .is_err()
        {
            eprintln!("docker-registry is not installed: the pull is not tested against one");
            return None;
        }
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("port")
            .port();
        let addr = format!("127.0.0.1:{port}");
        let dir = tempfile::tempdir().expect("tmp");
        let config = dir.path().join("config.yml");
        std::fs::write(
            &config,
            format!(
                "version: 0.1\nlog: {{level: warn}}\nstorage: {{filesystem: {{rootdirectory: {}}}}}\nhttp: {{addr: {addr}}}\n",
                dir.path().join("data").display()
            ),
        )
        .expect("config");
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("starts");
        let served = Served { child, _dir: dir };
        for _ in 0..100 {
            if std::net::TcpStream::connect(&addr).is_ok() {
                return Some((served, addr));
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        panic!("docker-registry did not listen on {addr}");
    }

    fn context_tar_gz() -> Vec<u8> {
        let mut b = tar::Builder::new(flate2::write::GzEncoder::new(
            Vec::new(),
            flate2::Compression::fast(),
        ));
        for (name, body) in [
            ("Dockerfile", &b"FROM scratch\nCOPY big /\n"[..]),
            ("big", &[7u8; 300_000][..]),
        ] {
            let mut h = tar::Header::new_gnu();
            h.set_size(body.len() as u64);
            h.set_mode(0o644);
            h.set_cksum();
            b.append_data(&mut h, name, body).expect("append");
        }
        b.into_inner().expect("tar").finish().expect("gzip")
    }

    #[test]
    fn a_context_in_a_real_registry_is_pulled_checked_and_unpacked() {
        let Some((_served, addr)) = docker_registry() else {
            return;
        };
        let registry = Registry::plain_http(&addr);
        let archive = context_tar_gz();
        let layer_digest = sha256_digest(&archive);
        let manifest = manifest_json(&layer_digest, archive.len() as u64);
        let digest = sha256_digest(&manifest);
        let r: Reference = format!("{addr}/team/web:x").parse().expect("ref");
        let pinned = Reference::with_digest(addr.clone(), "team/web".into(), digest.clone());
        crate::net::block_on(async {
            let c = &registry.client;
            c.push_blob(&r, archive.clone(), &layer_digest)
                .await
                .expect("layer");
            c.push_blob(&r, EMPTY_CONFIG.to_vec(), &sha256_digest(EMPTY_CONFIG))
                .await
                .expect("config");
            c.push_manifest_raw(
                &pinned,
                Bytes::from(manifest.clone()),
                reqwest::header::HeaderValue::from_static(
                    slipway_contract::context_artifact::MANIFEST_MEDIA_TYPE,
                ),
            )
            .await
            .expect("manifest");
        })
        .expect("runtime");

        let dir = tempfile::tempdir().expect("tmp");
        let dest = dir.path().join("context.download");
        crate::net::block_on(registry.pull_context(
            &format!("{addr}/team/web"),
            &digest,
            &dest,
            Size(1 << 20),
        ))
        .expect("runtime")
        .expect("pulled");
        assert_eq!(std::fs::read(&dest).expect("file"), archive);
        let ctx = dir.path().join("context");
        std::fs::create_dir(&ctx).expect("mkdir");
        crate::steps::source::unpack_tar(&dest, "oci", &ctx, Size(1 << 20)).expect("unpacked");
        assert_eq!(std::fs::read(ctx.join("big")).expect("big").len(), 300_000);

        // Another digest than the manifest's: refused, nothing left.
        let other = sha256_digest(b"not this one");
        let _ = std::fs::remove_file(&dest);
        let e = crate::net::block_on(registry.pull_context(
            &format!("{addr}/team/web"),
            &other,
            &dest,
            Size(1 << 20),
        ))
        .expect("runtime")
        .expect_err("refused");
        assert!(
            e.to_string().starts_with(&format!(
                "registry {addr}: pull context {addr}/team/web@{other}: "
            )),
            "{e}"
        );
        assert!(!dest.exists());

        // Under a smaller size limit than the layer: refused before the layer is asked for.
        let e = crate::net::block_on(registry.pull_context(
            &format!("{addr}/team/web"),
            &digest,
            &dest,
            Size(1 << 10),
        ))
        .expect("runtime")
        .expect_err("too large");
        assert!(
            e.to_string().ends_with("is over the size limit of 1Ki"),
            "{e}"
        );
        assert!(!dest.exists());
    }
}
