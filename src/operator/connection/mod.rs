//! The EpicConnection reconcile: load the Secret's key, obtain a token, probe the
//! CapabilityStatement, report, and wake the practitioners that use the connection when it
//! changed.

pub(crate) mod cache;
mod connector;
mod connector;
pub(crate) mod key_rotation;
pub(crate) mod key_secret;
pub(crate) mod keys;
mod managed_secret;
pub(crate) mod tls;

use std::sync::Arc;
use std::time::Duration;

use kube::api::{Patch, PatchParams};
use kube::runtime::controller::Action as ControllerAction;
use kube::runtime::events::Event;
use kube::{Api, Resource, ResourceExt};
use serde_json::json;

use super::Context;
use super::connection::cache::{Built, connection_label};
use super::connection::keys::{key_events, key_report};
use super::error::{ConnectionFailure, Error};
use super::jwks::jwks_url;
use super::practitioner::status_limits::MAX_MESSAGE_BYTES;
use super::practitioner::{FIELD_MANAGER, jittered};
use crate::crd::{Condition, ConditionStatus, EpicConnection, LastError, Reason, set_condition};
use crate::util::{bounded_message, now_rfc3339};

pub async fn reconcile(
    conn: Arc<EpicConnection>,
    ctx: Arc<Context>,
) -> Result<ControllerAction, Error> {
    let timer = ctx.metrics.start_reconcile("EpicConnection");
    let ns = conn.namespace().unwrap_or_default();
    let name = conn.name_any();
    if conn.meta().deletion_timestamp.is_some() {
        deleted(&ctx, &conn).await;
        return Ok(ControllerAction::await_change());
    }
    let old = conn.status.clone().unwrap_or_default();
    // The Secret is read every pass (about a minute apart); Epic is probed again only once the
    // resync interval has passed since the last probe.
    let resync = conn
        .spec
        .resync_interval()
        .unwrap_or(Duration::from_secs(600));
    let probe_due = old
        .last_probe_time
        .as_deref()
        .and_then(crate::util::age_of)
        .is_none_or(|age| age >= resync);
    // Managed keys first: a key generated or retired now is in the Secret the build reads.
    let mut retry_rotation_soon = false;
    let rotation = match key_rotation::ensure_managed_keys(&ctx.kube, &conn).await {
        Ok(r) => Ok(r),
        // A conflicting write or an API hiccup says nothing about the keys in place: the
        // connection goes on with them, and rotation is tried again shortly.
        Err(e @ key_rotation::RotationError::Kube { .. }) => {
            tracing::warn!(connection = %name, namespace = %ns, error = %e, "managed key rotation deferred");
            retry_rotation_soon = true;
            Ok(None)
        }
        Err(e) => {
            tracing::warn!(connection = %name, namespace = %ns, reason = %e.reason(), error = %e, "managed key rotation refused");
            Err(e)
        }
    };
    if let Ok(Some(r)) = &rotation
        && let Some(secret) = &r.written
        && let Err(e) = ctx.jwks.publish(&conn, secret)
    {
        tracing::warn!(connection = %name, namespace = %ns, error = %e, "the new keys could not be published");
    }
    let built = match &rotation {
        Err(e) => {
            let message = e.to_string();
            // Practitioners are woken only when this is news.
            let news = !old.conditions.iter().any(|c| {
                c.type_ == "Ready" && c.message == bounded_message(&message, MAX_MESSAGE_BYTES)
            });
            Built::Failed(
                ConnectionFailure {
                    fingerprint: String::new(),
                    reason: e.reason(),
                    message,
                    http_status: None,
                },
                news,
            )
        }
        Ok(_) => ctx.connections.build(&conn, probe_due).await,
    };
    let rotation = rotation.ok().flatten();
    let mut s = old.clone();
    s.observed_generation = conn.metadata.generation;
    s.jwks_url = ctx
        .jwks_public_url
        .as_deref()
        .map(|base| jwks_url(base, &ns, &name));
    let generation = conn.metadata.generation;
    let now = chrono::Utc::now();
    let mut next_key_event = None;
    let (ready, reason, message, wake) = match &built {
        Built::Unchanged(h) | Built::Changed(h) => {
            let tokens = h.client.tokens();
            // A new key Epic refused is tried again when its wait is over (the token in hand
            // stays in use if it is refused again).
            tokens.retry_refused_key().await;
            let token = tokens.token().await;
            s.token_url = Some(tokens.token_url().to_string());
            if let Ok(t) = &token {
                s.token_expires_at = Some(
                    t.expires_at
                        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                );
                s.granted_scopes = t.scopes.clone();
            }
            s.writable = match h.writes() {
                crate::reconcile::WriteCapability::Enabled => Some(true),
                crate::reconcile::WriteCapability::Disabled => Some(false),
                crate::reconcile::WriteCapability::Unknown => None,
            };
            s.npi_search_supported = h.capability.as_ref().map(|c| c.npi_search());
            s.last_probe_time = Some(h.probe_time.clone());
            s.last_error = None;
            let report = key_report(tokens.keys(), &tokens.key_use(), rotation.as_ref(), now);
            if let Some(since) = report.signing_since {
                ctx.metrics.signing_key_age(
                    &connection_label(&(ns.clone(), name.clone())),
                    (now - since).to_std().unwrap_or_default(),
                );
            }
            let used = tokens.key_use();
            let accepted_now = report.status.last_accepted_key_id
                != old
                    .keys
                    .as_ref()
                    .and_then(|k| k.last_accepted_key_id.clone());
            next_key_event = [
                tokens.keys().next_switch_after(now),
                // A refused new key is tried again then.
                used.retry_refused_at.filter(|t| *t > now),
                // Epic just accepted a newer key: a held retirement can go at once.
                rotation
                    .as_ref()
                    .filter(|r| r.plan.retirement_held.is_some() && accepted_now)
                    .map(|_| now),
            ]
            .into_iter()
            .flatten()
            .min();
            s.keys = Some(report.status);
            load_report(&ctx, &(ns.clone(), name.clone()), h, &mut s, generation);
            let changed = matches!(built, Built::Changed(_));
            let mut message = "token obtained and capabilities probed".to_string();
            if let Some(note) = report.note {
                message = format!("{message}; {note}");
            }
            (
                true,
                Reason::Ready,
                bounded_message(&message, MAX_MESSAGE_BYTES),
                changed,
            )
        }
        Built::Failed(f, changed) => {
            s.last_error = Some(LastError {
                reason: f.reason.as_str().into(),
                message: bounded_message(&f.message, MAX_MESSAGE_BYTES),
                http_status: f.http_status,
                epic_codes: Vec::new(),
            });
            (
                false,
                f.reason,
                bounded_message(&f.message, MAX_MESSAGE_BYTES),
                *changed,
            )
        }
    };
    if let Some(r) = &rotation
        && let Some(periods) = &r.periods
    {
        next_key_event = next_key_event
            .into_iter()
            .chain(key_rotation::next_event(
                &r.plan,
                &r.published,
                periods,
                now,
            ))
            .min();
    }
    set_condition(
        &mut s.conditions,
        Condition {
            type_: "Ready".into(),
            status: if ready {
                ConditionStatus::True
            } else {
                ConditionStatus::False
            },
            reason: reason.as_str().into(),
            message,
            last_transition_time: now_rfc3339(),
            observed_generation: generation,
        },
    );
    if s != old {
        let api: Api<EpicConnection> = Api::namespaced(ctx.kube.clone(), &ns);
        // status.walk belongs to the walks' own field manager: left out here.
        let patch = json!({"apiVersion": EpicConnection::api_version(&()), "kind": EpicConnection::kind(&()), "status": super::roster::stats::without_walk(&s)});
        api.patch_status(
            &name,
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(&patch),
        )
        .await?;
    }
    if let Some(keys) = &s.keys {
        for (type_, reason, note) in key_events(old.keys.as_ref(), keys, rotation.as_ref()) {
            let event = Event {
                type_,
                reason: reason.as_str().into(),
                note: Some(note),
                action: "RotateKeys".into(),
                secondary: None,
            };
            if let Err(e) = ctx.recorder.publish(&event, &conn.object_ref(&())).await {
                tracing::warn!(error = %e, "cannot publish an Event");
            }
        }
    }
    if wake {
        // Practitioners of this connection learn of the new key, URL or failure now.
        for p in ctx.members.of_connection(&(ns.clone(), name.clone())) {
            let _ = ctx.wake.unbounded_send(p);
        }
    }
    timer.finish((!ready).then_some(reason));
    // Back at the next key event (a switch, a retirement, a rotation) when it comes before
    // the next Secret check; a moment after it, so the event is due when the pass runs.
    let mut next = SECRET_RECHECK.min(resync);
    if retry_rotation_soon {
        next = next.min(ROTATION_RETRY);
    }
    if let Some(t) = next_key_event {
        let until = (t - chrono::Utc::now()).to_std().unwrap_or_default() + KEY_EVENT_MARGIN;
        next = next.min(until);
        return Ok(ControllerAction::requeue(next));
    }
    Ok(ControllerAction::requeue(jittered(next)))
}

