//! Cache keys (issue 13, part 1): a pure, versioned function of everything that changes what
//! an instruction produces, and of nothing else. No I/O: the engine (or the prepare pod)
//! expands the instructions and walks the files; this module only folds what it is handed.
//!
//! # The scheme (`sw1`)
//!
//! A stage's chain starts from its origin ([`Origin`]): the base image's platform manifest
//! digest (never a tag or an index: a tag that moves changes the key), the parent stage's
//! final key, or scratch for a platform. Each instruction folds the key before it with its
//! canonical [`Record`] ([`Chain::step`]):
//!
//! ```text
//! K0 = sha256(DOMAIN ‖ frame(record(origin)))
//! Ki = sha256(DOMAIN ‖ frame(K(i-1)) ‖ frame(record(step i)))      frame(b) = len(b) as u64 BE ‖ b
//! ```
//!
//! Records name every field and frame every value ([`record`]), so no two inputs collide
//! however their strings look. What a record holds ([`Step`]):
//! - RUN: argv after expansion (the shell prepended for the shell form), heredoc files,
//!   the effective env and the in-scope ARGs (without the proxy variables, as BuildKit), user,
//!   workdir, shell, network and security modes, devices, and each mount: a bind mount by its
//!   source's content ([`Source`]), cache mounts by id and options, secret and ssh mounts by
//!   id and options, never contents or values (a rotated secret does not bust the cache, as in
//!   BuildKit; a secret that changes a layer's bytes should be a build arg instead).
//! - COPY/ADD: expanded sources and destination, workdir, `--chown` (resolved to numbers),
//!   `--chmod`, `--link`, `--parents`, `--exclude`, ADD's `--unpack`/`--keep-git-dir`, and
//!   what is copied ([`Source`]): the [`ContentRoot`] of the selected context files after
//!   `.dockerignore` (path, type, mode, resulting owner, link target, content hash; not mtime),
//!   an ADD URL by its `--checksum` or downloaded digest, a git source by its commit, an image
//!   by its manifest digest, and `COPY --from` a stage by that stage's final key (the fast
//!   key) or, when that misses, by the content root of what the stage produced (the slow key:
//!   an upstream stage rebuilt to the same bytes still hits downstream).
//! - Metadata (ENV, LABEL, USER, WORKDIR, CMD, ...): the values after expansion ([`Meta`]).
//!   They extend the chain, so the key of a stage's last instruction is the whole stage's.
//!
//! ARG itself extends nothing: a value reaches a key only where it is used (in a RUN's env,
//! in an expanded COPY source), so an unused build arg changes no key. A stage the target does
//! not need is in no key of the target's; a stage's key depends on its ancestors only.
//!
//! [`SCHEME`] is part of every hash and of every tag: any change to what a record holds, or
//! how, bumps it (`sw2`), so old entries stop matching instead of matching wrongly.
//!
//! # What the build uses today: whole-stage keys ([`stage`])
//!
//! The layer cache (local mode `--cache-repo`) caches whole stages: [`stage::stage_key`] keys
//! a stage by its instructions as written plus everything expansion could read, and the
//! stages it needs by their keys (fast) or by what they left (slow). The per-instruction
//! chain here is for prefix hits inside a stage, which would also need each instruction
//! expanded before it runs (the prepare pod does not run the stage's instructions); it is not
//! used by the build yet. The engine's `cache` module documents storage (one OCI manifest per
//! key whose layers are the stage's own blobs and exports, the record re-checked on a hit)
//! and planning (a Job whose stages all hit runs no container).

mod content;
pub mod record;
pub mod stage;

use std::collections::BTreeMap;
use std::fmt;

use sha2::{Digest, Sha256};

use crate::dockerfile::instructions::{NetworkMode, SecurityMode, Sharing};

pub use content::{ContentRoot, DuplicateEntry, Entry, EntryKind};
pub use record::Record;

/// The scheme's version, in every hash and every tag.
pub const SCHEME: &str = "sw1";

/// What every hash of this scheme starts with: another scheme, another hash.
const DOMAIN: &[u8] = b"slipway cache key sw1\0";

/// An instruction's (or a stage's) key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Key(pub [u8; 32]);

impl Key {
    pub fn hex(&self) -> String {
        hex::encode(self.0)
    }

