//! The token endpoint from outside: found through the SMART configuration, and its answer read
//! as a token (whose Debug output never shows the secret) or the error it means.

#![deny(clippy::arithmetic_side_effects)]

use std::time::{Duration, Instant};

use serde::Deserialize;

use super::error::{AuthError, unreachable};
use super::lifetime::token_lifetime;
use crate::http::{read_limited, require_allowed_url};

/// A bearer token. Its Debug output never shows the secret.
#[derive(Clone)]
pub struct AccessToken {
    pub(super) secret: String,
    /// When the server says it expires.
    pub expires_at: chrono::DateTime<chrono::Utc>,
    /// When this client renews it (ahead of expiry).
    pub(super) renew_at: Instant,
    /// Scopes granted (may be narrower than requested).
    pub scopes: Vec<String>,
}

impl std::fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccessToken")
            .field("secret", &"<redacted>")
            .field("expires_at", &self.expires_at)
            .field("scopes", &self.scopes)
            .finish()
    }
}

impl AccessToken {
    pub(crate) fn secret(&self) -> &str {
        &self.secret
    }
}

#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
    #[serde(default)]
    token_type: Option<String>,
    #[serde(default)]
    expires_in: Option<serde_json::Value>,
    #[serde(default)]
    scope: Option<String>,
}

#[derive(Deserialize)]
struct OAuthErrorBody {
    error: String,
    #[serde(default)]
    error_description: Option<String>,
}

/// The token endpoint's answer, as an access token or the error it means. Pure, so the
/// parser can be fuzzed: any bytes give one or the other, never a panic. `requested` are the
/// scopes asked for (granted when the answer lists none); `started` is when the request left.
pub fn parse_token_response(
    status: u16,
    body: &[u8],
    requested: &[String],
    started: Instant,
) -> Result<AccessToken, AuthError> {
    if !(200..300).contains(&status) {
        return Err(match serde_json::from_slice::<OAuthErrorBody>(body) {
            Ok(e) => AuthError::OAuth {
                status,
                error: e.error,
                description: e
                    .error_description
                    .map(|d| crate::reconcile::mask_personal_text(&d)),
            },
            Err(_) => AuthError::Endpoint {
                status,
                detail: snippet(body),
            },
        });
    }
    let parsed: TokenResponse = serde_json::from_slice(body).map_err(|e| AuthError::Endpoint {
        status,
        detail: format!("token response is not the expected JSON ({e})"),
    })?;
    if let Some(tt) = &parsed.token_type
        && !tt.eq_ignore_ascii_case("bearer")
    {
        return Err(AuthError::Endpoint {
            status,
            detail: format!("unsupported token_type {tt:?}"),
        });
    }
    let lifetime = token_lifetime(parsed.expires_in.as_ref());
    // Renew ahead of expiry so a request never leaves with a token about to lapse.
    let margin = lifetime
        .checked_div(5)
        .unwrap_or_default()
        .min(Duration::from_secs(60));
    let scopes = parsed
        .scope
        .map(|s| s.split_whitespace().map(str::to_string).collect())
        .unwrap_or_else(|| requested.to_vec());
    let now = chrono::Utc::now();
    Ok(AccessToken {
        secret: parsed.access_token,
        expires_at: chrono::TimeDelta::from_std(lifetime)
            .ok()
            .and_then(|d| now.checked_add_signed(d))
            .unwrap_or(now),
        renew_at: started
            .checked_add(lifetime.saturating_sub(margin))
            .unwrap_or(started),
        scopes,
    })
}

/// Finds the token endpoint from `{fhir_base}/.well-known/smart-configuration`.
pub async fn discover_token_url(
    http: &reqwest::Client,
    fhir_base: &str,
) -> Result<String, AuthError> {
    let url = format!(
        "{}/.well-known/smart-configuration",
        fhir_base.trim_end_matches('/')
    );
    require_allowed_url(&url).map_err(AuthError::InsecureUrl)?;
    let response = http
        .get(&url)
        .header("Accept", "application/json")
        .send()
        .await
        .map_err(|e| unreachable("token URL discovery failed", &e, AuthError::Discovery))?;
    let status = response.status();
    let body = read_limited(response, 1 << 20)
        .await
        .map_err(|e| AuthError::Discovery(e.to_string()))?;
    // Only a 404 means the server publishes no SMART configuration, so only then is a
    // configured token URL the fix; other failures (network, TLS, 5xx) have their own.
    if status.as_u16() == 404 {
        return Err(AuthError::Discovery(format!(
            "{url} answered HTTP 404 (this server publishes no SMART configuration): set spec.tokenUrl on the EpicConnection to Epic's OAuth token endpoint"
        )));
    }
    if !status.is_success() {
        return Err(AuthError::Discovery(format!(
            "{url} answered HTTP {}",
            status.as_u16()
        )));
    }
    let doc: serde_json::Value = serde_json::from_slice(&body)
        .map_err(|e| AuthError::Discovery(format!("{url} is not JSON ({e})")))?;
    let token = doc
        .get("token_endpoint")
        .and_then(|v| v.as_str())
        .ok_or_else(|| AuthError::Discovery(format!("{url} has no token_endpoint")))?;
    require_allowed_url(token).map_err(AuthError::InsecureUrl)?;
    Ok(token.to_string())
}

fn snippet(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let t: String = text.chars().take(200).collect();
    if t.is_empty() {
        "(empty body)".into()
    } else {
        crate::reconcile::mask_personal_text(&t)
    }
}
