//! Unit tests of the status builders: the conditions and fields each sync outcome leads to.

use super::*;
use crate::crd::{ConditionStatus, DriftEntry};
use crate::fhir::{FhirError, OperationOutcome};
use crate::reconcile::{DriftReport, Resolution};

fn practitioner(active: bool) -> EpicPractitioner {
    let spec = serde_json::from_value(serde_json::json!({
        "connectionRef": {"name": "epic"}, "npi": "1234567893", "active": active
    }))
    .unwrap();
    let mut p = EpicPractitioner::new("alice", spec);
    p.metadata.generation = Some(3);
    p
}

fn report(paths: &[&str]) -> DriftReport {
    DriftReport {
        entries: paths
            .iter()
            .map(|p| DriftEntry {
                path: p.to_string(),
                desired: "true".into(),
                live: "false".into(),
            })
            .collect(),
        diff: if paths.is_empty() {
            String::new()
        } else {
            "--- live\n+++ desired\n".into()
        },
    }
}

fn outcome(
    resolution: Resolution,
    action: Action,
    write: WriteOutcome,
    remaining: &[&str],
) -> SyncOutcome {
    SyncOutcome {
        resolution,
        fhir_id: (resolution == Resolution::Found).then(|| "eAb-1.2".to_string()),
        gone_id: None,
        searched: false,
        ambiguous_ids: Vec::new(),
        warnings: vec!["a warning".into()],
        drift: report(remaining),
        action,
        if_match: None,
        write,
        write_attempts: 0,
        remaining: report(remaining),
        live: Some(serde_json::json!({"resourceType": "Practitioner", "active": true})),
        roles: Vec::new(),
        roles_known: false,
        create_attempt: crate::pipeline::AttemptState::NotSent,
    }
}

