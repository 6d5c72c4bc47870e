//! Practitioner and PractitionerRole searches: matching (strict, OR tokens, or loose), paging
//! sessions with opaque expiring links, and the awkward shapes Epic produces (OperationOutcome
//! entries, empty pages that still have `next`, SUBSETTED copies).

use std::time::Instant;

use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde_json::{Value, json};

use super::guard::{Need, St, guard};
use super::lock;
use super::query::{identifier_matches, params, practitioner_matches};
use super::responses::{fhir_json, outcome};
use super::state::{Data, SandboxState, Session};
use super::stats::Stats;
use crate::fhir::EPIC_CODE_SYSTEM;

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
fn outcome_entry(severity: &str, code: &str, epic_code: &str, text: &str) -> Value {
    json!({
        "resource": {"resourceType": "OperationOutcome", "issue": [{"severity": severity, "code": code,
            "details": {"coding": [{"system": EPIC_CODE_SYSTEM, "code": epic_code, "display": text}], "text": text}}]},
        "search": {"mode": "outcome"}
    })
}

/// An outcome entry with only a standard issue code (no Epic detail code).
fn bare_outcome_entry(severity: &str, code: &str, text: &str) -> Value {
    json!({
        "resource": {"resourceType": "OperationOutcome", "issue": [{
            "severity": severity, "code": code, "diagnostics": text}]},
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
        Stats::bump(&state.stats.paging_expired);
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
        bundle["entry"] = json!([outcome_entry(
            "warning",
            "processing",
            "4101",
            "Resource request returns no results."
        )]);
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
        None => {
            Stats::bump(&state.stats.paging_expired);
            outcome(
                StatusCode::BAD_REQUEST,
                "processing",
                "4113",
                "The paging session has expired or the link is invalid",
            )
        }
    })
}

pub(super) async fn search_practitioners(
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
    if identifier_search {
        Stats::bump(&state.stats.identifier_search);
    }
    if let Some(r) = state.load.search(&settings.load, !filters.is_empty()) {
        return r;
    }
    if identifier_search && settings.identifier_search_unsupported {
        return outcome(
            StatusCode::BAD_REQUEST,
            "not-supported",
            "4100",
            "The search parameter identifier is not supported",
        );
    }
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
    if filters.is_empty() {
        super::hostile::on_walk(&settings, &mut data);
    }
    let mut ids = Vec::new();
    for (id, p) in data.practitioners.iter() {
        let mut keep = true;
        for (k, v) in &filters {
            // An instance that takes the OR form but applies only its first token.
            let v = match v.split_once(',') {
                Some((first, _)) if k == "identifier" && settings.or_search_first_token_only => {
                    first
                }
                _ => v.as_str(),
            };
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
            // Records searched for but hidden: each way is announced by an outcome entry, once.
            let searched_for = |npis: &[String]| {
                npis.iter().any(|npi| {
                    filters
                        .iter()
                        .any(|(k, v)| k == "identifier" && v.contains(npi.as_str()))
                        && identifier_matches(p, npi, false)
                })
            };
            let walk_hidden = filters.is_empty()
                && settings
                    .walk_suppressed_npis
                    .iter()
                    .any(|npi| identifier_matches(p, npi, false));
            let hidden = if walk_hidden {
                // The standard issue code, without Epic's.
                Some(bare_outcome_entry(
                    "information",
                    "suppressed",
                    "Some results are not shown to this client",
                ))
            } else if searched_for(&settings.cut_npis) {
                // A result set cut short, said only by a warning with no Epic code.
                Some(bare_outcome_entry(
                    "warning",
                    "too-costly",
                    "The search was stopped before all results were found",
                ))
            } else if searched_for(&settings.suppressed_npis) {
                // As Epic does (59204).
                Some(outcome_entry(
                    "warning",
                    "suppressed",
                    "59204",
                    "Some results were suppressed: the client is not authorized for them",
                ))
            } else {
                None
            };
            if let Some(entry) = hidden {
                if shape.outcomes.is_empty() {
                    shape.outcomes.push(entry);
                }
                continue;
            }
            ids.push(id.clone());
        }
    }
    first_page(&state, &mut data, "Practitioner", ids, count, shape)
}

pub(super) async fn search_roles(
    State(state): St,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    if let Err(r) = guard(&state, &headers, Need::Role).await {
        return r;
    }
    let params = params(query);
    if let Some(r) = continue_session(&state, &params) {
        return r;
    }
    Stats::bump(&state.stats.search);
    let has_parameters = params.iter().any(|(k, _)| k != "_count");
    if let Some(r) = state.load.search(&state.settings().load, has_parameters) {
        return r;
    }
    // Without `practitioner`, every role (a roster walk of roles), unless the instance needs it.
    let reference = match params.iter().find(|(k, _)| k == "practitioner") {
        Some((_, p)) if p.starts_with("Practitioner/") => Some(p.clone()),
        Some((_, p)) => Some(format!("Practitioner/{p}")),
        None if state.settings().role_search_needs_practitioner => {
            return outcome(
                StatusCode::BAD_REQUEST,
                "required",
                "4111",
                "A required parameter is missing: practitioner",
            );
        }
        None => None,
    };
    let count = page_size(&state, &params);
    let mut data = lock(&state.data);
    state.expire_sessions(&mut data);
    let ids: Vec<String> = data
        .roles
        .iter()
        .filter(|(_, r)| {
            reference.as_deref().is_none_or(|want| {
                r.pointer("/practitioner/reference").and_then(Value::as_str) == Some(want)
            })
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
