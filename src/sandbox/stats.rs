//! Request counters by kind (for tests and benchmarks), and requests per wall-clock second.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use serde_json::{Value, json};

use super::lock;

/// Request counters by kind, and requests per second for load analysis.
#[derive(Default)]
pub struct Stats {
    pub token: AtomicU64,
    pub token_rejected: AtomicU64,
    pub metadata: AtomicU64,
    pub read: AtomicU64,
    pub search: AtomicU64,
    pub page: AtomicU64,
    pub update: AtomicU64,
    /// PUTs answered 412 because If-Match named an older version.
    pub conflicts: AtomicU64,
    pub create: AtomicU64,
    pub refused: AtomicU64,
    pub patch: AtomicU64,
    pub throttled: AtomicU64,
    pub server_errors: AtomicU64,
    pub unauthorized: AtomicU64,
    /// `next` links answered 4113 (the paging session had expired).
    pub paging_expired: AtomicU64,
    /// Practitioner searches by identifier (also counted in `search`).
    pub identifier_search: AtomicU64,
    /// JWK Set URL fetches attempted (successful or not), for clients registered with one.
    pub jwks_fetches: AtomicU64,
    /// JWK Set URL fetches that failed (unreachable, non-2xx, not a public JWK Set).
    pub jwks_fetch_failed: AtomicU64,
    /// Assertions refused because their kid was not in the client's fetched JWK Set (while
    /// the cache held a set that lacked it, or after a refetch that still lacked it).
    pub jwks_unknown_kid: AtomicU64,
    per_second: Mutex<VecDeque<(u64, u64)>>,
}

const PER_SECOND_WINDOW: usize = 3600;

impl Stats {
    pub fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts one FHIR request in its wall-clock second.
    pub fn tick(&self) {
        let second = chrono::Utc::now().timestamp() as u64;
        let mut window = lock(&self.per_second);
        match window.back_mut() {
            Some((s, n)) if *s == second => *n += 1,
            _ => {
                window.push_back((second, 1));
                if window.len() > PER_SECOND_WINDOW {
                    window.pop_front();
                }
            }
        }
    }

    pub fn snapshot(&self) -> Value {
        let g = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let per_second: Vec<Value> = lock(&self.per_second)
            .iter()
            .map(|(s, n)| json!([s, n]))
            .collect();
        json!({
            "token": g(&self.token),
            "tokenRejected": g(&self.token_rejected),
            "metadata": g(&self.metadata),
            "read": g(&self.read),
            "search": g(&self.search),
            "page": g(&self.page),
            "update": g(&self.update),
            "conflicts": g(&self.conflicts),
            "create": g(&self.create),
            "refused": g(&self.refused),
            "patch": g(&self.patch),
            "throttled": g(&self.throttled),
            "serverErrors": g(&self.server_errors),
            "unauthorized": g(&self.unauthorized),
            "pagingExpired": g(&self.paging_expired),
            "identifierSearch": g(&self.identifier_search),
            "jwksFetches": g(&self.jwks_fetches),
            "jwksFetchFailed": g(&self.jwks_fetch_failed),
            "jwksUnknownKid": g(&self.jwks_unknown_kid),
            "fhirTotal": g(&self.metadata) + g(&self.read) + g(&self.search) + g(&self.page)
                + g(&self.update) + g(&self.create) + g(&self.refused) + g(&self.patch)
                + g(&self.paging_expired),
            "perSecond": per_second,
        })
    }

    pub fn reset(&self) {
        for c in [
            &self.token,
            &self.token_rejected,
            &self.metadata,
            &self.read,
            &self.search,
            &self.page,
            &self.update,
            &self.conflicts,
            &self.create,
            &self.refused,
            &self.patch,
            &self.throttled,
            &self.server_errors,
            &self.unauthorized,
            &self.paging_expired,
            &self.identifier_search,
            &self.jwks_fetches,
            &self.jwks_fetch_failed,
            &self.jwks_unknown_kid,
        ] {
            c.store(0, Ordering::Relaxed);
        }
        lock(&self.per_second).clear();
    }
}
