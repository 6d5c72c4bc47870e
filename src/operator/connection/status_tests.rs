use super::*;
use crate::crd::{ConditionStatus, KeysStatus, RotationPeriods};
use crate::operator::connection::key_rotation::RotationPlan;

fn at(t: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(t, 0).unwrap()
}

fn condition(type_: &str, message: &str) -> Condition {
    Condition {
        type_: type_.into(),
        status: ConditionStatus::True,
        reason: "Ready".into(),
        message: message.into(),
        last_transition_time: "2024-01-01T00:00:00Z".into(),
        observed_generation: Some(1),
    }
}

fn ready() -> ReadyFacts {
    ReadyFacts {
        token_url: "https://epic.example/token".into(),
        token: Some(TokenFacts {
            expires_at: at(1_700_000_000),
            scopes: vec!["system/Practitioner.read".into()],
        }),
        writes: WriteCapability::Enabled,
        npi_search_supported: Some(true),
        probe_time: "2024-01-01T00:00:00Z".into(),
        keys: KeyReport {
            status: KeysStatus {
                signing_key_id: Some("a".into()),
                last_accepted_key_id: Some("a".into()),
                ..KeysStatus::default()
            },
            note: None,
            signing_since: None,
        },
        retry_refused_at: None,
        next_switch: None,
        load: LoadFacts {
            load: LoadStatus::default(),
            conditions: Vec::new(),
            per_object: None,
            budget: false,
        },
        changed: false,
    }
}

fn pass(
    old: &EpicConnectionStatus,
    outcome: Outcome,
    rotation: Option<&RotationOutcome>,
) -> ConnectionPass {
    next_status(
        old,
        PassFacts {
            generation: Some(3),
            jwks_url: Some("https://keys.example/jwks/ns/c".into()),
            rotation,
            outcome,
            now: at(1000),
        },
    )
}

fn ready_condition(s: &EpicConnectionStatus) -> &Condition {
    s.conditions.iter().find(|c| c.type_ == "Ready").unwrap()
}

#[test]
fn a_ready_connection_reports_its_token_capabilities_and_note() {
    let mut with_note = ready();
    with_note.keys.note = Some("rotation waits".into());
    with_note.changed = true;
    let cases = [
        (ready(), "token obtained and capabilities probed", false),
        (
            with_note,
            "token obtained and capabilities probed; rotation waits",
            true,
        ),
    ];
    let old = EpicConnectionStatus {
        last_error: Some(LastError {
            reason: "EpicUnavailable".into(),
            message: "down".into(),
            http_status: Some(503),
            epic_codes: Vec::new(),
        }),
        ..EpicConnectionStatus::default()
    };
    for (facts, message, wake) in cases {
        let p = pass(&old, Outcome::Ready(Box::new(facts)), None);
        assert!(p.ready);
        assert_eq!(p.reason, Reason::Ready);
        assert_eq!(p.wake, wake, "{message}");
        let s = &p.status;
        let c = ready_condition(s);
        assert_eq!(
            (c.status, c.message.as_str()),
            (ConditionStatus::True, message)
        );
        assert_eq!(c.observed_generation, Some(3));
        assert_eq!(s.observed_generation, Some(3));
        assert_eq!(
            s.jwks_url.as_deref(),
            Some("https://keys.example/jwks/ns/c")
        );
        assert_eq!(s.token_url.as_deref(), Some("https://epic.example/token"));
        assert_eq!(s.token_expires_at.as_deref(), Some("2023-11-14T22:13:20Z"));
        assert_eq!(
            s.granted_scopes,
            vec!["system/Practitioner.read".to_string()]
        );
        assert_eq!(s.npi_search_supported, Some(true));
        assert_eq!(s.last_probe_time.as_deref(), Some("2024-01-01T00:00:00Z"));
        assert!(s.last_error.is_none());
        assert_eq!(
            s.keys.as_ref().unwrap().signing_key_id.as_deref(),
            Some("a")
        );
    }
}

