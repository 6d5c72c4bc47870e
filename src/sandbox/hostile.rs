//! A hostile (or badly broken) FHIR server, for the bounds that protect the shared operator:
//! whoever may create an EpicConnection chooses its server, so one tenant's server must not be
//! able to exhaust the operator that serves every other tenant.

use serde_json::{Value, json};

use super::Settings;
use super::state::Data;
use crate::crd::NPI_SYSTEM;

/// The id of the record [`Settings::hostile_identifiers`] adds.
pub const HOSTILE_ID: &str = "hostile-everyone";

/// Called at the start of every roster walk (a Practitioner search with no parameter).
pub(super) fn on_walk(settings: &Settings, data: &mut Data) {
    if settings.hostile_identifiers > 0 && !data.practitioners.items.contains_key(HOSTILE_ID) {
        let record = everyone(data, settings.hostile_identifiers);
        data.practitioners.insert(HOSTILE_ID.to_string(), record);
    }
    if settings.churn_every_walk {
        churn(data);
    }
}

/// One record carrying the NPI of every other record, then filler identifiers up to `total`:
/// each NPI reads as ambiguous, and the page holding it is as large as the total makes it.
fn everyone(data: &Data, total: usize) -> Value {
    let mut identifiers: Vec<Value> = data
        .practitioners
        .iter()
        .flat_map(|(_, p)| {
            p.get("identifier")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default()
        })
        .filter(|i| i.get("system").and_then(Value::as_str) == Some(NPI_SYSTEM))
        .collect();
    let mut n = 0usize;
    while identifiers.len() < total {
        identifiers.push(json!({
            "system": "urn:oid:1.2.840.114350.1.13.0.1.7.5.737384.0",
            "value": format!("E{n:09}")
        }));
        n += 1;
    }
    json!({
        "resourceType": "Practitioner", "id": HOSTILE_ID, "active": true,
        "identifier": identifiers,
        "name": [{"use": "official", "family": "Hostile", "given": ["Server"]}]
    })
}

/// Every record changes on every walk (its `active` flips): every object is woken every time.
fn churn(data: &mut Data) {
    let ids: Vec<String> = data.practitioners.order.clone();
    for id in ids {
        let active = data
            .practitioners
            .items
            .get(&id)
            .and_then(|p| p.get("active"))
            .and_then(Value::as_bool)
            .unwrap_or(true);
        data.practitioners.edit(&id, &json!({"active": !active}));
    }
}
