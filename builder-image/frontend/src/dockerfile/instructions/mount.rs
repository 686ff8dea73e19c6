//! `RUN --mount`, as BuildKit's `instructions/commands_runmount.go` parses it: one CSV record
//! of `key=value` fields (and a few bare words), with the same defaults, checks and messages.
//! The engine decides what each kind means at run time; this is only the value.

use serde::Serialize;

use crate::dockerfile::shell::LexError;

/// A mount's `type=` (BuildKit `MountType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum MountKind {
    /// A directory of the context or of another stage (the default).
    #[default]
    Bind,
    /// A directory kept between builds.
    Cache,
    /// An empty directory for the command's lifetime.
    Tmpfs,
    /// A build secret, as a file or an environment variable.
    Secret,
    /// The SSH agent socket.
    Ssh,
}

impl MountKind {
    /// The `type=` value as written in a Dockerfile (lower case).
    pub fn as_str(self) -> &'static str {
        match self {
            MountKind::Bind => "bind",
            MountKind::Cache => "cache",
            MountKind::Tmpfs => "tmpfs",
            MountKind::Secret => "secret",
            MountKind::Ssh => "ssh",
        }
    }

    /// The kind a lower-cased `type=` value names.
    fn from_lower(s: &str) -> Option<Self> {
        Some(match s {
            "bind" => MountKind::Bind,
            "cache" => MountKind::Cache,
            "tmpfs" => MountKind::Tmpfs,
            "secret" => MountKind::Secret,
            "ssh" => MountKind::Ssh,
            _ => return None,
        })
    }

    /// Whether `mode`, `uid` and `gid` apply (BuildKit's `fileInfoAllowed`).
    fn has_file_info(self) -> bool {
        matches!(self, MountKind::Secret | MountKind::Ssh | MountKind::Cache)
    }

    /// Whether `required` applies.
    fn can_be_required(self) -> bool {
        matches!(self, MountKind::Secret | MountKind::Ssh)
    }
}

impl std::fmt::Display for MountKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A cache mount's `sharing=` (BuildKit `ShareMode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Sharing {
    Shared,
    Private,
    Locked,
}

impl Sharing {
    pub fn as_str(self) -> &'static str {
        match self {
            Sharing::Shared => "shared",
            Sharing::Private => "private",
            Sharing::Locked => "locked",
        }
    }

    fn from_lower(s: &str) -> Option<Self> {
        Some(match s {
            "shared" => Sharing::Shared,
            "private" => Sharing::Private,
            "locked" => Sharing::Locked,
            _ => return None,
        })
    }
}

impl std::fmt::Display for Sharing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A parsed `RUN --mount`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct Mount {
    #[serde(rename = "type")]
    pub kind: MountKind,
    pub from: Option<String>,
    pub source: Option<String>,
    pub target: Option<String>,
    pub read_only: bool,
    pub size_limit: Option<i64>,
    pub id: Option<String>,
    pub sharing: Option<Sharing>,
    pub required: bool,
    pub env: Option<String>,
    pub mode: Option<u32>,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
}

impl Mount {
    /// The secret a `type=secret` mount names: its `id`, else the last path element of its
    /// target. (BuildKit's `dispatchSecret` also takes `source=` as the id and uses
    /// `path.Base`, which ignores a trailing `/`; this is the rule Slipway has always applied.)
    pub fn secret_id(&self) -> Option<&str> {
        self.id
            .as_deref()
            .or_else(|| self.target.as_deref().and_then(|t| t.rsplit('/').next()))
    }
}

