//! Practitioner writes: a full PUT under `If-Match`, and a POST (conditional with
//! `If-None-Exist` where the instance supports it) whose new id is read from `Location` only on
//! the configured origin. Neither is retried here: on 412/409 the caller re-reads and re-plans.

use reqwest::Method;
use serde_json::Value;

use super::client::{FhirClient, resource_path};
use super::error::FhirError;
use super::settings::{RequestKind, Versioned};
use crate::http::origin_of;
use crate::reconcile::identity::check_fhir_id;

impl FhirClient {
    /// Full PUT of `body` to Practitioner/{id}, conditional on `if_match` (the version read).
    /// Never retried here: on 412/409 the caller re-reads and re-plans.
    pub async fn update_practitioner(
        &self,
        id: &str,
        body: &Value,
        if_match: Option<&str>,
    ) -> Result<Versioned, FhirError> {
        let url = self.url(&resource_path("Practitioner", id)?)?;
        let headers: Vec<(&str, &str)> = if_match.map(|v| ("If-Match", v)).into_iter().collect();
        let raw = self
            .execute(RequestKind::Update, Method::PUT, url, Some(body), &headers)
            .await?;
        if raw.body.is_empty() {
            // Some servers answer 200 with no body; the caller re-reads to verify.
            return Ok(Versioned {
                body: Value::Null,
                etag: raw.etag,
            });
        }
        let body = serde_json::from_slice(&raw.body)
            .map_err(|e| FhirError::Malformed(format!("update response: {e}")))?;
        Ok(Versioned {
            body,
            etag: raw.etag,
        })
    }

    /// POST a new Practitioner; returns its id (from `Location` or the body) and the body.
    /// `if_none_exist` (a search query such as `identifier=system|npi`) makes the create
    /// conditional where the instance supports it: a server that finds a match creates nothing.
    pub async fn create_practitioner(
        &self,
        body: &Value,
        if_none_exist: Option<&str>,
    ) -> Result<(String, Value), FhirError> {
        let url = self.url("Practitioner")?;
        let headers: Vec<(&str, &str)> = if_none_exist
            .map(|v| ("If-None-Exist", v))
            .into_iter()
            .collect();
        let raw = self
            .execute(RequestKind::Create, Method::POST, url, Some(body), &headers)
            .await?;
        let created: Value = if raw.body.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&raw.body)
                .map_err(|e| FhirError::Malformed(format!("create response: {e}")))?
        };
        let id = match raw.location {
            Some(loc) => self.id_from_location(&loc)?,
            None => created
                .get("id")
                .and_then(Value::as_str)
                .map(str::to_string)
                .ok_or_else(|| {
                    FhirError::Malformed("create response has neither Location nor id".into())
                })?,
        };
        check_fhir_id(&id).map_err(FhirError::Malformed)?;
        Ok((id, created))
    }

    fn id_from_location(&self, location: &str) -> Result<String, FhirError> {
        let url = self
            .base()
            .join(location)
            .map_err(|e| FhirError::Malformed(format!("Location {location:?}: {e}")))?;
        if origin_of(&url) != self.origin() {
            return Err(FhirError::Refused(format!(
                "Location points at another origin ({}); not following it",
                origin_of(&url)
            )));
        }
        // [base]/Practitioner/{id}[/_history/{vid}]
        let segments: Vec<&str> = url.path_segments().map(|s| s.collect()).unwrap_or_default();
        segments
            .iter()
            .position(|s| *s == "Practitioner")
            .and_then(|i| segments.get(i + 1))
            .filter(|id| !id.is_empty())
            .map(|id| id.to_string())
            .ok_or_else(|| {
                FhirError::Malformed(format!("cannot find the id in Location {location:?}"))
            })
    }
}
