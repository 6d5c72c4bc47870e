//! Which EpicPractitioners belong to which connection, by NPI: an index the practitioner watch
//! keeps up to date, so that a walk, a duplicate check, a wake-up or a count never scans the
//! whole watch cache. Pure state behind one short lock: no I/O here.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::{Arc, Mutex};

use kube::ResourceExt;
use kube::runtime::reflector::ObjectRef;

use super::slim::{CachedPractitioner, PractitionerRef};
use crate::operator::connection::cache::Key;

/// An object's reference.
pub type Member = PractitionerRef;

/// A name (of an object, a namespace or a connection), stored once and shared by the maps and
/// lists that hold it.
type Name = Arc<str>;

/// What is known of one object. About 300 bytes an object in all (the references the index
/// once held, two full `ObjectRef`s in lists grown four at a time, were 890: measured in
/// BENCHMARKS.md).
#[derive(Debug, Clone)]
struct Entry {
    /// The connection's name (its namespace is the object's).
    connection: Name,
    npi: Box<str>,
    uid: Box<str>,
    deleting: bool,
}

/// A connection's practitioners: the names declaring each NPI, and every name in order (the
/// safety sweep goes through them a few at a time).
#[derive(Default)]
struct Connection {
    name: Name,
    by_npi: HashMap<Box<str>, Vec<Name>>,
    names: BTreeSet<Name>,
}

impl Connection {
    fn len(&self) -> usize {
        self.names.len()
    }
}

#[derive(Default)]
struct Index {
    /// Namespace, then object name.
    entries: HashMap<Name, HashMap<Name, Entry>>,
    /// Per connection, the objects declaring each NPI.
    by_connection: HashMap<Key, Connection>,
    /// During a relist: the objects listed so far (namespace, name).
    relisting: Option<HashSet<(Name, Name)>>,
}

impl Index {
    fn entry(&self, namespace: &str, name: &str) -> Option<&Entry> {
        self.entries.get(namespace)?.get(name)
    }

    fn remove(&mut self, namespace: &str, name: &str) -> Option<Entry> {
        let in_namespace = self.entries.get_mut(namespace)?;
        let old = in_namespace.remove(name)?;
        if in_namespace.is_empty() {
            self.entries.remove(namespace);
        }
        let key = (namespace.to_string(), old.connection.to_string());
        if let Some(conn) = self.by_connection.get_mut(&key) {
            conn.names.remove(name);
            if let Some(list) = conn.by_npi.get_mut(&old.npi) {
                list.retain(|n| &**n != name);
                if list.is_empty() {
                    conn.by_npi.remove(&old.npi);
                }
            }
            if conn.by_npi.is_empty() {
                self.by_connection.remove(&key);
            }
        }
        Some(old)
    }

    /// The shared copy of a namespace's name.
    fn namespace(&mut self, namespace: &str) -> Name {
        match self.entries.get_key_value(namespace) {
            Some((n, _)) => n.clone(),
            None => {
                let n: Name = namespace.into();
                self.entries.insert(n.clone(), HashMap::new());
                n
            }
        }
    }
}

