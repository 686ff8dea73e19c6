//! The `ImageBuild` API, `build.slipway.dev/v1alpha1`, as Rust types: the CRD in `crds/` is
//! generated from them (`slipway-operator crd`), and a test fails when the two differ.

use k8s_openapi::api::core::v1::{LocalObjectReference, ResourceRequirements, SecretKeySelector};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

pub mod labels;

/// An image to build from a Dockerfile and push.
#[derive(CustomResource, Deserialize, Serialize, Clone, Debug, JsonSchema)]
#[kube(
    group = "build.slipway.dev",
    version = "v1alpha1",
    kind = "ImageBuild",
    namespaced,
    shortname = "ib",
    status = "ImageBuildStatus",
    printcolumn = r#"{"name":"Phase","type":"string","jsonPath":".status.phase"}"#,
    printcolumn = r#"{"name":"Reason","type":"string","jsonPath":".status.conditions[?(@.type==\"Succeeded\")].reason"}"#,
    printcolumn = r#"{"name":"Digest","type":"string","jsonPath":".status.image.shortDigest"}"#,
    printcolumn = r#"{"name":"Duration","type":"string","jsonPath":".status.duration"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#,
    printcolumn = r#"{"name":"Image","type":"string","jsonPath":".status.image.ref","priority":1}"#
)]
#[serde(rename_all = "camelCase")]
pub struct ImageBuildSpec {
    /// Where the build context comes from: exactly one of inline, configMap, git, tarball,
    /// oci.
    pub source: Source,
    /// The Dockerfile's path in the context (default `Dockerfile`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dockerfile: Option<String>,
    /// The stage to build (default: the last one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub build_args: Vec<BuildArg>,
    pub output: Output,
    /// Secrets of type dockerconfigjson the kubelet uses to pull base images.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pull_secrets: Vec<LocalObjectReference>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workspace: Option<WorkspaceSpec>,
    /// Requests and limits of every build container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,
    /// The longest the build may take, as a Go duration in whole units (`30m`, `1h30m`, `90s`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        regex(pattern = r"^([0-9]+h)?([0-9]+m)?([0-9]+s)?$"),
        length(min = 2, max = 16)
    )]
    pub timeout: Option<String>,
    /// At most this many stage Jobs at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub max_parallel_stages: Option<i32>,
    /// Secrets for `RUN --mount=type=secret,id=...`, mounted only into the stages that ask.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub secrets: Vec<BuildSecret>,
    /// A PersistentVolumeClaim kept for `RUN --mount=type=cache` (else an empty directory).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_volume: Option<String>,
    /// The layer cache: stages found there are restored instead of run (a build whose
    /// stages all hit runs no stage Job), and the stages that ran are stored after the push.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache: Option<CacheSpec>,
    /// Reproducible images (`SOURCE_DATE_EPOCH`): seconds since 1970, or `git` for the commit
    /// time of a git source. The image config's and new history entries' `created` are set to
    /// it and files in the build's own layers are no newer than it; base layers stay as pulled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("x-kubernetes-validations" = [{
        "rule": "type(self) == int ? self >= 0 : self == 'git'",
        "message": "sourceDateEpoch is whole seconds since 1970 or the string git"
    }]))]
    pub source_date_epoch: Option<IntOrString>,
    /// Seconds after the build finished when its Jobs, Pods and workspace are removed; the
    /// ImageBuild and its status stay (default 3600).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub ttl_seconds_after_finished: Option<i32>,
    /// Change it (for example, count it up) to build an unchanged spec again: like any spec
    /// change it makes a new generation, which builds anew (a base image's tag moved, a
    /// branch got new commits). The value means nothing else.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub rebuild: Option<i64>,
    /// Stop the build and start none while it is set: its Jobs and Pods are deleted and the
    /// phase is `Cancelled` (reason `Cancelled`), which is final for this generation.
    /// Setting it back to false (or removing it) builds again, as any spec change does.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub cancel: bool,
}

#[derive(Deserialize, Serialize, Clone, Debug, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [{
    "rule": "[has(self.inline), has(self.configMap), has(self.git), has(self.tarball), has(self.oci)].filter(x, x).size() == 1",
    "message": "exactly one of inline, configMap, git, tarball or oci must be set"
}]))]
pub struct Source {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inline: Option<InlineSource>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_map: Option<ConfigMapSource>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub git: Option<GitSource>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tarball: Option<TarballSource>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oci: Option<OciSource>,
}

/// The Dockerfile and small context files written in the resource itself.
#[derive(Deserialize, Serialize, Clone, Debug, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct InlineSource {
    pub dockerfile: String,
    /// Context files by relative path.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub files: BTreeMap<String, String>,
}

