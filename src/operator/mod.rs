//! The Kubernetes driver: controllers for EpicPractitioner and EpicConnection, leader
//! election, metrics and health endpoints.

mod ceilings;
mod connection;
mod error;
mod fair_share;
mod health;
mod jwks;
mod leader;
mod logging;
mod members;
mod memory;
mod metrics;
mod practitioner;
pub mod roster;
mod watch_backoff;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use futures::channel::mpsc::{UnboundedSender, unbounded};
use kube::api::ListParams;
use kube::runtime::controller::Config as ControllerConfig;
use kube::runtime::events::{Recorder, Reporter};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{Controller, Predicate, WatchStreamExt, predicates, watcher};
use kube::{Api, ResourceExt};

pub use ceilings::Ceilings;
pub use connection::cache::Connections;
pub use error::{Error, RunError};
pub use jwks::{JwksPublisher, jwks_url};
pub use leader::LeaderElector;
pub use logging::{LogFormat, init_tracing};
pub use metrics::Metrics;
pub use practitioner::{FIELD_MANAGER, FINALIZER};

use crate::crd::{EpicConnection, EpicPractitioner};
use watch_backoff::WatchBackoff;

/// The annotation client-side apply keeps a full copy of the manifest in.
const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// How drift is found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DriftDetection {
    /// Every practitioner re-reads its record every resync interval.
    PerObject,
    /// One paged roster walk per connection and interval wakes only changed records.
    Roster,
}

/// Settings of `epic-operator run`.
#[derive(Clone, Debug)]
pub struct OperatorConfig {
    pub namespace: Option<String>,
    pub metrics_addr: SocketAddr,
    pub leader_election: bool,
    pub lease_name: String,
    pub lease_namespace: Option<String>,
    pub drift_detection: DriftDetection,
    pub concurrency: u16,
    /// Where EpicConnections may send credentials.
    pub endpoints: crate::http::EndpointPolicy,
    /// Address of the JWK Set listener (None: not served).
    pub jwks_addr: Option<SocketAddr>,
    /// External base URL of that listener, as Epic reaches it (status.jwksUrl, `jku`).
    pub jwks_public_url: Option<String>,
    /// Limits no EpicConnection may exceed.
    pub ceilings: Ceilings,
    /// CAs every connection trusts besides the system roots (`--ca-file`).
    pub tls: crate::http::TlsOptions,
}

/// What every reconcile shares.
pub struct Context {
    pub kube: kube::Client,
    pub connections: Connections,
    pub metrics: Arc<Metrics>,
    pub recorder: Recorder,
    pub practitioners: Store<EpicPractitioner>,
    pub wake: UnboundedSender<ObjectRef<EpicPractitioner>>,
    pub mode: DriftDetection,
    /// What roster walks learned per connection, and their hand-overs to reconciles.
    pub rosters: roster::state::Rosters,
    /// When each connection's full walks may run (budget, windows, daily limit, refusals).
    pub walk_plans: roster::load::WalkPlans,
    /// The JWK Sets this replica serves.
    pub jwks: Arc<JwksPublisher>,
    pub jwks_public_url: Option<String>,
    /// At most half of the reconcile workers per connection.
    pub fair: fair_share::FairShare,
    /// What the operator remembers per object (failures, refusals, hand-overs, attempts).
    pub memory: Arc<memory::Memory>,
    /// Practitioners by connection and NPI, kept by the watch.
    pub members: Arc<members::Members>,
}

