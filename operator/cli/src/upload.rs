//! Where a packed context goes before the ImageBuild names it: the seam between packing and
//! `spec.source`. A ConfigMap (`spec.source.configMap`) holds at most 1 MiB; a larger context
//! (or any, with `--context-repo`) is pushed as an OCI artifact ([`crate::artifact`],
//! `spec.source.oci`) pinned by digest, up to the build pods' default size limit.

use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::{Client, Resource};
use slipway_api::{ConfigMapSource, ImageBuild, OciSource, Source};
use slipway_contract::size::Size;

use crate::error::Error;
use crate::spool::Spool;

/// The key the archive is stored under (the ConfigMap source's default).
pub const CONFIG_MAP_KEY: &str = "context.tar.gz";
/// The most a ConfigMap's data may hold: the API server refuses more (its `MaxSecretSize`,
/// counted over the values).
pub const CONFIG_MAP_LIMIT: u64 = 1024 * 1024;
/// The largest context pushed as an OCI artifact: the build pods' default size limit (what
/// the prepare pod takes in, `--size-limit`), so that what is pushed can be pulled.
pub const OCI_LIMIT: u64 = Size::DEFAULT_LIMIT.0;
/// The label on objects the CLI created.
pub const CREATED_BY: (&str, &str) = ("app.kubernetes.io/created-by", "slipway-cli");

/// Where a context can be stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Store {
    ConfigMap,
    /// An OCI artifact in `repository` (`registry/repository`); `insecure`: plain HTTP.
    Oci {
        repository: String,
        insecure: bool,
    },
}

/// A stored context.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stored {
    ConfigMap { name: String },
    Oci { image: String, digest: String },
}

impl Store {
    /// The store for an archive of `size` bytes: a ConfigMap when it fits and no repository
    /// was asked for, else an OCI artifact in `repository`.
    pub fn choose(size: u64, asked: bool, repository: String, insecure: bool) -> Store {
        if !asked && size <= CONFIG_MAP_LIMIT {
            Store::ConfigMap
        } else {
            Store::Oci {
                repository,
                insecure,
            }
        }
    }

    /// The largest archive this store takes, in bytes.
    pub fn limit(&self) -> u64 {
        match self {
            Store::ConfigMap => CONFIG_MAP_LIMIT,
            Store::Oci { .. } => OCI_LIMIT,
        }
    }

    /// What holds the context, for an error about its size.
    pub fn describe(&self) -> &'static str {
        match self {
            Store::ConfigMap => "a ConfigMap (the context's store) holds",
            Store::Oci { .. } => "a build pod takes in by default (its size limit)",
        }
    }

    /// Stores `archive` in namespace `ns`, named after `base` (a ConfigMap), or pushes it.
    pub async fn put(
        &self,
        client: &Client,
        ns: &str,
        base: &str,
        archive: Spool,
    ) -> Result<Stored, Error> {
        match self {
            Store::Oci {
                repository,
                insecure,
            } => {
                let digest = crate::artifact::push(repository, *insecure, &archive).await?;
                Ok(Stored::Oci {
                    image: repository.clone(),
                    digest,
                })
            }
            Store::ConfigMap => {
                let archive = archive.bytes()?;
                let cm = ConfigMap {
                    metadata: ObjectMeta {
                        generate_name: Some(format!("{base}-context-")),
                        labels: Some(BTreeMap::from([(CREATED_BY.0.into(), CREATED_BY.1.into())])),
                        ..Default::default()
                    },
                    binary_data: Some(BTreeMap::from([(
                        CONFIG_MAP_KEY.into(),
                        ByteString(archive),
                    )])),
                    immutable: Some(true),
                    ..Default::default()
                };
                let api: Api<ConfigMap> = Api::namespaced(client.clone(), ns);
                let made = api
                    .create(&PostParams::default(), &cm)
                    .await
                    .map_err(|e| Error::api("create the context's ConfigMap", e))?;
                Ok(Stored::ConfigMap {
                    name: made.metadata.name.unwrap_or_default(),
                })
            }
        }
    }
}

impl Stored {
    /// The ImageBuild's `spec.source` for it.
    pub fn source(&self) -> Source {
        match self {
            Stored::ConfigMap { name } => Source {
                config_map: Some(ConfigMapSource {
                    name: name.clone(),
                    key: Some(CONFIG_MAP_KEY.into()),
                }),
                ..Default::default()
            },
            Stored::Oci { image, digest } => Source {
                oci: Some(OciSource {
                    image: image.clone(),
                    digest: digest.clone(),
                }),
                ..Default::default()
            },
        }
    }

    /// Makes the ImageBuild own it, so that deleting the build removes it.
    /// An artifact in a registry has no owner: it stays (registries' own retention and
    /// garbage collection are where it goes).
    pub async fn adopt(&self, client: &Client, ns: &str, owner: &ImageBuild) -> Result<(), Error> {
        match self {
            Stored::Oci { .. } => Ok(()),
            Stored::ConfigMap { name } => {
                let owner = OwnerReference {
                    api_version: ImageBuild::api_version(&()).into_owned(),
                    kind: ImageBuild::kind(&()).into_owned(),
                    name: owner.metadata.name.clone().unwrap_or_default(),
                    uid: owner.metadata.uid.clone().unwrap_or_default(),
                    ..Default::default()
                };
                let patch = serde_json::json!({"metadata": {"ownerReferences": [owner]}});
                let api: Api<ConfigMap> = Api::namespaced(client.clone(), ns);
                api.patch(name, &PatchParams::default(), &Patch::Merge(&patch))
                    .await
                    .map_err(|e| {
                        Error::api("make the ImageBuild own the context's ConfigMap", e)
                    })?;
                Ok(())
            }
        }
    }

    /// Removes it (the ImageBuild could not be created).
    pub async fn remove(&self, client: &Client, ns: &str) {
        match self {
            Stored::Oci { .. } => {}
            Stored::ConfigMap { name } => {
                let api: Api<ConfigMap> = Api::namespaced(client.clone(), ns);
                let _ = api.delete(name, &DeleteParams::default()).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_config_map_source_names_the_key() {
        let s = Stored::ConfigMap {
            name: "go-context-x1".into(),
        }
        .source();
        let v = serde_json::to_value(&s).expect("json");
        assert_eq!(
            v,
            serde_json::json!({"configMap": {"name": "go-context-x1", "key": "context.tar.gz"}})
        );
        assert_eq!(Store::ConfigMap.limit(), 1 << 20);
    }

    #[test]
    fn a_context_over_the_config_map_limit_goes_to_the_registry() {
        let repo = || "reg:5000/team/web".to_string();
        assert_eq!(
            Store::choose(1 << 20, false, repo(), true),
            Store::ConfigMap
        );
        let big = Store::choose((1 << 20) + 1, false, repo(), true);
        assert_eq!(
            big,
            Store::Oci {
                repository: repo(),
                insecure: true
            }
        );
        assert_eq!(big.limit(), 1 << 30);
        // --context-repo: the registry whatever the size.
        assert!(matches!(
            Store::choose(10, true, repo(), false),
            Store::Oci {
                insecure: false,
                ..
            }
        ));
        let digest = format!("sha256:{}", "f".repeat(64));
        let s = Stored::Oci {
            image: repo(),
            digest: digest.clone(),
        }
        .source();
        assert_eq!(
            serde_json::to_value(&s).expect("json"),
            serde_json::json!({"oci": {"image": "reg:5000/team/web", "digest": digest}})
        );
    }
}
