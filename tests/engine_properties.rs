//! Tier 1: property tests of the pure engine (drift, overlay) over generated specs and live
//! records shaped like real Epic data: 0-3 identifiers of mixed systems with periods, official,
//! usual-only and use-less names with `text`, undeclared telecom entries (pagers), formatted
//! phone numbers, Epic-coded qualifications and qualifications with periods.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use epic_operator::crd::{
    ConnectionRef, ContactPoint, ContactSystem, ContactUse, DeletionPolicy, EpicPractitionerSpec,
    Gender, ListPolicy, ManagementPolicy, NPI_OID_SYSTEM, NPI_SYSTEM, PractitionerName,
    Qualification,
};
use epic_operator::reconcile::{Normalizer, drift, fingerprint, new_resource, overlay};
use proptest::prelude::*;
use serde_json::{Value, json};

const NPIS: [&str; 2] = ["1234567893", "1987654328"];
/// Contact values; the phone numbers come in several spellings of the same number.
const VALUES: [&str; 5] = [
    "a@example.org",
    "608-555-0100",
    "B@Example.ORG",
    "(608) 555-0100",
    "+1 608 555 0199",
];
const EPIC_QUAL_SYSTEM: &str = "urn:oid:1.2.840.114350.1.13.0.1.7.4.836982.1040";

fn norm() -> Normalizer {
    Normalizer::default()
}

fn contact() -> impl Strategy<Value = ContactPoint> {
    (
        prop_oneof![
            Just(ContactSystem::Email),
            Just(ContactSystem::Phone),
            Just(ContactSystem::Pager)
        ],
        0..VALUES.len(),
        prop::option::of(prop_oneof![Just(ContactUse::Work), Just(ContactUse::Home)]),
    )
        .prop_map(|(system, v, use_)| ContactPoint {
            system,
            value: VALUES[v].into(),
            use_,
        })
}

fn parts(options: &'static [&'static str]) -> impl Strategy<Value = Vec<String>> {
    prop::collection::vec(prop::sample::select(options), 0..3)
        .prop_map(|v| v.into_iter().map(String::from).collect())
}

fn name() -> impl Strategy<Value = PractitionerName> {
    (
        prop_oneof![Just("Smith"), Just("Jones")],
        parts(&["Alice", "M"]),
        prop::option::of(parts(&["Dr."])),
        prop::option::of(parts(&["MD", "Jr."])),
    )
        .prop_map(|(f, given, prefix, suffix)| PractitionerName {
            family: f.into(),
            given,
            prefix,
            suffix,
        })
}

fn qualification() -> impl Strategy<Value = Qualification> {
    prop_oneof![
        prop_oneof![Just("MD"), Just("RN"), Just("DO")].prop_map(|c| Qualification {
            system: None,
            code: Some(c.into()),
            display: None,
            issuer: None,
        }),
        Just(Qualification {
            system: Some(EPIC_QUAL_SYSTEM.into()),
            code: Some("1".into()),
            display: None,
            issuer: None,
        }),
        Just(Qualification {
            system: None,
            code: None,
            display: Some("Board certified".into()),
            issuer: Some("ABIM".into()),
        }),
    ]
}

fn policy() -> impl Strategy<Value = ListPolicy> {
    prop_oneof![3 => Just(ListPolicy::Merge), 1 => Just(ListPolicy::Exclusive)]
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
        prop::option::of(prop::collection::vec(qualification(), 0..3)),
        (policy(), policy()),
    )
        .prop_map(
            |(npi, active, name, telecom, gender, birth_date, qualifications, (tp, qp))| {
                EpicPractitionerSpec {
                    connection_ref: ConnectionRef {
                        name: "epic".into(),
                    },
                    npi: NPIS[npi].into(),
                    active,
                    name,
                    telecom,
                    telecom_policy: tp,
                    gender,
                    birth_date,
                    qualifications,
                    qualification_policy: qp,
                    management_policy: ManagementPolicy::Update,
                    deletion_policy: DeletionPolicy::Orphan,
                }
            },
        )
}