/// A `--mount` value BuildKit would refuse, with its message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MountError {
    #[error("failed to parse csv mounts: extraneous or missing \" in quoted-field: {0}")]
    QuotedField(String),
    #[error("failed to parse csv mounts: bare \" in non-quoted-field: {0}")]
    BareQuote(String),
    #[error("'from' doesn't support variable expansion, define alias stage instead")]
    FromVariable,
    /// A field's value could not be expanded.
    #[error(transparent)]
    Expand(#[from] LexError),
    #[error("invalid field '{0}' must be a key=value pair")]
    NotKeyValue(String),
    #[error("unexpected key '{key}' in '{field}'")]
    UnknownKey { key: String, field: String },
    #[error("unexpected key '{key}' for mount type '{kind}'")]
    KeyNotForKind { key: &'static str, kind: MountKind },
    #[error("unsupported mount type \"{0}\"")]
    UnsupportedKind(String),
    #[error("unsupported sharing value \"{0}\"")]
    UnsupportedSharing(String),
    #[error("invalid value for {key}: {value}")]
    InvalidValue { key: String, value: String },
    #[error("invalid value {value} for {key}")]
    InvalidNumber {
        key: &'static str,
        value: String,
        #[source]
        source: std::num::ParseIntError,
    },
    #[error("{key} not allowed for \"{kind}\" type mounts")]
    FileInfoNotAllowed { key: &'static str, kind: MountKind },
    #[error("secret mount should not have a from")]
    SecretWithFrom,
    #[error("secret mount should not define sharing")]
    SecretWithSharing,
    #[error("invalid secret mount. one of source, target required")]
    SecretWithoutTarget,
    #[error("both source and id can't be set")]
    SourceAndId,
    #[error("invalid cache sharing set for {0} mount")]
    SharingNotCache(MountKind),
}

/// At parse time BuildKit checks only that `from=` has no variable in it.
pub(super) fn check_mount_from(spec: &str) -> Result<(), MountError> {
    for field in csv_fields(spec)? {
        if let Some((k, v)) = field.split_once('=')
            && k.eq_ignore_ascii_case("from")
            && v.find('$').is_some_and(|i| i != v.len() - 1)
        {
            return Err(MountError::FromVariable);
        }
    }
    Ok(())
}

/// Splits one CSV record (Go's `encoding/csv` rules: `"..."` quoting, `""` inside quotes).
/// Our own rather than the `csv` crate: BuildKit shows Go's messages for a malformed record.
fn csv_fields(s: &str) -> Result<Vec<String>, MountError> {
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
                        None => return Err(MountError::QuotedField(s.to_string())),
                        Some('"') if chars.peek() == Some(&'"') => {
                            chars.next();
                            cur.push('"');
                        }
                        Some('"') => break,
                        Some(c) => cur.push(c),
                    }
                }
                if !matches!(chars.peek(), None | Some(',')) {
                    return Err(MountError::QuotedField(s.to_string()));
                }
                at_start = false;
            }
            Some('"') => return Err(MountError::BareQuote(s.to_string())),
            Some(c) => {
                cur.push(c);
                at_start = false;
            }
        }
    }
}

/// Go's `strconv.ParseBool`.
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
pub fn parse_mount(spec: &str) -> Result<Mount, MountError> {
    parse_mount_with(spec, &mut |v| Ok(v.to_string()))
}

/// Parses a `--mount` value, expanding each field's value with `expand` first
/// (`parseMount` with an expander).
pub fn parse_mount_with(
    spec: &str,
    expand: &mut dyn FnMut(&str) -> Result<String, LexError>,
) -> Result<Mount, MountError> {
    let mut m = Mount::default();
    let mut ro_auto = true;
    for field in csv_fields(spec)? {
        let Some((key, value)) = field.split_once('=') else {
            bare_word(&mut m, &mut ro_auto, &field)?;
            continue;
        };
        let (key, value) = (key.to_lowercase(), expand(value)?);
        let bool_value = |v: &str| {
            parse_go_bool(v).ok_or_else(|| MountError::InvalidValue {
                key: key.clone(),
                value: v.to_string(),
            })
        };
        let number = |key: &'static str, radix: u32| {
            u32::from_str_radix(&value, radix).map_err(|source| MountError::InvalidNumber {
                key,
                value: value.clone(),
                source,
            })
        };
        match key.as_str() {
            "type" => {
                m.kind = MountKind::from_lower(&value.to_lowercase())
                    .ok_or_else(|| MountError::UnsupportedKind(value.clone()))?;
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
                if !m.kind.can_be_required() {
                    return Err(MountError::KeyNotForKind {
                        key: "required",
                        kind: m.kind,
                    });
                }
                m.required = bool_value(&value)?;
            }
            "size" => {
                if m.kind != MountKind::Tmpfs {
                    return Err(MountError::KeyNotForKind {
                        key: "size",
                        kind: m.kind,
                    });
                }
                m.size_limit =
                    Some(
                        ram_in_bytes(&value).ok_or_else(|| MountError::InvalidValue {
                            key: "size".into(),
                            value: value.clone(),
                        })?,
                    );
            }
            "id" => m.id = Some(value),
            "sharing" => {
                m.sharing = Some(
                    Sharing::from_lower(&value.to_lowercase())
                        .ok_or_else(|| MountError::UnsupportedSharing(value.clone()))?,
                );
            }
            "mode" => m.mode = Some(number("mode", 8)?),
            "uid" => m.uid = Some(number("uid", 10)?),
            "gid" => m.gid = Some(number("gid", 10)?),
            "env" => m.env = Some(value),
            _ => return Err(MountError::UnknownKey { key, field }),
        }
    }
    validate(&mut m, ro_auto)?;
    Ok(m)
}