#[test]
fn writable_follows_the_write_capability() {
    for (writes, writable) in [
        (WriteCapability::Enabled, Some(true)),
        (WriteCapability::Disabled, Some(false)),
        (WriteCapability::Unknown, None),
    ] {
        let facts = ReadyFacts { writes, ..ready() };
        let p = pass(
            &EpicConnectionStatus::default(),
            Outcome::Ready(Box::new(facts)),
            None,
        );
        assert_eq!(p.status.writable, writable, "{writes:?}");
    }
}

#[test]
fn a_token_not_renewed_keeps_the_last_expiry_and_scopes() {
    let old = EpicConnectionStatus {
        token_expires_at: Some("2024-01-01T01:00:00Z".into()),
        granted_scopes: vec!["old".into()],
        ..EpicConnectionStatus::default()
    };
    let facts = ReadyFacts {
        token: None,
        ..ready()
    };
    let p = pass(&old, Outcome::Ready(Box::new(facts)), None);
    assert_eq!(
        p.status.token_expires_at.as_deref(),
        Some("2024-01-01T01:00:00Z")
    );
    assert_eq!(p.status.granted_scopes, vec!["old".to_string()]);
}

#[test]
fn a_failed_connection_says_why_and_wakes_only_on_news() {
    for news in [true, false] {
        let failure = ConnectionFailure {
            fingerprint: String::new(),
            reason: Reason::InvalidKey,
            message: "x".repeat(MAX_MESSAGE_BYTES * 2),
            http_status: Some(401),
        };
        let old = EpicConnectionStatus {
            token_url: Some("https://epic.example/token".into()),
            ..EpicConnectionStatus::default()
        };
        let p = pass(&old, Outcome::Failed { failure, news }, None);
        assert!(!p.ready);
        assert_eq!(p.reason, Reason::InvalidKey);
        assert_eq!(p.wake, news);
        assert_eq!(p.next_key_event, None);
        let c = ready_condition(&p.status);
        assert_eq!(c.status, ConditionStatus::False);
        assert_eq!(c.reason, "InvalidKey");
        assert!(c.message.len() <= MAX_MESSAGE_BYTES + 64, "bounded");
        let e = p.status.last_error.as_ref().unwrap();
        assert_eq!(
            (e.reason.as_str(), e.http_status),
            ("InvalidKey", Some(401))
        );
        assert_eq!(e.message, c.message);
        // What a failure does not touch stays as it was.
        assert_eq!(p.status.token_url, old.token_url);
    }
}

#[test]
fn a_refused_rotation_is_news_only_when_ready_does_not_say_it_yet() {
    let e = RotationError::Unlabelled("keys".into());
    let said = EpicConnectionStatus {
        conditions: vec![condition("Ready", &e.to_string())],
        ..EpicConnectionStatus::default()
    };
    let other = EpicConnectionStatus {
        conditions: vec![condition("Ready", "something else")],
        ..EpicConnectionStatus::default()
    };
    for (old, news) in [(&said, false), (&other, true)] {
        let Outcome::Failed { failure, news: got } = rotation_refused(old, &e) else {
            panic!("a refused rotation fails the connection");
        };
        assert_eq!(got, news);
        assert_eq!(failure.reason, Reason::InvalidKey);
        assert_eq!(failure.message, e.to_string());
    }
}

#[test]
fn the_next_key_event_is_the_nearest_one_due() {
    let held = RotationOutcome {
        plan: RotationPlan {
            retirement_held: Some("a".into()),
            ..RotationPlan::default()
        },
        ..RotationOutcome::default()
    };
    let accepted_before = |kid: &str| EpicConnectionStatus {
        keys: Some(KeysStatus {
            last_accepted_key_id: Some(kid.into()),
            ..KeysStatus::default()
        }),
        ..EpicConnectionStatus::default()
    };
    let facts = |switch: Option<i64>, retry: Option<i64>| ReadyFacts {
        next_switch: switch.map(at),
        retry_refused_at: retry.map(at),
        ..ready()
    };
    // (what was accepted before, switch, retry of a refused key, rotation, expected)
    let cases = [
        ("a", None, None, None, None),
        ("a", Some(2000), None, None, Some(2000)),
        ("a", Some(2000), Some(1500), None, Some(1500)),
        // A retry time already past is no event.
        ("a", Some(2000), Some(900), None, Some(2000)),
        // Epic just accepted a newer key (a, was z): the held retirement goes now.
        ("z", Some(2000), None, Some(&held), Some(1000)),
        // Nothing newly accepted: the held retirement waits.
        ("a", Some(2000), None, Some(&held), Some(2000)),
    ];
    for (before, switch, retry, rotation, expected) in cases {
        let p = pass(
            &accepted_before(before),
            Outcome::Ready(Box::new(facts(switch, retry))),
            rotation,
        );
        assert_eq!(
            p.next_key_event,
            expected.map(at),
            "{before} {switch:?} {retry:?}"
        );
    }
}

