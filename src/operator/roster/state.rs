//! What roster walks learned, per connection: the NPI -> id index that resolves practitioners
//! without an identifier search, the roles grouped by practitioner, the paging-session
//! lifetime learned from 4113s, and the page copies handed from a walk to the reconciles it
//! wakes. Pure state behind short locks: no I/O here.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::index::{RoleMap, RosterIndex};
use crate::crd::RoleSummary;
use crate::fhir::FhirError;
use crate::operator::connection::cache::Key;
use crate::pipeline::Prefetched;

/// Paging-session lifetime assumed until a connection states one (`pagingSessionTTL`) or a
/// 4113 teaches a shorter one. Epic's is instance-specific and undocumented.
pub const DEFAULT_PAGING_TTL: Duration = Duration::from_secs(300);

/// One connection's walk state.
#[derive(Debug, Default)]
struct ConnectionRoster {
    /// The base URL the index belongs to: ids never travel between instances.
    base_url: String,
    index: Option<Arc<RosterIndex>>,
    /// The first walk failed and no index exists: what reconciles report meanwhile.
    first_walk_error: Option<FhirError>,
    /// The shortest paging-session lifetime seen (a 4113 after this long).
    learned_ttl: Option<Duration>,
    /// Identifier search answered 400 (or is not listed): resolve from the index only.
    search_refused: bool,
    /// PractitionerRole cannot be walked without a parameter: roles come from a search per
    /// practitioner when it is resolved.
    role_walk_refused: bool,
    /// When roles were last walked.
    roles_walked: Option<Instant>,
    /// When the last walk completed.
    walked_at: Option<Instant>,
    /// Records this operator created since the walk that started before them, by NPI: they
    /// resolve practitioners at once (a lost status write after a POST must not lead to a
    /// second POST) until a walk that started after the create has indexed them.
    created: HashMap<Box<str>, (Box<str>, Instant)>,
}

/// Where an unresolved practitioner stands.
pub enum IndexAnswer {
    /// Resolve from this (no search); the walk it came from started at the instant given.
    Prefetched(Prefetched, Option<Vec<RoleSummary>>, Option<Instant>),
    /// Not in the last walk, and searching is allowed: search (a record created since).
    Search,
    /// The first walk has not finished: it wakes the practitioner when it does.
    AwaitWalk,
    /// The first walk failed and searching is not possible.
    Failed(FhirError),
}

/// Every connection's walk state (what each object remembers, hand-overs included, is in
/// `operator::memory`).
#[derive(Default)]
pub struct Rosters {
    connections: Mutex<HashMap<Key, ConnectionRoster>>,
}

impl Rosters {
    fn with<T>(&self, key: &Key, base_url: &str, f: impl FnOnce(&mut ConnectionRoster) -> T) -> T {
        let mut all = self.connections.lock().unwrap_or_else(|p| p.into_inner());
        let entry = all.entry(key.clone()).or_default();
        if entry.base_url != base_url {
            // A new connection or a new instance behind it: nothing learned carries over.
            *entry = ConnectionRoster {
                base_url: base_url.to_string(),
                ..ConnectionRoster::default()
            };
        }
        f(entry)
    }

    /// Forgets a deleted connection.
    pub fn forget(&self, key: &Key) {
        self.connections
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(key);
    }

    pub fn index(&self, key: &Key, base_url: &str) -> Option<Arc<RosterIndex>> {
        self.with(key, base_url, |c| c.index.clone())
    }

    /// How an unresolved practitioner of this connection is resolved.
    pub fn resolve(
        &self,
        key: &Key,
        base_url: &str,
        npi: &str,
        search_listed: bool,
    ) -> IndexAnswer {
        self.with(key, base_url, |c| {
            let searchable = search_listed && !c.search_refused;
            if let Some((id, _)) = c.created.get(npi) {
                let roles = c.index.as_ref().and_then(|i| i.roles_of(id));
                return IndexAnswer::Prefetched(Prefetched::Id(id.to_string()), roles, None);
            }
            match (&c.index, &c.first_walk_error) {
                (Some(index), _) => match index.lookup(npi) {
                    Prefetched::NotFound | Prefetched::Incomplete(_) if searchable => {
                        IndexAnswer::Search
                    }
                    found => {
                        let roles = match &found {
                            Prefetched::Id(id) => index.roles_of(id),
                            _ => None,
                        };
                        IndexAnswer::Prefetched(found, roles, index.started())
                    }
                },
                (None, Some(_)) if searchable => IndexAnswer::Search,
                (None, Some(e)) => IndexAnswer::Failed(e.clone()),
                (None, None) => IndexAnswer::AwaitWalk,
            }
        })
    }