/// A tar or tar.gz of the context in a ConfigMap's binaryData.
#[derive(Deserialize, Serialize, Clone, Debug, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConfigMapSource {
    pub name: String,
    /// Default `context.tar.gz`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
}

#[derive(Deserialize, Serialize, Clone, Debug, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GitSource {
    pub url: String,
    /// A branch, tag or commit (default: the remote's HEAD).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision: Option<String>,
    /// The context's directory in the repository.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context_dir: Option<String>,
    /// A Secret with a token, basic auth (username, password) or an ssh key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_ref: Option<LocalObjectReference>,
}

#[derive(Deserialize, Serialize, Clone, Debug, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TarballSource {
    /// An https URL of a tar or tar.gz of the context.
    pub url: String,
    /// Its sha256, hex.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
}

/// The context as an OCI artifact in a registry, pinned by digest: an image manifest whose one
/// layer is the context as a tar.gz (what `slipway build` pushes when the context is too
/// large for a ConfigMap). Pulled with the build's `pullSecrets`; the manifest and the layer
/// are checked against their digests before anything is unpacked.
#[derive(Deserialize, Serialize, Clone, Debug, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct OciSource {
    /// The repository, `registry/repository` (a tag, if any, is ignored: the digest decides).
    #[schemars(length(min = 1, max = 512))]
    pub image: String,
    /// The manifest's digest, `sha256:` and 64 lowercase hex digits.
    #[schemars(regex(pattern = r"^sha256:[0-9a-f]{64}$"))]
    pub digest: String,
}

#[derive(Deserialize, Serialize, Clone, Debug, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BuildArg {
    pub name: String,
    #[serde(default)]
    pub value: String,
}

#[derive(Deserialize, Serialize, Clone, Debug, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Output {
    /// Where to push, `registry/repository:tag`.
    #[schemars(length(min = 1))]
    pub image: String,
    /// More tags of the same repository.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub additional_tags: Vec<String>,
    /// A dockerconfigjson Secret with push credentials; only the push pod sees it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub push_secret: Option<LocalObjectReference>,
    /// Speak plain HTTP to the output registry.
    #[serde(default)]
    pub insecure_registry: bool,
}

#[derive(Deserialize, Serialize, Clone, Debug, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct WorkspaceSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_class_name: Option<String>,
    /// Default `10Gi`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<String>,
}

#[derive(Deserialize, Serialize, Clone, Debug, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BuildSecret {
    /// The id `RUN --mount=type=secret,id=...` names.
    pub id: String,
    pub secret_ref: SecretKeySelector,
}

/// The layer cache of a build.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CacheSpec {
    /// `registry/repository` (no tag) holding one entry per stage key. The prepare step reads
    /// it with the pull secrets (and `pullSecret`); the push step writes it with the push
    /// secret, after the image is pushed (a failed write is an Event, not a failed build).
    #[schemars(length(min = 1))]
    pub repository: String,
    /// A dockerconfigjson Secret to read the cache with, besides the build's pull secrets.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pull_secret: Option<LocalObjectReference>,
}

/// Where a build stands: Pending, Preparing, Building, Pushing, Succeeded, Failed or
/// Cancelled (the last three are final for the generation).
#[derive(Deserialize, Serialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum Phase {
    #[serde(rename = "Pending")]
    Pending,
    #[serde(rename = "Preparing")]
    Preparing,
    #[serde(rename = "Building")]
    Building,
    #[serde(rename = "Pushing")]
    Pushing,
    #[serde(rename = "Succeeded")]
    Succeeded,
    #[serde(rename = "Failed")]
    Failed,
    // Stopped by `spec.cancel`. (Not a doc comment: a described variant would make the
    // schema a oneOf, and `status.phase` would lose its `null`.)
    #[serde(rename = "Cancelled")]
    Cancelled,
}

impl Phase {
    /// The wire string (also an event's reason).
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Pending => "Pending",
            Phase::Preparing => "Preparing",
            Phase::Building => "Building",
            Phase::Pushing => "Pushing",
            Phase::Succeeded => "Succeeded",
            Phase::Failed => "Failed",
            Phase::Cancelled => "Cancelled",
        }
    }

    pub fn finished(self) -> bool {
        matches!(self, Phase::Succeeded | Phase::Failed | Phase::Cancelled)
    }
}

/// Where one stage stands: Pending, Running, Succeeded, Failed, or Cached (restored from the
/// layer cache: no Job ran it).
#[derive(Deserialize, Serialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum StagePhase {
    #[default]
    #[serde(rename = "Pending")]
    Pending,
    #[serde(rename = "Running")]
    Running,
    #[serde(rename = "Succeeded")]
    Succeeded,
    #[serde(rename = "Failed")]
    Failed,
    #[serde(rename = "Cached")]
    Cached,
}

