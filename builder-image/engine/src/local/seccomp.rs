//! The seccomp filter of a local stage container (H6): Docker's default profile, the one
//! BuildKit's RUN steps get.
//!
//! The profile is not copied into Slipway. It is read from the host's containers-common
//! ([`HOST_PROFILE`], installed with Buildah and Podman), which the distribution keeps current
//! (new syscalls allowed as libcs start to use them), and converted to the OCI runtime-spec
//! form as containers/common does for Podman: the native architecture and its
//! sub-architectures from `archMap`, and each rule kept or dropped by its `includes` and
//! `excludes` (capabilities of the container, architecture, minimum kernel). That file is
//! Podman's variant of Docker's, which allows the namespace, mount and keyring syscalls for
//! nested rootless containers; for a container without CAP_SYS_ADMIN (ours) Docker's own rules
//! are put back on top ([`docker_rules`]): those syscalls fail with EPERM, `clone` may not
//! create namespaces, `clone3` says ENOSYS (so libcs fall back to `clone`).
//!
//! Without the file (or with one that does not parse) a deny list of ours is used
//! ([`fallback`]): everything allowed but Docker's notable refusals. Weaker than an allow list,
//! but it never breaks a RUN step that Docker would run.

use serde::{Deserialize, Serialize};

/// Where containers-common installs the profile Podman and Buildah use.
pub const HOST_PROFILE: &str = "/usr/share/containers/seccomp.json";

const EPERM: u32 = 1;
const ENOSYS: u32 = 38;

/// `CLONE_NEWNS | CLONE_NEWCGROUP | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWUSER |
/// CLONE_NEWPID | CLONE_NEWNET`: the flags `clone` may not carry without CAP_SYS_ADMIN.
const CLONE_NAMESPACES: u64 = 0x7E02_0000;

/// What only CAP_SYS_ADMIN may call in Docker's profile, and the kernel keyring calls (not
/// namespaced) that Docker's profile never allows.
const ADMIN_ONLY: [&str; 26] = [
    "add_key",
    "bpf",
    "fanotify_init",
    "fsconfig",
    "fsmount",
    "fsopen",
    "fspick",
    "keyctl",
    "lookup_dcookie",
    "mount",
    "mount_setattr",
    "move_mount",
    "open_tree",
    "perf_event_open",
    "pivot_root",
    "quotactl",
    "quotactl_fd",
    "request_key",
    "setdomainname",
    "sethostname",
    "setns",
    "syslog",
    "umount",
    "umount2",
    "unshare",
    "userfaultfd",
];

/// The rest of what [`fallback`] refuses: kernel modules, kexec, raw I/O, clocks, swap,
/// reboot, accounting, handles, io_uring, obsolete calls.
const FALLBACK_DENIED: [&str; 33] = [
    "acct",
    "bdflush",
    "clock_adjtime",
    "clock_settime",
    "create_module",
    "delete_module",
    "finit_module",
    "get_kernel_syms",
    "init_module",
    "io_uring_enter",
    "io_uring_register",
    "io_uring_setup",
    "ioperm",
    "iopl",
    "kcmp",
    "kexec_file_load",
    "kexec_load",
    "nfsservctl",
    "open_by_handle_at",
    "process_madvise",
    "query_module",
    "reboot",
    "settimeofday",
    "stime",
    "swapoff",
    "swapon",
    "_sysctl",
    "sysfs",
    "uselib",
    "ustat",
    "vhangup",
    "vm86",
    "vm86old",
];

