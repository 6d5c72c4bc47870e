//! What every authenticated FHIR route checks first: the configured latency and load faults,
//! the rate limit, the bearer token and its scopes.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::Response;
use rand::Rng;

use super::oauth::check_bearer;
use super::responses::outcome;
use super::state::SandboxState;
use super::stats::Stats;

/// The state every FHIR route extracts.
pub(super) type St = State<Arc<SandboxState>>;

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
