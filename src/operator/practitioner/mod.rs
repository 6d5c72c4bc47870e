//! The EpicPractitioner reconcile: dereference (connection) -> validate -> sync (resolve,
//! observe, drift, plan, write, verify) -> report (status, Events, metrics).

pub(crate) mod check_now;
pub(crate) mod events;
pub(crate) mod status;
pub(crate) mod status_limits;

use std::sync::Arc;
use std::time::Duration;

use kube::api::{Patch, PatchParams};
use kube::runtime::controller::Action as ControllerAction;
use kube::runtime::events::Event;
use kube::runtime::finalizer::{Event as FinalizerEvent, finalizer};
use kube::{Api, Resource, ResourceExt};
use serde_json::json;

use super::Context;
use super::error::Error;
use super::metrics::ReconcileTimer;
use super::roster::state::IndexAnswer;
use crate::crd::{
    CreateAttempt, DeletionPolicy, EpicPractitioner, EpicPractitionerStatus, Reason, RoleSummary,
};
use crate::pipeline::{
    AttemptRecorder, AttemptState, CreateGuard, Prefetched, SyncOutcome, SyncRequest, WriteOutcome,
    deletion_done, sync_practitioner,
};
use crate::reconcile::{Disclosure, validate_spec, write_policy};

/// Finalizer held while deletionPolicy is Deactivate.
pub const FINALIZER: &str = "epic-operator.dev/deactivate";
/// The single field manager of every status write.
pub const FIELD_MANAGER: &str = "epic-operator";

pub async fn reconcile(
    obj: Arc<EpicPractitioner>,
    ctx: Arc<Context>,
) -> Result<ControllerAction, Error> {
    // A connection over its share of the workers waits in the queue, not in a worker (before
    // the finalizer helper, which would take an early return as a finished cleanup).
    let connection = (
        obj.namespace().unwrap_or_default(),
        obj.spec.connection_ref.name.clone(),
    );
    let Some(_worker) = ctx.fair.enter(&connection) else {
        return Ok(ControllerAction::requeue(jittered(OVER_SHARE_REQUEUE)));
    };
    let timer = ctx.metrics.start_reconcile("EpicPractitioner");
    tracing::debug!(npi = %obj.spec.npi, generation = obj.metadata.generation, "reconciling practitioner");
    let ns = obj.namespace().unwrap_or_default();
    let api: Api<EpicPractitioner> = Api::namespaced(ctx.kube.clone(), &ns);
    let has_finalizer = obj.finalizers().iter().any(|f| f == FINALIZER);
    let wants_finalizer = obj.spec.deletion_policy == DeletionPolicy::Deactivate;
    let deleting = obj.meta().deletion_timestamp.is_some();
    let result = if wants_finalizer && !has_finalizer && !deleting {
        // Add the finalizer and carry on in this same pass. Waiting for the watch event of our
        // own patch costs a round trip, and that event can arrive while this reconcile is still
        // running and then sit unprocessed until something else triggers the object.
        match set_finalizers(&api, &obj, true).await {
            Ok(()) => apply(obj.clone(), ctx.clone(), false, &timer).await,
            Err(e) => Err(e),
        }
    } else if wants_finalizer || has_finalizer && deleting {
        finalizer(&api, FINALIZER, obj.clone(), |event| async {
            match event {
                FinalizerEvent::Apply(o) => apply(o, ctx.clone(), false, &timer).await,
                FinalizerEvent::Cleanup(o) => apply(o, ctx.clone(), true, &timer).await,
            }
        })
        .await
        .map_err(|e| match e {
            kube::runtime::finalizer::Error::ApplyFailed(e)
            | kube::runtime::finalizer::Error::CleanupFailed(e) => e,
            other => Error::Finalizer(Box::new(other)),
        })
    } else if deleting {
        Ok(ControllerAction::await_change())
    } else {
        if has_finalizer {
            // deletionPolicy went back to Orphan: the finalizer is no longer needed.
            set_finalizers(&api, &obj, false).await?;
        }
        apply(obj.clone(), ctx.clone(), false, &timer).await
    };
    let reason = result.as_ref().err().map(Error::reason);
    tracing::debug!(npi = %obj.spec.npi, reason = reason.map(|r| r.as_str()), elapsed_ms = timer.elapsed().as_millis() as u64, "reconciled practitioner");
    timer.finish(reason);
    result
}

