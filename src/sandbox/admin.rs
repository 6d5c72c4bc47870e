//! `/_sandbox/`: counters, run-time settings and out-of-band edits. Not FHIR, no OAuth, and
//! answered only to loopback clients.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::{ConnectInfo, Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, middleware};
use serde::Deserialize;
use serde_json::{Value, json};

use super::clients::RegisteredClient;
use super::jwk_set::private_member;
use super::state::SandboxState;
use super::{Settings, default_scopes, lock};
use crate::reconcile::identity::{current_npi, npi_values};

type St = State<Arc<SandboxState>>;

pub(crate) fn routes() -> Router<Arc<SandboxState>> {
    Router::new()
        .route("/stats", get(stats))
        .route("/stats/reset", post(reset))
        .route("/settings", get(get_settings).put(put_settings))
        .route("/clients", get(list_clients).post(register_client))
        .route("/practitioners", get(list).post(add))
        .route("/practitioners/{id}", get(show).patch(edit).delete(remove))
        .route("/practitioners/{id}/merge", post(merge))
        .route("/patients", get(patients))
        .layer(middleware::from_fn(loopback_only))
}

async fn loopback_only(
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    request: axum::extract::Request,
    next: middleware::Next,
) -> Response {
    if !peer.ip().is_loopback() {
        return (
            StatusCode::FORBIDDEN,
            "the sandbox admin API answers loopback clients only",
        )
            .into_response();
    }
    next.run(request).await
}

async fn stats(State(state): St) -> Json<Value> {
    let mut stats = state.stats.snapshot();
    stats["load"] = state.load.snapshot();
    Json(stats)
}

async fn reset(State(state): St) -> StatusCode {
    state.stats.reset();
    StatusCode::NO_CONTENT
}

async fn get_settings(State(state): St) -> Json<Settings> {
    Json(state.settings())
}

/// Merges the given fields into the current settings. Top-level names may be given in
/// snake_case too (`jwks_cache_max_secs` for `jwksCacheMaxSecs`): unknown names are ignored
/// when the settings are read back, so a Rust-spelled name would otherwise change nothing,
/// silently.
async fn put_settings(State(state): St, Json(patch): Json<Value>) -> Response {
    let mut current = serde_json::to_value(state.settings()).unwrap_or_else(|_| json!({}));
    let patch = match patch {
        Value::Object(o) => Value::Object(
            o.into_iter()
                .map(|(k, v)| (snake_to_camel(&k), v))
                .collect(),
        ),
        other => other,
    };
    json_patch::merge(&mut current, &patch);
    match serde_json::from_value::<Settings>(current) {
        Ok(s) => {
            state.set_settings(s.clone());
            Json(s).into_response()
        }
        Err(e) => (StatusCode::BAD_REQUEST, format!("invalid settings: {e}")).into_response(),
    }
}

fn snake_to_camel(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut upper = false;
    for c in name.chars() {
        if c == '_' {
            upper = true;
        } else if upper {
            out.extend(c.to_uppercase());
            upper = false;
        } else {
            out.push(c);
        }
    }
    out
}

/// Every registered client: id, JWK Set URL, kids (static and cached), fetch count and cache
/// expiry. There is no private key material in the sandbox to show.
async fn list_clients(State(state): St) -> Json<Value> {
    Json(state.clients_snapshot())
}

/// `POST /_sandbox/clients`: a client to register (or re-register) at run time.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct NewClient {
    #[serde(alias = "client_id")]
    client_id: String,
    /// Loopback http(s) only.
    #[serde(alias = "jwks_url")]
    jwks_url: Option<String>,
    /// A static JWK Set (public keys only).
    jwks: Option<Value>,
    /// Pre-approved scopes; the sandbox's default scopes when absent.
    scopes: Option<Vec<String>>,
}

