//! The Dockerfile front end: text → AST ([`parser`]) → typed stages ([`instructions`]), with
//! BuildKit's shell lexer ([`lexer`]) for variable expansion.

pub mod goquote;
pub mod instructions;
pub mod lexer;
pub mod parser;
