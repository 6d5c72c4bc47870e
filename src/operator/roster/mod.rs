//! Roster walks: per connection, one paged walk of `Practitioner?_count=pageSize` per resync
//! interval finds every record that changed in Epic for about N/pageSize requests and wakes
//! only those EpicPractitioners, handing them the page copy so they need no read of their own.
//! The walk also builds the connection's NPI -> id index, from which practitioners resolve
//! without an identifier search (which some instances do not offer), and, on the first walk
//! and then hourly, a `PractitionerRole` walk gives every practitioner's roles.
//!
//! Epic binds `next` links to a paging session that expires (4113): a walk is paced to finish
//! within half of that session's lifetime (stated on the connection, or learned from a 4113),
//! not stretched over the whole interval. The first walk of a connection runs at its rate
//! limit, since practitioners wait for it to resolve.

pub(crate) mod load;
pub mod pace;
pub(crate) mod state;
pub(crate) mod stats;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use kube::ResourceExt;
use kube::runtime::reflector::ObjectRef;
use serde_json::Value;

use super::Context;
use super::connection::cache::{ConnectionHandle, Key, connection_label};
use super::practitioner::jittered;
use super::practitioner::status::synced_reason;
use super::roster::load::{Gate, practitioners_of};
use super::roster::state::{Finding, Handover, HandoverFor, RoleMap, RosterIndex};
use crate::crd::{EpicPractitioner, Reason};
use crate::fhir::{FhirError, ResourceWalk};
use crate::pipeline::Prefetched;
use crate::reconcile::identity::{npi_values, over_bounds};
use crate::reconcile::{fingerprint, role_summary};

/// What one walk did.
#[derive(Debug)]
pub struct WalkReport {
    pub woken: usize,
    /// Of those, practitioners whose known record changed (woken during the walk).
    pub woken_as_found: u32,
    pub records: usize,
    /// The walk met a 4113 and started over (once) at a faster pace.
    pub restarted: bool,
    pub elapsed: Duration,
}

type WalkResult = Result<WalkReport, FhirError>;

/// What the next walk of a connection plans by.
#[derive(Clone, Copy, Debug, Default)]
pub struct LastWalk {
    records: usize,
    woken_as_found: u32,
}

/// What one pass over the Practitioner roster found.
struct Walked {
    woken: usize,
    woken_as_found: u32,
    records: usize,
}