/// Adds or removes our finalizer, keeping everyone else's. The resourceVersion makes the patch
/// fail (and the reconcile retry) if the list changed meanwhile.
async fn set_finalizers(
    api: &Api<EpicPractitioner>,
    obj: &EpicPractitioner,
    ours: bool,
) -> Result<(), Error> {
    let mut kept: Vec<String> = obj
        .finalizers()
        .iter()
        .filter(|f| *f != FINALIZER)
        .cloned()
        .collect();
    if ours {
        kept.push(FINALIZER.to_string());
    }
    let patch =
        json!({"metadata": {"finalizers": kept, "resourceVersion": obj.resource_version()}});
    api.patch(
        &obj.name_any(),
        &PatchParams::default(),
        &Patch::Merge(&patch),
    )
    .await?;
    Ok(())
}

/// One pass for a live object (`deleting` false) or a deleting one holding the finalizer. Every
/// outcome, failures included, is written to status before returning.
async fn apply(
    obj: Arc<EpicPractitioner>,
    ctx: Arc<Context>,
    deleting: bool,
    timer: &ReconcileTimer<'_>,
) -> Result<ControllerAction, Error> {
    let old = obj.status.clone().unwrap_or_default();
    match sync(&obj, &ctx, &old, deleting).await {
        // Nothing to report: a roster walk covers this object (see `roster_prefetch`).
        Ok(Pass::Wait(d)) => Ok(ControllerAction::requeue(jittered(d))),
        Ok(Pass::Synced(synced)) => {
            let (mut new_status, outcome, mut requeue, done) = *synced;
            let blocked = deleting && !done;
            if blocked {
                // The way out goes where people look (status, an Event, Argo CD), not only
                // into a returned error.
                new_status = status::deletion_blocked(&obj, new_status);
            }
            super::practitioner::check_now::mark(&obj, &mut new_status);
            report(&obj, &ctx, &old, &new_status, outcome.as_ref()).await?;
            if let Some(synced) = new_status
                .conditions
                .iter()
                .find(|c| c.type_ == status::SYNCED)
            {
                let reason = status::synced_reason(&new_status).unwrap_or(Reason::Unknown);
                timer.note(synced.status == crate::crd::ConditionStatus::True, reason);
            }
            let write_failed = outcome.as_ref().is_some_and(|o| {
                matches!(
                    o.write,
                    WriteOutcome::Failed(_) | WriteOutcome::Conflict { .. }
                )
            });
            if write_failed {
                // Reported in status; tried again with the same per-object backoff as errors,
                // not after the long resync interval.
                requeue = ControllerAction::requeue(backoff(
                    ctx.record_failure(&obj),
                    Duration::from_secs(5),
                ));
            } else {
                ctx.forget_failures(&obj);
            }
            if blocked {
                // Keep the finalizer: returning an error keeps it and retries with backoff.
                let why = status::blocking_reason(&new_status).unwrap_or(Reason::Pending);
                return Err(Error::DeletionBlocked { why });
            }
            Ok(requeue)
        }
        Err(e) => {
            let (http, codes) = match &e {
                Error::Fhir(f) => (f.http_status(), f.epic_codes()),
                Error::Connection { failure, .. } => (failure.http_status, Vec::new()),
                _ => (None, Vec::new()),
            };
            let mut new_status =
                status::from_error(&obj, &old, e.reason(), e.to_string(), http, codes);
            super::practitioner::check_now::mark(&obj, &mut new_status);
            report(&obj, &ctx, &old, &new_status, None).await?;
            Err(e)
        }
    }
}

/// Another live EpicPractitioner of the same namespace and connection with the same NPI.
fn duplicate_of(obj: &EpicPractitioner, ctx: &Context) -> Option<String> {
    let ns = obj.namespace();
    let uid = obj.uid();
    ctx.practitioners
        .find(|p| {
            p.spec.npi == obj.spec.npi
                && p.spec.connection_ref.name == obj.spec.connection_ref.name
                && p.namespace() == ns
                && p.uid() != uid
                && p.metadata.deletion_timestamp.is_none()
        })
        .map(|p| p.name_any())
}

