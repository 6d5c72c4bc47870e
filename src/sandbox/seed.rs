//! Seed files: what a bad one (or a bad client registration) is, the resources a seed holds,
//! and its local references rewritten to the ids the sandbox gives.

use std::collections::HashMap;

use serde_json::{Value, json};

/// A bad seed file or client registration.
#[derive(Debug, thiserror::Error)]
pub enum SeedError {
    #[error("seed is not valid JSON: {0}")]
    Json(String),
    #[error("seed must be a FHIR Bundle or a JSON array of resources, got {0}")]
    Shape(String),
    #[error(
        "seed entry {index} is not a Practitioner, PractitionerRole or Patient (resourceType {found:?})"
    )]
    ResourceType { index: usize, found: String },
    #[error("JWK Set of client {client} is invalid: {detail}")]
    Jwks { client: String, detail: String },
    #[error("JWK Set URL {url:?} of client {client} is refused: {detail}")]
    JwksUrl {
        client: String,
        url: String,
        detail: String,
    },
}

/// The resources of a seed: a Bundle's entries (collection or transaction) or an array.
pub(super) fn seed_resources(text: &str) -> Result<Vec<Value>, SeedError> {
    let doc: Value = serde_json::from_str(text).map_err(|e| SeedError::Json(e.to_string()))?;
    Ok(match &doc {
        Value::Array(a) => a.clone(),
        Value::Object(o) if o.get("resourceType").and_then(Value::as_str) == Some("Bundle") => o
            .get("entry")
            .and_then(Value::as_array)
            .map(|e| {
                e.iter()
                    .filter_map(|e| e.get("resource").cloned())
                    .collect()
            })
            .unwrap_or_default(),
        other => {
            let found = other
                .get("resourceType")
                .and_then(Value::as_str)
                .unwrap_or("not a Bundle")
                .to_string();
            return Err(SeedError::Shape(found));
        }
    })
}

/// Rewrites every `reference` that names a seed's local id to the id the sandbox gave it.
pub(super) fn rewrite_references(v: &mut Value, ids: &HashMap<String, String>) {
    match v {
        Value::Object(o) => {
            for (k, child) in o.iter_mut() {
                if k == "reference"
                    && let Some(s) = child.as_str()
                    && let Some(new) = ids.get(s)
                {
                    *child = json!(new);
                } else {
                    rewrite_references(child, ids);
                }
            }
        }
        Value::Array(a) => a.iter_mut().for_each(|c| rewrite_references(c, ids)),
        _ => {}
    }
}
