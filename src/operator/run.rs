//! `epic-operator run`, as a few named steps: serve health and the JWK Sets, win the lease,
//! check access, watch both kinds, build the shared context, and run the controllers, the
//! roster walks and the token metrics until a signal or the loss of leadership.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use futures::channel::mpsc::{UnboundedReceiver, unbounded};
use futures::{Stream, StreamExt};
use kube::api::ListParams;
use kube::runtime::controller::Config as ControllerConfig;
use kube::runtime::events::{Recorder, Reporter};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{Controller, Predicate, WatchStreamExt, predicates, watcher};
use kube::{Api, ResourceExt};

use super::slim::{CachedPractitioner, PractitionerRef};
use super::watch_backoff::WatchBackoff;
use super::{
    Connections, Context, DriftDetection, JwksPublisher, LeaderElector, Metrics, OperatorConfig,
    RunError, connection, fair_share, health, jwks, logging, members, memory, practitioner, roster,
};
use crate::crd::EpicConnection;

/// Runs the operator until SIGTERM/SIGINT or loss of leadership.
pub async fn run(config: OperatorConfig) -> Result<(), RunError> {
    let http = crate::http::client_with(&config.tls).map_err(RunError::Http)?;
    let client = kube::Client::try_default()
        .await
        .map_err(RunError::Kubernetes)?;
    let metrics = Arc::new(Metrics::default());
    let readiness = Arc::new(health::Readiness::default());
    let health_task = tokio::spawn(health::serve(
        config.metrics_addr,
        metrics.clone(),
        readiness.clone(),
    ));
    let jwks = Arc::new(JwksPublisher::default());
    let jwks_task = serve_jwks(&config, &client, &jwks).await?;
    let identity = format!(
        "{}-{:08x}",
        std::env::var("POD_NAME")
            .or_else(|_| std::env::var("HOSTNAME"))
            .unwrap_or_else(|_| "epic-operator".into()),
        rand::random::<u32>()
    );
    let elector = elect(&config, &client, &identity, &readiness, &metrics).await?;
    metrics.ops.set_leader(true);
    let (practitioner_api, connection_api) = check_access(&config, &client).await?;
    let members = Arc::new(members::Members::default());
    let memory = Arc::new(memory::Memory::default());
    let (practitioners, practitioner_stream) =
        watch_practitioners(practitioner_api, members.clone(), memory.clone());
    metrics.watch_store(practitioners.clone());
    let (connections_store, connection_stream, deleted_rx) = watch_connections(connection_api);
    let (wake_tx, wake_rx) = unbounded::<PractitionerRef>();
    let ctx = Arc::new(Context {
        kube: client.clone(),
        connections: connections(&config, &client, http, &metrics, &connections_store),
        metrics: metrics.clone(),
        recorder: Recorder::new(
            client.clone(),
            Reporter {
                controller: "epic-operator".into(),
                instance: Some(identity.clone()),
            },
        ),
        practitioners: practitioners.clone(),
        wake: wake_tx,
        mode: config.drift_detection,
        rosters: roster::state::Rosters::default(),
        walk_plans: roster::load::WalkPlans::default(),
        jwks: jwks.clone(),
        jwks_public_url: config.jwks_public_url.clone(),
        fair: fair_share::FairShare::new(config.concurrency),
        memory,
        members,
    });
    let controllers = controllers(
        &ctx,
        &config,
        practitioner_stream,
        practitioners,
        wake_rx,
        connection_stream,
        connections_store,
        deleted_rx,
    );
    readiness.set(true);
    tracing::info!(mode = ?config.drift_detection, namespace = config.namespace.as_deref(), "controllers started");
    let outcome = tokio::select! {
        _ = controllers => Ok(()),
        _ = roster_walks(ctx.clone()) => Ok(()),
        _ = token_metrics(ctx.clone()) => Ok(()),
        why = hold_leadership(elector.as_ref()) => Err(RunError::LostLeadership(why)),
        r = health_task => Err(RunError::HealthServer(format!("{r:?}"))),
        r = jwks_task => Err(RunError::JwksServer(format!("{r:?}"))),
    };
    if let Some(e) = &elector {
        e.release().await;
    }
    tracing::info!("operator stopped");
    outcome
}

/// The roster walks, in roster mode; never ends otherwise.
async fn roster_walks(ctx: Arc<Context>) {
    if ctx.mode == DriftDetection::Roster {
        roster::run(ctx).await;
    } else {
        std::future::pending::<()>().await;
    }
}

/// Ends with the reason when leadership is lost; never without leader election.
async fn hold_leadership(elector: Option<&LeaderElector>) -> String {
    match elector {
        Some(e) => e.hold().await,
        None => std::future::pending::<String>().await,
    }
}