    /// Whether a walk completed less than `within` ago: then a practitioner it did not wake
    /// has nothing new in Epic.
    pub fn walked_within(&self, key: &Key, base_url: &str, within: Duration) -> bool {
        self.with(key, base_url, |c| {
            c.walked_at.is_some_and(|t| t.elapsed() < within)
        })
    }

    /// Whether the connection has no index yet (its first walk has not completed).
    pub fn awaiting_first_walk(&self, key: &Key, base_url: &str) -> bool {
        self.with(key, base_url, |c| {
            c.index.is_none() && c.first_walk_error.is_none()
        })
    }

    /// Whether practitioners of this connection can be resolved by identifier search.
    pub fn searchable(&self, key: &Key, base_url: &str, search_listed: bool) -> bool {
        self.with(key, base_url, |c| search_listed && !c.search_refused)
    }

    /// The record this operator created for the NPI, until a later walk indexed it.
    pub fn created_id(&self, key: &Key, base_url: &str, npi: &str) -> Option<String> {
        self.with(key, base_url, |c| {
            c.created.get(npi).map(|(id, _)| id.to_string())
        })
    }

    /// A POST created `id` for the NPI: practitioners resolve to it from now on.
    pub fn record_created(&self, key: &Key, base_url: &str, npi: &str, id: &str) {
        self.with(key, base_url, |c| {
            c.created.insert(npi.into(), (id.into(), Instant::now()));
        });
    }

    /// Identifier search answered 400 for this connection: resolve from walks only.
    pub fn refuse_search(&self, key: &Key, base_url: &str) {
        self.with(key, base_url, |c| c.search_refused = true);
    }

    /// A walk completed; `roles_walked` when it also walked PractitionerRole.
    pub fn walked(&self, key: &Key, base_url: &str, index: RosterIndex, roles_walked: bool) {
        self.with(key, base_url, |c| {
            // Creates from before this walk started are on its pages (or gone since).
            if let Some(started) = index.started() {
                c.created.retain(|_, (_, at)| *at >= started);
            }
            c.index = Some(Arc::new(index));
            c.walked_at = Some(Instant::now());
            c.first_walk_error = None;
            if roles_walked {
                c.roles_walked = Some(Instant::now());
            }
        });
    }

    /// A walk failed; before the first success, reconciles report it.
    pub fn walk_failed(&self, key: &Key, base_url: &str, error: &FhirError) {
        self.with(key, base_url, |c| {
            if c.index.is_none() {
                c.first_walk_error = Some(error.clone());
            }
        });
    }

    /// A 4113 came this long after the session's first page.
    pub fn paging_expired_after(&self, key: &Key, base_url: &str, lasted: Duration) {
        self.with(key, base_url, |c| {
            c.learned_ttl = Some(c.learned_ttl.map_or(lasted, |t| t.min(lasted)));
        });
    }

    /// The paging-session lifetime to plan walks by: the stated one, else the shortest one
    /// learned, else [`DEFAULT_PAGING_TTL`].
    pub fn paging_ttl(&self, key: &Key, base_url: &str, stated: Option<Duration>) -> Duration {
        self.with(key, base_url, |c| match (stated, c.learned_ttl) {
            (Some(s), Some(l)) => s.min(l),
            (Some(s), None) => s,
            (None, Some(l)) => l,
            (None, None) => DEFAULT_PAGING_TTL,
        })
    }

    pub fn refuse_role_walk(&self, key: &Key, base_url: &str) {
        self.with(key, base_url, |c| c.role_walk_refused = true);
    }

    /// Whether the next walk also walks PractitionerRole: on the first walk, then once every
    /// `every`, unless the instance refused a parameterless role search.
    pub fn roles_due(&self, key: &Key, base_url: &str, every: Duration) -> bool {
        self.with(key, base_url, |c| {
            !c.role_walk_refused && c.roles_walked.is_none_or(|t| t.elapsed() >= every)
        })
    }

    /// Roles from the last role walk, to carry into the next index.
    pub fn last_roles(&self, key: &Key, base_url: &str) -> Option<Arc<RoleMap>> {
        self.with(key, base_url, |c| c.index.as_ref().and_then(|i| i.roles()))
    }
}

#[cfg(test)]
#[path = "state_tests.rs"]
mod tests;
