use super::*;
use crate::crd::{Condition, ConditionStatus, DriftEntry, LastError};

fn practitioner(spec: serde_json::Value) -> EpicPractitioner {
    let mut p = EpicPractitioner::new("alice", serde_json::from_value(spec).unwrap());
    p.metadata.labels = Some([("team".to_string(), "a".to_string())].into());
    p.metadata.annotations = Some(
        [
            (LAST_APPLIED.to_string(), "{...}".to_string()),
            (REQUESTED_AT_ANNOTATION.to_string(), "a".to_string()),
        ]
        .into(),
    );
    p
}

fn full_status() -> EpicPractitionerStatus {
    EpicPractitionerStatus {
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
    }
}

#[test]
fn the_cache_keeps_what_walks_metrics_and_skips_read() {
    let mut p = practitioner(serde_json::json!({
        "connectionRef": {"name": "epic"}, "npi": "1234567893",
        "deletionPolicy": "Deactivate",
        "name": {"family": "Doe", "given": ["Alice"]},
    }));
    p.status = Some(full_status());
    let full = p.status.clone().unwrap();
    let c = CachedPractitioner::from(p);
    assert!(c.metadata.labels.is_none());
    let annotations = c.metadata.annotations.as_ref().unwrap();
    assert!(!annotations.contains_key(LAST_APPLIED));
    assert_eq!(c.spec.npi.as_ref(), "1234567893");
    assert_eq!(c.spec.connection_ref.name, "epic");
    assert_eq!(c.spec.deletion_policy, DeletionPolicy::Deactivate);
    assert_eq!(c.spec.invalid, None);
    // The status as a pass decides by it before reading the object whole.
    let s = c.stand_in().status.unwrap();
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
    assert_eq!(s.synced_reason(), Some(Reason::WriteDisabled));
    assert_eq!(s.drift[0].path, "active");
    assert_eq!(
        s.last_error
            .as_ref()
            .map(|e| (e.reason.as_str(), e.http_status)),
        Some(("WriteDisabled", Some(403)))
    );
    // Dropped: text for people, and the desired record.
    assert!(s.conditions[0].message.is_empty() && s.drift[0].live.is_empty());
    assert!(s.last_error.is_some_and(|e| e.message.is_empty()));
    assert!(s.diff.is_none() && s.warnings.is_empty());
    assert!(c.stand_in().spec.name.is_none());
    // The annotations are read as on the whole object.
    assert_eq!(c.pending_request(), None, "requested-at a was handled");
    assert!(!c.is_paused());
}

#[test]
fn an_invalid_spec_is_noted_as_it_enters_the_cache() {
    let c = CachedPractitioner::from(practitioner(serde_json::json!({
        "connectionRef": {"name": "epic"}, "npi": "1234567890",
    })));
    let why = c.spec.invalid.as_deref().unwrap_or_default();
    assert!(why.contains("check digit"), "{why}");
    assert!(
        c.pending_request() == Some("a"),
        "no status: the request is pending"
    );
}

#[test]
fn decoding_goes_through_the_whole_type() {
    let json = serde_json::json!({
        "apiVersion": "epic-operator.dev/v1alpha1", "kind": "EpicPractitioner",
        "metadata": {"name": "alice", "namespace": "ns", "uid": "u1",
                     "annotations": {"epic-operator.dev/paused": "true"}},
        "spec": {"connectionRef": {"name": "epic"}, "npi": "1234567893"},
        "status": {"fhirId": "eAb-1", "conditions": [{"type": "Synced", "status": "True",
                   "reason": "Resolved", "message": "m", "lastTransitionTime": "t"}]},
    });
    let c: CachedPractitioner = serde_json::from_value(json).unwrap();
    assert!(c.is_paused());
    let s = c.status.as_ref().unwrap();
    assert_eq!(s.fhir_id.as_deref(), Some("eAb-1"));
    assert_eq!(s.synced, Some((Reason::Resolved, ConditionStatus::True)));
    // A reason this release does not know (an older or newer one) reads as Unknown.
    let mut p =
        practitioner(serde_json::json!({"connectionRef": {"name": "epic"}, "npi": "1234567893"}));
    let mut status = full_status();
    status.conditions[0].reason = "SomethingNew".into();
    p.status = Some(status);
    let s = CachedPractitioner::from(p).status.unwrap();
    assert_eq!(s.synced_reason(), Some(Reason::Unknown));
}

/// The store keeps one `Arc` per object for the object's life: its allocation (the object
/// and the two counts) stays within jemalloc's 640-byte size class.
#[test]
fn a_cached_object_fits_the_640_byte_class() {
    let arc_inner = std::mem::size_of::<CachedPractitioner>() + 2 * std::mem::size_of::<usize>();
    assert!(arc_inner <= 640, "{arc_inner} bytes");
}

#[test]
fn a_copy_describes_the_object_only_as_it_was_taken() {
    let mut whole = practitioner(serde_json::json!({
        "connectionRef": {"name": "epic"}, "npi": "1234567893",
    }));
    whole.metadata.generation = Some(3);
    let cached = CachedPractitioner::from(whole.clone());
    let with = |f: fn(&mut EpicPractitioner)| {
        let mut w = whole.clone();
        f(&mut w);
        w
    };
    assert!(cached.describes(&whole));
    // Labels and the status are not what a pass asked about before reading the object.
    assert!(cached.describes(&with(|w| w.metadata.labels = None)));
    assert!(cached.describes(&with(|w| w.status = Some(full_status()))));
    fn annotate(w: &mut EpicPractitioner, key: &str) {
        let a = w.metadata.annotations.get_or_insert_with(Default::default);
        a.insert(key.to_string(), "b".to_string());
    }
    type Change = fn(&mut EpicPractitioner);
    let changed: [(&str, Change); 6] = [
        ("made again", |w| w.metadata.uid = Some("u2".into())),
        ("generation", |w| w.metadata.generation = Some(4)),
        ("npi", |w| w.spec.npi = "1245319599".into()),
        ("connection", |w| {
            w.spec.connection_ref.name = "other".into()
        }),
        ("paused", |w| annotate(w, PAUSED_ANNOTATION)),
        ("check now", |w| annotate(w, REQUESTED_AT_ANNOTATION)),
    ];
    for (what, f) in changed {
        assert!(!cached.describes(&with(f)), "{what}");
    }
}
