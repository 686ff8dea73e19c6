//! AST to typed instructions grouped into stages, as BuildKit's `instructions` package does
//! it: flag validation, argument counts, heredoc sources, RUN mounts, HEALTHCHECK options.
//! Nothing is expanded here; see [`super::super::plan`]. Source:
//! `frontend/dockerfile/instructions/{parse,bflag,commands*}.go`.

use std::collections::BTreeMap;

use serde::Serialize;

use super::parser::{Node, chomp_heredoc, parse_heredoc};
use crate::gocompat::trim_space;

/// Where an instruction is in the Dockerfile (1-based, inclusive).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Span {
    pub start: usize,
    pub end: usize,
}

/// An error in one instruction, with its place.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct InstructionError {
    pub line: usize,
    /// The instruction keyword as written (`COPY`), empty where none applies.
    pub instruction: String,
    pub message: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KeyValue {
    pub key: String,
    pub value: String,
    /// The legacy `ENV key value` form (no `=`).
    pub no_delim: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ArgDef {
    pub key: String,
    pub value: Option<String>,
}

/// An inline file: a heredoc body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct InlineFile {
    pub name: String,
    pub data: String,
    pub chomp: bool,
    pub expand: bool,
}

/// A command line in exec form, or in shell form (`prepend_shell`: run through SHELL).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CmdLine {
    pub args: Vec<String>,
    pub files: Vec<InlineFile>,
    pub prepend_shell: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SourcesAndDest {
    pub dest: String,
    pub sources: Vec<String>,
    /// Heredoc sources, written as files named after their delimiter.
    pub contents: Vec<InlineFile>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Copy {
    pub paths: SourcesAndDest,
    pub from: Option<String>,
    pub chown: Option<String>,
    pub chmod: Option<String>,
    pub link: bool,
    pub parents: bool,
    pub exclude: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Add {
    pub paths: SourcesAndDest,
    pub chown: Option<String>,
    pub chmod: Option<String>,
    pub link: bool,
    pub keep_git_dir: Option<bool>,
    pub checksum: Option<String>,
    pub unpack: Option<bool>,
    pub exclude: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Run {
    pub cmd: CmdLine,
    /// `--mount` values, unexpanded: they are expanded with the stage's variables and parsed
    /// by [`parse_mount`] when the stage is planned or run.
    pub mounts: Vec<String>,
    pub network: String,
    pub security: String,
    pub devices: Vec<String>,
}

/// Health check options; durations in nanoseconds, 0 for "inherit the default".
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Health {
    /// `["NONE"]`, `["CMD", ...]` or `["CMD-SHELL", "..."]`, as in the image config.
    pub test: Vec<String>,
    pub interval: i64,
    pub timeout: i64,
    pub start_period: i64,
    pub start_interval: i64,
    pub retries: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "camelCase")]
pub enum Instruction {
    Env {
        pairs: Vec<KeyValue>,
    },
    Maintainer {
        name: String,
    },
    Label {
        pairs: Vec<KeyValue>,
    },
    Add(Add),
    Copy(Copy),
    /// The trigger as text, to be parsed again where it runs.
    Onbuild {
        expression: String,
    },
    Workdir {
        path: String,
    },
    Run(Run),
    Cmd(CmdLine),
    Entrypoint(CmdLine),
    Healthcheck(Health),
    Expose {
        ports: Vec<String>,
    },
    User {
        user: String,
    },
    Volume {
        paths: Vec<String>,
    },
    StopSignal {
        signal: String,
    },
    Arg {
        args: Vec<ArgDef>,
    },
    Shell {
        shell: Vec<String>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Command {
    pub instruction: Instruction,
    /// The instruction keyword as written.
    pub keyword: String,
    /// The instruction's text, flags and arguments as one line.
    pub original: String,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Stage {
    /// Lower-cased `AS` name.
    pub name: Option<String>,
    /// The FROM argument, unexpanded.
    pub base_name: String,
    pub platform: Option<String>,
    pub commands: Vec<Command>,
    pub span: Span,
}

/// A Dockerfile as stages, plus the ARGs before the first FROM.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Dockerfile {
    pub meta_args: Vec<(Vec<ArgDef>, Span)>,
    pub stages: Vec<Stage>,
}

type Res<T> = Result<T, String>;

/// Typed flag parsing (`BFlags`): unknown, repeated or malformed flags are errors.
struct Flags<'a> {
    given: &'a [String],
    known: BTreeMap<&'static str, FlagKind>,
    values: BTreeMap<&'static str, Vec<String>>,
}

#[derive(Clone, Copy, PartialEq)]
enum FlagKind {
    Bool,
    Str,
    /// May be repeated (`--mount`, `--exclude`, `--device`).
    Strings,
}

impl<'a> Flags<'a> {
    fn new(given: &'a [String], known: &[(&'static str, FlagKind)]) -> Self {
        Flags {
            given,
            known: known.iter().copied().collect(),
            values: BTreeMap::new(),
        }
    }

    fn parse(mut self) -> Res<Self> {
        for a in self.given {
            if a == "--" {
                break;
            }
            let Some(body) = a.strip_prefix("--") else {
                return Err(format!("arg should start with -- : {a}"));
            };
            let (name, value) = match body.split_once('=') {
                Some((n, v)) => (n, Some(v)),
                None => (body, None),
            };
            let Some((&key, &kind)) = self.known.get_key_value(name) else {
                return Err(format!("unknown flag: --{name}"));
            };
            let slot = self.values.entry(key).or_default();
            if !slot.is_empty() && kind != FlagKind::Strings {
                return Err(format!("duplicate flag specified: --{name}"));
            }
            match kind {
                FlagKind::Bool => {
                    if value == Some("") {
                        return Err(format!("missing a value on flag: --{name}"));
                    }
                    let v = match value.map(str::to_lowercase).as_deref() {
                        None | Some("true") => "true",
                        Some("false") => "false",
                        Some(_) => {
                            return Err(format!(
                                "expecting boolean value for flag --{name}, not: {}",
                                value.unwrap_or_default()
                            ));
                        }
                    };
                    slot.push(v.to_string());
                }
                FlagKind::Str | FlagKind::Strings => match value {
                    Some(v) => slot.push(v.to_string()),
                    None => return Err(format!("missing a value on flag: --{name}")),
                },
            }
        }
        Ok(self)
    }

    fn string(&self, name: &str) -> Option<String> {
        self.values
            .get(name)
            .and_then(|v| v.last())
            .filter(|v| !v.is_empty())
            .cloned()
    }

    fn strings(&self, name: &str) -> Vec<String> {
        self.values.get(name).cloned().unwrap_or_default()
    }

    /// `Some(value)` when the flag was given.
    fn bool_opt(&self, name: &str) -> Option<bool> {
        self.values
            .get(name)
            .and_then(|v| v.last())
            .map(|v| v == "true")
    }

    fn bool(&self, name: &str) -> bool {
        self.bool_opt(name).unwrap_or(false)
    }
}

/// Builds the typed stages from a parsed AST (`instructions.Parse`).
pub fn from_ast(ast: &Node) -> Result<Dockerfile, InstructionError> {
    let mut meta_args = Vec::new();
    let mut stages: Vec<Stage> = Vec::new();
    for node in &ast.children {
        let span = Span {
            start: node.start_line,
            end: node.end_line,
        };
        let fail = |message: String| InstructionError {
            line: node.start_line,
            instruction: node.value.clone(),
            message,
        };
        if node.value.eq_ignore_ascii_case("from") {
            stages.push(parse_from(node).map_err(fail)?);
            continue;
        }
        let cmd = parse_command(node).map_err(fail)?;
        match stages.last_mut() {
            Some(stage) => stage.commands.push(cmd),
            None => match cmd.instruction {
                Instruction::Arg { args } => meta_args.push((args, span)),
                _ => {
                    return Err(fail(
                        "no build stage in current context: the first instruction must be FROM \
                         (only ARG may come before it)"
                            .into(),
                    ));
                }
            },
        }
    }
    Ok(Dockerfile { meta_args, stages })
}

fn is_valid_stage_name(s: &str) -> bool {
    let mut cs = s.chars();
    cs.next().is_some_and(|c| c.is_ascii_lowercase())
        && cs.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '-' | '_' | '.'))
}

