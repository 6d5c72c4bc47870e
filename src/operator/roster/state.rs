//! What roster walks learned, per connection: the NPI -> id index that resolves practitioners
//! without an identifier search, the roles grouped by practitioner, the paging-session
//! lifetime learned from 4113s, and the page copies handed from a walk to the reconciles it
//! wakes. Pure state behind short locks: no I/O here.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::crd::RoleSummary;
use crate::fhir::FhirError;
use crate::operator::connection::cache::Key;
use crate::pipeline::Prefetched;

/// Roles by practitioner id, from one PractitionerRole walk.
pub type RoleMap = HashMap<Box<str>, Vec<RoleSummary>>;

/// Paging-session lifetime assumed until a connection states one (`pagingSessionTTL`) or a
/// 4113 teaches a shorter one. Epic's is instance-specific and undocumented.
pub const DEFAULT_PAGING_TTL: Duration = Duration::from_secs(300);

/// Ids kept for one NPI: enough to name the duplicates in status.
pub const MAX_IDS_PER_NPI: usize = 16;

/// The NPIs of one complete walk. Ids are kept per NPI, so an NPI on two records stays
/// ambiguous instead of resolving to whichever page came last.
#[derive(Debug, Default)]
pub struct RosterIndex {
    npis: HashMap<Box<str>, Ids>,
    /// Roles by practitioner id, when a PractitionerRole walk completed.
    roles: Option<Arc<RoleMap>>,
    records: usize,
    /// Why the walk was incomplete (Epic hid records), when it was.
    incomplete: Option<String>,
    /// When the walk's paging session started: a record created before then is on its pages.
    started: Option<Instant>,
}

#[derive(Debug)]
enum Ids {
    One(Box<str>),
    Many(Vec<Box<str>>),
}

impl RosterIndex {
    /// Adds one record under each NPI it carries (a record seen twice, as after a restarted
    /// walk, counts once).
    pub fn add(&mut self, id: &str, npis: &[String]) {
        self.records += 1;
        for npi in npis {
            match self.npis.get_mut(npi.as_str()) {
                None => {
                    self.npis.insert(npi.as_str().into(), Ids::One(id.into()));
                }
                Some(Ids::One(first)) if &**first != id => {
                    let first = std::mem::replace(first, "".into());
                    self.npis
                        .insert(npi.as_str().into(), Ids::Many(vec![first, id.into()]));
                }
                // Beyond a few ids the NPI is ambiguous all the same: a hostile roster
                // putting one NPI on every record costs no more memory or time than that.
                Some(Ids::Many(ids))
                    if ids.len() < MAX_IDS_PER_NPI && !ids.iter().any(|i| &**i == id) =>
                {
                    ids.push(id.into())
                }
                Some(_) => {}
            }
        }
    }

    pub fn set_roles(&mut self, roles: Option<Arc<RoleMap>>) {
        self.roles = roles;
    }

    /// The roles of the walk, shared with the next index when roles are not walked again.
    pub fn roles(&self) -> Option<Arc<RoleMap>> {
        self.roles.clone()
    }

    /// The walk met suppression or error entries: Epic hid records from this client.
    pub fn set_incomplete(&mut self, why: String) {
        self.incomplete = Some(why);
    }

    pub fn set_started(&mut self, at: Instant) {
        self.started = Some(at);
    }

    /// When the walk's paging session started.
    pub fn started(&self) -> Option<Instant> {
        self.started
    }

    /// What the walk says about an NPI. An NPI the walk did not see is NotFound only when no
    /// page said records were hidden.
    pub fn lookup(&self, npi: &str) -> Prefetched {
        match self.npis.get(npi) {
            None => match &self.incomplete {
                Some(why) => Prefetched::Incomplete(why.clone()),
                None => Prefetched::NotFound,
            },
            Some(Ids::One(id)) => Prefetched::Id(id.to_string()),
            Some(Ids::Many(ids)) => {
                Prefetched::Ambiguous(ids.iter().map(|i| i.to_string()).collect())
            }
        }
    }

