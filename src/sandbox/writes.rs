//! Practitioner writes: refused unless enabled, validated like Epic (422), versioned
//! (If-Match, 412), conditional create (If-None-Exist), PATCH refused.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, RawPathParams, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::Response;
use serde_json::{Value, json};

use super::guard::{Need, St, guard};
use super::lock;
use super::oauth::check_bearer;
use super::query::{params, practitioner_matches};
use super::responses::{fhir_json, merged, outcome, raw_id, with_etag};
use super::state::SandboxState;
use super::stats::Stats;

fn write_refused(state: &SandboxState, action: &str) -> Response {
    Stats::bump(&state.stats.refused);
    outcome(
        StatusCode::FORBIDDEN,
        "forbidden",
        "4118",
        &format!(
            "Practitioner.{action} is not enabled on this Epic instance; the client is not authorized to write Practitioner records"
        ),
    )
}

fn parse_body(body: &Bytes) -> Result<Value, Response> {
    let v: Value = serde_json::from_slice(body).map_err(|e| {
        outcome(
            StatusCode::BAD_REQUEST,
            "structure",
            "4100",
            &format!("The request body is not valid JSON: {e}"),
        )
    })?;
    if v.get("resourceType").and_then(Value::as_str) != Some("Practitioner") {
        return Err(outcome(
            StatusCode::BAD_REQUEST,
            "invalid",
            "4100",
            "resourceType must be Practitioner",
        ));
    }
    Ok(v)
}

pub(super) async fn update_practitioner(
    State(state): St,
    headers: HeaderMap,
    Path(id): Path<String>,
    raw: RawPathParams,
    body: Bytes,
) -> Response {
    if let Err(r) = guard(&state, &headers, Need::Practitioner).await {
        return r;
    }
    if let Err(r) = raw_id(&raw) {
        return r;
    }
    if !state.settings().writes_enabled {
        return write_refused(&state, "Update");
    }
    if let Err(r) = guard_scope_only(&state, &headers, Need::PractitionerWrite) {
        return r;
    }
    let resource = match parse_body(&body) {
        Ok(v) => v,
        Err(r) => return r,
    };
    if resource.get("id").and_then(Value::as_str) != Some(id.as_str()) {
        return outcome(
            StatusCode::BAD_REQUEST,
            "invalid",
            "4100",
            "The resource id in the body must equal the id in the URL",
        );
    }
    if let Err(r) = validate(&resource, false) {
        return r;
    }
    let mut data = lock(&state.data);
    if data.merged.contains(&id) {
        return merged(&id);
    }
    if !data.practitioners.items.contains_key(&id) {
        return outcome(
            StatusCode::NOT_FOUND,
            "not-found",
            "4102",
            "The resource ID is invalid or does not exist",
        );
    }
    // The race between a client's read and its write, on demand.
    let mut s = state.settings();
    if let Some(patch) = s.edit_before_put.clone() {
        s.edit_before_put_count = s.edit_before_put_count.saturating_sub(1);
        if s.edit_before_put_count == 0 {
            s.edit_before_put = None;
        }
        state.set_settings(s);
        data.practitioners.edit(&id, &patch);
    }
    if let Some(wanted) = headers.get(header::IF_MATCH).and_then(|v| v.to_str().ok()) {
        let current = data.practitioners.version(&id).unwrap_or_default();
        let wanted = wanted.trim().trim_start_matches("W/").trim_matches('"');
        if wanted != current {
            Stats::bump(&state.stats.conflicts);
            return outcome(
                StatusCode::PRECONDITION_FAILED,
                "conflict",
                "4100",
                &format!(
                    "Version conflict: If-Match names version {wanted}, the record is at version {current}"
                ),
            );
        }
    }
    Stats::bump(&state.stats.update);
    let stored = data.practitioners.insert(id.clone(), resource);
    let r = with_etag(
        fhir_json(StatusCode::OK, stored),
        data.practitioners.version(&id),
    );
    reset_if_asked(&state, r)
}

/// The `resetWrites` fault: the write is done; its response starts, then breaks off.
fn reset_if_asked(state: &super::SandboxState, r: Response) -> Response {
    let mut s = state.settings();
    if s.reset_writes == 0 {
        return r;
    }
    s.reset_writes = s.reset_writes.saturating_sub(1);
    state.set_settings(s);
    let (mut parts, _) = r.into_parts();
    // A body shorter than its Content-Length, ending in an error: hyper aborts the connection.
    parts.headers.insert(
        header::CONTENT_LENGTH,
        header::HeaderValue::from_static("4096"),
    );
    let chunks: Vec<Result<Bytes, std::io::Error>> = vec![
        Ok(Bytes::from_static(b"{\"resourceType\":\"Practi")),
        Err(std::io::Error::new(
            std::io::ErrorKind::ConnectionReset,
            "resetWrites fault",
        )),
    ];
    Response::from_parts(
        parts,
        axum::body::Body::from_stream(futures::stream::iter(chunks)),
    )
}

