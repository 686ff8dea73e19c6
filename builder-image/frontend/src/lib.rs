//! A BuildKit-exact Dockerfile front end in Rust.
//!
//! Text in, typed stages and a stage plan out; nothing here touches the file system, the
//! network or processes, so it can be used (and tested) on its own.
//!
//! - [`dockerfile::parser`]: text → AST, as BuildKit's `parser` package (directives, line
//!   continuations, heredocs, `Node.Dump()` byte for byte).
//! - [`dockerfile::instructions`]: AST → typed instructions, as BuildKit's `instructions`
//!   package, in the same parts: flags, one parse function per instruction, `RUN --mount`
//!   (typed [`MountKind`](dockerfile::instructions::MountKind)), RUN's network and security
//!   modes.
//! - [`dockerfile::shell`]: BuildKit's shell lexer (`$VAR`, `${VAR:-x}`, quoting, escapes).
//! - [`dockerignore`]: moby/patternmatcher's `.dockerignore` rules.
//! - [`reference`](mod@reference): image references as distribution/reference parses them.
//! - [`plan`](mod@plan): which stages a target needs, in what order, with ARG/ENV scoping, the
//!   paths later stages copy from each, and the FROM-chains that can run in one container.
//! - [`cache_key`]: the cache keys of stages and instructions (a versioned, canonical,
//!   length-prefixed fold; pure: the engine hands it expanded steps and content roots).
//! - [`gocompat`]: the Go standard-library functions BuildKit's behaviour is defined by
//!   (`strconv.Quote`, `path.Clean`, `filepath.Match`, `time.ParseDuration`, Unicode classes).
//!
//! # What it guarantees, and how that is tested
//!
//! The parser, the shell lexer and the ignore matcher are checked against BuildKit's and
//! moby/patternmatcher's own test data (`tests/fixtures.rs`, read from `$SLIPWAY_FIXTURES`):
//! every parser test file's AST dump is byte-identical to BuildKit's, every negative case is
//! rejected with its line, every lexer and pattern case gives BuildKit's answer. A property
//! test (`tests/parser_never_panics.rs`) feeds arbitrary text to the parser, the planner and
//! the lexer and checks that nothing panics. Where Slipway is deliberately stricter than
//! BuildKit (a stage name in FROM matches case-insensitively; a FROM naming a later stage is
//! an error), [`plan`](mod@plan) says so.
//!
//! Errors are typed (one `thiserror` enum per concern: [`ParseError`], [`InstructionError`],
//! [`MountError`], [`PlanError`], ...); their messages are BuildKit's, byte for byte, wherever
//! BuildKit has one.
//!
//! [`ParseError`]: dockerfile::parser::ParseError
//! [`InstructionError`]: dockerfile::instructions::InstructionError
//! [`MountError`]: dockerfile::instructions::MountError
//! [`PlanError`]: plan::PlanError

pub mod cache_key;
pub mod dockerfile;
pub mod dockerignore;
pub mod gocompat;
pub mod plan;
pub mod reference;