    /// The roles of a practitioner, when roles were walked (none listed: an empty list).
    pub fn roles_of(&self, id: &str) -> Option<Vec<RoleSummary>> {
        self.roles
            .as_ref()
            .map(|r| r.get(id).cloned().unwrap_or_default())
    }

    /// Records added (a record met twice, as in a restarted walk, counts twice).
    pub fn records(&self) -> usize {
        self.records
    }
}

/// What a walk hands to the reconcile it wakes.
#[derive(Clone, Debug)]
pub struct Handover {
    pub found: Finding,
    /// Roles from the PractitionerRole walk, when it ran.
    pub roles: Option<Vec<RoleSummary>>,
    /// What the finding is about: taken only by that object, for that NPI, on that instance.
    pub about: HandoverFor,
    /// When the walk that made it started.
    pub walk_started: Option<Instant>,
}

/// The object, NPI and instance a hand-over was made for. An object deleted and created again
/// under the same name (another uid, perhaps another NPI), or moved to another connection,
/// never receives a finding made for what it was before.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HandoverFor {
    pub uid: String,
    pub npi: String,
    pub base_url: String,
}

/// The walk's finding for one NPI. A page copy is kept as compact JSON text, a third of the
/// size of a parsed value, because thousands wait at once during a first walk.
#[derive(Clone, Debug)]
pub enum Finding {
    Record {
        id: String,
        /// Shared by every object the record wakes: one copy however many carry its NPIs.
        json: Arc<str>,
    },
    Ambiguous(Vec<String>),
    Absent,
    /// Not seen, but the walk was incomplete (Epic hid records): never NotFound.
    Incomplete(String),
    /// Only the roles changed: the record is read as usual.
    RolesOnly,
}

impl Finding {
    pub fn record(id: &str, body: &Value) -> Self {
        Finding::Record {
            id: id.to_string(),
            json: Arc::from(body.to_string()),
        }
    }

    /// As the pipeline takes it; `None` for [`Finding::RolesOnly`] (or an unreadable copy,
    /// which cannot happen for text this module wrote).
    pub fn prefetched(self) -> Option<Prefetched> {
        match self {
            Finding::Record { id, json } => serde_json::from_str(&json)
                .ok()
                .map(|body| Prefetched::Record { id, body }),
            Finding::Ambiguous(ids) => Some(Prefetched::Ambiguous(ids)),
            Finding::Absent => Some(Prefetched::NotFound),
            Finding::Incomplete(why) => Some(Prefetched::Incomplete(why)),
            Finding::RolesOnly => None,
        }
    }
}

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
mod tests {
    use super::*;