fn parse_from(node: &Node) -> Res<Stage> {
    let args = node.args();
    let name = match args.as_slice() {
        [_, as_kw, name] if as_kw.eq_ignore_ascii_case("as") => {
            let lower = name.to_lowercase();
            if !is_valid_stage_name(&lower) {
                return Err(format!(
                    "invalid name for build stage: {}, name can't start with a number or contain symbols",
                    crate::gocompat::quote(name)
                ));
            }
            Some(lower)
        }
        [_] => None,
        _ => return Err("FROM requires either one or three arguments".into()),
    };
    let flags = Flags::new(&node.flags, &[("platform", FlagKind::Str)]).parse()?;
    Ok(Stage {
        name,
        base_name: args[0].clone(),
        platform: flags.string("platform"),
        commands: Vec::new(),
        span: Span {
            start: node.start_line,
            end: node.end_line,
        },
    })
}

/// Parses one non-FROM instruction node. Also used for ONBUILD triggers.
pub fn parse_command(node: &Node) -> Res<Command> {
    let args = node.args();
    let kw = node.value.to_lowercase();
    let no_flags = || Flags::new(&node.flags, &[]).parse().map(|_| ());
    let instruction = match kw.as_str() {
        "env" => {
            no_flags()?;
            Instruction::Env {
                pairs: parse_kvps(&args, "ENV")?,
            }
        }
        "maintainer" => {
            exactly_one(&args, "MAINTAINER")?;
            no_flags()?;
            Instruction::Maintainer {
                name: args[0].clone(),
            }
        }
        "label" => {
            no_flags()?;
            Instruction::Label {
                pairs: parse_kvps(&args, "LABEL")?,
            }
        }
        "add" => {
            if args.len() < 2 {
                return Err(no_destination("ADD"));
            }
            let f = Flags::new(
                &node.flags,
                &[
                    ("chown", FlagKind::Str),
                    ("chmod", FlagKind::Str),
                    ("link", FlagKind::Bool),
                    ("keep-git-dir", FlagKind::Bool),
                    ("checksum", FlagKind::Str),
                    ("unpack", FlagKind::Bool),
                    ("exclude", FlagKind::Strings),
                ],
            )
            .parse()?;
            Instruction::Add(Add {
                paths: sources_and_dest(node, &args, "ADD")?,
                chown: f.string("chown"),
                chmod: f.string("chmod"),
                link: f.bool("link"),
                keep_git_dir: f.bool_opt("keep-git-dir"),
                checksum: f.string("checksum"),
                unpack: f.bool_opt("unpack"),
                exclude: f.strings("exclude"),
            })
        }
        "copy" => {
            if args.len() < 2 {
                return Err(no_destination("COPY"));
            }
            let f = Flags::new(
                &node.flags,
                &[
                    ("chown", FlagKind::Str),
                    ("from", FlagKind::Str),
                    ("chmod", FlagKind::Str),
                    ("link", FlagKind::Bool),
                    ("exclude", FlagKind::Strings),
                    ("parents", FlagKind::Bool),
                ],
            )
            .parse()?;
            Instruction::Copy(Copy {
                paths: sources_and_dest(node, &args, "COPY")?,
                from: f.string("from"),
                chown: f.string("chown"),
                chmod: f.string("chmod"),
                link: f.bool("link"),
                parents: f.bool("parents"),
                exclude: f.strings("exclude"),
            })
        }
        "onbuild" => {
            let Some(first) = args.first() else {
                return Err(at_least_one("ONBUILD"));
            };
            no_flags()?;
            let trigger = trim_space(first).to_uppercase();
            match trigger.as_str() {
                "ONBUILD" => {
                    return Err("Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed".into());
                }
                "MAINTAINER" | "FROM" => {
                    return Err(format!("{trigger} isn't allowed as an ONBUILD trigger"));
                }
                _ => {}
            }
            let mut expression = strip_onbuild_keyword(&node.original).to_string();
            for h in &node.heredocs {
                expression.push('\n');
                expression.push_str(&h.content);
                expression.push_str(&h.name);
            }
            Instruction::Onbuild { expression }
        }
        "workdir" => {
            exactly_one(&args, "WORKDIR")?;
            no_flags()?;
            Instruction::Workdir {
                path: args[0].clone(),
            }
        }
        "run" => {
            let f = Flags::new(
                &node.flags,
                &[
                    ("mount", FlagKind::Strings),
                    ("network", FlagKind::Str),
                    ("security", FlagKind::Str),
                    ("device", FlagKind::Strings),
                ],
            )
            .parse()?;
            let mounts = f.strings("mount");
            for m in &mounts {
                check_mount_from(m)?;
            }
            let network = f.string("network").unwrap_or_else(|| "default".into());
            if !matches!(network.as_str(), "default" | "none" | "host") {
                return Err(format!(
                    "invalid network mode {}",
                    crate::gocompat::quote(&network)
                ));
            }
            let security = f.string("security").unwrap_or_else(|| "sandbox".into());
            if !matches!(security.as_str(), "sandbox" | "insecure") {
                return Err(format!("security {security} is not valid"));
            }
            Instruction::Run(Run {
                cmd: cmd_line(node, &args),
                mounts,
                network,
                security,
                devices: f.strings("device"),
            })
        }
        "cmd" => {
            no_flags()?;
            Instruction::Cmd(cmd_line(node, &args))
        }
        "entrypoint" => {
            no_flags()?;
            Instruction::Entrypoint(cmd_line(node, &args))
        }
        "healthcheck" => Instruction::Healthcheck(parse_healthcheck(node, &args)?),
        "expose" => {
            if args.is_empty() {
                return Err(at_least_one("EXPOSE"));
            }
            no_flags()?;
            let mut ports = args.clone();
            ports.sort();
            Instruction::Expose { ports }
        }
        "user" => {
            exactly_one(&args, "USER")?;
            no_flags()?;
            Instruction::User {
                user: args[0].clone(),
            }
        }
        "volume" => {
            if args.is_empty() {
                return Err(at_least_one("VOLUME"));
            }
            no_flags()?;
            let mut paths = Vec::new();
            for v in &args {
                let v = trim_space(v);
                if v.is_empty() {
                    return Err("VOLUME specified can not be an empty string".into());
                }
                paths.push(v.to_string());
            }
            Instruction::Volume { paths }
        }
        "stopsignal" => {
            exactly_one(&args, "STOPSIGNAL")?;
            Instruction::StopSignal {
                signal: args[0].clone(),
            }
        }
        "arg" => {
            if args.is_empty() {
                return Err(at_least_one("ARG"));
            }
            let mut defs = Vec::new();
            for a in &args {
                defs.push(match a.split_once('=') {
                    Some(("", _)) => return Err("ARG names can not be blank".into()),
                    Some((k, v)) => ArgDef {
                        key: k.into(),
                        value: Some(v.into()),
                    },
                    None => ArgDef {
                        key: a.clone(),
                        value: None,
                    },
                });
            }
            Instruction::Arg { args: defs }
        }
        "shell" => {
            no_flags()?;
            let c = cmd_line(node, &args);
            if c.args.is_empty() {
                return Err(at_least_one("SHELL"));
            }
            if !node.json {
                return Err("SHELL requires the arguments to be in JSON form".into());
            }
            Instruction::Shell { shell: c.args }
        }
        _ => return Err(format!("unknown instruction: {}", node.value)),
    };
    Ok(Command {
        instruction,
        keyword: node.value.clone(),
        original: node.original.clone(),
        span: Span {
            start: node.start_line,
            end: node.end_line,
        },
    })
}

