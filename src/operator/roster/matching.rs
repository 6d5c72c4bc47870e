//! Matching roster pages to a connection's practitioners, pure: each record is indexed under
//! every NPI it carries, and each practitioner it belongs to is woken when its known record
//! changed (with the page copy), or, after the whole roster, with what the walk found for a
//! first resolution or a known record that vanished. No I/O: the shell reads objects from the
//! watch cache through `lookup` and performs the hand-overs and wake-ups returned.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use kube::ResourceExt;
use serde_json::Value;

use super::index::{Finding, Handover, HandoverFor, RoleMap, RosterIndex};
use crate::crd::{Reason, RoleSummary};
use crate::fhir::OperationOutcome;
use crate::operator::slim::CachedPractitioner;
use crate::pipeline::Prefetched;
use crate::reconcile::identity::{check_fhir_id, npi_values, over_bounds};
use crate::reconcile::{Normalizer, fingerprint};

/// A practitioner, by name: every member of a walk is in its connection's namespace. The
/// members index's shared name, so the walk's lists and sets of 10,000 objects hold a pointer
/// each, not a copy of an `ObjectRef`.
pub type Object = Arc<str>;

/// An object to wake, with the finding left for it (none: read its record as usual).
pub struct Woken {
    pub object: Object,
    pub handover: Option<Handover>,
}

/// What one walk is of: the connection and instance, the settings its findings are judged by,
/// the roles to attach, and the connection's practitioners by NPI.
pub struct WalkOf<'a> {
    pub connection: &'a str,
    pub base: &'a str,
    pub resync: Duration,
    pub normalizer: Normalizer,
    pub roles: Option<Arc<RoleMap>>,
    /// This walk also walked PractitionerRole.
    pub roles_walked: bool,
    pub started: Instant,
    pub by_npi: HashMap<Box<str>, Vec<Object>>,
}

/// One walk's matching state.
pub struct Matcher<'a> {
    walk: WalkOf<'a>,
    index: RosterIndex,
    /// Known records seen, by object.
    seen_known: HashSet<Object>,
    /// Page copies of first resolutions, by object.
    deferred: HashMap<Object, Finding>,
    /// Why the walk is incomplete, once a page said so.
    hidden: Option<String>,
}

impl<'a> Matcher<'a> {
    pub fn new(walk: WalkOf<'a>) -> Self {
        let mut index = RosterIndex::default();
        index.set_roles(walk.roles.clone());
        index.set_started(walk.started);
        Matcher {
            walk,
            index,
            seen_known: HashSet::new(),
            deferred: HashMap::new(),
            hidden: None,
        }
    }

    fn roles_of(&self, id: &str) -> Option<Vec<RoleSummary>> {
        self.walk
            .roles
            .as_ref()
            .map(|r| r.get(id).cloned().unwrap_or_default())
    }

    fn handover(
        &self,
        p: &CachedPractitioner,
        found: Finding,
        roles: Option<Vec<RoleSummary>>,
    ) -> Handover {
        Handover {
            found,
            roles,
            about: handover_for(p, self.walk.base),
            walk_started: Some(self.walk.started),
        }
    }

    /// Notes what makes the walk incomplete, once.
    fn incomplete(&mut self, why: impl FnOnce() -> String, log: &str) {
        if self.hidden.is_none() {
            let why = why();
            tracing::warn!(connection = %self.walk.connection, reason = %why, "{log}");
            self.hidden = Some(why);
        }
    }

