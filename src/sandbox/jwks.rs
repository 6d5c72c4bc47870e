//! Client keys fetched from a registered JWK Set URL, cached the way Epic caches them.
//!
//! Epic no longer takes uploaded keys from Backend Services apps: it fetches the app's JWK Set
//! URL, keeps the set as long as the response's `Cache-Control` allows (and never longer than
//! its own limit), and refetches when an assertion names an unknown `kid`, but not more often
//! than some cooldown. A client that signs with a key it published after the last fetch is
//! therefore refused until the cache moves on; the operator's rotation (publish ahead, fall
//! back to the previous key) exists for exactly that, and this module lets tests meet it.
//!
//! The sandbox fetches loopback URLs only: it is a development server, and a registration that
//! pointed it elsewhere would make it a request forwarder into whatever network it runs in.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use jsonwebtoken::jwk::Jwk;
use serde_json::{Value, json};

use super::jwk_set::{check_loopback_url, parse_public_jwks};
use super::lock;
use super::stats::Stats;

/// A JWK Set fetch gives up after this long: a token request waits for it, and a client's
/// token timeout is usually not much longer.
const FETCH_TIMEOUT: Duration = Duration::from_secs(5);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// JWK Sets are a few kilobytes; a larger answer is not one, and must not fill memory.
const BODY_LIMIT: usize = 64 * 1024;
/// How long a response may be cached, from its `Cache-Control`.
#[derive(Debug, PartialEq, Eq)]
enum Freshness {
    /// `no-store` or `no-cache`: use this response once. (A cache may keep a `no-cache`
    /// response if it revalidates every use; the sandbox does not revalidate, so it refetches.)
    NoStore,
    /// `max-age=N` seconds.
    MaxAge(u64),
    /// No directive: the sandbox's cap.
    Unspecified,
}

fn freshness(headers: &reqwest::header::HeaderMap) -> Freshness {
    let mut found = Freshness::Unspecified;
    for value in headers.get_all(reqwest::header::CACHE_CONTROL) {
        let Ok(text) = value.to_str() else { continue };
        for directive in text.split(',') {
            let directive = directive.trim().to_ascii_lowercase();
            if directive == "no-store" || directive == "no-cache" {
                return Freshness::NoStore;
            }
            if let Some(n) = directive.strip_prefix("max-age=") {
                // An unreadable max-age makes the response stale (RFC 9111 §4.2.1).
                found = Freshness::MaxAge(n.trim_matches('"').parse().unwrap_or(0));
            }
        }
    }
    found
}

impl Freshness {
    /// How long to keep the set, never longer than `cap`; None: not at all.
    fn ttl(&self, cap: Duration) -> Option<Duration> {
        let ttl = match self {
            Freshness::NoStore => return None,
            Freshness::MaxAge(n) => Duration::from_secs(*n).min(cap),
            Freshness::Unspecified => cap,
        };
        (!ttl.is_zero()).then_some(ttl)
    }
}

/// The cache limits in force (run-time settings).
#[derive(Clone, Copy, Debug)]
pub(crate) struct CachePolicy {
    /// Longest time a fetched set is kept, whatever its max-age says.
    pub max_age: Duration,
    /// Shortest time a fetched set is kept, whatever its max-age says (an authorization
    /// server that caches longer than it is told: what key rotation must survive).
    pub min_age: Duration,
    /// Shortest time between two fetches triggered by an unknown kid.
    pub refetch_cooldown: Duration,
}

/// Settings are plain numbers anyone can PUT; beyond ten years nothing differs, and the clamp
/// keeps time arithmetic far from overflow.
const MAX_SETTING_SECS: u64 = 10 * 365 * 24 * 3600;

impl CachePolicy {
    /// Keeps every fetched set at least `secs`, max-age and no-store notwithstanding.
    pub fn at_least(self, secs: u64) -> Self {
        Self {
            min_age: Duration::from_secs(secs.min(MAX_SETTING_SECS)),
            ..self
        }
    }

    pub fn from_secs(max_age: u64, refetch_cooldown: u64) -> Self {
        Self {
            max_age: Duration::from_secs(max_age.min(MAX_SETTING_SECS)),
            min_age: Duration::ZERO,
            refetch_cooldown: Duration::from_secs(refetch_cooldown.min(MAX_SETTING_SECS)),
        }
    }
}

/// A moment, for arithmetic and for messages.
#[derive(Clone, Copy, Debug)]
struct At {
    instant: Instant,
    wall: DateTime<Utc>,
}

impl At {
    fn now() -> Self {
        Self {
            instant: Instant::now(),
            wall: Utc::now(),
        }
    }

