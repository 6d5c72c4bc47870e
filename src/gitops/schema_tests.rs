//! Unit tests of the schema check: what the API server would accept or refuse.

use super::*;

fn practitioner(spec: Value) -> Value {
    json!({"apiVersion": "epic-operator.dev/v1alpha1", "kind": "EpicPractitioner",
        "metadata": {"name": "alice"}, "spec": spec})
}

#[test]
fn the_schema_refuses_what_the_api_server_refuses() {
    let s = SchemaSet::new().unwrap();
    let ok = practitioner(json!({"connectionRef": {"name": "epic"}, "npi": "1234567893"}));
    assert_eq!(s.check(&ok), Vec::<String>::new());
    let typo = practitioner(
        json!({"connectionRef": {"name": "epic"}, "npi": "1234567893", "actve": true}),
    );
    let p = s.check(&typo);
    assert!(
        p.len() == 1 && p[0].starts_with("unknown field \"spec.actve\""),
        "{p:?}"
    );
    let wrong_type = practitioner(
        json!({"connectionRef": {"name": "epic"}, "npi": "1234567893", "active": "yes"}),
    );
    assert!(s.check(&wrong_type)[0].starts_with("spec.active:"));
    let pattern = practitioner(json!({"connectionRef": {"name": "epic"}, "npi": "12345"}));
    assert!(s.check(&pattern)[0].starts_with("spec.npi:"));
    let enum_ = practitioner(
        json!({"connectionRef": {"name": "epic"}, "npi": "1234567893", "telecom": [{"system": "fax2", "value": "x"}]}),
    );
    assert!(s.check(&enum_)[0].starts_with("spec.telecom[0].system:"));
    let mut meta = ok.clone();
    meta["metadata"]["lables"] = json!({});
    assert!(s.check(&meta)[0].contains("\"metadata.lables\""));
    let mut version = ok.clone();
    version["apiVersion"] = json!("epic-operator.dev/v1beta1");
    assert!(s.check(&version)[0].contains("v1alpha1"));
    let mut kind = ok;
    kind["kind"] = json!("EpicPractitoner");
    assert!(s.check(&kind)[0].contains("EpicPractitioner"));
}

#[test]
fn unknown_fields_are_named_one_by_one() {
    assert_eq!(
        unknown_fields("Additional properties are not allowed ('a', 'b' were unexpected)"),
        Some(vec!["a".to_string(), "b".to_string()])
    );
    assert_eq!(unknown_fields("\"x\" is not of type \"boolean\""), None);
}

#[test]
fn unknown_fields_come_with_the_nearest_declared_name() {
    let s = SchemaSet::new().unwrap();
    let conn = json!({"apiVersion": "epic-operator.dev/v1alpha1", "kind": "EpicConnection",
        "metadata": {"name": "epic"}, "spec": {"fhirBaseURL": "https://x", "clientId": "c",
        "privateKeySecretRef": {"name": "k"}}});
    let p = s.problems(&conn);
    let unknown = p.iter().find(|p| p.path == "spec.fhirBaseURL").unwrap();
    assert!(
        unknown.text.contains("did you mean \"fhirBaseUrl\"?"),
        "{p:?}"
    );
    assert_eq!(edit_distance("actve", "active"), 1);
    let typo =
        practitioner(json!({"connectionRef": {"name": "epic"}, "npi": "1234567893", "zzzz": 1}));
    assert!(s.check(&typo)[0].contains("check the spelling"));
}

#[test]
fn field_paths_read_like_kubectl() {
    assert_eq!(field_path("/spec/telecom/0/value"), "spec.telecom[0].value");
    assert_eq!(field_path(""), "(document)");
}
