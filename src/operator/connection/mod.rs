//! The EpicConnection reconcile: load the Secret's key, obtain a token, probe the
//! CapabilityStatement, report, and wake the practitioners that use the connection when it
//! changed.

pub(crate) mod cache;
mod connector;
pub(crate) mod key_rotation;
pub(crate) mod key_secret;
pub(crate) mod keys;
mod managed_secret;
pub(crate) mod status;
pub(crate) mod tls;

use std::sync::Arc;
use std::time::Duration;

use kube::api::{Patch, PatchParams};
use kube::runtime::controller::Action as ControllerAction;
use kube::runtime::events::Event;
use kube::{Api, Resource, ResourceExt};
use serde_json::json;

use super::Context;
use super::connection::cache::{Built, ConnectionHandle, Key, connection_label};
use super::connection::key_rotation::{RotationError, RotationOutcome};
use super::connection::keys::{key_events, key_report};
use super::connection::status::{LoadFacts, Outcome, PassFacts, ReadyFacts, TokenFacts};
use super::error::Error;
use super::jwks::jwks_url;
use super::practitioner::{FIELD_MANAGER, jittered};
use crate::crd::{EpicConnection, KeysStatus};

pub async fn reconcile(
    conn: Arc<EpicConnection>,
    ctx: Arc<Context>,
) -> Result<ControllerAction, Error> {
    let timer = ctx.metrics.start_reconcile("EpicConnection");
    if conn.meta().deletion_timestamp.is_some() {
        deleted(&ctx, &conn).await;
        return Ok(ControllerAction::await_change());
    }
    let key = (conn.namespace().unwrap_or_default(), conn.name_any());
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
    let rotation = rotate_keys(&ctx, &conn, &key).await;
    let rotated = rotation.result.as_ref().ok().and_then(Option::as_ref);
    let (outcome, now) = match &rotation.result {
        Err(e) => (status::rotation_refused(&old, e), chrono::Utc::now()),
        Ok(_) => {
            let built = ctx.connections.build(&conn, probe_due).await;
            let now = chrono::Utc::now();
            let generation = conn.metadata.generation;
            let outcome = observe(&ctx, &key, built, rotated, now, generation).await;
            (outcome, now)
        }
    };
    let pass = status::next_status(
        &old,
        PassFacts {
            generation: conn.metadata.generation,
            jwks_url: ctx
                .jwks_public_url
                .as_deref()
                .map(|base| jwks_url(base, &key.0, &key.1)),
            rotation: rotated,
            outcome,
            now,
        },
    );
    if pass.status != old {
        write_status(&ctx, &key, &pass.status).await?;
    }
    if let Some(keys) = &pass.status.keys {
        publish_key_events(&ctx, &conn, old.keys.as_ref(), keys, rotated).await;
    }
    if pass.wake {
        // Practitioners of this connection learn of the new key, URL or failure now.
        wake_practitioners(&ctx, &key);
    }
    timer.finish((!pass.ready).then_some(pass.reason));
    Ok(next_pass(resync, rotation.retry_soon, pass.next_key_event))
}

/// Managed rotation in one pass: what it did, or why it could not run.
struct RotationPass {
    result: Result<Option<RotationOutcome>, RotationError>,
    /// A Kubernetes API error deferred it: try again shortly.
    retry_soon: bool,
}

/// Runs managed rotation, and publishes at once the keys it wrote.
async fn rotate_keys(ctx: &Context, conn: &EpicConnection, key: &Key) -> RotationPass {
    let (ns, name) = key;
    let rotation = match key_rotation::ensure_managed_keys(&ctx.kube, conn).await {
        Ok(r) => r,
        // A conflicting write or an API hiccup says nothing about the keys in place: the
        // connection goes on with them, and rotation is tried again shortly.
        Err(e @ RotationError::Kube { .. }) => {
            tracing::warn!(connection = %name, namespace = %ns, error = %e, "managed key rotation deferred");
            return RotationPass {
                result: Ok(None),
                retry_soon: true,
            };
        }
        Err(e) => {
            tracing::warn!(connection = %name, namespace = %ns, reason = %e.reason(), error = %e, "managed key rotation refused");
            return RotationPass {
                result: Err(e),
                retry_soon: false,
            };
        }
    };
    if let Some(secret) = rotation.as_ref().and_then(|r| r.written.as_ref())
        && let Err(e) = ctx.jwks.publish(conn, secret)
    {
        tracing::warn!(connection = %name, namespace = %ns, error = %e, "the new keys could not be published");
    }
    RotationPass {
        result: Ok(rotation),
        retry_soon: false,
    }
}

