//! Table tests of `decide`: from an observation to the status, Events, memory, connection
//! updates, metric and next look, with no I/O.

use std::time::Duration;

use super::decide::{Learned, Next, Remember, decide};
use super::observe::{Found, Observation, Prev, SyncRun};
use crate::crd::{
    ConditionStatus, CreateAttempt, EpicPractitioner, EpicPractitionerStatus, Reason, SYNCED,
};
use crate::fhir::{FhirError, OperationOutcome};
use crate::operator::DriftDetection;
use crate::operator::error::Error;
use crate::pipeline::{AttemptState, SyncOutcome, WriteOutcome};
use crate::reconcile::{Action, DriftReport, HoldReason, Normalizer, Resolution};

const RESYNC: Duration = Duration::from_secs(600);

fn practitioner(active: bool) -> EpicPractitioner {
    let spec = serde_json::from_value(serde_json::json!({
        "connectionRef": {"name": "epic"}, "npi": "1234567893", "active": active,
        "deletionPolicy": "Deactivate"
    }))
    .unwrap();
    let mut p = EpicPractitioner::new("alice", spec);
    p.metadata.namespace = Some("ns".into());
    p.metadata.generation = Some(2);
    p
}

fn outcome(write: WriteOutcome, action: Action) -> SyncOutcome {
    SyncOutcome {
        resolution: Resolution::Found,
        fhir_id: Some("eAb-1".to_string()),
        gone_id: None,
        searched: false,
        ambiguous_ids: Vec::new(),
        warnings: Vec::new(),
        drift: DriftReport {
            entries: Vec::new(),
            diff: String::new(),
        },
        action,
        if_match: None,
        write,
        write_attempts: 0,
        remaining: DriftReport {
            entries: Vec::new(),
            diff: String::new(),
        },
        live: Some(
            serde_json::json!({"resourceType": "Practitioner", "id": "eAb-1", "active": true}),
        ),
        roles: Vec::new(),
        roles_known: false,
        create_attempt: AttemptState::NotSent,
    }
}

fn synced(o: SyncOutcome) -> Found {
    Found::Synced(Box::new(SyncRun {
        outcome: o,
        key: ("ns".into(), "epic".into()),
        base_url: "https://epic.example.org/fhir".into(),
        resync: RESYNC,
        write_disabled_message: "writes are off".into(),
        normalizer: Normalizer::default(),
        known_attempt: None,
        ended: std::time::Instant::now(),
        attempt_settles_in: None,
    }))
}

fn observation(
    obj: &EpicPractitioner,
    prev: Option<&EpicPractitionerStatus>,
    found: Found,
    mode: DriftDetection,
    deleting: bool,
) -> Observation {
    Observation {
        obj: std::sync::Arc::new(obj.clone()),
        prev: Prev::of(prev),
        deleting,
        mode,
        found,
        conn: None,
    }
}

fn synced_condition(s: &EpicPractitionerStatus) -> (ConditionStatus, String) {
    let c = s.conditions.iter().find(|c| c.type_ == SYNCED).unwrap();
    (c.status, c.reason.clone())
}

fn refused() -> FhirError {
    FhirError::Forbidden {
        outcome: OperationOutcome::default(),
    }
}

#[test]
fn each_observation_leads_to_its_decision() {
    let live = practitioner(true);
    let per_object = DriftDetection::PerObject;
    let roster = DriftDetection::Roster;
    type Case = (
        &'static str,
        Found,
        DriftDetection,
        bool,
        Option<(bool, Reason)>,
        Next,
        Vec<Remember>,
        Vec<Learned>,
    );
    let cases: Vec<Case> = vec![
        (
            "in sync, per object: the resync interval (a known record clears any attempt)",
            synced(outcome(WriteOutcome::NotAttempted, Action::Nothing)),
            per_object,
            false,
            Some((true, Reason::Synced)),
            Next::Requeue(RESYNC),
            vec![Remember::ForgetFailures, Remember::ClearAttempt],
            vec![],
        ),
        (
            "in sync, roster: the safety sweep's net, no timer of its own",
            synced(outcome(WriteOutcome::NotAttempted, Action::Nothing)),
            roster,
            false,
            Some((true, Reason::Synced)),
            Next::SafetyNet,
            vec![Remember::ForgetFailures, Remember::ClearAttempt],
            vec![],
        ),
        (
            "a refused write is held by the connection (the object's status records it)",
            synced(outcome(WriteOutcome::Refused(refused()), Action::Update)),
            per_object,
            false,
            Some((false, Reason::WriteDisabled)),
            Next::Requeue(RESYNC),
            vec![Remember::ForgetFailures, Remember::ClearAttempt],
            vec![Learned::WriteRefused],
        ),
        (
            "a failed write backs off and is not forgotten",
            synced(outcome(
                WriteOutcome::Failed(FhirError::Timeout("slow".into())),
                Action::Update,
            )),
            per_object,
            false,
            Some((false, Reason::EpicUnavailable)),
            Next::Backoff(Duration::from_secs(5)),
            vec![Remember::CountFailure, Remember::ClearAttempt],
            vec![],
        ),
        (
            "a create goes into the ledger and clears the attempt",
            synced(outcome(WriteOutcome::Created, Action::Create)),
            per_object,
            false,
            Some((true, Reason::Synced)),
            Next::Requeue(RESYNC),
            vec![Remember::ForgetFailures, Remember::ClearAttempt],
            vec![Learned::Created {
                npi: "1234567893".into(),
                id: "eAb-1".into(),
            }],
        ),
        (
            "a deletion whose deactivation is held is blocked, and says why",
            synced(outcome(
                WriteOutcome::NotAttempted,
                Action::Hold(HoldReason::WriteDisabled),
            )),
            per_object,
            true,
            Some((false, Reason::DeletionBlocked)),
            Next::Blocked(Reason::WriteDisabled),
            vec![Remember::ForgetFailures, Remember::ClearAttempt],
            vec![],
        ),
        (
            "paused: nothing read, wait for a change",
            Found::Paused,
            per_object,
            false,
            Some((false, Reason::Paused)),
            Next::AwaitChange,
            vec![Remember::ForgetFailures],
            vec![],
        ),
        (
            "a refused identifier search: the connection resolves from walks",
            Found::Failed {
                error: Error::Fhir(FhirError::Invalid {
                    status: 400,
                    outcome: OperationOutcome::default(),
                }),
                search_refused_on: Some((("ns".into(), "epic".into()), "https://e".into())),
            },
            roster,
            false,
            None,
            Next::Fail,
            vec![],
            vec![Learned::SearchRefused],
        ),
    ];
    for (what, found, mode, deleting, metric, next, remember, learned) in cases {
        let obs = observation(&live, None, found, mode, deleting);
        let d = decide(&obs);
        assert_eq!(d.metric, metric, "{what}: metric");
        assert_eq!(d.next, next, "{what}: next");
        assert_eq!(d.remember, remember, "{what}: memory");
        assert_eq!(d.learned, learned, "{what}: connection");
        let status = d.status.as_ref().expect("every pass but a wait reports");
        assert!(d.write_status, "{what}: a first status is written");
        assert_eq!(status.observed_generation, Some(2), "{what}");
        if let Some((ok, reason)) = metric {
            assert_eq!(
                synced_condition(status),
                (ok.into(), reason.as_str().to_string()),
                "{what}: the metric says what status says"
            );
        }
    }
}