/// A field without `=`: only the read-only switches and `required` may be bare.
fn bare_word(m: &mut Mount, ro_auto: &mut bool, field: &str) -> Result<(), MountError> {
    match field.to_lowercase().as_str() {
        "readonly" | "ro" => {
            m.read_only = true;
            *ro_auto = false;
        }
        "readwrite" | "rw" => {
            m.read_only = false;
            *ro_auto = false;
        }
        "required" if m.kind.can_be_required() => m.required = true,
        "required" => {
            return Err(MountError::KeyNotForKind {
                key: "required",
                kind: m.kind,
            });
        }
        _ => return Err(MountError::NotKeyValue(field.to_string())),
    }
    Ok(())
}

/// The checks BuildKit's `validateMount` makes once every field is read.
fn validate(m: &mut Mount, ro_auto: bool) -> Result<(), MountError> {
    if !m.kind.has_file_info() {
        for (set, key) in [
            (m.mode.is_some(), "mode"),
            (m.uid.is_some(), "uid"),
            (m.gid.is_some(), "gid"),
        ] {
            if set {
                return Err(MountError::FileInfoNotAllowed { key, kind: m.kind });
            }
        }
    }
    if ro_auto {
        m.read_only = !matches!(m.kind, MountKind::Cache | MountKind::Tmpfs);
    }
    if m.kind == MountKind::Secret {
        if m.from.is_some() {
            return Err(MountError::SecretWithFrom);
        }
        if m.sharing.is_some() {
            return Err(MountError::SecretWithSharing);
        }
        if m.source.is_none() && m.target.is_none() && m.id.is_none() {
            return Err(MountError::SecretWithoutTarget);
        }
        if m.source.is_some() && m.id.is_some() {
            return Err(MountError::SourceAndId);
        }
    }
    if m.sharing.is_some() && m.kind != MountKind::Cache {
        return Err(MountError::SharingNotCache(m.kind));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refusal(spec: &str) -> String {
        parse_mount(spec).expect_err(spec).to_string()
    }

    #[test]
    fn every_kind_parses_in_any_case() {
        for (spec, kind) in [
            ("target=/x", MountKind::Bind),
            ("type=bind,target=/x", MountKind::Bind),
            ("type=CACHE,target=/x", MountKind::Cache),
            ("type=tmpfs,target=/x", MountKind::Tmpfs),
            ("type=Secret,id=a", MountKind::Secret),
            ("type=ssh", MountKind::Ssh),
        ] {
            assert_eq!(parse_mount(spec).expect(spec).kind, kind, "{spec}");
        }
        assert_eq!(
            refusal("type=nfs"),
            "unsupported mount type \"nfs\"",
            "the value as written"
        );
        assert_eq!(MountKind::Tmpfs.to_string(), "tmpfs");
    }

    #[test]
    fn read_only_defaults_by_kind() {
        let ro = |spec: &str| parse_mount(spec).expect(spec).read_only;
        assert!(ro("type=bind,target=/x"));
        assert!(ro("type=secret,id=a"));
        assert!(!ro("type=cache,target=/x"));
        assert!(!ro("type=tmpfs,target=/x"));
        assert!(!ro("type=bind,target=/x,rw"));
        assert!(ro("type=cache,target=/x,ro=true"));
        assert!(!ro("type=bind,target=/x,readwrite=1"));
    }

    #[test]
    fn sharing_parses_for_caches_only() {
        for (v, s) in [
            ("shared", Sharing::Shared),
            ("Private", Sharing::Private),
            ("LOCKED", Sharing::Locked),
        ] {
            let m = parse_mount(&format!("type=cache,target=/c,sharing={v}")).expect(v);
            assert_eq!(m.sharing, Some(s));
        }
        assert_eq!(
            refusal("type=cache,sharing=weird"),
            "unsupported sharing value \"weird\""
        );
        assert_eq!(
            refusal("type=bind,sharing=shared"),
            "invalid cache sharing set for bind mount"
        );
        assert_eq!(
            refusal("type=secret,id=a,sharing=shared"),
            "secret mount should not define sharing"
        );
    }

    #[test]
    fn cache_options() {
        let m =
            parse_mount("type=cache,target=/root/.cache,id=go,sharing=locked,uid=1000,mode=0700")
                .expect("ok");
        assert_eq!(
            (m.kind, m.read_only, m.uid, m.mode, m.id.as_deref()),
            (MountKind::Cache, false, Some(1000), Some(0o700), Some("go"))
        );
        assert_eq!(
            parse_mount("type=tmpfs,target=/t,size=64m")
                .expect("ok")
                .size_limit,
            Some(64 << 20)
        );
    }

    #[test]
    fn secret_id_is_the_id_else_the_target_base_name() {
        let id = |spec: &str| {
            parse_mount(spec)
                .expect(spec)
                .secret_id()
                .map(str::to_string)
        };
        assert_eq!(id("type=secret,id=tok").as_deref(), Some("tok"));
        assert_eq!(
            id("type=secret,id=tok,target=/run/secrets/x").as_deref(),
            Some("tok")
        );
        assert_eq!(
            id("type=secret,target=/run/secrets/x").as_deref(),
            Some("x")
        );
        assert_eq!(id("type=secret,target=npmrc").as_deref(), Some("npmrc"));
        assert_eq!(id("type=secret,target=/run/secrets/").as_deref(), Some(""));
        assert_eq!(id("type=secret,source=a").as_deref(), None);
    }

    #[test]
    fn refusals_have_buildkit_messages() {
        for (spec, message) in [
            (
                "type=bind,uid=1",
                "uid not allowed for \"bind\" type mounts",
            ),
            (
                "type=tmpfs,mode=1",
                "mode not allowed for \"tmpfs\" type mounts",
            ),
            (
                "type=secret,from=x,id=a",
                "secret mount should not have a from",
            ),
            (
                "type=secret",
                "invalid secret mount. one of source, target required",
            ),
            (
                "type=secret,source=a,id=b",
                "both source and id can't be set",
            ),
            (
                "type=bind,required",
                "unexpected key 'required' for mount type 'bind'",
            ),
            (
                "type=cache,required=true",
                "unexpected key 'required' for mount type 'cache'",
            ),
            (
                "type=bind,size=1",
                "unexpected key 'size' for mount type 'bind'",
            ),
            ("type=tmpfs,size=zz", "invalid value for size: zz"),
            ("type=cache,ro=maybe", "invalid value for ro: maybe"),
            ("type=cache,mode=9", "invalid value 9 for mode"),
            ("type=cache,uid=x", "invalid value x for uid"),
            ("type=cache,foo=x", "unexpected key 'foo' in 'foo=x'"),
            (
                "type=cache,foo",
                "invalid field 'foo' must be a key=value pair",
            ),
            (
                "type=cache,\"target=x",
                "failed to parse csv mounts: extraneous or missing \" in quoted-field: type=cache,\"target=x",
            ),
            (
                "type=cache,ta\"rget=x",
                "failed to parse csv mounts: bare \" in non-quoted-field: type=cache,ta\"rget=x",
            ),
        ] {
            assert_eq!(refusal(spec), message, "{spec}");
        }
        assert!(parse_mount("type=ssh,required,mode=0600,uid=1,gid=2").is_ok());
    }

    #[test]
    fn values_are_expanded_first() {
        let m = parse_mount_with("type=cache,target=$T", &mut |v| {
            Ok(v.replace("$T", "/cache"))
        })
        .expect("ok");
        assert_eq!(m.target.as_deref(), Some("/cache"));
        let e = parse_mount_with("type=cache,target=$T", &mut |_| {
            Err(LexError("T: missing".into()))
        })
        .expect_err("expansion fails");
        assert_eq!(e.to_string(), "T: missing");
        assert_eq!(
            check_mount_from("from=$X,target=/x"),
            Err(MountError::FromVariable)
        );
        assert_eq!(check_mount_from("from=x$,target=/x"), Ok(()));
    }

    #[test]
    fn serializes_with_buildkit_names() {
        let m = parse_mount("type=cache,target=/c,sharing=locked").expect("ok");
        let v = serde_json::to_value(&m).expect("serializes");
        assert_eq!(v["type"], "cache");
        assert_eq!(v["sharing"], "locked");
        assert_eq!(v["readOnly"], false);
    }
}
