//! Telecom: owned per declared key (system + use), compared after normalisation.
//!
//! A declared contact matches a live entry of the same system with the same normalised value
//! (and the same `use`, when the declaration names one). A live entry is owned when its key is
//! declared (a declaration without `use` owns the entries of its system that have none), or
//! when the spec opts into `telecomPolicy: Exclusive`. Owned entries that match nothing are
//! stale: a write replaces their value in place (keeping rank, period and extensions) or
//! removes them. Every entry of an undeclared key (the pager nobody declared) stays.

use serde_json::{Map, Value, json};

use super::normalize::Normalizer;
use crate::crd::{ContactPoint, ContactSystem, ContactUse, ListPolicy};

/// How the declared contacts pair with the live entries.
struct Pairing {
    /// For each declared contact (spec order), the live entry it matched.
    matched: Vec<Option<usize>>,
    /// Owned live entries that no declaration matched, in live order.
    stale: Vec<usize>,
}

fn system_of(v: &Value) -> Option<ContactSystem> {
    v.get("system")
        .cloned()
        .and_then(|s| serde_json::from_value(s).ok())
}

fn use_str(u: Option<ContactUse>) -> Option<Value> {
    u.and_then(|u| serde_json::to_value(u).ok())
}

/// The declared key (system + use) of a live entry equals the declaration's.
fn same_key(d: &ContactPoint, live: &Value) -> bool {
    system_of(live) == Some(d.system) && live.get("use").cloned() == use_str(d.use_)
}

fn pair(
    desired: &[ContactPoint],
    live: &[Value],
    policy: ListPolicy,
    norm: &Normalizer,
) -> Pairing {
    let mut used = vec![false; live.len()];
    let mut matched = vec![None; desired.len()];
    let live_values: Vec<String> = live
        .iter()
        .map(|l| {
            norm.contact_value(
                system_of(l),
                l.get("value").and_then(Value::as_str).unwrap_or_default(),
            )
        })
        .collect();
    // Declarations with an explicit `use` pick first, so a use-less one cannot steal their partner.
    let mut order: Vec<usize> = (0..desired.len()).collect();
    order.sort_by_key(|&i| desired[i].use_.is_none());
    for di in order {
        let d = &desired[di];
        let want = norm.contact_value(Some(d.system), &d.value);
        let found = (0..live.len()).find(|&i| {
            !used[i]
                && system_of(&live[i]) == Some(d.system)
                && live_values[i] == want
                && (d.use_.is_none() || live[i].get("use").cloned() == use_str(d.use_))
        });
        if let Some(i) = found {
            used[i] = true;
            matched[di] = Some(i);
        }
    }
    let stale = (0..live.len())
        .filter(|&i| {
            !used[i]
                && (policy == ListPolicy::Exclusive
                    || desired.iter().any(|d| same_key(d, &live[i])))
        })
        .collect();
    Pairing { matched, stale }
}

fn items(record: &Value) -> &[Value] {
    record
        .get("telecom")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[])
}

/// Whether the record satisfies the declared contacts.
pub(super) fn in_sync(
    desired: &[ContactPoint],
    policy: ListPolicy,
    record: &Value,
    norm: &Normalizer,
) -> bool {
    let p = pair(desired, items(record), policy, norm);
    p.matched.iter().all(Option::is_some) && p.stale.is_empty()
}

/// Makes the owned entries equal to the declaration, touching no other entry.
pub(super) fn apply(
    desired: &[ContactPoint],
    policy: ListPolicy,
    record: &mut Map<String, Value>,
    norm: &Normalizer,
) {
    let live: Vec<Value> = record
        .get("telecom")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let p = pair(desired, &live, policy, norm);
    let mut next = live.clone();
    let mut stale = p.stale.clone();
    let mut appended = Vec::new();
    for (di, d) in desired.iter().enumerate() {
        if p.matched[di].is_some() {
            continue;
        }
        // A stale entry of the same key takes the new value in place.
        match stale.iter().position(|&s| same_key(d, &live[s])) {
            Some(pos) => {
                let s = stale.remove(pos);
                if let Some(Value::Object(o)) = next.get_mut(s) {
                    o.insert("value".into(), Value::String(d.value.clone()));
                }
            }
            None => appended.push(contact_json(d)),
        }
    }
    let mut out: Vec<Value> = next
        .into_iter()
        .enumerate()
        .filter(|(i, _)| !stale.contains(i))
        .map(|(_, v)| v)
        .collect();
    out.extend(appended);
    if out.is_empty() {
        record.remove("telecom");
    } else {
        record.insert("telecom".into(), Value::Array(out));
    }
}