fn strip_onbuild_keyword(original: &str) -> &str {
    let s = original.trim_start_matches(crate::gocompat::is_space);
    match s.get(..7) {
        Some(kw) if kw.eq_ignore_ascii_case("onbuild") => {
            s[7..].trim_start_matches(crate::gocompat::is_space)
        }
        _ => original,
    }
}

fn at_least_one(cmd: &str) -> String {
    format!("{cmd} requires at least one argument")
}

fn exactly_one(args: &[String], cmd: &str) -> Res<()> {
    if args.len() != 1 {
        return Err(format!("{cmd} requires exactly one argument"));
    }
    Ok(())
}

fn no_destination(cmd: &str) -> String {
    format!(
        "{cmd} requires at least two arguments, but only one was provided. Destination could not be determined"
    )
}

fn parse_kvps(args: &[String], cmd: &str) -> Res<Vec<KeyValue>> {
    if args.is_empty() {
        return Err(at_least_one(cmd));
    }
    if !args.len().is_multiple_of(3) {
        return Err(format!("Bad input to {cmd}, too many arguments"));
    }
    args.chunks(3)
        .map(|c| {
            if c[0].is_empty() {
                return Err(format!("{cmd} names can not be blank"));
            }
            Ok(KeyValue {
                key: c[0].clone(),
                value: c[1].clone(),
                no_delim: c[2].is_empty(),
            })
        })
        .collect()
}

