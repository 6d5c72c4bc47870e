//! What the CapabilityStatement says about Practitioner: which interactions (update, create)
//! and search parameters the instance lists, and whether it supports conditional create.

use serde_json::Value;

use super::client::FhirClient;
use super::error::FhirError;
use super::settings::RequestKind;

/// What the CapabilityStatement says about Practitioner.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Capability {
    pub practitioner_interactions: Vec<String>,
    pub practitioner_search_params: Vec<String>,
    /// `conditionalCreate` on Practitioner: POST may carry `If-None-Exist`.
    pub conditional_create: bool,
}

impl Capability {
    pub fn can_update(&self) -> bool {
        self.practitioner_interactions.iter().any(|i| i == "update")
    }
    pub fn can_create(&self) -> bool {
        self.practitioner_interactions.iter().any(|i| i == "create")
    }
    pub fn npi_search(&self) -> bool {
        self.practitioner_search_params
            .iter()
            .any(|p| p == "identifier")
    }
}

impl FhirClient {
    /// Reads the CapabilityStatement's Practitioner entry.
    pub async fn capability(&self) -> Result<Capability, FhirError> {
        let body = self
            .get_json(RequestKind::Metadata, self.url("metadata")?)
            .await?
            .body;
        let practitioner = body
            .pointer("/rest/0/resource")
            .and_then(Value::as_array)
            .and_then(|r| {
                r.iter()
                    .find(|r| r.get("type").and_then(Value::as_str) == Some("Practitioner"))
            });
        let list = |key: &str, field: &str| -> Vec<String> {
            practitioner
                .and_then(|p| p.get(key))
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(|i| i.get(field).and_then(Value::as_str).map(str::to_string))
                        .collect()
                })
                .unwrap_or_default()
        };
        Ok(Capability {
            practitioner_interactions: list("interaction", "code"),
            practitioner_search_params: list("searchParam", "name"),
            conditional_create: practitioner
                .and_then(|p| p.get("conditionalCreate"))
                .and_then(Value::as_bool)
                .unwrap_or(false),
        })
    }
}
