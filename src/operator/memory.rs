//! What the operator remembers per EpicPractitioner between reconciles: failures in a row, the
//! roster walk's hand-over and an unanswered create attempt. One entry per object, keyed by
//! its reference and bound to its uid (an object deleted and created again under the same name
//! starts afresh), dropped when the watch sees the object go. A pass asks it once (`recall`)
//! and tells it once (`remember`). Pure state behind one short lock: no I/O here.
//!
//! A refused write is not remembered here: a pass decides from the whole status, read from the
//! API server, which holds the operator's own last write (`lastRefusedWriteTime`).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;

use kube::runtime::reflector::ObjectRef;

use super::slim::PractitionerRef;
use crate::crd::CreateAttempt;
use crate::operator::roster::index::{Handover, HandoverFor};

/// The reference an entry is kept under (namespace and name; the uid is in the entry).
pub type ObjectKey = PractitionerRef;

/// What is remembered of one object. Kept small (large parts boxed) and only while it holds
/// something: an object that is fine and waits for nothing has no entry.
#[derive(Debug, Default)]
struct ObjectMemory {
    uid: Box<str>,
    failures: u32,
    /// What the last roster walk found for it, waiting for its reconcile.
    handover: Option<Box<Handover>>,
    /// A create attempt whose answer was lost, and since when this process knows of it: its
    /// own POST, or the first status it read showing one. Measured on this process's clock,
    /// so another replica's clock never matters.
    attempt: Option<Box<(Instant, CreateAttempt)>>,
}

impl ObjectMemory {
    fn holds_nothing(&self) -> bool {
        self.failures == 0 && self.handover.is_none() && self.attempt.is_none()
    }
}

/// What a pass is told of the object at its start.
#[derive(Debug, Default)]
pub struct Recollection {
    /// What the last roster walk found for what the object is now (taken: it is used once).
    pub handover: Option<Handover>,
    /// An unanswered create attempt, and since when this process knows of it.
    pub attempt: Option<(Instant, CreateAttempt)>,
}

/// What a pass tells the object's memory.
#[derive(Clone, Debug, PartialEq)]
pub enum Remember {
    /// The pass succeeded: failures in a row start over.
    ForgetFailures,
    /// A write failed: one more failure in a row.
    CountFailure,
    /// The record is known or Epic answered the POST: no attempt stands.
    ClearAttempt,
    /// Status shows an unanswered attempt this process first saw at that instant.
    SawAttempt(Instant, CreateAttempt),
    /// This pass's POST went unanswered: the attempt is dated from when its answer was lost
    /// (later than when it was noted, by the wait for the rate limit and the token, and the
    /// request timeout itself).
    LostAnswer(Instant, CreateAttempt),
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

    /// Everything remembered of the object for one pass: the hand-over (when it was made for
    /// what the object is now; a stale one is dropped) and the unanswered create attempt.
    pub fn recall(&self, object: &ObjectKey, now: &HandoverFor) -> Recollection {
        let (handover, attempt) = {
            let mut all = self.objects.lock().unwrap_or_else(|p| p.into_inner());
            let Some(m) = all.get_mut(object) else {
                return Recollection::default();
            };
            if *m.uid != *now.uid {
                // An earlier object under this name: nothing of it carries over.
                all.remove(object);
                return Recollection::default();
            }
            let found = (m.handover.take(), m.attempt.as_deref().cloned());
            if m.holds_nothing() {
                all.remove(object);
                shrink_when_sparse(&mut all);
            }
            found
        };
        let handover = handover.map(|h| *h).filter(|h| {
            let current = h.about == *now;
            if !current {
                tracing::info!(npi = %now.npi, "a roster finding made for another object, NPI or instance is dropped");
            }
            current
        });
        Recollection { handover, attempt }
    }

