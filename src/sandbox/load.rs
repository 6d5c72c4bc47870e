//! How the sandbox answers load, as production Epic instances do and the open sandbox does not
//! show: a per-day request allowance with a daily-limit answer, maintenance 503s carrying
//! `Retry-After` as an HTTP date, throttles carrying `Retry-After` in seconds, latency that
//! grows with load, and refusal of searches without parameters (Epic 4110).
//!
//! The settings are part of [`super::Settings`] (flattened: `dailyQuota`, `dayLengthSecs`, ...
//! in `/_sandbox/settings`); the counters live in [`LoadState`].

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

use super::lock;
use crate::fhir::EPIC_CODE_SYSTEM;

/// The load faults.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", default)]
pub struct LoadSettings {
    /// FHIR requests the client may send per day (0: no limit). Beyond it every FHIR request
    /// gets the daily-limit answer: 429, an OperationOutcome saying "Daily request limit
    /// reached", and `Retry-After` as the HTTP date the next day starts.
    pub daily_quota: u64,
    /// Length of the sandbox's "day" in seconds, for tests that compress a day (0: 86400).
    /// Days are counted from the Unix epoch, so they start at UTC midnight by default.
    pub day_length_secs: u64,
    /// The next N FHIR requests answer 503 with `Retry-After` as an HTTP date.
    pub unavailable_next: u32,
    /// Seconds from now the 503's `Retry-After` date names.
    pub unavailable_retry_after_secs: u64,
    /// The next N FHIR requests answer 429 with `Retry-After` in seconds.
    pub throttle_next: u32,
    /// The seconds those 429s name.
    pub throttle_retry_after_secs: u64,
    /// Latency that grows with load: each FHIR request adds this many milliseconds to the
    /// latency of the ones after it (since the settings were last set)...
    pub latency_ramp_ms_per_request: u64,
    /// ...up to this much.
    pub latency_ramp_max_ms: u64,
    /// A Practitioner or PractitionerRole search with no parameter but `_count` (a roster
    /// walk) answers 400 with Epic code 4110, as instances that need search criteria do.
    pub walk_needs_parameters: bool,
}

/// Counters behind the load faults.
#[derive(Default)]
pub struct LoadState {
    /// (day number, requests in it).
    day: Mutex<(u64, u64)>,
    /// Requests since the ramp was set, for the latency ramp.
    ramp_requests: AtomicU64,
    /// Answers given: daily limit, 503, throttle with Retry-After.
    pub daily_limited: AtomicU64,
    pub unavailable: AtomicU64,
    pub throttled_with_retry_after: AtomicU64,
    /// Searches with no parameter but `_count` (the first pages of roster walks).
    pub walks: AtomicU64,
    /// Remaining counts of the "next N" faults (set with the settings).
    unavailable_left: AtomicU64,
    throttle_left: AtomicU64,
}

impl LoadState {
    /// New settings arrived: the "next N" counts and the ramp start afresh.
    pub fn reset_for(&self, s: &LoadSettings) {
        self.unavailable_left
            .store(u64::from(s.unavailable_next), Ordering::Relaxed);
        self.throttle_left
            .store(u64::from(s.throttle_next), Ordering::Relaxed);
        self.ramp_requests.store(0, Ordering::Relaxed);
    }

    /// The latency ramp's share of this request's latency.
    pub fn ramp_latency(&self, s: &LoadSettings) -> Duration {
        if s.latency_ramp_ms_per_request == 0 {
            return Duration::ZERO;
        }
        let n = self.ramp_requests.fetch_add(1, Ordering::Relaxed);
        Duration::from_millis(
            n.saturating_mul(s.latency_ramp_ms_per_request)
                .min(s.latency_ramp_max_ms),
        )
    }

