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
mod run;
pub mod slim;
mod watch_backoff;

use std::net::SocketAddr;
use std::sync::Arc;

use futures::channel::mpsc::UnboundedSender;
use kube::runtime::events::Recorder;
use kube::runtime::reflector::Store;

pub use ceilings::Ceilings;
pub use connection::cache::Connections;
pub use error::{Error, RunError};
pub use jwks::{JwksPublisher, jwks_url};
pub use leader::LeaderElector;
pub use logging::{LogFormat, init_tracing};
pub use metrics::Metrics;
pub use practitioner::{FIELD_MANAGER, FINALIZER};
pub use run::run;

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
    pub practitioners: Store<slim::CachedPractitioner>,
    pub wake: UnboundedSender<slim::PractitionerRef>,
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
