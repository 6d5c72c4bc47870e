//! Leader election with a coordination.k8s.io/v1 Lease, so two replicas never both write to
//! Epic. The holder renews every `lease_duration / 3`; a replica takes over only after the
//! holder failed to renew for a whole `lease_duration`. Replacing the Lease is conditional on
//! its resourceVersion, so two candidates cannot both win.
//!
//! The holder gives up at its renew deadline (two thirds of the lease, counted from the start
//! of its last successful renewal: that is when it stamped `renewTime`), before anyone else may
//! take over: a renew that hangs (an API server that accepts and never answers) counts as a
//! failed one, so an old leader never keeps writing after its Lease could have passed on. A
//! failed renewal is retried soon, not a full period later.
//!
//! Expiry is judged as client-go does, by time observed here: a candidate takes a Lease over
//! only after it has seen the same holder and `renewTime` unchanged for a whole lease duration
//! on its own clock. Comparing the holder's wall-clock stamp with this host's clock would let a
//! skewed standby take a live Lease.

use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use kube::Api;
use kube::api::{ObjectMeta, PostParams};

/// A Lease-based lock.
pub struct LeaderElector {
    api: Api<Lease>,
    name: String,
    identity: String,
    lease_duration: Duration,
    /// The Lease record (holder, renewTime) last seen, and when this replica first saw it.
    observed: std::sync::Mutex<Option<Observed>>,
}

/// A Lease record as this replica saw it.
#[derive(Clone, Debug)]
struct Observed {
    record: (Option<String>, Option<String>),
    since: Instant,
}

/// Whether a Lease whose record is `record` has expired, given what was observed before (and
/// updates the observation): only a record seen unchanged for `lease` on this clock has.
fn expired_locally(
    observed: &mut Option<Observed>,
    record: (Option<String>, Option<String>),
    now: Instant,
    lease: Duration,
) -> bool {
    match observed {
        Some(o) if o.record == record => now.saturating_duration_since(o.since) > lease,
        _ => {
            *observed = Some(Observed { record, since: now });
            false
        }
    }
}

impl LeaderElector {
    pub fn new(
        client: kube::Client,
        namespace: &str,
        name: &str,
        identity: &str,
        lease_duration: Duration,
    ) -> Self {
        Self {
            api: Api::namespaced(client, namespace),
            name: name.into(),
            identity: identity.into(),
            lease_duration,
            observed: std::sync::Mutex::new(None),
        }
    }

    pub fn identity(&self) -> &str {
        &self.identity
    }

    /// Waits until this replica holds the Lease.
    pub async fn acquire(&self) -> Result<(), kube::Error> {
        loop {
            if self.try_acquire_or_renew().await? {
                tracing::info!(lease = %self.name, identity = %self.identity, "became leader");
                return Ok(());
            }
            tokio::time::sleep(self.lease_duration / 3).await;
        }
    }

    /// The time after the last successful renewal at which this replica stops holding.
    pub fn renew_deadline(&self) -> Duration {
        self.lease_duration.saturating_mul(2) / 3
    }