/// How long a reconcile of a connection holding its share of the workers waits in the queue.
const OVER_SHARE_REQUEUE: std::time::Duration = std::time::Duration::from_millis(250);

/// How long an object left to the roster walks waits at most before looking again (each
/// walk wakes the objects it finds changed; this only covers walks that stop).
const AWAIT_WALK_REQUEUE: Duration = Duration::from_secs(60);

type SyncResult = (
    EpicPractitionerStatus,
    Option<SyncOutcome>,
    ControllerAction,
    bool,
);

/// What one pass did.
enum Pass {
    Synced(Box<SyncResult>),
    /// Nothing to do: roster walks cover the object; look again after this at the latest.
    Wait(Duration),
}

async fn sync(
    obj: &EpicPractitioner,
    ctx: &Context,
    old: &EpicPractitionerStatus,
    deleting: bool,
) -> Result<Pass, Error> {
    // Validate: what the schema cannot express.
    validate_spec(&obj.spec).map_err(Error::InvalidSpec)?;
    // Two objects for one record would both write (alternating PUTs, or two POSTs): neither
    // acts while both exist. Objects being deleted do not count, and are not held.
    if !deleting && let Some(other) = duplicate_of(obj, ctx) {
        return Err(Error::DuplicateNpi { other });
    }
    if obj.is_paused() {
        return Ok(Pass::Synced(Box::new((
            status::paused(obj, old),
            None,
            ControllerAction::await_change(),
            false,
        ))));
    }
    // Dereference.
    let ns = obj.namespace().unwrap_or_default();
    let conn = ctx
        .connections
        .get(&ns, &obj.spec.connection_ref.name)
        .await?;
    // Ids never travel between instances: a recorded id counts only for the same base URL.
    let known_id = old
        .fhir_id
        .as_deref()
        .filter(|_| old.connection.as_deref() == Some(conn.base_url()));
    // A refused write is retried no more often than the resync interval.
    let policy = write_policy(
        conn.writes(),
        conn.spec.writes,
        old.refused_within(conn.resync) || ctx.refused_within(obj, conn.resync),
        old.last_error.as_ref().map(|e| e.message.as_str()),
    );
    let (writes, write_disabled_message) = (policy.writes, policy.held_message);
    // Roles are read when the record is (re)resolved; they change far less often than the
    // record and would otherwise double the requests of every resync. In roster mode they
    // come from the connection's PractitionerRole walk.
    let fetch_roles = known_id.is_none();
    let key = (ns.clone(), obj.spec.connection_ref.name.clone());
    let (prefetched, known_roles, walk_started) = match ctx.mode {
        // "Check now" (the requested-at annotation): a fresh read, not the walk's copy.
        _ if super::practitioner::check_now::requested(obj) => (None, None, None),
        super::DriftDetection::PerObject => (None, None, None),
        super::DriftDetection::Roster => {
            let settled = !deleting
                && old.last_error.is_none()
                && old.drift.is_empty()
                && old.observed_generation == obj.metadata.generation
                && status::synced_reason(old) != Some(Reason::Paused);
            match roster_prefetch(ctx, &key, &conn, obj, known_id.is_some(), settled) {
                Prefetch::Use(p, roles, started) => (p, roles, started),
                Prefetch::AwaitWalk => return Ok(Pass::Wait(AWAIT_WALK_REQUEUE)),
                Prefetch::Covered => return Ok(Pass::Wait(safety_requeue(conn.resync))),
                Prefetch::Failed(e) => return Err(Error::Fhir(e)),
            }
        }
    };
    // The walk's page copy replaces the read by id (a write still reads first); a known id
    // whose NPI the walk found on several records holds as ambiguous.
    let known_id = known_id.filter(|_| {
        !matches!(
            prefetched,
            Some(Prefetched::Record { .. } | Prefetched::Ambiguous(_))
        )
    });
    let resolving = known_id.is_none() && prefetched.is_none();
    let normalizer = conn.normalizer();
    let create_guard = create_guard(ctx, obj, old, &key, &conn, walk_started);
    let recorder = StatusAttempt {
        api: Api::namespaced(ctx.kube.clone(), &ns),
        name: obj.name_any(),
        uid: obj.uid().unwrap_or_default(),
        status: EpicPractitionerStatus {
            create_attempt: Some(CreateAttempt {
                npi: obj.spec.npi.clone(),
                connection: conn.base_url().to_string(),
                sent_at: crate::util::now_rfc3339(),
            }),
            ..old.clone()
        },
        rosters: &ctx.rosters,
    };
    let synced = sync_practitioner(
        &conn.client,
        SyncRequest {
            spec: &obj.spec,
            known_id,
            writes,
            deleting,
            paused: false,
            perform_writes: true,
            fetch_roles,
            normalizer: &normalizer,
            conditional_create: conn.conditional_create(),
            disclosure: Disclosure::Masked,
            prefetched,
            known_roles,
            create_guard,
            attempt_recorder: Some(&recorder),
        },
    )
    .await;
    let outcome = match synced {
        Err(e) if resolving && is_search_refusal(&e) => {
            // The instance does not search by identifier after all: resolve from walks only.
            tracing::warn!(connection = %key.1, reason = %e.reason(), "identifier search refused; practitioners of this connection resolve from roster walks");
            ctx.rosters.refuse_search(&key, conn.base_url());
            return Err(Error::Fhir(e));
        }
        other => other?,
    };
    ctx.metrics.ops.write(
        &super::connection::cache::connection_label(&key),
        &outcome.write,
    );
    if let WriteOutcome::Refused(_) = outcome.write {
        conn.mark_refused();
        ctx.note_refused(obj);
    }
    // The ledger resolves the NPI to the new record at once, even if the status write below
    // fails: the next pass reads it instead of creating again.
    if let (WriteOutcome::Created, Some(id)) = (&outcome.write, &outcome.fhir_id) {
        ctx.rosters
            .record_created(&key, conn.base_url(), &obj.spec.npi, id);
    }
    let mut new_status = status::from_outcome(
        obj,
        old,
        &outcome,
        conn.base_url(),
        &write_disabled_message,
        &normalizer,
    );
    // What this process knows of the attempt outlives a cached status from before its write.
    let uid = obj.uid().unwrap_or_default();
    if outcome.fhir_id.is_some() || outcome.create_attempt == AttemptState::Answered {
        ctx.rosters.clear_attempt(&uid);
    } else if new_status.create_attempt.is_none()
        && let Some((_, attempt)) = ctx.rosters.standing_attempt(&uid, None)
    {
        new_status.create_attempt = Some(attempt);
    }
    let new_status = super::practitioner::check_now::verified(old, new_status, conn.resync);
    let done = deleting && deletion_done(&obj.spec, &outcome);
    match &outcome.write {
        WriteOutcome::Failed(e) => {
            tracing::warn!(npi = %obj.spec.npi, reason = %e.reason(), "write failed")
        }
        WriteOutcome::Conflict { attempts, .. } => {
            tracing::warn!(npi = %obj.spec.npi, attempts, "record kept changing between read and write")
        }
        _ => {}
    }
    let requeue = match ctx.mode {
        super::DriftDetection::PerObject => ControllerAction::requeue(jittered(conn.resync)),
        // The roster scan wakes changed records; this long requeue (an hour at least) is only a
        // safety net for a scan that keeps failing.
        super::DriftDetection::Roster => {
            ControllerAction::requeue(jittered(safety_requeue(conn.resync)))
        }
    };
    Ok(Pass::Synced(Box::new((
        new_status,
        Some(outcome),
        requeue,
        done,
    ))))
}