impl StagePhase {
    /// The wire string (also in a stage event's reason, `Stage<phase>`).
    pub fn as_str(self) -> &'static str {
        match self {
            StagePhase::Pending => "Pending",
            StagePhase::Running => "Running",
            StagePhase::Succeeded => "Succeeded",
            StagePhase::Failed => "Failed",
            StagePhase::Cached => "Cached",
        }
    }
}

/// What the controller reports.
#[derive(Deserialize, Serialize, Clone, Debug, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ImageBuildStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<Phase>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_time: Option<Time>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completion_time: Option<Time>,
    /// Wall time of the build, for the printer column (`1m23s`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub stages: Vec<StageStatus>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<PushedImage>,
    /// The images the build's stages start from, as pinned when it was prepared.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub base_images: Vec<BaseImage>,
    /// The commit a git source was checked out at (full hex), as the prepare step found it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_revision: Option<String>,
    /// The last builds that ended (at most 10, newest first), this one included once it
    /// ended: a rebuild or a changed spec keeps what earlier generations pushed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub history: Vec<BuildRecord>,
    /// What the layer cache did for this build (`spec.cache`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache: Option<CacheStatus>,
}

/// The layer cache's outcome for a build.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CacheStatus {
    /// Stages restored from the cache.
    pub hits: i32,
    /// Stages looked up and not found (they ran).
    pub misses: i32,
    /// Stages never cached (`ADD` of a URL without `--checksum`, of a git repository).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub not_cacheable: i32,
    /// Bytes of layers and exports restored instead of made again.
    pub bytes_reused: i64,
    /// Stages the push step stored, once it ran.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stored: Option<i32>,
    /// Why storing a stage failed (the first failure), when one did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub write_error: Option<String>,
}

fn is_zero(n: &i32) -> bool {
    *n == 0
}

/// One ended build of an ImageBuild, as `status.history` keeps it.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BuildRecord {
    /// The ImageBuild's generation the build was of.
    pub generation: i64,
    /// Succeeded, Failed or Cancelled.
    pub phase: Phase,
    /// The `Succeeded` condition's reason (`Pushed`, `StageFailed`, `Cancelled`, ...).
    pub reason: String,
    /// The manifest digest pushed (a succeeded build's only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_revision: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_time: Option<Time>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completion_time: Option<Time>,
}

/// An external image stages start from: its name as the Dockerfile writes it, and the digest
/// it was pinned to.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BaseImage {
    pub name: String,
    pub digest: String,
    /// The pushed image's base: its layers are the image's first ones.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub target: bool,
}

#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct StageStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    pub index: i32,
    pub phase: StagePhase,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_time: Option<Time>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completion_time: Option<Time>,
    /// Layers restored from the layer cache (a Cached stage's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cached_layers: Option<i32>,
}

#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PushedImage {
    /// The reference pushed, as the spec names it.
    #[serde(rename = "ref")]
    pub reference: String,
    /// The manifest digest the registry holds.
    pub digest: String,
    /// The digest's first 12 hex digits, for the Digest column (a column's JSONPath cannot
    /// cut a string).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub short_digest: String,
    /// Bytes the image takes in the registry: its config and layers, compressed, as the
    /// manifest lists them (what `crane manifest | jq` sums; the manifest itself not counted).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<i64>,
}

impl PushedImage {
    pub fn new(reference: String, digest: String) -> Self {
        let hex = digest.split_once(':').map_or(digest.as_str(), |(_, h)| h);
        PushedImage {
            short_digest: hex.chars().take(12).collect(),
            reference,
            digest,
            size: None,
        }
    }
}

