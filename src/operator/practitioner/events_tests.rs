//! Unit tests of the Event decisions: one Event per real transition, with detail and no PHI.

use super::*;
use crate::crd::{Condition, ConditionStatus, DriftEntry};
use crate::fhir::{FhirError, OperationOutcome};
use crate::reconcile::{Action, DriftReport, HoldReason};

/// The transitions from one stored status to another, as a pass that built `new` sees them.
fn transitions(
    obj: &EpicPractitioner,
    old: &EpicPractitionerStatus,
    new: &EpicPractitionerStatus,
    outcome: Option<&SyncOutcome>,
) -> Vec<(EventType, Reason, String)> {
    let new_reason = new.synced_reason();
    super::transitions(obj, &Prev::of(Some(old)), new, new_reason, outcome)
}

fn practitioner(active: bool) -> EpicPractitioner {
    let spec = serde_json::from_value(serde_json::json!({
        "connectionRef": {"name": "epic"}, "npi": "1234567893", "active": active,
        "name": {"family": "Smith", "given": ["Alice"]},
        "telecom": [{"system": "email", "value": "alice@hospital.example.org"}]
    }))
    .unwrap();
    EpicPractitioner::new("alice", spec)
}

fn drift(paths: &[&str]) -> DriftReport {
    DriftReport {
        entries: paths
            .iter()
            .map(|p| DriftEntry {
                path: p.to_string(),
                desired: "\"Smith\"".into(),
                live: "\"alice@hospital.example.org\"".into(),
            })
            .collect(),
        diff: String::new(),
    }
}

fn outcome(resolution: Resolution, action: Action, write: WriteOutcome, d: &[&str]) -> SyncOutcome {
    SyncOutcome {
        resolution,
        fhir_id: (resolution == Resolution::Found).then(|| "eAb-1.2".to_string()),
        gone_id: None,
        searched: true,
        ambiguous_ids: vec!["a".into(), "b".into()],
        warnings: Vec::new(),
        drift: drift(d),
        action,
        if_match: None,
        write,
        write_attempts: 0,
        remaining: drift(&[]),
        live: None,
        roles: Vec::new(),
        roles_known: false,
        create_attempt: crate::pipeline::AttemptState::NotSent,
    }
}

fn status(synced_reason: &str, fhir_id: Option<&str>) -> EpicPractitionerStatus {
    EpicPractitionerStatus {
        fhir_id: fhir_id.map(str::to_string),
        conditions: vec![Condition {
            type_: "Synced".into(),
            status: ConditionStatus::False,
            reason: synced_reason.into(),
            message: String::new(),
            last_transition_time: String::new(),
            observed_generation: None,
        }],
        ..EpicPractitionerStatus::default()
    }
}

fn reasons(events: &[(EventType, Reason, String)]) -> Vec<&'static str> {
    events.iter().map(|(_, r, _)| r.as_str()).collect()
}

