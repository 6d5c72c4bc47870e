//! The FHIR R4 routes under `/api/FHIR/R4`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, RawPathParams, RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use rand::Rng;
use serde_json::{Value, json};

use super::oauth::check_bearer;
use super::state::{Data, SandboxState, Session, Stats, lock};
use crate::fhir::EPIC_CODE_SYSTEM;

type St = State<Arc<SandboxState>>;

pub(crate) fn routes(_state: Arc<SandboxState>) -> Router<Arc<SandboxState>> {
    Router::new()
        .route("/metadata", get(metadata))
        .route("/.well-known/smart-configuration", get(smart_configuration))
        .route(
            "/Practitioner",
            get(search_practitioners).post(create_practitioner),
        )
        .route(
            "/Practitioner/{id}",
            get(read_practitioner)
                .put(update_practitioner)
                .patch(patch_practitioner),
        )
        .route("/PractitionerRole", get(search_roles))
        .route("/Patient/{id}", get(read_patient))
}

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
fn with_etag(mut r: Response, version: Option<String>) -> Response {
    if let Some(v) = version
        && let Ok(h) = format!("W/\"{v}\"").parse()
    {
        r.headers_mut().insert(header::ETAG, h);
    }
    r
}

fn fhir_json(status: StatusCode, body: Value) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/fhir+json")],
        body.to_string(),
    )
        .into_response()
}

#[derive(Clone, Copy)]
enum Need {
    Practitioner,
    PractitionerWrite,
    Role,
    Patient,
}

impl Need {
    fn scope_names(self) -> [&'static str; 3] {
        match self {
            Need::Practitioner => [
                "system/Practitioner.read",
                "system/Practitioner.rs",
                "system/Practitioner.cruds",
            ],
            Need::PractitionerWrite => [
                "system/Practitioner.write",
                "system/Practitioner.cruds",
                "system/Practitioner.cu",
            ],
            Need::Role => [
                "system/PractitionerRole.read",
                "system/PractitionerRole.rs",
                "system/PractitionerRole.cruds",
            ],
            Need::Patient => [
                "system/Patient.read",
                "system/Patient.rs",
                "system/Patient.cruds",
            ],
        }
    }
}

/// Faults, rate limit and bearer check shared by every authenticated route.
async fn guard(state: &SandboxState, headers: &HeaderMap, need: Need) -> Result<(), Response> {
    state.stats.tick();
    let s = state.settings();
    if s.latency_ms > 0 || s.jitter_ms > 0 {
        let jitter = if s.jitter_ms > 0 {
            rand::thread_rng().gen_range(0..=s.jitter_ms)
        } else {
            0
        };
        tokio::time::sleep(Duration::from_millis(s.latency_ms + jitter)).await;
    }
    // Epic publishes no rate limits and sends no Retry-After: neither does the sandbox.
    if state.over_rate_limit(s.rate_limit_rps)
        || (s.throttle_rate > 0.0 && rand::random::<f64>() < s.throttle_rate)
    {
        Stats::bump(&state.stats.throttled);
        return Err(outcome(
            StatusCode::TOO_MANY_REQUESTS,
            "throttled",
            "4100",
            "Too many requests",
        ));
    }
    if s.error_rate > 0.0 && rand::random::<f64>() < s.error_rate {
        Stats::bump(&state.stats.server_errors);
        return Err(outcome(
            StatusCode::INTERNAL_SERVER_ERROR,
            "exception",
            "4100",
            "Internal error (sandbox fault)",
        ));
    }
    let auth = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let scopes = check_bearer(state, auth).map_err(|_| {
        Stats::bump(&state.stats.unauthorized);
        outcome(
            StatusCode::UNAUTHORIZED,
            "login",
            "4118",
            "Authentication required: missing, unknown or expired access token",
        )
    })?;
    if !need
        .scope_names()
        .iter()
        .any(|n| scopes.iter().any(|s| s == n))
    {
        Stats::bump(&state.stats.refused);
        return Err(outcome(
            StatusCode::FORBIDDEN,
            "forbidden",
            "4118",
            &format!(
                "User not authorized for request: the token lacks {}",
                need.scope_names()[0]
            ),
        ));
    }
    Ok(())
}

