//! The shapes every FHIR route answers in: FHIR JSON, an OperationOutcome with an Epic detail
//! code, the `ETag` of a versioned record, and the refusals shared by reads and writes (a
//! percent-encoded id, a merged record).

use axum::extract::RawPathParams;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::fhir::EPIC_CODE_SYSTEM;

/// An OperationOutcome response with an Epic detail code.
pub(crate) fn outcome(
    status: StatusCode,
    code: &str,
    epic_code: &str,
    diagnostics: &str,
) -> Response {
    let body = json!({
        "resourceType": "OperationOutcome",
        "issue": [{
            "severity": if status.is_success() { "warning" } else { "error" },
            "code": code,
            "details": {
                "coding": [{"system": EPIC_CODE_SYSTEM, "code": epic_code, "display": diagnostics}],
                "text": diagnostics
            },
            "diagnostics": diagnostics
        }]
    });
    fhir_json(status, body)
}

/// Adds `ETag: W/"<version>"`, as a versioning FHIR server does on reads and writes.
pub(super) fn with_etag(mut r: Response, version: Option<String>) -> Response {
    if let Some(v) = version
        && let Ok(h) = format!("W/\"{v}\"").parse()
    {
        r.headers_mut().insert(header::ETAG, h);
    }
    r
}

pub(super) fn fhir_json(status: StatusCode, body: Value) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/fhir+json")],
        body.to_string(),
    )
        .into_response()
}

/// Like servers that compare the raw path segment, the sandbox does not decode ids: a
/// percent-encoded id (`%2D` for `-`) names no record. FHIR ids need no encoding at all.
pub(super) fn raw_id(raw: &RawPathParams) -> Result<(), Response> {
    if raw.iter().any(|(_, v)| v.contains('%')) {
        return Err(outcome(
            StatusCode::BAD_REQUEST,
            "invalid",
            "4102",
            "Incorrect resource ID: ids are compared as sent and FHIR ids need no percent-encoding",
        ));
    }
    Ok(())
}

/// A record merged into another: 410 with Epic's merged-record code.
pub(super) fn merged(id: &str) -> Response {
    outcome(
        StatusCode::GONE,
        "deleted",
        "4107",
        &format!("Practitioner {id} was merged into another record"),
    )
}