fn live_contact() -> impl Strategy<Value = Value> {
    (contact(), any::<bool>()).prop_map(|(c, ranked)| {
        let mut v = serde_json::to_value(&c).unwrap();
        if ranked {
            v["rank"] = json!(1);
            v["period"] = json!({"start": "2019"});
        }
        v
    })
}

/// One identifier: an NPI under either system (sometimes ended), or an Epic-internal one.
fn identifier() -> impl Strategy<Value = Value> {
    (0..3usize, 0..NPIS.len(), any::<bool>()).prop_map(|(kind, npi, ended)| {
        let mut id = match kind {
            0 => json!({"use": "usual", "system": NPI_SYSTEM, "value": NPIS[npi]}),
            1 => json!({"system": NPI_OID_SYSTEM, "value": format!(" {} ", NPIS[npi])}),
            _ => json!({"use": "usual", "system": "urn:oid:1.2.840.114350.1.13.0.1.7.5.737384.0", "value": "E1"}),
        };
        if ended {
            id["period"] = json!({"end": "2019-12-31"});
        }
        id
    })
}

/// A name entry with a given `use` (or none), sometimes with a `text` holding prefix and suffix.
fn live_name(use_: Option<&'static str>) -> impl Strategy<Value = Value> {
    (name(), any::<bool>()).prop_map(move |(n, with_text)| {
        let mut v = json!({"family": n.family, "period": {"start": "2001"}});
        if let Some(u) = use_ {
            v["use"] = json!(u);
        }
        for (k, p) in [
            ("given", Some(&n.given)),
            ("prefix", n.prefix.as_ref()),
            ("suffix", n.suffix.as_ref()),
        ] {
            if let Some(p) = p.filter(|p| !p.is_empty()) {
                v[k] = json!(p);
            }
        }
        if with_text {
            v["text"] = json!("Dr. Stale Text Jr.");
        }
        v
    })
}

fn live_names() -> impl Strategy<Value = Vec<Value>> {
    prop_oneof![
        Just(vec![]),
        live_name(Some("usual")).prop_map(|n| vec![n]),
        live_name(None).prop_map(|n| vec![n]),
        (live_name(Some("usual")), live_name(Some("official"))).prop_map(|(a, b)| vec![a, b]),
        (live_name(Some("nickname")), live_name(None)).prop_map(|(a, b)| vec![a, b]),
    ]
}