/// `status.load`, the RosterWalks and RequestBudget conditions, and the load gauges.
fn load_report(
    ctx: &Context,
    key: &super::connection::cache::Key,
    handle: &super::connection::cache::ConnectionHandle,
    s: &mut crate::crd::EpicConnectionStatus,
    generation: Option<i64>,
) {
    let practitioners = super::roster::load::practitioners_of(ctx, key);
    let (load, conditions) = ctx
        .walk_plans
        .report(key, handle, practitioners, generation);
    ctx.metrics.load.set(
        &connection_label(key),
        &super::metrics::load::LoadNumbers {
            rate: handle.client.rate().snapshot().current,
            used: load.requests_used,
            budget: handle.spec.request_budget.as_ref().map(|b| b.requests),
            projected_per_day: load.projected_requests_per_day,
        },
    );
    let mut load = load;
    let mut conditions = conditions;
    if ctx.mode == super::DriftDetection::PerObject {
        // No roster walks in this mode: each practitioner reads its own record.
        conditions.retain(|c| c.type_ != "RosterWalks");
        s.conditions.retain(|c| c.type_ != "RosterWalks");
        load.walk_interval = None;
        load.next_walk_time = None;
        load.drift_detection = format!(
            "each practitioner reads its own record every {}: drift made in Epic is noticed within about that",
            super::roster::pace::human(handle.resync)
        );
    }
    s.load = Some(load);
    if handle.spec.request_budget.is_none() {
        s.conditions.retain(|c| c.type_ != "RequestBudget");
    }
    for c in conditions {
        set_condition(&mut s.conditions, c);
    }
}

