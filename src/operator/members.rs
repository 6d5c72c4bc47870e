//! Which EpicPractitioners belong to which connection, by NPI: an index the practitioner watch
//! keeps up to date, so that a walk, a duplicate check, a wake-up or a count never scans the
//! whole watch cache. Pure state behind one short lock: no I/O here.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;

use kube::ResourceExt;
use kube::runtime::reflector::ObjectRef;

use crate::crd::EpicPractitioner;
use crate::operator::connection::cache::Key;

/// An object's reference.
pub type Member = ObjectRef<EpicPractitioner>;

#[derive(Debug, Clone)]
struct Entry {
    connection: Key,
    npi: Box<str>,
    uid: Box<str>,
    deleting: bool,
}

#[derive(Default)]
struct Index {
    entries: HashMap<Member, Entry>,
    /// Per connection, the objects declaring each NPI.
    by_connection: HashMap<Key, HashMap<Box<str>, Vec<Member>>>,
    /// During a relist: the objects listed so far.
    relisting: Option<HashSet<Member>>,
}

impl Index {
    fn remove(&mut self, member: &Member) -> Option<Entry> {
        let old = self.entries.remove(member)?;
        if let Some(npis) = self.by_connection.get_mut(&old.connection) {
            if let Some(list) = npis.get_mut(&old.npi) {
                list.retain(|m| m != member);
                if list.is_empty() {
                    npis.remove(&old.npi);
                }
            }
            if npis.is_empty() {
                self.by_connection.remove(&old.connection);
            }
        }
        Some(old)
    }
}

/// The reference an object is indexed under: namespace and name (the resource version and uid
/// a full reference carries would be two more strings per object, twice).
fn member_of(p: &EpicPractitioner) -> Member {
    ObjectRef::new(&p.name_any()).within(&p.namespace().unwrap_or_default())
}

/// The members index.
#[derive(Default)]
pub struct Members {
    index: Mutex<Index>,
}

impl Members {
    fn lock(&self) -> std::sync::MutexGuard<'_, Index> {
        self.index.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The watch saw the object (created, changed, or listed).
    pub fn applied(&self, p: &EpicPractitioner) {
        let member = member_of(p);
        let entry = Entry {
            connection: (
                p.namespace().unwrap_or_default(),
                p.spec.connection_ref.name.clone(),
            ),
            npi: p.spec.npi.as_str().into(),
            uid: p.uid().unwrap_or_default().into(),
            deleting: p.metadata.deletion_timestamp.is_some(),
        };
        let mut index = self.lock();
        if let Some(seen) = index.relisting.as_mut() {
            seen.insert(member.clone());
        }
        index.remove(&member);
        index
            .by_connection
            .entry(entry.connection.clone())
            .or_default()
            .entry(entry.npi.clone())
            .or_default()
            .push(member.clone());
        index.entries.insert(member, entry);
    }

    /// The watch saw the object deleted.
    pub fn deleted(&self, p: &EpicPractitioner) {
        self.lock().remove(&member_of(p));
    }

    /// A relist starts: objects it does not list were deleted meanwhile.
    pub fn relist_started(&self) {
        self.lock().relisting = Some(HashSet::new());
    }

    /// The relist is complete: drops and returns the objects it did not list.
    pub fn relist_done(&self) -> Vec<Member> {
        let mut index = self.lock();
        let Some(seen) = index.relisting.take() else {
            return Vec::new();
        };
        let gone: Vec<Member> = index
            .entries
            .keys()
            .filter(|m| !seen.contains(*m))
            .cloned()
            .collect();
        for m in &gone {
            index.remove(m);
        }
        gone
    }

    /// Whether the object is known (listed or seen since).
    pub fn contains(&self, member: &Member) -> bool {
        self.lock().entries.contains_key(member)
    }

    /// Practitioners of a connection.
    pub fn count(&self, connection: &Key) -> u64 {
        self.lock()
            .by_connection
            .get(connection)
            .map_or(0, |npis| npis.values().map(Vec::len).sum::<usize>() as u64)
    }

