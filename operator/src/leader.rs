//! Leader election with a coordination.k8s.io Lease (kube-lease-manager), for more than one
//! replica: only the holder reconciles. The holder renews the Lease before it expires; a
//! candidate takes it when it is free or expired (server-side apply detects two candidates
//! racing). The holder that loses the Lease stops reconciling and the process exits, so that
//! the Deployment restarts it as a candidate; on SIGTERM it gives the Lease up, so that a
//! replacement takes over at once instead of after the Lease's duration. While the API server
//! cannot be reached, kube-lease-manager keeps the last state (the holder's writes fail too);
//! it reports the loss once it reads the Lease again.
//!
//! A renew that hangs (L9) is not a loss to kube-lease-manager until the request fails,
//! minutes later, while another replica takes the expired Lease after [`DURATION`]: so the
//! holder reads the Lease itself every second ([`watchdog`]) and stops reconciling once its
//! last renewal is [`STALE`] seconds old, before the Lease expires.

use std::future::Future;
use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::jiff::Timestamp;
use kube::{Api, Client};
use kube_lease_manager::{LeaseManager, LeaseManagerBuilder, LeaseManagerError};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::{info, warn};

/// Seconds a Lease is valid after its last renewal.
const DURATION: u64 = 15;
/// The holder renews this many seconds before the Lease expires (and tolerates this much
/// clock skew between nodes).
const GRACE: u64 = 5;
/// The holder stops once its last renewal is older than this: renewals come every
/// `DURATION - GRACE` seconds; this leaves 2 s for one to land, and stops (with the watchdog's
/// 1 s checks and 1 s reads) before another replica may take the Lease.
const STALE: u64 = DURATION - 3;
/// How often the watchdog reads the Lease, and how long it waits for an answer.
const CHECK: Duration = Duration::from_secs(1);

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
    /// Set by the [`watchdog`] when the holder cannot confirm its renewals.
    stale: watch::Receiver<bool>,
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
    let leases: Api<Lease> = Api::namespaced(client.clone(), ns);
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
    let (stale_tx, stale) = watch::channel(false);
    tokio::spawn(watchdog(leases, name.to_string(), me.to_string(), stale_tx));
    Ok(Leadership {
        name: name.to_string(),
        held,
        task,
        stale,
    })
}

/// Reads the Lease every [`CHECK`]; says `true` on `stale` (and ends) once `me` no longer
/// holds it or its last renewal seen is older than [`STALE`]. A read that fails or hangs
/// leaves the judgement to the last renewal seen.
async fn watchdog(leases: Api<Lease>, name: String, me: String, stale: watch::Sender<bool>) {
    let mut renewed = Timestamp::now();
    while !stale.is_closed() {
        tokio::time::sleep(CHECK).await;
        if let Ok(Ok(lease)) = tokio::time::timeout(CHECK, leases.get(&name)).await {
            match renewal(&lease, &me) {
                Some(t) => renewed = t,
                None => {
                    warn!("lease {name}: held by another: stopping");
                    let _ = stale.send(true);
                    return;
                }
            }
        }
        if too_old(renewed, Timestamp::now()) {
            warn!("lease {name}: not renewed since {renewed}: stopping before it expires");
            let _ = stale.send(true);
            return;
        }
    }
}

/// When `me` last renewed `lease` (its renew time, else its acquire time); `None` when
/// another holds it.
pub fn renewal(lease: &Lease, me: &str) -> Option<Timestamp> {
    let spec = lease.spec.as_ref()?;
    if spec.holder_identity.as_deref() != Some(me) {
        return None;
    }
    Some(
        spec.renew_time
            .as_ref()
            .or(spec.acquire_time.as_ref())
            .map_or(Timestamp::UNIX_EPOCH, |t| t.0),
    )
}

/// A renewal at `renewed` is too old at `now` to go on reconciling.
pub fn too_old(renewed: Timestamp, now: Timestamp) -> bool {
    now.as_millisecond() - renewed.as_millisecond() > (STALE * 1000) as i64
}

impl Leadership {
    /// Resolves when the Lease is lost, or can no longer be renewed.
    pub fn lost(&self) -> impl Future<Output = ()> + Send + Sync + 'static {
        let mut held = self.held.clone();
        let mut stale = self.stale.clone();
        let name = self.name.clone();
        async move {
            let lost = async {
                loop {
                    let now = *held.borrow_and_update();
                    if !now || held.changed().await.is_err() {
                        return;
                    }
                }
            };
            tokio::select! {
                _ = lost => {}
                _ = stale.wait_for(|s| *s) => {}
            }
            warn!("lease {name} lost: stopping, then exiting");
        }
    }

    /// Whether the Lease is still held (and its renewals confirmed).
    pub fn held(&self) -> bool {
        *self.held.borrow() && !self.task.is_finished() && !*self.stale.borrow()
    }

    /// Gives the Lease up (when still held) and waits for that.
    pub async fn release(self) {
        let Leadership {
            name, held, task, ..
        } = self;
        // The manager releases the Lease once its last receiver is gone.
        drop(held);
        match task.await {
            Ok(Ok(_)) => info!("lease {name} released"),
            Ok(Err(e)) => warn!("lease {name}: releasing: {e}"),
            Err(e) => warn!("lease {name}: {e}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::coordination::v1::LeaseSpec;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;

    fn at(ms: i64) -> Timestamp {
        Timestamp::from_millisecond(ms).expect("time")
    }

    fn lease(holder: &str, renewed: Option<i64>) -> Lease {
        Lease {
            spec: Some(LeaseSpec {
                holder_identity: Some(holder.into()),
                renew_time: renewed.map(|ms| MicroTime(at(ms))),
                acquire_time: Some(MicroTime(at(1_000))),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn a_renewal_is_confirmed_only_for_the_holder() {
        assert_eq!(renewal(&lease("me", Some(5_000)), "me"), Some(at(5_000)));
        assert_eq!(renewal(&lease("me", None), "me"), Some(at(1_000)));
        assert_eq!(renewal(&lease("other", Some(5_000)), "me"), None);
        assert_eq!(renewal(&Lease::default(), "me"), None);
    }

    #[test]
    fn the_holder_stops_before_the_lease_expires() {
        let renewed = at(100_000);
        // Renewals come every DURATION - GRACE seconds: not stale then.
        assert!(!too_old(
            renewed,
            at(100_000 + (DURATION - GRACE) as i64 * 1000)
        ));
        assert!(!too_old(renewed, at(100_000 + STALE as i64 * 1000)));
        assert!(too_old(renewed, at(100_000 + STALE as i64 * 1000 + 1)));
        // ...and stale, with a check and a read to notice, before another may take it.
        assert!(STALE + 2 * CHECK.as_secs() < DURATION);
    }
}
