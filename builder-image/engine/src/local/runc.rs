//! Running a stage in a real OCI container with runc, with the isolation a kubelet gives a
//! pod's container: its own mount, pid, uts and ipc namespaces, the base image's tree as root,
//! Docker's default capabilities (no CAP_SYS_ADMIN) and seccomp profile
//! ([`crate::local::seccomp`]), masked /proc paths, and bind mounts for the engine binary, the
//! cache and the container's own secrets.
//!
//! The workspace is bound read-only (the context within it too); only the directories of the
//! container's own stages (`stages/<N>`) are bound writable over it, so a RUN step can change
//! nothing another stage or the host reads but its own stages' outputs (C1).
//!
//! The network is the host's: local mode has no pod network. A RUN step reaches what the
//! host reaches, loopback services included, and with CAP_NET_RAW (Docker's default set) can
//! send raw packets there; run local builds of untrusted Dockerfiles on a machine whose
//! network you would give them.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::json;
use slipway_contract::pod::paths;

use crate::fs::{PathError, at};
use crate::local::seccomp::Seccomp;
use crate::workspace::Workspace;

/// Docker's (and containerd's CRI) default capability set.
pub const DEFAULT_CAPS: [&str; 14] = [
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
];

pub struct Container<'a> {
    pub id: String,
    pub rootfs: &'a Path,
    pub engine: &'a Path,
    /// The build's workspace on the host (bound read-only).
    pub workspace: &'a Workspace,
    /// The stages whose directories the container may write: its chain.
    pub stages: &'a [usize],
    pub context: &'a Path,
    pub cache: &'a Path,
    /// The secrets this container's RUN steps name, and only those.
    pub secrets: &'a Path,
    pub seccomp: &'a Seccomp,
    /// Extra CA certificates (PEM) for ADD of https URLs: `SSL_CERT_FILE` in the container.
    pub ca_file: Option<&'a Path>,
    pub args: Vec<String>,
}

fn bind(src: &Path, dst: &str, ro: bool) -> serde_json::Value {
    let mut opts = vec!["rbind", "nosuid", "nodev"];
    if ro {
        opts.push("ro");
    }
    json!({"destination": dst, "type": "bind", "source": src, "options": opts})
}

/// The OCI runtime config of a stage container.
pub fn spec(c: &Container) -> serde_json::Value {
    let caps = DEFAULT_CAPS.to_vec();
    let mut mounts = vec![
        json!({"destination": "/proc", "type": "proc", "source": "proc"}),
        json!({"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
               "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]}),
        json!({"destination": "/dev/pts", "type": "devpts", "source": "devpts",
               "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"]}),
        json!({"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
               "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]}),
        json!({"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue",
               "options": ["nosuid", "noexec", "nodev"]}),
        json!({"destination": "/sys", "type": "sysfs", "source": "sysfs",
               "options": ["nosuid", "noexec", "nodev", "ro"]}),
    ];
    for f in ["/etc/resolv.conf", "/etc/hosts"] {
        if Path::new(f).exists() {
            mounts.push(bind(Path::new(f), f, true));
        }
    }
    mounts.push(bind(c.engine, paths::BIN, true));
    let inside = Workspace::new(paths::WORKSPACE);
    mounts.push(bind(&c.workspace.root, paths::WORKSPACE, true));
    mounts.push(bind(c.context, &inside.context().to_string_lossy(), true));
    for &i in c.stages {
        mounts.push(bind(
            &c.workspace.stage_dir(i),
            &inside.stage_dir(i).to_string_lossy(),
            false,
        ));
    }
    mounts.push(bind(c.cache, paths::CACHE, false));
    mounts.push(bind(c.secrets, paths::SECRETS, true));
    let mut env = vec![
        "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".to_string(),
        "HOME=/root".to_string(),
    ];
    if let Some(ca) = c.ca_file {
        mounts.push(bind(ca, paths::CA_FILE, true));
        env.push(format!("SSL_CERT_FILE={}", paths::CA_FILE));
    }
    json!({
        "ociVersion": "1.0.2",
        "process": {
            "terminal": false,
            "user": {"uid": 0, "gid": 0},
            "args": c.args,
            "env": env,
            "cwd": "/",
            "capabilities": {
                "bounding": caps, "effective": caps, "permitted": caps
            },
            // As Docker and BuildKit: `USER app` then `RUN sudo ...` works. A RUN step is
            // root in its container anyway; a setuid binary gives it nothing more.
            "noNewPrivileges": false
        },
        "root": {"path": c.rootfs, "readonly": false},
        "hostname": "slipway",
        "mounts": mounts,
        "linux": {
            "namespaces": [{"type": "pid"}, {"type": "ipc"}, {"type": "uts"}, {"type": "mount"}],
            "seccomp": c.seccomp,
            "resources": {"devices": [
                {"allow": false, "access": "rwm"},
                // Device nodes in layers can be made (mknod), not opened.
                {"allow": true, "type": "a", "access": "m"}
            ]},
            "maskedPaths": ["/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys",
                "/proc/latency_stats", "/proc/timer_list", "/proc/timer_stats",
                "/proc/sched_debug", "/proc/scsi", "/sys/firmware"],
            "readonlyPaths": ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys",
                "/proc/sysrq-trigger"]
        }
    })
}

/// Why a stage container could not be run.
#[derive(Debug, thiserror::Error)]
pub enum RuncError {
    #[error(transparent)]
    Io(#[from] PathError),
    #[error("{0}")]
    Spec(#[source] serde_json::Error),
    #[error("runc: {0} (is runc installed?)")]
    Runc(#[source] std::io::Error),
}

/// Our stderr, as a child's stdout; inherited stdout if it cannot be duplicated.
fn stderr_stdio() -> Stdio {
    use std::os::fd::AsFd;
    std::io::stderr()
        .as_fd()
        .try_clone_to_owned()
        .map_or_else(|_| Stdio::inherit(), Stdio::from)
}

/// Runs the container to completion; returns its exit code. Its output (stdout and stderr)
/// goes to our stderr.
pub fn run(c: &Container, bundle: &Path) -> Result<i32, RuncError> {
    std::fs::create_dir_all(bundle).map_err(at(bundle))?;
    let config = bundle.join("config.json");
    let text = serde_json::to_vec_pretty(&spec(c)).map_err(RuncError::Spec)?;
    std::fs::write(&config, text).map_err(at(&config))?;
    let state_root = PathBuf::from("/run/slipway-runc");
    let status = Command::new("runc")
        .arg("--root")
        .arg(&state_root)
        .args(["run", "--bundle"])
        .arg(bundle)
        .arg(&c.id)
        .stdin(Stdio::null())
        // The stages' output (RUN's stdout too) is the build's log, on stderr: stdout
        // carries only the build's result (the digest, or `--output json`'s object).
        .stdout(stderr_stdio())
        .status()
        .map_err(RuncError::Runc)?;
    // `runc run` removes a container that ran; one that failed to start may leave its state
    // behind (a second runc process only then: it costs about as much as a start).
    if state_root.join(&c.id).exists() {
        let _ = Command::new("runc")
            .arg("--root")
            .arg(&state_root)
            .args(["delete", "--force"])
            .arg(&c.id)
            .stderr(Stdio::null())
            .status();
    }
    Ok(status.code().unwrap_or(-1))
}