    /// The cache repository's tag for this key: `sw1-<64 hex>`.
    pub fn tag(&self) -> String {
        format!("{SCHEME}-{}", self.hex())
    }
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.tag())
    }
}

/// Where a stage starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// A base image: its manifest digest for the build's platform (`sha256:...`).
    Image { manifest: String },
    /// An earlier stage (`FROM <stage>`): that stage's final key.
    Stage(Key),
    /// `FROM scratch`, for a platform (`linux/amd64`): the config says the platform.
    Scratch { platform: String },
}

/// What a COPY, ADD or bind mount reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// Build-context files after `.dockerignore`: their content root.
    Context(ContentRoot),
    /// An earlier stage's output by that stage's final key (the fast key).
    Stage(Key),
    /// An earlier stage's output by the content root of what it produced under the selector
    /// (the slow key, looked up when the fast one misses).
    StageContent(ContentRoot),
    /// An external image (`--from=<image>`): its platform manifest digest.
    Image { manifest: String },
    /// `ADD <url>`: the `--checksum` given, else the downloaded bytes' digest.
    Url { digest: String },
    /// `ADD <git ref>`: the commit.
    Git { commit: String },
    /// Heredoc files only (`COPY <<EOF`): their names and text after expansion.
    Inline(Vec<(String, String)>),
}

/// A `RUN --mount`, as far as it changes what the RUN produces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MountKey {
    /// Read from `source`'s content; `selector` is the path mounted from it.
    Bind {
        target: String,
        selector: String,
        read_write: bool,
        source: Source,
    },
    /// By id and options; its contents never (they are a cache).
    Cache {
        id: String,
        target: String,
        sharing: Sharing,
        read_only: bool,
        mode: Option<u32>,
        uid: Option<u32>,
        gid: Option<u32>,
    },
    Tmpfs {
        target: String,
        size: Option<i64>,
    },
    /// By id and where it appears; the value never.
    Secret {
        id: String,
        target: Option<String>,
        env: Option<String>,
        required: bool,
        mode: Option<u32>,
        uid: Option<u32>,
        gid: Option<u32>,
    },
    Ssh {
        id: String,
        target: Option<String>,
        required: bool,
        mode: Option<u32>,
        uid: Option<u32>,
        gid: Option<u32>,
    },
}

/// A RUN, expanded.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunStep {
    /// The command line run: for the shell form, the shell and the command.
    pub argv: Vec<String>,
    /// Heredoc files (`RUN <<EOF`), name and text after expansion.
    pub files: Vec<(String, String)>,
    /// The image's environment (ENV) at this point.
    pub env: BTreeMap<String, String>,
    /// The ARGs in scope, with their values (they are in the RUN's environment too).
    pub args: BTreeMap<String, String>,
    pub user: String,
    pub workdir: String,
    pub shell: Vec<String>,
    pub network: NetworkMode,
    pub security: SecurityMode,
    pub devices: Vec<String>,
    pub mounts: Vec<MountKey>,
}

/// COPY or ADD.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CopyKind {
    Copy,
    Add,
}

/// A COPY or ADD, expanded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CopyStep {
    pub kind: CopyKind,
    pub sources: Vec<String>,
    pub dest: String,
    /// The workdir a relative destination is under.
    pub workdir: String,
    /// `--chown`, resolved to numbers (the content root's entries carry the result too).
    pub chown: Option<(u32, u32)>,
    pub chmod: Option<String>,
    pub link: bool,
    pub parents: bool,
    pub exclude: Vec<String>,
    /// ADD only.
    pub unpack: Option<bool>,
    pub keep_git_dir: Option<bool>,
    /// What is copied (for `--from`, `sources` are the selectors in it).
    pub from: Source,
}

/// A metadata instruction, its values expanded (CMD and ENTRYPOINT as the config has them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Meta {
    Env(Vec<(String, String)>),
    Label(Vec<(String, String)>),
    User(String),
    Workdir(String),
    Cmd(Vec<String>),
    Entrypoint(Vec<String>),
    Shell(Vec<String>),
    Expose(Vec<String>),
    Volume(Vec<String>),
    StopSignal(String),
    OnBuild(String),
    Maintainer(String),
    Healthcheck {
        test: Vec<String>,
        interval: i64,
        timeout: i64,
        start_period: i64,
        start_interval: i64,
        retries: i64,
    },
}

/// One instruction of a stage, as its key sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    Run(RunStep),
    Copy(CopyStep),
    Meta(Meta),
}