    /// Takes in what one pass learned of the object; returns the failures in a row before a
    /// failure it counts (0 when it counts none).
    pub fn remember(&self, object: &ObjectKey, uid: &str, what: &[Remember]) -> u32 {
        if what == [Remember::ForgetFailures]
            && self.read(object, uid, |m| m.failures > 0) != Some(true)
        {
            // The common pass: nothing to forget, and no entry to create.
            return 0;
        }
        self.with(object, uid, |m| {
            let mut before = 0;
            for r in what {
                match r {
                    Remember::ForgetFailures => m.failures = 0,
                    Remember::CountFailure => {
                        before = m.failures;
                        m.failures = m.failures.saturating_add(1);
                    }
                    Remember::ClearAttempt => m.attempt = None,
                    Remember::SawAttempt(at, a) => {
                        if m.attempt.is_none() {
                            m.attempt = Some(Box::new((*at, a.clone())));
                        }
                    }
                    Remember::LostAnswer(at, a) => m.attempt = Some(Box::new((*at, a.clone()))),
                }
            }
            before
        })
    }

    /// Counts a failure and returns how many came before it in a row.
    pub fn count_failure(&self, object: &ObjectKey, uid: &str) -> u32 {
        self.with(object, uid, |m| {
            let before = m.failures;
            m.failures = m.failures.saturating_add(1);
            before
        })
    }

    /// Leaves a walk's finding for the object it was made for (`about.uid`).
    pub fn hand_over(&self, object: &ObjectKey, handover: Handover) {
        let uid = handover.about.uid.clone();
        self.with(object, &uid, |m| m.handover = Some(Box::new(handover)));
    }

    /// A POST for the object is about to be sent.
    pub fn note_attempt(&self, object: &ObjectKey, uid: &str, attempt: CreateAttempt) {
        self.with(object, uid, |m| {
            m.attempt = Some(Box::new((Instant::now(), attempt)))
        });
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
        let h = memory.recall(&key("npi-1"), &about("u1")).handover.unwrap();
        assert_eq!(
            h.found.prefetched(),
            Some(Prefetched::Record {
                id: "a-1".into(),
                body
            })
        );
        assert!(
            memory
                .recall(&key("npi-1"), &about("u1"))
                .handover
                .is_none()
        );
        assert_eq!(memory.len(), 0, "an entry holding nothing is dropped");
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
                memory.recall(&key("alice"), &other).handover.is_none(),
                "{other:?}"
            );
            assert!(
                memory
                    .recall(&key("alice"), &about("u1"))
                    .handover
                    .is_none(),
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
        assert!(memory.recall(&a, &about("u1")).attempt.is_none());
        let first = Instant::now();
        memory.remember(&a, "u1", &[Remember::SawAttempt(first, attempt.clone())]);
        // A later sight does not move the date: the first one counts.
        memory.remember(
            &a,
            "u1",
            &[Remember::SawAttempt(Instant::now(), attempt.clone())],
        );
        // A cached object from before the status write shows none: memory still knows.
        assert_eq!(
            memory.recall(&a, &about("u1")).attempt.map(|a| a.0),
            Some(first)
        );
        memory.remember(&a, "u1", &[Remember::ClearAttempt]);
        assert!(memory.recall(&a, &about("u1")).attempt.is_none());
        // Another object under the same name (a new uid) knows nothing of the old one's.
        memory.note_attempt(&a, "u1", attempt);
        assert!(memory.recall(&a, &about("u2")).attempt.is_none());
    }

    #[test]
    fn failures_are_per_object_and_go_with_it() {
        let memory = Memory::default();
        let (a, b) = (key("a"), key("b"));
        assert_eq!(memory.count_failure(&a, "u1"), 0);
        assert_eq!(memory.remember(&a, "u1", &[Remember::CountFailure]), 1);
        assert_eq!(memory.count_failure(&b, "u2"), 0);
        memory.remember(&a, "u1", &[Remember::ForgetFailures]);
        assert_eq!(memory.count_failure(&a, "u1"), 0);
        // Deleted: the entry is dropped, not kept forever (the old failure and refusal maps
        // were never pruned).
        memory.forget(&a);
        assert_eq!(memory.len(), 1);
        memory.retain(|k| k != &b);
        assert_eq!(memory.len(), 0);
    }
}