#[test]
fn a_wait_reports_nothing_and_a_repeat_writes_nothing() {
    let live = practitioner(true);
    // Deleting, the wait holds the finalizer (an `Ok` would let it go undeactivated).
    for (deleting, next) in [
        (false, Next::Requeue(Duration::from_secs(60))),
        (true, Next::Blocked(Reason::Pending)),
    ] {
        let wait = Found::Wait(Duration::from_secs(60));
        let wait = decide(&observation(
            &live,
            None,
            wait,
            DriftDetection::Roster,
            deleting,
        ));
        assert_eq!(wait.status, None);
        assert!(wait.events.is_empty() && wait.remember.is_empty());
        assert_eq!(wait.next, next, "deleting: {deleting}");
    }

    // A settled object the walks cover: no request, no status, and no timer of its own.
    let covered = decide(&observation(
        &live,
        None,
        Found::Covered,
        DriftDetection::Roster,
        false,
    ));
    assert_eq!(covered.status, None);
    assert!(covered.events.is_empty() && covered.remember.is_empty());
    assert_eq!(covered.next, Next::SafetyNet);

    let first = decide(&observation(
        &live,
        None,
        synced(outcome(WriteOutcome::NotAttempted, Action::Nothing)),
        DriftDetection::PerObject,
        false,
    ));
    let stored = first.status.unwrap();
    let again = decide(&observation(
        &live,
        Some(&stored),
        synced(outcome(WriteOutcome::NotAttempted, Action::Nothing)),
        DriftDetection::PerObject,
        false,
    ));
    assert!(!again.write_status, "nothing new: no status write");
    assert!(again.events.is_empty(), "no transition: no Event");
}

#[test]
fn a_failure_is_reported_once_with_its_reason() {
    let live = practitioner(true);
    let failed = || Found::Failed {
        error: Error::ConnectionNotReady("EpicConnection epic not found".into()),
        search_refused_on: None,
    };
    let first = decide(&observation(
        &live,
        None,
        failed(),
        DriftDetection::PerObject,
        false,
    ));
    let stored = first.status.clone().unwrap();
    assert_eq!(
        synced_condition(&stored),
        (ConditionStatus::False, "ConnectionNotReady".into())
    );
    assert_eq!(
        stored.last_error.as_ref().map(|e| e.reason.as_str()),
        Some("ConnectionNotReady")
    );
    assert_eq!(first.next, Next::Fail);
    assert_eq!(first.events.len(), 1, "{:?}", first.events);
    let again = decide(&observation(
        &live,
        Some(&stored),
        failed(),
        DriftDetection::PerObject,
        false,
    ));
    assert!(again.events.is_empty(), "the same failure again: no Event");
}

#[test]
fn a_conflict_says_it_is_tried_again() {
    let live = practitioner(true);
    let conflicted = outcome(
        WriteOutcome::Conflict {
            attempts: 3,
            last: FhirError::Conflict {
                status: 412,
                outcome: OperationOutcome::default(),
            },
        },
        Action::Update,
    );
    let obs = observation(
        &live,
        None,
        synced(conflicted),
        DriftDetection::Roster,
        false,
    );
    let d = decide(&obs);
    assert_eq!(d.next, Next::Backoff(Duration::from_secs(5)));
    let status = d.status.expect("a conflict is reported");
    let synced = status
        .conditions
        .iter()
        .find(|c| c.type_ == SYNCED)
        .unwrap();
    assert_eq!(synced.reason, "Conflict");
    assert!(
        synced.message.contains("3 attempts")
            && synced
                .message
                .contains("overwritten; it is tried again with backoff; last answer: "),
        "{}",
        synced.message
    );
}

#[path = "decide_attempt_tests.rs"]
mod attempts;
