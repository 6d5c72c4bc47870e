//! Reading a search: its query parameters, and whether a Practitioner matches one of them
//! (strict, OR tokens, or loose, as the instance's settings say). Searches and conditional
//! creates both ask it.

use serde_json::Value;

pub(super) fn params(query: Option<String>) -> Vec<(String, String)> {
    url::form_urlencoded::parse(query.unwrap_or_default().as_bytes())
        .into_owned()
        .collect()
}

fn starts_with_ci(haystack: Option<&Value>, needle: &str) -> bool {
    let needle = needle.to_lowercase();
    match haystack {
        Some(Value::String(s)) => s.to_lowercase().starts_with(&needle),
        Some(Value::Array(a)) => a.iter().any(|v| starts_with_ci(Some(v), &needle)),
        _ => false,
    }
}

/// `system|value` (or a bare value) against the record's identifiers. A loose server ignores
/// the system and matches any identifier sharing the value's first six characters.
pub(super) fn identifier_matches(p: &Value, token: &str, loose: bool) -> bool {
    let (system, val) = match token.split_once('|') {
        Some((s, v)) => (Some(s), v),
        None => (None, token),
    };
    p.get("identifier")
        .and_then(Value::as_array)
        .is_some_and(|ids| {
            ids.iter().any(|i| {
                let value = i.get("value").and_then(Value::as_str).map(str::trim);
                if loose {
                    let prefix: String = val.chars().take(6).collect();
                    return value.is_some_and(|v| v.starts_with(&prefix));
                }
                value == Some(val)
                    && match system {
                        None | Some("") => true,
                        Some(s) => i.get("system").and_then(Value::as_str) == Some(s),
                    }
            })
        })
}

pub(super) fn practitioner_matches(
    p: &Value,
    id: &str,
    key: &str,
    value: &str,
    loose: bool,
) -> Option<bool> {
    let names = p
        .get("name")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    Some(match key {
        "_id" => value.split(',').any(|v| v == id),
        // Comma-separated tokens are alternatives (FHIR's OR).
        "identifier" => value
            .split(',')
            .any(|token| identifier_matches(p, token, loose)),
        "family" => names.iter().any(|n| starts_with_ci(n.get("family"), value)),
        "given" => names.iter().any(|n| starts_with_ci(n.get("given"), value)),
        "name" => names.iter().any(|n| {
            ["family", "given", "text", "prefix", "suffix"]
                .iter()
                .any(|k| starts_with_ci(n.get(*k), value))
        }),
        _ => return None,
    })
}
