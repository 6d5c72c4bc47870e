//! `POST /oauth2/token`: client_credentials with a JWT client assertion, checked the way Epic
//! documents it.

use std::sync::Arc;
use std::time::Instant;

use axum::Form;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{DecodingKey, Validation};
use serde::Deserialize;
use serde_json::{Value, json};

use super::clients::ClientEntry;
use super::jwks::CachePolicy;
use super::lock;
use super::state::{IssuedToken, SandboxState};
use super::stats::Stats;
use crate::auth::ASSERTION_TYPE;

/// The assertion may not expire more than this far ahead.
const MAX_ASSERTION_LIFETIME: i64 = 300;

#[derive(Deserialize)]
pub(crate) struct TokenForm {
    grant_type: Option<String>,
    client_assertion_type: Option<String>,
    client_assertion: Option<String>,
    scope: Option<String>,
}

fn oauth_error(status: StatusCode, error: &str, description: impl Into<String>) -> Response {
    (
        status,
        axum::Json(json!({"error": error, "error_description": description.into()})),
    )
        .into_response()
}

pub(crate) async fn token(
    State(state): State<Arc<SandboxState>>,
    Form(form): Form<TokenForm>,
) -> Response {
    Stats::bump(&state.stats.token);
    let settings = state.settings();
    if settings.token_failure_rate > 0.0 && rand::random::<f64>() < settings.token_failure_rate {
        Stats::bump(&state.stats.token_rejected);
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            "token service unavailable (sandbox fault)",
        )
            .into_response();
    }
    match issue(&state, form).await {
        Ok(body) => (StatusCode::OK, axum::Json(body)).into_response(),
        Err(r) => {
            Stats::bump(&state.stats.token_rejected);
            r
        }
    }
}

fn invalid_client(description: impl Into<String>) -> Response {
    oauth_error(StatusCode::BAD_REQUEST, "invalid_client", description)
}

