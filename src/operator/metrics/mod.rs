//! Prometheus metrics, all under `epic_operator_` but the standard `process_*` ones: reconciles by kind, result
//! (`success|held|error`) and reason; reconcile duration and reconciles in flight; FHIR
//! requests, their latency and retries by connection, interaction and status class; token
//! requests and roster walks by connection; `build_info`; the day-two metrics of
//! `metrics_ops`; and gauges computed from the reflector store at scrape time (so a deleted
//! object never leaves a stale entry).

pub(crate) mod collectors;
pub(crate) mod heap;
pub(crate) mod load;
pub(crate) mod ops;
pub(crate) mod process;

use std::sync::{Arc, Mutex, OnceLock};

use kube::runtime::reflector::Store;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::Registry;

use super::metrics::collectors::StoreCollector;
use super::metrics::heap::HeapCollector;
use super::metrics::ops::OpsMetrics;
use super::metrics::process::ProcessCollector;
use crate::crd::Reason;
use crate::fhir::{RequestEvent, RequestObserver};
use crate::operator::slim::CachedPractitioner;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReconcileLabels {
    pub kind: &'static str,
    pub result: &'static str,
    pub reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabel {
    pub kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct FhirLabels {
    pub connection: String,
    pub interaction: &'static str,
    /// 2xx, 3xx, 4xx, 5xx, or none when no response came.
    pub status_class: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ConnectionLabel {
    pub connection: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct WalkLabels {
    pub connection: String,
    pub result: &'static str,
}

/// The operator's metrics and their registry.
pub struct Metrics {
    pub registry: Registry,
    reconciles: Family<ReconcileLabels, Counter>,
    reconcile_duration: Family<KindLabel, Histogram>,
    in_flight: Family<KindLabel, Gauge>,
    fhir_requests: Family<FhirLabels, Counter>,
    fhir_duration: Family<FhirLabels, Histogram>,
    fhir_retries: Family<ConnectionLabel, Counter>,
    token_requests: Family<ConnectionLabel, Counter>,
    roster_walks: Family<WalkLabels, Counter>,
    signing_key_age: Family<ConnectionLabel, Gauge>,
    /// Rate, budget and forecast gauges per connection.
    pub load: super::metrics::load::LoadGauges,
    store: Arc<OnceLock<Store<CachedPractitioner>>>,
    /// Leader, last successful walk, token expiry, writes.
    pub ops: OpsMetrics,
}

impl Default for Metrics {
    fn default() -> Self {
        // The root holds the unprefixed process_* metrics; everything of the project goes
        // under epic_operator_.
        let mut root = Registry::default();
        let m = Self::unregistered();
        root.register_collector(Box::new(ProcessCollector));
        root.register_collector(Box::new(HeapCollector));
        m.register(root.sub_registry_with_prefix("epic_operator"));
        Self {
            registry: root,
            ..m
        }
    }
}

impl Metrics {
    /// The families, empty and not registered yet (`default` registers them and sets
    /// `registry`).
    fn unregistered() -> Self {
        Self {
            reconciles: Family::default(),
            reconcile_duration: Family::new_with_constructor(|| {
                Histogram::new(exponential_buckets(0.005, 2.0, 14))
            }),
            in_flight: Family::default(),
            fhir_requests: Family::default(),
            fhir_duration: Family::new_with_constructor(|| {
                Histogram::new(exponential_buckets(0.01, 2.0, 12))
            }),
            fhir_retries: Family::default(),
            token_requests: Family::default(),
            roster_walks: Family::default(),
            signing_key_age: Family::default(),
            load: Default::default(),
            store: Arc::new(OnceLock::new()),
            ops: OpsMetrics::default(),
            registry: Registry::default(),
        }
    }

    /// Registers the project's families and collectors under `r` (the epic_operator_ prefix).
    fn register(&self, r: &mut Registry) {
        r.register(
            "reconciles",
            "Reconciles by kind, result (success, held, error) and reason",
            self.reconciles.clone(),
        );
        r.register(
            "reconcile_duration_seconds",
            "Reconcile duration by kind",
            self.reconcile_duration.clone(),
        );
        r.register(
            "reconciles_in_flight",
            "Reconciles running now, by kind",
            self.in_flight.clone(),
        );
        r.register(
            "fhir_requests",
            "HTTP requests sent to Epic's FHIR API by connection, interaction and status class",
            self.fhir_requests.clone(),
        );
        r.register(
            "fhir_request_duration_seconds",
            "Latency of FHIR requests (to the response headers) by connection, interaction and status class",
            self.fhir_duration.clone(),
        );
        r.register(
            "fhir_retries",
            "FHIR requests that were retries (transient errors, a renewed token) by connection",
            self.fhir_retries.clone(),
        );
        r.register(
            "token_requests",
            "Access token requests sent to Epic by connection",
            self.token_requests.clone(),
        );
        r.register(
            "roster_walks",
            "Roster walks by connection and result (success, error)",
            self.roster_walks.clone(),
        );
        r.register(
            "signing_key_age_seconds",
            "Seconds since the key that signs client assertions was published, by connection (updated at each connection pass, at least once a minute)",
            self.signing_key_age.clone(),
        );
        self.load.register(r);
        r.register(
            "build",
            "The operator's version",
            Info::new(vec![("version", env!("CARGO_PKG_VERSION"))]),
        );
        r.register_collector(Box::new(StoreCollector::new(self.store.clone())));
        self.ops.register(r);
    }

    /// Gauges computed from this store at scrape time (practitioners by Synced reason,
    /// drifted practitioners).
    pub fn watch_store(&self, store: Store<CachedPractitioner>) {
        let _ = self.store.set(store);
    }

    /// An observer for one connection's FHIR client (`connection` is `namespace/name`).
    pub fn fhir_observer(self: &Arc<Self>, connection: &str) -> RequestObserver {
        let metrics = self.clone();
        let connection = connection.to_string();
        Arc::new(move |e: RequestEvent| {
            let labels = FhirLabels {
                connection: connection.clone(),
                interaction: e.kind.as_str(),
                status_class: status_class(e.status),
            };
            metrics.fhir_requests.get_or_create(&labels).inc();
            metrics
                .fhir_duration
                .get_or_create(&labels)
                .observe(e.elapsed.as_secs_f64());
            if e.attempt > 1 {
                metrics
                    .fhir_retries
                    .get_or_create(&ConnectionLabel {
                        connection: connection.clone(),
                    })
                    .inc();
            }
        })
    }

    pub fn tokens_sent(&self, connection: &str, n: u64) {
        self.token_requests
            .get_or_create(&ConnectionLabel {
                connection: connection.to_string(),
            })
            .inc_by(n);
    }

    pub fn signing_key_age(&self, connection: &str, age: std::time::Duration) {
        self.signing_key_age
            .get_or_create(&ConnectionLabel {
                connection: connection.to_string(),
            })
            .set(i64::try_from(age.as_secs()).unwrap_or(i64::MAX));
    }

    /// A deleted connection's gauges go with it.
    pub fn forget_connection(&self, connection: &str) {
        self.signing_key_age.remove(&ConnectionLabel {
            connection: connection.to_string(),
        });
        self.ops.forget_connection(connection);
        self.load.forget(connection);
    }

    /// Search and next-page requests this connection has sent (any response), for the walk
    /// statistics on its status.
    pub fn page_requests(&self, connection: &str) -> u64 {
        let mut n = 0u64;
        for interaction in ["search", "page"] {
            for status_class in ["2xx", "3xx", "4xx", "5xx", "none"] {
                let labels = FhirLabels {
                    connection: connection.to_string(),
                    interaction,
                    status_class,
                };
                // Only families that exist: reading must not create empty series.
                if let Some(c) = self.fhir_requests.get(&labels) {
                    n = n.saturating_add(c.get());
                }
            }
        }
        n
    }

    pub fn roster_walk(&self, connection: &str, ok: bool) {
        if ok {
            self.ops.walk_succeeded(connection);
        }
        self.roster_walks
            .get_or_create(&WalkLabels {
                connection: connection.to_string(),
                result: if ok { "success" } else { "error" },
            })
            .inc();
    }

    pub fn render(&self) -> String {
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            return "# metrics encoding failed\n".into();
        }
        out
    }

    pub fn start_reconcile(&self, kind: &'static str) -> ReconcileTimer<'_> {
        self.in_flight.get_or_create(&KindLabel { kind }).inc();
        ReconcileTimer {
            metrics: self,
            kind,
            started: std::time::Instant::now(),
            passed: Mutex::new(None),
        }
    }
}

fn status_class(status: Option<u16>) -> &'static str {
    match status {
        Some(200..=299) => "2xx",
        Some(300..=399) => "3xx",
        Some(400..=499) => "4xx",
        Some(_) => "5xx",
        None => "none",
    }
}

/// Measures one reconcile: in flight while it lives, its duration observed when dropped (on
/// every path, early returns and errors included); its result counted by
/// [`ReconcileTimer::finish`].
pub struct ReconcileTimer<'a> {
    metrics: &'a Metrics,
    kind: &'static str,
    started: std::time::Instant,
    passed: Mutex<Option<(bool, Reason)>>,
}

impl ReconcileTimer<'_> {
    /// What a finished pass came to: done (`ok`), or held by policy or Epic, and why.
    pub fn note(&self, ok: bool, reason: Reason) {
        *self.passed.lock().unwrap_or_else(|p| p.into_inner()) = Some((ok, reason));
    }

    /// Counts the reconcile: `error` when it failed, else what [`ReconcileTimer::note`] said
    /// (success when nothing was noted).
    pub fn finish(&self, error: Option<Reason>) {
        let passed = *self.passed.lock().unwrap_or_else(|p| p.into_inner());
        let (result, reason) = match (error, passed) {
            (Some(e), _) => ("error", e),
            (None, Some((false, h))) => ("held", h),
            (None, Some((true, r))) => ("success", r),
            (None, None) => ("success", Reason::Synced),
        };
        self.metrics
            .reconciles
            .get_or_create(&ReconcileLabels {
                kind: self.kind,
                result,
                reason: reason.as_str(),
            })
            .inc();
    }

    pub fn elapsed(&self) -> std::time::Duration {
        self.started.elapsed()
    }
}

impl Drop for ReconcileTimer<'_> {
    fn drop(&mut self) {
        let kind = KindLabel { kind: self.kind };
        self.metrics.in_flight.get_or_create(&kind).dec();
        self.metrics
            .reconcile_duration
            .get_or_create(&kind)
            .observe(self.started.elapsed().as_secs_f64());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn held_passes_are_counted_apart_from_success_and_error() {
        let m = Metrics::default();
        m.start_reconcile("EpicPractitioner").finish(None);
        let t = m.start_reconcile("EpicPractitioner");
        t.note(false, Reason::WriteDisabled);
        t.finish(None);
        drop(t);
        m.start_reconcile("EpicPractitioner")
            .finish(Some(Reason::InvalidKey));
        let text = m.render();
        for line in [
            r#"epic_operator_reconciles_total{kind="EpicPractitioner",result="success",reason="Synced"} 1"#,
            r#"epic_operator_reconciles_total{kind="EpicPractitioner",result="held",reason="WriteDisabled"} 1"#,
            r#"epic_operator_reconciles_total{kind="EpicPractitioner",result="error",reason="InvalidKey"} 1"#,
            r#"epic_operator_reconciles_in_flight{kind="EpicPractitioner"} 0"#,
        ] {
            assert!(text.contains(line), "{line} missing:\n{text}");
        }
    }
}
