//! Leader election with a coordination.k8s.io Lease (kube-lease-manager), for more than one
//! replica: only the holder reconciles. The holder renews the Lease before it expires; a
//! candidate takes it when it is free or expired (server-side apply detects two candidates
//! racing). The holder that loses the Lease stops reconciling and the process exits, so that
//! the Deployment restarts it as a candidate; on SIGTERM it gives the Lease up, so that a
//! replacement takes over at once instead of after the Lease's duration. While the API server
//! cannot be reached, kube-lease-manager keeps the last state (the holder's writes fail too);
//! it reports the loss once it reads the Lease again.

use std::future::Future;

use kube::Client;
use kube_lease_manager::{LeaseManager, LeaseManagerBuilder, LeaseManagerError};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::{info, warn};

/// Seconds a Lease is valid after its last renewal.
const DURATION: u64 = 15;
/// The holder renews this many seconds before the Lease expires (and tolerates this much
/// clock skew between nodes).
const GRACE: u64 = 5;

#[derive(Debug, thiserror::Error)]
pub enum LeaderError {
    #[error("lease {name}: {source}")]
    Manager {
        name: String,
        #[source]
        source: LeaseManagerError,
    },
    #[error("lease {0}: the lease manager stopped")]
    Stopped(String),
}

/// The Lease, held.
pub struct Leadership {
    name: String,
    held: watch::Receiver<bool>,
    task: JoinHandle<Result<LeaseManager, LeaseManagerError>>,
}

/// Waits until `me` holds the Lease `ns/name`; it is renewed in the background from then on.
pub async fn acquire(
    client: Client,
    ns: &str,
    name: &str,
    me: &str,
) -> Result<Leadership, LeaderError> {
    info!("waiting for lease {ns}/{name} as {me}");
    let failed = |source| LeaderError::Manager {
        name: name.to_string(),
        source,
    };
    let manager = LeaseManagerBuilder::new(client, name)
        .with_namespace(ns)
        .with_identity(me)
        .with_duration(DURATION)
        .with_grace(GRACE)
        .build()
        .await
        .map_err(failed)?;
    let (mut held, task) = manager.watch().await;
    loop {
        if *held.borrow_and_update() {
            break;
        }
        if held.changed().await.is_err() {
            // The manager stopped: its error is in the task.
            return Err(match task.await {
                Ok(Err(e)) => failed(e),
                _ => LeaderError::Stopped(name.to_string()),
            });
        }
    }
    info!("leader: holding lease {name} as {me}");
    Ok(Leadership {
        name: name.to_string(),
        held,
        task,
    })
}

impl Leadership {
    /// Resolves when the Lease is lost, or can no longer be renewed.
    pub fn lost(&self) -> impl Future<Output = ()> + Send + Sync + 'static {
        let mut held = self.held.clone();
        let name = self.name.clone();
        async move {
            loop {
                let now = *held.borrow_and_update();
                if !now || held.changed().await.is_err() {
                    warn!("lease {name} lost: stopping, then exiting");
                    return;
                }
            }
        }
    }

    /// Whether the Lease is still held.
    pub fn held(&self) -> bool {
        *self.held.borrow() && !self.task.is_finished()
    }

    /// Gives the Lease up (when still held) and waits for that.
    pub async fn release(self) {
        let Leadership { name, held, task } = self;
        // The manager releases the Lease once its last receiver is gone.
        drop(held);
        match task.await {
            Ok(Ok(_)) => info!("lease {name} released"),
            Ok(Err(e)) => warn!("lease {name}: releasing: {e}"),
            Err(e) => warn!("lease {name}: {e}"),
        }
    }
}