fn sources_and_dest(node: &Node, args: &[String], cmd: &str) -> Res<SourcesAndDest> {
    let (dest, srcs) = args.split_last().ok_or_else(|| no_destination(cmd))?;
    if parse_heredoc(dest).ok().flatten().is_some() {
        return Err(format!("{cmd} cannot accept a heredoc as a destination"));
    }
    let mut sources = Vec::new();
    let mut contents = Vec::new();
    for src in srcs {
        match parse_heredoc(src).ok().flatten() {
            Some(h) => {
                let body = node.heredocs.iter().find(|d| d.name == h.name);
                let data = body.map(|d| d.content.clone()).unwrap_or_default();
                contents.push(InlineFile {
                    data: if h.chomp { chomp_heredoc(&data) } else { data },
                    name: h.name,
                    chomp: h.chomp,
                    expand: h.expand,
                });
            }
            None => sources.push(src.clone()),
        }
    }
    Ok(SourcesAndDest {
        dest: dest.clone(),
        sources,
        contents,
    })
}

fn cmd_line(node: &Node, args: &[String]) -> CmdLine {
    let args = if node.json || args.is_empty() {
        args.to_vec()
    } else {
        vec![args.join(" ")]
    };
    CmdLine {
        args,
        files: node
            .heredocs
            .iter()
            .map(|h| InlineFile {
                name: h.name.clone(),
                data: h.content.clone(),
                chomp: h.chomp,
                expand: h.expand,
            })
            .collect(),
        prepend_shell: !node.json,
    }
}