fn live_qualification() -> impl Strategy<Value = Value> {
    prop_oneof![
        prop_oneof![Just("MD"), Just("RN"), Just("PhD")].prop_map(|c| json!({"code": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0360", "code": c}]}, "period": {"start": "2000"}})),
        Just(json!({"code": {"coding": [{"system": EPIC_QUAL_SYSTEM, "code": "1", "display": "Board certified"}], "text": "Board certified"}, "issuer": {"display": "ABIM"}})),
        Just(json!({"code": {"text": "Fellowship"}})),
    ]
}

fn live() -> impl Strategy<Value = Value> {
    (
        prop::collection::vec(identifier(), 0..4),
        prop::option::of(any::<bool>()),
        live_names(),
        prop::collection::vec(live_contact(), 0..4),
        prop::option::of(prop_oneof![Just("female"), Just("male"), Just("other")]),
        prop::option::of(prop_oneof![Just("1970-01-01"), Just("1990-05-05")]),
        prop::collection::vec(live_qualification(), 0..3),
        any::<bool>(),
    )
        .prop_map(
            |(ids, active, names, telecom, gender, birth, quals, extras)| {
                let mut p = json!({"resourceType": "Practitioner", "id": "eAb-C1.23"});
                if !ids.is_empty() {
                    p["identifier"] = json!(ids);
                }
                if let Some(a) = active {
                    p["active"] = json!(a);
                }
                if !names.is_empty() {
                    p["name"] = json!(names);
                }
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
                    p["qualification"] = json!(quals);
                }
                if extras {
                    p["extension"] = json!([{"url": "http://open.epic.com/x", "valueString": "y"}]);
                    p["meta"] = json!({"versionId": "3"});
                    p["address"] = json!([{"city": "Madison"}]);
                    p["photo"] = json!([{"url": "https://x/p.png"}]);
                    p["unknownEpicField"] = json!({"nested": [1, 2, {"deep": true}]});
                }
                p
            },
        )
}

/// Top-level fields the engine may change (only those the spec owns).
const OWNABLE: [&str; 6] = [
    "active",
    "name",
    "telecom",
    "gender",
    "birthDate",
    "qualification",
];

fn list(v: &Value, key: &str) -> Vec<Value> {
    v[key].as_array().cloned().unwrap_or_default()
}

/// Index of the name entry the spec is compared with (official, usual, first).
fn shown(v: &Value) -> Option<usize> {
    let names = list(v, "name");
    names
        .iter()
        .position(|n| n["use"] == "official")
        .or_else(|| names.iter().position(|n| n["use"] == "usual"))
        .or_else(|| (!names.is_empty()).then_some(0))
}

fn system_of(c: &Value) -> Option<ContactSystem> {
    serde_json::from_value(c["system"].clone()).ok()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn overlay_leaves_no_drift(spec in spec(), live in live()) {
        let body = overlay(&spec, &live, &norm());
        let after = drift(&spec, &body, &norm());
        prop_assert!(after.is_empty(), "drift after overlay: {:?}\nbody: {body}", after.entries);
    }

    #[test]
    fn identifiers_are_never_changed(spec in spec(), live in live()) {
        let body = overlay(&spec, &live, &norm());
        // Byte for byte: no entry changed, reordered, added or removed.
        prop_assert_eq!(body.get("identifier").map(Value::to_string), live.get("identifier").map(Value::to_string));
    }

    #[test]
    fn overlay_preserves_every_field_not_owned(spec in spec(), live in live()) {
        let body = overlay(&spec, &live, &norm());
        for (key, value) in live.as_object().unwrap() {
            if !OWNABLE.contains(&key.as_str()) {
                prop_assert_eq!(body.get(key), Some(value), "field {} changed", key);
            }
        }
        for (key, _) in body.as_object().unwrap() {
            prop_assert!(OWNABLE.contains(&key.as_str()) || live.get(key).is_some(), "field {} appeared", key);
        }
        // Fields the spec does not own are not touched even though the engine knows them.
        for (key, owned) in [("active", spec.active.is_some()), ("name", spec.name.is_some()), ("gender", spec.gender.is_some()), ("birthDate", spec.birth_date.is_some()), ("telecom", spec.telecom.is_some()), ("qualification", spec.qualifications.is_some())] {
            if !owned {
                prop_assert_eq!(body.get(key), live.get(key), "unowned {} changed", key);
            }
        }
    }

    #[test]
    fn names_follow_the_record(spec in spec(), live in live()) {
        let body = overlay(&spec, &live, &norm());
        let (before, after) = (list(&live, "name"), list(&body, "name"));
        if before.is_empty() {
            prop_assert!(after.len() <= 1, "at most one name is added to a nameless record");
            return Ok(());
        }
        prop_assert_eq!(after.len(), before.len(), "no second name is added");
        let i = shown(&live).unwrap();
        for (j, (a, b)) in before.iter().zip(&after).enumerate() {
            if j != i {
                prop_assert_eq!(a, b, "name {} is not the shown one and must not change", j);
            }
        }
        prop_assert_eq!(&after[i]["use"], &before[i]["use"]);
        prop_assert_eq!(&after[i]["period"], &before[i]["period"]);
        // Undeclared prefixes and suffixes stay; rendered text keeps them.
        if let Some(n) = &spec.name {
            for (key, declared) in [("prefix", &n.prefix), ("suffix", &n.suffix)] {
                if declared.is_none() {
                    prop_assert_eq!(&after[i][key], &before[i][key]);
                }
            }
            if after[i] != before[i] && before[i].get("text").is_some() {
                let text = after[i]["text"].as_str().unwrap();
                for key in ["prefix", "suffix", "given"] {
                    for part in list(&after[i], key) {
                        prop_assert!(text.contains(part.as_str().unwrap()), "text {text:?} lost {part}");
                    }
                }
            }
        }
    }

    #[test]
    fn undeclared_list_entries_stay(spec in spec(), live in live()) {
        let body = overlay(&spec, &live, &norm());
        if let Some(declared) = &spec.telecom && spec.telecom_policy == ListPolicy::Merge {
            let after = list(&body, "telecom");
            for entry in list(&live, "telecom") {
                let system = system_of(&entry);
                let declared_key = declared.iter().any(|d| Some(d.system) == system && (d.use_.is_none() || serde_json::to_value(d.use_).unwrap() == entry["use"]));
                if !declared_key {
                    prop_assert!(after.contains(&entry), "undeclared {entry} was removed");
                }
            }
        }
        if spec.qualifications.is_some() && spec.qualification_policy == ListPolicy::Merge {
            let after = list(&body, "qualification");
            for q in list(&live, "qualification") {
                prop_assert!(after.contains(&q), "qualification {q} was removed or changed");
            }
        }
    }

    #[test]
    fn drift_is_empty_exactly_when_overlay_changes_nothing(spec in spec(), live in live()) {
        let report = drift(&spec, &live, &norm());
        let unchanged = overlay(&spec, &live, &norm()) == live;
        prop_assert_eq!(report.is_empty(), unchanged, "drift {:?}", report.entries);
        prop_assert_eq!(report.diff.is_empty(), report.is_empty());
    }

    #[test]
    fn formatting_alone_is_never_drift(live in live(), spelling in 0..3usize) {
        // A spec that declares every phone and e-mail exactly as the record has it, but spelled
        // differently, must not plan a write.
        let reformat = |v: &str| -> String {
            let digits: String = v.chars().filter(char::is_ascii_digit).collect();
            let national = digits.trim_start_matches('1');
            match spelling {
                0 => format!("({}) {}-{}", &national[..3], &national[3..6], &national[6..]),
                1 => format!("+1.{}.{}.{}", &national[..3], &national[3..6], &national[6..]),
                _ => national.to_string(),
            }
        };
        let telecom: Vec<ContactPoint> = list(&live, "telecom").iter().map(|c| {
            let mut c: ContactPoint = serde_json::from_value(c.clone()).unwrap();
            c.value = match c.system {
                ContactSystem::Email => c.value.to_uppercase().replacen(&c.value.split('@').next().unwrap().to_uppercase(), c.value.split('@').next().unwrap(), 1),
                _ if c.value.contains('@') => c.value,
                _ => reformat(&c.value),
            };
            c
        }).collect();
        let spec = EpicPractitionerSpec {
            connection_ref: ConnectionRef { name: "epic".into() },
            npi: NPIS[0].into(),
            active: None, name: None, gender: None, birth_date: None, qualifications: None,
            telecom: Some(telecom),
            telecom_policy: ListPolicy::Exclusive,
            qualification_policy: ListPolicy::Merge,
            management_policy: ManagementPolicy::Update,
            deletion_policy: DeletionPolicy::Orphan,
        };
        let report = drift(&spec, &live, &norm());
        prop_assert!(report.is_empty(), "formatting-only drift: {:?}", report.entries);
        prop_assert_eq!(overlay(&spec, &live, &norm()), live);
    }

    #[test]
    fn created_resources_match_the_spec(spec in spec()) {
        let body = new_resource(&spec, &norm());
        prop_assert_eq!(&body["resourceType"], "Practitioner");
        prop_assert_eq!(&body["identifier"], &json!([{"use": "official", "system": NPI_SYSTEM, "value": spec.npi}]));
        prop_assert!(drift(&spec, &body, &norm()).is_empty());
        for q in list(&body, "qualification") {
            for c in q["code"]["coding"].as_array().cloned().unwrap_or_default() {
                prop_assert!(c["system"].is_string(), "written coding without a system: {c}");
            }
        }
    }

    #[test]
    fn fingerprint_changes_only_with_owned_fields(live in live()) {
        let mut other = live.clone();
        other["address"] = json!([{"city": "Elsewhere"}]);
        prop_assert_eq!(fingerprint(&live, &norm()), fingerprint(&other, &norm()));
        other["gender"] = json!("unknown-gender-value");
        prop_assert_ne!(fingerprint(&live, &norm()), fingerprint(&other, &norm()));
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
    let report = drift(&spec, &live, &norm());
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
    let report = drift(&huge, &live, &norm());
    assert!(report.diff.len() <= epic_operator::reconcile::MAX_DIFF_BYTES + 100);
    assert!(report.diff.contains("more bytes not shown"));
}