    /// `d` later. Durations come from [`CachePolicy`] (clamped) or a capped max-age, so the
    /// sums cannot overflow; were one to, the moment would stay put rather than panic.
    fn plus(&self, d: Duration) -> Self {
        Self {
            instant: self.instant.checked_add(d).unwrap_or(self.instant),
            wall: chrono::Duration::from_std(d)
                .ok()
                .and_then(|d| self.wall.checked_add_signed(d))
                .unwrap_or(self.wall),
        }
    }

    fn rfc3339(&self) -> String {
        self.wall
            .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
    }
}

#[derive(Default)]
struct Cached {
    keys: Vec<Jwk>,
    /// When the held set was fetched.
    fetched: Option<At>,
    /// The held set may be used until then; None: it may not be used (never fetched,
    /// `no-store`).
    until: Option<At>,
    /// The last fetch attempt, successful or not: the refetch cooldown counts from it.
    last_attempt: Option<At>,
    fetches: u64,
}

enum Decision {
    Use(Box<Jwk>),
    Refuse(String),
    Fetch,
}

impl Cached {
    fn fresh(&self, now: Instant) -> bool {
        self.until.is_some_and(|u| now < u.instant)
    }

    fn find(&self, kid: &str) -> Option<&Jwk> {
        self.keys
            .iter()
            .find(|k| k.common.key_id.as_deref() == Some(kid))
    }

    fn kids(&self) -> Vec<String> {
        self.keys
            .iter()
            .filter_map(|k| k.common.key_id.clone())
            .collect()
    }

    fn decide(&self, kid: &str, policy: CachePolicy) -> Decision {
        let now = Instant::now();
        if !self.fresh(now) {
            return Decision::Fetch;
        }
        if let Some(k) = self.find(kid) {
            return Decision::Use(Box::new(k.clone()));
        }
        match self.last_attempt {
            Some(last) if now < last.plus(policy.refetch_cooldown).instant => {
                Decision::Refuse(self.unknown_kid(kid, policy))
            }
            _ => Decision::Fetch,
        }
    }

    /// The refusal of an unknown kid, saying when the held set was fetched and when the next
    /// refetch may happen (what a client needs to understand a lagging cache).
    fn unknown_kid(&self, kid: &str, policy: CachePolicy) -> String {
        let fetched = self
            .fetched
            .map(|f| f.rfc3339())
            .unwrap_or_else(|| "never".into());
        let next = self
            .last_attempt
            .map(|a| a.plus(policy.refetch_cooldown).rfc3339())
            .unwrap_or_else(|| "now".into());
        format!(
            "unknown kid {kid:?} for this client: not in its JWK Set (kids {:?}; JWK Set fetched at {fetched}, next refetch allowed after {next})",
            self.kids()
        )
    }
}

/// The fetched keys of one client's JWK Set URL.
pub(crate) struct JwksCache {
    url: String,
    cached: Mutex<Cached>,
    /// Serialises fetches, so concurrent requests with the same unknown kid cause one fetch.
    /// A tokio mutex: it is held across the fetch (the std mutex above never is).
    fetching: tokio::sync::Mutex<()>,
}

impl JwksCache {
    pub fn new(url: &str) -> Self {
        Self {
            url: url.to_string(),
            cached: Mutex::new(Cached::default()),
            fetching: tokio::sync::Mutex::new(()),
        }
    }

    /// The key named `kid`, from the cache or a fetch. Err: a description for an
    /// `invalid_client` refusal.
    pub async fn key(&self, kid: &str, policy: CachePolicy, stats: &Stats) -> Result<Jwk, String> {
        if let Some(done) = self.decide(kid, policy, stats) {
            return done;
        }
        let _fetching = self.fetching.lock().await;
        // Another request may have fetched while this one waited.
        if let Some(done) = self.decide(kid, policy, stats) {
            return done;
        }
        let attempt = At::now();
        {
            let mut c = lock(&self.cached);
            c.last_attempt = Some(attempt);
            c.fetches += 1;
        }
        Stats::bump(&stats.jwks_fetches);
        let (keys, freshness) = match fetch(&self.url).await {
            Ok(fetched) => fetched,
            Err(e) => {
                Stats::bump(&stats.jwks_fetch_failed);
                return Err(format!("cannot use the JWK Set URL {}: {e}", self.url));
            }
        };
        let fetched = At::now();
        let mut c = lock(&self.cached);
        c.keys = keys;
        c.fetched = Some(fetched);
        c.until = freshness
            .ttl(policy.max_age)
            .map(|t| t.max(policy.min_age))
            .or((!policy.min_age.is_zero()).then_some(policy.min_age))
            .map(|t| fetched.plus(t));
        match c.find(kid) {
            Some(k) => Ok(k.clone()),
            None => {
                Stats::bump(&stats.jwks_unknown_kid);
                Err(c.unknown_kid(kid, policy))
            }
        }
    }

