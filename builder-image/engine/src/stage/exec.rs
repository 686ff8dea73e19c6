//! Starting a RUN command as the stage's USER. The engine spawns itself as a small helper
//! (`slipway-builder __exec`) that roots itself where the stage's tree is (for FROM scratch
//! chains), creates the working directory, drops to the user's groups and ids, and execs the
//! command. Doing it in a helper process keeps the engine free of `unsafe` pre-exec hooks.

use std::ffi::CString;
use std::path::{Path, PathBuf};

use nix::unistd::{Gid, Uid};

/// The helper's subcommand name; hidden from `--help`.
pub const SUBCOMMAND: &str = "__exec";

/// What the helper does before exec: its arguments, which the engine renders and the binary
/// parses (as `slipway-builder __exec`).
#[derive(clap::Args, Debug, Clone, PartialEq, Eq)]
pub struct ExecSpec {
    /// chroot here first (a stage rooted in a directory); `None` runs in `/`.
    #[arg(long)]
    pub root: Option<PathBuf>,
    #[arg(long)]
    pub uid: u32,
    #[arg(long)]
    pub gid: u32,
    #[arg(long, value_delimiter = ',')]
    pub groups: Vec<u32>,
    #[arg(long)]
    pub cwd: String,
    #[arg(last = true, required = true)]
    pub argv: Vec<String>,
}

impl ExecSpec {
    /// The helper's command line (after the program name).
    pub fn to_args(&self) -> Vec<String> {
        let mut a = vec![SUBCOMMAND.to_string()];
        if let Some(r) = &self.root {
            a.extend(["--root".into(), r.display().to_string()]);
        }
        a.extend([
            "--uid".into(),
            self.uid.to_string(),
            "--gid".into(),
            self.gid.to_string(),
        ]);
        if !self.groups.is_empty() {
            a.extend([
                "--groups".into(),
                self.groups
                    .iter()
                    .map(u32::to_string)
                    .collect::<Vec<_>>()
                    .join(","),
            ]);
        }
        a.extend(["--cwd".into(), self.cwd.clone(), "--".into()]);
        a.extend(self.argv.iter().cloned());
        a
    }
}

/// Why the helper could not become the user's command.
#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    #[error("chroot {}: {source}", root.display())]
    Chroot {
        root: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("mkdir {cwd}: {source}")]
    Mkdir {
        cwd: String,
        #[source]
        source: std::io::Error,
    },
    #[error("chdir {cwd}: {source}")]
    Chdir {
        cwd: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{call}: {source}")]
    Ids {
        call: &'static str,
        #[source]
        source: nix::Error,
    },
    #[error("NUL byte in argument {0:?}")]
    Nul(String),
    #[error("exec {program}: {}", source.desc())]
    Exec {
        program: String,
        #[source]
        source: nix::Error,
    },
}

/// The helper's body: never returns on success.
pub fn exec(spec: &ExecSpec) -> Result<std::convert::Infallible, ExecError> {
    let chdir = |cwd: &str| {
        let cwd = cwd.to_string();
        move |source| ExecError::Chdir { cwd, source }
    };
    let ids = |call| move |source| ExecError::Ids { call, source };
    if let Some(root) = &spec.root {
        std::os::unix::fs::chroot(root).map_err(|source| ExecError::Chroot {
            root: root.clone(),
            source,
        })?;
        std::env::set_current_dir("/").map_err(chdir("/"))?;
    }
    // Docker creates a missing working directory for RUN (owned by root, before USER applies).
    let cwd = Path::new(&spec.cwd);
    if !cwd.exists() {
        std::fs::create_dir_all(cwd).map_err(|source| ExecError::Mkdir {
            cwd: spec.cwd.clone(),
            source,
        })?;
    }
    let groups: Vec<Gid> = spec.groups.iter().map(|g| Gid::from_raw(*g)).collect();
    nix::unistd::setgroups(&groups).map_err(ids("setgroups"))?;
    nix::unistd::setgid(Gid::from_raw(spec.gid)).map_err(ids("setgid"))?;
    nix::unistd::setuid(Uid::from_raw(spec.uid)).map_err(ids("setuid"))?;
    std::env::set_current_dir(cwd).map_err(chdir(&spec.cwd))?;
    let argv: Vec<CString> = spec
        .argv
        .iter()
        .map(|a| CString::new(a.as_bytes()).map_err(|_| ExecError::Nul(a.clone())))
        .collect::<Result<_, _>>()?;
    let Err(source) = nix::unistd::execvp(&argv[0], &argv);
    Err(ExecError::Exec {
        program: spec.argv[0].clone(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(subcommand)]
        command: Cmd,
    }

    #[derive(clap::Subcommand)]
    enum Cmd {
        #[command(name = "__exec")]
        Exec(ExecSpec),
    }

    fn parse(args: &[String]) -> Result<ExecSpec, clap::Error> {
        let argv = std::iter::once("slipway-builder".to_string()).chain(args.iter().cloned());
        Cli::try_parse_from(argv).map(|c| match c.command {
            Cmd::Exec(s) => s,
        })
    }

    #[test]
    fn helper_arguments_round_trip() {
        let mut spec = ExecSpec {
            root: Some("/ws/stages/2/rootfs".into()),
            uid: 1000,
            gid: 1001,
            groups: vec![27, 999],
            cwd: "/app".into(),
            argv: vec!["/bin/sh".into(), "-c".into(), "echo -- hi".into()],
        };
        let args = spec.to_args();
        assert_eq!(args[0], SUBCOMMAND);
        assert_eq!(parse(&args).expect("parses"), spec);
        spec.groups.clear();
        spec.root = None;
        assert_eq!(parse(&spec.to_args()).expect("parses"), spec);
        assert!(parse(&["__exec".into(), "--uid".into()]).is_err());
        assert!(parse(&["__exec".into(), "--uid".into(), "0".into(), "--".into()]).is_err());
    }
}
