//! Access tokens: obtained with a client assertion, cached, renewed ahead of expiry, and fetched
//! by one caller at a time (single flight) however many reconciles ask at once.

#![deny(clippy::arithmetic_side_effects)]

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::Mutex;

use super::assertion::{ASSERTION_TYPE, client_assertion_with_jku};
use super::endpoint::{AccessToken, parse_token_response};
use super::error::{AuthError, unreachable};
use super::keyring::{KeyRing, SignerChoice};
use super::keys::ClientKey;
use super::lifetime::failure_backoff;
use crate::http::{read_limited, require_allowed_url};

/// Which keys signed and which Epic accepted: what status.keys reports.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KeyUse {
    /// The key of the last assertion Epic accepted.
    pub last_accepted_key_id: Option<String>,
    /// A new key Epic refused with `invalid_client` while the previous key was still
    /// published: assertions are signed with the previous key until `retry_refused_at`.
    pub refused_key_id: Option<String>,
    pub retry_refused_at: Option<chrono::DateTime<chrono::Utc>>,
}

/// Obtains and caches tokens for one client registration.
pub struct TokenSource {
    http: reqwest::Client,
    keys: KeyRing,
    /// The registered JWK Set URL, sent as `jku` when the connection asks for it.
    jku: Option<String>,
    key_use: std::sync::Mutex<KeyUse>,
    client_id: String,
    token_url: String,
    scopes: Vec<String>,
    cached: Mutex<Cached>,
    requests: AtomicU64,
}

/// The token in use, and the last failure while it is being backed off.
#[derive(Default)]
struct Cached {
    token: Option<AccessToken>,
    failure: Option<Failure>,
}

struct Failure {
    error: AuthError,
    failures: u32,
    retry_at: Instant,
}

impl std::fmt::Debug for TokenSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenSource")
            .field("client_id", &self.client_id)
            .field("token_url", &self.token_url)
            .finish_non_exhaustive()
    }
}

impl TokenSource {
    /// A source that signs with one key.
    pub fn new(
        http: reqwest::Client,
        key: ClientKey,
        client_id: impl Into<String>,
        token_url: impl Into<String>,
        scopes: Vec<String>,
    ) -> Result<Self, AuthError> {
        Self::with_keys(
            http,
            KeyRing::single(key),
            client_id,
            token_url,
            scopes,
            None,
        )
    }

    /// A source that signs with the key `keys` choose at each request, falling back to the
    /// previous key while Epic has not taken a new one yet, and sends `jku` when given.
    pub fn with_keys(
        http: reqwest::Client,
        keys: KeyRing,
        client_id: impl Into<String>,
        token_url: impl Into<String>,
        scopes: Vec<String>,
        jku: Option<String>,
    ) -> Result<Self, AuthError> {
        let token_url = token_url.into();
        require_allowed_url(&token_url).map_err(AuthError::InsecureUrl)?;
        Ok(Self {
            http,
            keys,
            jku,
            key_use: std::sync::Mutex::new(KeyUse::default()),
            client_id: client_id.into(),
            token_url,
            scopes,
            cached: Mutex::new(Cached::default()),
            requests: AtomicU64::new(0),
        })
    }

    pub fn token_url(&self) -> &str {
        &self.token_url
    }

    /// Carries over what an earlier source of the same connection learned (status is the
    /// memory across restarts and rebuilds): the key Epic last accepted, and a new key it
    /// refused, which then waits its turn instead of being refused once more at once.
    pub fn remember(&self, last_accepted: Option<String>, refused: Option<String>) {
        let mut used = self.key_use.lock().unwrap_or_else(|p| p.into_inner());
        used.last_accepted_key_id = last_accepted;
        if let Some(kid) = refused {
            used.retry_refused_at = Some(crate::util::later(
                chrono::Utc::now(),
                self.refused_key_retry(),
            ));
            used.refused_key_id = Some(kid);
        }
    }

    /// The keys this source signs with.
    pub fn keys(&self) -> &KeyRing {
        &self.keys
    }