/// Runs walks for every ready connection, each on its own jittered schedule and in its own
/// task, until the process ends: one connection's long walk never delays another's.
pub async fn run(ctx: Arc<Context>) {
    // A walk matches records to the practitioners in the watch cache: it waits for the first
    // full list, or practitioners missing from it would resolve one read at a time.
    if ctx.practitioners.wait_until_ready().await.is_err() {
        tracing::warn!("the practitioner watch cache closed; no roster walks");
        return;
    }
    let mut next_due: HashMap<Key, Instant> = HashMap::new();
    // Records seen by the last walk per connection: the next one paces its pages by it.
    let mut last_walk: HashMap<Key, LastWalk> = HashMap::new();
    let mut running: HashMap<Key, tokio::task::JoinHandle<WalkResult>> = HashMap::new();
    // The instance each running walk is walking.
    let mut walking: HashMap<Key, String> = HashMap::new();
    let mut fingerprints: HashMap<Key, String> = HashMap::new();
    loop {
        let finished: Vec<Key> = running
            .iter()
            .filter(|(_, task)| task.is_finished())
            .map(|(k, _)| k.clone())
            .collect();
        for key in finished {
            walking.remove(&key);
            let Some(task) = running.remove(&key) else {
                continue;
            };
            let label = connection_label(&key);
            match task.await {
                Ok(Ok(report)) => {
                    last_walk.insert(
                        key.clone(),
                        LastWalk {
                            records: report.records,
                            woken_as_found: report.woken_as_found,
                        },
                    );
                    ctx.metrics.roster_walk(&label, true);
                    ctx.walk_plans.succeeded(&key, report.records as u64);
                    tracing::info!(connection = %key.1, woken = report.woken, records = report.records, restarted = report.restarted, elapsed_ms = report.elapsed.as_millis() as u64, "roster walk done")
                }
                Ok(Err(e)) => {
                    ctx.metrics.roster_walk(&label, false);
                    // Without an index practitioners wait for a walk: try again soon, backing
                    // off (to hours for a walk the instance refuses); after a daily limit, the
                    // next day.
                    if let Some((_, h)) = ctx
                        .connections
                        .ready_handles()
                        .await
                        .iter()
                        .find(|(k, _)| *k == key)
                    {
                        let has_index = ctx.rosters.index(&key, h.base_url()).is_some();
                        let (retry, explained) = ctx.walk_plans.failed(&key, h, &e, has_index);
                        if let Some(x) = &explained {
                            ctx.rosters.walk_failed(&key, h.base_url(), x);
                        }
                        if let Some(d) = retry {
                            next_due.insert(key.clone(), later(d));
                        }
                    }
                    tracing::warn!(connection = %key.1, reason = %e.reason(), error = %e, "roster walk failed")
                }
                Err(e) => {
                    ctx.metrics.roster_walk(&label, false);
                    tracing::warn!(connection = %key.1, error = %e, "roster walk task ended")
                }
            }
        }
        // A connection briefly missing from this list (being rebuilt at its periodic probe)
        // keeps its schedule; a deleted one has its walk state forgotten, so it walks at once
        // if it comes back.
        let ready = ctx.connections.ready_handles().await;
        // A walk of a deleted connection, or of an instance the connection no longer points
        // at, stops: its findings would be about something that is gone.
        let stale: Vec<Key> = walking
            .iter()
            .filter(|(key, base)| {
                !ctx.connections.has(key)
                    || ready
                        .iter()
                        .any(|(k, h)| k == *key && h.base_url() != base.as_str())
            })
            .map(|(key, _)| key.clone())
            .collect();
        for key in stale {
            walking.remove(&key);
            if let Some(task) = running.remove(&key) {
                task.abort();
                tracing::info!(connection = %key.1, "the connection was deleted or now points at another instance; its roster walk is stopped");
            }
        }
        for (key, handle) in &ready {
            // A changed connection (new windows, budget, interval) plans afresh.
            if fingerprints
                .insert(key.clone(), handle.fingerprint.clone())
                .is_some_and(|old| old != handle.fingerprint)
            {
                next_due.remove(key);
            }
            if running.contains_key(key) {
                continue;
            }
            // A new connection (or a new instance behind one) walks at once: its practitioners
            // wait for that walk.
            let due = if ctx.rosters.awaiting_first_walk(key, handle.base_url()) {
                Instant::now()
            } else {
                *next_due.entry(key.clone()).or_insert_with(Instant::now)
            };
            if Instant::now() >= due {
                let practitioners = practitioners_of(&ctx, key);
                // Budget, windows and a daily limit may hold a due walk; practitioners waiting
                // for a first walk then resolve by identifier search where they can.
                if let Gate::Wait(wait, why) = ctx.walk_plans.gate(key, handle, practitioners) {
                    if let Some(why) = why
                        && ctx.rosters.awaiting_first_walk(key, handle.base_url())
                    {
                        ctx.rosters.walk_failed(key, handle.base_url(), &why);
                    }
                    next_due.insert(key.clone(), later(wait));
                    continue;
                }
                let expected = last_walk.get(key).copied().unwrap_or_default();
                let interval = ctx.walk_plans.interval(key, handle, practitioners);
                next_due.insert(key.clone(), later(jittered(interval)));
                walking.insert(key.clone(), handle.base_url().to_string());
                let (ctx, walk_key, handle) = (ctx.clone(), key.clone(), handle.clone());
                running.insert(
                    key.clone(),
                    tokio::spawn(async move {
                        let stats = super::roster::stats::Started::now(&ctx, &walk_key);
                        let result = walk(&ctx, &walk_key, &handle, expected).await;
                        let walked = result.as_ref().map(|r| (r.records, r.restarted));
                        stats.finish(&ctx, &walk_key, walked).await;
                        result
                    }),
                );
            }
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// `now + d`, or a day from now when that would overflow the clock.
fn later(d: Duration) -> Instant {
    let now = Instant::now();
    now.checked_add(d)
        .or_else(|| now.checked_add(Duration::from_secs(86_400)))
        .unwrap_or(now)
}

/// How fast one walk goes.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Pace {
    /// Pause after a page, per page and per practitioner the page woke.
    per_page: Duration,
    /// Pages the walk expects.
    expected_pages: u32,
    /// The walk must be done by then (well inside the paging session).
    deadline: Duration,
}

impl Pace {
    /// A first walk goes at the rate limit. Later walks spread their pages, and the reads and
    /// writes of the practitioners they are expected to wake (as many as the last walk woke),
    /// over at most 80% of the interval and 40% of the paging session's lifetime, at most 5 s a
    /// page; the deadline, 70% of the lifetime, leaves room for more drift than expected.
    fn plan(
        first: bool,
        resync: Duration,
        paging_ttl: Duration,
        expected_pages: u32,
        expected_woken: u32,
    ) -> Self {
        let deadline = paging_ttl.mul_f64(0.7);
        let per_page = if first {
            Duration::ZERO
        } else {
            let budget = resync.mul_f64(0.8).min(paging_ttl.mul_f64(0.4));
            let units = expected_pages.saturating_add(expected_woken).max(1);
            (budget / units).min(Duration::from_secs(5))
        };
        Pace {
            per_page,
            expected_pages,
            deadline,
        }
    }

    /// The pause after a page that woke `woken` practitioners: each woken one sends a read and
    /// maybe a write, so the next page waits that much longer, keeping the request rate even.
    /// A walk running late spreads what is left evenly over the time to its deadline instead.
    fn after_page(&self, pages_done: u32, woken: u32, elapsed: Duration) -> Duration {
        let remaining = self.expected_pages.saturating_sub(pages_done);
        let rest = self.per_page.saturating_mul(remaining);
        let wanted = self.per_page.saturating_mul(woken.saturating_add(1));
        if elapsed + wanted + rest <= self.deadline {
            wanted
        } else {
            let left = self.deadline.saturating_sub(elapsed);
            (left / remaining.saturating_add(1)).min(self.per_page)
        }
    }
}

/// Whether a practitioner whose known record was seen with `live_fp` must be reconciled.
fn needs_wake(p: &EpicPractitioner, live_fp: &str, resync: Duration) -> bool {
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
    if !status.drift.is_empty() && synced_reason(status) == Some(Reason::WriteDisabled) {
        let refused_long_ago = !status.refused_within(resync);
        return refused_long_ago;
    }
    false
}

/// The id a practitioner already resolved to on this connection.
fn known_id<'a>(p: &'a EpicPractitioner, base_url: &str) -> Option<&'a str> {
    let s = p.status.as_ref()?;
    s.fhir_id
        .as_deref()
        .filter(|_| s.connection.as_deref() == Some(base_url))
}

