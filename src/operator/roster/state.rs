//! What roster walks learned, per connection: the NPI -> id index that resolves practitioners
//! without an identifier search, the roles grouped by practitioner, the paging-session
//! lifetime learned from 4113s, the ledger of records this operator created, and whether the
//! instance searches by identifier. A practitioner's pass asks it one question (`answer`) and
//! tells it what it learned once (`learn`). Each entry belongs to one instance (base URL): a
//! read about another instance sees nothing learned and changes nothing; a write about another
//! instance (the connection was re-pointed) starts the entry afresh. Pure state behind short
//! locks: no I/O here.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::index::{Handover, RoleMap, RosterIndex};
use crate::fhir::FhirError;
use crate::operator::connection::cache::Key;
use crate::pipeline::Prefetched;

pub use super::question::{Answer, Known, Lesson, Question};

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

/// Every connection's walk state (what each object remembers, hand-overs included, is in
/// `operator::memory`).
#[derive(Default)]
pub struct Rosters {
    connections: Mutex<HashMap<Key, ConnectionRoster>>,
}

impl Rosters {
    /// Reads what was learned about this instance (nothing, for another one).
    fn read<T>(&self, key: &Key, base_url: &str, f: impl FnOnce(&ConnectionRoster) -> T) -> T {
        let all = self.connections.lock().unwrap_or_else(|p| p.into_inner());
        match all.get(key) {
            Some(c) if c.base_url == base_url => f(c),
            _ => f(&ConnectionRoster::default()),
        }
    }