/// Basic validation Epic performs on a written Practitioner: 422 with an OperationOutcome.
fn validate(resource: &Value, create: bool) -> Result<(), Response> {
    let invalid = |code: &str, text: String| {
        Err(outcome(
            StatusCode::UNPROCESSABLE_ENTITY,
            code,
            "4100",
            &text,
        ))
    };
    if create
        && resource
            .get("name")
            .and_then(Value::as_array)
            .is_none_or(Vec::is_empty)
    {
        return invalid(
            "required",
            "Practitioner.name is required to create a record".into(),
        );
    }
    if let Some(g) = resource.get("gender")
        && !matches!(g.as_str(), Some("male" | "female" | "other" | "unknown"))
    {
        return invalid(
            "code-invalid",
            format!("Practitioner.gender {g} is not a code of AdministrativeGender"),
        );
    }
    if let Some(ids) = resource.get("identifier") {
        let well_formed = ids.as_array().is_some_and(|ids| {
            ids.iter().all(|i| {
                i.get("value")
                    .and_then(Value::as_str)
                    .is_some_and(|v| !v.is_empty())
                    && i.get("system").is_none_or(Value::is_string)
            })
        });
        if !well_formed {
            return invalid(
                "structure",
                "Practitioner.identifier entries need a string value and a string system".into(),
            );
        }
    }
    Ok(())
}

pub(super) async fn create_practitioner(
    State(state): St,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Err(r) = guard(&state, &headers, Need::Practitioner).await {
        return r;
    }
    if !state.settings().writes_enabled {
        return write_refused(&state, "Create");
    }
    if let Err(r) = guard_scope_only(&state, &headers, Need::PractitionerWrite) {
        return r;
    }
    let mut resource = match parse_body(&body) {
        Ok(v) => v,
        Err(r) => return r,
    };
    if let Err(r) = validate(&resource, true) {
        return r;
    }
    let mut data = lock(&state.data);
    // Conditional create: a match means nothing is created and the match is returned.
    let conditional = !state.settings().conditional_create_unsupported;
    if let Some(query) = headers
        .get("if-none-exist")
        .and_then(|v| v.to_str().ok())
        .filter(|_| conditional)
    {
        let tokens = params(Some(query.to_string()));
        let existing: Vec<String> = data
            .practitioners
            .iter()
            .filter(|(id, p)| {
                tokens
                    .iter()
                    .all(|(k, v)| practitioner_matches(p, id, k, v, false) == Some(true))
            })
            .map(|(id, _)| id.clone())
            .collect();
        match existing.as_slice() {
            [] => {}
            [one] => {
                let found = data
                    .practitioners
                    .items
                    .get(one)
                    .cloned()
                    .unwrap_or_default();
                return fhir_json(StatusCode::OK, found);
            }
            _ => {
                return outcome(
                    StatusCode::PRECONDITION_FAILED,
                    "duplicate",
                    "4100",
                    "If-None-Exist matches several records",
                );
            }
        }
    }
    Stats::bump(&state.stats.create);
    let late = state.settings().late_create_ms;
    if late > 0 {
        drop(data);
        let state = Arc::clone(&state);
        tokio::spawn(async move {
            tokio::time::sleep(std::time::Duration::from_millis(late)).await;
            let mut data = lock(&state.data);
            let id = state.new_practitioner_id(&mut data);
            resource["id"] = json!(id);
            data.practitioners.insert(id, resource);
        });
        return outcome(
            StatusCode::GATEWAY_TIMEOUT,
            "timeout",
            "4100",
            "The request timed out before it completed",
        );
    }
    let id = state.new_practitioner_id(&mut data);
    resource["id"] = json!(id);
    let stored = data.practitioners.insert(id.clone(), resource);
    let location = format!("{}/Practitioner/{id}/_history/1", state.fhir_base());
    let mut r = with_etag(
        fhir_json(StatusCode::CREATED, stored),
        data.practitioners.version(&id),
    );
    if let Ok(v) = location.parse() {
        r.headers_mut().insert(header::LOCATION, v);
    }
    drop(data);
    reset_if_asked(&state, r)
}

pub(super) async fn patch_practitioner(State(state): St, headers: HeaderMap) -> Response {
    if let Err(r) = guard(&state, &headers, Need::Practitioner).await {
        return r;
    }
    Stats::bump(&state.stats.patch);
    outcome(
        StatusCode::METHOD_NOT_ALLOWED,
        "not-supported",
        "4100",
        "PATCH is not supported; use a full PUT",
    )
}

fn guard_scope_only(state: &SandboxState, headers: &HeaderMap, need: Need) -> Result<(), Response> {
    let auth = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let scopes = check_bearer(state, auth).unwrap_or_default();
    if need
        .scope_names()
        .iter()
        .any(|n| scopes.iter().any(|s| s == n))
    {
        Ok(())
    } else {
        Stats::bump(&state.stats.refused);
        Err(outcome(
            StatusCode::FORBIDDEN,
            "forbidden",
            "4118",
            "User not authorized for request: the token lacks system/Practitioner.write",
        ))
    }
}