    /// One page: the objects whose known record changed, to wake now with the page copy.
    pub fn page(
        &mut self,
        page: Vec<Value>,
        outcomes: &[OperationOutcome],
        lookup: &impl Fn(&Object) -> Option<Arc<CachedPractitioner>>,
    ) -> Vec<Woken> {
        // Records Epic hid from this client (a suppression, an error entry): no NPI's absence
        // from this walk is evidence that its record does not exist.
        for o in outcomes.iter().filter(|o| o.marks_incomplete()) {
            self.incomplete(
                || match (o.summary(), o.codes()) {
                    (s, _) if !s.is_empty() => s,
                    (_, codes) if !codes.is_empty() => format!("Epic codes {}", codes.join(",")),
                    _ => "Epic marked records as suppressed".to_string(),
                },
                "the roster walk is incomplete: Epic hid records from this client",
            );
        }
        let mut woken = Vec::new();
        // Taken out while matching (the matcher is borrowed mutably per record), put back after.
        let by_npi = std::mem::take(&mut self.walk.by_npi);
        for r in page {
            let Some(id) = r.get("id").and_then(Value::as_str) else {
                self.incomplete(
                    || "a record without an id was left out".to_string(),
                    "a roster record without an id was left out; the walk is incomplete",
                );
                continue;
            };
            // Walk ids are held to the FHIR id grammar as search ids are, and a record beyond
            // the bounds (a hostile or broken server) is left out. Either makes the walk
            // incomplete: no NPI may read as absent because of it.
            if let Err(why) = check_fhir_id(id) {
                self.incomplete(
                    || format!("a record was left out: {why}"),
                    "a roster record with an invalid id was left out; the walk is incomplete",
                );
                continue;
            }
            if let Some(why) = over_bounds(&r) {
                self.incomplete(
                    || format!("a record was left out: {why}"),
                    "a roster record beyond the operator's bounds was left out; the walk is incomplete",
                );
                continue;
            }
            self.record(id, &r, &by_npi, lookup, &mut woken);
        }
        self.walk.by_npi = by_npi;
        woken
    }

    /// One record, indexed under each NPI it carries (an ended one and the current one, under
    /// either NPI system), matched to the practitioners that declare one of them.
    fn record(
        &mut self,
        id: &str,
        r: &Value,
        by_npi: &HashMap<Box<str>, Vec<Object>>,
        lookup: &impl Fn(&Object) -> Option<Arc<CachedPractitioner>>,
        woken: &mut Vec<Woken>,
    ) {
        let npis = npi_values(r);
        self.index.add(id, &npis);
        let mut fp: Option<String> = None;
        // One copy of the record, shared by every object it wakes.
        let mut copy: Option<Finding> = None;
        for npi in &npis {
            let Some(objects) = by_npi.get(npi.as_str()) else {
                continue;
            };
            for object in objects {
                let Some(p) = lookup(object) else { continue };
                if p.is_paused() {
                    continue;
                }
                match known_id(&p, self.walk.base) {
                    Some(known) if known == id => {
                        self.seen_known.insert(object.clone());
                        let live_fp =
                            fp.get_or_insert_with(|| fingerprint(r, &self.walk.normalizer));
                        let roles_changed = self.walk.roles_walked
                            && p.status.as_ref().is_some_and(|s| {
                                self.roles_of(id).is_some_and(|roles| roles != s.roles)
                            });
                        let changed = needs_wake(&p, live_fp, self.walk.resync);
                        if changed || roles_changed {
                            let found = if changed {
                                copy.get_or_insert_with(|| Finding::record(id, r)).clone()
                            } else {
                                Finding::RolesOnly
                            };
                            let handover = self.handover(&p, found, self.roles_of(id));
                            woken.push(Woken {
                                object: object.clone(),
                                handover: Some(handover),
                            });
                        }
                    }
                    // Another record carrying the same NPI: the known one stays.
                    Some(_) => {}
                    None => {
                        self.deferred.entry(object.clone()).or_insert_with(|| {
                            copy.get_or_insert_with(|| Finding::record(id, r)).clone()
                        });
                    }
                }
            }
        }
    }

    /// After the last page: the index, and the objects to wake for first resolutions and for
    /// known records that vanished (merged or deleted in Epic).
    pub fn finish(
        mut self,
        lookup: &impl Fn(&Object) -> Option<Arc<CachedPractitioner>>,
    ) -> (RosterIndex, Vec<Woken>) {
        if let Some(why) = self.hidden.take() {
            self.index.set_incomplete(why);
        }
        let mut woken = Vec::new();
        let by_npi = std::mem::take(&mut self.walk.by_npi);
        for (npi, objects) in &by_npi {
            for object in objects {
                let Some(p) = lookup(object) else { continue };
                if p.is_paused() {
                    continue;
                }
                if let Some(handover) = self.after_walk(&p, object, npi) {
                    woken.push(Woken {
                        object: object.clone(),
                        handover: Some(handover),
                    });
                }
            }
        }
        (self.index, woken)
    }

