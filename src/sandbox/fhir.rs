//! The FHIR R4 routes under `/api/FHIR/R4`.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{Path, RawPathParams, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use rand::Rng;
use serde_json::{Value, json};

use super::lock;
use super::oauth::check_bearer;
use super::state::SandboxState;
use super::stats::Stats;
use super::{search, writes};
use crate::fhir::EPIC_CODE_SYSTEM;

pub(super) type St = State<Arc<SandboxState>>;

pub(crate) fn routes(_state: Arc<SandboxState>) -> Router<Arc<SandboxState>> {
    Router::new()
        .route("/metadata", get(metadata))
        .route("/.well-known/smart-configuration", get(smart_configuration))
        .route(
            "/Practitioner",
            get(search::search_practitioners).post(writes::create_practitioner),
        )
        .route(
            "/Practitioner/{id}",
            get(read_practitioner)
                .put(writes::update_practitioner)
                .patch(writes::patch_practitioner),
        )
        .route("/PractitionerRole", get(search::search_roles))
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

#[derive(Clone, Copy)]
pub(super) enum Need {
    Practitioner,
    PractitionerWrite,
    Role,
    Patient,
}

impl Need {
    pub(super) fn scope_names(self) -> [&'static str; 3] {
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
pub(super) async fn guard(
    state: &SandboxState,
    headers: &HeaderMap,
    need: Need,
) -> Result<(), Response> {
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
    let ramp = state.load.ramp_latency(&s.load);
    if !ramp.is_zero() {
        tokio::time::sleep(ramp).await;
    }
    if let Some(r) = state.load.check(&s.load) {
        return Err(r);
    }
    // Epic publishes no rate limits and sends no Retry-After: neither does the sandbox, unless
    // a load fault above asked for one.
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
    let identifier = !state.settings().identifier_search_unsupported;
    let params: Vec<Value> = ["identifier", "family", "given", "name", "_id"]
        .into_iter()
        .filter(|n| identifier || *n != "identifier")
        .map(|n| json!({"name": n, "type": if n == "identifier" { "token" } else { "string" }}))
        .collect();
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
                     "versioning": "versioned-update", "conditionalCreate": state.settings().writes_enabled && !state.settings().conditional_create_unsupported},
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