fn parse_healthcheck(node: &Node, args: &[String]) -> Res<Health> {
    let Some(typ) = args.first() else {
        return Err(at_least_one("HEALTHCHECK"));
    };
    let typ = typ.to_uppercase();
    let rest = &args[1..];
    if typ == "NONE" {
        if !rest.is_empty() {
            return Err("HEALTHCHECK NONE takes no arguments".into());
        }
        return Ok(Health {
            test: vec![typ],
            interval: 0,
            timeout: 0,
            start_period: 0,
            start_interval: 0,
            retries: 0,
        });
    }
    let f = Flags::new(
        &node.flags,
        &[
            ("interval", FlagKind::Str),
            ("timeout", FlagKind::Str),
            ("start-period", FlagKind::Str),
            ("start-interval", FlagKind::Str),
            ("retries", FlagKind::Str),
        ],
    )
    .parse()?;
    if typ != "CMD" {
        return Err(format!("Unknown type \"{typ}\" in HEALTHCHECK (try CMD)"));
    }
    let cmd = if node.json || rest.is_empty() {
        rest.to_vec()
    } else {
        vec![rest.join(" ")]
    };
    if cmd.is_empty() {
        return Err("Missing command after HEALTHCHECK CMD".into());
    }
    let mut test = vec![if node.json {
        "CMD".to_string()
    } else {
        "CMD-SHELL".to_string()
    }];
    test.extend(cmd);
    let interval = |name: &str| -> Res<i64> {
        let Some(v) = f.string(name) else {
            return Ok(0);
        };
        let d = parse_go_duration(&v)?;
        if d != 0 && d < 1_000_000 {
            return Err(format!("Interval \"{name}\" cannot be less than 1ms"));
        }
        Ok(d)
    };
    let retries = match f.string("retries") {
        None => 0,
        Some(v) => {
            let r: i64 = v
                .parse()
                .ok()
                .filter(|r: &i64| i32::try_from(*r).is_ok())
                .ok_or_else(|| format!("strconv.ParseInt: parsing \"{v}\": invalid syntax"))?;
            if r < 0 {
                return Err(format!("--retries cannot be negative ({r})"));
            }
            r
        }
    };
    Ok(Health {
        test,
        interval: interval("interval")?,
        timeout: interval("timeout")?,
        start_period: interval("start-period")?,
        start_interval: interval("start-interval")?,
        retries,
    })
}

/// Go's `time.ParseDuration`, in nanoseconds.
pub fn parse_go_duration(s: &str) -> Res<i64> {
    let bad = || format!("time: invalid duration \"{s}\"");
    let (neg, mut rest) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    if rest == "0" {
        return Ok(0);
    }
    if rest.is_empty() {
        return Err(bad());
    }
    let mut total: f64 = 0.0;
    while !rest.is_empty() {
        let num_end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let num = &rest[..num_end];
        if num.is_empty() || num == "." {
            return Err(bad());
        }
        let value: f64 = num.parse().map_err(|_| bad())?;
        rest = &rest[num_end..];
        let unit_end = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let unit = match &rest[..unit_end] {
            "ns" => 1.0,
            "us" | "µs" | "μs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            "" => return Err(format!("time: missing unit in duration \"{s}\"")),
            u => return Err(format!("time: unknown unit \"{u}\" in duration \"{s}\"")),
        };
        rest = &rest[unit_end..];
        total += value * unit;
    }
    if total > i64::MAX as f64 {
        return Err(bad());
    }
    let t = total.round() as i64;
    Ok(if neg { -t } else { t })
}

