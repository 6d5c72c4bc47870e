//! What the operator remembers per EpicPractitioner between reconciles: failures in a row, when
//! Epic last refused its write, the roster walk's hand-over and an unanswered create attempt.
//! One entry per object, keyed by its reference and bound to its uid (an object deleted and
//! created again under the same name starts afresh), dropped when the watch sees the object
//! go. Pure state behind one short lock: no I/O here.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use kube::runtime::reflector::ObjectRef;

use crate::crd::{CreateAttempt, EpicPractitioner};
use crate::operator::roster::index::{Handover, HandoverFor};

/// The reference an entry is kept under (namespace and name; the uid is in the entry).
pub type ObjectKey = ObjectRef<EpicPractitioner>;

/// What is remembered of one object. Kept small (large parts boxed) and only while it holds
/// something: an object that is fine and waits for nothing has no entry.
#[derive(Debug, Default)]
struct ObjectMemory {
    uid: Box<str>,
    failures: u32,
    /// Epic refused a write for this object then. Status records it too, but the watch cache
    /// can lag behind the operator's own status write; this cannot.
    refused_at: Option<Instant>,
    /// What the last roster walk found for it, waiting for its reconcile.
    handover: Option<Box<Handover>>,
    /// A create attempt whose answer was lost, and since when this process knows of it: its
    /// own POST, or the first status it read showing one. Measured on this process's clock,
    /// so another replica's clock never matters.
    attempt: Option<Box<(Instant, CreateAttempt)>>,
}

impl ObjectMemory {
    fn holds_nothing(&self) -> bool {
        self.failures == 0
            && self.refused_at.is_none()
            && self.handover.is_none()
            && self.attempt.is_none()
    }
}

/// A map never shrinks by itself: after a first walk had handed over to every object, its
/// table kept room for all of them (2.5 MB at 10,000) while it held a few.
fn shrink_when_sparse(all: &mut HashMap<ObjectKey, ObjectMemory>) {
    if all.capacity() > 64 && all.len() * 4 < all.capacity() {
        all.shrink_to_fit();
    }
}

/// Every object's memory.
#[derive(Default)]
pub struct Memory {
    objects: Mutex<HashMap<ObjectKey, ObjectMemory>>,
}

impl Memory {
    /// Runs `f` on the entry of `object` with `uid`; an entry of an earlier object under the
    /// same name is replaced first, and an entry left holding nothing is dropped.
    fn with<T>(&self, object: &ObjectKey, uid: &str, f: impl FnOnce(&mut ObjectMemory) -> T) -> T {
        let mut all = self.objects.lock().unwrap_or_else(|p| p.into_inner());
        // Keyed by namespace and name only: the resource version and uid of the reference
        // would be two more strings per object.
        let key = ObjectRef::new(&object.name).within(object.namespace.as_deref().unwrap_or(""));
        let entry = all.entry(key.clone()).or_default();
        if &*entry.uid != uid {
            *entry = ObjectMemory {
                uid: uid.into(),
                ..ObjectMemory::default()
            };
        }
        let out = f(entry);
        if entry.holds_nothing() {
            all.remove(&key);
            shrink_when_sparse(&mut all);
        }
        out
    }

    /// Reads the entry of `object` with `uid`, if there is one.
    fn read<T>(
        &self,
        object: &ObjectKey,
        uid: &str,
        f: impl FnOnce(&ObjectMemory) -> T,
    ) -> Option<T> {
        let all = self.objects.lock().unwrap_or_else(|p| p.into_inner());
        all.get(object).filter(|m| &*m.uid == uid).map(f)
    }

    /// Counts a failure and returns how many came before it in a row.
    pub fn count_failure(&self, object: &ObjectKey, uid: &str) -> u32 {
        self.with(object, uid, |m| {
            let before = m.failures;
            m.failures = m.failures.saturating_add(1);
            before
        })
    }

    pub fn forget_failures(&self, object: &ObjectKey, uid: &str) {
        if self.read(object, uid, |m| m.failures > 0) == Some(true) {
            self.with(object, uid, |m| m.failures = 0);
        }
    }

    /// Epic refused a write for the object now.
    pub fn note_refused(&self, object: &ObjectKey, uid: &str) {
        self.with(object, uid, |m| m.refused_at = Some(Instant::now()));
    }

    /// Whether Epic refused a write for the object less than `window` ago.
    pub fn refused_within(&self, object: &ObjectKey, uid: &str, window: Duration) -> bool {
        self.read(object, uid, |m| {
            m.refused_at.is_some_and(|t| t.elapsed() < window)
        })
        .unwrap_or(false)
    }

    /// Leaves a walk's finding for the object it was made for (`about.uid`).
    pub fn hand_over(&self, object: &ObjectKey, handover: Handover) {
        let uid = handover.about.uid.clone();
        self.with(object, &uid, |m| m.handover = Some(Box::new(handover)));
    }

    /// The hand-over waiting for the object, when it was made for what the object is now (a
    /// stale one is dropped).
    pub fn take_handover(&self, object: &ObjectKey, now: &HandoverFor) -> Option<Handover> {
        if self.read(object, &now.uid, |m| m.handover.is_some()) != Some(true) {
            // Nothing waiting (or only a hand-over for an earlier object under this name,
            // which the entry below drops).
            self.with(object, &now.uid, |_| ());
            return None;
        }
        let taken = *self.with(object, &now.uid, |m| m.handover.take())?;
        if taken.about == *now {
            Some(taken)
        } else {
            tracing::info!(npi = %now.npi, "a roster finding made for another object, NPI or instance is dropped");
            None
        }
    }

