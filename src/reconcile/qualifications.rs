//! Qualifications: matched by code system + code (or by text when the declaration has no
//! code). Declared ones are added when missing; undeclared ones (an Epic-coded credential, one
//! with a period) stay unless the spec opts into `qualificationPolicy: Exclusive`.

use serde_json::{Map, Value, json};

use crate::crd::{ListPolicy, Qualification};

/// The system written for a declared code without one: HL7 v2 table 0360
/// (degree/license/certificate), where MD, RN, PharmD and the like live.
pub const DEFAULT_QUALIFICATION_SYSTEM: &str = "http://terminology.hl7.org/CodeSystem/v2-0360";

fn codings(q: &Value) -> &[Value] {
    q.pointer("/code/coding")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[])
}

fn texts(q: &Value) -> Vec<String> {
    let mut out: Vec<String> = codings(q)
        .iter()
        .filter_map(|c| c.get("display").and_then(Value::as_str))
        .map(|s| s.trim().to_lowercase())
        .collect();
    if let Some(t) = q.pointer("/code/text").and_then(Value::as_str) {
        out.push(t.trim().to_lowercase());
    }
    out
}

fn matches(d: &Qualification, live: &Value) -> bool {
    match (&d.code, &d.display) {
        (Some(code), _) => codings(live).iter().any(|c| {
            c.get("code").and_then(Value::as_str).map(str::trim) == Some(code.trim())
                && d.system.as_deref().is_none_or(|s| {
                    c.get("system").and_then(Value::as_str).map(str::trim) == Some(s.trim())
                })
        }),
        (None, Some(text)) => texts(live).contains(&text.trim().to_lowercase()),
        (None, None) => false,
    }
}

/// For each declaration, the live entry it matched (each live entry pairs at most once).
fn pair(desired: &[Qualification], live: &[Value]) -> Vec<Option<usize>> {
    let mut used = vec![false; live.len()];
    desired
        .iter()
        .map(|d| {
            let i = (0..live.len()).find(|&i| !used[i] && matches(d, &live[i]))?;
            used[i] = true;
            Some(i)
        })
        .collect()
}

fn items(record: &Value) -> &[Value] {
    record
        .get("qualification")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[])
}

pub(super) fn in_sync(desired: &[Qualification], policy: ListPolicy, record: &Value) -> bool {
    let live = items(record);
    let matched = pair(desired, live);
    matched.iter().all(Option::is_some)
        && (policy == ListPolicy::Merge || matched.iter().flatten().count() == live.len())
}

pub(super) fn apply(
    desired: &[Qualification],
    policy: ListPolicy,
    record: &mut Map<String, Value>,
) {
    let live: Vec<Value> = items(&Value::Object(record.clone())).to_vec();
    let matched = pair(desired, &live);
    let mut out: Vec<Value> = match policy {
        ListPolicy::Merge => live.clone(),
        ListPolicy::Exclusive => live
            .iter()
            .enumerate()
            .filter(|(i, _)| matched.contains(&Some(*i)))
            .map(|(_, v)| v.clone())
            .collect(),
    };
    out.extend(
        desired
            .iter()
            .zip(&matched)
            .filter(|(_, m)| m.is_none())
            .map(|(d, _)| qualification_json(d)),
    );
    if out.is_empty() {
        record.remove("qualification");
    } else {
        record.insert("qualification".into(), Value::Array(out));
    }
}

/// A new qualification entry; its coding always carries a system.
pub(super) fn qualification_json(q: &Qualification) -> Value {
    let mut code = Map::new();
    if let Some(c) = &q.code {
        let mut coding = json!({
            "system": q.system.as_deref().unwrap_or(DEFAULT_QUALIFICATION_SYSTEM),
            "code": c,
        });
        if let Some(d) = &q.display {
            coding["display"] = json!(d);
        }
        code.insert("coding".into(), json!([coding]));
    }
    if let Some(d) = &q.display {
        code.insert("text".into(), json!(d));
    }
    let mut v = json!({ "code": code });
    if let Some(i) = &q.issuer {
        v["issuer"] = json!({ "display": i });
    }
    v
}

fn declared_key(q: &Qualification) -> String {
    match (&q.system, &q.code, &q.display) {
        (Some(s), Some(c), _) => format!("{s}|{c}"),
        (None, Some(c), _) => c.clone(),
        (_, None, Some(t)) => format!("text:{t}"),
        (_, None, None) => String::new(),
    }
}

