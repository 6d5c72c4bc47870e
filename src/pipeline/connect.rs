//! Turning an EpicConnection into a client: key, token URL (configured or discovered, and
//! held to the endpoint policy), rate limit, paging and walk limits.

use std::sync::Arc;

use crate::auth::{KeyRing, TokenSource, discover_token_url};
use crate::crd::EpicConnectionSpec;
use crate::fhir::{ConnectionSettings, FhirClient, FhirError, RequestObserver};
use crate::http::EndpointPolicy;
use crate::reconcile::Normalizer;

/// Connects to the instance an EpicConnection describes with its loaded keys: finds the token
/// URL and builds the client. No request is sent except token URL discovery.
/// `policy` decides which hosts may receive the client assertion and the bearer token; `jku`
/// is the JWK Set URL to name in assertions (only when the connection sets `sendJku`).
pub async fn connect(
    http: &reqwest::Client,
    spec: &EpicConnectionSpec,
    keys: KeyRing,
    jku: Option<String>,
    observer: Option<RequestObserver>,
    policy: &EndpointPolicy,
) -> Result<FhirClient, FhirError> {
    Normalizer::for_connection(spec).map_err(FhirError::Refused)?;
    policy
        .check_fhir_base(&spec.fhir_base_url)
        .map_err(FhirError::Refused)?;
    let (token_url, discovered) = match &spec.token_url {
        Some(u) => (u.clone(), false),
        None => (discover_token_url(http, &spec.fhir_base_url).await?, true),
    };
    policy
        .check_token_url(&spec.fhir_base_url, &token_url, discovered)
        .map_err(FhirError::Refused)?;
    let tokens = TokenSource::with_keys(
        http.clone(),
        keys,
        spec.client_id.clone(),
        token_url,
        spec.effective_scopes(),
        jku,
    )?;
    let mut settings = ConnectionSettings::new(spec.fhir_base_url.clone());
    if let Some(r) = spec.requests_per_second {
        settings.requests_per_second = r;
    }
    settings.burst = spec
        .burst
        .unwrap_or(settings.requests_per_second.saturating_mul(2));
    if let Some(n) = spec.max_walk_pages {
        settings.walk_limits.max_pages = n;
    }
    if let Some(n) = spec.max_walk_records {
        settings.walk_limits.max_records = n;
    }
    if let Some(d) = &spec.max_walk_duration {
        settings.walk_limits.max_duration = crate::util::parse_duration(d)
            .map_err(|e| FhirError::Refused(format!("maxWalkDuration: {e}")))?;
    }
    if let Some(p) = spec.page_size {
        settings.page_size = p;
    }
    FhirClient::new(http.clone(), settings, Arc::new(tokens), observer)
}