/// The variables BuildKit keeps out of a RUN's cache key (`ProxyEnv`): a proxy is how a
/// build reaches the network, not what it builds.
const PROXY_VARS: [&str; 5] = [
    "http_proxy",
    "https_proxy",
    "ftp_proxy",
    "no_proxy",
    "all_proxy",
];

fn is_proxy(name: &str) -> bool {
    PROXY_VARS.iter().any(|p| p.eq_ignore_ascii_case(name))
}

fn without_proxies(m: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    m.iter()
        .filter(|(k, _)| !is_proxy(k))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

fn pairs(name: &str, kv: &[(String, String)]) -> Record {
    let mut r = Record::new(name);
    r.u64("count", kv.len() as u64);
    for (k, v) in kv {
        r.str("key", k).str("value", v);
    }
    r
}

/// The canonical record of where a stage starts.
pub fn origin_record(o: &Origin) -> Record {
    let mut r = Record::new("origin");
    match o {
        Origin::Image { manifest } => r.str("image", manifest),
        Origin::Stage(k) => r.bytes("stage", &k.0),
        Origin::Scratch { platform } => r.str("scratch", platform),
    };
    r
}

fn source_record(s: &Source) -> Record {
    let mut r = Record::new("source");
    match s {
        Source::Context(root) => r.bytes("context", &root.0),
        Source::Stage(k) => r.bytes("stage", &k.0),
        Source::StageContent(root) => r.bytes("stage-content", &root.0),
        Source::Image { manifest } => r.str("image", manifest),
        Source::Url { digest } => r.str("url", digest),
        Source::Git { commit } => r.str("git", commit),
        Source::Inline(files) => {
            let p = pairs("files", files);
            r.records("inline", [&p])
        }
    };
    r
}

fn sharing(s: Sharing) -> &'static str {
    s.as_str()
}

fn mount_record(m: &MountKey) -> Record {
    let id = |r: &mut Record, mode: Option<u32>, uid: Option<u32>, gid: Option<u32>| {
        r.opt_u64("mode", mode.map(u64::from))
            .opt_u64("uid", uid.map(u64::from))
            .opt_u64("gid", gid.map(u64::from));
    };
    match m {
        MountKey::Bind {
            target,
            selector,
            read_write,
            source,
        } => {
            let mut r = Record::new("bind");
            r.str("target", target)
                .str("selector", selector)
                .bool("rw", *read_write)
                .records("source", [&source_record(source)]);
            r
        }
        MountKey::Cache {
            id: cid,
            target,
            sharing: sh,
            read_only,
            mode,
            uid,
            gid,
        } => {
            let mut r = Record::new("cache");
            r.str("id", cid)
                .str("target", target)
                .str("sharing", sharing(*sh))
                .bool("ro", *read_only);
            id(&mut r, *mode, *uid, *gid);
            r
        }
        MountKey::Tmpfs { target, size } => {
            let mut r = Record::new("tmpfs");
            r.str("target", target)
                .opt_u64("size", size.map(|s| s as u64));
            r
        }
        MountKey::Secret {
            id: sid,
            target,
            env,
            required,
            mode,
            uid,
            gid,
        } => {
            let mut r = Record::new("secret");
            r.str("id", sid)
                .opt_str("target", target.as_deref())
                .opt_str("env", env.as_deref())
                .bool("required", *required);
            id(&mut r, *mode, *uid, *gid);
            r
        }
        MountKey::Ssh {
            id: sid,
            target,
            required,
            mode,
            uid,
            gid,
        } => {
            let mut r = Record::new("ssh");
            r.str("id", sid)
                .opt_str("target", target.as_deref())
                .bool("required", *required);
            id(&mut r, *mode, *uid, *gid);
            r
        }
    }
}

fn network(n: NetworkMode) -> &'static str {
    match n {
        NetworkMode::Default => "default",
        NetworkMode::None => "none",
        NetworkMode::Host => "host",
    }
}

fn security(s: SecurityMode) -> &'static str {
    match s {
        SecurityMode::Sandbox => "sandbox",
        SecurityMode::Insecure => "insecure",
    }
}

