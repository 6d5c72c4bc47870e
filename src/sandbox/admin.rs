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
use serde_json::{Value, json};

use super::Settings;
use super::lock;
use super::state::SandboxState;
use crate::reconcile::identity::{current_npi, npi_values};

type St = State<Arc<SandboxState>>;

pub(crate) fn routes() -> Router<Arc<SandboxState>> {
    Router::new()
        .route("/stats", get(stats))
        .route("/stats/reset", post(reset))
        .route("/settings", get(get_settings).put(put_settings))
        .route("/practitioners", get(list).post(add))
        .route("/practitioners/{id}", get(show).patch(edit))
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
    Json(state.stats.snapshot())
}

async fn reset(State(state): St) -> StatusCode {
    state.stats.reset();
    StatusCode::NO_CONTENT
}

async fn get_settings(State(state): St) -> Json<Settings> {
    Json(state.settings())
}

/// Merges the given fields into the current settings.
async fn put_settings(State(state): St, Json(patch): Json<Value>) -> Response {
    let mut current = serde_json::to_value(state.settings()).unwrap_or_else(|_| json!({}));
    json_patch::merge(&mut current, &patch);
    match serde_json::from_value::<Settings>(current) {
        Ok(s) => {
            state.set_settings(s.clone());
            Json(s).into_response()
        }
        Err(e) => (StatusCode::BAD_REQUEST, format!("invalid settings: {e}")).into_response(),
    }
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