    /// Every practitioner of a connection.
    pub fn of_connection(&self, connection: &Key) -> Vec<Member> {
        self.lock()
            .by_connection
            .get(connection)
            .map(|npis| npis.values().flatten().cloned().collect())
            .unwrap_or_default()
    }

    /// A connection's practitioners by NPI, as a walk matches its pages against them.
    pub fn by_npi(&self, connection: &Key) -> HashMap<Box<str>, Vec<Member>> {
        self.lock()
            .by_connection
            .get(connection)
            .cloned()
            .unwrap_or_default()
    }

    /// The name of another live object (not `uid`, not being deleted) that declares `npi` on
    /// the same connection.
    pub fn other_with_npi(&self, connection: &Key, npi: &str, uid: &str) -> Option<String> {
        let index = self.lock();
        index
            .by_connection
            .get(connection)?
            .get(npi)?
            .iter()
            .find(|m| {
                index
                    .entries
                    .get(*m)
                    .is_some_and(|e| &*e.uid != uid && !e.deleting)
            })
            .map(|m| m.name.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::EpicPractitionerSpec;

    fn practitioner(name: &str, uid: &str, connection: &str, npi: &str) -> EpicPractitioner {
        let spec: EpicPractitionerSpec = serde_json::from_value(
            serde_json::json!({"connectionRef": {"name": connection}, "npi": npi}),
        )
        .unwrap();
        let mut p = EpicPractitioner::new(name, spec);
        p.metadata.namespace = Some("ns".into());
        p.metadata.uid = Some(uid.into());
        p
    }

    #[test]
    fn members_follow_the_watch() {
        let m = Members::default();
        let epic = ("ns".to_string(), "epic".to_string());
        let other = ("ns".to_string(), "other".to_string());
        let a = practitioner("a", "u1", "epic", "1234567893");
        m.applied(&a);
        m.applied(&practitioner("b", "u2", "epic", "1245319599"));
        m.applied(&practitioner("c", "u3", "other", "1234567893"));
        assert_eq!(m.count(&epic), 2);
        assert_eq!(m.count(&other), 1);
        assert_eq!(m.by_npi(&epic).len(), 2);
        // A second object with the same NPI on the same connection is a duplicate; one on
        // another connection is not.
        assert_eq!(m.other_with_npi(&epic, "1234567893", "u1"), None);
        m.applied(&practitioner("d", "u4", "epic", "1234567893"));
        assert_eq!(
            m.other_with_npi(&epic, "1234567893", "u1").as_deref(),
            Some("d")
        );
        // An object being deleted does not count.
        let mut d = practitioner("d", "u4", "epic", "1234567893");
        d.metadata.deletion_timestamp = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
            k8s_openapi::jiff::Timestamp::UNIX_EPOCH,
        ));
        m.applied(&d);
        assert_eq!(m.other_with_npi(&epic, "1234567893", "u1"), None);
        // Moved to another connection: counted there only.
        m.applied(&practitioner("a", "u1", "other", "1234567893"));
        assert_eq!(m.count(&epic), 2);
        assert_eq!(m.count(&other), 2);
        m.deleted(&a);
        assert_eq!(m.count(&other), 1);
        assert!(!m.contains(&ObjectRef::from_obj(&a)));
    }

    #[test]
    fn a_relist_drops_what_it_did_not_list() {
        let m = Members::default();
        let epic = ("ns".to_string(), "epic".to_string());
        m.applied(&practitioner("a", "u1", "epic", "1234567893"));
        m.applied(&practitioner("b", "u2", "epic", "1245319599"));
        m.relist_started();
        m.applied(&practitioner("b", "u2", "epic", "1245319599"));
        let gone = m.relist_done();
        assert_eq!(gone.len(), 1);
        assert_eq!(gone[0].name, "a");
        assert_eq!(m.of_connection(&epic).len(), 1);
    }
}
