//! Which practitioner changes start a reconcile: a new generation or new annotations, as
//! kube-runtime's `predicate_filter(generation.combine(annotations))` decides, with the same
//! one-hour memory, but remembered in 32 bytes an object (the object's uid as a number, the
//! hash and when it was seen) where kube-runtime keeps three strings (2.2 MB at 10,000,
//! measured in BENCHMARKS.md). Pure state: no I/O here.

use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::time::{Duration, Instant};

use kube::Resource;
use kube::runtime::{Predicate, predicates};

/// How long a hash is remembered: an object not seen for that long passes again (kube-runtime's
/// default).
const TTL: Duration = Duration::from_secs(3600);

/// The filter's memory.
pub struct Changes {
    /// By object: the hash of generation and annotations, and when it was seen (seconds since
    /// `started`).
    seen: HashMap<u128, (u64, u32)>,
    started: Instant,
    last_evicted: u32,
    /// When the watch began listing again (seconds since `started`), while it lists.
    relist_since: Option<u32>,
}

impl Default for Changes {
    fn default() -> Self {
        Changes {
            seen: HashMap::new(),
            started: Instant::now(),
            last_evicted: 0,
            relist_since: None,
        }
    }
}

/// An object's key: its uid (a UUID the API server gives every object), as a number; anything
/// else (an object made by hand) by a hash of namespace, name and uid.
fn key<K: Resource>(obj: &K) -> u128 {
    let meta = obj.meta();
    let uid = meta.uid.as_deref().unwrap_or_default();
    // Read in place: this runs for every watch event.
    let digits = uid.chars().filter(|c| *c != '-');
    let parsed = digits.clone().count() == 32 && digits.clone().all(|c| c.is_ascii_hexdigit());
    if parsed {
        return digits.fold(0u128, |n, c| {
            n << 4 | u128::from(c.to_digit(16).unwrap_or(0))
        });
    }
    let mut h = DefaultHasher::new();
    (&meta.namespace, &meta.name, uid).hash(&mut h);
    u128::from(h.finish())
}

impl Changes {
    /// Whether `obj` passes: first seen, changed, or not seen for an hour. An object whose
    /// predicate has no value always passes.
    pub fn passes<K: Resource>(&mut self, obj: &K) -> bool {
        self.passes_at(obj, self.started.elapsed())
    }

    fn passes_at<K: Resource>(&mut self, obj: &K, now: Duration) -> bool {
        let now = u32::try_from(now.as_secs()).unwrap_or(u32::MAX);
        let ttl = TTL.as_secs() as u32;
        if now.saturating_sub(self.last_evicted) >= ttl {
            self.seen.retain(|_, (_, at)| now.saturating_sub(*at) < ttl);
            self.seen.shrink_to_fit();
            self.last_evicted = now;
        }
        let Some(hash) = predicates::generation
            .combine(predicates::annotations)
            .hash_property(obj)
        else {
            return true;
        };
        match self.seen.insert(key(obj), (hash, now)) {
            Some((old, at)) => old != hash || now.saturating_sub(at) >= ttl,
            None => true,
        }
    }

    /// The object was deleted: its hash goes now, not an hour later.
    pub fn forget<K: Resource>(&mut self, obj: &K) {
        self.seen.remove(&key(obj));
    }

    /// The watch lists again (after a restart or an expired resource version).
    pub fn relist_started(&mut self) {
        self.relist_started_at(self.started.elapsed());
    }

    fn relist_started_at(&mut self, now: Duration) {
        self.relist_since = Some(u32::try_from(now.as_secs()).unwrap_or(u32::MAX));
    }

    /// The relist is complete: an object it did not list was deleted while the watch was down
    /// (no Delete event comes for it), and its hash goes now. Every listed object passed
    /// through [`Changes::passes`] during the relist, which dated it.
    pub fn relist_done(&mut self) {
        if let Some(since) = self.relist_since.take() {
            self.seen.retain(|_, (_, at)| *at >= since);
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.seen.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::EpicPractitioner;

    fn practitioner(uid: &str, generation: i64) -> EpicPractitioner {
        let spec = serde_json::from_value(
            serde_json::json!({"connectionRef": {"name": "epic"}, "npi": "1234567893"}),
        )
        .unwrap();
        let mut p = EpicPractitioner::new("a", spec);
        p.metadata.namespace = Some("ns".into());
        p.metadata.uid = Some(uid.into());
        p.metadata.generation = Some(generation);
        p
    }

    #[test]
    fn a_change_of_generation_or_annotations_passes_a_status_change_does_not() {
        let mut c = Changes::default();
        let uid = "6f1c2a4e-0b7d-4c1e-9a55-3d2f8e7b9c10";
        let at = Duration::from_secs(10);
        let p = practitioner(uid, 1);
        assert!(c.passes_at(&p, at), "first seen");
        let mut status_only = p.clone();
        status_only.status = Some(Default::default());
        assert!(!c.passes_at(&status_only, at));
        assert!(c.passes_at(&practitioner(uid, 2), at), "a new generation");
        let mut annotated = practitioner(uid, 2);
        annotated.metadata.annotations =
            Some([("epic-operator.dev/check-now".to_string(), "1".to_string())].into());
        assert!(c.passes_at(&annotated, at), "new annotations");
        assert!(!c.passes_at(&annotated, at));
        // Another object (another uid, or one made by hand) is remembered apart.
        assert!(c.passes_at(&practitioner("6f1c2a4e-0b7d-4c1e-9a55-3d2f8e7b9c11", 2), at));
        assert!(c.passes_at(&practitioner("u1", 2), at));
        assert!(!c.passes_at(&practitioner("u1", 2), at));
        assert_eq!(c.len(), 3);
        // Not seen for an hour: passes again, and the others are forgotten.
        let later = at + TTL;
        assert!(c.passes_at(&annotated, later));
        assert_eq!(c.len(), 1);
        // A deleted object leaves at once; made again under the same uid, it passes.
        c.forget(&annotated);
        assert_eq!(c.len(), 0);
        assert!(c.passes_at(&annotated, later));
    }

    #[test]
    fn a_relist_forgets_what_it_did_not_list() {
        let mut c = Changes::default();
        let (kept, gone) = (practitioner("k", 1), practitioner("g", 1));
        let at = Duration::from_secs(10);
        assert!(c.passes_at(&kept, at) && c.passes_at(&gone, at));
        // The watch restarts; the relist lists only `kept` (unchanged: it does not pass).
        let later = at + Duration::from_secs(30);
        c.relist_started_at(later);
        assert!(!c.passes_at(&kept, later));
        c.relist_done();
        assert_eq!(
            c.len(),
            1,
            "the object deleted while the watch was down is forgotten"
        );
        assert!(
            !c.passes_at(&kept, later),
            "the listed one is still remembered"
        );
        assert!(c.passes_at(&gone, later), "made again, it passes");
    }
}
