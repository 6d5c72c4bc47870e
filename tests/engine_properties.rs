//! Tier 1: property tests of the pure engine (drift, overlay) over generated specs and live
//! records.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use epic_operator::crd::{
    ConnectionRef, ContactPoint, ContactSystem, ContactUse, DeletionPolicy, EpicPractitionerSpec,
    Gender, ManagementPolicy, NPI_SYSTEM, PractitionerName, Qualification,
};
use epic_operator::reconcile::{drift, fingerprint, new_resource, overlay};
use proptest::prelude::*;
use serde_json::{Value, json};

const NPIS: [&str; 2] = ["1234567893", "1987654328"];
const VALUES: [&str; 3] = ["a@example.org", "+1 555 0100", "b@example.org"];

fn contact() -> impl Strategy<Value = ContactPoint> {
    (
        prop_oneof![Just(ContactSystem::Email), Just(ContactSystem::Phone)],
        0..VALUES.len(),
        prop::option::of(prop_oneof![Just(ContactUse::Work), Just(ContactUse::Home)]),
    )
        .prop_map(|(system, v, use_)| ContactPoint {
            system,
            value: VALUES[v].into(),
            use_,
        })
}

fn name() -> impl Strategy<Value = PractitionerName> {
    (
        prop_oneof![Just("Smith"), Just("Jones")],
        prop::collection::vec(prop_oneof![Just("Alice"), Just("M")], 0..3),
        prop::collection::vec(Just("Dr."), 0..2),
        prop::collection::vec(prop_oneof![Just("MD"), Just("Jr.")], 0..2),
    )
        .prop_map(|(f, g, p, s)| PractitionerName {
            family: f.into(),
            given: g.into_iter().map(String::from).collect(),
            prefix: p.into_iter().map(String::from).collect(),
            suffix: s.into_iter().map(String::from).collect(),
        })
}

fn spec() -> impl Strategy<Value = EpicPractitionerSpec> {
    (
        0..NPIS.len(),
        prop::option::of(any::<bool>()),
        prop::option::of(name()),
        prop::option::of(prop::collection::vec(contact(), 0..4)),
        prop::option::of(prop_oneof![
            Just(Gender::Female),
            Just(Gender::Male),
            Just(Gender::Unknown)
        ]),
        prop::option::of(prop_oneof![
            Just("1970-01-01".to_string()),
            Just("1980".to_string())
        ]),
        prop::option::of(prop::collection::vec(
            prop_oneof![Just("MD"), Just("RN"), Just("DO")],
            0..3,
        )),
    )
        .prop_map(
            |(npi, active, name, telecom, gender, birth_date, q)| EpicPractitionerSpec {
                connection_ref: ConnectionRef {
                    name: "epic".into(),
                },
                npi: NPIS[npi].into(),
                active,
                name,
                telecom,
                gender,
                birth_date,
                qualifications: q.map(|q| {
                    q.into_iter()
                        .map(|c| Qualification {
                            code: c.into(),
                            display: None,
                            issuer: None,
                        })
                        .collect()
                }),
                management_policy: ManagementPolicy::Update,
                deletion_policy: DeletionPolicy::Orphan,
            },
        )
}

fn live_contact() -> impl Strategy<Value = Value> {
    (contact(), any::<bool>()).prop_map(|(c, ranked)| {
        let mut v = serde_json::to_value(&c).unwrap();
        if ranked {
            v["rank"] = json!(1);
        }
        v
    })
}

fn live() -> impl Strategy<Value = Value> {
    (
        prop::option::of(0..NPIS.len()),
        prop::option::of(any::<bool>()),
        prop::option::of(name()),
        any::<bool>(),
        prop::collection::vec(live_contact(), 0..4),
        prop::option::of(prop_oneof![Just("female"), Just("male"), Just("other")]),
        prop::option::of(prop_oneof![Just("1970-01-01"), Just("1990-05-05")]),
        prop::collection::vec(prop_oneof![Just("MD"), Just("RN"), Just("PhD")], 0..3),
        any::<bool>(),
    )
        .prop_map(|(npi, active, official, with_text, telecom, gender, birth, quals, extras)| {
            let mut p = json!({"resourceType": "Practitioner", "id": "eAbC123"});
            let mut ids = vec![json!({"system": "urn:oid:epic-internal", "value": "E1"})];
            if let Some(i) = npi {
                ids.push(json!({"use": "usual", "system": NPI_SYSTEM, "value": NPIS[i]}));
            }
            p["identifier"] = json!(ids);
            if let Some(a) = active {
                p["active"] = json!(a);
            }
            let mut names = vec![json!({"use": "usual", "family": "Nick", "given": ["Ally"]})];
            if let Some(n) = official {
                let mut v = json!({"use": "official", "family": n.family, "period": {"start": "2001"}});
                for (k, parts) in [("given", &n.given), ("prefix", &n.prefix), ("suffix", &n.suffix)] {
                    if !parts.is_empty() {
                        v[k] = json!(parts);
                    }
                }
                if with_text {
                    v["text"] = json!("stale text");
                }
                names.push(v);
            }
            p["name"] = json!(names);
            if !telecom.is_empty() {
                p["telecom"] = json!(telecom);
            }
            if let Some(g) = gender {
                p["gender"] = json!(g);
            }
            if let Some(b) = birth {
                p["birthDate"] = json!(b);
            }
            if !quals.is_empty() {
                p["qualification"] = json!(quals.iter().map(|q| json!({"code": {"coding": [{"code": q}]}, "period": {"start": "2000"}})).collect::<Vec<_>>());
            }
            if extras {
                p["extension"] = json!([{"url": "http://open.epic.com/x", "valueString": "y"}]);
                p["meta"] = json!({"versionId": "3"});
                p["address"] = json!([{"city": "Madison"}]);
                p["photo"] = json!([{"url": "https://x/p.png"}]);
                p["unknownEpicField"] = json!({"nested": [1, 2, {"deep": true}]});
            }
            p
        })
}