    /// What the whole roster says about one object: `None` when it needs no wake-up, else the
    /// finding it is woken with.
    fn after_walk(
        &mut self,
        p: &CachedPractitioner,
        object: &Object,
        npi: &str,
    ) -> Option<Handover> {
        if known_id(p, self.walk.base).is_some() {
            return match self.index.lookup(npi) {
                // The known record is one of several carrying the NPI: it holds as ambiguous
                // instead of writing to whichever it resolved to first.
                Prefetched::Ambiguous(ids) => {
                    let found = Finding::Ambiguous(ids);
                    (!already_reported(p, &found)).then(|| self.handover(p, found, None))
                }
                _ if self.seen_known.contains(object) => None,
                // A record held as gone stays held until a record carries the NPI again.
                Prefetched::NotFound if reported_gone(p) => None,
                _ => Some(self.handover(p, Finding::Vanished, None)),
            };
        }
        let found = match self.index.lookup(npi) {
            // The reconcile reads it by id through the index if no copy was kept.
            Prefetched::Id(_) => self.deferred.remove(object).unwrap_or(Finding::RolesOnly),
            Prefetched::Ambiguous(ids) => Finding::Ambiguous(ids),
            Prefetched::Incomplete(why) => Finding::Incomplete(why),
            _ => Finding::Absent,
        };
        if already_reported(p, &found) {
            return None;
        }
        let roles = match &found {
            Finding::Record { id, .. } => self.roles_of(id),
            _ => None,
        };
        Some(self.handover(p, found, roles))
    }
}

/// Whether a practitioner whose known record was seen with `live_fp` must be reconciled.
pub(super) fn needs_wake(p: &CachedPractitioner, live_fp: &str, resync: Duration) -> bool {
    if p.is_paused() {
        return false;
    }
    let Some(status) = &p.status else {
        return false;
    };
    if status.live_fingerprint.as_deref() != Some(live_fp) {
        return true;
    }
    // Drift held by a refused write is retried once per resync interval.
    if !status.drift.is_empty() && status.synced_reason() == Some(Reason::WriteDisabled) {
        let refused_long_ago = !status.refused_within(resync);
        return refused_long_ago;
    }
    false
}

/// The id a practitioner already resolved to on this connection.
fn known_id<'a>(p: &'a CachedPractitioner, base_url: &str) -> Option<&'a str> {
    let s = p.status.as_ref()?;
    s.fhir_id
        .as_deref()
        .filter(|_| s.connection.as_deref() == Some(base_url))
}

/// What a hand-over for `p` on the instance at `base` is about.
fn handover_for(p: &CachedPractitioner, base: &str) -> HandoverFor {
    HandoverFor {
        uid: p.uid().unwrap_or_default(),
        npi: p.spec.npi.to_string(),
        base_url: base.to_string(),
    }
}

/// Whether the status already holds the known record as gone (`Reason::RecordGone`).
fn reported_gone(p: &CachedPractitioner) -> bool {
    p.status
        .as_ref()
        .is_some_and(|s| s.synced_reason() == Some(Reason::RecordGone))
}

/// Whether an unresolved practitioner's status already says what the walk found.
fn already_reported(p: &CachedPractitioner, found: &Finding) -> bool {
    let Some(status) = &p.status else {
        return false;
    };
    if p.metadata.generation != status.observed_generation {
        return false;
    }
    match found {
        Finding::Absent => status.synced_reason() == Some(Reason::NotFound),
        Finding::Incomplete(_) => status.synced_reason() == Some(Reason::SearchIncomplete),
        Finding::Ambiguous(_) => status.synced_reason() == Some(Reason::AmbiguousNpi),
        _ => false,
    }
}

#[cfg(test)]
#[path = "matching_tests.rs"]
mod tests;