fn member(namespace: &str, name: &str) -> Member {
    ObjectRef::new(name).within(namespace)
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
    pub fn applied(&self, p: &CachedPractitioner) {
        let namespace = p.namespace().unwrap_or_default();
        let name = p.name_any();
        let mut index = self.lock();
        index.remove(&namespace, &name);
        let ns = index.namespace(&namespace);
        let name: Name = name.into();
        let npi: Box<str> = p.spec.npi.clone();
        let conn = index
            .by_connection
            .entry((namespace, p.spec.connection_ref.name.clone()))
            .or_insert_with_key(|key| Connection {
                name: key.1.as_str().into(),
                ..Connection::default()
            });
        let connection = conn.name.clone();
        conn.names.insert(name.clone());
        match conn.by_npi.get_mut(&npi) {
            Some(list) => list.push(name.clone()),
            None => {
                conn.by_npi.insert(npi.clone(), vec![name.clone()]);
            }
        }
        let entry = Entry {
            connection,
            npi,
            uid: p.uid().unwrap_or_default().into(),
            deleting: p.metadata.deletion_timestamp.is_some(),
        };
        if let Some(seen) = index.relisting.as_mut() {
            seen.insert((ns.clone(), name.clone()));
        }
        if let Some(in_namespace) = index.entries.get_mut(&ns) {
            in_namespace.insert(name, entry);
        }
    }

    /// The watch saw the object deleted.
    pub fn deleted(&self, p: &CachedPractitioner) {
        self.lock()
            .remove(&p.namespace().unwrap_or_default(), &p.name_any());
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
        let gone: Vec<(Name, Name)> = index
            .entries
            .iter()
            .flat_map(|(ns, names)| names.keys().map(move |n| (ns.clone(), n.clone())))
            .filter(|k| !seen.contains(k))
            .collect();
        drop(seen);
        for (ns, name) in &gone {
            index.remove(ns, name);
        }
        gone.iter().map(|(ns, name)| member(ns, name)).collect()
    }

    /// Whether the object is known (listed or seen since).
    pub fn contains(&self, m: &Member) -> bool {
        self.lock()
            .entry(m.namespace.as_deref().unwrap_or_default(), &m.name)
            .is_some()
    }

    /// Practitioners of a connection.
    pub fn count(&self, connection: &Key) -> u64 {
        self.lock()
            .by_connection
            .get(connection)
            .map_or(0, |c| c.len() as u64)
    }

    /// Every practitioner of a connection.
    pub fn of_connection(&self, connection: &Key) -> Vec<Member> {
        self.lock()
            .by_connection
            .get(connection)
            .map(|c| {
                c.by_npi
                    .values()
                    .flatten()
                    .map(|n| member(&connection.0, n))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Up to `limit` practitioners of a connection, in name order, after `cursor` (from the
    /// first without one).
    pub fn after(&self, connection: &Key, cursor: Option<&str>, limit: usize) -> Vec<Member> {
        use std::ops::Bound;
        let index = self.lock();
        let Some(c) = index.by_connection.get(connection) else {
            return Vec::new();
        };
        let from = cursor.map_or(Bound::Unbounded, Bound::Excluded);
        c.names
            .range::<str, _>((from, Bound::Unbounded))
            .take(limit)
            .map(|n| member(&connection.0, n))
            .collect()
    }

    /// A connection's practitioners by NPI, as a walk matches its pages against them.
    /// The names are the index's own, shared (all in the connection's namespace).
    pub fn by_npi(&self, connection: &Key) -> HashMap<Box<str>, Vec<Arc<str>>> {
        self.lock()
            .by_connection
            .get(connection)
            .map(|c| c.by_npi.clone())
            .unwrap_or_default()
    }

    /// The name of another live object (not `uid`, not being deleted) that declares `npi` on
    /// the same connection.
    pub fn other_with_npi(&self, connection: &Key, npi: &str, uid: &str) -> Option<String> {
        let index = self.lock();
        index
            .by_connection
            .get(connection)?
            .by_npi
            .get(npi)?
            .iter()
            .find(|n| {
                index
                    .entry(&connection.0, n)
                    .is_some_and(|e| &*e.uid != uid && !e.deleting)
            })
            .map(|n| n.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::{EpicPractitioner, EpicPractitionerSpec};

    fn practitioner(name: &str, uid: &str, connection: &str, npi: &str) -> CachedPractitioner {
        let spec: EpicPractitionerSpec = serde_json::from_value(
            serde_json::json!({"connectionRef": {"name": connection}, "npi": npi}),
        )
        .unwrap();
        let mut p = EpicPractitioner::new(name, spec);
        p.metadata.namespace = Some("ns".into());
        p.metadata.uid = Some(uid.into());
        p.into()
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
    fn members_are_gone_through_in_name_order() {
        let m = Members::default();
        let epic = ("ns".to_string(), "epic".to_string());
        for (name, uid, npi) in [("c", "u3", "1"), ("a", "u1", "2"), ("b", "u2", "1")] {
            m.applied(&practitioner(name, uid, "epic", npi));
        }
        m.applied(&practitioner("z", "u9", "other", "1"));
        let names = |v: Vec<Member>| v.into_iter().map(|r| r.name).collect::<Vec<_>>();
        assert_eq!(names(m.after(&epic, None, 2)), ["a", "b"]);
        assert_eq!(names(m.after(&epic, Some("b"), 2)), ["c"]);
        // A cursor whose object was deleted meanwhile still finds the next name.
        m.deleted(&practitioner("b", "u2", "epic", "1"));
        assert_eq!(names(m.after(&epic, Some("b"), 5)), ["c"]);
        assert_eq!(names(m.after(&epic, Some("c"), 5)), Vec::<String>::new());
        // Moved to another connection: gone from this one's order.
        m.applied(&practitioner("a", "u1", "other", "2"));
        assert_eq!(names(m.after(&epic, None, 5)), ["c"]);
        assert_eq!(m.count(&epic), 1);
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
