//! "Check now" and what was checked: the `epic-operator.dev/requested-at` annotation, the
//! coarse `lastVerifiedTime`, and the drift count behind the `Drift` column.

use std::time::Duration;

use crate::crd::{EpicPractitioner, EpicPractitionerStatus};
use crate::util::{age_of, now_rfc3339};

/// Marks the record as read from Epic now, unless the last mark is younger than `resync`:
/// a sync that confirms what status shows then writes nothing (the time would be the only
/// change), so at most one status write per object and resync interval comes from this.
pub fn verified(
    old: &EpicPractitionerStatus,
    mut new: EpicPractitionerStatus,
    resync: Duration,
) -> EpicPractitionerStatus {
    let fresh_enough = old
        .last_verified_time
        .as_deref()
        .and_then(age_of)
        .is_some_and(|age| age < resync);
    new.last_verified_time = if fresh_enough {
        old.last_verified_time.clone()
    } else {
        Some(now_rfc3339())
    };
    new
}

/// What every reported status carries: the drift count, and the `requested-at` value this
/// pass acted on (a failed pass counts too: it read, or tried to, and says why in status).
pub fn mark(obj: &EpicPractitioner, status: &mut EpicPractitionerStatus) {
    status.drift_count = Some(u32::try_from(status.drift.len()).unwrap_or(u32::MAX));
    if let Some(asked) = obj.pending_request() {
        status.last_handled_requested_at = Some(asked.to_string());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::{DriftEntry, EpicPractitionerSpec, REQUESTED_AT_ANNOTATION};

    /// Whether the object asks for a fresh read now (what `observe` asks).
    fn requested(obj: &EpicPractitioner) -> bool {
        obj.pending_request().is_some()
    }

    fn object(annotation: Option<&str>, handled: Option<&str>) -> EpicPractitioner {
        let spec: EpicPractitionerSpec = serde_json::from_value(
            serde_json::json!({"connectionRef": {"name": "epic"}, "npi": "1234567893"}),
        )
        .unwrap();
        let mut p = EpicPractitioner::new("p", spec);
        if let Some(v) = annotation {
            p.metadata.annotations =
                Some([(REQUESTED_AT_ANNOTATION.to_string(), v.to_string())].into());
        }
        p.status = Some(EpicPractitionerStatus {
            last_handled_requested_at: handled.map(str::to_string),
            ..EpicPractitionerStatus::default()
        });
        p
    }

    #[test]
    fn a_new_request_value_is_pending_until_handled() {
        assert!(!requested(&object(None, None)));
        assert!(requested(&object(Some("2026-01-01T00:00:00Z"), None)));
        assert!(requested(&object(Some("b"), Some("a"))));
        assert!(!requested(&object(Some("a"), Some("a"))));

        let p = object(Some("now"), None);
        let mut s = EpicPractitionerStatus {
            drift: vec![DriftEntry {
                path: "active".into(),
                desired: "true".into(),
                live: "false".into(),
            }],
            ..EpicPractitionerStatus::default()
        };
        mark(&p, &mut s);
        assert_eq!(s.last_handled_requested_at.as_deref(), Some("now"));
        assert_eq!(s.drift_count, Some(1));
        // Handled: marking again keeps the value and asks for nothing more.
        let mut handled = p.clone();
        handled.status = Some(s.clone());
        assert!(!requested(&handled));
    }

    #[test]
    fn the_verified_time_moves_at_most_once_per_resync_interval() {
        let hour = Duration::from_secs(3600);
        let never = EpicPractitionerStatus::default();
        let first = verified(&never, never.clone(), hour);
        assert!(first.last_verified_time.is_some());
        let recent = EpicPractitionerStatus {
            last_verified_time: Some("2000-01-01T00:00:00Z".into()),
            ..EpicPractitionerStatus::default()
        };
        // Older than the interval: moves to now.
        let moved = verified(&recent, recent.clone(), hour);
        assert_ne!(moved.last_verified_time, recent.last_verified_time);
        // Younger than the interval: kept, so status stays unchanged and is not written.
        let kept = verified(&moved, moved.clone(), hour);
        assert_eq!(kept.last_verified_time, moved.last_verified_time);
        assert!(!super::super::status::changed(&moved, &kept));
    }
}