/// Registers a client with a JWK Set URL, a static JWK Set or both, replacing any client with
/// the same id (and its cached keys). Answers 201 with the client as the list shows it.
async fn register_client(State(state): St, Json(new): Json<NewClient>) -> Response {
    let bad = |m: String| (StatusCode::BAD_REQUEST, m).into_response();
    if new.client_id.trim().is_empty() {
        return bad("clientId must not be empty".into());
    }
    let scopes = new.scopes.unwrap_or_else(default_scopes);
    let static_client = match &new.jwks {
        Some(jwks) => {
            // `RegisteredClient::new` reads public members only; a set carrying private ones
            // was copied from the wrong file, and saying so beats silently using half of it.
            if let Some((member, kid)) = private_member(jwks) {
                return bad(format!(
                    "the JWK Set holds private key material (member {member:?} of key {kid:?}); register public keys only"
                ));
            }
            match RegisteredClient::new(&new.client_id, jwks, scopes.clone()) {
                Ok(c) => Some(c),
                Err(e) => return bad(e.to_string()),
            }
        }
        None => None,
    };
    let client = match (static_client, new.jwks_url.as_deref()) {
        (Some(mut c), Some(url)) => c.set_jwks_url(url).map(|()| c),
        (Some(c), None) => Ok(c),
        (None, Some(url)) => RegisteredClient::with_jwks_url(&new.client_id, url, scopes),
        (None, None) => return bad("give jwksUrl, jwks or both".into()),
    };
    let client = match client {
        Ok(c) => c,
        Err(e) => return bad(e.to_string()),
    };
    let id = client.client_id.clone();
    state.register_client(client);
    let shown = state
        .client(&id)
        .map(|c| c.snapshot())
        .unwrap_or(Value::Null);
    (StatusCode::CREATED, Json(shown)).into_response()
}

/// Ids and NPIs of every practitioner (no names: tests find records by NPI here).
async fn list(State(state): St) -> Json<Value> {
    let data = lock(&state.data);
    let items: Vec<Value> = data
        .practitioners
        .iter()
        .map(|(id, p)| json!({"id": id, "npi": current_npi(p), "npis": npi_values(p)}))
        .collect();
    Json(json!(items))
}

/// Patient ids (portal users), for tests of Patient read.
async fn patients(State(state): St) -> Json<Value> {
    let data = lock(&state.data);
    Json(json!(
        data.patients
            .iter()
            .map(|(id, _)| json!({"id": id}))
            .collect::<Vec<_>>()
    ))
}

async fn show(State(state): St, Path(id): Path<String>) -> Response {
    match lock(&state.data).practitioners.items.get(&id) {
        Some(p) => Json(p.clone()).into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

/// Adds a Practitioner the way someone working in Epic would (for duplicate-NPI scenarios).
async fn add(State(state): St, Json(mut p): Json<Value>) -> Response {
    let mut data = lock(&state.data);
    let id = state.new_practitioner_id(&mut data);
    p["resourceType"] = json!("Practitioner");
    p["id"] = json!(id);
    data.practitioners.insert(id.clone(), p);
    (StatusCode::CREATED, Json(json!({"id": id}))).into_response()
}

/// Removes a record, as a purge in Epic would (or a change of this client's security that hides
/// it): from then on its id answers 404 and no search finds it.
async fn remove(State(state): St, Path(id): Path<String>) -> Response {
    match lock(&state.data).practitioners.remove(&id) {
        Some(_) => StatusCode::NO_CONTENT.into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

/// Merges a record away, as Epic merges duplicate records: from then on its id answers 410
/// with Epic code 4107. The record's data goes with it (add the surviving record separately).
async fn merge(State(state): St, Path(id): Path<String>) -> Response {
    let mut data = lock(&state.data);
    match data.practitioners.remove(&id) {
        Some(_) => {
            data.merged.insert(id);
            StatusCode::NO_CONTENT.into_response()
        }
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

/// Out-of-band edit with a JSON merge patch (RFC 7386), the way a person editing in Epic makes
/// drift.
async fn edit(State(state): St, Path(id): Path<String>, Json(patch): Json<Value>) -> Response {
    // An edit is a new version: a client holding the old one gets 412 on its PUT.
    match lock(&state.data).practitioners.edit(&id, &patch) {
        Some(stored) => Json(stored).into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}
