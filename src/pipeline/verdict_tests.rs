//! Table tests of the verdict: the Ready rule, and the messages both drivers render.

use super::*;
use crate::crd::DriftEntry;
use crate::fhir::OperationOutcome;
use crate::pipeline::AttemptState;
use crate::reconcile::DriftReport;

use ConditionStatus::{False, True, Unknown};

/// (case, Synced, InSync, Ready's status and reason, the message it takes)
type ReadyCase<'a> = (
    &'a str,
    Option<&'a Said>,
    Option<&'a Said>,
    ConditionStatus,
    Reason,
    &'a str,
);

/// (case, outcome, previous status, Synced's reason and message, InSync's reason and message)
type WordCase<'a> = (
    &'a str,
    SyncOutcome,
    &'a EpicPractitionerStatus,
    Reason,
    &'a str,
    Reason,
    &'a str,
);

fn said(status: ConditionStatus, reason: Reason) -> Said {
    Said::new(status, reason, reason.as_str())
}

#[test]
fn ready_takes_the_decisive_condition() {
    let synced = said(True, Reason::Synced);
    let in_sync = said(True, Reason::NoDrift);
    let drifted = said(False, Reason::Drifted);
    let observe = said(True, Reason::ObserveOnly);
    let held = said(False, Reason::WriteDisabled);
    let missing = said(False, Reason::NotFound);
    let ambiguous = said(False, Reason::AmbiguousNpi);
    let incomplete = said(Unknown, Reason::SearchIncomplete);
    let unread = said(Unknown, Reason::Unknown);
    let failed = said(False, Reason::EpicUnavailable);
    let cases: Vec<ReadyCase> = vec![
        (
            "both true",
            Some(&synced),
            Some(&in_sync),
            True,
            Reason::Ready,
            "Epic matches the spec",
        ),
        (
            "observed drift",
            Some(&observe),
            Some(&drifted),
            False,
            Reason::Drifted,
            "Drifted",
        ),
        (
            "held drift",
            Some(&held),
            Some(&drifted),
            False,
            Reason::WriteDisabled,
            "WriteDisabled",
        ),
        (
            "held, not found",
            Some(&held),
            Some(&missing),
            False,
            Reason::NotFound,
            "NotFound",
        ),
        (
            "held, ambiguous",
            Some(&held),
            Some(&ambiguous),
            False,
            Reason::AmbiguousNpi,
            "AmbiguousNPI",
        ),
        (
            "held, incomplete",
            Some(&held),
            Some(&incomplete),
            False,
            Reason::SearchIncomplete,
            "SearchIncomplete",
        ),
        (
            "failed, not found",
            Some(&failed),
            Some(&missing),
            False,
            Reason::EpicUnavailable,
            "EpicUnavailable",
        ),
        (
            "failed, unread",
            Some(&failed),
            Some(&unread),
            False,
            Reason::EpicUnavailable,
            "EpicUnavailable",
        ),
        (
            "synced, unread",
            Some(&synced),
            Some(&unread),
            False,
            Reason::Unknown,
            "Unknown",
        ),
        (
            "no InSync yet",
            Some(&failed),
            None,
            False,
            Reason::EpicUnavailable,
            "EpicUnavailable",
        ),
        (
            "no Synced yet",
            None,
            Some(&in_sync),
            False,
            Reason::NoDrift,
            "NoDrift",
        ),
        (
            "nothing yet",
            None,
            None,
            Unknown,
            Reason::Pending,
            "not reconciled yet",
        ),
    ];
    for (case, s, i, status, reason, message) in cases {
        let r = ready(s, i);
        assert_eq!(
            (r.status, r.reason, r.message.as_str()),
            (status, reason, message),
            "{case}"
        );
    }
}

fn practitioner() -> EpicPractitioner {
    let spec = serde_json::from_value(serde_json::json!({
        "connectionRef": {"name": "epic"}, "npi": "1234567893"
    }))
    .unwrap();
    EpicPractitioner::new("p", spec)
}

fn outcome(resolution: Resolution, action: Action, write: WriteOutcome) -> SyncOutcome {
    let none = || DriftReport {
        entries: Vec::new(),
        diff: String::new(),
    };
    let active = DriftReport {
        entries: vec![DriftEntry {
            path: "active".into(),
            desired: "true".into(),
            live: "false".into(),
        }],
        diff: String::new(),
    };
    SyncOutcome {
        resolution,
        fhir_id: None,
        gone_id: None,
        searched: true,
        ambiguous_ids: vec!["e1".into(), "e2".into(), "e3".into()],
        warnings: Vec::new(),
        drift: none(),
        action,
        if_match: None,
        write,
        write_attempts: 0,
        remaining: if resolution == Resolution::Found {
            active
        } else {
            none()
        },
        live: None,
        roles: Vec::new(),
        roles_known: false,
        create_attempt: AttemptState::NotSent,
    }
}

