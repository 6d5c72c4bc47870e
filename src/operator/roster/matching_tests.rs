//! Unit tests of which practitioners a walk wakes.

use super::*;
use crate::crd::{
    Condition, ConditionStatus, DriftEntry, EpicPractitioner, EpicPractitionerStatus,
};

fn practitioner(status: Option<EpicPractitionerStatus>, paused: bool) -> CachedPractitioner {
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
    p.into()
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

/// A practitioner `name` declaring `npi`, resolved to `known` (with the fingerprint of `live`)
/// or not resolved yet.
fn member(name: &str, npi: &str, known: Option<(&str, &Value)>) -> CachedPractitioner {
    let spec =
        serde_json::from_value(serde_json::json!({"connectionRef": {"name": "epic"}, "npi": npi}))
            .unwrap();
    let mut p = EpicPractitioner::new(name, spec);
    p.metadata.namespace = Some("ns".into());
    p.metadata.uid = Some(format!("uid-{name}"));
    p.metadata.generation = Some(1);
    p.status = known.map(|(id, live)| EpicPractitionerStatus {
        fhir_id: Some(id.into()),
        connection: Some(BASE.into()),
        live_fingerprint: Some(fingerprint(live, &Normalizer::default())),
        observed_generation: Some(1),
        ..EpicPractitionerStatus::default()
    });
    p.into()
}

const BASE: &str = "https://epic.example.org/fhir";

fn record(id: &str, npi: &str, active: bool) -> Value {
    serde_json::json!({
        "resourceType": "Practitioner", "id": id, "active": active,
        "identifier": [{"system": "http://hl7.org/fhir/sid/us-npi", "value": npi}]
    })
}

fn kind(w: &Woken) -> String {
    match w.handover.as_ref().map(|h| &h.found) {
        None => "read".into(),
        Some(Finding::Record { id, .. }) => format!("copy {id}"),
        Some(Finding::Ambiguous(ids)) => format!("ambiguous {}", ids.join(",")),
        Some(Finding::Absent) => "absent".into(),
        Some(Finding::Incomplete(_)) => "incomplete".into(),
        Some(Finding::RolesOnly) => "roles".into(),
        Some(Finding::Vanished) => "read".into(),
    }
}

#[test]
fn pages_wake_what_changed_and_the_end_of_the_walk_resolves_the_rest() {
    let (a, b, c, d, e) = (
        "1234567893",
        "1245319599",
        "1003000126",
        "1306849450",
        "1568469285",
    );
    let unchanged = record("r-a", a, true);
    let before = record("r-b", b, true);
    let objects = [
        member("unchanged", a, Some(("r-a", &unchanged))),
        member("changed", b, Some(("r-b", &before))),
        member("new", c, None),
        member("twice", d, None),
        member("vanished", e, Some(("r-gone", &record("r-gone", e, true)))),
        member("absent", "1629011522", None),
    ];
    let store: HashMap<Object, Arc<CachedPractitioner>> = objects
        .iter()
        .map(|p| (Object::from(p.name_any()), Arc::new(p.clone())))
        .collect();
    let mut by_npi: HashMap<Box<str>, Vec<Object>> = HashMap::new();
    for p in &objects {
        by_npi
            .entry(p.spec.npi.clone())
            .or_default()
            .push(p.name_any().into());
    }
    let lookup = |o: &Object| store.get(o).cloned();
    let mut m = Matcher::new(walk_of(by_npi));
    let page = vec![
        unchanged.clone(),
        record("r-b", b, false),
        record("r-c", c, true),
        record("r-d1", d, true),
        record("r-d2", d, true),
    ];
    let woken: Vec<(String, String)> = m
        .page(page, &[], &lookup)
        .iter()
        .map(|w| (w.object.to_string(), kind(w)))
        .collect();
    assert_eq!(
        woken,
        vec![("changed".to_string(), "copy r-b".to_string())],
        "only the changed known record wakes during the walk"
    );
    let (index, rest) = m.finish(&lookup);
    let mut rest: Vec<(String, String)> = rest
        .iter()
        .map(|w| (w.object.to_string(), kind(w)))
        .collect();
    rest.sort();
    assert_eq!(
        rest,
        vec![
            ("absent".to_string(), "absent".to_string()),
            ("new".to_string(), "copy r-c".to_string()),
            ("twice".to_string(), "ambiguous r-d1,r-d2".to_string()),
            ("vanished".to_string(), "read".to_string()),
        ]
    );
    assert_eq!(index.records(), 5);
}

#[test]
fn a_left_out_record_makes_absence_incomplete() {
    let p = member("absent", "1629011522", None);
    let store: HashMap<Object, Arc<CachedPractitioner>> =
        [(Object::from(p.name_any()), Arc::new(p.clone()))].into();
    let by_npi: HashMap<Box<str>, Vec<Object>> =
        [(p.spec.npi.clone(), vec![p.name_any().into()])].into();
    let lookup = |o: &Object| store.get(o).cloned();
    let mut m = Matcher::new(walk_of(by_npi));
    // An id outside the FHIR grammar: the record is left out, so no NPI may read as absent.
    assert!(
        m.page(vec![record("bad id!", "1234567893", true)], &[], &lookup)
            .is_empty()
    );
    let (_, rest) = m.finish(&lookup);
    assert_eq!(rest.len(), 1);
    assert_eq!(kind(&rest[0]), "incomplete");
}

/// A walk of the test connection that did not walk roles.
fn walk_of(by_npi: HashMap<Box<str>, Vec<Object>>) -> WalkOf<'static> {
    WalkOf {
        connection: "epic",
        base: BASE,
        resync: Duration::from_secs(600),
        normalizer: Normalizer::default(),
        roles: None,
        roles_walked: false,
        started: Instant::now(),
        by_npi,
    }
}