    /// The load answer this request gets instead of being served, if any.
    pub fn check(&self, s: &LoadSettings) -> Option<Response> {
        if take_one(&self.unavailable_left) {
            self.unavailable.fetch_add(1, Ordering::Relaxed);
            let at = SystemTime::now() + Duration::from_secs(s.unavailable_retry_after_secs);
            let mut r = outcome(
                StatusCode::SERVICE_UNAVAILABLE,
                "transient",
                "4100",
                "The server is temporarily unavailable for maintenance",
            );
            set_retry_after(&mut r, &httpdate::fmt_http_date(at));
            return Some(r);
        }
        if take_one(&self.throttle_left) {
            self.throttled_with_retry_after
                .fetch_add(1, Ordering::Relaxed);
            let mut r = outcome(
                StatusCode::TOO_MANY_REQUESTS,
                "throttled",
                "4100",
                "Too many requests",
            );
            set_retry_after(&mut r, &s.throttle_retry_after_secs.to_string());
            return Some(r);
        }
        if s.daily_quota > 0 {
            let day_len = if s.day_length_secs == 0 {
                86_400
            } else {
                s.day_length_secs
            };
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap_or_default()
                .as_secs();
            let today = now / day_len;
            let mut day = lock(&self.day);
            if day.0 != today {
                *day = (today, 0);
            }
            if day.1 >= s.daily_quota {
                drop(day);
                self.daily_limited.fetch_add(1, Ordering::Relaxed);
                let next = UNIX_EPOCH + Duration::from_secs(today.saturating_add(1) * day_len);
                let mut r = outcome(
                    StatusCode::TOO_MANY_REQUESTS,
                    "throttled",
                    "4100",
                    "Daily request limit reached for this client",
                );
                set_retry_after(&mut r, &httpdate::fmt_http_date(next));
                return Some(r);
            }
            day.1 += 1;
        }
        None
    }

    /// What `/_sandbox/stats` shows under `load`.
    pub fn snapshot(&self) -> serde_json::Value {
        let g = |c: &AtomicU64| c.load(Ordering::Relaxed);
        serde_json::json!({
            "usedToday": lock(&self.day).1,
            "dailyLimited": g(&self.daily_limited),
            "unavailable": g(&self.unavailable),
            "throttledWithRetryAfter": g(&self.throttled_with_retry_after),
            "walks": g(&self.walks),
        })
    }
}

impl LoadState {
    /// Counts a search without parameters (a roster walk) and refuses it with 4110 when the
    /// setting asks for it.
    pub fn search(&self, s: &LoadSettings, has_parameters: bool) -> Option<Response> {
        if !has_parameters {
            self.walks.fetch_add(1, Ordering::Relaxed);
        }
        refuse_walk(s, has_parameters)
    }
}

fn refuse_walk(s: &LoadSettings, has_parameters: bool) -> Option<Response> {
    (s.walk_needs_parameters && !has_parameters).then(|| {
        outcome(
            StatusCode::BAD_REQUEST,
            "required",
            "4110",
            "No parameters are provided in the search request",
        )
    })
}

/// An OperationOutcome answer with an Epic detail code (the shape `responses::outcome` sends;
/// kept here so the state this module is part of does not depend on the routes).
fn outcome(status: StatusCode, code: &str, epic_code: &str, diagnostics: &str) -> Response {
    let body = serde_json::json!({
        "resourceType": "OperationOutcome",
        "issue": [{
            "severity": "error",
            "code": code,
            "details": {
                "coding": [{"system": EPIC_CODE_SYSTEM, "code": epic_code, "display": diagnostics}],
                "text": diagnostics
            },
            "diagnostics": diagnostics
        }]
    });
    (
        status,
        [(header::CONTENT_TYPE, "application/fhir+json")],
        body.to_string(),
    )
        .into_response()
}

fn take_one(counter: &AtomicU64) -> bool {
    counter
        .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1))
        .is_ok()
}

fn set_retry_after(r: &mut Response, value: &str) {
    if let Ok(v) = HeaderValue::from_str(value) {
        r.headers_mut().insert(header::RETRY_AFTER, v);
    }
}
