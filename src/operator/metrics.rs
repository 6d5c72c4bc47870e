//! Prometheus metrics: reconciles by result and reason, reconcile duration, FHIR requests by
//! kind and status, token requests, and drifted objects.

use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::fhir::{RequestKind, RequestObserver};

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
pub struct RequestLabels {
    pub kind: &'static str,
    pub status: String,
}

/// The operator's metrics and their registry.
pub struct Metrics {
    pub registry: Registry,
    pub reconciles: Family<ReconcileLabels, Counter>,
    pub reconcile_duration: Family<KindLabel, Histogram>,
    pub fhir_requests: Family<RequestLabels, Counter>,
    pub token_requests: Counter<u64, AtomicU64>,
    pub drifted: Gauge,
    pub roster_scans: Counter,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("epic_operator");
        let reconciles = Family::<ReconcileLabels, Counter>::default();
        let reconcile_duration = Family::<KindLabel, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.005, 2.0, 14))
        });
        let fhir_requests = Family::<RequestLabels, Counter>::default();
        let token_requests = Counter::default();
        let drifted = Gauge::default();
        let roster_scans = Counter::default();
        registry.register(
            "reconciles",
            "Reconciles by kind, result and reason",
            reconciles.clone(),
        );
        registry.register(
            "reconcile_duration_seconds",
            "Reconcile duration",
            reconcile_duration.clone(),
        );
        registry.register(
            "fhir_requests",
            "FHIR requests by kind and HTTP status",
            fhir_requests.clone(),
        );
        registry.register(
            "token_requests",
            "Access token requests sent to Epic",
            token_requests.clone(),
        );
        registry.register(
            "drifted_practitioners",
            "EpicPractitioners whose live record differs from the spec",
            drifted.clone(),
        );
        registry.register(
            "roster_scans",
            "Completed roster scans",
            roster_scans.clone(),
        );
        Self {
            registry,
            reconciles,
            reconcile_duration,
            fhir_requests,
            token_requests,
            drifted,
            roster_scans,
        }
    }
}

impl Metrics {
    /// An observer for FHIR clients that counts requests here.
    pub fn fhir_observer(self: &Arc<Self>) -> RequestObserver {
        let family = self.fhir_requests.clone();
        Arc::new(move |kind: RequestKind, status: Option<u16>| {
            let status = status.map_or_else(|| "error".to_string(), |s| s.to_string());
            family
                .get_or_create(&RequestLabels {
                    kind: kind.as_str(),
                    status,
                })
                .inc();
        })
    }

    pub fn render(&self) -> String {
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            return "# metrics encoding failed\n".into();
        }
        out
    }
}

/// Measures one reconcile: its duration is observed when the guard is dropped (on every path,
/// early returns and errors included); its result is counted by [`ReconcileTimer::finish`].
pub struct ReconcileTimer<'a> {
    metrics: &'a Metrics,
    kind: &'static str,
    started: std::time::Instant,
}

impl Metrics {
    pub fn start_reconcile(&self, kind: &'static str) -> ReconcileTimer<'_> {
        ReconcileTimer {
            metrics: self,
            kind,
            started: std::time::Instant::now(),
        }
    }
}

impl ReconcileTimer<'_> {
    /// Counts the reconcile under its result and reason.
    pub fn finish(&self, success: bool, reason: &'static str) {
        self.metrics
            .reconciles
            .get_or_create(&ReconcileLabels {
                kind: self.kind,
                result: if success { "success" } else { "error" },
                reason,
            })
            .inc();
    }

    pub fn elapsed(&self) -> std::time::Duration {
        self.started.elapsed()
    }
}

impl Drop for ReconcileTimer<'_> {
    fn drop(&mut self) {
        self.metrics
            .reconcile_duration
            .get_or_create(&KindLabel { kind: self.kind })
            .observe(self.started.elapsed().as_secs_f64());
    }
}