/// Every replica serves the JWK Sets, leader or not: Epic may fetch from any of them.
async fn serve_jwks(
    config: &OperatorConfig,
    client: &kube::Client,
    jwks: &Arc<JwksPublisher>,
) -> Result<tokio::task::JoinHandle<std::io::Result<()>>, RunError> {
    let Some(addr) = config.jwks_addr else {
        return Ok(tokio::spawn(std::future::pending::<std::io::Result<()>>()));
    };
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| RunError::JwksServer(format!("cannot listen on {addr}: {e}")))?;
    tracing::info!(%addr, public_url = config.jwks_public_url.as_deref(), "serving JWK Sets at /jwks/{{namespace}}/{{connection}}");
    tokio::spawn(jwks.clone().run(client.clone(), config.namespace.clone()));
    let served = tokio::spawn(jwks::serve(listener, jwks.clone()));
    if !jwks.wait_loaded(Duration::from_secs(30)).await {
        tracing::warn!(
            "the JWK Sets are not loaded after 30 s (Kubernetes API?); serving 503 until they are"
        );
    }
    Ok(served)
}

/// Waits for the Lease when leader election is on.
async fn elect(
    config: &OperatorConfig,
    client: &kube::Client,
    identity: &str,
    readiness: &health::Readiness,
    metrics: &Metrics,
) -> Result<Option<LeaderElector>, RunError> {
    if !config.leader_election {
        return Ok(None);
    }
    let ns = config
        .lease_namespace
        .clone()
        .unwrap_or_else(|| client.default_namespace().to_string());
    let e = LeaderElector::new(
        client.clone(),
        &ns,
        &config.lease_name,
        identity,
        Duration::from_secs(15),
    );
    // A standby replica is healthy and ready; it just does not reconcile.
    readiness.set(true);
    metrics.ops.set_leader(false);
    tracing::info!(identity = %identity, lease = %config.lease_name, "waiting for leadership");
    e.acquire().await.map_err(RunError::LeaderElection)?;
    Ok(Some(e))
}

/// Fails loudly at start-up, not silently in a watch loop, when the CRDs are missing or the
/// RBAC does not allow what the operator needs.
async fn check_access(
    config: &OperatorConfig,
    client: &kube::Client,
) -> Result<(Api<CachedPractitioner>, Api<EpicConnection>), RunError> {
    let practitioner_api: Api<CachedPractitioner> = match &config.namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    };
    let connection_api: Api<EpicConnection> = match &config.namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    };
    let one = ListParams::default().limit(1);
    practitioner_api
        .list(&one)
        .await
        .map_err(|source| RunError::Startup {
            what: "epicpractitioners",
            source,
        })?;
    connection_api
        .list(&one)
        .await
        .map_err(|source| RunError::Startup {
            what: "epicconnections",
            source,
        })?;
    Ok((practitioner_api, connection_api))
}

type Events<K> = std::pin::Pin<Box<dyn Stream<Item = Result<K, watcher::Error>> + Send>>;

/// Practitioners: a reflector store of `CachedPractitioner`s (`src/operator/slim.rs`) feeding a trigger
/// stream that ignores status-only changes (`run_changes.rs`), so the operator's own status
/// writes do not cause another round of Epic requests. The members
/// index and the per-object memory follow the same watch: deleted objects leave both.
fn watch_practitioners(
    api: Api<CachedPractitioner>,
    members: Arc<members::Members>,
    memory: Arc<memory::Memory>,
) -> (Store<CachedPractitioner>, Events<CachedPractitioner>) {
    let (store, writer) = reflector::store::<CachedPractitioner>();
    let mut changes = changes::Changes::default();
    let stream = watcher(api, watcher::Config::default().page_size(500))
        .backoff(WatchBackoff::default())
        .reflect(writer)
        .inspect(move |event| follow_watch(&members, &memory, event))
        // The applied objects (as `applied_objects` yields them) that pass the filter; a
        // deletion, and an object a relist no longer lists, leaves the filter's memory.
        .filter_map(move |event| {
            std::future::ready(match event {
                Ok(watcher::Event::Apply(p) | watcher::Event::InitApply(p)) => {
                    changes.passes(&p).then_some(Ok(p))
                }
                Ok(watcher::Event::Delete(p)) => {
                    changes.forget(&p);
                    None
                }
                Ok(watcher::Event::Init) => {
                    changes.relist_started();
                    None
                }
                Ok(watcher::Event::InitDone) => {
                    changes.relist_done();
                    None
                }
                Err(e) => Some(Err(e)),
            })
        });
    (store, Box::pin(stream))
}

/// Keeps the members index and the per-object memory in step with the practitioner watch.
fn follow_watch(
    members: &members::Members,
    memory: &memory::Memory,
    event: &Result<watcher::Event<CachedPractitioner>, watcher::Error>,
) {
    match event {
        Ok(watcher::Event::Apply(p) | watcher::Event::InitApply(p)) => members.applied(p),
        Ok(watcher::Event::Delete(p)) => {
            members.deleted(p);
            memory.forget(&ObjectRef::from_obj(p));
        }
        Ok(watcher::Event::Init) => members.relist_started(),
        Ok(watcher::Event::InitDone) => {
            // Objects deleted while the watch was down are missing from the relist.
            for gone in members.relist_done() {
                memory.forget(&gone);
            }
        }
        Err(_) => {}
    }
}

