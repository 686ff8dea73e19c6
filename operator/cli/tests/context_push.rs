//! The context artifact pushed to a real registry (Debian's `docker-registry`, on loopback
//! over plain HTTP, as the engine tier runs it) and read back: the manifest is the one the
//! fetch step takes ([`check_manifest`]) and the layer is the archive, byte for byte. Without
//! `docker-registry` on the PATH the test says so and passes.

use std::io::Write;
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use slipway_cli::artifact;
use slipway_cli::spool::Spool;
use slipway_contract::context_artifact::{MANIFEST_MEDIA_TYPE, check_manifest, sha256_digest};
use slipway_contract::size::Size;

/// The registry process, stopped when dropped.
struct Registry {
    child: Child,
    _dir: tempfile::TempDir,
    addr: String,
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_registry() -> Option<Registry> {
    let found = Command::new("docker-registry")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok();
    if !found {
        eprintln!("docker-registry is not installed: the push is not tested against a registry");
        return None;
    }
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
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
        .expect("docker-registry starts");
    let r = Registry {
        child,
        _dir: dir,
        addr,
    };
    for _ in 0..100 {
        if std::net::TcpStream::connect(&r.addr).is_ok() {
            return Some(r);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("docker-registry did not listen on {}", r.addr);
}

async fn get(url: &str, accept: &str) -> (u16, Vec<u8>) {
    let client = reqwest::Client::new();
    let resp = client
        .get(url)
        .header("Accept", accept)
        .send()
        .await
        .expect("GET");
    let status = resp.status().as_u16();
    (status, resp.bytes().await.expect("body").to_vec())
}

#[tokio::test]
async fn a_context_pushed_to_a_registry_reads_back_as_the_fetch_step_checks_it() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let Some(registry) = start_registry() else {
        return;
    };
    // Several upload chunks of bytes that do not compress.
    let mut data = Vec::with_capacity(9 << 20);
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    while data.len() < (9 << 20) + 123 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        data.extend_from_slice(&x.to_le_bytes());
    }
    let mut spool = Spool::new().expect("spool");
    spool.write_all(&data).expect("write");
    let repo = format!("{}/team/web", registry.addr);
    let digest = artifact::push(&repo, true, &spool).await.expect("pushed");

    let (status, manifest) = get(
        &format!("http://{}/v2/team/web/manifests/{digest}", registry.addr),
        MANIFEST_MEDIA_TYPE,
    )
    .await;
    assert_eq!(status, 200);
    let layer = check_manifest(&manifest, &digest, Size(1 << 30)).expect("the fetch step takes it");
    assert_eq!(layer.size as usize, data.len());
    assert_eq!(layer.digest, sha256_digest(&data));
    let (status, blob) = get(
        &format!(
            "http://{}/v2/team/web/blobs/{}",
            registry.addr, layer.digest
        ),
        "*/*",
    )
    .await;
    assert_eq!(status, 200);
    assert!(blob == data, "the layer is the archive");

    // Pushed again: the same digest (the manifest's bytes depend on the archive only).
    assert_eq!(
        artifact::push(&repo, true, &spool).await.expect("again"),
        digest
    );

    // Without --insecure the registry is spoken to over https, which it does not serve.
    let e = artifact::push(&repo, false, &spool)
        .await
        .expect_err("https to a plain HTTP registry");
    assert!(
        e.to_string().starts_with(&format!(
            "registry {}: push the context to {repo}: authenticate: ",
            registry.addr
        )),
        "{e}"
    );
}