fn live_key(q: &Value) -> String {
    match codings(q).first() {
        Some(c) => {
            let code = c.get("code").and_then(Value::as_str).unwrap_or_default();
            match c.get("system").and_then(Value::as_str) {
                Some(s) => format!("{s}|{code}"),
                None => code.to_string(),
            }
        }
        None => format!(
            "text:{}",
            q.pointer("/code/text")
                .and_then(Value::as_str)
                .unwrap_or_default()
        ),
    }
}

fn sorted(mut v: Vec<String>) -> Value {
    v.sort();
    json!(v)
}

pub(super) fn desired_projection(desired: &[Qualification]) -> Value {
    sorted(desired.iter().map(declared_key).collect())
}

/// The live qualifications, by key (system|code, or text:...).
pub(super) fn live_projection(record: &Value) -> Value {
    sorted(items(record).iter().map(live_key).collect())
}

/// Why a declaration cannot be matched, if it cannot.
pub(super) fn validate(desired: &[Qualification]) -> Result<(), String> {
    match desired
        .iter()
        .position(|q| q.code.is_none() && q.display.is_none())
    {
        Some(i) => Err(format!(
            "qualifications[{i}] has neither code nor display: give a code (with its system) or the qualification's text in display"
        )),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(system: Option<&str>, code: Option<&str>, display: Option<&str>) -> Qualification {
        Qualification {
            system: system.map(str::to_string),
            code: code.map(str::to_string),
            display: display.map(str::to_string),
            issuer: None,
        }
    }

    #[test]
    fn undeclared_and_period_entries_stay_and_new_codings_have_a_system() {
        let record = json!({"qualification": [
            {"code": {"coding": [{"system": "urn:oid:1.2.840.114350.1.13.0.1.7.4.836982.1040", "code": "1"}], "text": "Board certified"}},
            {"code": {"coding": [{"system": DEFAULT_QUALIFICATION_SYSTEM, "code": "MD"}]}, "period": {"start": "2001-01-01"}}
        ]});
        let d = [
            q(None, Some("MD"), None),
            q(None, Some("RN"), Some("Registered nurse")),
        ];
        assert!(!in_sync(&d, ListPolicy::Merge, &record));
        let mut o = record.as_object().cloned().unwrap();
        apply(&d, ListPolicy::Merge, &mut o);
        let list = o["qualification"].as_array().unwrap();
        assert_eq!(list.len(), 3);
        assert_eq!(list[0], record["qualification"][0]);
        assert_eq!(list[1], record["qualification"][1]);
        assert_eq!(
            list[2]["code"]["coding"][0]["system"],
            DEFAULT_QUALIFICATION_SYSTEM
        );
        assert!(in_sync(&d, ListPolicy::Merge, &Value::Object(o)));
    }

    #[test]
    fn system_is_compared_when_declared_and_text_matches_without_code() {
        let record = json!({"qualification": [{"code": {"coding": [{"system": "urn:x", "code": "MD"}], "text": "Doctor of Medicine"}}]});
        assert!(in_sync(
            &[q(None, Some("MD"), None)],
            ListPolicy::Merge,
            &record
        ));
        assert!(!in_sync(
            &[q(Some("urn:y"), Some("MD"), None)],
            ListPolicy::Merge,
            &record
        ));
        assert!(in_sync(
            &[q(None, None, Some("doctor of medicine"))],
            ListPolicy::Merge,
            &record
        ));
        assert!(validate(&[q(None, None, None)]).is_err());
    }

    #[test]
    fn exclusive_drops_undeclared() {
        let record = json!({"qualification": [{"code": {"text": "Old"}}, {"code": {"coding": [{"code": "MD"}]}}]});
        let d = [q(None, Some("MD"), None)];
        assert!(in_sync(&d, ListPolicy::Merge, &record));
        assert!(!in_sync(&d, ListPolicy::Exclusive, &record));
        let mut o = record.as_object().cloned().unwrap();
        apply(&d, ListPolicy::Exclusive, &mut o);
        assert_eq!(
            o["qualification"],
            json!([{"code": {"coding": [{"code": "MD"}]}}])
        );
    }
}