async fn metadata(State(state): St) -> Response {
    Stats::bump(&state.stats.metadata);
    state.stats.tick();
    let mut interactions = vec![json!({"code": "read"}), json!({"code": "search-type"})];
    if state.settings().writes_enabled {
        interactions.push(json!({"code": "update"}));
        interactions.push(json!({"code": "create"}));
    }
    let params = ["identifier", "family", "given", "name", "_id"]
        .map(|n| json!({"name": n, "type": if n == "identifier" { "token" } else { "string" }}));
    fhir_json(
        StatusCode::OK,
        json!({
            "resourceType": "CapabilityStatement",
            "status": "active",
            "kind": "instance",
            "fhirVersion": "4.0.1",
            "format": ["json"],
            "software": {"name": "epic-operator sandbox"},
            "rest": [{
                "mode": "server",
                "security": {"service": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/restful-security-service", "code": "SMART-on-FHIR"}]}]},
                "resource": [
                    {"type": "Practitioner", "interaction": interactions, "searchParam": params,
                     "versioning": "versioned-update", "conditionalCreate": state.settings().writes_enabled},
                    {"type": "PractitionerRole", "interaction": [{"code": "search-type"}], "searchParam": [{"name": "practitioner", "type": "reference"}]},
                    {"type": "Patient", "interaction": [{"code": "read"}]}
                ]
            }]
        }),
    )
}

async fn smart_configuration(State(state): St) -> Response {
    axum::Json(json!({
        "token_endpoint": state.token_url(),
        "token_endpoint_auth_methods_supported": ["private_key_jwt"],
        "token_endpoint_auth_signing_alg_values_supported": ["RS256", "RS384", "RS512", "ES384"],
        "grant_types_supported": ["client_credentials"],
        "scopes_supported": super::default_scopes(),
        "capabilities": ["client-confidential-asymmetric"]
    }))
    .into_response()
}

async fn read_practitioner(
    State(state): St,
    headers: HeaderMap,
    Path(id): Path<String>,
    raw: RawPathParams,
) -> Response {
    if let Err(r) = guard(&state, &headers, Need::Practitioner).await {
        return r;
    }
    if let Err(r) = raw_id(&raw) {
        return r;
    }
    Stats::bump(&state.stats.read);
    let data = lock(&state.data);
    if data.merged.contains(&id) {
        return merged(&id);
    }
    read_one(&data.practitioners, &id)
}

/// Like servers that compare the raw path segment, the sandbox does not decode ids: a
/// percent-encoded id (`%2D` for `-`) names no record. FHIR ids need no encoding at all.
fn raw_id(raw: &RawPathParams) -> Result<(), Response> {
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
fn merged(id: &str) -> Response {
    outcome(
        StatusCode::GONE,
        "deleted",
        "4107",
        &format!("Practitioner {id} was merged into another record"),
    )
}

async fn read_patient(State(state): St, headers: HeaderMap, Path(id): Path<String>) -> Response {
    if let Err(r) = guard(&state, &headers, Need::Patient).await {
        return r;
    }
    Stats::bump(&state.stats.read);
    read_one(&lock(&state.data).patients, &id)
}

fn read_one(store: &super::state::Store, id: &str) -> Response {
    match store.items.get(id) {
        Some(r) => with_etag(fhir_json(StatusCode::OK, r.clone()), store.version(id)),
        None => outcome(
            StatusCode::NOT_FOUND,
            "not-found",
            "4102",
            "The resource ID is invalid or does not exist",
        ),
    }
}

fn params(query: Option<String>) -> Vec<(String, String)> {
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
fn identifier_matches(p: &Value, token: &str, loose: bool) -> bool {
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

fn practitioner_matches(p: &Value, id: &str, key: &str, value: &str, loose: bool) -> Option<bool> {
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

/// How a search's pages look beyond its matches.
#[derive(Default)]
struct PageShape {
    /// OperationOutcome entries for the first page.
    outcomes: Vec<Value>,
    subsetted: bool,
    sparse: bool,
}

/// Starts a paging session over `ids` and answers its first page (an empty one with a `next`
/// link when the shape is sparse, as Epic's post-filtered searches do).
fn first_page(
    state: &SandboxState,
    data: &mut Data,
    resource: &'static str,
    ids: Vec<String>,
    count: usize,
    shape: PageShape,
) -> Response {
    let session = state.random_token();
    let sparse = shape.sparse;
    data.sessions.insert(
        session.clone(),
        Session {
            ids,
            resource,
            created: Instant::now(),
            outcomes: shape.outcomes,
            subsetted: shape.subsetted,
        },
    );
    if sparse {
        let token = state.random_token();
        data.page_tokens.insert(token.clone(), (session.clone(), 0));
        let outcomes = data
            .sessions
            .get_mut(&session)
            .map(|s| std::mem::take(&mut s.outcomes))
            .unwrap_or_default();
        let bundle = json!({"resourceType": "Bundle", "type": "searchset",
            "link": [{"relation": "self", "url": format!("{}/{}", state.fhir_base(), resource)},
                     {"relation": "next", "url": format!("{}/{}?sessionID={}&_count={}", state.fhir_base(), resource, token, count)}],
            "entry": outcomes});
        return fhir_json(StatusCode::OK, bundle);
    }
    page(state, data, &session, 0, count)
}

/// A search copy of a record: tagged SUBSETTED and missing some elements.
fn subsetted_copy(r: &Value) -> Value {
    let mut r = r.clone();
    if let Some(o) = r.as_object_mut() {
        o.remove("active");
        o.remove("photo");
        let meta = o.entry("meta").or_insert_with(|| json!({}));
        meta["tag"] = json!([{"system": "http://terminology.hl7.org/CodeSystem/v3-ObservationValue", "code": "SUBSETTED"}]);
    }
    r
}

/// An OperationOutcome Bundle entry (`search.mode = outcome`).
fn outcome_entry(severity: &str, epic_code: &str, text: &str) -> Value {
    json!({
        "resource": {"resourceType": "OperationOutcome", "issue": [{"severity": severity, "code": "suppressed",
            "details": {"coding": [{"system": EPIC_CODE_SYSTEM, "code": epic_code, "display": text}], "text": text}}]},
        "search": {"mode": "outcome"}
    })
}

fn page(
    state: &SandboxState,
    data: &mut Data,
    session_id: &str,
    offset: usize,
    count: usize,
) -> Response {
    let Some(session) = data.sessions.get(session_id) else {
        return outcome(
            StatusCode::BAD_REQUEST,
            "processing",
            "4113",
            "The paging session has expired",
        );
    };
    let resource = session.resource;
    let subsetted = session.subsetted;
    let total = session.ids.len();
    let slice: Vec<String> = session
        .ids
        .iter()
        .skip(offset)
        .take(count)
        .cloned()
        .collect();
    let store = if resource == "Practitioner" {
        &data.practitioners
    } else {
        &data.roles
    };
    let mut entries: Vec<Value> = slice
        .iter()
        .filter_map(|id| store.items.get(id))
        .map(|r| {
            json!({
                "fullUrl": format!("{}/{}/{}", state.fhir_base(), resource, r.get("id").and_then(Value::as_str).unwrap_or_default()),
                "resource": if subsetted { subsetted_copy(r) } else { r.clone() },
                "search": {"mode": "match"}
            })
        })
        .collect();
    if let Some(s) = data.sessions.get_mut(session_id) {
        entries.append(&mut s.outcomes);
    }
    let mut links =
        vec![json!({"relation": "self", "url": format!("{}/{}", state.fhir_base(), resource)})];
    if offset + count < total {
        let token = state.random_token();
        data.page_tokens
            .insert(token.clone(), (session_id.to_string(), offset + count));
        links.push(json!({"relation": "next", "url": format!("{}/{}?sessionID={}&_count={}", state.fhir_base(), resource, token, count)}));
    }
    let mut bundle = json!({"resourceType": "Bundle", "type": "searchset", "total": total, "link": links, "entry": entries});
    if total == 0 && bundle["entry"].as_array().is_none_or(Vec::is_empty) {
        // Epic adds a 4101 "no results" warning to empty searches.
        bundle["entry"] = json!([{
            "resource": {"resourceType": "OperationOutcome", "issue": [{"severity": "warning", "code": "processing",
                "details": {"coding": [{"system": EPIC_CODE_SYSTEM, "code": "4101", "display": "Resource request returns no results."}]}}]},
            "search": {"mode": "outcome"}
        }]);
    }
    fhir_json(StatusCode::OK, bundle)
}

fn page_size(state: &SandboxState, params: &[(String, String)]) -> usize {
    params
        .iter()
        .find(|(k, _)| k == "_count")
        .and_then(|(_, v)| v.parse::<usize>().ok())
        .unwrap_or(state.default_page_size)
        .clamp(1, state.max_page_size)
}

/// A `next` link: `?sessionID=...` continues a paging session.
fn continue_session(state: &SandboxState, params: &[(String, String)]) -> Option<Response> {
    let token = params
        .iter()
        .find(|(k, _)| k == "sessionID")
        .map(|(_, v)| v.clone())?;
    Stats::bump(&state.stats.page);
    let count = page_size(state, params);
    let mut data = lock(&state.data);
    state.expire_sessions(&mut data);
    Some(match data.page_tokens.get(&token).cloned() {
        Some((session, offset)) => page(state, &mut data, &session, offset, count),
        None => outcome(
            StatusCode::BAD_REQUEST,
            "processing",
            "4113",
            "The paging session has expired or the link is invalid",
        ),
    })
}

async fn search_practitioners(
    State(state): St,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    if let Err(r) = guard(&state, &headers, Need::Practitioner).await {
        return r;
    }
    let params = params(query);
    if let Some(r) = continue_session(&state, &params) {
        return r;
    }
    Stats::bump(&state.stats.search);
    let settings = state.settings();
    let count = page_size(&state, &params);
    let filters: Vec<&(String, String)> = params.iter().filter(|(k, _)| k != "_count").collect();
    let identifier_search = filters.iter().any(|(k, _)| k == "identifier");
    if settings.or_search_unsupported
        && filters
            .iter()
            .any(|(k, v)| k == "identifier" && v.contains(','))
    {
        return outcome(
            StatusCode::BAD_REQUEST,
            "invalid",
            "4100",
            "The identifier parameter accepts a single token",
        );
    }
    let mut shape = PageShape {
        subsetted: identifier_search && settings.subsetted_search,
        sparse: settings.sparse_pages,
        ..PageShape::default()
    };
    let mut data = lock(&state.data);
    state.expire_sessions(&mut data);
    let mut ids = Vec::new();
    for (id, p) in data.practitioners.iter() {
        let mut keep = true;
        for (k, v) in &filters {
            match practitioner_matches(p, id, k, v, settings.loose_identifier_search) {
                Some(m) => keep &= m,
                None => {
                    return outcome(
                        StatusCode::BAD_REQUEST,
                        "invalid",
                        "4100",
                        &format!("The search parameter {k} is not supported"),
                    );
                }
            }
        }
        if keep {
            // Suppressed results are hidden and announced, as Epic does (59204).
            let suppressed = settings.suppressed_npis.iter().any(|npi| {
                filters
                    .iter()
                    .any(|(k, v)| k == "identifier" && v.contains(npi.as_str()))
                    && identifier_matches(p, npi, false)
            });
            if suppressed {
                if shape.outcomes.is_empty() {
                    shape.outcomes.push(outcome_entry(
                        "warning",
                        "59204",
                        "Some results were suppressed: the client is not authorized for them",
                    ));
                }
                continue;
            }
            ids.push(id.clone());
        }
    }
    first_page(&state, &mut data, "Practitioner", ids, count, shape)
}

async fn search_roles(State(state): St, headers: HeaderMap, RawQuery(query): RawQuery) -> Response {
    if let Err(r) = guard(&state, &headers, Need::Role).await {
        return r;
    }
    let params = params(query);
    if let Some(r) = continue_session(&state, &params) {
        return r;
    }
    Stats::bump(&state.stats.search);
    let Some(practitioner) = params
        .iter()
        .find(|(k, _)| k == "practitioner")
        .map(|(_, v)| v.clone())
    else {
        return outcome(
            StatusCode::BAD_REQUEST,
            "required",
            "4111",
            "A required parameter is missing: practitioner",
        );
    };
    let reference = if practitioner.starts_with("Practitioner/") {
        practitioner
    } else {
        format!("Practitioner/{practitioner}")
    };
    let count = page_size(&state, &params);
    let mut data = lock(&state.data);
    state.expire_sessions(&mut data);
    let ids: Vec<String> = data
        .roles
        .iter()
        .filter(|(_, r)| {
            r.pointer("/practitioner/reference").and_then(Value::as_str) == Some(reference.as_str())
        })
        .map(|(id, _)| id.clone())
        .collect();
    first_page(
        &state,
        &mut data,
        "PractitionerRole",
        ids,
        count,
        PageShape::default(),
    )
}

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

async fn update_practitioner(
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
        if let Some(mut edited) = data.practitioners.items.get(&id).cloned() {
            super::admin::merge_patch(&mut edited, &patch);
            data.practitioners.insert(id.clone(), edited);
        }
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
    data.practitioners.insert(id.clone(), resource);
    let stored = data
        .practitioners
        .items
        .get(&id)
        .cloned()
        .unwrap_or_default();
    with_etag(
        fhir_json(StatusCode::OK, stored),
        data.practitioners.version(&id),
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

async fn create_practitioner(State(state): St, headers: HeaderMap, body: Bytes) -> Response {
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
    if let Some(query) = headers.get("if-none-exist").and_then(|v| v.to_str().ok()) {
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
    let id = state.new_practitioner_id(&mut data);
    resource["id"] = json!(id);
    Stats::bump(&state.stats.create);
    data.practitioners.insert(id.clone(), resource);
    let stored = data
        .practitioners
        .items
        .get(&id)
        .cloned()
        .unwrap_or_default();
    let location = format!("{}/Practitioner/{id}/_history/1", state.fhir_base());
    let mut r = with_etag(
        fhir_json(StatusCode::CREATED, stored),
        data.practitioners.version(&id),
    );
    if let Ok(v) = location.parse() {
        r.headers_mut().insert(header::LOCATION, v);
    }
    r
}

async fn patch_practitioner(State(state): St, headers: HeaderMap) -> Response {
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
