//! What the watch cache keeps of a practitioner: everything a walk, a metric or the decision
//! to skip a pass reads (spec, identity, fingerprint, the Synced reason, drift paths, roles,
//! the create attempt), and none of the text a status carries for people (messages, the diff,
//! warnings, drift values, times, the Ready and InSync conditions). A pass that reports reads
//! the whole status from the API server first (`observe`), so nothing dropped here is ever
//! written back.

use crate::crd::{EpicPractitioner, EpicPractitionerStatus, SYNCED};

/// The annotation client-side apply keeps a full copy of the manifest in.
const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// Slims a practitioner as it enters the watch cache.
pub fn for_cache(p: &mut EpicPractitioner) {
    p.metadata.managed_fields = None;
    // kubectl's and Argo CD's copy of the last applied manifest, and labels: never read here
    // (metadata is only ever written as an explicit finalizer list).
    if let Some(a) = p.metadata.annotations.as_mut() {
        a.remove(LAST_APPLIED);
    }
    p.metadata.labels = None;
    if let Some(s) = p.status.as_mut() {
        slim_status(s);
    }
}

/// Empties what only people read. `String::new()` frees the text (clearing would keep it).
/// Of the conditions only Synced is read from the cache (its reason: the walk, the metrics and
/// the skip of a settled pass); Ready and InSync follow from it and go (300 bytes an object).
fn slim_status(s: &mut EpicPractitionerStatus) {
    s.conditions.retain(|c| c.type_ == SYNCED);
    s.conditions.shrink_to_fit();
    for c in &mut s.conditions {
        c.message = String::new();
        c.last_transition_time = String::new();
    }
    for d in &mut s.drift {
        d.desired = String::new();
        d.live = String::new();
    }
    if let Some(e) = s.last_error.as_mut() {
        e.message = String::new();
    }
    s.diff = None;
    s.warnings = Vec::new();
    s.note = None;
    s.last_sync_time = None;
    s.last_write_time = None;
    s.last_verified_time = None;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::{Condition, ConditionStatus, DriftEntry, LastError};

    #[test]
    fn the_cache_keeps_what_walks_metrics_and_skips_read() {
        let spec = serde_json::from_value(
            serde_json::json!({"connectionRef": {"name": "epic"}, "npi": "1234567893"}),
        )
        .unwrap();
        let mut p = EpicPractitioner::new("alice", spec);
        p.metadata.labels = Some([("team".to_string(), "a".to_string())].into());
        let full = EpicPractitionerStatus {
            observed_generation: Some(2),
            fhir_id: Some("eAb-1".into()),
            connection: Some("https://epic.example.org/fhir".into()),
            live_fingerprint: Some("fp".into()),
            conditions: ["Synced", "Ready", "InSync"]
                .into_iter()
                .map(|type_| Condition {
                    type_: type_.into(),
                    status: ConditionStatus::False,
                    reason: "WriteDisabled".into(),
                    message: "Epic refused the write".into(),
                    last_transition_time: "2026-12-02T00:00:00Z".into(),
                    observed_generation: Some(2),
                })
                .collect(),
            drift: vec![DriftEntry {
                path: "active".into(),
                desired: "false".into(),
                live: "true".into(),
            }],
            diff: Some("--- live\n+++ desired\n".into()),
            last_error: Some(LastError {
                reason: "WriteDisabled".into(),
                message: "refused".into(),
                http_status: Some(403),
                epic_codes: vec!["4118".into()],
            }),
            last_refused_write_time: Some("2026-12-02T00:00:00Z".into()),
            last_handled_requested_at: Some("a".into()),
            warnings: vec!["a warning".into()],
            ..EpicPractitionerStatus::default()
        };
        p.status = Some(full.clone());
        for_cache(&mut p);
        let s = p.status.as_ref().unwrap();
        assert!(p.metadata.labels.is_none());
        // Kept: what a walk, the metrics and the skip of a settled pass read.
        assert_eq!(s.fhir_id, full.fhir_id);
        assert_eq!(s.connection, full.connection);
        assert_eq!(s.live_fingerprint, full.live_fingerprint);
        assert_eq!(s.observed_generation, full.observed_generation);
        assert_eq!(s.last_refused_write_time, full.last_refused_write_time);
        assert_eq!(s.last_handled_requested_at, full.last_handled_requested_at);
        assert_eq!(s.conditions.len(), 1, "only Synced is kept");
        assert_eq!(s.conditions[0].type_, "Synced");
        assert_eq!(s.conditions[0].reason, "WriteDisabled");
        assert_eq!(s.conditions[0].status, ConditionStatus::False);
        assert_eq!(s.drift[0].path, "active");
        assert_eq!(
            s.last_error.as_ref().map(|e| e.reason.as_str()),
            Some("WriteDisabled")
        );
        // Dropped: text for people.
        assert!(s.conditions[0].message.is_empty() && s.drift[0].live.is_empty());
        assert!(s.diff.is_none() && s.warnings.is_empty());
    }
}