    /// The object's unanswered create attempt and since when this process knows of it: from
    /// memory first (the watch cache can lag behind the status write that recorded it), else
    /// from status, whose first sight counts as now.
    pub fn standing_attempt(
        &self,
        object: &ObjectKey,
        uid: &str,
        in_status: Option<&CreateAttempt>,
    ) -> Option<(Instant, CreateAttempt)> {
        if in_status.is_none() {
            return self
                .read(object, uid, |m| m.attempt.as_deref().cloned())
                .flatten();
        }
        self.with(object, uid, |m| {
            if m.attempt.is_none() {
                m.attempt = in_status.map(|a| Box::new((Instant::now(), a.clone())));
            }
            m.attempt.as_deref().cloned()
        })
    }

    /// A POST for the object is about to be sent.
    pub fn note_attempt(&self, object: &ObjectKey, uid: &str, attempt: CreateAttempt) {
        self.with(object, uid, |m| {
            m.attempt = Some(Box::new((Instant::now(), attempt)))
        });
    }

    /// The object's record is known, or Epic answered its POST: nothing is left unknown.
    pub fn clear_attempt(&self, object: &ObjectKey, uid: &str) {
        if self.read(object, uid, |m| m.attempt.is_some()) == Some(true) {
            self.with(object, uid, |m| m.attempt = None);
        }
    }

    /// The object is gone: everything remembered of it goes too.
    pub fn forget(&self, object: &ObjectKey) {
        self.objects
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(object);
    }

    /// Keeps only the objects `exists` names (after a relist, which may have missed deletes).
    pub fn retain(&self, exists: impl Fn(&ObjectKey) -> bool) {
        self.objects
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|k, _| exists(k));
    }

    /// Objects remembered.
    pub fn len(&self) -> usize {
        self.objects.lock().unwrap_or_else(|p| p.into_inner()).len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::operator::roster::index::Finding;
    use crate::pipeline::Prefetched;

    fn key(name: &str) -> ObjectKey {
        ObjectRef::new(name).within("ns")
    }

    fn about(uid: &str) -> HandoverFor {
        HandoverFor {
            uid: uid.into(),
            npi: "1234567893".into(),
            base_url: "https://tst.example.org".into(),
        }
    }

    #[test]
    fn a_page_copy_survives_the_hand_over_once() {
        let body = serde_json::json!({"resourceType": "Practitioner", "id": "a-1", "active": true});
        let memory = Memory::default();
        memory.hand_over(
            &key("npi-1"),
            Handover {
                found: Finding::record("a-1", &body),
                roles: None,
                about: about("u1"),
                walk_started: None,
            },
        );
        let h = memory.take_handover(&key("npi-1"), &about("u1")).unwrap();
        assert_eq!(
            h.found.prefetched(),
            Some(Prefetched::Record {
                id: "a-1".into(),
                body
            })
        );
        assert!(memory.take_handover(&key("npi-1"), &about("u1")).is_none());
    }

    #[test]
    fn a_hand_over_is_taken_only_by_what_it_was_made_for() {
        let memory = Memory::default();
        for other in [
            about("u2"),
            HandoverFor {
                npi: "1245319599".into(),
                ..about("u1")
            },
            HandoverFor {
                base_url: "https://prd.example.org".into(),
                ..about("u1")
            },
        ] {
            memory.hand_over(
                &key("alice"),
                Handover {
                    found: Finding::Absent,
                    roles: None,
                    about: about("u1"),
                    walk_started: None,
                },
            );
            assert!(
                memory.take_handover(&key("alice"), &other).is_none(),
                "{other:?}"
            );
            assert!(
                memory.take_handover(&key("alice"), &about("u1")).is_none(),
                "the stale one is dropped"
            );
        }
    }

    #[test]
    fn an_unanswered_attempt_is_dated_by_this_process_and_outlives_a_stale_status() {
        let memory = Memory::default();
        let attempt = CreateAttempt {
            npi: "1234567893".into(),
            connection: "https://tst.example.org".into(),
            sent_at: "2026-12-01T00:00:00Z".into(),
        };
        let a = key("a");
        assert!(memory.standing_attempt(&a, "u1", None).is_none());
        let (first, _) = memory.standing_attempt(&a, "u1", Some(&attempt)).unwrap();
        // A cached object from before the status write shows none: memory still knows.
        assert_eq!(
            memory.standing_attempt(&a, "u1", None).map(|a| a.0),
            Some(first)
        );
        memory.clear_attempt(&a, "u1");
        assert!(memory.standing_attempt(&a, "u1", None).is_none());
        // Another object under the same name (a new uid) knows nothing of the old one's.
        memory.note_attempt(&a, "u1", attempt);
        assert!(memory.standing_attempt(&a, "u2", None).is_none());
    }

    #[test]
    fn failures_and_refusals_are_per_object_and_go_with_it() {
        let memory = Memory::default();
        let (a, b) = (key("a"), key("b"));
        assert_eq!(memory.count_failure(&a, "u1"), 0);
        assert_eq!(memory.count_failure(&a, "u1"), 1);
        assert_eq!(memory.count_failure(&b, "u2"), 0);
        memory.note_refused(&a, "u1");
        assert!(memory.refused_within(&a, "u1", Duration::from_secs(60)));
        assert!(!memory.refused_within(&b, "u2", Duration::from_secs(60)));
        memory.forget_failures(&a, "u1");
        assert_eq!(memory.count_failure(&a, "u1"), 0);
        // Deleted: the entry is dropped, not kept forever (the old failure and refusal maps
        // were never pruned).
        memory.forget(&a);
        assert_eq!(memory.len(), 1);
        memory.retain(|k| k != &b);
        assert_eq!(memory.len(), 0);
    }
}