// ---- containers-common's format ---------------------------------------------------------

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HostProfile {
    default_action: String,
    #[serde(default)]
    default_errno_ret: Option<u32>,
    #[serde(default)]
    arch_map: Vec<ArchMap>,
    #[serde(default)]
    architectures: Vec<String>,
    #[serde(default)]
    syscalls: Vec<HostSyscall>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ArchMap {
    architecture: String,
    #[serde(default)]
    sub_architectures: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct HostSyscall {
    #[serde(default)]
    names: Vec<String>,
    /// The older one-name form.
    #[serde(default)]
    name: Option<String>,
    action: String,
    #[serde(default)]
    args: Option<Vec<Arg>>,
    #[serde(default)]
    errno_ret: Option<u32>,
    #[serde(default)]
    includes: Filter,
    #[serde(default)]
    excludes: Filter,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Filter {
    #[serde(default)]
    caps: Vec<String>,
    #[serde(default)]
    arches: Vec<String>,
    #[serde(default)]
    min_kernel: Option<String>,
}

/// A syscall argument condition; the same fields in both formats.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Arg {
    pub index: u32,
    pub value: u64,
    #[serde(default)]
    pub value_two: u64,
    pub op: String,
}

// ---- the OCI runtime spec's form ----------------------------------------------------------

/// `linux.seccomp` of an OCI runtime config.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Seccomp {
    pub default_action: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub default_errno_ret: Option<u32>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub architectures: Vec<String>,
    pub syscalls: Vec<Syscall>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Syscall {
    pub names: Vec<String>,
    pub action: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub errno_ret: Option<u32>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<Arg>,
}

fn rule(names: &[&str], action: &str, errno: Option<u32>, args: Vec<Arg>) -> Syscall {
    Syscall {
        names: names.iter().map(|n| n.to_string()).collect(),
        action: action.into(),
        errno_ret: errno,
        args,
    }
}

/// What a profile is converted for: the container's capabilities, this machine.
#[derive(Debug, Clone)]
pub struct Target<'a> {
    /// Go's name of the architecture (`amd64`, `arm64`...), as profiles write it.
    pub arch: &'a str,
    pub caps: &'a [&'a str],
    /// The running kernel's (major, minor).
    pub kernel: (u32, u32),
}

impl Target<'_> {
    fn has_admin(&self) -> bool {
        self.caps.contains(&"CAP_SYS_ADMIN")
    }
}

/// Go's name of the architecture this binary runs on.
pub fn go_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "x86" => "386",
        "aarch64" => "arm64",
        "powerpc64" => "ppc64le",
        "loongarch64" => "loong64",
        other => other,
    }
}

/// libseccomp's name of a Go architecture.
fn scmp_arch(go: &str) -> Option<&'static str> {
    Some(match go {
        "amd64" => "SCMP_ARCH_X86_64",
        "386" => "SCMP_ARCH_X86",
        "arm64" => "SCMP_ARCH_AARCH64",
        "arm" => "SCMP_ARCH_ARM",
        "ppc64le" => "SCMP_ARCH_PPC64LE",
        "s390x" => "SCMP_ARCH_S390X",
        "riscv64" => "SCMP_ARCH_RISCV64",
        "mips64" => "SCMP_ARCH_MIPS64",
        "mips64le" => "SCMP_ARCH_MIPSEL64",
        "loong64" => "SCMP_ARCH_LOONGARCH64",
        _ => return None,
    })
}

/// `(major, minor)` of a kernel release such as `6.1.0-18-amd64` or a `minKernel` `4.8`.
pub fn kernel_version(release: &str) -> Option<(u32, u32)> {
    let mut it = release
        .split(|c: char| !c.is_ascii_digit())
        .filter(|s| !s.is_empty());
    let major = it.next()?.parse().ok()?;
    let minor = it.next().and_then(|m| m.parse().ok()).unwrap_or(0);
    Some((major, minor))
}

/// Whether the rule applies to `t`, as containers/common decides (`excludes` first).
fn applies(s: &HostSyscall, t: &Target) -> bool {
    let min = |k: &Option<String>| k.as_deref().and_then(kernel_version);
    let ex = &s.excludes;
    if ex.arches.iter().any(|a| a == t.arch)
        || ex.caps.iter().any(|c| t.caps.contains(&c.as_str()))
        || min(&ex.min_kernel).is_some_and(|m| t.kernel >= m)
    {
        return false;
    }
    let inc = &s.includes;
    (inc.arches.is_empty() || inc.arches.iter().any(|a| a == t.arch))
        && inc.caps.iter().all(|c| t.caps.contains(&c.as_str()))
        && min(&inc.min_kernel).is_none_or(|m| t.kernel >= m)
}