/// A parsed `RUN --mount`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct Mount {
    #[serde(rename = "type")]
    pub kind: String,
    pub from: Option<String>,
    pub source: Option<String>,
    pub target: Option<String>,
    pub read_only: bool,
    pub size_limit: Option<i64>,
    pub id: Option<String>,
    pub sharing: Option<String>,
    pub required: bool,
    pub env: Option<String>,
    pub mode: Option<u32>,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
}

/// At parse time BuildKit checks only that `from=` has no variable in it.
fn check_mount_from(spec: &str) -> Res<()> {
    for field in csv_fields(spec)? {
        if let Some((k, v)) = field.split_once('=')
            && k.eq_ignore_ascii_case("from")
            && v.find('$').is_some_and(|i| i != v.len() - 1)
        {
            return Err(
                "'from' doesn't support variable expansion, define alias stage instead".into(),
            );
        }
    }
    Ok(())
}

/// Splits one CSV record (Go's `encoding/csv` rules: `"..."` quoting, `""` inside quotes).
fn csv_fields(s: &str) -> Res<Vec<String>> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut chars = s.chars().peekable();
    let mut at_start = true;
    loop {
        match chars.next() {
            None => {
                out.push(cur);
                return Ok(out);
            }
            Some(',') => {
                out.push(std::mem::take(&mut cur));
                at_start = true;
            }
            Some('"') if at_start => {
                loop {
                    match chars.next() {
                        None => {
                            return Err(format!(
                                "failed to parse csv mounts: extraneous or missing \" in quoted-field: {s}"
                            ));
                        }
                        Some('"') if chars.peek() == Some(&'"') => {
                            chars.next();
                            cur.push('"');
                        }
                        Some('"') => break,
                        Some(c) => cur.push(c),
                    }
                }
                if !matches!(chars.peek(), None | Some(',')) {
                    return Err(format!(
                        "failed to parse csv mounts: extraneous or missing \" in quoted-field: {s}"
                    ));
                }
                at_start = false;
            }
            Some('"') => {
                return Err(format!(
                    "failed to parse csv mounts: bare \" in non-quoted-field: {s}"
                ));
            }
            Some(c) => {
                cur.push(c);
                at_start = false;
            }
        }
    }
}

fn parse_go_bool(v: &str) -> Option<bool> {
    match v {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}

/// docker/go-units `RAMInBytes`: `64m`, `1.5g`, `512KiB` (binary multiples).
fn ram_in_bytes(s: &str) -> Option<i64> {
    let t = s.trim();
    let num_end = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, suffix) = t.split_at(num_end);
    let value: f64 = num.parse().ok()?;
    let suffix = suffix.strip_prefix(' ').unwrap_or(suffix).to_lowercase();
    let suffix = suffix.trim_end_matches('b').trim_end_matches('i');
    let mult: f64 = match suffix {
        "" => 1.0,
        "k" => 1024.0,
        "m" => 1024f64.powi(2),
        "g" => 1024f64.powi(3),
        "t" => 1024f64.powi(4),
        "p" => 1024f64.powi(5),
        _ => return None,
    };
    Some((value * mult) as i64)
}

/// Parses a `--mount` value whose field values are already expanded.
pub fn parse_mount(spec: &str) -> Res<Mount> {
    parse_mount_with(spec, &mut |v| Ok(v.to_string()))
}

