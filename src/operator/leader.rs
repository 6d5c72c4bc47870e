//! Leader election with a coordination.k8s.io/v1 Lease, so two replicas never both write to
//! Epic. The holder renews every `lease_duration / 3`; a replica takes over only after the
//! holder failed to renew for a whole `lease_duration`. Replacing the Lease is conditional on
//! its resourceVersion, so two candidates cannot both win.
//!
//! The holder gives up at its renew deadline (two thirds of the lease), before anyone else may
//! take over: a renew that hangs (an API server that accepts and never answers) counts as a
//! failed one, so an old leader never keeps writing after its Lease could have passed on.

use std::time::Duration;

use chrono::Utc;
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
        let mut last_ok = std::time::Instant::now();
        loop {
            tokio::time::sleep(self.lease_duration / 3).await;
            let left = deadline.saturating_sub(last_ok.elapsed());
            match tokio::time::timeout(left, self.try_acquire_or_renew()).await {
                Ok(Ok(true)) => last_ok = std::time::Instant::now(),
                Ok(Ok(false)) => return "another replica holds the Lease".into(),
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, "lease renewal failed");
                    if last_ok.elapsed() >= deadline {
                        return format!("could not renew the Lease within {deadline:?}: {e}");
                    }
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
                let expired = match (&spec.renew_time, spec.lease_duration_seconds) {
                    (Some(renew), Some(secs)) => {
                        let renewed_ms = renew.0.as_millisecond();
                        Utc::now().timestamp_millis() > renewed_ms + i64::from(secs) * 1000
                    }
                    _ => true,
                };
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