/// What a hand-over for `p` on the instance at `base` is about.
fn handover_for(p: &EpicPractitioner, base: &str) -> HandoverFor {
    HandoverFor {
        uid: p.uid().unwrap_or_default(),
        npi: p.spec.npi.clone(),
        base_url: base.to_string(),
    }
}

/// Whether an unresolved practitioner's status already says what the walk found.
fn already_reported(p: &EpicPractitioner, found: &Finding) -> bool {
    let Some(status) = &p.status else {
        return false;
    };
    if p.metadata.generation != status.observed_generation {
        return false;
    }
    match found {
        Finding::Absent => synced_reason(status) == Some(Reason::NotFound),
        Finding::Incomplete(_) => synced_reason(status) == Some(Reason::SearchIncomplete),
        Finding::Ambiguous(_) => synced_reason(status) == Some(Reason::AmbiguousNpi),
        _ => false,
    }
}

/// Every PractitionerRole, grouped by the practitioner it references.
async fn walk_roles(handle: &ConnectionHandle, page_size: u32) -> Result<RoleMap, FhirError> {
    let mut roles = RoleMap::new();
    handle
        .client
        .walk_all(ResourceWalk::PractitionerRole, page_size, |page, _| {
            for role in page {
                let Some(reference) = role
                    .pointer("/practitioner/reference")
                    .and_then(Value::as_str)
                else {
                    continue;
                };
                // "Practitioner/{id}", possibly absolute: the id is what follows the type.
                let Some(id) = reference.rsplit_once("Practitioner/").map(|(_, id)| id) else {
                    continue;
                };
                roles
                    .entry(id.into())
                    .or_default()
                    .push(role_summary(&role));
            }
            Duration::ZERO
        })
        .await?;
    Ok(roles)
}