/// Parses a `--mount` value, expanding each field's value with `expand` first
/// (`parseMount` with an expander).
pub fn parse_mount_with(spec: &str, expand: &mut dyn FnMut(&str) -> Res<String>) -> Res<Mount> {
    let mut m = Mount {
        kind: "bind".into(),
        ..Mount::default()
    };
    let mut ro_auto = true;
    let file_info = |m: &Mount| matches!(m.kind.as_str(), "secret" | "ssh" | "cache");
    for field in csv_fields(spec)? {
        let (key, value) = match field.split_once('=') {
            Some((k, v)) => (k.to_lowercase(), expand(v)?),
            None => {
                match field.to_lowercase().as_str() {
                    "readonly" | "ro" => {
                        m.read_only = true;
                        ro_auto = false;
                    }
                    "readwrite" | "rw" => {
                        m.read_only = false;
                        ro_auto = false;
                    }
                    "required" if matches!(m.kind.as_str(), "secret" | "ssh") => m.required = true,
                    "required" => {
                        return Err(format!(
                            "unexpected key 'required' for mount type '{}'",
                            m.kind
                        ));
                    }
                    _ => return Err(format!("invalid field '{field}' must be a key=value pair")),
                }
                continue;
            }
        };
        let bool_value =
            |v: &str| parse_go_bool(v).ok_or_else(|| format!("invalid value for {key}: {v}"));
        match key.as_str() {
            "type" => {
                let t = value.to_lowercase();
                if !matches!(t.as_str(), "bind" | "cache" | "tmpfs" | "secret" | "ssh") {
                    return Err(format!("unsupported mount type \"{value}\""));
                }
                m.kind = t;
            }
            "from" => m.from = Some(value),
            "source" | "src" => m.source = Some(value),
            "target" | "dst" | "destination" => m.target = Some(value),
            "readonly" | "ro" => {
                m.read_only = bool_value(&value)?;
                ro_auto = false;
            }
            "readwrite" | "rw" => {
                m.read_only = !bool_value(&value)?;
                ro_auto = false;
            }
            "required" => {
                if !matches!(m.kind.as_str(), "secret" | "ssh") {
                    return Err(format!(
                        "unexpected key 'required' for mount type '{}'",
                        m.kind
                    ));
                }
                m.required = bool_value(&value)?;
            }
            "size" => {
                if m.kind != "tmpfs" {
                    return Err(format!("unexpected key 'size' for mount type '{}'", m.kind));
                }
                m.size_limit = Some(
                    ram_in_bytes(&value)
                        .ok_or_else(|| format!("invalid value for size: {value}"))?,
                );
            }
            "id" => m.id = Some(value),
            "sharing" => {
                let v = value.to_lowercase();
                if !matches!(v.as_str(), "shared" | "private" | "locked") {
                    return Err(format!("unsupported sharing value \"{value}\""));
                }
                m.sharing = Some(v);
            }
            "mode" => {
                m.mode = Some(
                    u32::from_str_radix(&value, 8)
                        .map_err(|_| format!("invalid value {value} for mode"))?,
                );
            }
            "uid" => {
                m.uid = Some(
                    value
                        .parse()
                        .map_err(|_| format!("invalid value {value} for uid"))?,
                )
            }
            "gid" => {
                m.gid = Some(
                    value
                        .parse()
                        .map_err(|_| format!("invalid value {value} for gid"))?,
                )
            }
            "env" => m.env = Some(value),
            _ => return Err(format!("unexpected key '{key}' in '{field}'")),
        }
    }
    if !file_info(&m) {
        for (set, what) in [
            (m.mode.is_some(), "mode"),
            (m.uid.is_some(), "uid"),
            (m.gid.is_some(), "gid"),
        ] {
            if set {
                return Err(format!("{what} not allowed for \"{}\" type mounts", m.kind));
            }
        }
    }
    if ro_auto {
        m.read_only = !matches!(m.kind.as_str(), "cache" | "tmpfs");
    }
    if m.kind == "secret" {
        if m.from.is_some() {
            return Err("secret mount should not have a from".into());
        }
        if m.sharing.is_some() {
            return Err("secret mount should not define sharing".into());
        }
        if m.source.is_none() && m.target.is_none() && m.id.is_none() {
            return Err("invalid secret mount. one of source, target required".into());
        }
        if m.source.is_some() && m.id.is_some() {
            return Err("both source and id can't be set".into());
        }
    }
    if m.sharing.is_some() && m.kind != "cache" {
        return Err(format!("invalid cache sharing set for {} mount", m.kind));
    }
    Ok(m)
}

#[cfg(test)]
mod tests {
    use super::super::parser::parse;
    use super::*;

    fn df(src: &str) -> Result<Dockerfile, InstructionError> {
        from_ast(&parse(src).expect("parses").ast)
    }

