//! Instruction flags (`--name=value`), as BuildKit's `instructions/bflag.go` (`BFlags`)
//! checks them: only the instruction's known flags, each at most once unless it is a list
//! (`--mount`, `--exclude`, `--device`), a boolean either bare or `true`/`false` in any
//! case.

use std::collections::BTreeMap;

/// A flag BuildKit would refuse, with its message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FlagError {
    #[error("arg should start with -- : {0}")]
    NotAFlag(String),
    #[error("unknown flag: --{0}")]
    Unknown(String),
    #[error("duplicate flag specified: --{0}")]
    Duplicate(String),
    #[error("missing a value on flag: --{0}")]
    MissingValue(String),
    #[error("expecting boolean value for flag --{name}, not: {value}")]
    NotBool { name: String, value: String },
}

/// What values a flag takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum FlagKind {
    Bool,
    Str,
    /// May be repeated (`--mount`, `--exclude`, `--device`).
    Strings,
}

/// The flags given to one instruction, checked against the ones it knows.
#[derive(Debug)]
pub(super) struct Flags {
    values: BTreeMap<&'static str, Vec<String>>,
}

impl Flags {
    /// Checks `given` (the flags as the parser split them) against `known`.
    pub(super) fn parse(
        given: &[String],
        known: &[(&'static str, FlagKind)],
    ) -> Result<Self, FlagError> {
        let known: BTreeMap<&'static str, FlagKind> = known.iter().copied().collect();
        let mut values: BTreeMap<&'static str, Vec<String>> = BTreeMap::new();
        for a in given {
            if a == "--" {
                break;
            }
            let Some(body) = a.strip_prefix("--") else {
                return Err(FlagError::NotAFlag(a.clone()));
            };
            let (name, value) = match body.split_once('=') {
                Some((n, v)) => (n, Some(v)),
                None => (body, None),
            };
            let Some((&key, &kind)) = known.get_key_value(name) else {
                return Err(FlagError::Unknown(name.to_string()));
            };
            let slot = values.entry(key).or_default();
            if !slot.is_empty() && kind != FlagKind::Strings {
                return Err(FlagError::Duplicate(name.to_string()));
            }
            match kind {
                FlagKind::Bool => slot.push(bool_value(name, value)?.to_string()),
                FlagKind::Str | FlagKind::Strings => match value {
                    Some(v) => slot.push(v.to_string()),
                    None => return Err(FlagError::MissingValue(name.to_string())),
                },
            }
        }
        Ok(Flags { values })
    }

    /// An instruction that takes no flags: any flag is an error.
    pub(super) fn none(given: &[String]) -> Result<(), FlagError> {
        Self::parse(given, &[]).map(|_| ())
    }

    /// The last value of a string flag, `None` when absent or empty.
    pub(super) fn string(&self, name: &str) -> Option<String> {
        self.values
            .get(name)
            .and_then(|v| v.last())
            .filter(|v| !v.is_empty())
            .cloned()
    }

    /// Every value of a repeatable flag, in order.
    pub(super) fn strings(&self, name: &str) -> Vec<String> {
        self.values.get(name).cloned().unwrap_or_default()
    }

    /// `Some(value)` when the flag was given.
    pub(super) fn bool_opt(&self, name: &str) -> Option<bool> {
        self.values
            .get(name)
            .and_then(|v| v.last())
            .map(|v| v == "true")
    }

    pub(super) fn bool(&self, name: &str) -> bool {
        self.bool_opt(name).unwrap_or(false)
    }
}

/// A boolean flag's value: none means true.
fn bool_value(name: &str, value: Option<&str>) -> Result<&'static str, FlagError> {
    if value == Some("") {
        return Err(FlagError::MissingValue(name.to_string()));
    }
    match value.map(str::to_lowercase).as_deref() {
        None | Some("true") => Ok("true"),
        Some("false") => Ok("false"),
        Some(_) => Err(FlagError::NotBool {
            name: name.to_string(),
            value: value.unwrap_or_default().to_string(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn given(flags: &[&str]) -> Vec<String> {
        flags.iter().map(|s| s.to_string()).collect()
    }

    const COPY: &[(&str, FlagKind)] = &[
        ("from", FlagKind::Str),
        ("link", FlagKind::Bool),
        ("exclude", FlagKind::Strings),
    ];

    #[test]
    fn known_flags_are_read() {
        let f = Flags::parse(
            &given(&["--from=a", "--link=FALSE", "--exclude=x", "--exclude=y"]),
            COPY,
        )
        .expect("valid");
        assert_eq!(f.string("from").as_deref(), Some("a"));
        assert_eq!(f.bool_opt("link"), Some(false));
        assert_eq!(f.strings("exclude"), ["x", "y"]);
        let f = Flags::parse(&given(&["--link", "--", "--nope"]), COPY).expect("valid");
        assert!(f.bool("link"));
        assert_eq!(f.string("from"), None);
    }

    #[test]
    fn refusals_have_buildkit_messages() {
        for (flags, message) in [
            (&["-from=a"][..], "arg should start with -- : -from=a"),
            (&["--nope=1"], "unknown flag: --nope"),
            (
                &["--from=a", "--from=b"],
                "duplicate flag specified: --from",
            ),
            (&["--from"], "missing a value on flag: --from"),
            (&["--link="], "missing a value on flag: --link"),
            (
                &["--link=maybe"],
                "expecting boolean value for flag --link, not: maybe",
            ),
        ] {
            let e = Flags::parse(&given(flags), COPY).expect_err("refused");
            assert_eq!(e.to_string(), message);
        }
        assert_eq!(
            Flags::none(&given(&["--x=1"])),
            Err(FlagError::Unknown("x".into()))
        );
    }
}
