//! Tests of the seccomp conversion: containers-common's rules kept or dropped as Podman keeps
//! them, Docker's rules for a container without CAP_SYS_ADMIN, the fallback, and (where the
//! host has it) the host's own profile.

use std::collections::BTreeMap;

use super::*;
use crate::local::runc::DEFAULT_CAPS;

/// A profile in containers-common's form, small, with each kind of condition once.
const PROFILE: &str = r#"{
  "defaultAction": "SCMP_ACT_ERRNO",
  "defaultErrnoRet": 38,
  "archMap": [
    {"architecture": "SCMP_ARCH_X86_64", "subArchitectures": ["SCMP_ARCH_X86", "SCMP_ARCH_X32"]},
    {"architecture": "SCMP_ARCH_AARCH64", "subArchitectures": ["SCMP_ARCH_ARM"]}
  ],
  "syscalls": [
    {"names": ["kexec_load", "vmsplice"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1,
     "includes": {}, "excludes": {}},
    {"names": ["read", "write", "clone", "clone3", "unshare", "mount", "keyctl"],
     "action": "SCMP_ACT_ALLOW", "args": null},
    {"names": ["personality"], "action": "SCMP_ACT_ALLOW",
     "args": [{"index": 0, "value": 8, "valueTwo": 0, "op": "SCMP_CMP_EQ"}]},
    {"names": ["arch_prctl"], "action": "SCMP_ACT_ALLOW", "includes": {"arches": ["amd64", "x32"]}},
    {"names": ["sync_file_range2"], "action": "SCMP_ACT_ALLOW", "includes": {"arches": ["ppc64le"]}},
    {"names": ["chroot"], "action": "SCMP_ACT_ALLOW", "includes": {"caps": ["CAP_SYS_CHROOT"]}},
    {"names": ["chroot"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1,
     "excludes": {"caps": ["CAP_SYS_CHROOT"]}},
    {"names": ["ioperm"], "action": "SCMP_ACT_ALLOW", "includes": {"caps": ["CAP_SYS_RAWIO"]}},
    {"names": ["ptrace"], "action": "SCMP_ACT_ALLOW", "includes": {"minKernel": "4.8"}},
    {"names": ["old_call"], "action": "SCMP_ACT_ALLOW", "excludes": {"minKernel": "5.0"}},
    {"names": ["not_here"], "action": "SCMP_ACT_ALLOW", "excludes": {"arches": ["amd64"]}},
    {"name": "single", "action": "SCMP_ACT_ALLOW"}
  ]
}"#;

fn names(s: &Seccomp) -> BTreeMap<String, Vec<&Syscall>> {
    let mut out: BTreeMap<String, Vec<&Syscall>> = BTreeMap::new();
    for r in &s.syscalls {
        for n in &r.names {
            out.entry(n.clone()).or_default().push(r);
        }
    }
    out
}

fn amd64<'a>(caps: &'a [&'a str]) -> Target<'a> {
    Target {
        arch: "amd64",
        caps,
        kernel: (6, 1),
    }
}

#[test]
fn rules_are_kept_by_arch_capability_and_kernel() {
    let p: HostProfile = serde_json::from_str(PROFILE).expect("profile");
    let s = convert(&p, &amd64(&DEFAULT_CAPS));
    assert_eq!(s.default_action, "SCMP_ACT_ERRNO");
    assert_eq!(s.default_errno_ret, Some(38));
    assert_eq!(
        s.architectures,
        ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"]
    );
    let n = names(&s);
    for kept in [
        "read",
        "write",
        "personality",
        "arch_prctl",
        "ptrace",
        "single",
    ] {
        assert!(n.contains_key(kept), "{kept} kept");
    }
    for dropped in ["sync_file_range2", "ioperm", "old_call", "not_here"] {
        assert!(!n.contains_key(dropped), "{dropped} dropped");
    }
    // One chroot rule, the one for a container with CAP_SYS_CHROOT.
    assert_eq!(n["chroot"].len(), 1);
    assert_eq!(n["chroot"][0].action, "SCMP_ACT_ALLOW");
    assert_eq!(n["personality"][0].args[0].value, 8);
    assert_eq!(n["kexec_load"][0].errno_ret, Some(1));

    // Another machine and capability set.
    let caps = ["CAP_SYS_RAWIO"];
    let s = convert(
        &p,
        &Target {
            arch: "arm64",
            caps: &caps,
            kernel: (4, 4),
        },
    );
    assert_eq!(s.architectures, ["SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM"]);
    let n = names(&s);
    assert!(n.contains_key("ioperm") && n.contains_key("old_call") && n.contains_key("not_here"));
    assert!(!n.contains_key("ptrace") && !n.contains_key("arch_prctl"));
    assert_eq!(n["chroot"][0].action, "SCMP_ACT_ERRNO");
}

#[test]
fn without_sys_admin_dockers_rules_replace_podmans() {
    let p: HostProfile = serde_json::from_str(PROFILE).expect("profile");
    let s = convert(&p, &amd64(&DEFAULT_CAPS));
    let n = names(&s);
    for name in ["unshare", "mount", "keyctl", "setns", "add_key", "umount2"] {
        assert_eq!(n[name].len(), 1, "{name}: one rule");
        assert_eq!(n[name][0].action, "SCMP_ACT_ERRNO", "{name}");
        assert_eq!(n[name][0].errno_ret, Some(1), "{name}: EPERM");
    }
    assert_eq!(n["clone"].len(), 1);
    let clone = n["clone"][0];
    assert_eq!(clone.action, "SCMP_ACT_ALLOW");
    assert_eq!(
        clone.args,
        [Arg {
            index: 0,
            value: 2_114_060_288, // Docker's mask
            value_two: 0,
            op: "SCMP_CMP_MASKED_EQ".into()
        }]
    );
    assert_eq!(n["clone3"].len(), 1);
    assert_eq!(n["clone3"][0].errno_ret, Some(38));

    // With CAP_SYS_ADMIN the file's own rules stand.
    let s = convert(&p, &amd64(&["CAP_SYS_ADMIN"]));
    let n = names(&s);
    assert_eq!(n["unshare"][0].action, "SCMP_ACT_ALLOW");
    assert!(n["clone"][0].args.is_empty());
}

#[test]
fn the_fallback_refuses_what_docker_refuses() {
    let s = fallback("amd64");
    assert_eq!(s.default_action, "SCMP_ACT_ALLOW");
    let n = names(&s);
    for name in [
        "unshare",
        "mount",
        "keyctl",
        "kexec_load",
        "init_module",
        "bpf",
        "reboot",
    ] {
        assert_eq!(n[name][0].action, "SCMP_ACT_ERRNO", "{name}");
    }
    // One refusal per namespace flag.
    let flags: u64 = n["clone"].iter().map(|r| r.args[0].value).sum();
    assert_eq!(flags, CLONE_NAMESPACES);
    assert!(
        n["clone"]
            .iter()
            .all(|r| r.args[0].value == r.args[0].value_two)
    );
    assert_eq!(
        fallback("s390x").syscalls.last().expect("clone").args[0].index,
        1
    );
    let json = serde_json::to_value(&s).expect("json");
    assert!(json.get("defaultErrnoRet").is_none());
    assert_eq!(json["syscalls"][0]["errnoRet"], 1);
}

#[test]
fn kernel_versions() {
    assert_eq!(kernel_version("6.18.44-fc-v669\n"), Some((6, 18)));
    assert_eq!(kernel_version("4.8"), Some((4, 8)));
    assert_eq!(kernel_version("5"), Some((5, 0)));
    assert_eq!(kernel_version("x"), None);
}

/// The host's profile, where containers-common is installed: it parses, and no call gets
/// two rules without arguments (libseccomp would refuse two actions for one call).
#[test]
fn the_hosts_profile_converts() {
    let Ok(text) = std::fs::read(HOST_PROFILE) else {
        eprintln!("skipped: no {HOST_PROFILE}");
        return;
    };
    let p: HostProfile = serde_json::from_slice(&text).expect("the host profile parses");
    let s = convert(&p, &amd64(&DEFAULT_CAPS));
    assert_eq!(s.default_action, "SCMP_ACT_ERRNO");
    let n = names(&s);
    for (name, rules) in &n {
        let plain = rules.iter().filter(|r| r.args.is_empty()).count();
        assert!(plain <= 1, "{name}: {plain} rules without arguments");
    }
    for name in ["read", "execve", "chroot", "socket", "setuid", "mknod"] {
        assert_eq!(n[name][0].action, "SCMP_ACT_ALLOW", "{name}");
    }
    assert_eq!(n["unshare"][0].action, "SCMP_ACT_ERRNO");
    assert!(!n.contains_key("ioperm") || n["ioperm"][0].action == "SCMP_ACT_ERRNO");
}
