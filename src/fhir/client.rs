//! The FHIR client used by the operator and the command line alike.

use std::num::NonZeroU32;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Instant;

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use reqwest::Method;
use serde_json::Value;
use url::Url;

use super::error::{FhirError, classify};
use super::rate::AdaptiveRate;
use super::retry::parse_retry_after;
use super::settings::{ConnectionSettings, RequestEvent, RequestKind, RequestObserver, Versioned};
use super::usage::Usage;
use crate::auth::TokenSource;
use crate::http::{describe_transport_error, origin_of, read_limited, require_allowed_url};
use crate::reconcile::identity::check_fhir_id;

pub(super) struct RawResponse {
    pub(super) etag: Option<String>,
    pub(super) location: Option<String>,
    pub(super) body: Vec<u8>,
}

/// Talks to one Epic instance.
pub struct FhirClient {
    http: reqwest::Client,
    base: Url,
    origin: String,
    tokens: Arc<TokenSource>,
    limiter: DefaultDirectRateLimiter,
    /// Below the limiter's fixed ceiling: slows down when Epic shows strain.
    rate: AdaptiveRate,
    usage: Usage,
    settings: ConnectionSettings,
    observer: Option<RequestObserver>,
    /// Set once the instance refused an identifier search with two tokens (`a|x,b|x`): from
    /// then on each NPI system is searched on its own.
    pub(super) no_or_search: AtomicBool,
}

impl std::fmt::Debug for FhirClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FhirClient")
            .field("base", &self.base.as_str())
            .finish_non_exhaustive()
    }
}

impl FhirClient {
    pub fn new(
        http: reqwest::Client,
        settings: ConnectionSettings,
        tokens: Arc<TokenSource>,
        observer: Option<RequestObserver>,
    ) -> Result<Self, FhirError> {
        let mut base = require_allowed_url(&settings.fhir_base_url).map_err(FhirError::Refused)?;
        if !base.path().ends_with('/') {
            base.set_path(&format!("{}/", base.path()));
        }
        let rps = NonZeroU32::new(settings.requests_per_second.max(1)).unwrap_or(NonZeroU32::MIN);
        let burst = NonZeroU32::new(settings.burst.max(1)).unwrap_or(NonZeroU32::MIN);
        Ok(Self {
            http,
            origin: origin_of(&base),
            base,
            tokens,
            limiter: RateLimiter::direct(Quota::per_second(rps).allow_burst(burst)),
            rate: AdaptiveRate::new(rps.get()),
            usage: Usage::new(),
            settings,
            observer,
            no_or_search: AtomicBool::new(false),
        })
    }

    /// The base URL (with a trailing slash) that FHIR ids of this client belong to.
    pub fn base_url(&self) -> &str {
        self.base.as_str().trim_end_matches('/')
    }

    pub fn tokens(&self) -> &TokenSource {
        &self.tokens
    }

    pub fn settings(&self) -> &ConnectionSettings {
        &self.settings
    }

    /// The adaptive rate (current rate, holds).
    pub fn rate(&self) -> &AdaptiveRate {
        &self.rate
    }

    /// Requests sent, for the request budget.
    pub fn usage(&self) -> &Usage {
        &self.usage
    }

    pub(super) fn base(&self) -> &Url {
        &self.base
    }

    pub(super) fn origin(&self) -> &str {
        &self.origin
    }

    pub(super) fn url(&self, relative: &str) -> Result<Url, FhirError> {
        self.base
            .join(relative)
            .map_err(|e| FhirError::Refused(format!("bad URL {relative:?}: {e}")))
    }

    /// Reads one Practitioner as raw JSON.
    pub async fn read_practitioner(&self, id: &str) -> Result<Versioned, FhirError> {
        let url = self.url(&resource_path("Practitioner", id)?)?;
        self.get_json(RequestKind::Read, url).await
    }

    /// Reads one Patient as raw JSON.
    pub async fn read_patient(&self, id: &str) -> Result<Value, FhirError> {
        let url = self.url(&resource_path("Patient", id)?)?;
        Ok(self.get_json(RequestKind::Read, url).await?.body)
    }

    /// All PractitionerRoles of a practitioner (every page).
    pub async fn practitioner_roles(&self, practitioner_id: &str) -> Result<Vec<Value>, FhirError> {
        let mut url = self.url("PractitionerRole")?;
        check_fhir_id(practitioner_id).map_err(FhirError::Refused)?;
        url.query_pairs_mut()
            .append_pair("practitioner", practitioner_id);
        Ok(self.search_all(url, "PractitionerRole").await?.resources)
    }

    pub(super) async fn get_json(
        &self,
        kind: RequestKind,
        url: Url,
    ) -> Result<Versioned, FhirError> {
        let raw = self.execute(kind, Method::GET, url, None, &[]).await?;
        let body = parse_json(kind, raw.body).await?;
        Ok(Versioned {
            body,
            etag: raw.etag,
        })
    }