/// Verifies the assertion and issues a token. Async because a client registered with a JWK
/// Set URL may need its keys fetched first.
async fn issue(state: &SandboxState, form: TokenForm) -> Result<Value, Response> {
    if form.grant_type.as_deref() != Some("client_credentials") {
        return Err(oauth_error(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            "grant_type must be client_credentials",
        ));
    }
    if form.client_assertion_type.as_deref() != Some(ASSERTION_TYPE) {
        return Err(oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "client_assertion_type must be jwt-bearer",
        ));
    }
    let assertion = form.client_assertion.ok_or_else(|| {
        oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "client_assertion is missing",
        )
    })?;
    let header = jsonwebtoken::decode_header(&assertion)
        .map_err(|e| invalid_client(format!("malformed assertion: {e}")))?;
    use jsonwebtoken::Algorithm as A;
    if !matches!(header.alg, A::RS256 | A::RS384 | A::RS512 | A::ES384) {
        return Err(invalid_client(format!(
            "algorithm {:?} is not allowed",
            header.alg
        )));
    }
    let kid = header
        .kid
        .ok_or_else(|| invalid_client("the assertion header has no kid"))?;
    // The issuer names the client whose keys verify the signature; read it before verifying.
    let claims =
        unverified_claims(&assertion).ok_or_else(|| invalid_client("unreadable claims"))?;
    let client_id = claims
        .get("iss")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let client = state
        .client(&client_id)
        .ok_or_else(|| invalid_client(format!("unknown client id {client_id:?}")))?;
    // Only the registered URL is ever fetched; a jku naming another is refused, never followed.
    if let Some(jku) = header.jku.as_deref() {
        match client.registration.jwks_url() {
            Some(url) if url == jku => {}
            Some(url) => {
                return Err(invalid_client(format!(
                    "jku {jku:?} does not match the registered JWK Set URL {url:?}"
                )));
            }
            None => {
                return Err(invalid_client(format!(
                    "jku {jku:?} does not match the registered JWK Set URL: this client has none (its keys were registered statically)"
                )));
            }
        }
    }
    let jwk = client_key(state, &client, &kid).await?;
    let key = DecodingKey::from_jwk(&jwk)
        .map_err(|e| invalid_client(format!("registered key unusable: {e}")))?;
    let token_url = state.token_url();
    let mut validation = Validation::new(header.alg);
    validation.set_audience(&[token_url.as_str()]);
    validation.set_required_spec_claims(&["exp", "aud", "iss", "sub"]);
    validation.leeway = 0;
    let verified = jsonwebtoken::decode::<Value>(&assertion, &key, &validation).map_err(|e| {
        invalid_client(match e.kind() {
            jsonwebtoken::errors::ErrorKind::InvalidAudience => {
                format!("aud must be exactly {token_url}")
            }
            jsonwebtoken::errors::ErrorKind::ExpiredSignature => {
                "the assertion has expired".to_string()
            }
            other => format!("assertion rejected: {other:?}"),
        })
    })?;
    let c = verified.claims;
    if c.get("sub").and_then(Value::as_str) != Some(client_id.as_str()) {
        return Err(invalid_client("iss and sub must both equal the client id"));
    }
    let now = chrono::Utc::now().timestamp();
    let exp = c
        .get("exp")
        .and_then(Value::as_i64)
        .ok_or_else(|| invalid_client("exp must be a number"))?;
    if exp > now + MAX_ASSERTION_LIFETIME {
        return Err(invalid_client("exp is more than 5 minutes in the future"));
    }
    // An assertion is not valid before its nbf (no leeway: client and sandbox share a clock).
    if let Some(nbf) = c.get("nbf").and_then(Value::as_i64)
        && nbf > now
    {
        return Err(invalid_client(
            "the assertion is not valid yet (nbf is in the future)",
        ));
    }
    for claim in ["nbf", "iat"] {
        if let Some(t) = c.get(claim).and_then(Value::as_i64)
            && (exp - t).abs() > MAX_ASSERTION_LIFETIME
        {
            return Err(invalid_client(format!(
                "{claim} must be within 5 minutes of exp"
            )));
        }
    }
    let jti = c
        .get("jti")
        .and_then(Value::as_str)
        .ok_or_else(|| invalid_client("jti must be a string"))?;
    if jti.len() > 151 {
        return Err(invalid_client("jti is longer than 151 characters"));
    }
    let requested: Vec<String> = form
        .scope
        .as_deref()
        .unwrap_or_default()
        .split_whitespace()
        .map(str::to_string)
        .collect();
    // SMART Backend Services makes `scope` required, and Epic grants only what is asked for
    // (within what was approved): a request without scopes is refused, never widened to every
    // approved scope.
    if requested.is_empty() {
        return Err(oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "scope is required: list the system/... scopes to grant".to_string(),
        ));
    }
    if let Some(bad) = requested
        .iter()
        .find(|s| !client.registration.approved_scopes.contains(s))
    {
        return Err(oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_scope",
            format!("scope {bad} was not approved for this client"),
        ));
    }
    {
        let mut auth = lock(&state.auth);
        auth.seen_jti.retain(|_, e| *e >= now);
        if auth.seen_jti.insert(jti.to_string(), exp).is_some() {
            return Err(invalid_client("jti has already been used"));
        }
        auth.tokens.retain(|_, t| t.expires > Instant::now());
    }
    let granted = requested;
    let access_token = state.random_token();
    let ttl = state.token_ttl;
    lock(&state.auth).tokens.insert(
        access_token.clone(),
        IssuedToken {
            scopes: granted.clone(),
            expires: Instant::now() + ttl,
        },
    );
    Ok(json!({
        "access_token": access_token,
        "token_type": "bearer",
        "expires_in": ttl.as_secs().max(1),
        "scope": granted.join(" "),
    }))
}

/// The key named `kid`: a static key of the client, else one from its JWK Set URL (fetched
/// or cached, see `jwks`).
async fn client_key(
    state: &SandboxState,
    client: &ClientEntry,
    kid: &str,
) -> Result<Jwk, Response> {
    if let Some(k) = client
        .registration
        .keys
        .iter()
        .find(|k| k.common.key_id.as_deref() == Some(kid))
    {
        return Ok(k.clone());
    }
    let Some(cache) = &client.jwks else {
        return Err(invalid_client(format!(
            "unknown kid {kid:?} for this client"
        )));
    };
    let settings = state.settings();
    let policy = CachePolicy::from_secs(
        settings.jwks_cache_max_secs,
        settings.jwks_refetch_cooldown_secs,
    )
    .at_least(settings.jwks_cache_min_secs);
    cache
        .key(kid, policy, &state.stats)
        .await
        .map_err(invalid_client)
}

fn unverified_claims(jwt: &str) -> Option<Value> {
    use base64::Engine;
    let payload = jwt.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// Looks a bearer token up; Err(()) when missing, unknown or expired.
pub(crate) fn check_bearer(
    state: &SandboxState,
    authorization: Option<&str>,
) -> Result<Vec<String>, ()> {
    let token = authorization
        .and_then(|h| {
            h.strip_prefix("Bearer ")
                .or_else(|| h.strip_prefix("bearer "))
        })
        .ok_or(())?;
    let auth = lock(&state.auth);
    let t = auth.tokens.get(token).ok_or(())?;
    if t.expires <= Instant::now() {
        return Err(());
    }
    Ok(t.scopes.clone())
}