    /// Which key signed last, which Epic accepted, which it refused.
    pub fn key_use(&self) -> KeyUse {
        self.key_use
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// How many token requests this source has sent.
    pub fn requests_sent(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    /// When the cached token expires; None without one, or while a request holds the cache.
    pub fn cached_expiry(&self) -> Option<chrono::DateTime<chrono::Utc>> {
        self.cached
            .try_lock()
            .ok()?
            .token
            .as_ref()
            .map(|t| t.expires_at)
    }

    /// A valid token: the cached one, or a new one. Concurrent callers wait for the one request
    /// in flight instead of each sending their own (each would burn a `jti` and Epic's budget).
    /// After a failure, callers get that failure back until its backoff step has passed.
    pub async fn token(&self) -> Result<AccessToken, AuthError> {
        let mut cached = self.cached.lock().await;
        if let Some(t) = cached.token.as_ref()
            && Instant::now() < t.renew_at
        {
            return Ok(t.clone());
        }
        if let Some(f) = &cached.failure
            && Instant::now() < f.retry_at
        {
            return Err(f.error.clone());
        }
        match self.request_token().await {
            Ok(fresh) => {
                cached.token = Some(fresh.clone());
                cached.failure = None;
                Ok(fresh)
            }
            Err(error) => {
                let failures = cached
                    .failure
                    .as_ref()
                    .map_or(1, |f| f.failures.saturating_add(1));
                let now = Instant::now();
                cached.failure = Some(Failure {
                    error: error.clone(),
                    failures,
                    retry_at: now.checked_add(failure_backoff(failures)).unwrap_or(now),
                });
                Err(error)
            }
        }
    }

    /// Forgets `rejected` (after a 401) so the next call gets a new token; a token that was
    /// already replaced by another caller is left alone.
    pub async fn invalidate(&self, rejected: &AccessToken) {
        let mut cached = self.cached.lock().await;
        if cached
            .token
            .as_ref()
            .is_some_and(|t| t.secret == rejected.secret)
        {
            cached.token = None;
        }
    }

    /// One token request with the key the ring chooses now; when Epic refuses it as
    /// `invalid_client` (its JWK Set cache predates the key) while the previous key is still
    /// published, one more with that key, which keeps signing until the new one is tried
    /// again.
    async fn request_token(&self) -> Result<AccessToken, AuthError> {
        let now = chrono::Utc::now();
        let preferred = &self.keys.signing_at(now).key;
        let (held_back, accepted) = {
            let used = self.key_use.lock().unwrap_or_else(|p| p.into_inner());
            (
                used.refused_key_id.as_deref() == Some(preferred.kid())
                    && used.retry_refused_at.is_some_and(|t| now < t),
                used.last_accepted_key_id.clone(),
            )
        };
        let fallback = self
            .keys
            .fallback_for(preferred.kid(), accepted.as_deref())
            .map(|k| &k.key);
        if held_back && let Some(previous) = fallback {
            return self.request_with(previous).await;
        }
        match self.request_with(preferred).await {
            Err(AuthError::OAuth { error, .. })
                if error == "invalid_client"
                    && let Some(previous) = fallback =>
            {
                let retry_at = crate::util::later(now, self.refused_key_retry());
                {
                    let mut used = self.key_use.lock().unwrap_or_else(|p| p.into_inner());
                    used.refused_key_id = Some(preferred.kid().to_string());
                    used.retry_refused_at = Some(retry_at);
                }
                tracing::warn!(
                    refused_key = preferred.kid(),
                    signing_key = previous.kid(),
                    "Epic refused the new key (invalid_client); signing with the previous key, which is still published"
                );
                self.request_with(previous).await
            }
            other => other,
        }
    }

    /// Tries a refused new key again once its wait is over, without giving up the token in
    /// hand: Epic may have refetched the JWK Set by now. Accepted, its token replaces the
    /// cached one and the key signs from then on; refused again, it waits once more.
    /// Returns whether a request was sent.
    pub async fn retry_refused_key(&self) -> bool {
        let now = chrono::Utc::now();
        let preferred = &self.keys.signing_at(now).key;
        let due = {
            let used = self.key_use.lock().unwrap_or_else(|p| p.into_inner());
            used.refused_key_id.as_deref() == Some(preferred.kid())
                && used.retry_refused_at.is_none_or(|t| now >= t)
        };
        if !due {
            return false;
        }
        let mut cached = self.cached.lock().await;
        match self.request_with(preferred).await {
            Ok(fresh) => {
                cached.token = Some(fresh);
                cached.failure = None;
            }
            Err(e) => {
                let retry_at = crate::util::later(now, self.refused_key_retry());
                let mut used = self.key_use.lock().unwrap_or_else(|p| p.into_inner());
                used.retry_refused_at = Some(retry_at);
                tracing::debug!(refused_key = preferred.kid(), error = %e, "the new key is still refused");
            }
        }
        true
    }

    /// How long a refused new key waits before it is tried again: a quarter of the time keys
    /// are published ahead (Epic's cache is expected to be about that old), 1 s to 15 min.
    fn refused_key_retry(&self) -> Duration {
        match self.keys.choice() {
            SignerChoice::NewestPublished(p) => p
                .publish_ahead
                .checked_div(4)
                .unwrap_or_default()
                .clamp(Duration::from_secs(1), Duration::from_secs(900)),
            SignerChoice::Pinned(_) => Duration::from_secs(900),
        }
    }

    async fn request_with(&self, key: &ClientKey) -> Result<AccessToken, AuthError> {
        let result = self.send_assertion(key).await;
        let mut used = self.key_use.lock().unwrap_or_else(|p| p.into_inner());
        if result.is_ok() {
            used.last_accepted_key_id = Some(key.kid().to_string());
            if used.refused_key_id.as_deref() == Some(key.kid()) {
                used.refused_key_id = None;
                used.retry_refused_at = None;
            }
        }
        result
    }

    async fn send_assertion(&self, key: &ClientKey) -> Result<AccessToken, AuthError> {
        let assertion =
            client_assertion_with_jku(key, &self.client_id, &self.token_url, self.jku.as_deref())?;
        let scope = self.scopes.join(" ");
        let form = [
            ("grant_type", "client_credentials"),
            ("client_assertion_type", ASSERTION_TYPE),
            ("client_assertion", assertion.as_str()),
            ("scope", scope.as_str()),
        ];
        self.requests.fetch_add(1, Ordering::Relaxed);
        let started = Instant::now();
        let response = self
            .http
            .post(&self.token_url)
            .form(&form)
            .send()
            .await
            .map_err(|e| unreachable("token endpoint unreachable", &e, AuthError::Transport))?;
        let status = response.status().as_u16();
        let body = read_limited(response, 1 << 20)
            .await
            .map_err(|e| AuthError::Transport(e.to_string()))?;
        tracing::debug!(status, "token request");
        parse_token_response(status, &body, &self.scopes, started)
    }
}