/// What may prove this object's record absent before a POST. An unanswered create attempt in
/// status is dated by this process's own clock (its POST, or when it first saw the attempt),
/// and only a walk that started later than that, plus the request timeout within which the
/// POST may still have landed, proves absence.
fn create_guard(
    ctx: &Context,
    obj: &EpicPractitioner,
    old: &EpicPractitionerStatus,
    key: &super::connection::cache::Key,
    conn: &super::connection::cache::ConnectionHandle,
    walk_started: Option<std::time::Instant>,
) -> CreateGuard {
    let in_status = old
        .create_attempt
        .as_ref()
        .filter(|a| a.npi == obj.spec.npi && a.connection == conn.base_url());
    let uid = obj.uid().unwrap_or_default();
    let since = ctx
        .rosters
        .standing_attempt(&uid, in_status)
        .map(|(t, _)| t);
    let settle = conn.client.settings().request_timeout;
    let walk_after_attempt = since.is_none_or(|t| {
        walk_started.is_some_and(|w| w.checked_duration_since(t).is_some_and(|d| d > settle))
    });
    let search = match ctx.mode {
        super::DriftDetection::PerObject => true,
        super::DriftDetection::Roster => {
            let listed = conn.capability.as_ref().is_none_or(|c| c.npi_search());
            ctx.rosters.searchable(key, conn.base_url(), listed)
        }
    };
    CreateGuard {
        search,
        walk_after_attempt,
    }
}

