//! Metrics computed at scrape time: practitioner gauges from the reflector store (no stale
//! entries for deleted objects).

use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};

use kube::runtime::reflector::Store;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};

use crate::operator::slim::{CachedPractitioner, CachedStatus};

/// Practitioners by Synced reason, and those with drift, read from the store on each scrape.
#[derive(Debug)]
pub struct StoreCollector {
    store: Arc<OnceLock<Store<CachedPractitioner>>>,
}

impl StoreCollector {
    pub fn new(store: Arc<OnceLock<Store<CachedPractitioner>>>) -> Self {
        Self { store }
    }
}

impl Collector for StoreCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let Some(store) = self.store.get() else {
            return Ok(());
        };
        let mut by_reason: BTreeMap<&'static str, i64> = BTreeMap::new();
        let mut drifted = 0i64;
        let mut pending = 0i64;
        // Borrowed, not cloned: a scrape must not copy every status (drift, diff) in the cache.
        for p in store.state() {
            let status = p.status.as_ref();
            let reason = status
                .and_then(CachedStatus::synced_reason)
                .map_or("Pending", |r| r.as_str());
            *by_reason.entry(reason).or_default() += 1;
            if status.is_some_and(|s| !s.drift.is_empty()) {
                drifted += 1;
            }
            // Waiting for the operator: a spec (or a first spec) not reconciled yet, or a
            // "check now" request not acted on.
            let behind = status.is_none_or(|s| s.observed_generation != p.metadata.generation);
            if behind || p.pending_request().is_some() {
                pending += 1;
            }
        }
        let family = Family::<Vec<(&'static str, &'static str)>, Gauge>::default();
        for (reason, n) in by_reason {
            family.get_or_create(&vec![("reason", reason)]).set(n);
        }
        let e = encoder.encode_descriptor(
            "practitioners",
            "EpicPractitioners by the reason of their Synced condition",
            None,
            family.metric_type(),
        )?;
        family.encode(e)?;
        let gauge = ConstGauge::new(drifted);
        let e = encoder.encode_descriptor(
            "drifted_practitioners",
            "EpicPractitioners whose live record differs from the spec",
            None,
            gauge.metric_type(),
        )?;
        gauge.encode(e)?;
        let gauge = ConstGauge::new(pending);
        let e = encoder.encode_descriptor(
            "pending_reconciles",
            "EpicPractitioners waiting for a reconcile: a generation not yet observed, or a requested-at not yet handled",
            None,
            gauge.metric_type(),
        )?;
        gauge.encode(e)
    }
}

#[cfg(test)]
mod store_tests {
    use super::*;
    use crate::crd::{
        Condition, ConditionStatus, DriftEntry, EpicPractitioner, EpicPractitionerStatus,
    };
    use kube::runtime::watcher::Event;

    fn drifted(name: &str) -> CachedPractitioner {
        let spec = serde_json::from_value(serde_json::json!({
            "connectionRef": {"name": "epic"}, "npi": "1234567893"
        }))
        .unwrap();
        let mut p = EpicPractitioner::new(name, spec);
        p.metadata.namespace = Some("ns".into());
        p.metadata.generation = Some(1);
        p.status = Some(EpicPractitionerStatus {
            drift: vec![DriftEntry {
                path: "active".into(),
                desired: "true".into(),
                live: "false".into(),
            }],
            conditions: vec![Condition {
                type_: "Synced".into(),
                status: ConditionStatus::False,
                reason: "WriteDisabled".into(),
                message: String::new(),
                last_transition_time: "2026-11-29T00:00:00Z".into(),
                observed_generation: None,
            }],
            ..EpicPractitionerStatus::default()
        });
        p.into()
    }

    #[test]
    fn gauges_follow_the_store_and_forget_deleted_objects() {
        let (store, mut writer) = kube::runtime::reflector::store::<CachedPractitioner>();
        let cell = Arc::new(OnceLock::new());
        let _ = cell.set(store);
        let mut registry = prometheus_client::registry::Registry::default();
        registry.register_collector(Box::new(StoreCollector::new(cell)));
        let render = |r: &prometheus_client::registry::Registry| {
            let mut s = String::new();
            prometheus_client::encoding::text::encode(&mut s, r).unwrap();
            s
        };
        let p = drifted("alice");
        writer.apply_watcher_event(&Event::Apply(p.clone()));
        let text = render(&registry);
        assert!(text.contains("drifted_practitioners 1"), "{text}");
        // Never reconciled (no observedGeneration for its generation): waiting.
        assert!(text.contains("pending_reconciles 1"), "{text}");
        assert!(
            text.contains(r#"practitioners{reason="WriteDisabled"} 1"#),
            "{text}"
        );
        writer.apply_watcher_event(&Event::Delete(p));
        let text = render(&registry);
        assert!(text.contains("drifted_practitioners 0"), "{text}");
        assert!(text.contains("pending_reconciles 0"), "{text}");
        assert!(!text.contains("WriteDisabled"), "no stale entry: {text}");
    }
}
