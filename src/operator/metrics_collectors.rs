//! Metrics computed at scrape time: practitioner gauges from the reflector store (no stale
//! entries for deleted objects) and the process metrics Prometheus conventionally expects.

use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};

use kube::runtime::reflector::Store;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};

use super::status::synced_reason;
use crate::crd::EpicPractitioner;

/// Practitioners by Synced reason, and those with drift, read from the store on each scrape.
#[derive(Debug)]
pub struct StoreCollector {
    store: Arc<OnceLock<Store<EpicPractitioner>>>,
}

impl StoreCollector {
    pub fn new(store: Arc<OnceLock<Store<EpicPractitioner>>>) -> Self {
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
        // Borrowed, not cloned: a scrape must not copy every status (drift, diff) in the cache.
        for p in store.state() {
            let status = p.status.as_ref();
            let reason = status
                .and_then(synced_reason)
                .map_or("Pending", |r| r.as_str());
            *by_reason.entry(reason).or_default() += 1;
            if status.is_some_and(|s| !s.drift.is_empty()) {
                drifted += 1;
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
        gauge.encode(e)
    }
}

/// `process_*` metrics from /proc (Linux, where the operator runs); nothing elsewhere.
#[derive(Debug)]
pub struct ProcessCollector;

impl Collector for ProcessCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let Some(p) = read_proc() else {
            return Ok(());
        };
        let cpu = ConstCounter::new(p.cpu_seconds);
        cpu.encode(encoder.encode_descriptor(
            "process_cpu_seconds",
            "User and system CPU time spent, in seconds",
            None,
            cpu.metric_type(),
        )?)?;
        for (name, help, value) in [
            (
                "process_resident_memory_bytes",
                "Resident memory size in bytes",
                p.rss_bytes,
            ),
            (
                "process_virtual_memory_bytes",
                "Virtual memory size in bytes",
                p.vsize_bytes,
            ),
            ("process_open_fds", "Open file descriptors", p.open_fds),
            (
                "process_start_time_seconds",
                "Start time of the process since the Unix epoch, in seconds",
                p.start_time_seconds,
            ),
        ] {
            let g = ConstGauge::new(value);
            g.encode(encoder.encode_descriptor(name, help, None, g.metric_type())?)?;
        }
        Ok(())
    }
}

struct ProcStats {
    cpu_seconds: f64,
    rss_bytes: i64,
    vsize_bytes: i64,
    open_fds: i64,
    start_time_seconds: i64,
}

/// Reads /proc/self/stat (proc(5)); None where there is no /proc. Clock ticks are taken as
/// 100 per second and pages as 4 KiB, the values on every Linux the operator targets.
fn read_proc() -> Option<ProcStats> {
    const TICKS: f64 = 100.0;
    const PAGE: i64 = 4096;
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name, which is in parentheses and may hold spaces.
    let rest = stat.get(stat.rfind(')')?.checked_add(2)?..)?;
    let f: Vec<&str> = rest.split_whitespace().collect();
    let num = |i: usize| f.get(i).and_then(|v| v.parse::<i64>().ok());
    // In `rest`, field k of proc(5) (1-based) is at index k - 3.
    let (utime, stime, start, vsize, rss) = (num(11)?, num(12)?, num(19)?, num(20)?, num(21)?);
    let boot = std::fs::read_to_string("/proc/stat")
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("btime ")?.trim().parse::<i64>().ok())?;
    let open_fds = std::fs::read_dir("/proc/self/fd").ok()?.count();
    Some(ProcStats {
        cpu_seconds: (utime.saturating_add(stime)) as f64 / TICKS,
        rss_bytes: rss.saturating_mul(PAGE),
        vsize_bytes: vsize,
        open_fds: i64::try_from(open_fds).unwrap_or(i64::MAX),
        start_time_seconds: boot.saturating_add(start / 100),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn process_stats_are_read_on_linux() {
        let p = read_proc().expect("/proc is there on Linux");
        assert!(p.rss_bytes > 0 && p.vsize_bytes >= p.rss_bytes);
        assert!(p.open_fds >= 3, "stdin, stdout, stderr at least");
        let now = chrono::Utc::now().timestamp();
        assert!(p.start_time_seconds <= now && p.start_time_seconds > now - 86_400);
    }
}

#[cfg(test)]
mod store_tests {
    use super::*;
    use crate::crd::{Condition, ConditionStatus, DriftEntry, EpicPractitionerStatus};
    use kube::runtime::watcher::Event;

    fn drifted(name: &str) -> EpicPractitioner {
        let spec = serde_json::from_value(serde_json::json!({
            "connectionRef": {"name": "epic"}, "npi": "1234567893"
        }))
        .unwrap();
        let mut p = EpicPractitioner::new(name, spec);
        p.metadata.namespace = Some("ns".into());
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
        p
    }

    #[test]
    fn gauges_follow_the_store_and_forget_deleted_objects() {
        let (store, mut writer) = kube::runtime::reflector::store::<EpicPractitioner>();
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
        assert!(
            text.contains(r#"practitioners{reason="WriteDisabled"} 1"#),
            "{text}"
        );
        writer.apply_watcher_event(&Event::Delete(p));
        let text = render(&registry);
        assert!(text.contains("drifted_practitioners 0"), "{text}");
        assert!(!text.contains("WriteDisabled"), "no stale entry: {text}");
    }
}