    /// Changes what is known about this instance; an entry about another one starts afresh.
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
        self.read(key, base_url, |c| c.index.clone())
    }

    /// Where a practitioner of this connection stands, given the walk's hand-over for it.
    pub fn answer(
        &self,
        key: &Key,
        base_url: &str,
        q: &Question,
        handover: Option<Handover>,
    ) -> Answer {
        let all = self.connections.lock().unwrap_or_else(|p| p.into_inner());
        let own = all.get(key).filter(|c| c.base_url == base_url);
        let others: Vec<&ConnectionRoster> = all
            .iter()
            .filter(|(k, c)| *k != key && c.base_url == base_url)
            .map(|(_, c)| c)
            .collect();
        let elsewhere = known_elsewhere(own, &others, q.npi);
        own.unwrap_or(&ConnectionRoster::default())
            .answer(q, handover, elsewhere)
    }

    /// Whether the connection has no index yet (its first walk has not completed).
    pub fn awaiting_first_walk(&self, key: &Key, base_url: &str) -> bool {
        self.read(key, base_url, ConnectionRoster::awaiting_first_walk)
    }

    /// The record this operator created for the NPI, until a later walk indexed it.
    pub fn created_id(&self, key: &Key, base_url: &str, npi: &str) -> Option<String> {
        self.read(key, base_url, |c| {
            c.created.get(npi).map(|(id, _)| id.to_string())
        })
    }

    /// What one practitioner's pass learned about the connection.
    pub fn learn(&self, key: &Key, base_url: &str, lessons: &[Lesson]) {
        if lessons.is_empty() {
            return;
        }
        self.with(key, base_url, |c| {
            for lesson in lessons {
                match lesson {
                    Lesson::Created { npi, id } => {
                        c.created
                            .insert(npi.as_str().into(), (id.as_str().into(), Instant::now()));
                    }
                    Lesson::SearchRefused => c.search_refused = true,
                }
            }
        });
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
        self.read(key, base_url, |c| match (stated, c.learned_ttl) {
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
        self.read(key, base_url, |c| {
            !c.role_walk_refused && c.roles_walked.is_none_or(|t| t.elapsed() >= every)
        })
    }

    /// Roles from the last role walk, to carry into the next index.
    pub fn last_roles(&self, key: &Key, base_url: &str) -> Option<Arc<RoleMap>> {
        self.read(key, base_url, |c| c.index.as_ref().and_then(|i| i.roles()))
    }
}

impl ConnectionRoster {
    fn awaiting_first_walk(&self) -> bool {
        self.index.is_none() && self.first_walk_error.is_none()
    }

    /// The walk's hand-over first, then the ledger of records created on this instance (here,
    /// or `elsewhere`: through another connection to it, or found by another connection's
    /// newer walk), then the index.
    fn answer(
        &self,
        q: &Question,
        handover: Option<Handover>,
        elsewhere: Option<Prefetched>,
    ) -> Answer {
        let search = q.search_listed && !self.search_refused;
        if q.fresh {
            return Answer::Use {
                known: Known::default(),
                search,
            };
        }
        let woken = handover.is_some();
        // A hand-over waits in memory until a pass takes it: it is held to the same age.
        let known = handover
            .map_or_else(Known::default, |h| Known {
                prefetched: h.found.prefetched(),
                roles: h.roles,
                walk_started: h.walk_started,
            })
            .absence_checked(q, search);
        // A record this operator created and no later walk has indexed yet: read it by id,
        // even if a walk that started before the create says absent (a status write lost
        // after the POST must not lead to a second one).
        let created = self
            .created
            .get(q.npi)
            .map(|(id, _)| Prefetched::Id(id.to_string()));
        if !q.has_id
            && let Some(found) = created.or(elsewhere)
            && !matches!((&known.prefetched, &found), (Some(Prefetched::Record { id: r, .. }), Prefetched::Id(id)) if **r == *id)
        {
            let known = Known {
                prefetched: Some(found),
                walk_started: None,
                ..known
            };
            return Answer::Use { known, search };
        }
        if known.prefetched.is_some() {
            return Answer::Use { known, search };
        }
        if q.has_id {
            return self.known_record(q, known, woken, search);
        }
        match (&self.index, &self.first_walk_error) {
            (Some(index), _) => match index.lookup(q.npi) {
                Prefetched::NotFound | Prefetched::Incomplete(_) if search => Answer::Search(known),
                found => {
                    let roles = match &found {
                        Prefetched::Id(id) => index.roles_of(id),
                        _ => None,
                    };
                    let known = Known {
                        prefetched: Some(found),
                        roles: known.roles.or(roles),
                        walk_started: index.started(),
                    }
                    .absence_checked(q, search);
                    Answer::Use { known, search }
                }
            },
            (None, Some(_)) if search => Answer::Search(known),
            (None, Some(e)) => Answer::Failed(e.clone()),
            (None, None) => Answer::AwaitWalk,
        }
    }

    /// A practitioner with a known record that no walk handed anything: ambiguous when the
    /// last walk found its NPI on several records; covered when settled and walks keep coming
    /// (at start-up, the first walk wakes what changed while the operator was away); else read
    /// by id, with the record the last walk found the NPI on to read next should the known one
    /// be gone (merged or deleted in Epic): no search needed, which the instance may not have.
    /// When walks stop, the per-object read comes back as the safety net.
    fn known_record(&self, q: &Question, known: Known, woken: bool, search: bool) -> Answer {
        let indexed = self.index.as_ref().map(|i| (i.lookup(q.npi), i.started()));
        if let Some((Prefetched::Ambiguous(ids), started)) = indexed {
            let known = Known {
                prefetched: Some(Prefetched::Ambiguous(ids)),
                roles: None,
                walk_started: started,
            };
            return Answer::Use { known, search };
        }
        if q.settled && !woken {
            if self.awaiting_first_walk() {
                return Answer::AwaitWalk;
            }
            if self
                .walked_at
                .is_some_and(|t| t.elapsed() < q.covered_within)
            {
                return Answer::Covered;
            }
        }
        let known = match indexed {
            Some((found @ Prefetched::Id(_), started)) => Known {
                prefetched: Some(found),
                walk_started: known.walk_started.or(started),
                ..known
            },
            _ => known,
        };
        Answer::Use { known, search }
    }
}

/// What the other connections to the same instance know of the NPI that this one's walks may
/// not: a record created through one of them is created here too (its walks have not seen it
/// either), and once that connection's next walk indexed it (and its ledger let it go), that
/// newer walk knows it where this one's older walk says not found.
fn known_elsewhere(
    own: Option<&ConnectionRoster>,
    others: &[&ConnectionRoster],
    npi: &str,
) -> Option<Prefetched> {
    if others.is_empty() {
        return None;
    }
    let created = others.iter().find_map(|c| {
        c.created
            .get(npi)
            .map(|(id, _)| Prefetched::Id(id.to_string()))
    });
    let own_started = own.and_then(|c| c.index.as_ref()?.started());
    created.or_else(|| {
        others
            .iter()
            .filter_map(|c| c.index.as_ref())
            .filter(|i| i.started() > own_started)
            .max_by_key(|i| i.started())
            .map(|i| i.lookup(npi))
            .filter(|found| matches!(found, Prefetched::Id(_) | Prefetched::Ambiguous(_)))
    })
}

impl Known {
    /// Without a search, a walk's "not found" (the index's or a hand-over's) is the only proof
    /// of absence before a POST: one from a walk that started longer ago than a walk is due
    /// would miss a record created since, so it answers incomplete.
    fn absence_checked(mut self, q: &Question, search: bool) -> Known {
        let recent = self
            .walk_started
            .is_some_and(|t| t.elapsed() < q.covered_within);
        if !search && !recent && self.prefetched == Some(Prefetched::NotFound) {
            self.prefetched = Some(Prefetched::Incomplete(too_old_for_absence(q)));
        }
        self
    }
}

/// Why an old walk's "not found" proves nothing. Stable text (no age in it), so that a held
/// object's status is not rewritten by every pass.
fn too_old_for_absence(q: &Question) -> String {
    format!(
        "the last complete walk started more than {}s ago, when one is due, so a record created \
         in Epic since would not be on it; nothing is created until a later walk finds the NPI \
         absent",
        q.covered_within.as_secs()
    )
}

#[cfg(test)]
#[path = "state_tests.rs"]
mod tests;

#[cfg(test)]
#[path = "state_create_tests.rs"]
mod create_tests;