    /// Some(answer) when the cache settles the request, None when a fetch is needed.
    fn decide(&self, kid: &str, policy: CachePolicy, stats: &Stats) -> Option<Result<Jwk, String>> {
        match lock(&self.cached).decide(kid, policy) {
            Decision::Use(k) => Some(Ok(*k)),
            Decision::Refuse(why) => {
                Stats::bump(&stats.jwks_unknown_kid);
                Some(Err(why))
            }
            Decision::Fetch => None,
        }
    }

    /// What the cache holds, for `GET /_sandbox/clients` (kids, never key material).
    pub fn snapshot(&self) -> Value {
        let c = lock(&self.cached);
        let fresh = c.fresh(Instant::now());
        let mut v = json!({
            "cachedKids": if fresh { c.kids() } else { Vec::new() },
            "fetches": c.fetches,
        });
        if let (true, Some(until)) = (fresh, c.until) {
            v["cachedUntil"] = json!(until.rfc3339());
        }
        if let Some(f) = c.fetched {
            v["fetchedAt"] = json!(f.rfc3339());
        }
        v
    }
}

/// The HTTP client for JWK Set fetches: short timeouts, no redirects (a redirect could lead
/// off loopback), no proxy (a proxy is not loopback), and `localhost` pinned to loopback
/// addresses whatever the resolver says.
fn http() -> Result<&'static reqwest::Client, String> {
    static CLIENT: OnceLock<Result<reqwest::Client, String>> = OnceLock::new();
    CLIENT
        .get_or_init(|| {
            // reqwest is built without a default TLS provider (see crate::http::client).
            let _ = rustls::crypto::ring::default_provider().install_default();
            reqwest::Client::builder()
                .connect_timeout(CONNECT_TIMEOUT)
                .timeout(FETCH_TIMEOUT)
                .redirect(reqwest::redirect::Policy::none())
                .no_proxy()
                .resolve_to_addrs(
                    "localhost",
                    &[
                        SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 0),
                        SocketAddr::new(IpAddr::V6(Ipv6Addr::LOCALHOST), 0),
                    ],
                )
                .user_agent(concat!("epic-operator-sandbox/", env!("CARGO_PKG_VERSION")))
                .build()
                .map_err(|e| format!("cannot build the HTTP client: {e}"))
        })
        .as_ref()
        .map_err(Clone::clone)
}

/// Fetches and checks a JWK Set.
async fn fetch(url: &str) -> Result<(Vec<Jwk>, Freshness), String> {
    // Registration checked this already; checked again because nothing else stands between a
    // registered string and a request.
    check_loopback_url(url)?;
    let response = http()?
        .get(url)
        .header(reqwest::header::ACCEPT, "application/json")
        .send()
        .await
        .map_err(|e| crate::http::describe_transport_error(&e))?;
    let status = response.status();
    if !status.is_success() {
        let redirect = if status.is_redirection() {
            " (redirects are not followed)"
        } else {
            ""
        };
        return Err(format!("it answered HTTP {status}{redirect}"));
    }
    let freshness = freshness(response.headers());
    let body = crate::http::read_limited(response, BODY_LIMIT).await?;
    let doc: Value = serde_json::from_slice(&body)
        .map_err(|e| format!("the response is not JSON ({e}), so not a JWK Set"))?;
    Ok((parse_public_jwks(&doc)?, freshness))
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::{CACHE_CONTROL, HeaderMap, HeaderValue};

    fn headers(values: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append(CACHE_CONTROL, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn cache_control_sets_the_lifetime_within_the_cap() {
        let cap = Duration::from_secs(300);
        let ttl = |v: &[&str]| freshness(&headers(v)).ttl(cap);
        assert_eq!(ttl(&["public, max-age=60"]), Some(Duration::from_secs(60)));
        assert_eq!(ttl(&["max-age=86400"]), Some(cap), "capped");
        assert_eq!(ttl(&[]), Some(cap), "no directive: the cap");
        assert_eq!(ttl(&["public"]), Some(cap));
        assert_eq!(ttl(&["no-store"]), None);
        assert_eq!(ttl(&["max-age=60", "No-Cache"]), None);
        assert_eq!(ttl(&["max-age=0"]), None);
        assert_eq!(ttl(&["max-age=soon"]), None, "unreadable: stale");
        assert_eq!(ttl(&["max-age=\"30\""]), Some(Duration::from_secs(30)));
        assert_eq!(
            freshness(&headers(&["max-age=60"])).ttl(Duration::ZERO),
            None,
            "a zero cap disables caching"
        );
    }
}
