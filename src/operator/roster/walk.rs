//! One walk of a connection (I/O): roles when due, then the Practitioner roster page by page,
//! restarted once at a faster pace if the paging session expires. Matching the pages to the
//! connection's practitioners is pure (`matching`); this module fetches, paces and hands over.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use kube::runtime::reflector::ObjectRef;
use serde_json::Value;

use super::index::RoleMap;
use super::matching::{Matcher, Object, WalkOf, Woken};
use super::page_pace::Pace;
use super::{LastWalk, WalkReport, WalkResult};
use crate::fhir::{FhirError, ResourceWalk};
use crate::operator::Context;
use crate::operator::connection::cache::{ConnectionHandle, Key};
use crate::reconcile::role_summary;

/// What one pass over the Practitioner roster found.
struct Walked {
    woken: usize,
    woken_as_found: u32,
    records: usize,
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

/// One walk of a connection: roles when due (every `role_every` of the planned walk
/// `interval`), then the Practitioner roster, restarted once at a faster pace if the paging
/// session expires.
pub(super) async fn walk(
    ctx: &Context,
    key: &Key,
    handle: &ConnectionHandle,
    last: LastWalk,
    interval: Duration,
) -> WalkResult {
    let (expected_records, expected_woken) = (last.records, last.woken_as_found);
    let started = Instant::now();
    let base = handle.base_url().to_string();
    let page_size = handle.client.settings().page_size.max(1);
    let first = ctx.rosters.index(key, &base).is_none();
    // The forecast's rule, so that a budget that stretches the walks stretches role walks too.
    let role_every = super::pace::role_every(interval);
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
        let objects = ctx.members.count(key) as usize;
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
    let started = Instant::now();
    // The connection's practitioners by NPI, from the members index (no scan of the cache);
    // each is read from the cache when its record comes, so the walk sees its latest status.
    let mut matcher = Matcher::new(WalkOf {
        connection: &key.1,
        base,
        resync: handle.resync,
        normalizer: handle.normalizer(),
        roles,
        roles_walked,
        started,
        by_npi: ctx.members.by_npi(key),
    });
    let namespace = key.0.as_str();
    let lookup = |name: &Object| {
        ctx.practitioners
            .get(&ObjectRef::new(name).within(namespace))
    };
    let mut wake: HashSet<Object> = HashSet::new();
    let mut pages = 0u32;
    let mut woken_as_found = 0usize;
    let page_size = handle.client.settings().page_size.max(1);
    handle
        .client
        .walk_all(ResourceWalk::Practitioner, page_size, |page, outcomes| {
            pages += 1;
            let woken = matcher.page(page, outcomes, &lookup);
            // Woken as found, so the reads and writes follow the paced walk.
            let here = hand_over(ctx, namespace, &mut wake, woken);
            woken_as_found += here as usize;
            pace.after_page(pages, here, started.elapsed())
        })
        .await?;
    // After the whole roster: first resolutions, and known records that vanished (merged or
    // deleted in Epic).
    let (index, rest) = matcher.finish(&lookup);
    hand_over(ctx, namespace, &mut wake, rest);
    let records = index.records();
    ctx.rosters.walked(key, base, index, roles_walked);
    Ok(Walked {
        woken: wake.len(),
        woken_as_found: woken_as_found as u32,
        records,
    })
}

/// Leaves each finding in its object's memory and wakes each object once per walk; returns how
/// many were woken for the first time.
fn hand_over(ctx: &Context, namespace: &str, wake: &mut HashSet<Object>, woken: Vec<Woken>) -> u32 {
    let mut first = 0u32;
    for w in woken {
        let object = ObjectRef::new(&w.object).within(namespace);
        if let Some(h) = w.handover {
            ctx.memory.hand_over(&object, h);
        }
        if wake.insert(w.object) {
            first += 1;
            let _ = ctx.wake.unbounded_send(object);
        }
    }
    first
}
