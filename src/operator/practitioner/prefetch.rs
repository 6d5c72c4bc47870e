//! What roster mode knows about an object before its sync, asked in one place: the walk's
//! hand-over, the connection's ledger of records this operator created, the walk's NPI index,
//! and whether walks already cover a settled object.

use std::time::{Duration, Instant};

use kube::ResourceExt;
use kube::runtime::reflector::ObjectRef;

use crate::crd::{EpicPractitioner, RoleSummary};
use crate::operator::Context;
use crate::operator::connection::cache::{ConnectionHandle, Key};
use crate::operator::roster::index::HandoverFor;
use crate::operator::roster::state::IndexAnswer;
use crate::pipeline::Prefetched;

/// What roster mode knows before a sync.
pub(super) enum Prefetch {
    /// What is known, and when the walk it came from started.
    Use(
        Option<Prefetched>,
        Option<Vec<RoleSummary>>,
        Option<Instant>,
    ),
    /// The connection's first walk has not finished: it resolves the object and wakes it.
    AwaitWalk,
    /// Walks keep coming and none found anything new for this object.
    Covered,
    Failed(crate::fhir::FhirError),
}

/// The walk's hand-over for this object, else for an unresolved one the connection's index
/// (searching only for an NPI the last walk did not see, where search is possible).
pub(super) fn roster_prefetch(
    ctx: &Context,
    key: &Key,
    conn: &ConnectionHandle,
    obj: &EpicPractitioner,
    has_id: bool,
    settled: bool,
) -> Prefetch {
    let about = HandoverFor {
        uid: obj.uid().unwrap_or_default(),
        npi: obj.spec.npi.clone(),
        base_url: conn.base_url().to_string(),
    };
    let handover = ctx.memory.take_handover(&ObjectRef::from_obj(obj), &about);
    let woken = handover.is_some();
    let (mut prefetched, mut roles, mut walk_started) = match handover {
        Some(h) => (h.found.prefetched(), h.roles, h.walk_started),
        None => (None, None, None),
    };
    // A record this operator created and no later walk has indexed yet: read it by id, even
    // if a walk that started before the create says absent (a status write lost after the
    // POST must not lead to a second one).
    if !has_id
        && let Some(id) = ctx.rosters.created_id(key, conn.base_url(), &obj.spec.npi)
        && !matches!(&prefetched, Some(Prefetched::Record { id: r, .. }) if *r == id)
    {
        return Prefetch::Use(Some(Prefetched::Id(id)), roles, None);
    }
    // A known record whose NPI the last walk found on several records holds as ambiguous.
    if has_id
        && prefetched.is_none()
        && let Some(index) = ctx.rosters.index(key, conn.base_url())
        && let Prefetched::Ambiguous(ids) = index.lookup(&obj.spec.npi)
    {
        return Prefetch::Use(Some(Prefetched::Ambiguous(ids)), None, index.started());
    }
    // A resolved object in a settled state that no walk woke has nothing new in Epic while
    // walks keep coming (at start-up, the first walk wakes what changed while the operator
    // was away): reading it anyway would cost a read per object. When walks stop, the
    // per-object read comes back as the safety net.
    if has_id && settled && !woken {
        let base = conn.base_url();
        if ctx.rosters.awaiting_first_walk(key, base) {
            return Prefetch::AwaitWalk;
        }
        let recent = conn.resync.saturating_mul(2) + Duration::from_secs(60);
        if ctx.rosters.walked_within(key, base, recent) {
            return Prefetch::Covered;
        }
    }
    if prefetched.is_none() && !has_id {
        let search_listed = conn.capability.as_ref().is_none_or(|c| c.npi_search());
        match ctx
            .rosters
            .resolve(key, conn.base_url(), &obj.spec.npi, search_listed)
        {
            IndexAnswer::Prefetched(p, r, started) => {
                prefetched = Some(p);
                roles = roles.or(r);
                walk_started = started;
            }
            IndexAnswer::Search => {}
            IndexAnswer::AwaitWalk => return Prefetch::AwaitWalk,
            IndexAnswer::Failed(e) => return Prefetch::Failed(e),
        }
    }
    Prefetch::Use(prefetched, roles, walk_started)
}
