//! Effect: performs a decision. Writes status (server-side apply, one field manager) when it
//! changed, publishes the Events, updates the object's memory and what the connection learned,
//! notes the metric, and returns when to look again.

use kube::runtime::controller::Action;
use kube::runtime::events::Event;
use kube::{Api, Resource, ResourceExt};

use super::backoff::{backoff, jittered};
use super::decide::{Decision, Learned, Next};
use super::observe::{Found, Observation};
use super::status_write::apply_status;
use crate::crd::{EpicPractitioner, EpicPractitionerStatus};
use crate::operator::Context;
use crate::operator::connection::cache::connection_label;
use crate::operator::error::Error;
use crate::operator::metrics::ReconcileTimer;

/// Performs `decision` for the pass `obs` observed.
pub async fn perform(
    ctx: &Context,
    obs: Observation,
    decision: Decision,
    timer: &ReconcileTimer<'_>,
) -> Result<Action, Error> {
    let obj = &*obs.obj;
    let (object, uid) = crate::operator::slim::identity(obj);
    // What the connection learned goes first: a created id enters the ledger before the
    // status write below, which can fail, so the next pass reads the new record instead of
    // creating again.
    let lessons: Vec<_> = decision
        .learned
        .iter()
        .filter_map(Learned::lesson)
        .collect();
    match &obs.found {
        Found::Synced(s) => {
            ctx.metrics
                .ops
                .write(&connection_label(&s.key), &s.outcome.write);
            if decision.learned.contains(&Learned::WriteRefused)
                && let Some(conn) = &obs.conn
            {
                conn.mark_refused();
            }
            ctx.rosters.learn(&s.key, &s.base_url, &lessons);
        }
        Found::Failed {
            error,
            search_refused_on: Some((key, base_url)),
        } if !lessons.is_empty() => {
            tracing::warn!(connection = %key.1, reason = %error.reason(), "identifier search refused; practitioners of this connection resolve from roster walks");
            ctx.rosters.learn(key, base_url, &lessons);
        }
        _ => {}
    }
    if let Some(new) = &decision.status {
        report(obj, ctx, new, decision.write_status, &decision.events).await?;
    }
    // After the status write: when it fails, the error policy counts the failure instead.
    let failures = ctx.memory.remember(&object, &uid, &decision.remember);
    if let Some((ok, reason)) = decision.metric {
        timer.note(ok, reason);
    }
    if let Found::Synced(s) = &obs.found {
        log_write(obj, &s.outcome.write);
    }
    match decision.next {
        Next::Requeue(d) => Ok(Action::requeue(jittered(d))),
        // The sweep holds the one timer of all the connection's members.
        Next::SafetyNet | Next::AwaitChange => Ok(Action::await_change()),
        Next::Backoff(base) => Ok(Action::requeue(backoff(failures, base))),
        Next::Blocked(why) => Err(Error::DeletionBlocked { why }),
        Next::Fail => match obs.found {
            Found::Failed { error, .. } => Err(error),
            // A decision to fail comes only from a failed observation.
            _ => Ok(Action::await_change()),
        },
    }
}

fn log_write(obj: &EpicPractitioner, write: &crate::pipeline::WriteOutcome) {
    use crate::pipeline::WriteOutcome;
    match write {
        WriteOutcome::Failed(e) => {
            tracing::warn!(npi = %obj.spec.npi, reason = %e.reason(), "write failed")
        }
        WriteOutcome::Conflict { attempts, .. } => {
            tracing::warn!(npi = %obj.spec.npi, attempts, "record kept changing between read and write")
        }
        _ => {}
    }
}

/// Writes status when it changed and publishes the Events.
async fn report(
    obj: &EpicPractitioner,
    ctx: &Context,
    new: &EpicPractitionerStatus,
    write: bool,
    events: &[(kube::runtime::events::EventType, crate::crd::Reason, String)],
) -> Result<(), Error> {
    if write {
        let api: Api<EpicPractitioner> =
            Api::namespaced(ctx.kube.clone(), &obj.namespace().unwrap_or_default());
        apply_status(&api, &obj.name_any(), new).await?;
    }
    for (type_, reason, note) in events {
        let event = Event {
            type_: *type_,
            reason: reason.as_str().into(),
            note: Some(note.clone()),
            action: "Reconcile".into(),
            secondary: None,
        };
        if let Err(e) = ctx.recorder.publish(&event, &obj.object_ref(&())).await {
            tracing::warn!(error = %e, "cannot publish an Event");
        }
    }
    Ok(())
}