/// An instance that cannot list every PractitionerRole answers 400 (a required parameter).
fn role_walk_refused(e: &FhirError) -> bool {
    matches!(e.http_status(), Some(400 | 403 | 405))
}

/// One walk of a connection: roles when due, then the Practitioner roster, restarted once at a
/// faster pace if the paging session expires.
async fn walk(ctx: &Context, key: &Key, handle: &ConnectionHandle, last: LastWalk) -> WalkResult {
    let (expected_records, expected_woken) = (last.records, last.woken_as_found);
    let started = Instant::now();
    let base = handle.base_url().to_string();
    let page_size = handle.client.settings().page_size.max(1);
    let first = ctx.rosters.index(key, &base).is_none();
    let role_every = handle
        .resync
        .saturating_mul(6)
        .max(Duration::from_secs(3600));
    let roles_due = ctx.rosters.roles_due(key, &base, role_every);
    let (roles, roles_walked) = if roles_due {
        match walk_roles(handle, page_size).await {
            Ok(r) => (Some(Arc::new(r)), true),
            Err(e) if role_walk_refused(&e) => {
                tracing::info!(connection = %key.1, reason = %e.reason(), "PractitionerRole cannot be walked; roles are searched per practitioner when it resolves");
                ctx.rosters.refuse_role_walk(key, &base);
                (None, false)
            }
            Err(e) => {
                tracing::warn!(connection = %key.1, reason = %e.reason(), error = %e, "PractitionerRole walk failed; keeping the roles of the last one");
                (ctx.rosters.last_roles(key, &base), false)
            }
        }
    } else {
        (ctx.rosters.last_roles(key, &base), false)
    };
    let stated_ttl = handle.spec.paging_session_ttl().ok().flatten();
    let mut restarted = false;
    loop {
        let ttl = ctx.rosters.paging_ttl(key, &base, stated_ttl);
        let objects = ctx
            .practitioners
            .state()
            .iter()
            .filter(|p| {
                p.namespace().as_deref() == Some(key.0.as_str())
                    && p.spec.connection_ref.name == key.1
            })
            .count();
        let expected_pages = (expected_records.max(objects) as u32).div_ceil(page_size);
        let pace = Pace::plan(first, handle.resync, ttl, expected_pages, expected_woken);
        let session_started = Instant::now();
        match walk_practitioners(ctx, key, handle, pace, roles.clone(), roles_walked).await {
            Ok(walked) => {
                return Ok(WalkReport {
                    woken: walked.woken,
                    woken_as_found: walked.woken_as_found,
                    records: walked.records,
                    restarted,
                    elapsed: started.elapsed(),
                });
            }
            Err(FhirError::PagingExpired { .. }) if !restarted => {
                let lasted = session_started.elapsed();
                ctx.rosters.paging_expired_after(key, &base, lasted);
                tracing::warn!(connection = %key.1, lasted_s = lasted.as_secs(), "the paging session expired during the roster walk; walking again within half of that");
                restarted = true;
            }
            Err(e) => {
                if let FhirError::PagingExpired { .. } = e {
                    ctx.rosters
                        .paging_expired_after(key, &base, session_started.elapsed());
                }
                ctx.rosters.walk_failed(key, &base, &e);
                return Err(e);
            }
        }
    }
}