    /// One logical request: rate limit, bearer token (renewed once on a 401), and for reads,
    /// bounded retries with exponential backoff and full jitter.
    pub(super) async fn execute(
        &self,
        kind: RequestKind,
        method: Method,
        url: Url,
        body: Option<&Value>,
        headers: &[(&str, &str)],
    ) -> Result<RawResponse, FhirError> {
        if origin_of(&url) != self.origin {
            return Err(FhirError::Refused(format!(
                "{} is not the configured origin {}",
                origin_of(&url),
                self.origin
            )));
        }
        let retry = self.settings.retry;
        let retries_reads = method == Method::GET;
        let started = Instant::now();
        let mut attempt = 0u32;
        let mut renewed = false;
        loop {
            attempt = attempt.saturating_add(1);
            let result = self
                .send_once(kind, &method, &url, body, headers, attempt)
                .await;
            match result {
                Err(FhirError::Unauthorized { .. }) if !renewed => {
                    // The token may have been revoked or expired early: renew once and retry once.
                    renewed = true;
                    continue;
                }
                Err(e) if retries_reads && e.is_transient() && attempt < retry.max_attempts => {
                    let Some(delay) = retry.delay(attempt, e.retry_after(), started.elapsed())
                    else {
                        return Err(e);
                    };
                    tracing::debug!(
                        kind = kind.as_str(),
                        attempt,
                        reason = %e.reason(),
                        "retrying read"
                    );
                    tokio::time::sleep(delay).await;
                }
                other => return other,
            }
        }
    }

    async fn send_once(
        &self,
        kind: RequestKind,
        method: &Method,
        url: &Url,
        body: Option<&Value>,
        headers: &[(&str, &str)],
        attempt: u32,
    ) -> Result<RawResponse, FhirError> {
        self.rate.acquire().await?;
        self.limiter.until_ready().await;
        let token = self.tokens.token().await?;
        let mut request = self
            .http
            .request(method.clone(), url.clone())
            .bearer_auth(token.secret())
            .header("Accept", "application/fhir+json")
            .timeout(self.settings.request_timeout);
        if let Some(b) = body {
            request = request
                .header("Content-Type", "application/fhir+json")
                .body(b.to_string());
        }
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let sent = Instant::now();
        self.usage.count();
        let observe = |status: Option<u16>| {
            self.rate.observe(status, sent.elapsed());
            if let Some(o) = &self.observer {
                o(RequestEvent {
                    kind,
                    status,
                    elapsed: sent.elapsed(),
                    attempt,
                });
            }
        };
        let response = match request.send().await {
            Ok(r) => r,
            Err(e) => {
                observe(None);
                let text = describe_transport_error(&e);
                return Err(if e.is_timeout() {
                    FhirError::Timeout(text)
                } else {
                    FhirError::Transport(text)
                });
            }
        };
        let status = response.status().as_u16();
        observe(Some(status));
        tracing::debug!(method = %method, path = url.path(), status, "fhir request");
        let header = |name: &str| {
            response
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        let etag = header("etag");
        let location = header("location");
        let retry_after = header("retry-after").and_then(|v| parse_retry_after(&v));
        let body = read_limited(response, self.settings.max_body_bytes)
            .await
            .map_err(FhirError::Transport)?;
        if (200..300).contains(&status) {
            return Ok(RawResponse {
                etag,
                location,
                body,
            });
        }
        let error = classify(
            status,
            &body,
            matches!(*method, Method::PUT | Method::POST),
            retry_after,
        );
        if matches!(error, FhirError::Unauthorized { .. }) {
            self.tokens.invalidate(&token).await;
        }
        // Epic asked to wait (Retry-After on 429/503) or said the day's allowance is spent:
        // no request of this connection goes before then.
        self.rate.hold(&error);
        Err(error)
    }
}

/// Bodies larger than this are parsed on a blocking thread: a 10 MiB page takes tens of
/// milliseconds to parse, time in which an async worker would run nothing else (lease
/// renewal, other connections' requests).
const PARSE_INLINE_MAX: usize = 256 << 10;

async fn parse_json(kind: RequestKind, body: Vec<u8>) -> Result<Value, FhirError> {
    let malformed =
        move |e: serde_json::Error| FhirError::Malformed(format!("{}: {e}", kind.as_str()));
    if body.len() <= PARSE_INLINE_MAX {
        return serde_json::from_slice(&body).map_err(malformed);
    }
    tokio::task::spawn_blocking(move || serde_json::from_slice(&body))
        .await
        .map_err(|e| FhirError::Malformed(format!("{}: parsing stopped: {e}", kind.as_str())))?
        .map_err(malformed)
}

/// `Type/id` for a request path. The id must match the FHIR id grammar and goes in as it is:
/// all its characters are unreserved, so nothing is percent-encoded.
pub(super) fn resource_path(resource_type: &str, id: &str) -> Result<String, FhirError> {
    check_fhir_id(id).map_err(FhirError::Refused)?;
    Ok(format!("{resource_type}/{id}"))
}