/// Keeps the members index and the per-object memory in step with the practitioner watch.
fn follow_watch(
    members: &members::Members,
    memory: &memory::Memory,
    event: &Result<watcher::Event<EpicPractitioner>, watcher::Error>,
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

    // Every replica serves the JWK Sets, leader or not: Epic may fetch from any of them.
    let jwks = Arc::new(JwksPublisher::default());
    let jwks_task = match config.jwks_addr {
        Some(addr) => {
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
            served
        }
        None => tokio::spawn(std::future::pending::<std::io::Result<()>>()),
    };

    let identity = format!(
        "{}-{:08x}",
        std::env::var("POD_NAME")
            .or_else(|_| std::env::var("HOSTNAME"))
            .unwrap_or_else(|_| "epic-operator".into()),
        rand::random::<u32>()
    );
    let elector = if config.leader_election {
        let ns = config
            .lease_namespace
            .clone()
            .unwrap_or_else(|| client.default_namespace().to_string());
        let e = LeaderElector::new(
            client.clone(),
            &ns,
            &config.lease_name,
            &identity,
            Duration::from_secs(15),
        );
        // A standby replica is healthy and ready; it just does not reconcile.
        readiness.set(true);
        metrics.ops.set_leader(false);
        tracing::info!(identity = %identity, lease = %config.lease_name, "waiting for leadership");
        e.acquire().await.map_err(RunError::LeaderElection)?;
        Some(e)
    } else {
        None
    };

    metrics.ops.set_leader(true);
    let practitioner_api: Api<EpicPractitioner> = match &config.namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    };
    let connection_api: Api<EpicConnection> = match &config.namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    };
    // Fail loudly at start-up, not silently in a watch loop, when the CRDs are missing or the
    // RBAC does not allow what the operator needs.
    for (what, result) in [
        (
            "epicpractitioners",
            practitioner_api
                .list(&ListParams::default().limit(1))
                .await
                .map(|_| ()),
        ),
        (
            "epicconnections",
            connection_api
                .list(&ListParams::default().limit(1))
                .await
                .map(|_| ()),
        ),
    ] {
        result.map_err(|source| RunError::Startup { what, source })?;
    }
    let watch_config = watcher::Config::default().page_size(500);

    // Practitioners: a reflector store (managedFields stripped to save memory) feeding a
    // trigger stream that ignores status-only changes, so the operator's own status writes do
    // not cause another round of Epic requests.
    let (practitioners, writer) = reflector::store::<EpicPractitioner>();
    metrics.watch_store(practitioners.clone());
    // The members index and per-object memory follow the watch: deleted objects leave both.
    let members = Arc::new(members::Members::default());
    let memory = Arc::new(memory::Memory::default());
    let practitioner_stream = watcher(practitioner_api, watch_config.clone())
        .backoff(WatchBackoff::default())
        .modify(|p: &mut EpicPractitioner| {
            p.managed_fields_mut().clear();
            // kubectl's and Argo CD's copy of the last applied manifest, and labels: never
            // read here (metadata is only ever written as an explicit finalizer list).
            p.annotations_mut().remove(LAST_APPLIED);
            p.labels_mut().clear();
        })
        .reflect(writer)
        .inspect({
            let (members, memory) = (members.clone(), memory.clone());
            move |event| follow_watch(&members, &memory, event)
        })
        .applied_objects()
        .predicate_filter(
            predicates::generation.combine(predicates::annotations),
            Default::default(),
        );
    let (connections_store, connection_writer) = reflector::store::<EpicConnection>();
    // Deletions never reach a reconcile (no finalizer on connections): they are taken from the
    // watch itself, so a deleted connection's client and token are dropped at once.
    let (deleted_tx, deleted_rx) = unbounded::<EpicConnection>();
    let connection_stream = watcher(connection_api.clone(), watch_config.clone())
        .backoff(WatchBackoff::default())
        .modify(|c: &mut EpicConnection| c.managed_fields_mut().clear())
        .reflect(connection_writer)
        .inspect(move |event| {
            if let Ok(watcher::Event::Delete(conn)) = event {
                let _ = deleted_tx.unbounded_send(conn.clone());
            }
        })
        .applied_objects()
        // Annotations too: `epic-operator.dev/rotate-keys` rotates managed keys now.
        .predicate_filter(
            predicates::generation.combine(predicates::annotations),
            Default::default(),
        );

    let (wake_tx, wake_rx) = unbounded::<ObjectRef<EpicPractitioner>>();
    let recorder = Recorder::new(
        client.clone(),
        Reporter {
            controller: "epic-operator".into(),
            instance: Some(identity.clone()),
        },
    );
    let ctx = Arc::new(Context {
        kube: client.clone(),
        connections: Connections::new(
            client.clone(),
            http,
            Some({
                let metrics = metrics.clone();
                Arc::new(move |connection: &str| metrics.fhir_observer(connection))
            }),
            config.endpoints.clone(),
            config.jwks_public_url.clone(),
        )
        .with_ceilings(config.ceilings)
        .with_tls(config.tls.clone()),
        metrics: metrics.clone(),
        recorder,
        practitioners: practitioners.clone(),
        wake: wake_tx,
        mode: config.drift_detection,
        rosters: roster::state::Rosters::default(),
        walk_plans: roster::load::WalkPlans::default(),
        jwks: jwks.clone(),
        jwks_public_url: config.jwks_public_url.clone(),
        fair: fair_share::FairShare::new(config.concurrency),
        memory,
        members: members.clone(),
    });

    // Practitioners are reconciled again when their connection changes: the connection
    // controller wakes them once the new handle is built (not before, or they would use the
    // old one), through the same channel as the roster walk. EpicConnection is watched once.
    let practitioner_controller =
        Controller::for_stream(practitioner_stream, practitioners.clone())
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

    // Secrets are not watched (the operator may only `get` them): each connection re-reads its
    // Secret every minute, so a rotated or deleted key takes effect within a minute.
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

    readiness.set(true);
    let roster_task = {
        let ctx = ctx.clone();
        async move {
            if ctx.mode == DriftDetection::Roster {
                roster::run(ctx).await;
            } else {
                std::future::pending::<()>().await;
            }
        }
    };
    let token_metrics = {
        let ctx = ctx.clone();
        async move {
            // Per connection: what its token client reports as sent, less what was counted.
            // A rebuilt connection starts a new client, so a smaller total starts afresh.
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
    };
    let lost_leadership = async {
        match &elector {
            Some(e) => e.hold().await,
            None => std::future::pending::<String>().await,
        }
    };
    tracing::info!(mode = ?config.drift_detection, namespace = config.namespace.as_deref(), "controllers started");
    let outcome = tokio::select! {
        _ = futures::future::join3(practitioner_controller, connection_controller, deletions) => Ok(()),
        _ = roster_task => Ok(()),
        _ = token_metrics => Ok(()),
        why = lost_leadership => Err(RunError::LostLeadership(why)),
        r = health_task => Err(RunError::HealthServer(format!("{r:?}"))),
        r = jwks_task => Err(RunError::JwksServer(format!("{r:?}"))),
    };
    if let Some(e) = &elector {
        e.release().await;
    }
    tracing::info!("operator stopped");
    outcome
}