    #[test]
    fn flags_are_validated() {
        let e = df("FROM a\nCOPY --nope=1 x y\n").expect_err("unknown flag");
        assert_eq!((e.line, e.message.as_str()), (2, "unknown flag: --nope"));
        let e = df("FROM a\nCOPY --from=a --from=b x y\n").expect_err("dup");
        assert_eq!(e.message, "duplicate flag specified: --from");
        let e = df("FROM a\nCOPY --link=maybe x y\n").expect_err("bool");
        assert!(e.message.starts_with("expecting boolean value"));
        let d = df("FROM a\nCOPY --exclude=a --exclude=b --link x y\n").expect("ok");
        let Instruction::Copy(c) = &d.stages[0].commands[0].instruction else {
            panic!()
        };
        assert_eq!(c.exclude, ["a", "b"]);
        assert!(c.link);
    }

    #[test]
    fn mounts_parse_like_buildkit() {
        let m = parse_mount("type=cache,target=/root/.cache,id=go,sharing=locked,uid=1000")
            .expect("ok");
        assert_eq!(
            (m.kind.as_str(), m.read_only, m.uid),
            ("cache", false, Some(1000))
        );
        let m = parse_mount("type=secret,id=tok").expect("ok");
        assert!(m.read_only);
        assert!(parse_mount("type=bind,uid=1").is_err());
        assert!(parse_mount("type=secret,from=x,id=a").is_err());
        assert_eq!(
            parse_mount("type=tmpfs,target=/t,size=64m")
                .expect("ok")
                .size_limit,
            Some(64 << 20)
        );
        assert!(parse_mount("type=nfs").is_err());
        let e = df("FROM a\nRUN --mount=from=$X,target=/x true\n").expect_err("var in from");
        assert!(e.message.contains("doesn't support variable expansion"));
    }

    #[test]
    fn healthcheck_options() {
        let d = df("FROM a\nHEALTHCHECK --interval=5m --timeout=3s --retries=3 CMD curl -f http://localhost/ || exit 1\n")
            .expect("ok");
        let Instruction::Healthcheck(h) = &d.stages[0].commands[0].instruction else {
            panic!()
        };
        assert_eq!(h.test, ["CMD-SHELL", "curl -f http://localhost/ || exit 1"]);
        assert_eq!(
            (h.interval, h.timeout, h.retries),
            (300_000_000_000, 3_000_000_000, 3)
        );
        assert!(df("FROM a\nHEALTHCHECK NONE x\n").is_err());
        assert!(df("FROM a\nHEALTHCHECK --interval=1us CMD x\n").is_err());
    }

    #[test]
    fn errors_name_the_line() {
        let e = df("FROM a\nRUN x\nFOO bar\n").expect_err("unknown");
        assert_eq!(
            (e.line, e.message.as_str()),
            (3, "unknown instruction: FOO")
        );
        let e = df("FROM a\n\nCOPY x\n").expect_err("no dest");
        assert_eq!(e.line, 3);
        let e = df("FROM a AS 1x\n").expect_err("bad name");
        assert!(e.message.contains("invalid name for build stage"));
        assert!(df("RUN x\nFROM a\n").is_err());
        assert!(df("FROM a\nSHELL /bin/sh -c\n").is_err());
        assert!(df("FROM a\nCOPY <<EOF <<X\nEOF\nX\n").is_err());
    }

    #[test]
    fn heredoc_sources_become_inline_files() {
        let d = df("FROM a\nCOPY <<-EOT /app/conf\n\tkey=$V\n\tEOT\n").expect("ok");
        let Instruction::Copy(c) = &d.stages[0].commands[0].instruction else {
            panic!()
        };
        assert!(c.paths.sources.is_empty());
        assert_eq!(c.paths.contents[0].data, "key=$V\n");
        assert!(c.paths.contents[0].expand);
        let d = df("FROM a\nONBUILD RUN <<EOF\necho hi\nEOF\n").expect("ok");
        assert_eq!(
            d.stages[0].commands[0].instruction,
            Instruction::Onbuild {
                expression: "RUN <<EOF\necho hi\nEOF".into()
            }
        );
    }

    #[test]
    fn durations() {
        assert_eq!(parse_go_duration("1h30m"), Ok(5_400_000_000_000));
        assert_eq!(parse_go_duration("1.5s"), Ok(1_500_000_000));
        assert!(parse_go_duration("10").is_err());
        assert!(parse_go_duration("").is_err());
    }
}
