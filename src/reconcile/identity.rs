//! Who a record is: the NPI it carries (under either NPI system), whether an id Epic sent may
//! go into a URL, and whether a copy of a record is whole enough to write back.
//!
//! The NPI is the key that ties a manifest to a record, never a field the operator owns: these
//! checks are what stop a write to the wrong clinician.

use serde_json::Value;

use crate::crd::NPI_SYSTEMS;

/// True for an identifier entry under either NPI system.
pub fn is_npi_identifier(identifier: &Value) -> bool {
    identifier
        .get("system")
        .and_then(Value::as_str)
        .is_some_and(|s| NPI_SYSTEMS.contains(&s.trim()))
}

/// Every NPI value a record carries (both systems, trimmed, in record order, without repeats).
/// Linear in the number of identifiers: a hostile record carrying 100,000 of them costs one
/// pass, not a comparison of each with every other.
pub fn npi_values(record: &Value) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut seen: std::collections::HashSet<&str> = std::collections::HashSet::new();
    for id in record
        .get("identifier")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[])
    {
        if is_npi_identifier(id)
            && let Some(v) = id.get("value").and_then(Value::as_str)
        {
            let v = v.trim();
            if seen.insert(v) {
                out.push(v.to_string());
            }
        }
    }
    out
}

/// How many identifiers a record may carry before a roster walk leaves it out: real records
/// carry a few NPIs and some dozens of other identifiers.
pub const MAX_IDENTIFIERS_PER_RECORD: usize = 200;
/// How many distinct NPIs a record may carry before a roster walk leaves it out.
pub const MAX_NPIS_PER_RECORD: usize = 16;

/// Why a walk must leave a record out (beyond the bounds above), if it must.
pub fn over_bounds(record: &Value) -> Option<String> {
    let identifiers = record
        .get("identifier")
        .and_then(Value::as_array)
        .map_or(0, Vec::len);
    if identifiers > MAX_IDENTIFIERS_PER_RECORD {
        return Some(format!(
            "a record carries {identifiers} identifiers (at most {MAX_IDENTIFIERS_PER_RECORD} are read)"
        ));
    }
    let npis = npi_values(record).len();
    (npis > MAX_NPIS_PER_RECORD)
        .then(|| format!("a record carries {npis} NPIs (at most {MAX_NPIS_PER_RECORD} are read)"))
}

/// The NPI a record currently goes by: the first NPI entry without an ended `period`, else the
/// first NPI entry. Used to adopt records (`export`) and to index the roster.
pub fn current_npi(record: &Value) -> Option<String> {
    let ids = record.get("identifier").and_then(Value::as_array)?;
    let npis: Vec<&Value> = ids.iter().filter(|i| is_npi_identifier(i)).collect();
    let value = |i: &&Value| {
        i.get("value")
            .and_then(Value::as_str)
            .map(|v| v.trim().to_string())
    };
    npis.iter()
        .filter(|i| i.pointer("/period/end").is_none())
        .find_map(value)
        .or_else(|| npis.iter().find_map(value))
}

/// Whether the record carries `npi` under either NPI system (an ended entry counts: the record
/// is still that clinician's).
pub fn carries_npi(record: &Value, npi: &str) -> bool {
    npi_values(record).iter().any(|v| v == npi.trim())
}

/// FHIR ids are `[A-Za-z0-9\-\.]{1,64}`. Only such ids go into a request path, and they go in
/// as they are: every character of the grammar is unreserved in a URL, and percent-encoding
/// `-` or `.` breaks servers that compare the raw segment and trips web application firewalls.
pub fn check_fhir_id(id: &str) -> Result<(), String> {
    let ok = (1..=64).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{:?} is not a FHIR id (1-64 characters of A-Z, a-z, 0-9, '-' and '.'); refusing to use it in a URL",
            crate::util::bounded_message(id, 80)
        ))
    }
}