pub(super) fn contact_json(c: &ContactPoint) -> Value {
    let mut v = json!({"system": c.system, "value": c.value});
    if let (Some(u), Value::Object(o)) = (use_str(c.use_), &mut v) {
        o.insert("use".into(), u);
    }
    v
}

fn entry_projection(c: &Value) -> Value {
    let mut out = Map::new();
    for key in ["system", "value", "use"] {
        if let Some(v) = c.get(key) {
            out.insert(key.into(), v.clone());
        }
    }
    Value::Object(out)
}

fn sorted(mut v: Vec<Value>) -> Value {
    v.sort_by_key(|a| a.to_string());
    Value::Array(v)
}

/// The declared contacts, for drift output.
pub(super) fn desired_projection(desired: &[ContactPoint]) -> Value {
    sorted(desired.iter().map(contact_json).collect())
}

/// The live entries the declaration is about (declared keys, or all under Exclusive), for
/// drift output: undeclared entries are not shown because they are not compared.
pub(super) fn live_projection(
    desired: &[ContactPoint],
    policy: ListPolicy,
    record: &Value,
) -> Value {
    sorted(
        items(record)
            .iter()
            .filter(|l| {
                policy == ListPolicy::Exclusive
                    || desired.iter().any(|d| {
                        system_of(l) == Some(d.system)
                            && (d.use_.is_none() || l.get("use").cloned() == use_str(d.use_))
                    })
            })
            .map(entry_projection)
            .collect(),
    )
}

/// Every entry in normalised form, for the change fingerprint (formatting is not a change).
pub(super) fn canonical(record: &Value, norm: &Normalizer) -> Value {
    sorted(
        items(record)
            .iter()
            .map(|l| {
                json!({
                    "system": l.get("system"),
                    "use": l.get("use"),
                    "value": norm.contact_value(system_of(l), l.get("value").and_then(Value::as_str).unwrap_or_default()),
                })
            })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn phone(value: &str, use_: Option<ContactUse>) -> ContactPoint {
        ContactPoint {
            system: ContactSystem::Phone,
            value: value.into(),
            use_,
        }
    }

    fn record(telecom: Value) -> Value {
        json!({ "telecom": telecom })
    }

    #[test]
    fn formatting_is_not_drift() {
        let r = record(json!([{"system": "phone", "value": "(608) 555-0100", "use": "work"}]));
        let n = Normalizer::default();
        let d = [phone("608-555-0100", Some(ContactUse::Work))];
        assert!(in_sync(&d, ListPolicy::Merge, &r, &n));
    }

    #[test]
    fn undeclared_keys_stay_and_stale_values_are_replaced_in_place() {
        let r = record(json!([
            {"system": "pager", "value": "1234"},
            {"system": "phone", "value": "608-555-0100", "use": "work", "rank": 1},
            {"system": "phone", "value": "608-555-0199", "use": "home"}
        ]));
        let n = Normalizer::default();
        let d = [phone("608-555-0111", Some(ContactUse::Work))];
        assert!(!in_sync(&d, ListPolicy::Merge, &r, &n));
        let mut o = r.as_object().cloned().unwrap();
        apply(&d, ListPolicy::Merge, &mut o, &n);
        assert_eq!(
            o["telecom"],
            json!([
                {"system": "pager", "value": "1234"},
                {"system": "phone", "value": "608-555-0111", "use": "work", "rank": 1},
                {"system": "phone", "value": "608-555-0199", "use": "home"}
            ])
        );
        assert!(in_sync(&d, ListPolicy::Merge, &Value::Object(o), &n));
    }

    #[test]
    fn exclusive_removes_undeclared_entries() {
        let r = record(
            json!([{"system": "pager", "value": "1234"}, {"system": "phone", "value": "608-555-0100"}]),
        );
        let n = Normalizer::default();
        let d = [phone("608 555 0100", None)];
        assert!(in_sync(&d, ListPolicy::Merge, &r, &n));
        assert!(!in_sync(&d, ListPolicy::Exclusive, &r, &n));
        let mut o = r.as_object().cloned().unwrap();
        apply(&d, ListPolicy::Exclusive, &mut o, &n);
        assert_eq!(
            o["telecom"],
            json!([{"system": "phone", "value": "608-555-0100"}])
        );
    }

    #[test]
    fn missing_declared_contact_is_appended() {
        let mut o = Map::new();
        let d = [phone("608-555-0100", Some(ContactUse::Mobile))];
        apply(&d, ListPolicy::Merge, &mut o, &Normalizer::default());
        assert_eq!(
            o["telecom"],
            json!([{"system": "phone", "value": "608-555-0100", "use": "mobile"}])
        );
    }
}
