//! `slipway-operator`: the ImageBuild controller (`run`), the CRD (`crd`), and a look at how a
//! plan's stages would be scheduled (`schedule`).

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand};
use k8s_openapi::api::core::v1::ResourceRequirements;
use slipway_contract::graph::BuildGraph;
use slipway_frontend::plan::Plan;

/// The ImageBuild types live in their own crate (slipway-api), which the CLI shares.
use slipway_api as api;
mod endpoints;
mod leader;
mod metrics;
mod reconcile;

#[derive(Parser)]
#[command(
    name = "slipway-operator",
    version,
    about = "Slipway's ImageBuild controller"
)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

// Parsed once: the size difference between variants costs nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand)]
enum Cmd {
    /// Run the controller against the cluster (KUBECONFIG, else in-cluster), until SIGTERM.
    Run {
        /// The builder image: the static slipway-builder at /slipway-builder.
        #[arg(long)]
        builder_image: String,
        /// A registry every build speaks plain HTTP to (base images and push); repeatable.
        #[arg(long = "insecure-registry", value_name = "HOST[:PORT]")]
        insecure_registries: Vec<String>,
        /// The workspace volume's size when an ImageBuild does not say.
        #[arg(long, default_value = "10Gi")]
        default_workspace_size: String,
        /// The most a build's source (downloaded, unpacked or checked out) may take: bytes,
        /// or with Ki, Mi, Gi or Ti.
        #[arg(long, default_value_t = slipway_contract::size::Size::DEFAULT_LIMIT)]
        build_size_limit: slipway_contract::size::Size,
        /// Keep a spare workspace claim per namespace, made ahead of the next build so that it
        /// need not wait for its own to be provisioned (`--workspace-spare=false`: none).
        #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
        workspace_spare: bool,
        /// Log as JSON lines.
        #[arg(long)]
        json_logs: bool,
        /// Seconds after a build finished when its Jobs and workspace are removed, when its
        /// spec does not say (`ttlSecondsAfterFinished`).
        #[arg(long, default_value_t = 3600)]
        default_ttl_seconds: i64,
        /// The requests and limits of build containers when an ImageBuild sets no
        /// `spec.resources`, as JSON (`{"limits":{"memory":"4Gi"}}`).
        #[arg(long, value_parser = resources)]
        default_build_resources: Option<ResourceRequirements>,
        /// Reconcile only while holding a Lease (for more than one replica).
        #[arg(long)]
        leader_election: bool,
        /// The Lease's namespace (default: $POD_NAMESPACE, else `default`).
        #[arg(long)]
        lease_namespace: Option<String>,
        #[arg(long, default_value = "slipway-operator")]
        lease_name: String,
        /// Where /metrics, /healthz and /readyz are served.
        #[arg(long, default_value = "0.0.0.0:8080")]
        metrics_addr: String,
    },
    /// Print the ImageBuild CustomResourceDefinition (the manifest in crds/).
    Crd,
    /// Print the waves of stage Jobs a plan (JSON from `slipway-builder plan`) runs in.
    Schedule {
        plan: PathBuf,
        /// At most this many stage Jobs at once.
        #[arg(long, default_value_t = 4)]
        max_parallel: usize,
    },
}

/// `--default-build-resources`: a ResourceRequirements in JSON.
fn resources(s: &str) -> Result<ResourceRequirements, serde_json::Error> {
    serde_json::from_str(s)
}

