//! The Dockerfile front end: text → AST ([`parser`]) → typed stages ([`instructions`]), with
//! BuildKit's shell lexer ([`shell`]) for variable expansion. Each module is a port of the
//! BuildKit package of the same role (`frontend/dockerfile/{parser,instructions,shell}`).

pub mod instructions;
pub mod parser;
pub mod shell;
