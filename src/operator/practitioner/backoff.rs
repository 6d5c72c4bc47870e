//! How long a practitioner waits before its next pass: jitter and the per-object backoff
//! after failures (roster mode's safety net is the sweep's, `roster::safety_sweep`). Pure except for the random jitter.

use std::time::Duration;

use crate::crd::Reason;
use crate::operator::error::Error;

/// Longest wait before retrying an object that failed (Epic, auth, connection errors).
pub const BACKOFF_CAP: Duration = Duration::from_secs(600);
/// Longest wait when the Kubernetes API failed.
pub const KUBE_BACKOFF_CAP: Duration = Duration::from_secs(10);
/// How long a reconcile of a connection holding its share of the workers waits in the queue.
pub const OVER_SHARE_REQUEUE: Duration = Duration::from_millis(250);
/// How long an object left to the roster walks waits at most before looking again (each
/// walk wakes the objects it finds changed; this only covers walks that stop).
pub const AWAIT_WALK_REQUEUE: Duration = Duration::from_secs(60);
/// The base of the backoff after a failed write.
pub const WRITE_RETRY: Duration = Duration::from_secs(5);

/// A duration with +-10% jitter, so objects created together do not poll together. Never
/// panics: a duration too large to scale is returned as it is.
pub fn jittered(d: Duration) -> Duration {
    let factor = 0.9 + rand::random::<f64>() * 0.2;
    Duration::try_from_secs_f64(d.as_secs_f64() * factor).unwrap_or(d)
}

/// How long an object waits after its `failures`-th failure in a row.
pub fn retry_delay(error: &Error, failures: u32) -> Duration {
    let base = match error {
        Error::Fhir(crate::fhir::FhirError::Throttled {
            retry_after: Some(d),
        }) => *d,
        _ => Duration::from_secs(5),
    };
    // The Kubernetes API coming back costs Epic nothing: retry soon after it does, instead of
    // waiting out a long backoff built up while it was away (measured in RELIABILITY.md).
    let cap = match error {
        Error::Kube(_) | Error::Finalizer(_) => KUBE_BACKOFF_CAP,
        Error::Connection { failure, .. } if failure.reason == Reason::KubernetesError => {
            KUBE_BACKOFF_CAP
        }
        _ => BACKOFF_CAP,
    };
    backoff(failures, base).min(cap)
}

/// Exponential backoff after `failures` failures in a row, capped at [`BACKOFF_CAP`], with
/// jitter over the upper half so that retries of many objects stay apart.
pub fn backoff(failures: u32, base: Duration) -> Duration {
    let exp = base.saturating_mul(1 << failures.min(7)).min(BACKOFF_CAP);
    exp.mul_f64(0.5 + rand::random::<f64>() * 0.5)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jitter_and_backoff_never_panic() {
        assert!(jittered(Duration::MAX) > Duration::from_secs(3600));
        let d = jittered(Duration::from_secs(100));
        assert!(d >= Duration::from_secs(90) && d <= Duration::from_secs(110));
        for failures in [0, 1, 7, u32::MAX] {
            assert!(backoff(failures, Duration::MAX) <= Duration::from_secs(600));
        }
    }

    #[test]
    fn a_kubernetes_outage_is_retried_within_seconds_of_its_end() {
        // Found by the fault suite: after 20 s without the API server, objects waited up to
        // 40 s more on a backoff built up while it was away.
        let kube = Error::Kube(kube::Error::LinesCodecMaxLineLengthExceeded);
        let epic = Error::Fhir(crate::fhir::FhirError::Timeout("slow".into()));
        for failures in [3, 7, 30] {
            assert!(retry_delay(&kube, failures) <= KUBE_BACKOFF_CAP);
        }
        assert!(
            retry_delay(&epic, 7) > KUBE_BACKOFF_CAP,
            "Epic's budget still backs off"
        );
    }
}