/// What happened, the outcome, and the expected Synced, InSync and Ready (status, reason).
type Expected = (ConditionStatus, &'static str);
type Case = (&'static str, SyncOutcome, Expected, Expected, Expected);

fn cond<'a>(s: &'a EpicPractitionerStatus, t: &str) -> (&'a ConditionStatus, &'a str) {
    let c = s.conditions.iter().find(|c| c.type_ == t).unwrap();
    (&c.status, c.reason.as_str())
}

fn build(
    p: &EpicPractitioner,
    old: &EpicPractitionerStatus,
    o: &SyncOutcome,
) -> EpicPractitionerStatus {
    from_outcome(
        p,
        old,
        o,
        "https://epic.example.org/fhir",
        &crate::pipeline::verdict::of_sync(p, old, o, "held: writes disabled"),
        &Normalizer::default(),
    )
}

#[test]
fn each_outcome_sets_the_conditions_it_should() {
    let p = practitioner(true);
    let old = EpicPractitionerStatus::default();
    let conflict = FhirError::Conflict {
        status: 412,
        outcome: OperationOutcome::default(),
    };
    let refused = FhirError::WriteDisabled {
        status: 403,
        outcome: OperationOutcome::default(),
    };
    use ConditionStatus::{False, True, Unknown};
    let cases: Vec<Case> = vec![
        (
            "in sync",
            outcome(
                Resolution::Found,
                Action::Nothing,
                WriteOutcome::NotAttempted,
                &[],
            ),
            (True, "Synced"),
            (True, "NoDrift"),
            (True, "Ready"),
        ),
        (
            "updated",
            outcome(
                Resolution::Found,
                Action::Update,
                WriteOutcome::Updated,
                &[],
            ),
            (True, "Synced"),
            (True, "NoDrift"),
            (True, "Ready"),
        ),
        (
            "write not applied",
            outcome(
                Resolution::Found,
                Action::Update,
                WriteOutcome::Updated,
                &["active"],
            ),
            (False, "WriteNotApplied"),
            (False, "Drifted"),
            (False, "WriteNotApplied"),
        ),
        (
            "refused",
            outcome(
                Resolution::Found,
                Action::Update,
                WriteOutcome::Refused(refused),
                &["active"],
            ),
            (False, "WriteDisabled"),
            (False, "Drifted"),
            (False, "WriteDisabled"),
        ),
        (
            "held",
            outcome(
                Resolution::Found,
                Action::Hold(HoldReason::WriteDisabled),
                WriteOutcome::NotAttempted,
                &["active"],
            ),
            (False, "WriteDisabled"),
            (False, "Drifted"),
            (False, "WriteDisabled"),
        ),
        (
            "observe only",
            outcome(
                Resolution::Found,
                Action::Hold(HoldReason::ObserveOnly),
                WriteOutcome::NotAttempted,
                &["active"],
            ),
            (True, "ObserveOnly"),
            (False, "Drifted"),
            (False, "Drifted"),
        ),
        (
            "conflict",
            outcome(
                Resolution::Found,
                Action::Update,
                WriteOutcome::Conflict {
                    attempts: 3,
                    last: conflict,
                },
                &["active"],
            ),
            (False, "Conflict"),
            (False, "Drifted"),
            (False, "Conflict"),
        ),
        (
            "not found",
            outcome(
                Resolution::NotFound,
                Action::Hold(HoldReason::NotFound),
                WriteOutcome::NotAttempted,
                &[],
            ),
            (False, "NotFound"),
            (False, "NotFound"),
            (False, "NotFound"),
        ),
        (
            "incomplete",
            outcome(
                Resolution::Incomplete,
                Action::Hold(HoldReason::SearchIncomplete),
                WriteOutcome::NotAttempted,
                &[],
            ),
            (False, "SearchIncomplete"),
            (Unknown, "SearchIncomplete"),
            (False, "SearchIncomplete"),
        ),
    ];
    for (what, o, synced, in_sync, ready) in cases {
        let s = build(&p, &old, &o);
        assert_eq!(cond(&s, SYNCED), (&synced.0, synced.1), "{what}: Synced");
        assert_eq!(cond(&s, IN_SYNC), (&in_sync.0, in_sync.1), "{what}: InSync");
        assert_eq!(cond(&s, READY), (&ready.0, ready.1), "{what}: Ready");
        assert_eq!(s.observed_generation, Some(3), "{what}");
        assert_eq!(s.warnings, vec!["a warning".to_string()], "{what}");
    }
}

#[test]
fn writes_and_refusals_are_remembered_and_ids_belong_to_their_connection() {
    let p = practitioner(false);
    let old = EpicPractitionerStatus::default();
    let s = build(
        &p,
        &old,
        &outcome(
            Resolution::Found,
            Action::Update,
            WriteOutcome::Updated,
            &[],
        ),
    );
    assert!(s.last_write_time.is_some());
    assert_eq!(s.fhir_id.as_deref(), Some("eAb-1.2"));
    assert_eq!(
        s.connection.as_deref(),
        Some("https://epic.example.org/fhir")
    );
    assert!(
        s.note
            .as_deref()
            .is_some_and(|n| n.contains("login access")),
        "active=false carries the note"
    );
    assert!(s.live_fingerprint.is_some());
    let refused = FhirError::WriteDisabled {
        status: 403,
        outcome: OperationOutcome::default(),
    };
    let s = build(
        &p,
        &old,
        &outcome(
            Resolution::Found,
            Action::Update,
            WriteOutcome::Refused(refused),
            &["active"],
        ),
    );
    assert!(s.last_refused_write_time.is_some());
    assert_eq!(
        s.last_error.as_ref().map(|e| e.reason.as_str()),
        Some("WriteDisabled")
    );
    // A held write keeps the refusal as its reason; the message says why it is held.
    let held = build(
        &p,
        &s,
        &outcome(
            Resolution::Found,
            Action::Hold(HoldReason::WriteDisabled),
            WriteOutcome::NotAttempted,
            &["active"],
        ),
    );
    assert_eq!(
        held.last_error.as_ref().map(|e| e.reason.as_str()),
        Some("WriteDisabled")
    );
    let synced = held.conditions.iter().find(|c| c.type_ == SYNCED).unwrap();
    assert_eq!(synced.message, "held: writes disabled");
}

#[test]
fn errors_and_pauses_keep_what_was_known() {
    let p = practitioner(true);
    let known = build(
        &p,
        &EpicPractitionerStatus::default(),
        &outcome(
            Resolution::Found,
            Action::Nothing,
            WriteOutcome::NotAttempted,
            &[],
        ),
    );
    let s = from_error(
        &p,
        &known,
        Reason::EpicUnavailable,
        "Epic is down".into(),
        Some(503),
        vec![],
    );
    assert_eq!(s.fhir_id, known.fhir_id, "the id survives an outage");
    assert_eq!(
        cond(&s, SYNCED),
        (&ConditionStatus::False, "EpicUnavailable")
    );
    assert_eq!(
        cond(&s, IN_SYNC),
        (&ConditionStatus::True, "NoDrift"),
        "last known drift state kept"
    );
    let s = paused(&p, &known);
    assert_eq!(cond(&s, SYNCED), (&ConditionStatus::False, "Paused"));
}

#[test]
fn the_decisive_reason_is_not_found_before_write_disabled() {
    // CreateOrUpdate on a read-only instance: the record is missing, and the write that would
    // create it is refused. NotFound is what a person must act on first.
    let p = practitioner(true);
    let o = outcome(
        Resolution::NotFound,
        Action::Hold(HoldReason::WriteDisabled),
        WriteOutcome::NotAttempted,
        &[],
    );
    let s = build(&p, &EpicPractitionerStatus::default(), &o);
    assert_eq!(
        cond(&s, "Synced"),
        (&ConditionStatus::False, "WriteDisabled")
    );
    assert_eq!(cond(&s, "Ready"), (&ConditionStatus::False, "NotFound"));
    assert_eq!(s.live_active, Some(true), "active as Epic holds it");
}

#[test]
fn a_blocked_deletion_says_why_and_the_way_out() {
    let mut p = practitioner(true);
    p.metadata.namespace = Some("team-a".into());
    let held = outcome(
        Resolution::Found,
        Action::Hold(HoldReason::WriteDisabled),
        WriteOutcome::NotAttempted,
        &["active"],
    );
    let s = deletion_blocked(&p, build(&p, &EpicPractitionerStatus::default(), &held));
    let (status, reason) = cond(&s, "Synced");
    assert_eq!(
        (status, reason),
        (&ConditionStatus::False, "DeletionBlocked")
    );
    assert_eq!(cond(&s, "Ready").1, "DeletionBlocked");
    let message = &s
        .conditions
        .iter()
        .find(|c| c.type_ == "Synced")
        .unwrap()
        .message;
    assert!(
        message.contains("WriteDisabled")
            && message.contains(
                r#"kubectl -n team-a patch epicpractitioner alice --type merge -p '{"spec":{"deletionPolicy":"Orphan"}}'"#
            ),
        "{message}"
    );
    assert_eq!(blocking_reason(&s), Some(Reason::WriteDisabled));
    // Blocked again on the next pass: the same status, so no new write and no new Event.
    let again = deletion_blocked(&p, build(&p, &s, &held));
    assert_eq!(
        again
            .conditions
            .iter()
            .find(|c| c.type_ == "Synced")
            .unwrap()
            .message,
        *message
    );
}

#[test]
fn a_record_held_as_gone_keeps_its_id() {
    let hold = Action::Hold(HoldReason::RecordGone);
    let mut o = outcome(Resolution::NotFound, hold, WriteOutcome::NotAttempted, &[]);
    o.gone_id = Some("eAb-9".into());
    let s = build(&practitioner(true), &EpicPractitionerStatus::default(), &o);
    assert_eq!(
        s.fhir_id.as_deref(),
        Some("eAb-9"),
        "the next pass reads it again"
    );
    assert_eq!(cond(&s, "Synced"), (&ConditionStatus::False, "RecordGone"));
}
