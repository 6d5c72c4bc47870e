//! Walk statistics on the EpicConnection's status (`status.walk`): when the last roster walk
//! started, how long it took, what it saw, how many pages it cost and how many paging
//! sessions expired. Written once per walk under a field manager of its own, so the
//! connection reconcile (which applies the rest of the status) neither owns nor resets it.

use std::time::Instant;

use kube::Api;
use kube::api::{Patch, PatchParams};
use serde_json::json;

use crate::crd::{EpicConnection, EpicConnectionStatus, WalkStatus};
use crate::fhir::FhirError;
use crate::operator::Context;
use crate::operator::connection::cache::{Key, connection_label};
use crate::util::now_rfc3339;

/// The field manager of `status.walk`.
pub const WALK_FIELD_MANAGER: &str = "epic-operator-walks";

/// A walk under way: when it started and the connection's page count then.
pub struct Started {
    at: String,
    clock: Instant,
    pages: u64,
}

impl Started {
    pub fn now(ctx: &Context, key: &Key) -> Self {
        Self {
            at: now_rfc3339(),
            clock: Instant::now(),
            pages: ctx.metrics.page_requests(&connection_label(key)),
        }
    }

    /// Writes the finished walk (records seen and whether it restarted after a 4113, or its
    /// error) to the connection's status. A failed write is logged, never fatal: the
    /// statistics are for people, the walk's work is done either way.
    pub async fn finish(self, ctx: &Context, key: &Key, result: Walked<'_>) {
        let pages = ctx
            .metrics
            .page_requests(&connection_label(key))
            .saturating_sub(self.pages);
        let api: Api<EpicConnection> = Api::namespaced(ctx.kube.clone(), &key.0);
        let previous_success = api
            .get_status(&key.1)
            .await
            .ok()
            .and_then(|c| c.status?.walk?.last_success_time);
        let walk = status(self, pages, result, previous_success);
        let patch = json!({
            "apiVersion": "epic-operator.dev/v1alpha1",
            "kind": "EpicConnection",
            "status": {"walk": walk},
        });
        if let Err(e) = api
            .patch_status(
                &key.1,
                &PatchParams::apply(WALK_FIELD_MANAGER).force(),
                &Patch::Apply(&patch),
            )
            .await
        {
            tracing::warn!(connection = %key.1, error = %e, "cannot write the walk statistics to status");
        }
    }
}

/// What a walk came to: the records it saw and whether it restarted, or its error.
pub type Walked<'a> = Result<(usize, bool), &'a FhirError>;

/// The status of a finished walk.
fn status(
    started: Started,
    pages: u64,
    result: Walked<'_>,
    previous_success: Option<String>,
) -> WalkStatus {
    let elapsed = started.clock.elapsed();
    let seconds = (elapsed.as_millis() as f64) / 1000.0;
    match result {
        Ok((records, restarted)) => WalkStatus {
            last_start_time: started.at,
            last_duration_seconds: seconds,
            last_result: "Succeeded".into(),
            records: records as u64,
            pages,
            paging_expired: u32::from(restarted),
            last_success_time: Some(now_rfc3339()),
            last_error: None,
        },
        Err(e) => WalkStatus {
            last_start_time: started.at,
            last_duration_seconds: seconds,
            last_result: "Failed".into(),
            records: 0,
            pages,
            // A walk fails on a 4113 only after one restart on another.
            paging_expired: if matches!(e, FhirError::PagingExpired { .. }) {
                2
            } else {
                0
            },
            last_success_time: previous_success,
            last_error: Some(e.reason().as_str().to_string()),
        },
    }
}

/// The status the connection reconcile applies: everything but `walk`.
pub fn without_walk(s: &EpicConnectionStatus) -> EpicConnectionStatus {
    EpicConnectionStatus {
        walk: None,
        ..s.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn started() -> Started {
        Started {
            at: "2026-12-01T10:00:00Z".into(),
            clock: Instant::now(),
            pages: 0,
        }
    }

    #[test]
    fn a_walk_reports_what_it_saw_and_a_failure_keeps_the_last_success() {
        let ok = status(started(), 42, Ok((400, true)), None);
        assert_eq!(
            (
                ok.records,
                ok.pages,
                ok.paging_expired,
                ok.last_result.as_str()
            ),
            (400, 42, 1, "Succeeded")
        );
        assert!(ok.last_success_time.is_some() && ok.last_error.is_none());
        let failed = status(
            started(),
            3,
            Err(&FhirError::Timeout("slow".into())),
            ok.last_success_time.clone(),
        );
        assert_eq!(failed.last_result, "Failed");
        assert_eq!(failed.last_success_time, ok.last_success_time);
        assert!(failed.last_error.is_some());
        let status = EpicConnectionStatus {
            walk: Some(failed),
            ..EpicConnectionStatus::default()
        };
        assert!(without_walk(&status).walk.is_none());
    }
}