/// The canonical record of a step: what its key folds in, and what a cache entry keeps.
pub fn step_record(s: &Step) -> Record {
    match s {
        Step::Run(run) => {
            let mut r = Record::new("run");
            let mounts: Vec<Record> = run.mounts.iter().map(mount_record).collect();
            r.list("argv", run.argv.iter().map(String::as_str))
                .records("files", [&pairs("heredocs", &run.files)])
                .map("env", &without_proxies(&run.env))
                .map("args", &without_proxies(&run.args))
                .str("user", &run.user)
                .str("workdir", &run.workdir)
                .list("shell", run.shell.iter().map(String::as_str))
                .str("network", network(run.network))
                .str("security", security(run.security))
                .list("devices", run.devices.iter().map(String::as_str))
                .records("mounts", &mounts);
            r
        }
        Step::Copy(c) => {
            let mut r = Record::new(match c.kind {
                CopyKind::Copy => "copy",
                CopyKind::Add => "add",
            });
            r.list("sources", c.sources.iter().map(String::as_str))
                .str("dest", &c.dest)
                .str("workdir", &c.workdir)
                .opt_u64("chown-uid", c.chown.map(|(u, _)| u64::from(u)))
                .opt_u64("chown-gid", c.chown.map(|(_, g)| u64::from(g)))
                .opt_str("chmod", c.chmod.as_deref())
                .bool("link", c.link)
                .bool("parents", c.parents)
                .list("exclude", c.exclude.iter().map(String::as_str))
                .opt_bool("unpack", c.unpack)
                .opt_bool("keep-git-dir", c.keep_git_dir)
                .records("from", [&source_record(&c.from)]);
            r
        }
        Step::Meta(m) => meta_record(m),
    }
}

fn meta_record(m: &Meta) -> Record {
    let strings = |kind: &str, v: &[String]| {
        let mut r = Record::new(kind);
        r.list("values", v.iter().map(String::as_str));
        r
    };
    let one = |kind: &str, v: &str| {
        let mut r = Record::new(kind);
        r.str("value", v);
        r
    };
    match m {
        Meta::Env(kv) => pairs("env", kv),
        Meta::Label(kv) => pairs("label", kv),
        Meta::User(v) => one("user", v),
        Meta::Workdir(v) => one("workdir", v),
        Meta::Cmd(v) => strings("cmd", v),
        Meta::Entrypoint(v) => strings("entrypoint", v),
        Meta::Shell(v) => strings("shell", v),
        Meta::Expose(v) => strings("expose", v),
        Meta::Volume(v) => strings("volume", v),
        Meta::StopSignal(v) => one("stopsignal", v),
        Meta::OnBuild(v) => one("onbuild", v),
        Meta::Maintainer(v) => one("maintainer", v),
        Meta::Healthcheck {
            test,
            interval,
            timeout,
            start_period,
            start_interval,
            retries,
        } => {
            let mut r = Record::new("healthcheck");
            r.list("test", test.iter().map(String::as_str))
                .i64("interval", *interval)
                .i64("timeout", *timeout)
                .i64("start-period", *start_period)
                .i64("start-interval", *start_interval)
                .i64("retries", *retries);
            r
        }
    }
}

fn hash(parts: &[&[u8]]) -> Key {
    let mut h = Sha256::new();
    h.update(DOMAIN);
    for p in parts {
        h.update((p.len() as u64).to_be_bytes());
        h.update(p);
    }
    Key(h.finalize().into())
}

/// A stage's chain of keys, one instruction at a time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chain {
    key: Key,
}

impl Chain {
    pub fn start(origin: &Origin) -> Chain {
        Chain {
            key: hash(&[origin_record(origin).as_bytes()]),
        }
    }

    /// Folds `step` in; returns its key (the chain's key from now on).
    pub fn step(&mut self, step: &Step) -> Key {
        self.key = hash(&[&self.key.0, step_record(step).as_bytes()]);
        self.key
    }

    /// The key so far: after the last step, the stage's.
    pub fn key(&self) -> Key {
        self.key
    }
}

/// The key of every step of a stage, in order; the last is the stage's key (with no steps,
/// the origin's).
pub fn step_keys(origin: &Origin, steps: &[Step]) -> Vec<Key> {
    let mut c = Chain::start(origin);
    steps.iter().map(|s| c.step(s)).collect()
}

/// A stage's final key.
pub fn stage_key(origin: &Origin, steps: &[Step]) -> Key {
    let mut c = Chain::start(origin);
    for s in steps {
        c.step(s);
    }
    c.key()
}

#[cfg(test)]
mod tests;