/// The host profile in the OCI form for `t`, with Docker's rules for a container without
/// CAP_SYS_ADMIN put back.
pub fn convert(p: &HostProfile, t: &Target) -> Seccomp {
    let native = scmp_arch(t.arch);
    let mut architectures = p.architectures.clone();
    for m in &p.arch_map {
        if Some(m.architecture.as_str()) == native {
            architectures.push(m.architecture.clone());
            architectures.extend(m.sub_architectures.iter().cloned());
        }
    }
    let mut syscalls: Vec<Syscall> = p
        .syscalls
        .iter()
        .filter(|s| applies(s, t))
        .map(|s| Syscall {
            names: match &s.name {
                Some(n) if s.names.is_empty() => vec![n.clone()],
                _ => s.names.clone(),
            },
            action: s.action.clone(),
            errno_ret: s.errno_ret,
            args: s.args.clone().unwrap_or_default(),
        })
        .collect();
    if !t.has_admin() {
        // Docker's rules replace whatever the file says of these calls: one rule each, so
        // libseccomp never sees two actions for one call.
        let docker = docker_rules(t.arch);
        let replaced = |n: &String| docker.iter().any(|r| r.names.contains(n));
        for s in &mut syscalls {
            s.names.retain(|n| !replaced(n));
        }
        syscalls.retain(|s| !s.names.is_empty());
        syscalls.extend(docker);
    }
    Seccomp {
        default_action: p.default_action.clone(),
        default_errno_ret: p.default_errno_ret,
        architectures,
        syscalls,
    }
}

/// Docker's rules for a container without CAP_SYS_ADMIN: the admin-only and keyring calls
/// fail with EPERM, `clone` is allowed without namespace flags, `clone3` (whose flags seccomp
/// cannot see) says ENOSYS.
pub fn docker_rules(arch: &str) -> Vec<Syscall> {
    // s390 passes clone's flags second.
    let flags = if arch.starts_with("s390") { 1 } else { 0 };
    vec![
        rule(&ADMIN_ONLY, "SCMP_ACT_ERRNO", Some(EPERM), Vec::new()),
        rule(
            &["clone"],
            "SCMP_ACT_ALLOW",
            None,
            vec![Arg {
                index: flags,
                value: CLONE_NAMESPACES,
                value_two: 0,
                op: "SCMP_CMP_MASKED_EQ".into(),
            }],
        ),
        rule(&["clone3"], "SCMP_ACT_ERRNO", Some(ENOSYS), Vec::new()),
    ]
}

/// Everything allowed but Docker's notable refusals: for a host without containers-common.
pub fn fallback(arch: &str) -> Seccomp {
    let flags = if arch.starts_with("s390") { 1 } else { 0 };
    let mut syscalls = vec![
        rule(&ADMIN_ONLY, "SCMP_ACT_ERRNO", Some(EPERM), Vec::new()),
        rule(&FALLBACK_DENIED, "SCMP_ACT_ERRNO", Some(EPERM), Vec::new()),
        rule(&["clone3"], "SCMP_ACT_ERRNO", Some(ENOSYS), Vec::new()),
    ];
    // With everything allowed by default, each namespace flag of clone is refused on its own
    // (the rules of one syscall and action are or'ed).
    for bit in 0..64 {
        let flag = 1u64 << bit;
        if CLONE_NAMESPACES & flag != 0 {
            syscalls.push(rule(
                &["clone"],
                "SCMP_ACT_ERRNO",
                Some(EPERM),
                vec![Arg {
                    index: flags,
                    value: flag,
                    value_two: flag,
                    op: "SCMP_CMP_MASKED_EQ".into(),
                }],
            ));
        }
    }
    let architectures = match arch {
        "amd64" => vec!["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
        "arm64" => vec!["SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM"],
        other => scmp_arch(other).into_iter().collect(),
    };
    Seccomp {
        default_action: "SCMP_ACT_ALLOW".into(),
        default_errno_ret: None,
        architectures: architectures.into_iter().map(String::from).collect(),
        syscalls,
    }
}

/// The profile for a container with `caps` on this machine: the host's containers-common
/// profile converted, or [`fallback`] (said on stderr when the file is there but unusable).
pub fn profile(caps: &[&str]) -> Seccomp {
    let arch = go_arch();
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .ok()
        .and_then(|r| kernel_version(&r))
        .unwrap_or((0, 0));
    let text = match std::fs::read(HOST_PROFILE) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return fallback(arch),
        Err(e) => {
            eprintln!("warning: {HOST_PROFILE}: {e}; using Slipway's seccomp deny list");
            return fallback(arch);
        }
    };
    match serde_json::from_slice::<HostProfile>(&text) {
        Ok(p) => convert(&p, &Target { arch, caps, kernel }),
        Err(e) => {
            eprintln!("warning: {HOST_PROFILE}: {e}; using Slipway's seccomp deny list");
            fallback(arch)
        }
    }
}

#[cfg(test)]
#[path = "seccomp_tests.rs"]
mod tests;