#[derive(Debug, thiserror::Error)]
enum Error {
    #[error("cluster connection: {0}")]
    Connect(#[source] kube::Error),
    #[error("cluster version: {0}")]
    Version(#[source] kube::Error),
    #[error("{0}")]
    Leader(#[source] leader::LeaderError),
    #[error("lease {0} lost: stopped reconciling")]
    LeaseLost(String),
    #[error("{}: {source}", path.display())]
    ReadPlan {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: {source}", path.display())]
    ParsePlan {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
}

async fn run(cli: Cli) -> Result<(), Error> {
    match cli.command {
        Cmd::Run {
            builder_image,
            insecure_registries,
            default_workspace_size,
            build_size_limit,
            workspace_spare,
            json_logs,
            metrics_addr,
            default_ttl_seconds,
            default_build_resources,
            leader_election,
            lease_namespace,
            lease_name,
        } => {
            let filter = tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
            let logs = tracing_subscriber::fmt().with_env_filter(filter);
            if json_logs {
                logs.json().init();
            } else {
                logs.init();
            }
            let client = kube::Client::try_default().await.map_err(Error::Connect)?;
            let v = client.apiserver_version().await.map_err(Error::Version)?;
            tracing::info!(
                "connected to Kubernetes {}.{}; builder image {builder_image}",
                v.major,
                v.minor
            );
            let settings = reconcile::Settings {
                builder_image,
                insecure_registries,
                default_workspace_size,
                default_ttl_seconds,
                default_resources: default_build_resources,
                size_limit: build_size_limit,
                workspace_spare,
            };
            let metrics = Arc::new(metrics::Metrics::default());
            let served = metrics.clone();
            tokio::spawn(async move {
                if let Err(e) = endpoints::serve(served, &metrics_addr).await {
                    tracing::error!("metrics on {metrics_addr}: {e}");
                }
            });
            // Ready once connected; with several replicas, all are ready and one reconciles.
            metrics.set_ready();
            if !leader_election {
                reconcile::run(client, settings, metrics, std::future::pending()).await;
                return Ok(());
            }
            let ns = lease_namespace
                .or_else(|| std::env::var("POD_NAMESPACE").ok())
                .unwrap_or_else(|| "default".into());
            let me = std::env::var("HOSTNAME")
                .unwrap_or_else(|_| format!("slipway-operator-{}", std::process::id()));
            let lease = leader::acquire(client.clone(), &ns, &lease_name, &me)
                .await
                .map_err(Error::Leader)?;
            reconcile::run(client, settings, metrics, lease.lost()).await;
            let held = lease.held();
            lease.release().await;
            if held {
                Ok(())
            } else {
                // The Deployment restarts the process as a candidate.
                Err(Error::LeaseLost(lease_name))
            }
        }
        Cmd::Crd => {
            print!("{}", api::crd_json());
            Ok(())
        }
        Cmd::Schedule { plan, max_parallel } => {
            let text = std::fs::read_to_string(&plan).map_err(|source| Error::ReadPlan {
                path: plan.clone(),
                source,
            })?;
            let plan: Plan = serde_json::from_str(&text).map_err(|source| Error::ParsePlan {
                path: plan.clone(),
                source,
            })?;
            // Base images are not resolved here; the Jobs and their order do not depend on it.
            let graph = BuildGraph::new(&plan, &Default::default());
            for (n, wave) in graph.waves(max_parallel).iter().enumerate() {
                let jobs: Vec<String> = wave
                    .iter()
                    .map(|pos| {
                        let j = &graph.jobs[*pos];
                        format!("{} (stages {:?})", j.label(), j.stages)
                    })
                    .collect();
                println!("wave {n}: {}", jobs.join(", "));
            }
            Ok(())
        }
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    match run(Cli::parse()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("slipway-operator: {e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_charts_default_build_resources_parse() {
        // As charts/slipway/templates/deployment.yaml renders the values' default.
        let arg = r#"--default-build-resources={"limits":{"ephemeral-storage":"20Gi","memory":"4Gi"},"requests":{"ephemeral-storage":"256Mi","memory":"128Mi"}}"#;
        let cli = Cli::try_parse_from(["slipway-operator", "run", "--builder-image=b:1", arg])
            .expect("parses");
        let Cmd::Run {
            default_build_resources: Some(r),
            ..
        } = cli.command
        else {
            panic!("no resources");
        };
        let limits = r.limits.expect("limits");
        assert_eq!(limits["memory"].0, "4Gi");
        assert_eq!(limits["ephemeral-storage"].0, "20Gi");
        assert!(
            Cli::try_parse_from([
                "slipway-operator",
                "run",
                "--builder-image=b",
                "--default-build-resources=4Gi"
            ])
            .is_err()
        );
    }
}