#[test]
fn each_outcome_is_worded_once() {
    let conflict = || FhirError::Conflict {
        status: 412,
        outcome: OperationOutcome::default(),
    };
    let hold = |h| {
        outcome(
            Resolution::Found,
            Action::Hold(h),
            WriteOutcome::NotAttempted,
        )
    };
    let unconfirmed = EpicPractitionerStatus {
        create_attempt: Some(crate::crd::CreateAttempt {
            npi: "1234567893".into(),
            connection: "https://epic.example.org".into(),
            sent_at: "2026-12-01T00:00:00Z".into(),
        }),
        ..EpicPractitionerStatus::default()
    };
    let fresh = EpicPractitionerStatus::default();
    let conflicted = conflict_message(3, &conflict());
    let cases: Vec<WordCase> = vec![
        (
            "write disabled: the driver's words, as they are",
            hold(HoldReason::WriteDisabled),
            &fresh,
            Reason::WriteDisabled,
            "writes are off",
            Reason::Drifted,
            "differs in active",
        ),
        (
            "ambiguous: every id",
            outcome(
                Resolution::Ambiguous(3),
                Action::Hold(HoldReason::AmbiguousNpi),
                WriteOutcome::NotAttempted,
            ),
            &fresh,
            Reason::AmbiguousNpi,
            "3 Practitioners carry NPI 1234567893 (e1, e2, e3); nothing is written until the duplicates are merged in Epic",
            Reason::AmbiguousNpi,
            "3 Practitioners carry NPI 1234567893",
        ),
        (
            "an unconfirmed create: when it was sent",
            SyncOutcome {
                searched: false,
                ..outcome(
                    Resolution::NotFound,
                    Action::Hold(HoldReason::CreateUnconfirmed),
                    WriteOutcome::NotAttempted,
                )
            },
            &unconfirmed,
            Reason::CreateUnconfirmed,
            "a create for NPI 1234567893 was sent at 2026-12-01T00:00:00Z and its answer was lost; no second one is sent until a complete roster walk that started after it shows whether it arrived",
            Reason::NotFound,
            "no Practitioner carries NPI 1234567893",
        ),
        (
            "an unconfirmed create after a search too soon",
            outcome(
                Resolution::NotFound,
                Action::Hold(HoldReason::CreateUnconfirmed),
                WriteOutcome::NotAttempted,
            ),
            &unconfirmed,
            Reason::CreateUnconfirmed,
            "a create for NPI 1234567893 was sent at 2026-12-01T00:00:00Z and its answer was lost; no second one is sent until a search made once Epic has had the request timeout to apply it shows whether it arrived",
            Reason::NotFound,
            "no Practitioner carries NPI 1234567893",
        ),
        (
            "a record gone from Epic: which one",
            SyncOutcome {
                gone_id: Some("e9".into()),
                ..outcome(
                    Resolution::NotFound,
                    Action::Hold(HoldReason::RecordGone),
                    WriteOutcome::NotAttempted,
                )
            },
            &fresh,
            Reason::RecordGone,
            "record e9 carried NPI 1234567893 and no longer answers (deleted, merged, or hidden from this client), and no record carries the NPI now: nothing is created in its place",
            Reason::NotFound,
            "no Practitioner carries NPI 1234567893",
        ),
        (
            "conflict: the attempts and Epic's last answer",
            outcome(
                Resolution::Found,
                Action::Update,
                WriteOutcome::Conflict {
                    attempts: 3,
                    last: conflict(),
                },
            ),
            &fresh,
            Reason::Conflict,
            &conflicted,
            Reason::Drifted,
            "differs in active",
        ),
        (
            "a write Epic did not apply",
            outcome(Resolution::Found, Action::Update, WriteOutcome::Updated),
            &fresh,
            Reason::WriteNotApplied,
            "updated the record but Epic's response still differs: some fields may be read-only on this instance",
            Reason::Drifted,
            "differs in active",
        ),
    ];
    for (case, o, prev, synced, synced_says, in_sync, in_sync_says) in cases {
        let v = of_sync(&practitioner(), prev, &o, "writes are off");
        assert_eq!(
            (v.synced.reason, v.synced.message.as_str()),
            (synced, synced_says),
            "{case}"
        );
        assert_eq!(
            (v.in_sync.reason, v.in_sync.message.as_str()),
            (in_sync, in_sync_says),
            "{case}"
        );
        assert_eq!(
            v.ready(),
            ready(Some(&v.synced), Some(&v.in_sync)),
            "{case}"
        );
    }
    assert!(
        conflict_message(3, &conflict()).contains("3 attempts")
            && conflict_message(3, &conflict()).contains(&conflict().to_string()),
        "the attempts and the last answer"
    );
}
