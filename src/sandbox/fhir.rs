//! The FHIR R4 routes under `/api/FHIR/R4`, the CapabilityStatement, the SMART configuration
//! and reads by id; searches and writes have their own modules.

use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, RawPathParams, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::{Value, json};

use super::guard::{Need, St, guard};
use super::lock;
use super::responses::{fhir_json, merged, outcome, raw_id, with_etag};
use super::state::SandboxState;
use super::stats::Stats;
use super::{search, writes};

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