/// One paging session over the Practitioner roster. Practitioners whose known record changed
/// are woken as their page arrives; first resolutions wait for the end of the walk, because
/// only the whole roster tells whether an NPI is on one record or on several.
async fn walk_practitioners(
    ctx: &Context,
    key: &Key,
    handle: &ConnectionHandle,
    pace: Pace,
    roles: Option<Arc<RoleMap>>,
    roles_walked: bool,
) -> Result<Walked, FhirError> {
    let base = handle.base_url();
    // The connection's practitioners by NPI, from the members index (no scan of the cache);
    // each is read from the cache when its record comes, so the walk sees its latest status.
    let by_npi = ctx.members.by_npi(key);
    let mut index = RosterIndex::default();
    index.set_roles(roles.clone());
    let roles_of = |id: &str| -> Option<Vec<crate::crd::RoleSummary>> {
        roles
            .as_ref()
            .map(|r| r.get(id).cloned().unwrap_or_default())
    };
    // Known records seen, by object; page copies of first resolutions, by object.
    let mut seen_known: HashSet<ObjectRef<EpicPractitioner>> = HashSet::new();
    let mut deferred: HashMap<ObjectRef<EpicPractitioner>, Finding> = HashMap::new();
    let mut wake: HashSet<ObjectRef<EpicPractitioner>> = HashSet::new();
    let normalizer = handle.normalizer();
    let started = Instant::now();
    index.set_started(started);
    let mut pages = 0u32;
    let mut woken_as_found = 0usize;
    let mut hidden: Option<String> = None;
    let page_size = handle.client.settings().page_size.max(1);
    handle
        .client
        .walk_all(ResourceWalk::Practitioner, page_size, |page, outcomes| {
            pages += 1;
            // Records Epic hid from this client (a suppression, an error entry): no NPI's
            // absence from this walk is evidence that its record does not exist.
            for o in outcomes.iter().filter(|o| o.marks_incomplete()) {
                if hidden.is_none() {
                    let why = match (o.summary(), o.codes()) {
                        (s, _) if !s.is_empty() => s,
                        (_, codes) if !codes.is_empty() => format!("Epic codes {}", codes.join(",")),
                        _ => "Epic marked records as suppressed".to_string(),
                    };
                    tracing::warn!(connection = %key.1, reason = %why, "the roster walk is incomplete: Epic hid records from this client");
                    hidden = Some(why);
                }
            }
            let mut woken_here = 0u32;
            for r in page {
                let Some(id) = r.get("id").and_then(Value::as_str) else {
                    continue;
                };
                // Walk ids are held to the FHIR id grammar as search ids are. A record left
                // out makes the walk incomplete: its NPIs must not read as absent.
                if let Err(why) = crate::reconcile::identity::check_fhir_id(id) {
                    if hidden.is_none() {
                        tracing::warn!(connection = %key.1, "a roster record with an invalid id was left out; the walk is incomplete");
                        hidden = Some(format!("a record was left out: {why}"));
                    }
                    continue;
                }
                // A record beyond the bounds (a hostile or broken server) is left out, and
                // the walk is incomplete: no NPI may read as absent because of it.
                if let Some(why) = over_bounds(&r) {
                    if hidden.is_none() {
                        tracing::warn!(connection = %key.1, reason = %why, "a roster record beyond the operator's bounds was left out; the walk is incomplete");
                        hidden = Some(format!("a record was left out: {why}"));
                    }
                    continue;
                }
                // A record can carry several NPIs (an ended one and the current one, under
                // either NPI system): it is indexed under each.
                let npis = npi_values(&r);
                index.add(id, &npis);
                let mut fp: Option<String> = None;
                // One copy of the record, shared by every object it wakes.
                let mut copy: Option<Finding> = None;
                for npi in &npis {
                    let Some(objects) = by_npi.get(npi.as_str()) else {
                        continue;
                    };
                    for object in objects {
                        let Some(p) = ctx.practitioners.get(object) else {
                            continue;
                        };
                        let p = &*p;
                        if p.is_paused() {
                            continue;
                        }
                        let object = object.clone();
                        match known_id(p, base) {
                            Some(known) if known == id => {
                                seen_known.insert(object.clone());
                                let live_fp =
                                    fp.get_or_insert_with(|| fingerprint(&r, &normalizer));
                                let roles_changed = roles_walked
                                    && p.status.as_ref().is_some_and(|s| {
                                        roles_of(id).is_some_and(|roles| roles != s.roles)
                                    });
                                let changed = needs_wake(p, live_fp, handle.resync);
                                if changed || roles_changed {
                                    let found = if changed {
                                        copy.get_or_insert_with(|| Finding::record(id, &r))
                                            .clone()
                                    } else {
                                        Finding::RolesOnly
                                    };
                                    ctx.memory.hand_over(
                                        &object,
                                        Handover {
                                            found,
                                            roles: roles_of(id),
                                            about: handover_for(p, base),
                                            walk_started: Some(started),
                                        },
                                    );
                                    // Woken as found, so the reads and writes follow the
                                    // paced walk.
                                    if wake.insert(object.clone()) {
                                        woken_here += 1;
                                        let _ = ctx.wake.unbounded_send(object);
                                    }
                                }
                            }
                            // Another record carrying the same NPI: the known one stays.
                            Some(_) => {}
                            None => {
                                deferred.entry(object).or_insert_with(|| {
                                    copy.get_or_insert_with(|| Finding::record(id, &r)).clone()
                                });
                            }
                        }
                    }
                }
            }
            woken_as_found += woken_here as usize;
            pace.after_page(pages, woken_here, started.elapsed())
        })
        .await?;
    if let Some(why) = &hidden {
        index.set_incomplete(why.clone());
    }
    let records = index.records();
    // After the whole roster: first resolutions, and known records that vanished (merged or
    // deleted in Epic).
    for (npi, objects) in &by_npi {
        for object in objects {
            let Some(p) = ctx.practitioners.get(object) else {
                continue;
            };
            let p = &*p;
            if p.is_paused() {
                continue;
            }
            let object = object.clone();
            let handover = if known_id(p, base).is_some() {
                match index.lookup(npi) {
                    // The known record is one of several carrying the NPI: it holds as
                    // ambiguous instead of writing to whichever it resolved to first.
                    Prefetched::Ambiguous(ids) => {
                        let found = Finding::Ambiguous(ids);
                        if already_reported(p, &found) {
                            continue;
                        }
                        Some(Handover {
                            found,
                            roles: None,
                            about: handover_for(p, base),
                            walk_started: Some(started),
                        })
                    }
                    _ if seen_known.contains(&object) => continue,
                    _ => None,
                }
            } else {
                let found = match index.lookup(npi) {
                    // The reconcile reads it by id through the index if no copy was kept.
                    Prefetched::Id(_) => deferred.remove(&object).unwrap_or(Finding::RolesOnly),
                    Prefetched::Ambiguous(ids) => Finding::Ambiguous(ids),
                    Prefetched::Incomplete(why) => Finding::Incomplete(why),
                    _ => Finding::Absent,
                };
                if already_reported(p, &found) {
                    continue;
                }
                let roles = match &found {
                    Finding::Record { id, .. } => roles_of(id),
                    _ => None,
                };
                Some(Handover {
                    found,
                    roles,
                    about: handover_for(p, base),
                    walk_started: Some(started),
                })
            };
            if let Some(h) = handover {
                ctx.memory.hand_over(&object, h);
            }
            if wake.insert(object.clone()) {
                let _ = ctx.wake.unbounded_send(object);
            }
        }
    }
    ctx.rosters.walked(key, base, index, roles_walked);
    Ok(Walked {
        woken: wake.len(),
        woken_as_found: woken_as_found as u32,
        records,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::{Condition, ConditionStatus, DriftEntry, EpicPractitionerStatus};

    fn practitioner(status: Option<EpicPractitionerStatus>, paused: bool) -> EpicPractitioner {
        let spec = serde_json::from_value(serde_json::json!({
            "connectionRef": {"name": "epic"}, "npi": "1234567893"
        }))
        .unwrap();
        let mut p = EpicPractitioner::new("alice", spec);
        p.status = status;
        if paused {
            p.metadata.annotations = Some(
                [(
                    crate::crd::PAUSED_ANNOTATION.to_string(),
                    "true".to_string(),
                )]
                .into(),
            );
        }
        p
    }

    fn status(fp: &str, held: bool, refused_ago: Option<i64>) -> EpicPractitionerStatus {
        EpicPractitionerStatus {
            live_fingerprint: Some(fp.into()),
            drift: if held {
                vec![DriftEntry {
                    path: "active".into(),
                    desired: "false".into(),
                    live: "true".into(),
                }]
            } else {
                Vec::new()
            },
            conditions: vec![Condition {
                type_: "Synced".into(),
                status: ConditionStatus::False,
                reason: if held {
                    Reason::WriteDisabled
                } else {
                    Reason::Synced
                }
                .as_str()
                .into(),
                message: String::new(),
                last_transition_time: String::new(),
                observed_generation: None,
            }],
            last_refused_write_time: refused_ago.map(|secs| {
                (chrono::Utc::now() - chrono::TimeDelta::seconds(secs))
                    .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
            }),
            ..EpicPractitionerStatus::default()
        }
    }

    #[test]
    fn only_changed_records_and_due_retries_are_woken() {
        let resync = Duration::from_secs(600);
        let cases = [
            (
                "never reconciled: its own reconcile comes",
                practitioner(None, false),
                "fp",
                false,
            ),
            (
                "unchanged",
                practitioner(Some(status("fp", false, None)), false),
                "fp",
                false,
            ),
            (
                "changed in Epic",
                practitioner(Some(status("old", false, None)), false),
                "fp",
                true,
            ),
            (
                "paused",
                practitioner(Some(status("old", false, None)), true),
                "fp",
                false,
            ),
            (
                "held drift, refused recently",
                practitioner(Some(status("fp", true, Some(60))), false),
                "fp",
                false,
            ),
            (
                "held drift, refused an interval ago",
                practitioner(Some(status("fp", true, Some(700))), false),
                "fp",
                true,
            ),
        ];
        for (what, p, live_fp, want) in cases {
            assert_eq!(needs_wake(&p, live_fp, resync), want, "{what}");
        }
    }

    #[test]
    fn a_walk_fits_well_inside_the_paging_session_at_the_default_interval() {
        // 10,000 records at 50 a page, default 10-minute interval, 5-minute session: the old
        // pace (80% of the interval) took 480 s and met a 4113; now 120 s.
        let s = Duration::from_secs;
        let pace = Pace::plan(false, s(600), s(300), 200, 0);
        assert_eq!(pace.per_page, Duration::from_millis(600));
        assert_eq!(pace.per_page * 200, s(120));
        // 100 practitioners woken last time: their reads and writes share the same 120 s.
        let drifting = Pace::plan(false, s(600), s(300), 200, 100);
        assert_eq!(drifting.per_page * 300, s(120));
        // A learned 60 s session: 24 s for the walk.
        let short = Pace::plan(false, s(600), s(60), 200, 0);
        assert_eq!(short.per_page * 200, s(24));
        // A first walk goes at the rate limit.
        assert_eq!(
            Pace::plan(true, s(600), s(300), 200, 0).per_page,
            Duration::ZERO
        );
        // A short interval paces by the interval.
        let fast = Pace::plan(false, s(60), s(300), 20, 0);
        assert_eq!(fast.per_page * 20, s(48));
    }

    #[test]
    fn woken_records_stretch_the_pause_but_never_past_the_deadline() {
        let s = Duration::from_secs;
        let pace = Pace::plan(false, s(600), s(300), 200, 0);
        assert_eq!(pace.after_page(1, 0, s(0)), Duration::from_millis(600));
        assert_eq!(pace.after_page(1, 2, s(1)), Duration::from_millis(1800));
        // Late (deadline 210 s): what is left is spread evenly, never slower than planned.
        assert_eq!(pace.after_page(100, 2, s(150)), s(60) / 101);
        assert_eq!(pace.after_page(100, 0, s(210)), Duration::ZERO);
    }

    #[test]
    fn far_deadlines_do_not_overflow() {
        assert!(later(Duration::MAX) > Instant::now());
    }
}
