//! Unit tests of which practitioners a walk wakes.

use super::*;
use crate::crd::{Condition, ConditionStatus, DriftEntry, EpicPractitionerStatus};

fn practitioner(status: Option<EpicPractitionerStatus>, paused: bool) -> EpicPractitioner {
    let spec = serde_json::from_value(serde_json::json!({
        "connectionRef": {"name": "epic"}, "npi": "1234567893"
    }))
    .unwrap();
    let mut p = EpicPractitioner::new("alice", spec);
    p.status = status;
    if paused {
        p.metadata.annotations = Some(
            [(
                crate::crd::PAUSED_ANNOTATION.to_string(),
                "true".to_string(),
            )]
            .into(),
        );
    }
    p
}

fn status(fp: &str, held: bool, refused_ago: Option<i64>) -> EpicPractitionerStatus {
    EpicPractitionerStatus {
        live_fingerprint: Some(fp.into()),
        drift: if held {
            vec![DriftEntry {
                path: "active".into(),
                desired: "false".into(),
                live: "true".into(),
            }]
        } else {
            Vec::new()
        },
        conditions: vec![Condition {
            type_: "Synced".into(),
            status: ConditionStatus::False,
            reason: if held {
                Reason::WriteDisabled
            } else {
                Reason::Synced
            }
            .as_str()
            .into(),
            message: String::new(),
            last_transition_time: String::new(),
            observed_generation: None,
        }],
        last_refused_write_time: refused_ago.map(|secs| {
            (chrono::Utc::now() - chrono::TimeDelta::seconds(secs))
                .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        }),
        ..EpicPractitionerStatus::default()
    }
}

#[test]
fn only_changed_records_and_due_retries_are_woken() {
    let resync = Duration::from_secs(600);
    let cases = [
        (
            "never reconciled: its own reconcile comes",
            practitioner(None, false),
            "fp",
            false,
        ),
        (
            "unchanged",
            practitioner(Some(status("fp", false, None)), false),
            "fp",
            false,
        ),
        (
            "changed in Epic",
            practitioner(Some(status("old", false, None)), false),
            "fp",
            true,
        ),
        (
            "paused",
            practitioner(Some(status("old", false, None)), true),
            "fp",
            false,
        ),
        (
            "held drift, refused recently",
            practitioner(Some(status("fp", true, Some(60))), false),
            "fp",
            false,
        ),
        (
            "held drift, refused an interval ago",
            practitioner(Some(status("fp", true, Some(700))), false),
            "fp",
            true,
        ),
    ];
    for (what, p, live_fp, want) in cases {
        assert_eq!(needs_wake(&p, live_fp, resync), want, "{what}");
    }
}