#[test]
fn one_event_per_real_transition() {
    let p = practitioner(true);
    let none = EpicPractitionerStatus::default();
    let found = status("Synced", Some("eAb-1.2"));
    let conflict = WriteOutcome::Conflict {
        attempts: 3,
        last: FhirError::Conflict {
            status: 412,
            outcome: OperationOutcome::default(),
        },
    };
    let cases: Vec<(
        &str,
        EpicPractitionerStatus,
        EpicPractitionerStatus,
        SyncOutcome,
        Vec<&str>,
    )> = vec![
        (
            "first resolution",
            none.clone(),
            found.clone(),
            outcome(
                Resolution::Found,
                Action::Nothing,
                WriteOutcome::NotAttempted,
                &[],
            ),
            vec!["Resolved"],
        ),
        (
            "steady state: nothing",
            found.clone(),
            found.clone(),
            outcome(
                Resolution::Found,
                Action::Nothing,
                WriteOutcome::NotAttempted,
                &[],
            ),
            vec![],
        ),
        (
            "drift written",
            found.clone(),
            found.clone(),
            outcome(
                Resolution::Found,
                Action::Update,
                WriteOutcome::Updated,
                &["name[use=official]"],
            ),
            vec!["DriftDetected", "Updated"],
        ),
        (
            "created",
            none.clone(),
            found.clone(),
            outcome(
                Resolution::Found,
                Action::Create,
                WriteOutcome::Created,
                &[],
            ),
            vec!["Resolved", "Created"],
        ),
        (
            "conflict",
            found.clone(),
            found.clone(),
            outcome(Resolution::Found, Action::Update, conflict, &["active"]),
            vec!["DriftDetected", "Conflict"],
        ),
        (
            "not found, first time",
            none.clone(),
            status("NotFound", None),
            outcome(
                Resolution::NotFound,
                Action::Hold(HoldReason::NotFound),
                WriteOutcome::NotAttempted,
                &[],
            ),
            vec!["NotFound"],
        ),
        (
            "not found again",
            status("NotFound", None),
            status("NotFound", None),
            outcome(
                Resolution::NotFound,
                Action::Hold(HoldReason::NotFound),
                WriteOutcome::NotAttempted,
                &[],
            ),
            vec![],
        ),
        (
            "ambiguous",
            none.clone(),
            status("AmbiguousNPI", None),
            outcome(
                Resolution::Ambiguous(2),
                Action::Hold(HoldReason::AmbiguousNpi),
                WriteOutcome::NotAttempted,
                &[],
            ),
            vec!["AmbiguousNPI"],
        ),
        (
            "search incomplete",
            none.clone(),
            status("SearchIncomplete", None),
            outcome(
                Resolution::Incomplete,
                Action::Hold(HoldReason::SearchIncomplete),
                WriteOutcome::NotAttempted,
                &[],
            ),
            vec!["SearchIncomplete"],
        ),
        (
            "write disabled, first time",
            found.clone(),
            status("WriteDisabled", Some("eAb-1.2")),
            outcome(
                Resolution::Found,
                Action::Hold(HoldReason::WriteDisabled),
                WriteOutcome::NotAttempted,
                &["active"],
            ),
            vec!["DriftDetected", "WriteDisabled"],
        ),
    ];
    for (what, old, new, o, want) in cases {
        let got = transitions(&p, &old, &new, Some(&o));
        assert_eq!(reasons(&got), want, "{what}");
        for (_, _, note) in &got {
            assert!(
                !note.contains("Smith") && !note.contains('@') && !note.contains("Alice"),
                "{what}: an Event note carries PHI: {note}"
            );
        }
    }
}

#[test]
fn deactivation_and_failures() {
    let p = practitioner(false);
    let found = status("Synced", Some("eAb-1.2"));
    let o = outcome(
        Resolution::Found,
        Action::Update,
        WriteOutcome::Updated,
        &["active"],
    );
    let got = transitions(&p, &found, &found, Some(&o));
    assert_eq!(
        reasons(&got),
        vec!["DriftDetected", "Updated", "Deactivated"]
    );
    assert!(got[2].2.contains("login access is not revoked"));
    // A failed reconcile (no outcome) reports its new reason once; Paused is not a failure.
    let failed = transitions(&p, &found, &status("Unauthorized", None), None);
    assert_eq!(reasons(&failed), vec!["ReconcileFailed"]);
    assert!(transitions(&p, &found, &status("Paused", None), None).is_empty());
    assert!(
        transitions(
            &p,
            &status("Unauthorized", None),
            &status("Unauthorized", None),
            None
        )
        .is_empty()
    );
}