    /// Keeps renewing; returns when leadership is lost (the caller must stop writing): the
    /// Lease went to another replica, or no renewal succeeded within the renew deadline
    /// (including one that never answered).
    pub async fn hold(&self) -> String {
        let deadline = self.renew_deadline();
        let period = self.lease_duration / 3;
        // After a failure, try again soon: a single lost request must not cost a whole period.
        let retry = (self.lease_duration / 10).max(Duration::from_millis(200));
        let mut last_ok = Instant::now();
        let mut wait = period;
        loop {
            tokio::time::sleep(wait.min(deadline.saturating_sub(last_ok.elapsed()))).await;
            let attempt = Instant::now();
            let left = deadline.saturating_sub(last_ok.elapsed());
            match tokio::time::timeout(left, self.try_acquire_or_renew()).await {
                // The deadline counts from when this renewal stamped renewTime, not from when
                // the API server answered.
                Ok(Ok(true)) => {
                    last_ok = attempt;
                    wait = period;
                }
                Ok(Ok(false)) => return "another replica holds the Lease".into(),
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, "lease renewal failed");
                    if last_ok.elapsed() >= deadline {
                        return format!("could not renew the Lease within {deadline:?}: {e}");
                    }
                    wait = retry;
                }
                Err(_) => {
                    return format!(
                        "the Lease renewal did not finish within the renew deadline ({deadline:?})"
                    );
                }
            }
        }
    }

    /// Gives the Lease up (on shutdown) so a standby takes over at once.
    pub async fn release(&self) {
        if let Ok(Some(mut lease)) = self.api.get_opt(&self.name).await
            && let Some(spec) = lease.spec.as_mut()
            && spec.holder_identity.as_deref() == Some(self.identity.as_str())
        {
            spec.holder_identity = None;
            spec.acquire_time = None;
            spec.renew_time = None;
            let _ = self
                .api
                .replace(&self.name, &PostParams::default(), &lease)
                .await;
        }
    }

    async fn try_acquire_or_renew(&self) -> Result<bool, kube::Error> {
        let now = MicroTime(k8s_openapi::jiff::Timestamp::now());
        let duration_secs = self.lease_duration.as_secs().max(1) as i32;
        match self.api.get_opt(&self.name).await? {
            None => {
                let lease = Lease {
                    metadata: ObjectMeta {
                        name: Some(self.name.clone()),
                        ..ObjectMeta::default()
                    },
                    spec: Some(LeaseSpec {
                        holder_identity: Some(self.identity.clone()),
                        lease_duration_seconds: Some(duration_secs),
                        acquire_time: Some(now.clone()),
                        renew_time: Some(now),
                        lease_transitions: Some(0),
                        ..LeaseSpec::default()
                    }),
                };
                match self.api.create(&PostParams::default(), &lease).await {
                    Ok(_) => Ok(true),
                    Err(kube::Error::Api(e)) if e.code == 409 => Ok(false),
                    Err(e) => Err(e),
                }
            }
            Some(mut lease) => {
                let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
                let mine = spec.holder_identity.as_deref() == Some(self.identity.as_str());
                let record = (
                    spec.holder_identity.clone(),
                    spec.renew_time.as_ref().map(|t| t.0.to_string()),
                );
                // The holder's own lease duration, bounded (a Lease written by anyone).
                let holder_lease = spec
                    .lease_duration_seconds
                    .and_then(|s| u64::try_from(s).ok())
                    .map_or(self.lease_duration, |s| {
                        Duration::from_secs(s.clamp(1, 3600))
                    });
                let expired = spec.renew_time.is_none()
                    || expired_locally(
                        &mut self.observed.lock().unwrap_or_else(|p| p.into_inner()),
                        record,
                        Instant::now(),
                        holder_lease,
                    );
                let vacant = spec.holder_identity.as_deref().is_none_or(str::is_empty);
                if !mine && !expired && !vacant {
                    return Ok(false);
                }
                if !mine {
                    spec.lease_transitions = Some(spec.lease_transitions.unwrap_or(0) + 1);
                    spec.acquire_time = Some(now.clone());
                    spec.holder_identity = Some(self.identity.clone());
                }
                spec.lease_duration_seconds = Some(duration_secs);
                spec.renew_time = Some(now);
                // replace() carries resourceVersion: a concurrent change makes it fail with 409.
                match self
                    .api
                    .replace(&self.name, &PostParams::default(), &lease)
                    .await
                {
                    Ok(_) => Ok(true),
                    Err(kube::Error::Api(e)) if e.code == 409 => Ok(false),
                    Err(e) => Err(e),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(holder: &str, renewed: &str) -> (Option<String>, Option<String>) {
        (Some(holder.into()), Some(renewed.into()))
    }

    #[test]
    fn a_lease_expires_only_after_a_whole_duration_unchanged_on_this_clock() {
        let lease = Duration::from_secs(15);
        let t0 = Instant::now();
        let mut seen = None;
        // A renewTime far in the past (the holder's clock is behind): not expired on sight.
        assert!(!expired_locally(
            &mut seen,
            record("a", "2001-01-01T00:00:00Z"),
            t0,
            lease
        ));
        assert!(!expired_locally(
            &mut seen,
            record("a", "2001-01-01T00:00:00Z"),
            t0 + Duration::from_secs(15),
            lease
        ));
        assert!(expired_locally(
            &mut seen,
            record("a", "2001-01-01T00:00:00Z"),
            t0 + Duration::from_secs(16),
            lease
        ));
        // A renewal seen starts the count again.
        assert!(!expired_locally(
            &mut seen,
            record("a", "2001-01-01T00:00:05Z"),
            t0 + Duration::from_secs(17),
            lease
        ));
        assert!(!expired_locally(
            &mut seen,
            record("a", "2001-01-01T00:00:05Z"),
            t0 + Duration::from_secs(30),
            lease
        ));
        // Another holder is a new record too.
        assert!(!expired_locally(
            &mut seen,
            record("b", "2001-01-01T00:00:05Z"),
            t0 + Duration::from_secs(40),
            lease
        ));
    }
}
