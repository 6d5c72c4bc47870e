//! The parts of a PractitionerRole shown in status (pure: JSON in, summary out).

use serde_json::Value;

use crate::crd::RoleSummary;

fn display_of(v: Option<&Value>) -> Option<String> {
    let v = v?;
    v.get("display")
        .or_else(|| v.get("text"))
        .or_else(|| v.get("reference"))
        .and_then(Value::as_str)
        .map(str::to_string)
        .or_else(|| {
            v.pointer("/coding/0/display")
                .or_else(|| v.pointer("/coding/0/code"))
                .and_then(Value::as_str)
                .map(str::to_string)
        })
}

fn first(v: &Value, key: &str) -> Option<Value> {
    match v.get(key)? {
        Value::Array(a) => a.first().cloned(),
        other => Some(other.clone()),
    }
}

/// The parts of a PractitionerRole shown in status.
pub fn role_summary(role: &Value) -> RoleSummary {
    RoleSummary {
        organization: display_of(role.get("organization")),
        location: display_of(first(role, "location").as_ref())
            .or_else(|| display_of(first(role, "healthcareService").as_ref())),
        specialty: display_of(first(role, "specialty").as_ref()),
        code: display_of(first(role, "code").as_ref()),
    }
}
