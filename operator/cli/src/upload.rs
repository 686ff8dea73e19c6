//! Where a packed context goes before the ImageBuild names it: the seam between packing and
//! `spec.source`. Today one store, a ConfigMap (`spec.source.configMap`), which holds at most
//! 1 MiB; a store for larger contexts (an OCI artifact in the output registry, a later part
//! of issue 15) is one more [`Store`] variant with its own limit and `source()`.

use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::{Client, Resource};
use slipway_api::{ConfigMapSource, ImageBuild, Source};

use crate::error::Error;

/// The key the archive is stored under (the ConfigMap source's default).
pub const CONFIG_MAP_KEY: &str = "context.tar.gz";
/// The most a ConfigMap's data may hold: the API server refuses more (its `MaxSecretSize`,
/// counted over the values).
pub const CONFIG_MAP_LIMIT: u64 = 1024 * 1024;
/// The label on objects the CLI created.
pub const CREATED_BY: (&str, &str) = ("app.kubernetes.io/created-by", "slipway-cli");

/// Where a context can be stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Store {
    ConfigMap,
}

/// A stored context.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stored {
    ConfigMap { name: String },
}

impl Store {
    /// The largest archive this store takes, in bytes.
    pub fn limit(self) -> u64 {
        match self {
            Store::ConfigMap => CONFIG_MAP_LIMIT,
        }
    }

    /// What holds the context, for an error about its size.
    pub fn describe(self) -> &'static str {
        match self {
            Store::ConfigMap => "a ConfigMap (the context's store) holds",
        }
    }

    /// Stores `archive` in namespace `ns`, named after `base`.
    pub async fn put(
        self,
        client: &Client,
        ns: &str,
        base: &str,
        archive: Vec<u8>,
    ) -> Result<Stored, Error> {
        match self {
            Store::ConfigMap => {
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
        }
    }

    /// Makes the ImageBuild own it, so that deleting the build removes it.
    pub async fn adopt(&self, client: &Client, ns: &str, owner: &ImageBuild) -> Result<(), Error> {
        match self {
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
}
