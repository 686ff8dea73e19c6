//! One AST node to one typed instruction, as BuildKit's `instructions/parse.go` does it:
//! [`parse_command`] dispatches on the keyword to one `parse_x` function per instruction
//! (parse.go:82-143), each checking its flags and argument count with BuildKit's messages.

use super::flags::{FlagError, FlagKind, Flags};
use super::mount::{MountError, check_mount_from};
use super::run::{NetworkMode, RunFlagError, SecurityMode};
use super::{
    Add, ArgDef, CmdLine, Command, Copy, Health, InlineFile, Instruction, KeyValue, Run,
    SourcesAndDest, Span, Stage,
};
use crate::dockerfile::parser::{Node, chomp_heredoc, parse_heredoc};
use crate::gocompat::{DurationError, is_space, parse_duration, quote, trim_space};

/// What is wrong with one instruction, with BuildKit's message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CommandError {
    #[error(transparent)]
    Flag(#[from] FlagError),
    #[error(transparent)]
    Mount(#[from] MountError),
    #[error(transparent)]
    RunFlag(#[from] RunFlagError),
    #[error(transparent)]
    Duration(#[from] DurationError),
    #[error("unknown instruction: {0}")]
    Unknown(String),
    #[error(
        "no build stage in current context: the first instruction must be FROM (only ARG may come before it)"
    )]
    NoStage,
    #[error(
        "invalid name for build stage: {}, name can't start with a number or contain symbols",
        quote(.0)
    )]
    StageName(String),
    #[error("FROM requires either one or three arguments")]
    FromArguments,
    #[error("{0} requires at least one argument")]
    AtLeastOne(&'static str),
    #[error("{0} requires exactly one argument")]
    ExactlyOne(&'static str),
    #[error(
        "{0} requires at least two arguments, but only one was provided. Destination could not be determined"
    )]
    NoDestination(&'static str),
    #[error("Bad input to {0}, too many arguments")]
    TooManyArguments(&'static str),
    /// ENV, LABEL or ARG with an empty name.
    #[error("{0} names can not be blank")]
    BlankName(&'static str),
    #[error("{0} cannot accept a heredoc as a destination")]
    HeredocDestination(&'static str),
    #[error("Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed")]
    OnbuildChained,
    #[error("{0} isn't allowed as an ONBUILD trigger")]
    OnbuildTrigger(String),
    #[error("VOLUME specified can not be an empty string")]
    EmptyVolume,
    #[error("SHELL requires the arguments to be in JSON form")]
    ShellNotJson,
    #[error("HEALTHCHECK NONE takes no arguments")]
    HealthcheckNoneArguments,
    #[error("Unknown type \"{0}\" in HEALTHCHECK (try CMD)")]
    HealthcheckType(String),
    #[error("Missing command after HEALTHCHECK CMD")]
    HealthcheckNoCommand,
    #[error("Interval \"{0}\" cannot be less than 1ms")]
    IntervalTooShort(&'static str),
    /// `--retries` is not an `int32` (Go's `strconv.ParseInt` message).
    #[error("strconv.ParseInt: parsing \"{0}\": invalid syntax")]
    Retries(String),
    #[error("--retries cannot be negative ({0})")]
    NegativeRetries(i64),
}

type Result<T> = std::result::Result<T, CommandError>;

/// Parses one non-FROM instruction node. Also used for ONBUILD triggers.
pub fn parse_command(node: &Node) -> Result<Command> {
    let args = node.args();
    let instruction = match node.value.to_lowercase().as_str() {
        "env" => parse_env(node, &args)?,
        "maintainer" => parse_maintainer(node, &args)?,
        "label" => parse_label(node, &args)?,
        "add" => Instruction::Add(parse_add(node, &args)?),
        "copy" => Instruction::Copy(parse_copy(node, &args)?),
        "onbuild" => parse_onbuild(node, &args)?,
        "workdir" => parse_workdir(node, &args)?,
        "run" => Instruction::Run(parse_run(node, &args)?),
        "cmd" => Instruction::Cmd(parse_cmd(node, &args)?),
        "entrypoint" => Instruction::Entrypoint(parse_cmd(node, &args)?),
        "healthcheck" => Instruction::Healthcheck(parse_healthcheck(node, &args)?),
        "expose" => parse_expose(node, &args)?,
        "user" => parse_user(node, &args)?,
        "volume" => parse_volume(node, &args)?,
        "stopsignal" => parse_stop_signal(&args)?,
        "arg" => parse_arg(&args)?,
        "shell" => parse_shell(node, &args)?,
        _ => return Err(CommandError::Unknown(node.value.clone())),
    };
    Ok(Command {
        instruction,
        keyword: node.value.clone(),
        original: node.original.clone(),
        span: span(node),
    })
}

fn span(node: &Node) -> Span {
    Span {
        start: node.start_line,
        end: node.end_line,
    }
}

/// `FROM [--platform=P] image [AS name]`: a new stage.
pub(super) fn parse_from(node: &Node) -> Result<Stage> {
    let args = node.args();
    let name = match args.as_slice() {
        [_, as_kw, name] if as_kw.eq_ignore_ascii_case("as") => {
            let lower = name.to_lowercase();
            if !is_valid_stage_name(&lower) {
                return Err(CommandError::StageName(name.clone()));
            }
            Some(lower)
        }
        [_] => None,
        _ => return Err(CommandError::FromArguments),
    };
    let flags = Flags::parse(&node.flags, &[("platform", FlagKind::Str)])?;
    Ok(Stage {
        name,
        base_name: args[0].clone(),
        platform: flags.string("platform"),
        commands: Vec::new(),
        span: span(node),
    })
}

/// `^[a-z][a-z0-9-_.]*$`, on the lower-cased name.
fn is_valid_stage_name(s: &str) -> bool {
    let mut cs = s.chars();
    cs.next().is_some_and(|c| c.is_ascii_lowercase())
        && cs.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '-' | '_' | '.'))
}

fn parse_env(node: &Node, args: &[String]) -> Result<Instruction> {
    Flags::none(&node.flags)?;
    Ok(Instruction::Env {
        pairs: parse_kvps(args, "ENV")?,
    })
}

fn parse_maintainer(node: &Node, args: &[String]) -> Result<Instruction> {
    let name = exactly_one(args, "MAINTAINER")?;
    Flags::none(&node.flags)?;
    Ok(Instruction::Maintainer { name })
}

fn parse_label(node: &Node, args: &[String]) -> Result<Instruction> {
    Flags::none(&node.flags)?;
    Ok(Instruction::Label {
        pairs: parse_kvps(args, "LABEL")?,
    })
}

fn parse_add(node: &Node, args: &[String]) -> Result<Add> {
    if args.len() < 2 {
        return Err(CommandError::NoDestination("ADD"));
    }
    let f = Flags::parse(
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
    )?;
    Ok(Add {
        paths: sources_and_dest(node, args, "ADD")?,
        chown: f.string("chown"),
        chmod: f.string("chmod"),
        link: f.bool("link"),
        keep_git_dir: f.bool_opt("keep-git-dir"),
        checksum: f.string("checksum"),
        unpack: f.bool_opt("unpack"),
        exclude: f.strings("exclude"),
    })
}

fn parse_copy(node: &Node, args: &[String]) -> Result<Copy> {
    if args.len() < 2 {
        return Err(CommandError::NoDestination("COPY"));
    }
    let f = Flags::parse(
        &node.flags,
        &[
            ("chown", FlagKind::Str),
            ("from", FlagKind::Str),
            ("chmod", FlagKind::Str),
            ("link", FlagKind::Bool),
            ("exclude", FlagKind::Strings),
            ("parents", FlagKind::Bool),
        ],
    )?;
    Ok(Copy {
        paths: sources_and_dest(node, args, "COPY")?,
        from: f.string("from"),
        chown: f.string("chown"),
        chmod: f.string("chmod"),
        link: f.bool("link"),
        parents: f.bool("parents"),
        exclude: f.strings("exclude"),
    })
}

/// ONBUILD keeps its trigger as text (heredoc bodies included), parsed again where it runs.
fn parse_onbuild(node: &Node, args: &[String]) -> Result<Instruction> {
    let Some(first) = args.first() else {
        return Err(CommandError::AtLeastOne("ONBUILD"));
    };
    Flags::none(&node.flags)?;
    let trigger = trim_space(first).to_uppercase();
    match trigger.as_str() {
        "ONBUILD" => return Err(CommandError::OnbuildChained),
        "MAINTAINER" | "FROM" => return Err(CommandError::OnbuildTrigger(trigger)),
        _ => {}
    }
    let mut expression = strip_onbuild_keyword(&node.original).to_string();
    for h in &node.heredocs {
        expression.push('\n');
        expression.push_str(&h.content);
        expression.push_str(&h.name);
    }
    Ok(Instruction::Onbuild { expression })
}

fn strip_onbuild_keyword(original: &str) -> &str {
    let s = original.trim_start_matches(is_space);
    match s.get(..7) {
        Some(kw) if kw.eq_ignore_ascii_case("onbuild") => s[7..].trim_start_matches(is_space),
        _ => original,
    }
}

fn parse_workdir(node: &Node, args: &[String]) -> Result<Instruction> {
    let path = exactly_one(args, "WORKDIR")?;
    Flags::none(&node.flags)?;
    Ok(Instruction::Workdir { path })
}

/// RUN: its mounts are kept as written (checked only for a variable in `from=`); they are
/// expanded and parsed when the stage is planned or run.
fn parse_run(node: &Node, args: &[String]) -> Result<Run> {
    let f = Flags::parse(
        &node.flags,
        &[
            ("mount", FlagKind::Strings),
            ("network", FlagKind::Str),
            ("security", FlagKind::Str),
            ("device", FlagKind::Strings),
        ],
    )?;
    let mounts = f.strings("mount");
    for m in &mounts {
        check_mount_from(m)?;
    }
    // An empty value counts as not given.
    let network = match f.string("network") {
        Some(v) => v.parse()?,
        None => NetworkMode::default(),
    };
    let security = match f.string("security") {
        Some(v) => v.parse()?,
        None => SecurityMode::default(),
    };
    Ok(Run {
        cmd: cmd_line(node, args),
        mounts,
        network,
        security,
        devices: f.strings("device"),
    })
}

/// CMD and ENTRYPOINT.
fn parse_cmd(node: &Node, args: &[String]) -> Result<CmdLine> {
    Flags::none(&node.flags)?;
    Ok(cmd_line(node, args))
}

fn parse_expose(node: &Node, args: &[String]) -> Result<Instruction> {
    if args.is_empty() {
        return Err(CommandError::AtLeastOne("EXPOSE"));
    }
    Flags::none(&node.flags)?;
    let mut ports = args.to_vec();
    ports.sort();
    Ok(Instruction::Expose { ports })
}

fn parse_user(node: &Node, args: &[String]) -> Result<Instruction> {
    let user = exactly_one(args, "USER")?;
    Flags::none(&node.flags)?;
    Ok(Instruction::User { user })
}

fn parse_volume(node: &Node, args: &[String]) -> Result<Instruction> {
    if args.is_empty() {
        return Err(CommandError::AtLeastOne("VOLUME"));
    }
    Flags::none(&node.flags)?;
    let mut paths = Vec::new();
    for v in args {
        let v = trim_space(v);
        if v.is_empty() {
            return Err(CommandError::EmptyVolume);
        }
        paths.push(v.to_string());
    }
    Ok(Instruction::Volume { paths })
}

fn parse_stop_signal(args: &[String]) -> Result<Instruction> {
    let signal = exactly_one(args, "STOPSIGNAL")?;
    Ok(Instruction::StopSignal { signal })
}

fn parse_arg(args: &[String]) -> Result<Instruction> {
    if args.is_empty() {
        return Err(CommandError::AtLeastOne("ARG"));
    }
    let mut defs = Vec::new();
    for a in args {
        defs.push(match a.split_once('=') {
            Some(("", _)) => return Err(CommandError::BlankName("ARG")),
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
    Ok(Instruction::Arg { args: defs })
}

fn parse_shell(node: &Node, args: &[String]) -> Result<Instruction> {
    Flags::none(&node.flags)?;
    let c = cmd_line(node, args);
    if c.args.is_empty() {
        return Err(CommandError::AtLeastOne("SHELL"));
    }
    if !node.json {
        return Err(CommandError::ShellNotJson);
    }
    Ok(Instruction::Shell { shell: c.args })
}

/// The one argument, or BuildKit's "requires exactly one argument".
fn exactly_one(args: &[String], cmd: &'static str) -> Result<String> {
    match args {
        [one] => Ok(one.clone()),
        _ => Err(CommandError::ExactlyOne(cmd)),
    }
}

/// ENV and LABEL pairs: the parser leaves them as (key, value, separator) triples.
fn parse_kvps(args: &[String], cmd: &'static str) -> Result<Vec<KeyValue>> {
    if args.is_empty() {
        return Err(CommandError::AtLeastOne(cmd));
    }
    if !args.len().is_multiple_of(3) {
        return Err(CommandError::TooManyArguments(cmd));
    }
    args.chunks(3)
        .map(|c| {
            if c[0].is_empty() {
                return Err(CommandError::BlankName(cmd));
            }
            Ok(KeyValue {
                key: c[0].clone(),
                value: c[1].clone(),
                no_delim: c[2].is_empty(),
            })
        })
        .collect()
}

/// COPY and ADD sources: paths, and heredocs that become files named after their delimiter.
fn sources_and_dest(node: &Node, args: &[String], cmd: &'static str) -> Result<SourcesAndDest> {
    let (dest, srcs) = args.split_last().ok_or(CommandError::NoDestination(cmd))?;
    if parse_heredoc(dest).ok().flatten().is_some() {
        return Err(CommandError::HeredocDestination(cmd));
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

/// A command in exec form (JSON) or shell form (the words joined into one).
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

/// `HEALTHCHECK NONE` or `HEALTHCHECK [options] CMD command` (BuildKit `parseHealthcheck`).
fn parse_healthcheck(node: &Node, args: &[String]) -> Result<Health> {
    let Some(typ) = args.first() else {
        return Err(CommandError::AtLeastOne("HEALTHCHECK"));
    };
    let typ = typ.to_uppercase();
    let rest = &args[1..];
    if typ == "NONE" {
        if !rest.is_empty() {
            return Err(CommandError::HealthcheckNoneArguments);
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
    let f = Flags::parse(
        &node.flags,
        &[
            ("interval", FlagKind::Str),
            ("timeout", FlagKind::Str),
            ("start-period", FlagKind::Str),
            ("start-interval", FlagKind::Str),
            ("retries", FlagKind::Str),
        ],
    )?;
    if typ != "CMD" {
        return Err(CommandError::HealthcheckType(typ));
    }
    let cmd = if node.json || rest.is_empty() {
        rest.to_vec()
    } else {
        vec![rest.join(" ")]
    };
    if cmd.is_empty() {
        return Err(CommandError::HealthcheckNoCommand);
    }
    let mut test = vec![if node.json { "CMD" } else { "CMD-SHELL" }.to_string()];
    test.extend(cmd);
    let retries = match f.string("retries") {
        None => 0,
        Some(v) => {
            let r: i64 = v
                .parse()
                .ok()
                .filter(|r: &i64| i32::try_from(*r).is_ok())
                .ok_or(CommandError::Retries(v))?;
            if r < 0 {
                return Err(CommandError::NegativeRetries(r));
            }
            r
        }
    };
    Ok(Health {
        test,
        interval: interval(&f, "interval")?,
        timeout: interval(&f, "timeout")?,
        start_period: interval(&f, "start-period")?,
        start_interval: interval(&f, "start-interval")?,
        retries,
    })
}

/// A HEALTHCHECK duration flag in nanoseconds: 0 when absent, else at least 1ms.
fn interval(f: &Flags, name: &'static str) -> Result<i64> {
    let Some(v) = f.string(name) else {
        return Ok(0);
    };
    let d = parse_duration(&v)?;
    if d != 0 && d < 1_000_000 {
        return Err(CommandError::IntervalTooShort(name));
    }
    Ok(d)
}