/// Connections: watched once. Deletions never reach a reconcile (no finalizer on
/// connections): they are taken from the watch itself, so a deleted connection's client and
/// token are dropped at once. Annotations trigger too: `epic-operator.dev/rotate-keys`
/// rotates managed keys now.
fn watch_connections(
    api: Api<EpicConnection>,
) -> (
    Store<EpicConnection>,
    Events<EpicConnection>,
    UnboundedReceiver<EpicConnection>,
) {
    let (store, writer) = reflector::store::<EpicConnection>();
    let (deleted_tx, deleted_rx) = unbounded::<EpicConnection>();
    let stream = watcher(api, watcher::Config::default().page_size(500))
        .backoff(WatchBackoff::default())
        .modify(|c: &mut EpicConnection| c.managed_fields_mut().clear())
        .reflect(writer)
        .inspect(move |event| {
            if let Ok(watcher::Event::Delete(conn)) = event {
                let _ = deleted_tx.unbounded_send(conn.clone());
            }
        })
        .applied_objects()
        .predicate_filter(
            predicates::generation.combine(predicates::annotations),
            Default::default(),
        );
    (store, Box::pin(stream), deleted_rx)
}

/// The per-connection clients, under the operator-wide ceilings and trust.
fn connections(
    config: &OperatorConfig,
    client: &kube::Client,
    http: reqwest::Client,
    metrics: &Arc<Metrics>,
    declared: &Store<EpicConnection>,
) -> Connections {
    let metrics = metrics.clone();
    Connections::new(
        client.clone(),
        http,
        Some(Arc::new(move |connection: &str| {
            metrics.fhir_observer(connection)
        })),
        config.endpoints.clone(),
        config.jwks_public_url.clone(),
        declared.clone(),
    )
    .with_ceilings(config.ceilings)
    .with_tls(config.tls.clone())
}

/// Both controllers and the deletion follower, until shutdown. Practitioners are reconciled
/// again when their connection changes: the connection controller wakes them once the new
/// handle is built (not before, or they would use the old one), through the same channel as
/// the roster walk. Secrets are not watched (the operator may only `get` them): each
/// connection re-reads its Secret every minute.
#[allow(clippy::too_many_arguments)]
async fn controllers(
    ctx: &Arc<Context>,
    config: &OperatorConfig,
    practitioner_stream: Events<CachedPractitioner>,
    practitioners: Store<CachedPractitioner>,
    wake_rx: UnboundedReceiver<PractitionerRef>,
    connection_stream: Events<EpicConnection>,
    connections_store: Store<EpicConnection>,
    deleted_rx: UnboundedReceiver<EpicConnection>,
) {
    let practitioner_controller = Controller::for_stream(practitioner_stream, practitioners)
        .with_config(ControllerConfig::default().concurrency(config.concurrency))
        .reconcile_on(wake_rx)
        .shutdown_on_signal()
        .run(
            practitioner::reconcile,
            practitioner::error_policy,
            ctx.clone(),
        )
        .for_each(|result| async move {
            logging::controller_result("EpicPractitioner", &result);
        });
    let connection_controller = Controller::for_stream(connection_stream, connections_store)
        .shutdown_on_signal()
        .run(connection::reconcile, connection::error_policy, ctx.clone())
        .for_each(|result| async move {
            logging::controller_result("EpicConnection", &result);
        });
    let deletions = {
        let ctx = ctx.clone();
        deleted_rx.for_each(move |conn| {
            let ctx = ctx.clone();
            async move { connection::deleted(&ctx, &conn).await }
        })
    };
    futures::future::join3(practitioner_controller, connection_controller, deletions).await;
}

/// Per connection: what its token client reports as sent, less what was counted. A rebuilt
/// connection starts a new client, so a smaller total starts afresh.
async fn token_metrics(ctx: Arc<Context>) {
    let mut reported: HashMap<connection::cache::Key, u64> = HashMap::new();
    loop {
        tokio::time::sleep(Duration::from_secs(5)).await;
        for (key, h) in ctx.connections.ready_handles().await {
            let label = connection::cache::connection_label(&key);
            ctx.metrics
                .ops
                .token_expiry(&label, h.client.tokens().cached_expiry());
            let total = h.client.tokens().requests_sent();
            let seen = reported.entry(key.clone()).or_default();
            if total < *seen {
                *seen = 0;
            }
            if total > *seen {
                ctx.metrics.tokens_sent(&label, total - *seen);
                *seen = total;
            }
        }
    }
}

#[path = "run_changes.rs"]
mod changes;

#[cfg(test)]
#[path = "run_tests.rs"]
mod tests;
