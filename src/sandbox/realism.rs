//! The realism mix of generated records: the shapes real Epic data has.

use serde_json::{Value, json};

use crate::crd::{NPI_OID_SYSTEM, NPI_SYSTEM, npi_from_prefix};

/// Gives record `i` one of the shapes real Epic data has, in rotation: the NPI under the OID
/// system, an ended NPI beside the current one, a usual-only name, `text` with prefix and
/// suffix, formatted phone numbers, pagers, Epic-coded qualifications and qualifications with a
/// period. Every record stays a valid Practitioner with exactly one current NPI.
pub fn realistic_practitioner(p: &mut Value, i: usize) {
    let npi = p
        .pointer("/identifier/0/value")
        .cloned()
        .unwrap_or(Value::Null);
    let family = p.pointer("/name/0/family").cloned().unwrap_or(Value::Null);
    match i % 8 {
        0 => {
            p["identifier"][0] = json!({"system": NPI_OID_SYSTEM, "value": npi});
        }
        1 => {
            let old = npi_from_prefix(700_000_000 + i as u32);
            if let Some(ids) = p["identifier"].as_array_mut() {
                ids.insert(
                    0,
                    json!({"use": "old", "system": NPI_SYSTEM, "value": old, "period": {"end": "2019-06-30"}}),
                );
            }
        }
        2 => {
            p["name"] = json!([{"use": "usual", "family": family, "given": ["Kim"]}]);
        }
        3 => {
            let text = format!("Dr. Kim {} Jr.", family.as_str().unwrap_or_default());
            p["name"] = json!([{"use": "official", "text": text, "family": family, "given": ["Kim"], "prefix": ["Dr."], "suffix": ["Jr."]}]);
        }
        4 => {
            p["telecom"] = json!([
                {"system": "phone", "value": format!("(608) 555-{:04}", i % 10_000), "use": "work"},
                {"system": "pager", "value": format!("608-555-{:04}", (i + 1) % 10_000)}
            ]);
        }
        5 => {
            p["qualification"] = json!([
                {"code": {"coding": [{"system": "urn:oid:1.2.840.114350.1.13.0.1.7.4.836982.1040", "code": "1", "display": "Board certified"}], "text": "Board certified"}},
                {"code": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0360", "code": "MD", "display": "Doctor of Medicine"}]}, "period": {"start": "2004-05-01"}, "issuer": {"display": "Wisconsin Medical Examining Board"}}
            ]);
        }
        6 => {
            p["telecom"] = json!([
                {"system": "email", "value": format!("Clinician{i}@Example.ORG"), "use": "work"},
                {"system": "phone", "value": format!("+1 608.555.{:04}", i % 10_000), "use": "mobile", "rank": 1}
            ]);
            p["photo"] = json!([{"contentType": "image/png", "url": "https://example.org/p.png"}]);
            p["extension"] = json!([{"url": "http://open.epic.com/FHIR/StructureDefinition/extension/clinician-title", "valueString": "Attending"}]);
        }
        _ => {
            p["name"] = json!([
                {"use": "usual", "family": family, "given": ["K."]},
                {"use": "official", "family": family, "given": ["Kim"], "period": {"start": "2010"}}
            ]);
        }
    }
}