const OWNED: [&str; 7] = [
    "identifier",
    "active",
    "name",
    "telecom",
    "gender",
    "birthDate",
    "qualification",
];

fn non_official_names(v: &Value) -> Vec<Value> {
    v["name"]
        .as_array()
        .map(|n| {
            n.iter()
                .filter(|n| n["use"] != "official")
                .cloned()
                .collect()
        })
        .unwrap_or_default()
}

fn non_npi_ids(v: &Value) -> Vec<Value> {
    v["identifier"]
        .as_array()
        .map(|n| {
            n.iter()
                .filter(|i| i["system"] != NPI_SYSTEM)
                .cloned()
                .collect()
        })
        .unwrap_or_default()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn overlay_leaves_no_drift(spec in spec(), live in live()) {
        let body = overlay(&spec, &live);
        let after = drift(&spec, &body);
        prop_assert!(after.is_empty(), "drift after overlay: {:?}\nbody: {body}", after.entries);
    }

    #[test]
    fn overlay_preserves_every_field_not_owned(spec in spec(), live in live()) {
        let body = overlay(&spec, &live);
        for (key, value) in live.as_object().unwrap() {
            if !OWNED.contains(&key.as_str()) {
                prop_assert_eq!(body.get(key), Some(value), "field {} changed", key);
            }
        }
        for (key, _) in body.as_object().unwrap() {
            prop_assert!(OWNED.contains(&key.as_str()) || live.get(key).is_some(), "field {} appeared", key);
        }
        prop_assert_eq!(non_official_names(&body), non_official_names(&live));
        prop_assert_eq!(non_npi_ids(&body), non_npi_ids(&live));
        // Fields the spec does not own are not touched even though the engine knows them.
        for (key, owned) in [("active", spec.active.is_some()), ("gender", spec.gender.is_some()), ("birthDate", spec.birth_date.is_some()), ("telecom", spec.telecom.is_some()), ("qualification", spec.qualifications.is_some())] {
            if !owned {
                prop_assert_eq!(body.get(key), live.get(key), "unowned {} changed", key);
            }
        }
    }

    #[test]
    fn drift_is_empty_exactly_when_overlay_changes_nothing(spec in spec(), live in live()) {
        let report = drift(&spec, &live);
        let unchanged = overlay(&spec, &live) == live;
        prop_assert_eq!(report.is_empty(), unchanged, "drift {:?}", report.entries);
        prop_assert_eq!(report.diff.is_empty(), report.is_empty());
    }

    #[test]
    fn created_resources_match_the_spec(spec in spec()) {
        let body = new_resource(&spec);
        prop_assert_eq!(&body["resourceType"], "Practitioner");
        prop_assert!(drift(&spec, &body).is_empty());
    }

    #[test]
    fn fingerprint_changes_only_with_owned_fields(live in live()) {
        let mut other = live.clone();
        other["address"] = json!([{"city": "Elsewhere"}]);
        prop_assert_eq!(fingerprint(&live), fingerprint(&other));
        other["gender"] = json!("unknown-gender-value");
        prop_assert_ne!(fingerprint(&live), fingerprint(&other));
    }
}

#[test]
fn drift_names_each_field_and_bounds_the_diff() {
    let spec: EpicPractitionerSpec = serde_json::from_value(json!({
        "connectionRef": {"name": "epic"}, "npi": "1234567893", "active": true,
        "name": {"family": "Smith", "given": ["Alice"]},
        "telecom": [{"system": "email", "value": "a@example.org"}]
    }))
    .unwrap();
    let live = json!({"resourceType": "Practitioner", "id": "x", "active": false,
        "identifier": [{"system": NPI_SYSTEM, "value": "1234567893"}],
        "name": [{"use": "official", "family": "Smyth", "given": ["Alice"]}],
        "telecom": [{"system": "email", "value": "a@example.org", "use": "home"}]});
    let report = drift(&spec, &live);
    let paths: Vec<&str> = report.entries.iter().map(|d| d.path.as_str()).collect();
    assert_eq!(
        paths,
        vec!["active", "name[use=official]"],
        "telecom without use matches any use"
    );
    assert!(
        report.diff.contains("-  \"active\": false"),
        "{}",
        report.diff
    );
    assert!(
        report.diff.contains("+  \"active\": true"),
        "{}",
        report.diff
    );

    let huge: EpicPractitionerSpec = serde_json::from_value(json!({
        "connectionRef": {"name": "epic"}, "npi": "1234567893",
        "telecom": (0..400).map(|i| json!({"system": "email", "value": format!("user{i}@example.org")})).collect::<Vec<_>>()
    }))
    .unwrap();
    let report = drift(&huge, &live);
    assert!(report.diff.len() <= epic_operator::reconcile::MAX_DIFF_BYTES + 100);
    assert!(report.diff.contains("more bytes not shown"));
}