/// Writes the create attempt into status (the whole status, under the one field manager)
/// before the POST leaves.
struct StatusAttempt<'a> {
    api: Api<EpicPractitioner>,
    name: String,
    uid: String,
    status: EpicPractitionerStatus,
    rosters: &'a super::roster::state::Rosters,
}

impl AttemptRecorder for StatusAttempt<'_> {
    fn record(&self) -> futures::future::BoxFuture<'_, Result<(), String>> {
        Box::pin(async move {
            let patch = json!({
                "apiVersion": EpicPractitioner::api_version(&()),
                "kind": EpicPractitioner::kind(&()),
                "status": self.status,
            });
            self.api
                .patch_status(
                    &self.name,
                    &PatchParams::apply(FIELD_MANAGER).force(),
                    &Patch::Apply(&patch),
                )
                .await
                .map_err(|e| format!("status write failed: {e}"))?;
            if let Some(attempt) = &self.status.create_attempt {
                self.rosters.note_attempt(&self.uid, attempt.clone());
            }
            Ok(())
        })
    }
}

/// In roster mode, how long after a pass an object looks again by itself: an hour at least.
/// Walks wake it when its record changes; this is the safety net for walks that keep failing.
fn safety_requeue(resync: Duration) -> Duration {
    resync.saturating_mul(6).max(Duration::from_secs(3600))
}

/// What roster mode knows before a sync.
enum Prefetch {
    /// What is known, and when the walk it came from started.
    Use(
        Option<Prefetched>,
        Option<Vec<RoleSummary>>,
        Option<std::time::Instant>,
    ),
    /// The connection's first walk has not finished: it resolves the object and wakes it.
    AwaitWalk,
    /// Walks keep coming and none found anything new for this object.
    Covered,
    Failed(crate::fhir::FhirError),
}