/// How soon managed rotation is tried again after a Kubernetes API error.
const ROTATION_RETRY: Duration = Duration::from_secs(5);

/// How long after a key event its pass runs (clocks of one host, so a small margin).
const KEY_EVENT_MARGIN: Duration = Duration::from_millis(200);

/// How often a connection re-reads its Secret (a rotated or deleted key takes effect then).
const SECRET_RECHECK: Duration = Duration::from_secs(60);

/// A connection is gone: drop its client and token, and wake its practitioners so they report
/// ConnectionNotReady and send nothing more.
pub async fn deleted(ctx: &Context, conn: &EpicConnection) {
    let ns = conn.namespace().unwrap_or_default();
    let name = conn.name_any();
    ctx.connections.forget(&ns, &name).await;
    ctx.metrics
        .forget_connection(&connection_label(&(ns.clone(), name.clone())));
    ctx.jwks.refresh_now();
    ctx.rosters.forget(&(ns.clone(), name.clone()));
    ctx.walk_plans.forget(&(ns.clone(), name.clone()));
    tracing::info!(connection = %name, namespace = %ns, "EpicConnection deleted; its client and token are dropped");
    for p in ctx.members.of_connection(&(ns, name)) {
        let _ = ctx.wake.unbounded_send(p);
    }
}

pub fn error_policy(
    _conn: Arc<EpicConnection>,
    _error: &Error,
    _ctx: Arc<Context>,
) -> ControllerAction {
    ControllerAction::requeue(jittered(Duration::from_secs(30)))
}