/// True when a search returned only part of the resource (`meta.tag` SUBSETTED): such a copy
/// must never be written back, or the missing fields would be erased.
pub fn is_subsetted(resource: &Value) -> bool {
    resource
        .pointer("/meta/tag")
        .and_then(Value::as_array)
        .is_some_and(|tags| {
            tags.iter()
                .any(|t| t.get("code").and_then(Value::as_str) == Some("SUBSETTED"))
        })
}

/// The `If-Match` value for a conditional write of a record read with `etag`: the ETag itself,
/// or `W/"<meta.versionId>"` when only the version is known.
pub fn version_precondition(etag: Option<&str>, record: &Value) -> Option<String> {
    etag.map(str::to_string).or_else(|| {
        record
            .pointer("/meta/versionId")
            .and_then(Value::as_str)
            .map(|v| format!("W/\"{v}\""))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_hostile_record_is_bounded_and_its_npis_deduplicated_in_one_pass() {
        let many: Vec<Value> = (0..160_000)
            .map(|i| json!({"system": "http://hl7.org/fhir/sid/us-npi", "value": format!("{}", 1_000_000_000 + i % 1_000)}))
            .collect();
        let hostile = json!({"identifier": many});
        assert_eq!(
            npi_values(&hostile).len(),
            1_000,
            "repeats dropped, order kept"
        );
        assert!(over_bounds(&hostile).is_some_and(|w| w.contains("160000 identifiers")));
        let npis: Vec<Value> = (0..20)
            .map(|i| json!({"system": "http://hl7.org/fhir/sid/us-npi", "value": format!("{}", 1_000_000_000 + i)}))
            .collect();
        assert!(over_bounds(&json!({"identifier": npis})).is_some_and(|w| w.contains("20 NPIs")));
        let real = json!({"identifier": [
            {"system": "http://hl7.org/fhir/sid/us-npi", "value": "1234567893"},
            {"system": "urn:oid:2.16.840.1.113883.4.6", "value": "1245319599"},
            {"system": "urn:oid:1.2.840.114350", "value": "E1234"}
        ]});
        assert_eq!(over_bounds(&real), None);
    }

    #[test]
    fn npi_under_either_system_counts_and_values_are_trimmed() {
        let r = json!({"identifier": [
            {"system": "urn:oid:2.16.840.1.113883.4.6", "value": " 1234567893 "},
            {"system": "urn:oid:1.2.840.114350", "value": "1111111112"}
        ]});
        assert!(carries_npi(&r, "1234567893"));
        assert!(
            !carries_npi(&r, "1111111112"),
            "another system is not an NPI"
        );
        assert_eq!(npi_values(&r), vec!["1234567893"]);
    }

    #[test]
    fn current_npi_skips_ended_entries() {
        let r = json!({"identifier": [
            {"system": "http://hl7.org/fhir/sid/us-npi", "value": "1111111112", "period": {"end": "2020-01-01"}},
            {"system": "http://hl7.org/fhir/sid/us-npi", "value": "1234567893"}
        ]});
        assert_eq!(current_npi(&r).as_deref(), Some("1234567893"));
        assert!(carries_npi(&r, "1111111112"));
    }

    #[test]
    fn fhir_id_grammar() {
        for ok in ["a", "eM5-CW.tq1", &"x".repeat(64)] {
            assert!(check_fhir_id(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "a/b",
            "a b",
            "a%2E",
            "a_b",
            "../x",
            &"x".repeat(65),
            "é",
        ] {
            assert!(check_fhir_id(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn precondition_prefers_the_etag() {
        let r = json!({"meta": {"versionId": "7"}});
        assert_eq!(
            version_precondition(Some("W/\"9\""), &r).as_deref(),
            Some("W/\"9\"")
        );
        assert_eq!(version_precondition(None, &r).as_deref(), Some("W/\"7\""));
        assert_eq!(version_precondition(None, &json!({})), None);
    }

    #[test]
    fn subsetted_tag_is_seen() {
        let r = json!({"meta": {"tag": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ObservationValue", "code": "SUBSETTED"}]}});
        assert!(is_subsetted(&r));
        assert!(!is_subsetted(&json!({"meta": {}})));
    }
}
