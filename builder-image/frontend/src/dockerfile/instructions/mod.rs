//! AST to typed instructions grouped into stages, as BuildKit's `instructions` package does
//! it, in the same files: [`flags`] (`bflag.go`), [`parse`] (`parse.go`: one `parse_x` per
//! instruction), [`mount`] (`commands_runmount.go`) and [`run`] (`commands_runnetwork.go`,
//! `commands_runsecurity.go`); the types (`commands.go`) and [`from_ast`] are here. Nothing
//! is expanded here; see [`crate::plan`].

pub mod flags;
pub mod mount;
pub mod parse;
pub mod run;

use serde::Serialize;

use super::parser::Node;

pub use flags::FlagError;
pub use mount::{Mount, MountError, MountKind, Sharing, parse_mount, parse_mount_with};
pub use parse::{CommandError, parse_command};
pub use run::{NetworkMode, RunFlagError, SecurityMode};

/// Where an instruction is in the Dockerfile (1-based, inclusive).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Span {
    pub start: usize,
    pub end: usize,
}

/// An error in one instruction, with its place. It reads as its [`CommandError`] alone; the
/// caller adds the file, line and keyword.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstructionError {
    pub line: usize,
    /// The instruction keyword as written (`COPY`), empty where none applies.
    pub instruction: String,
    pub kind: CommandError,
}

impl std::fmt::Display for InstructionError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.kind.fmt(f)
    }
}

// The message is the kind's, so the kind is not repeated as a source: its own source is.
impl std::error::Error for InstructionError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.kind.source()
    }
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
    pub network: NetworkMode,
    pub security: SecurityMode,
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

/// Builds the typed stages from a parsed AST (`instructions.Parse`).
pub fn from_ast(ast: &Node) -> Result<Dockerfile, InstructionError> {
    let mut meta_args = Vec::new();
    let mut stages: Vec<Stage> = Vec::new();
    for node in &ast.children {
        let span = Span {
            start: node.start_line,
            end: node.end_line,
        };
        let fail = |kind: CommandError| InstructionError {
            line: node.start_line,
            instruction: node.value.clone(),
            kind,
        };
        if node.value.eq_ignore_ascii_case("from") {
            stages.push(parse::parse_from(node).map_err(fail)?);
            continue;
        }
        let cmd = parse_command(node).map_err(fail)?;
        match stages.last_mut() {
            Some(stage) => stage.commands.push(cmd),
            None => match cmd.instruction {
                Instruction::Arg { args } => meta_args.push((args, span)),
                _ => return Err(fail(CommandError::NoStage)),
            },
        }
    }
    Ok(Dockerfile { meta_args, stages })
}

#[cfg(test)]
mod tests {
    use super::super::parser::parse;
    use super::*;

    fn df(src: &str) -> Result<Dockerfile, InstructionError> {
        from_ast(&parse(src).expect("parses").ast)
    }

    fn message(src: &str) -> (usize, String) {
        let e = df(src).expect_err(src);
        (e.line, e.to_string())
    }

    #[test]
    fn flags_are_validated() {
        assert_eq!(
            message("FROM a\nCOPY --nope=1 x y\n"),
            (2, "unknown flag: --nope".into())
        );
        let e = df("FROM a\nCOPY --from=a --from=b x y\n").expect_err("dup");
        assert_eq!(e.to_string(), "duplicate flag specified: --from");
        assert_eq!(
            e.kind,
            CommandError::Flag(FlagError::Duplicate("from".into()))
        );
        let e = df("FROM a\nCOPY --link=maybe x y\n").expect_err("bool");
        assert!(e.to_string().starts_with("expecting boolean value"));
        let d = df("FROM a\nCOPY --exclude=a --exclude=b --link x y\n").expect("ok");
        let Instruction::Copy(c) = &d.stages[0].commands[0].instruction else {
            panic!()
        };
        assert_eq!(c.exclude, ["a", "b"]);
        assert!(c.link);
    }

    #[test]
    fn run_flags_are_typed() {
        let d = df("FROM a\nRUN --network=none --security=insecure --mount=type=cache,target=/c x\nRUN y\n")
            .expect("ok");
        let runs: Vec<&Run> = d.stages[0]
            .commands
            .iter()
            .filter_map(|c| match &c.instruction {
                Instruction::Run(r) => Some(r),
                _ => None,
            })
            .collect();
        assert_eq!(
            (runs[0].network, runs[0].security),
            (NetworkMode::None, SecurityMode::Insecure)
        );
        assert_eq!(runs[0].mounts, ["type=cache,target=/c"]);
        assert_eq!(
            (runs[1].network, runs[1].security),
            (NetworkMode::Default, SecurityMode::Sandbox)
        );
        assert_eq!(
            message("FROM a\nRUN --network=bridge x\n"),
            (2, "invalid network mode \"bridge\"".into())
        );
        assert_eq!(
            message("FROM a\nRUN --security=weird x\n"),
            (2, "security weird is not valid".into())
        );
        let e = df("FROM a\nRUN --mount=from=$X,target=/x true\n").expect_err("var in from");
        assert_eq!(e.kind, CommandError::Mount(MountError::FromVariable));
        assert!(e.to_string().contains("doesn't support variable expansion"));
        // The JSON `slipway-builder parse` prints keeps BuildKit's names.
        let v = serde_json::to_value(runs[0]).expect("serializes");
        assert_eq!(
            (&v["network"], &v["security"]),
            (&"none".into(), &"insecure".into())
        );
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
        assert_eq!(
            message("FROM a\nHEALTHCHECK --interval=1us CMD x\n").1,
            "Interval \"interval\" cannot be less than 1ms"
        );
        assert_eq!(
            message("FROM a\nHEALTHCHECK --timeout=10 CMD x\n").1,
            "time: missing unit in duration \"10\""
        );
        assert_eq!(
            message("FROM a\nHEALTHCHECK --retries=x CMD x\n").1,
            "strconv.ParseInt: parsing \"x\": invalid syntax"
        );
    }

    #[test]
    fn errors_name_the_line() {
        assert_eq!(
            message("FROM a\nRUN x\nFOO bar\n"),
            (3, "unknown instruction: FOO".into())
        );
        let e = df("FROM a\n\nCOPY x\n").expect_err("no dest");
        assert_eq!((e.line, e.instruction.as_str()), (3, "COPY"));
        assert_eq!(
            e.to_string(),
            "COPY requires at least two arguments, but only one was provided. Destination could not be determined"
        );
        let e = df("FROM a AS 1x\n").expect_err("bad name");
        assert!(e.to_string().contains("invalid name for build stage"));
        assert_eq!(
            message("RUN x\nFROM a\n").1,
            "no build stage in current context: the first instruction must be FROM (only ARG may come before it)"
        );
        assert!(df("FROM a\nSHELL /bin/sh -c\n").is_err());
        assert!(df("FROM a\nCOPY <<EOF <<X\nEOF\nX\n").is_err());
        assert_eq!(
            message("FROM a\nWORKDIR\n").1,
            "WORKDIR requires exactly one argument"
        );
        assert_eq!(
            message("FROM a\nONBUILD ONBUILD RUN x\n").1,
            "Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed"
        );
        assert_eq!(message("FROM a\nENV =x\n").1, "ENV names can not be blank");
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
}
