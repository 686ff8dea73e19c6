//! RUN: the command (shell or exec form, heredocs), its environment and user, the helper
//! process that becomes it (`exec.rs`), its output streamed with the stage's name, and the
//! layer of what it changed. What to run, with which environment and as whom are pure
//! functions of the stage's state ([`argv`], [`run_env`], [`run_user`], [`exec_spec`]); the
//! `Engine` methods here do the I/O. Before the tree is walked, every process the RUN
//! started is gone ([`reap`](crate::stage::reap)) and so are the files made for it
//! ([`RunFiles`]).

use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Command as Process, Stdio};

use slipway_frontend::dockerfile::instructions::{
    CmdLine, Command, NetworkMode, Run, SecurityMode,
};
use slipway_frontend::dockerfile::parser;

use crate::layer::snapshot;
use crate::stage::config::StageImage;
use crate::stage::exec::ExecSpec;
use crate::stage::mount_sources::Mounted;
use crate::stage::run_files::{self, Area, RunFiles};
use crate::stage::users::{self, ExecUser, GroupEntry, PasswdEntry, UserError};
use crate::stage::{Engine, StageError, reap, sanitize};

/// Why a RUN could not run (its command failing is [`StageError::RunFailed`]).
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("--security=insecure is not allowed: stages run unprivileged")]
    Insecure,
    /// A stage cannot take a RUN off the network: that needs a network namespace of its own,
    /// and making one needs CAP_SYS_ADMIN, which stage pods do not have; running it with the
    /// network would silently break its promise.
    #[error(
        "--network=none is not supported: stages run without CAP_SYS_ADMIN, so a RUN cannot \
         be given a network namespace of its own and would still reach the network"
    )]
    NetworkNone,
    /// BuildKit grants `--network=host` only with the `network.host` entitlement; Slipway
    /// grants no entitlements.
    #[error(
        "--network=host is not allowed: it needs the network.host entitlement, which Slipway does not grant"
    )]
    NetworkHost,
    #[error("USER {spec}: {source}")]
    User {
        spec: String,
        #[source]
        source: UserError,
    },
    #[error("walking the tree: {0}")]
    Walk(#[source] io::Error),
    #[error("undoing a mount: {0}")]
    Unmount(#[source] io::Error),
    /// Writing out a heredoc script (the I/O error alone, as it always read).
    #[error("{0}")]
    Script(#[source] io::Error),
    /// Finding our own executable, the helper RUN starts as.
    #[error("{0}")]
    Helper(#[source] io::Error),
    #[error("starting the command: {0}")]
    Start(#[source] io::Error),
    #[error("waiting for the command: {0}")]
    Wait(#[source] io::Error),
    /// Killing what the RUN left running.
    #[error("stopping the RUN's background processes: {0}")]
    Leftovers(#[source] io::Error),
    /// Removing the files made for the RUN (secrets, scripts, tmpfs).
    #[error("removing the RUN's own files: {0}")]
    RunFiles(#[source] io::Error),
}

/// Whether a RUN's `--network` can be honoured: only the default (the stage's own network).
pub fn check_network(mode: NetworkMode) -> Result<(), RunError> {
    match mode {
        NetworkMode::Default => Ok(()),
        NetworkMode::None => Err(RunError::NetworkNone),
        NetworkMode::Host => Err(RunError::NetworkHost),
    }
}

/// What RUN executes, decided before anything is written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Argv {
    /// This argv, as is.
    Exec(Vec<String>),
    /// A heredoc with its own interpreter (`#!`): written out as a file named `file`, its
    /// path handed to SHELL (`/bin/sh -c /dev/pipes/<file>`, as BuildKit runs it).
    Script {
        shell: Vec<String>,
        file: String,
        body: String,
    },
}

/// The command RUN executes, heredocs included (BuildKit's `dispatchRun` rules): exec form
/// as written, shell form through SHELL; a whole-command heredoc is the script itself, other
/// heredocs are appended to the shell line with their delimiters.
pub fn argv(image: &StageImage, c: &CmdLine) -> Argv {
    if c.files.is_empty() || !c.prepend_shell {
        return Argv::Exec(image.with_shell(c));
    }
    let line = c.args.join(" ");
    let whole = parser::parse_heredoc(line.trim()).ok().flatten();
    if let (Some(h), [file]) = (whole, c.files.as_slice())
        && h.name == file.name
    {
        let body = file.data.clone();
        if body.starts_with("#!") {
            return Argv::Script {
                shell: image.current_shell(),
                file: sanitize(&file.name),
                body,
            };
        }
        let mut argv = image.current_shell();
        argv.push(body);
        return Argv::Exec(argv);
    }
    let mut script = line;
    for f in &c.files {
        script.push('\n');
        script.push_str(&f.data);
        script.push_str(&f.name);
    }
    let mut argv = image.current_shell();
    argv.push(script);
    Argv::Exec(argv)
}

/// RUN's environment, and the build args its history entry lists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunEnv {
    /// The image's Env, then the ARGs no ENV overrides, then `HOME` (the user's) when neither
    /// set it.
    pub env: Vec<(String, String)>,
    /// The ARGs in scope that no ENV overrides.
    pub build_args: Vec<(String, String)>,
}

/// RUN's environment from the image's config, the ARGs in scope and the user's home.
pub fn run_env(image: &StageImage, args: &[(String, String)], home: &str) -> RunEnv {
    let build_args: Vec<(String, String)> = args
        .iter()
        .filter(|(k, _)| !image.has_env(k))
        .cloned()
        .collect();
    let mut env: Vec<(String, String)> = image
        .config
        .env
        .iter()
        .map(|e| {
            let (k, v) = e.split_once('=').unwrap_or((e, ""));
            (k.to_string(), v.to_string())
        })
        .collect();
    env.extend(build_args.iter().cloned());
    if !env.iter().any(|(k, _)| k == "HOME") {
        env.push(("HOME".into(), home.to_string()));
    }
    RunEnv { env, build_args }
}

/// Who RUN executes as: USER (root when unset), as the stage's passwd and group define it.
pub fn run_user(
    user: &str,
    passwd: &[PasswdEntry],
    groups: &[GroupEntry],
) -> Result<ExecUser, RunError> {
    let spec = if user.is_empty() { "0" } else { user };
    users::exec_user(spec, passwd, groups).map_err(|source| RunError::User {
        spec: spec.to_string(),
        source,
    })
}

/// What the helper is told: chroot into `root` unless it is `/`, become `user`, start in
/// `cwd`, exec `argv`.
pub fn exec_spec(root: &Path, user: &ExecUser, cwd: &str, argv: Vec<String>) -> ExecSpec {
    ExecSpec {
        root: (root != Path::new("/")).then(|| root.to_path_buf()),
        uid: user.uid,
        gid: user.gid,
        groups: user.groups.clone(),
        cwd: cwd.to_string(),
        argv,
    }
}

/// The RUN as written (its text after the keyword), for error messages.
pub fn run_text(original: &str) -> String {
    let o = original.trim();
    let rest = o
        .split_once(char::is_whitespace)
        .map(|(_, r)| r.trim_start())
        .unwrap_or("");
    rest.to_string()
}

/// One line of a RUN's output as the log shows it, `[stage] text\n`, in one buffer so it
/// can be written with one call; bytes that are not UTF-8 are replaced, not dropped.
pub fn prefixed_line(stage: &str, line: &[u8]) -> Vec<u8> {
    let text = String::from_utf8_lossy(line);
    let mut out = Vec::with_capacity(stage.len() + text.len() + 4);
    out.push(b'[');
    out.extend_from_slice(stage.as_bytes());
    out.extend_from_slice(b"] ");
    out.extend_from_slice(text.as_bytes());
    out.push(b'\n');
    out
}

/// A path as the RUN process sees it: inside a chroot `root`, relative to it.
pub fn visible_path(root: &Path, p: &Path) -> String {
    if root == Path::new("/") {
        return p.display().to_string();
    }
    match p.strip_prefix(root) {
        Ok(rel) => format!("/{}", rel.display()),
        Err(_) => p.display().to_string(),
    }
}

impl Engine<'_> {
    pub(super) fn run(&mut self, cmd: &Command, run: &Run) -> Result<(), StageError> {
        if run.security == SecurityMode::Insecure {
            return Err(self.fail(cmd, RunError::Insecure));
        }
        check_network(run.network).map_err(|e| self.fail(cmd, e))?;
        let (passwd, group) = self.read_users();
        let user =
            run_user(&self.image.config.user, &passwd, &group).map_err(|e| self.fail(cmd, e))?;
        let RunEnv {
            mut env,
            build_args,
        } = run_env(&self.image, &self.args, &user.home);

        if self.writes_layers && self.baseline.is_none() {
            let s = snapshot::walk(&self.root, &self.skip, self.threads)
                .map_err(|e| self.fail(cmd, RunError::Walk(e)))?;
            self.baseline = Some(s);
        }

        // The RUN's own files (scripts, secrets, tmpfs) and its mounts go in after the
        // baseline and come out before the next walk, on every path out of here.
        let mut files = self.run_files();
        let mut mounted = Mounted::default();
        let result = self.run_argv(cmd, &run.cmd, &mut files).and_then(|argv| {
            self.place_mounts(cmd, run, &mut files, &mut mounted)?;
            env.append(&mut mounted.secret_env);
            let spec = exec_spec(&self.root, &user, self.workdir(), argv.clone());
            self.spawn(cmd, &spec, &env).map(|code| (argv, code))
        });
        let undone = self.unmount(cmd, mounted);
        let removed = files
            .remove()
            .map_err(|e| self.fail(cmd, RunError::RunFiles(e)));
        let (argv, code) = result?;
        undone?;
        removed?;
        if code != 0 {
            return Err(StageError::RunFailed {
                stage: self.label.clone(),
                line: cmd.span.start,
                command: run_text(&cmd.original),
                code,
            });
        }
        self.image.run(&argv, &build_args);
        if !self.writes_layers {
            return Ok(());
        }

        let after = snapshot::walk(&self.root, &self.skip, self.threads)
            .map_err(|e| self.fail(cmd, RunError::Walk(e)))?;
        let before = self.baseline.take().unwrap_or_default();
        let changes = snapshot::diff(&before, &after);
        let root = self.root.clone();
        self.next_layer(cmd, |l| snapshot::write_changes(&root, &after, &changes, l))?;
        self.baseline = Some(after);
        Ok(())
    }

    /// The places of this RUN's own files ([`run_files::places`]).
    fn run_files(&self) -> RunFiles {
        let nonce = format!(
            "{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos())
        );
        let dev_tmpfs = self.skip.contains(Path::new("/dev"));
        let (small, large) = run_files::places(&self.root, dev_tmpfs, self.step, &nonce);
        RunFiles::new(small, large)
    }

    /// The argv of [`argv`], with a `#!` heredoc script written where RUN can execute it
    /// (BuildKit runs it as `/bin/sh -c /dev/pipes/<name>`; so does a stage rooted at `/`).
    fn run_argv(
        &self,
        cmd: &Command,
        c: &CmdLine,
        files: &mut RunFiles,
    ) -> Result<Vec<String>, StageError> {
        let (mut shell, file, body) = match argv(&self.image, c) {
            Argv::Exec(v) => return Ok(v),
            Argv::Script { shell, file, body } => (shell, file, body),
        };
        let path = files
            .write(Area::Small, &file, body.as_bytes(), 0o755, (0, 0))
            .map_err(|e| self.fail(cmd, RunError::Script(e)))?;
        shell.push(visible_path(&self.root, &path));
        Ok(shell)
    }

    /// Runs the helper, streaming its output line by line with the stage's name.
    fn spawn(
        &self,
        cmd: &Command,
        spec: &ExecSpec,
        env: &[(String, String)],
    ) -> Result<i32, StageError> {
        let exe = std::env::current_exe().map_err(|e| self.fail(cmd, RunError::Helper(e)))?;
        let mut child = Process::new(exe)
            .args(spec.to_args())
            .env_clear()
            .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| self.fail(cmd, RunError::Start(e)))?;
        let name = self
            .ps
            .name
            .clone()
            .unwrap_or_else(|| self.ps.index.to_string());
        // In local mode our stdout and stderr are one pipe: each line goes out in one write,
        // under one lock, so a stdout line never lands inside a stderr line.
        let together = std::sync::Arc::new(std::sync::Mutex::new(()));
        let pump = |r: Box<dyn Read + Send>, to_err: bool, name: String| {
            let together = together.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(r).split(b'\n').map_while(Result::ok) {
                    let text = prefixed_line(&name, &line);
                    let _held = together.lock();
                    let _ = if to_err {
                        io::stderr().lock().write_all(&text)
                    } else {
                        let mut out = io::stdout().lock();
                        out.write_all(&text).and_then(|()| out.flush())
                    };
                }
            })
        };
        let mut threads = Vec::new();
        if let Some(o) = child.stdout.take() {
            threads.push(pump(Box::new(o), false, name.clone()));
        }
        if let Some(e) = child.stderr.take() {
            threads.push(pump(Box::new(e), true, name));
        }
        let status = child.wait().map_err(|e| self.fail(cmd, RunError::Wait(e)));
        // Whatever the RUN left behind goes now, before its output is drained: a daemon
        // holding the pipes open would keep the pumps waiting for ever.
        let killed = reap::kill_leftovers().map_err(|e| self.fail(cmd, RunError::Leftovers(e)));
        for t in threads {
            let _ = t.join();
        }
        let status = status?;
        killed?;
        Ok(status
            .code()
            .unwrap_or_else(|| 128 + status.signal().unwrap_or(0)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stage::config::Config;
    use slipway_frontend::dockerfile::instructions::{self, Instruction};
    use std::path::PathBuf;

    /// The command line of the RUN in `text` (one instruction after a FROM), as the front
    /// end parses it.
    fn run_line(text: &str) -> CmdLine {
        let parsed = parser::parse(&format!("FROM scratch\n{text}\n")).expect("parses");
        let df = instructions::from_ast(&parsed.ast).expect("instructions");
        match &df.stages[0].commands[0].instruction {
            Instruction::Run(r) => r.cmd.clone(),
            other => panic!("not a RUN: {other:?}"),
        }
    }

    fn image(env: &[&str], shell: &[&str]) -> StageImage {
        let config = Config {
            env: env.iter().map(|s| s.to_string()).collect(),
            shell: shell.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        };
        StageImage::from_base(config, vec![])
    }

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn a_prefixed_line_is_one_buffer_with_its_newline() {
        assert_eq!(prefixed_line("app", b"on-stderr"), b"[app] on-stderr\n");
        assert_eq!(prefixed_line("0", b"a\xffb"), "[0] a\u{fffd}b\n".as_bytes());
    }

    #[test]
    fn argv_shell_and_exec_form() {
        let img = image(&[], &[]);
        assert_eq!(
            argv(&img, &run_line("RUN make all")),
            Argv::Exec(strings(&["/bin/sh", "-c", "make all"]))
        );
        assert_eq!(
            argv(&img, &run_line(r#"RUN ["/bin/echo", "a b"]"#)),
            Argv::Exec(strings(&["/bin/echo", "a b"]))
        );
        let bash = image(&[], &["/bin/bash", "-eu", "-c"]);
        assert_eq!(
            argv(&bash, &run_line("RUN echo $0")),
            Argv::Exec(strings(&["/bin/bash", "-eu", "-c", "echo $0"]))
        );
    }

    #[test]
    fn argv_heredocs() {
        let img = image(&[], &["/bin/bash", "-c"]);
        // The whole command is one heredoc: its body is the script, through SHELL.
        assert_eq!(
            argv(&img, &run_line("RUN <<EOF\necho one\necho two\nEOF")),
            Argv::Exec(strings(&["/bin/bash", "-c", "echo one\necho two\n"]))
        );
        // With its own interpreter it is written out and its path given to SHELL (BuildKit's
        // history: `RUN /bin/sh -c /dev/pipes/EOT`; the kernel then reads the `#!`).
        assert_eq!(
            argv(
                &img,
                &run_line("RUN <<run.py\n#!/usr/bin/python3\nprint(1)\nrun.py")
            ),
            Argv::Script {
                shell: strings(&["/bin/bash", "-c"]),
                file: "run_py".into(),
                body: "#!/usr/bin/python3\nprint(1)\n".into()
            }
        );
        // A heredoc feeding a command: appended to the line with its delimiter.
        assert_eq!(
            argv(&img, &run_line("RUN cat <<EOF > /greeting\nhello\nEOF")),
            Argv::Exec(strings(&[
                "/bin/bash",
                "-c",
                "cat <<EOF > /greeting\nhello\nEOF"
            ]))
        );
    }

    #[test]
    fn env_is_image_env_then_args_then_home() {
        let img = image(&["PATH=/bin", "MODE=env", "EMPTY"], &[]);
        let args = [
            ("MODE".to_string(), "arg".to_string()),
            ("VERSION".to_string(), "1.2".to_string()),
        ];
        let got = run_env(&img, &args, "/home/app");
        assert_eq!(got.build_args, [("VERSION".to_string(), "1.2".to_string())]);
        let env: Vec<(&str, &str)> = got
            .env
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        assert_eq!(
            env,
            [
                ("PATH", "/bin"),
                ("MODE", "env"),
                ("EMPTY", ""),
                ("VERSION", "1.2"),
                ("HOME", "/home/app")
            ]
        );
        // HOME from the image, or from an ARG, is kept.
        let img = image(&["HOME=/srv"], &[]);
        assert_eq!(
            run_env(&img, &[], "/root").env,
            [("HOME".into(), "/srv".into())]
        );
        let img = image(&[], &[]);
        let home = [("HOME".to_string(), "/opt".to_string())];
        assert_eq!(run_env(&img, &home, "/root").env, home);
    }

    #[test]
    fn user_is_root_unless_set() {
        let passwd = users::parse_passwd("root:x:0:0::/root:/bin/sh\napp:x:10:20::/app:/bin/sh\n");
        let groups = users::parse_group("root:x:0:\nextra:x:30:app\n");
        let root = run_user("", &passwd, &groups).expect("root");
        assert_eq!((root.uid, root.gid, root.home.as_str()), (0, 0, "/root"));
        let app = run_user("app", &passwd, &groups).expect("app");
        assert_eq!((app.uid, app.gid, app.groups), (10, 20, vec![30]));
        let err = run_user("ghost", &passwd, &groups).expect_err("no such user");
        assert_eq!(
            err.to_string(),
            "USER ghost: unable to find user ghost: no matching entries in passwd file"
        );
    }

    #[test]
    fn helper_spec_chroots_only_outside_slash() {
        let user = ExecUser {
            uid: 1,
            gid: 2,
            groups: vec![3],
            home: "/".into(),
        };
        let at_slash = exec_spec(Path::new("/"), &user, "/app", strings(&["true"]));
        assert_eq!(at_slash.root, None);
        assert_eq!(
            (
                at_slash.uid,
                at_slash.gid,
                at_slash.groups,
                at_slash.cwd.as_str()
            ),
            (1, 2, vec![3], "/app")
        );
        let scratch = exec_spec(Path::new("/ws/stages/1/rootfs"), &user, "/", vec![]);
        assert_eq!(scratch.root, Some(PathBuf::from("/ws/stages/1/rootfs")));
    }

    #[test]
    fn text_and_visible_paths() {
        assert_eq!(
            run_text("RUN  echo failing && exit 3"),
            "echo failing && exit 3"
        );
        assert_eq!(
            run_text("run\t--mount=type=cache,target=/c make"),
            "--mount=type=cache,target=/c make"
        );
        assert_eq!(run_text("RUN"), "");
        let file = Path::new("/ws/stages/1/rootfs/.slipway-run/script");
        assert_eq!(
            visible_path(Path::new("/"), file),
            file.display().to_string()
        );
        assert_eq!(
            visible_path(Path::new("/ws/stages/1/rootfs"), file),
            "/.slipway-run/script"
        );
        assert_eq!(
            visible_path(Path::new("/elsewhere"), file),
            file.display().to_string()
        );
    }
}