/// The walk's hand-over for this object, else for an unresolved one the connection's index
/// (searching only for an NPI the last walk did not see, where search is possible).
fn roster_prefetch(
    ctx: &Context,
    key: &super::connection::cache::Key,
    conn: &super::connection::cache::ConnectionHandle,
    obj: &EpicPractitioner,
    has_id: bool,
    settled: bool,
) -> Prefetch {
    let about = super::roster::state::HandoverFor {
        uid: obj.uid().unwrap_or_default(),
        npi: obj.spec.npi.clone(),
        base_url: conn.base_url().to_string(),
    };
    let handover = ctx.rosters.take_handover(&super::object_key(obj), &about);
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

/// An identifier search the instance does not support: 400 (Epic code 4100 and kin).
fn is_search_refusal(e: &crate::fhir::FhirError) -> bool {
    matches!(e, crate::fhir::FhirError::Invalid { status: 400, .. })
}

/// A duration with +-10% jitter, so objects created together do not poll together. Never
/// panics: a duration too large to scale is returned as it is.
pub fn jittered(d: Duration) -> Duration {
    let factor = 0.9 + rand::random::<f64>() * 0.2;
    Duration::try_from_secs_f64(d.as_secs_f64() * factor).unwrap_or(d)
}

/// Writes status (server-side apply, one field manager) and publishes Events on transitions.
async fn report(
    obj: &EpicPractitioner,
    ctx: &Context,
    old: &EpicPractitionerStatus,
    new: &EpicPractitionerStatus,
    outcome: Option<&SyncOutcome>,
) -> Result<(), Error> {
    let ns = obj.namespace().unwrap_or_default();
    let api: Api<EpicPractitioner> = Api::namespaced(ctx.kube.clone(), &ns);
    if status::changed(old, new) || old.observed_generation != obj.metadata.generation {
        let patch = json!({
            "apiVersion": EpicPractitioner::api_version(&()),
            "kind": EpicPractitioner::kind(&()),
            "status": new,
        });
        api.patch_status(
            &obj.name_any(),
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(&patch),
        )
        .await?;
    }
    for (type_, reason, note) in events::transitions(obj, old, new, outcome) {
        let event = Event {
            type_,
            reason: reason.as_str().into(),
            note: Some(note),
            action: "Reconcile".into(),
            secondary: None,
        };
        if let Err(e) = ctx.recorder.publish(&event, &obj.object_ref(&())).await {
            tracing::warn!(error = %e, "cannot publish an Event");
        }
    }
    Ok(())
}

/// Per-object exponential backoff with jitter; an invalid spec waits for a change.
pub fn error_policy(
    obj: Arc<EpicPractitioner>,
    error: &Error,
    ctx: Arc<Context>,
) -> ControllerAction {
    if error.needs_spec_change() {
        return ControllerAction::await_change();
    }
    let failures = ctx.record_failure(&obj);
    ControllerAction::requeue(retry_delay(error, failures))
}

/// How long an object waits after its `failures`-th failure in a row.
fn retry_delay(error: &Error, failures: u32) -> Duration {
    let base = match error {
        Error::Fhir(crate::fhir::FhirError::Throttled {
            retry_after: Some(d),
        }) => *d,
        _ => Duration::from_secs(5),
    };
    // The Kubernetes API coming back costs Epic nothing: retry soon after it does, instead of
    // waiting out a long backoff built up while it was away (measured in RELIABILITY.md).
    let cap = match error {
        Error::Kube(_) | Error::Finalizer(_) => KUBE_BACKOFF_CAP,
        Error::Connection { failure, .. } if failure.reason == Reason::KubernetesError => {
            KUBE_BACKOFF_CAP
        }
        _ => BACKOFF_CAP,
    };
    backoff(failures, base).min(cap)
}

/// Longest wait before retrying an object that failed (Epic, auth, connection errors).
const BACKOFF_CAP: Duration = Duration::from_secs(600);
/// Longest wait when the Kubernetes API failed.
const KUBE_BACKOFF_CAP: Duration = Duration::from_secs(10);

/// Exponential backoff after `failures` failures in a row, capped at [`BACKOFF_CAP`], with
/// jitter over the upper half so that retries of many objects stay apart.
fn backoff(failures: u32, base: Duration) -> Duration {
    let exp = base.saturating_mul(1 << failures.min(7)).min(BACKOFF_CAP);
    exp.mul_f64(0.5 + rand::random::<f64>() * 0.5)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jitter_and_backoff_never_panic() {
        assert!(jittered(Duration::MAX) > Duration::from_secs(3600));
        let d = jittered(Duration::from_secs(100));
        assert!(d >= Duration::from_secs(90) && d <= Duration::from_secs(110));
        for failures in [0, 1, 7, u32::MAX] {
            assert!(backoff(failures, Duration::MAX) <= Duration::from_secs(600));
        }
    }

    #[test]
    fn a_kubernetes_outage_is_retried_within_seconds_of_its_end() {
        // Found by the fault suite: after 20 s without the API server, objects waited up to
        // 40 s more on a backoff built up while it was away.
        let kube = Error::Kube(kube::Error::LinesCodecMaxLineLengthExceeded);
        let epic = Error::Fhir(crate::fhir::FhirError::Timeout("slow".into()));
        for failures in [3, 7, 30] {
            assert!(retry_delay(&kube, failures) <= KUBE_BACKOFF_CAP);
        }
        assert!(
            retry_delay(&epic, 7) > KUBE_BACKOFF_CAP,
            "Epic's budget still backs off"
        );
    }
}
