//! Starting a RUN command as the stage's USER. The engine spawns itself as a small helper
//! (`slipway-builder __exec`) that roots itself where the stage's tree is (for FROM scratch
//! chains), creates the working directory, drops to the user's groups and ids, and execs the
//! command. Doing it in a helper process keeps the engine free of `unsafe` pre-exec hooks.

use std::ffi::CString;
use std::path::{Path, PathBuf};

use nix::unistd::{Gid, Uid};

/// What the helper does before exec.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecSpec {
    /// chroot here first (a stage rooted in a directory); `None` runs in `/`.
    pub root: Option<PathBuf>,
    pub uid: u32,
    pub gid: u32,
    pub groups: Vec<u32>,
    pub cwd: String,
    pub argv: Vec<String>,
}

impl ExecSpec {
    /// The helper's command line (after the program name).
    pub fn to_args(&self) -> Vec<String> {
        let mut a = vec!["__exec".to_string()];
        if let Some(r) = &self.root {
            a.extend(["--root".into(), r.display().to_string()]);
        }
        a.extend([
            "--uid".into(),
            self.uid.to_string(),
            "--gid".into(),
            self.gid.to_string(),
            "--groups".into(),
            self.groups
                .iter()
                .map(u32::to_string)
                .collect::<Vec<_>>()
                .join(","),
            "--cwd".into(),
            self.cwd.clone(),
            "--".into(),
        ]);
        a.extend(self.argv.iter().cloned());
        a
    }

    pub fn from_args(args: &[String]) -> Result<Self, String> {
        let mut spec = ExecSpec {
            root: None,
            uid: 0,
            gid: 0,
            groups: vec![],
            cwd: "/".into(),
            argv: vec![],
        };
        let mut it = args.iter();
        while let Some(a) = it.next() {
            let mut val = || it.next().cloned().ok_or(format!("{a}: missing value"));
            match a.as_str() {
                "--root" => spec.root = Some(PathBuf::from(val()?)),
                "--uid" => spec.uid = val()?.parse().map_err(|_| "bad --uid")?,
                "--gid" => spec.gid = val()?.parse().map_err(|_| "bad --gid")?,
                "--groups" => {
                    spec.groups = val()?
                        .split(',')
                        .filter(|s| !s.is_empty())
                        .map(|s| s.parse().map_err(|_| "bad --groups".to_string()))
                        .collect::<Result<_, _>>()?
                }
                "--cwd" => spec.cwd = val()?,
                "--" => {
                    spec.argv = it.cloned().collect();
                    break;
                }
                other => return Err(format!("unknown helper option {other}")),
            }
        }
        if spec.argv.is_empty() {
            return Err("no command to run".into());
        }
        Ok(spec)
    }
}

/// The helper's body: never returns on success.
pub fn exec(spec: &ExecSpec) -> Result<std::convert::Infallible, String> {
    if let Some(root) = &spec.root {
        std::os::unix::fs::chroot(root).map_err(|e| format!("chroot {}: {e}", root.display()))?;
        std::env::set_current_dir("/").map_err(|e| format!("chdir /: {e}"))?;
    }
    // Docker creates a missing working directory for RUN (owned by root, before USER applies).
    let cwd = Path::new(&spec.cwd);
    if !cwd.exists() {
        std::fs::create_dir_all(cwd).map_err(|e| format!("mkdir {}: {e}", spec.cwd))?;
    }
    let groups: Vec<Gid> = spec.groups.iter().map(|g| Gid::from_raw(*g)).collect();
    nix::unistd::setgroups(&groups).map_err(|e| format!("setgroups: {e}"))?;
    nix::unistd::setgid(Gid::from_raw(spec.gid)).map_err(|e| format!("setgid: {e}"))?;
    nix::unistd::setuid(Uid::from_raw(spec.uid)).map_err(|e| format!("setuid: {e}"))?;
    std::env::set_current_dir(cwd).map_err(|e| format!("chdir {}: {e}", spec.cwd))?;
    let argv: Vec<CString> = spec
        .argv
        .iter()
        .map(|a| CString::new(a.as_bytes()).map_err(|_| format!("NUL byte in argument {a:?}")))
        .collect::<Result<_, _>>()?;
    let Err(e) = nix::unistd::execvp(&argv[0], &argv);
    Err(format!("exec {}: {}", spec.argv[0], e.desc()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn helper_arguments_round_trip() {
        let spec = ExecSpec {
            root: Some("/ws/stages/2/rootfs".into()),
            uid: 1000,
            gid: 1001,
            groups: vec![27, 999],
            cwd: "/app".into(),
            argv: vec!["/bin/sh".into(), "-c".into(), "echo -- hi".into()],
        };
        let args = spec.to_args();
        assert_eq!(args[0], "__exec");
        assert_eq!(ExecSpec::from_args(&args[1..]), Ok(spec));
        assert!(ExecSpec::from_args(&["--uid".into()]).is_err());
        assert!(ExecSpec::from_args(&["--".into()]).is_err());
    }
}
