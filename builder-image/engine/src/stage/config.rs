//! The image config a stage builds up, instruction by instruction, with the history entries
//! BuildKit writes (`dockerfile2llb/convert.go` dispatch functions). Values arrive already
//! expanded; this module only records their effect. JSON field names follow the OCI image
//! config plus Docker's extensions (Healthcheck, Shell, OnBuild, ArgsEscaped).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use slipway_frontend::dockerfile::instructions::{CmdLine, Health, KeyValue};
use slipway_frontend::gocompat::{clean, quote};

/// An EXPOSE or STOPSIGNAL value the image config cannot take (Docker's messages).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("Invalid signal: {0}")]
    Signal(String),
    #[error("Invalid proto: {0}")]
    Proto(String),
    #[error("Invalid containerPort: {0}")]
    Port(String),
}

/// An empty JSON object (`{}`), the value type of ExposedPorts and Volumes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Empty {}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct HealthConfig {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub test: Vec<String>,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub interval: i64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub timeout: i64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub start_period: i64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub start_interval: i64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub retries: i64,
}

fn is_zero(v: &i64) -> bool {
    *v == 0
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Config {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub user: String,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub exposed_ports: BTreeMap<String, Empty>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub env: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entrypoint: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cmd: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub volumes: BTreeMap<String, Empty>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub working_dir: String,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub stop_signal: String,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub args_escaped: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub healthcheck: Option<HealthConfig>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub on_build: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub shell: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct History {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub created_by: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub comment: String,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub empty_layer: bool,
}

/// A stage's config and history while its instructions run.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StageImage {
    pub config: Config,
    pub author: String,
    pub history: Vec<History>,
    /// CMD was set in this stage (so a later ENTRYPOINT keeps it).
    cmd_set: bool,
    /// The `created` of the history entries this stage adds (RFC 3339): the source date
    /// epoch when there is one; else none, as before.
    pub created: Option<String>,
}

/// A source date epoch as the image config's and history's `created` say it: RFC 3339 in UTC
/// (`2023-11-14T22:13:20Z`). Epochs are checked against the last second this form can say
/// when parsed (`slipway_contract::epoch::MAX_EPOCH`); a larger one is written as that second.
pub fn created_at(epoch: u64) -> String {
    let secs = i64::try_from(epoch).unwrap_or(i64::MAX);
    let t = jiff::Timestamp::from_second(secs).unwrap_or(jiff::Timestamp::MAX);
    t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// `["a" "b"]`, Go's `%q` of a string slice.
fn go_quoted_list(v: &[String]) -> String {
    format!(
        "[{}]",
        v.iter().map(|s| quote(s)).collect::<Vec<_>>().join(" ")
    )
}

/// Go's `time.Duration.String()` for nanoseconds.
pub fn go_duration(ns: i64) -> String {
    if ns == 0 {
        return "0s".into();
    }
    let neg = ns < 0;
    let u = ns.unsigned_abs();
    let body = if u < 1_000_000_000 {
        let (unit, div) = if u < 1_000 {
            ("ns", 1)
        } else if u < 1_000_000 {
            ("µs", 1_000)
        } else {
            ("ms", 1_000_000)
        };
        format!("{}{unit}", trim_fraction(u, div))
    } else {
        let (h, rest) = (u / 3_600_000_000_000, u % 3_600_000_000_000);
        let (m, s) = (rest / 60_000_000_000, rest % 60_000_000_000);
        let secs = format!("{}s", trim_fraction(s, 1_000_000_000));
        match (h, m) {
            (0, 0) => secs,
            (0, m) => format!("{m}m{secs}"),
            (h, m) => format!("{h}h{m}m{secs}"),
        }
    };
    if neg { format!("-{body}") } else { body }
}

fn trim_fraction(v: u64, div: u64) -> String {
    let whole = v / div;
    let frac = v % div;
    if frac == 0 {
        return whole.to_string();
    }
    let digits = div.to_string().len() - 1;
    let f = format!("{frac:0digits$}");
    format!("{whole}.{}", f.trim_end_matches('0'))
}

/// The config a stage `FROM scratch` starts with: BuildKit's `emptyImage`, PATH set and the
/// working directory `/`.
pub fn scratch_config() -> Config {
    Config {
        env: vec![format!("PATH={}", slipway_frontend::plan::DEFAULT_PATH)],
        working_dir: "/".into(),
        ..Default::default()
    }
}

impl StageImage {
    /// Starts from a base image's config (or an empty one for `scratch`); ONBUILD triggers
    /// never carry over.
    pub fn from_base(mut config: Config, history: Vec<History>) -> Self {
        config.on_build.clear();
        StageImage {
            config,
            history,
            ..Default::default()
        }
    }

    /// Where a stage stood at a checkpoint: its config as it was (its own ONBUILD entries
    /// kept), its history, and whether CMD was set.
    pub fn at_checkpoint(config: Config, history: Vec<History>, cmd_set: bool) -> Self {
        StageImage {
            config,
            history,
            cmd_set,
            ..Default::default()
        }
    }

    pub fn cmd_set(&self) -> bool {
        self.cmd_set
    }

    /// A history entry; a layer made by a RUN, COPY or ADD is marked ` # buildkit`.
    fn commit(&mut self, created_by: String, layer: bool) {
        let created_by = if layer {
            format!("{created_by} # buildkit")
        } else {
            created_by
        };
        self.commit_as(created_by, layer);
    }

    /// A history entry written as given (BuildKit's commitToHistory without a state).
    fn commit_as(&mut self, created_by: String, layer: bool) {
        self.history.push(History {
            created: self.created.clone(),
            created_by,
            comment: "buildkit.dockerfile.v0".into(),
            empty_layer: !layer,
        });
    }

    /// Env sets `key`.
    pub fn has_env(&self, key: &str) -> bool {
        self.config.env.iter().any(|e| env_key(e) == key)
    }

    /// Sets one variable in Env, replacing an earlier value in place.
    pub fn set_env(&mut self, key: &str, value: &str) {
        let entry = format!("{key}={value}");
        match self.config.env.iter_mut().find(|e| env_key(e) == key) {
            Some(slot) => *slot = entry,
            None => self.config.env.push(entry),
        }
    }

    pub fn env(&mut self, pairs: &[KeyValue]) {
        let mut msg = String::from("ENV");
        for p in pairs {
            msg.push_str(&format!(" {}={}", p.key, p.value));
            self.set_env(&p.key, &p.value);
        }
        self.commit(msg, false);
    }

    pub fn label(&mut self, pairs: &[KeyValue]) {
        let mut msg = String::from("LABEL");
        for p in pairs {
            msg.push_str(&format!(" {}={}", p.key, p.value));
            self.config.labels.insert(p.key.clone(), p.value.clone());
        }
        self.commit(msg, false);
    }

    pub fn maintainer(&mut self, name: &str) {
        self.author = name.to_string();
        self.commit(format!("MAINTAINER {name}"), false);
    }

    /// SHELL, `/bin/sh -c` when none is set.
    pub fn current_shell(&self) -> Vec<String> {
        if self.config.shell.is_empty() {
            vec!["/bin/sh".to_string(), "-c".to_string()]
        } else {
            self.config.shell.clone()
        }
    }

    /// The command as it runs: shell form goes through SHELL (default `/bin/sh -c`).
    pub fn with_shell(&self, cmd: &CmdLine) -> Vec<String> {
        if !cmd.prepend_shell {
            return cmd.args.clone();
        }
        let mut v = self.current_shell();
        v.push(cmd.args.join(" "));
        v
    }

    pub fn cmd(&mut self, cmd: &CmdLine) {
        let args = self.with_shell(cmd);
        self.commit(format!("CMD {}", go_quoted_list(&args)), false);
        self.config.cmd = Some(args);
        self.config.args_escaped = true;
        self.cmd_set = true;
    }

    /// ENTRYPOINT resets an inherited CMD (one set earlier in this stage stays).
    pub fn entrypoint(&mut self, cmd: &CmdLine) {
        let args = if cmd.args.is_empty() && !cmd.prepend_shell {
            vec![]
        } else {
            self.with_shell(cmd)
        };
        self.commit(format!("ENTRYPOINT {}", go_quoted_list(&args)), false);
        // `ENTRYPOINT []` clears it.
        self.config.entrypoint = if args.is_empty() { None } else { Some(args) };
        if !self.cmd_set {
            self.config.cmd = None;
        }
    }

    pub fn healthcheck(&mut self, h: &Health) {
        let hc = HealthConfig {
            test: h.test.clone(),
            interval: h.interval,
            timeout: h.timeout,
            start_period: h.start_period,
            start_interval: h.start_interval,
            retries: h.retries,
        };
        self.commit(
            format!(
                "HEALTHCHECK {{Test:[{}] Interval:{} Timeout:{} StartPeriod:{} StartInterval:{} Retries:{}}}",
                hc.test.join(" "),
                go_duration(hc.interval),
                go_duration(hc.timeout),
                go_duration(hc.start_period),
                go_duration(hc.start_interval),
                hc.retries
            ),
            false,
        );
        self.config.healthcheck = Some(hc);
    }

    pub fn user(&mut self, user: &str) {
        self.config.user = user.to_string();
        self.commit(format!("USER {user}"), false);
    }

    pub fn volume(&mut self, paths: &[String]) {
        for p in paths {
            self.config.volumes.insert(p.clone(), Empty {});
        }
        self.commit(format!("VOLUME [{}]", paths.join(" ")), false);
    }

    pub fn stop_signal(&mut self, signal: &str) -> Result<(), ConfigError> {
        if !is_signal(signal) {
            return Err(ConfigError::Signal(signal.to_string()));
        }
        self.config.stop_signal = signal.to_string();
        self.commit(format!("STOPSIGNAL {signal}"), false);
        Ok(())
    }

    pub fn shell(&mut self, shell: &[String]) {
        self.config.shell = shell.to_vec();
        self.commit(format!("SHELL [{}]", shell.join(" ")), false);
    }

    pub fn onbuild(&mut self, expression: &str) {
        self.config.on_build.push(expression.to_string());
    }

    /// EXPOSE with already expanded words: `80`, `80/udp`, `8000-8002/tcp`. The history
    /// lists the ports in the order of the words, ranges expanded, repeats kept (BuildKit's
    /// `EXPOSE %v` of its port list).
    pub fn expose(&mut self, words: &[String]) -> Result<(), ConfigError> {
        let mut ports = Vec::new();
        for w in words {
            ports.extend(parse_port_spec(w)?);
        }
        for p in &ports {
            self.config.exposed_ports.insert(p.clone(), Empty {});
        }
        self.commit(format!("EXPOSE [{}]", ports.join(" ")), false);
        Ok(())
    }

    /// WORKDIR: a relative path is taken from the current one. Returns the new absolute
    /// directory; it is a layer (the directory is created) unless it is `/`.
    pub fn workdir(&mut self, path: &str) -> (String, bool) {
        let wd = in_image_path(&self.config.working_dir, path);
        self.config.working_dir = wd.clone();
        let layer = wd != "/";
        // A layer, but BuildKit writes its entry without the ` # buildkit` mark.
        self.commit_as(format!("WORKDIR {wd}"), layer);
        (wd, layer)
    }

    /// ARG history entry: `ARG K=V ...` (keys without a value alone).
    pub fn arg(&mut self, args: &[(String, Option<String>)]) {
        let parts: Vec<String> = args
            .iter()
            .map(|(k, v)| match v {
                Some(v) => format!("{k}={v}"),
                None => k.clone(),
            })
            .collect();
        self.commit(format!("ARG {}", parts.join(" ")), false);
    }

    /// RUN history entry: the build args in scope (`|N K=V ...`), then the command.
    pub fn run(&mut self, args: &[String], build_args: &[(String, String)]) {
        let mut parts = Vec::new();
        if !build_args.is_empty() {
            parts.push(format!("|{}", build_args.len()));
            parts.extend(build_args.iter().map(|(k, v)| format!("{k}={v}")));
        }
        parts.extend(args.iter().cloned());
        self.commit(format!("RUN {}", parts.join(" ")), true);
    }

    /// COPY/ADD history entry (a layer).
    pub fn copy(&mut self, created_by: String) {
        self.commit(created_by, true);
    }
}

/// An in-image path from a Dockerfile argument (WORKDIR, a COPY/ADD destination): as written
/// when absolute, else taken from `workdir` (`/` when none is set); cleaned.
pub fn in_image_path(workdir: &str, path: &str) -> String {
    if path.starts_with('/') {
        clean(path)
    } else {
        let base = if workdir.is_empty() { "/" } else { workdir };
        clean(&format!("{base}/{path}"))
    }
}

/// The name of an Env entry (`K` of `K=V`; the whole entry without `=`).
fn env_key(entry: &str) -> &str {
    entry.split_once('=').map_or(entry, |(k, _)| k)
}

/// `80`, `80/tcp`, `8000-8002/udp` → `80/tcp` style keys, ranges expanded.
pub fn parse_port_spec(spec: &str) -> Result<Vec<String>, ConfigError> {
    let bad = || ConfigError::Port(spec.to_string());
    let (ports, proto) = match spec.split_once('/') {
        Some((p, proto)) => (p, proto.to_lowercase()),
        None => (spec, "tcp".to_string()),
    };
    if !matches!(proto.as_str(), "tcp" | "udp" | "sctp") {
        return Err(ConfigError::Proto(proto));
    }
    // An ip:hostPort:containerPort form only keeps the container port.
    let ports = ports.rsplit(':').next().unwrap_or(ports);
    let (lo, hi) = match ports.split_once('-') {
        Some((a, b)) => (a, b),
        None => (ports, ports),
    };
    let lo: u16 = lo.parse().map_err(|_| bad())?;
    let hi: u16 = hi.parse().map_err(|_| bad())?;
    if hi < lo {
        return Err(bad());
    }
    Ok((lo..=hi).map(|p| format!("{p}/{proto}")).collect())
}

fn is_signal(s: &str) -> bool {
    if let Ok(n) = s.parse::<u32>() {
        return (1..=64).contains(&n);
    }
    let name = s.strip_prefix("SIG").unwrap_or(s).to_uppercase();
    const NAMES: [&str; 33] = [
        "ABRT", "ALRM", "BUS", "CHLD", "CLD", "CONT", "FPE", "HUP", "ILL", "INT", "IO", "IOT",
        "KILL", "PIPE", "POLL", "PROF", "PWR", "QUIT", "SEGV", "STKFLT", "STOP", "SYS", "TERM",
        "TRAP", "TSTP", "TTIN", "TTOU", "URG", "USR1", "USR2", "VTALRM", "WINCH", "XCPU",
    ];
    NAMES.contains(&name.as_str())
        || name == "XFSZ"
        || name
            .strip_prefix("RTMIN")
            .is_some_and(|r| r.is_empty() || r.starts_with('+'))
        || name
            .strip_prefix("RTMAX")
            .is_some_and(|r| r.is_empty() || r.starts_with('-'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shell_form(s: &str) -> CmdLine {
        CmdLine {
            args: vec![s.into()],
            files: vec![],
            prepend_shell: true,
        }
    }

    fn exec_form(v: &[&str]) -> CmdLine {
        CmdLine {
            args: v.iter().map(|s| s.to_string()).collect(),
            files: vec![],
            prepend_shell: false,
        }
    }

    #[test]
    fn entrypoint_resets_inherited_cmd_but_not_one_from_this_stage() {
        let base = Config {
            cmd: Some(vec!["bash".into()]),
            ..Default::default()
        };
        let mut img = StageImage::from_base(base.clone(), vec![]);
        img.entrypoint(&exec_form(&["/app"]));
        assert_eq!(img.config.cmd, None);
        let mut img = StageImage::from_base(base, vec![]);
        img.cmd(&exec_form(&["--help"]));
        img.entrypoint(&shell_form("exec /app"));
        assert_eq!(img.config.cmd, Some(vec!["--help".to_string()]));
        assert_eq!(
            img.config.entrypoint,
            Some(vec!["/bin/sh".into(), "-c".into(), "exec /app".into()])
        );
        assert_eq!(
            img.history[1].created_by,
            r#"ENTRYPOINT ["/bin/sh" "-c" "exec /app"]"#
        );
        img.entrypoint(&exec_form(&[]));
        assert_eq!(img.config.entrypoint, None);
        assert_eq!(img.history[2].created_by, "ENTRYPOINT []");
    }

    #[test]
    fn shell_and_env_and_workdir() {
        let mut img = StageImage::default();
        img.shell(&["/bin/bash".into(), "-eu".into(), "-c".into()]);
        img.cmd(&shell_form("echo $HOME"));
        assert_eq!(
            img.config.cmd,
            Some(vec![
                "/bin/bash".into(),
                "-eu".into(),
                "-c".into(),
                "echo $HOME".into()
            ])
        );
        img.set_env("PATH", "/bin");
        img.env(&[KeyValue {
            key: "PATH".into(),
            value: "/opt/bin:/bin".into(),
            no_delim: false,
        }]);
        assert_eq!(img.config.env, ["PATH=/opt/bin:/bin"]);
        assert_eq!(img.workdir("/app"), ("/app".to_string(), true));
        assert_eq!(img.workdir("sub/../x"), ("/app/x".to_string(), true));
        assert_eq!(img.workdir("/"), ("/".to_string(), false));
        let last = img.history.last().expect("history");
        assert!(last.empty_layer && last.created_by == "WORKDIR /");
        assert_eq!(img.history[3].created_by, "WORKDIR /app");
        assert!(!img.history[3].empty_layer);
    }

    #[test]
    fn scratch_starts_like_buildkit_empty_image() {
        let c = scratch_config();
        assert_eq!(c.working_dir, "/");
        assert_eq!(
            c.env,
            ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]
        );
    }

    #[test]
    fn expose_volume_labels_signal_health() {
        let mut img = StageImage::default();
        img.expose(&[
            "80".into(),
            "53/udp".into(),
            "8000-8001".into(),
            "80".into(),
        ])
        .expect("ports");
        assert_eq!(
            img.config.exposed_ports.keys().cloned().collect::<Vec<_>>(),
            ["53/udp", "80/tcp", "8000/tcp", "8001/tcp"]
        );
        // As BuildKit v0.34 writes it: the words' order, ranges expanded, repeats kept.
        assert_eq!(
            img.history[0].created_by,
            "EXPOSE [80/tcp 53/udp 8000/tcp 8001/tcp 80/tcp]"
        );
        assert!(img.expose(&["http".into()]).is_err());
        img.volume(&["/data".into()]);
        assert!(img.config.volumes.contains_key("/data"));
        assert!(img.stop_signal("SIGTERM").is_ok() && img.stop_signal("9").is_ok());
        assert!(img.stop_signal("SIGNOPE").is_err());
        img.healthcheck(&Health {
            test: vec!["CMD-SHELL".into(), "true".into()],
            interval: 90_000_000_000,
            timeout: 1_500_000_000,
            start_period: 0,
            start_interval: 0,
            retries: 3,
        });
        assert_eq!(
            img.history.last().expect("h").created_by,
            "HEALTHCHECK {Test:[CMD-SHELL true] Interval:1m30s Timeout:1.5s StartPeriod:0s StartInterval:0s Retries:3}"
        );
        let json = serde_json::to_value(&img.config).expect("json");
        assert_eq!(json["Healthcheck"]["Interval"], 90_000_000_000i64);
        assert_eq!(json["StopSignal"], "9");
    }

    #[test]
    fn run_history_lists_build_args() {
        let mut img = StageImage::default();
        let args = img.with_shell(&shell_form("make"));
        img.run(&args, &[("V".into(), "1".into())]);
        assert_eq!(
            img.history[0].created_by,
            "RUN |1 V=1 /bin/sh -c make # buildkit"
        );
        assert!(!img.history[0].empty_layer);
    }

    #[test]
    fn in_image_paths_from_workdir() {
        assert_eq!(in_image_path("/app", "/etc/x"), "/etc/x");
        assert_eq!(in_image_path("/app", "sub/../x/"), "/app/x");
        assert_eq!(in_image_path("/app", "."), "/app");
        assert_eq!(in_image_path("", "x"), "/x");
        assert_eq!(in_image_path("/", "../.."), "/");
        assert_eq!(in_image_path("/app", "/a//b/./c"), "/a/b/c");
    }

    #[test]
    fn config_errors_read_as_docker_writes_them() {
        let mut img = StageImage::default();
        let err = |r: Result<(), ConfigError>| r.map_err(|e| e.to_string());
        assert_eq!(
            err(img.stop_signal("SIGNOPE")),
            Err("Invalid signal: SIGNOPE".into())
        );
        assert_eq!(
            err(img.expose(&["80/QUIC".into()])),
            Err("Invalid proto: quic".into())
        );
        assert_eq!(
            err(img.expose(&["90-80".into()])),
            Err("Invalid containerPort: 90-80".into())
        );
        assert_eq!(
            parse_port_spec("127.0.0.1:8080:80/udp"),
            Ok(vec!["80/udp".to_string()])
        );
        assert!(img.history.is_empty());
    }

    #[test]
    fn env_names_and_shell() {
        let mut img = StageImage::default();
        assert_eq!(img.current_shell(), ["/bin/sh", "-c"]);
        img.set_env("A", "1=2");
        img.config.env.push("BARE".into());
        assert!(img.has_env("A") && img.has_env("BARE"));
        assert!(!img.has_env("1") && !img.has_env("AB"));
        img.shell(&["pwsh".into(), "-c".into()]);
        assert_eq!(img.current_shell(), ["pwsh", "-c"]);
    }

    #[test]
    fn durations_print_like_go() {
        for (ns, s) in [
            (0, "0s"),
            (1_500, "1.5µs"),
            (2_000_000, "2ms"),
            (61_000_000_000, "1m1s"),
            (3_600_000_000_000, "1h0m0s"),
        ] {
            assert_eq!(go_duration(ns), s);
        }
    }
}