/// The CRD as the manifest in `crds/` holds it.
pub fn crd_json() -> String {
    use kube::CustomResourceExt;
    let mut s = serde_json::to_string_pretty(&ImageBuild::crd()).unwrap_or_default();
    s.push('\n');
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crds_directory_matches_the_code() {
        // crds/ for kubectl, and the chart's copy, which templates/crd.yaml renders (in the
        // chart's templates, not its crds/, so that `helm upgrade` upgrades it).
        for rel in [
            "/../../crds/imagebuilds.build.slipway.dev.json",
            "/../../charts/slipway/files/imagebuilds.build.slipway.dev.json",
        ] {
            let path = format!("{}{rel}", env!("CARGO_MANIFEST_DIR"));
            let on_disk = std::fs::read_to_string(&path).unwrap_or_default();
            assert!(
                on_disk == crd_json(),
                "{rel} is out of date: run `cargo run -p slipway-operator -- crd` into \
                 crds/ and charts/slipway/files/"
            );
        }
    }

    #[test]
    fn crd_carries_status_columns_and_validation() {
        let v: serde_json::Value = serde_json::from_str(&crd_json()).expect("json");
        let version = &v["spec"]["versions"][0];
        assert_eq!(v["spec"]["names"]["shortNames"][0], "ib");
        assert_eq!(v["spec"]["scope"], "Namespaced");
        assert!(version["subresources"]["status"].is_object());
        let cols: Vec<&str> = version["additionalPrinterColumns"]
            .as_array()
            .expect("columns")
            .iter()
            .filter_map(|c| c["name"].as_str())
            .collect();
        assert_eq!(
            cols,
            ["Phase", "Reason", "Digest", "Duration", "Age", "Image"]
        );
        let path = |name: &str| {
            version["additionalPrinterColumns"]
                .as_array()
                .and_then(|cs| cs.iter().find(|c| c["name"] == name))
                .map(|c| (c["jsonPath"].clone(), c["priority"].clone()))
        };
        assert_eq!(
            path("Reason"),
            Some((
                r#".status.conditions[?(@.type=="Succeeded")].reason"#.into(),
                serde_json::Value::Null
            ))
        );
        assert_eq!(
            path("Image"),
            Some((".status.image.ref".into(), serde_json::json!(1)))
        );
        let spec = &version["schema"]["openAPIV3Schema"]["properties"]["spec"];
        let required: Vec<&str> = spec["required"]
            .as_array()
            .expect("required")
            .iter()
            .filter_map(|r| r.as_str())
            .collect();
        assert!(required.contains(&"source") && required.contains(&"output"));
        let rules = &spec["properties"]["source"]["x-kubernetes-validations"][0]["rule"];
        assert!(rules.as_str().is_some_and(|r| r.contains("size() == 1")));
        assert!(rules.as_str().is_some_and(|r| r.contains("has(self.oci)")));
        let oci = &spec["properties"]["source"]["properties"]["oci"];
        assert_eq!(oci["required"], serde_json::json!(["digest", "image"]));
        assert_eq!(
            oci["properties"]["digest"]["pattern"],
            serde_json::json!("^sha256:[0-9a-f]{64}$")
        );
        assert_eq!(
            spec["properties"]["output"]["required"][0],
            serde_json::json!("image")
        );
        let status = &version["schema"]["openAPIV3Schema"]["properties"]["status"]["properties"];
        assert_eq!(
            status["phase"]["enum"],
            serde_json::json!([
                "Pending",
                "Preparing",
                "Building",
                "Pushing",
                "Succeeded",
                "Failed",
                "Cancelled",
                null
            ])
        );
        assert_eq!(status["phase"]["nullable"], true);
        assert_eq!(
            status["stages"]["items"]["properties"]["phase"]["enum"],
            serde_json::json!(["Pending", "Running", "Succeeded", "Failed", "Cached"])
        );
    }

    #[test]
    fn the_short_digest_is_what_the_digest_column_shows() {
        let hex = "0123456789abcdef".repeat(4);
        let i = PushedImage::new("r/x:1".into(), format!("sha256:{hex}"));
        assert_eq!(i.short_digest, "0123456789ab");
        let v = serde_json::to_value(&i).expect("json");
        assert_eq!(v["shortDigest"], "0123456789ab");
        assert_eq!(v["ref"], "r/x:1");
        // A status written before the column existed still reads.
        let old: PushedImage =
            serde_json::from_value(serde_json::json!({"ref": "r", "digest": "sha256:ab"}))
                .expect("old status");
        assert_eq!(old.short_digest, "");
    }

    #[test]
    fn phases_keep_their_wire_strings() {
        for p in [
            Phase::Pending,
            Phase::Preparing,
            Phase::Building,
            Phase::Pushing,
            Phase::Succeeded,
            Phase::Failed,
            Phase::Cancelled,
        ] {
            assert_eq!(serde_json::to_value(p).ok(), Some(p.as_str().into()));
            let back: Phase = serde_json::from_value(p.as_str().into()).expect("parses");
            assert_eq!(back, p);
        }
        for p in [
            StagePhase::Pending,
            StagePhase::Running,
            StagePhase::Succeeded,
            StagePhase::Failed,
        ] {
            assert_eq!(serde_json::to_value(p).ok(), Some(p.as_str().into()));
        }
        assert!(Phase::Failed.finished() && !Phase::Pushing.finished());
        assert!(Phase::Cancelled.finished());
    }
}
