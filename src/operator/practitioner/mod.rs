//! The EpicPractitioner controller, as observe -> decide -> effect. `reconcile` keeps a
//! connection to its share of the workers and routes the finalizer; each pass then gathers
//! what it needs (`observe`: the connection, the walks' knowledge, the sync with Epic), turns
//! it into a decision without I/O (`decide`, from the typed `verdict`, `status` and
//! `events`), and performs it (`effect`: status, Events, memory, metric, requeue).

mod attempt;
pub(crate) mod backoff;
pub(crate) mod check_now;
mod decide;
mod effect;
pub(crate) mod events;
pub(crate) mod observe;
pub(crate) mod status;
pub(crate) mod status_limits;
mod status_write;

#[cfg(test)]
mod decide_tests;

use std::sync::Arc;

use kube::api::{Patch, PatchParams};
use kube::runtime::controller::Action as ControllerAction;
use kube::runtime::finalizer::{Event as FinalizerEvent, finalizer};
use kube::{Api, Resource, ResourceExt};
use serde_json::json;

use super::Context;
use super::error::Error;
use super::metrics::ReconcileTimer;
use super::slim::CachedPractitioner;
use crate::crd::{DeletionPolicy, EpicPractitioner};

pub use backoff::jittered;

/// Finalizer held while deletionPolicy is Deactivate.
pub const FINALIZER: &str = "epic-operator.dev/deactivate";
/// The single field manager of every status write.
pub const FIELD_MANAGER: &str = "epic-operator";

pub async fn reconcile(
    obj: Arc<CachedPractitioner>,
    ctx: Arc<Context>,
) -> Result<ControllerAction, Error> {
    // A connection over its share of the workers waits in the queue, not in a worker (before
    // the finalizer helper, which would take an early return as a finished cleanup).
    let connection = (
        obj.namespace().unwrap_or_default(),
        obj.spec.connection_ref.name.clone(),
    );
    let Some(_worker) = ctx.fair.enter(&connection) else {
        return Ok(ControllerAction::requeue(backoff::jittered(
            backoff::OVER_SHARE_REQUEUE,
        )));
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
            Ok(()) => pass(obj.clone(), ctx.clone(), false, &timer).await,
            Err(e) => Err(e),
        }
    } else if wants_finalizer || has_finalizer && deleting {
        // The helper reads only the metadata, which the stand-in carries whole; the pass
        // reads the object whole itself.
        let (obj, ctx, timer) = (&obj, &ctx, &timer);
        finalizer(&api, FINALIZER, Arc::new(obj.stand_in()), |event| {
            let deleting = matches!(event, FinalizerEvent::Cleanup(_));
            pass(obj.clone(), ctx.clone(), deleting, timer)
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
        pass(obj.clone(), ctx.clone(), false, &timer).await
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
    obj: &CachedPractitioner,
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

/// One pass for a live object (`deleting` false) or a deleting one holding the finalizer:
/// observe (I/O), decide (pure), effect (I/O). Every outcome, failures included, is written
/// to status before returning.
async fn pass(
    obj: Arc<CachedPractitioner>,
    ctx: Arc<Context>,
    deleting: bool,
    timer: &ReconcileTimer<'_>,
) -> Result<ControllerAction, Error> {
    let observation = observe::observe(&obj, &ctx, deleting).await;
    let decision = decide::decide(&observation);
    effect::perform(&ctx, observation, decision, timer).await
}

/// Per-object exponential backoff with jitter; an invalid spec waits for a change.
pub fn error_policy(
    obj: Arc<CachedPractitioner>,
    error: &Error,
    ctx: Arc<Context>,
) -> ControllerAction {
    if error.needs_spec_change() {
        return ControllerAction::await_change();
    }
    let (object, uid) = super::slim::identity(&*obj);
    let failures = ctx.memory.count_failure(&object, &uid);
    ControllerAction::requeue(backoff::retry_delay(error, failures))
}
