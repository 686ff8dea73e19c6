//! Leader election with a coordination.k8s.io Lease, for more than one replica: only the
//! holder reconciles. A candidate takes the Lease when it is free or its holder stopped
//! renewing it; the holder renews it every few seconds and exits when it cannot, so that a
//! replacement takes over (the Deployment restarts it as a candidate). Updates carry the
//! Lease's resourceVersion, so two candidates never both win.

use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, PostParams};
use tracing::{info, warn};

const DURATION: i32 = 15;
const RENEW: Duration = Duration::from_secs(5);

/// Whether `lease` may be taken by `me` at `now` (seconds).
pub fn can_take(spec: Option<&LeaseSpec>, me: &str, now: i64) -> bool {
    let Some(s) = spec else { return true };
    match s.holder_identity.as_deref() {
        None | Some("") => true,
        Some(h) if h == me => true,
        Some(_) => {
            let renewed = s.renew_time.as_ref().map(|t| t.0.as_second()).unwrap_or(0);
            let duration = i64::from(s.lease_duration_seconds.unwrap_or(DURATION));
            renewed + duration < now
        }
    }
}

fn spec(me: &str, previous: Option<&LeaseSpec>) -> LeaseSpec {
    let now = MicroTime(Timestamp::now());
    let same = previous.and_then(|p| p.holder_identity.as_deref()) == Some(me);
    LeaseSpec {
        holder_identity: Some(me.to_string()),
        lease_duration_seconds: Some(DURATION),
        acquire_time: if same {
            previous.and_then(|p| p.acquire_time.clone())
        } else {
            Some(now.clone())
        },
        renew_time: Some(now),
        lease_transitions: Some(
            previous.and_then(|p| p.lease_transitions).unwrap_or(0) + i32::from(!same),
        ),
        ..Default::default()
    }
}

/// One attempt to take or renew the Lease; true when `me` holds it afterwards.
async fn try_hold(leases: &Api<Lease>, name: &str, me: &str) -> Result<bool, kube::Error> {
    match leases.get_opt(name).await? {
        None => {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(name.to_string()),
                    ..Default::default()
                },
                spec: Some(spec(me, None)),
            };
            match leases.create(&PostParams::default(), &lease).await {
                Ok(_) => Ok(true),
                Err(kube::Error::Api(s)) if s.code == 409 => Ok(false),
                Err(e) => Err(e),
            }
        }
        Some(mut lease) => {
            if !can_take(lease.spec.as_ref(), me, Timestamp::now().as_second()) {
                return Ok(false);
            }
            lease.spec = Some(spec(me, lease.spec.as_ref()));
            match leases.replace(name, &PostParams::default(), &lease).await {
                Ok(_) => Ok(true),
                Err(kube::Error::Api(s)) if s.code == 409 => Ok(false),
                Err(e) => Err(e),
            }
        }
    }
}

/// Waits until `me` holds the Lease, then keeps renewing it in the background; the process
/// exits when the Lease is lost.
pub async fn acquire(leases: Api<Lease>, name: String, me: String) {
    loop {
        match try_hold(&leases, &name, &me).await {
            Ok(true) => break,
            Ok(false) => {}
            Err(e) => warn!("lease {name}: {e}"),
        }
        tokio::time::sleep(RENEW).await;
    }
    info!("leader: holding lease {name} as {me}");
    tokio::spawn(async move {
        let mut failures = 0;
        loop {
            tokio::time::sleep(RENEW).await;
            match try_hold(&leases, &name, &me).await {
                Ok(true) => failures = 0,
                Ok(false) => {
                    warn!("lease {name} taken by another replica: exiting");
                    std::process::exit(1);
                }
                Err(e) => {
                    failures += 1;
                    warn!("lease {name}: renewing: {e}");
                    if failures * RENEW.as_secs() as i32 >= DURATION - 5 {
                        warn!("lease {name} could not be renewed in time: exiting");
                        std::process::exit(1);
                    }
                }
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn held(by: &str, renewed: i64) -> LeaseSpec {
        LeaseSpec {
            holder_identity: Some(by.into()),
            lease_duration_seconds: Some(15),
            renew_time: Some(MicroTime(Timestamp::from_second(renewed).expect("t"))),
            ..Default::default()
        }
    }

    #[test]
    fn a_lease_is_free_when_unheld_mine_or_expired() {
        assert!(can_take(None, "a", 100));
        assert!(can_take(Some(&held("a", 95)), "a", 100));
        assert!(!can_take(Some(&held("b", 95)), "a", 100));
        assert!(can_take(Some(&held("b", 80)), "a", 100));
        assert!(can_take(Some(&LeaseSpec::default()), "a", 100));
    }
}