/// What the built connection says now: a usable one is asked for its token (a refused new key
/// is tried again when its wait is over), its keys and its load.
async fn observe(
    ctx: &Context,
    key: &Key,
    built: Built,
    rotation: Option<&RotationOutcome>,
    now: chrono::DateTime<chrono::Utc>,
    generation: Option<i64>,
) -> Outcome {
    let (h, changed) = match built {
        Built::Unchanged(h) => (h, false),
        Built::Changed(h) => (h, true),
        Built::Failed(failure, news) => return Outcome::Failed { failure, news },
    };
    let tokens = h.client.tokens();
    // The token in hand stays in use if the new key is refused again.
    tokens.retry_refused_key().await;
    let token = tokens.token().await.ok().map(|t| TokenFacts {
        expires_at: t.expires_at,
        scopes: t.scopes,
    });
    let used = tokens.key_use();
    let keys = key_report(tokens.keys(), &used, rotation, now);
    if let Some(since) = keys.signing_since {
        ctx.metrics.signing_key_age(
            &connection_label(key),
            (now - since).to_std().unwrap_or_default(),
        );
    }
    Outcome::Ready(Box::new(ReadyFacts {
        token_url: tokens.token_url().to_string(),
        token,
        writes: h.writes(),
        npi_search_supported: h.capability.as_ref().map(|c| c.npi_search()),
        probe_time: h.probe_time.clone(),
        retry_refused_at: used.retry_refused_at,
        next_switch: tokens.keys().next_switch_after(now),
        keys,
        load: load_report(ctx, key, &h, generation),
        changed,
    }))
}

/// The walk plans' `status.load` and conditions, and the load gauges.
fn load_report(
    ctx: &Context,
    key: &Key,
    handle: &ConnectionHandle,
    generation: Option<i64>,
) -> LoadFacts {
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
    LoadFacts {
        load,
        conditions,
        per_object: (ctx.mode == super::DriftDetection::PerObject).then_some(handle.resync),
        budget: handle.spec.request_budget.is_some(),
    }
}

/// The status by server-side apply under the operator's field manager.
async fn write_status(
    ctx: &Context,
    (ns, name): &Key,
    s: &crate::crd::EpicConnectionStatus,
) -> Result<(), Error> {
    let api: Api<EpicConnection> = Api::namespaced(ctx.kube.clone(), ns);
    // status.walk belongs to the walks' own field manager: left out here.
    let patch = json!({"apiVersion": EpicConnection::api_version(&()), "kind": EpicConnection::kind(&()), "status": super::roster::stats::without_walk(s)});
    api.patch_status(
        name,
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(&patch),
    )
    .await?;
    Ok(())
}

/// One Event per rotation step since the last status.
async fn publish_key_events(
    ctx: &Context,
    conn: &EpicConnection,
    old: Option<&KeysStatus>,
    keys: &KeysStatus,
    rotation: Option<&RotationOutcome>,
) {
    for (type_, reason, note) in key_events(old, keys, rotation) {
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

fn wake_practitioners(ctx: &Context, key: &Key) {
    for p in ctx.members.of_connection(key) {
        let _ = ctx.wake.unbounded_send(p);
    }
}

/// Back at the next key event (a switch, a retirement, a rotation) when it comes before the
/// next Secret check; a moment after it, so the event is due when the pass runs.
fn next_pass(
    resync: Duration,
    retry_rotation_soon: bool,
    next_key_event: Option<chrono::DateTime<chrono::Utc>>,
) -> ControllerAction {
    let mut next = SECRET_RECHECK.min(resync);
    if retry_rotation_soon {
        next = next.min(ROTATION_RETRY);
    }
    if let Some(t) = next_key_event {
        let until = (t - chrono::Utc::now()).to_std().unwrap_or_default() + KEY_EVENT_MARGIN;
        return ControllerAction::requeue(next.min(until));
    }
    ControllerAction::requeue(jittered(next))
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
    wake_practitioners(ctx, &(ns, name));
}

pub fn error_policy(
    _conn: Arc<EpicConnection>,
    _error: &Error,
    _ctx: Arc<Context>,
) -> ControllerAction {
    ControllerAction::requeue(jittered(Duration::from_secs(30)))
}