#[test]
fn warning_events_say_what_why_and_what_to_do_without_placeholders() {
    let p = practitioner(true);
    let none = EpicPractitionerStatus::default();
    let got = transitions(&p, &none, &status("InvalidKey", None), None);
    let note = &got[0].2;
    assert_eq!(got[0].1, Reason::ReconcileFailed);
    assert!(
        note.starts_with("NPI 1234567893: InvalidKey.") && note.contains("PEM private key"),
        "{note}"
    );
    assert!(!note.contains("Practitioner/-"), "{note}");
    let mut blocked = status("DeletionBlocked", Some("eAb-1.2"));
    blocked.last_error = Some(crate::crd::LastError {
        reason: "WriteDisabled".into(),
        message: String::new(),
        http_status: None,
        epic_codes: Vec::new(),
    });
    let got = transitions(
        &p,
        &status("WriteDisabled", Some("eAb-1.2")),
        &blocked,
        None,
    );
    assert_eq!(reasons(&got), vec!["DeletionBlocked"]);
    assert!(
        got[0].2.contains("Practitioner/eAb-1.2 (NPI 1234567893)")
            && got[0].2.contains("WriteDisabled holds it")
            && got[0].2.contains("deletionPolicy"),
        "{}",
        got[0].2
    );
    assert!(transitions(&p, &blocked, &blocked, None).is_empty(), "once");
}

#[test]
fn events_and_conditions_word_an_outcome_alike() {
    // The Event names the subject and the remedy; the sentence about what happened is the
    // verdict's, so kubectl describe and the status never tell two stories.
    let p = practitioner(true);
    let conflict = WriteOutcome::Conflict {
        attempts: 3,
        last: FhirError::Conflict {
            status: 412,
            outcome: OperationOutcome::default(),
        },
    };
    let cases = [
        (
            outcome(Resolution::Found, Action::Update, conflict, &["active"]),
            Reason::Conflict,
            "Synced",
            phrase::conflicted(3),
        ),
        (
            outcome(
                Resolution::NotFound,
                Action::Hold(HoldReason::NotFound),
                WriteOutcome::NotAttempted,
                &[],
            ),
            Reason::NotFound,
            "InSync",
            phrase::not_found("1234567893"),
        ),
        (
            outcome(
                Resolution::Ambiguous(2),
                Action::Hold(HoldReason::AmbiguousNpi),
                WriteOutcome::NotAttempted,
                &[],
            ),
            Reason::AmbiguousNpi,
            "InSync",
            phrase::ambiguous(2, "1234567893"),
        ),
        (
            outcome(
                Resolution::Incomplete,
                Action::Hold(HoldReason::SearchIncomplete),
                WriteOutcome::NotAttempted,
                &[],
            ),
            Reason::SearchIncomplete,
            "InSync",
            phrase::incomplete("1234567893"),
        ),
        (
            SyncOutcome {
                gone_id: Some("e9".into()),
                ..outcome(
                    Resolution::NotFound,
                    Action::Hold(HoldReason::RecordGone),
                    WriteOutcome::NotAttempted,
                    &[],
                )
            },
            Reason::RecordGone,
            "Synced",
            phrase::gone("e9", "1234567893"),
        ),
    ];
    for (o, reason, condition, sentence) in cases {
        let old = EpicPractitionerStatus::default();
        let verdict = crate::pipeline::verdict::of_sync(&p, &old, &o, "");
        let said = if condition == "Synced" {
            &verdict.synced
        } else {
            &verdict.in_sync
        };
        assert!(
            said.message.contains(&sentence),
            "{reason}: {}",
            said.message
        );
        let mut new = status(reason.as_str(), o.fhir_id.as_deref());
        new.conditions[0].reason = verdict.synced.reason.as_str().into();
        let events = super::transitions(&p, &Prev::of(Some(&old)), &new, Some(reason), Some(&o));
        let event = events
            .iter()
            .find(|(_, r, _)| *r == reason)
            .unwrap_or_else(|| panic!("no {reason} Event: {events:?}"));
        assert!(event.2.contains(&sentence), "{reason}: {}", event.2);
    }
}