#[test]
fn managed_rotation_adds_its_own_events() {
    let periods = RotationPeriods {
        rotate_every: Duration::from_secs(100),
        publish_ahead: Duration::from_secs(10),
        retire_after: Duration::from_secs(20),
    };
    let rotation = RotationOutcome {
        plan: RotationPlan {
            next_rotation: Some(at(1100)),
            ..RotationPlan::default()
        },
        published: [("a".to_string(), at(995))].into(),
        periods: Some(periods),
        ..RotationOutcome::default()
    };
    // a switches at 1005 (published 995 + 10 s): nearer than the rotation at 1100.
    let p = pass(
        &EpicConnectionStatus::default(),
        Outcome::Ready(Box::new(ready())),
        Some(&rotation),
    );
    assert_eq!(p.next_key_event, Some(at(1005)));
    // A failed connection still comes back for its rotation.
    let failure = ConnectionFailure {
        fingerprint: String::new(),
        reason: Reason::EpicUnavailable,
        message: "down".into(),
        http_status: None,
    };
    let p = pass(
        &EpicConnectionStatus::default(),
        Outcome::Failed {
            failure,
            news: true,
        },
        Some(&rotation),
    );
    assert_eq!(p.next_key_event, Some(at(1005)));
}

#[test]
fn load_conditions_follow_the_mode_and_the_budget() {
    let old = EpicConnectionStatus {
        conditions: vec![
            condition("RosterWalks", "old walks"),
            condition("RequestBudget", "old budget"),
        ],
        ..EpicConnectionStatus::default()
    };
    let load = |per_object: Option<Duration>, budget: bool| LoadFacts {
        load: LoadStatus {
            walk_interval: Some("1h".into()),
            next_walk_time: Some("2024-01-01T01:00:00Z".into()),
            drift_detection: "full walks every 1h".into(),
            ..LoadStatus::default()
        },
        // The walk plans report RequestBudget only for a connection that sets one.
        conditions: [
            Some(condition("RosterWalks", "walks")),
            budget.then(|| condition("RequestBudget", "budget")),
        ]
        .into_iter()
        .flatten()
        .collect(),
        per_object,
        budget,
    };
    // (per object, budget set, RosterWalks kept, RequestBudget kept)
    let cases = [
        (None, true, true, true),
        (None, false, true, false),
        (Some(Duration::from_secs(600)), true, false, true),
        (Some(Duration::from_secs(600)), false, false, false),
    ];
    for (per_object, budget, walks, budget_kept) in cases {
        let facts = ReadyFacts {
            load: load(per_object, budget),
            ..ready()
        };
        let p = pass(&old, Outcome::Ready(Box::new(facts)), None);
        let has = |t: &str| p.status.conditions.iter().any(|c| c.type_ == t);
        assert_eq!(has("RosterWalks"), walks, "{per_object:?} {budget}");
        assert_eq!(has("RequestBudget"), budget_kept, "{per_object:?} {budget}");
        let l = p.status.load.as_ref().unwrap();
        if per_object.is_some() {
            assert_eq!(
                (l.walk_interval.as_ref(), l.next_walk_time.as_ref()),
                (None, None)
            );
            assert!(
                l.drift_detection
                    .starts_with("each practitioner reads its own record every")
            );
        } else {
            assert_eq!(l.walk_interval.as_deref(), Some("1h"));
            assert_eq!(l.drift_detection, "full walks every 1h");
        }
    }
}