    fn npis(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn an_npi_missing_from_an_incomplete_walk_is_never_not_found() {
        let mut index = RosterIndex::default();
        index.add("a-1", &npis(&["1234567893"]));
        index.set_incomplete("Some results are not shown to this client".into());
        assert_eq!(index.lookup("1234567893"), Prefetched::Id("a-1".into()));
        assert_eq!(
            index.lookup("1003000126"),
            Prefetched::Incomplete("Some results are not shown to this client".into())
        );
        assert_eq!(
            Finding::Incomplete("why".into()).prefetched(),
            Some(Prefetched::Incomplete("why".into()))
        );
    }

    #[test]
    fn an_npi_on_two_records_stays_ambiguous_and_a_repeat_counts_once() {
        let mut index = RosterIndex::default();
        index.add("a-1", &npis(&["1234567893"]));
        index.add("b.2", &npis(&["1234567893", "1245319599"]));
        index.add("a-1", &npis(&["1234567893"]));
        assert_eq!(
            index.lookup("1234567893"),
            Prefetched::Ambiguous(vec!["a-1".into(), "b.2".into()])
        );
        assert_eq!(index.lookup("1245319599"), Prefetched::Id("b.2".into()));
        assert_eq!(index.lookup("1003000126"), Prefetched::NotFound);
        assert_eq!(index.roles_of("b.2"), None, "no role walk yet");
    }

    #[test]
    fn resolution_waits_for_the_first_walk_and_searches_only_for_what_it_lacks() {
        let rosters = Rosters::default();
        let key: Key = ("ns".into(), "epic".into());
        let base = "https://epic.example/api/FHIR/R4";
        assert!(matches!(
            rosters.resolve(&key, base, "1234567893", true),
            IndexAnswer::AwaitWalk
        ));
        let mut index = RosterIndex::default();
        index.add("a-1", &npis(&["1234567893"]));
        index.set_roles(Some(Arc::new(HashMap::new())));
        rosters.walked(&key, base, index, true);
        match rosters.resolve(&key, base, "1234567893", false) {
            IndexAnswer::Prefetched(Prefetched::Id(id), Some(roles), _) => {
                assert_eq!(id, "a-1");
                assert!(roles.is_empty());
            }
            _ => panic!("the index resolves a walked NPI"),
        }
        assert!(matches!(
            rosters.resolve(&key, base, "1245319599", true),
            IndexAnswer::Search
        ));
        assert!(matches!(
            rosters.resolve(&key, base, "1245319599", false),
            IndexAnswer::Prefetched(Prefetched::NotFound, None, _)
        ));
        rosters.refuse_search(&key, base);
        assert!(matches!(
            rosters.resolve(&key, base, "1245319599", true),
            IndexAnswer::Prefetched(Prefetched::NotFound, None, _)
        ));
        // Another instance behind the same connection starts from nothing.
        assert!(matches!(
            rosters.resolve(&key, "https://other.example/R4", "1234567893", true),
            IndexAnswer::AwaitWalk
        ));
    }

    #[test]
    fn a_4113_shortens_the_paging_ttl_and_a_stated_one_caps_it() {
        let rosters = Rosters::default();
        let key: Key = ("ns".into(), "epic".into());
        let base = "https://epic.example/api/FHIR/R4";
        assert_eq!(rosters.paging_ttl(&key, base, None), DEFAULT_PAGING_TTL);
        rosters.paging_expired_after(&key, base, Duration::from_secs(90));
        rosters.paging_expired_after(&key, base, Duration::from_secs(120));
        assert_eq!(
            rosters.paging_ttl(&key, base, None),
            Duration::from_secs(90)
        );
        assert_eq!(
            rosters.paging_ttl(&key, base, Some(Duration::from_secs(60))),
            Duration::from_secs(60)
        );
    }

    #[test]
    fn a_created_record_resolves_at_once_until_a_later_walk_indexes_it() {
        let rosters = Rosters::default();
        let key = ("ns".to_string(), "epic".to_string());
        let base = "https://tst.example.org";
        let mut before = RosterIndex::default();
        before.set_started(Instant::now());
        rosters.walked(&key, base, before, false);
        rosters.record_created(&key, base, "1234567893", "new-1");
        // Even where the last walk says absent and search is impossible.
        assert!(matches!(
            rosters.resolve(&key, base, "1234567893", false),
            IndexAnswer::Prefetched(Prefetched::Id(id), _, _) if id == "new-1"
        ));
        assert_eq!(
            rosters.created_id(&key, base, "1234567893").as_deref(),
            Some("new-1")
        );
        // A walk that started before the create keeps the ledger entry; a later one drops it.
        let mut old = RosterIndex::default();
        old.set_started(Instant::now() - Duration::from_secs(60));
        rosters.walked(&key, base, old, false);
        assert!(rosters.created_id(&key, base, "1234567893").is_some());
        let mut later = RosterIndex::default();
        later.add("new-1", &npis(&["1234567893"]));
        later.set_started(Instant::now());
        rosters.walked(&key, base, later, false);
        assert!(rosters.created_id(&key, base, "1234567893").is_none());
        // Another instance behind the connection does not see it.
        assert!(
            rosters
                .created_id(&key, "https://prd.example.org", "1234567893")
                .is_none()
        );
    }
}
