//! Roster-based drift detection: one paged walk of `Practitioner?_count=pageSize` per
//! connection and resync interval finds every record that changed in Epic for about
//! N/pageSize requests, and wakes only those EpicPractitioners. Per-object polling would cost
//! at least one read per object per interval.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use kube::ResourceExt;
use kube::runtime::reflector::ObjectRef;

use super::Context;
use super::connections::ConnectionHandle;
use super::practitioner::jittered;
use super::status::synced_reason;
use crate::crd::{EpicPractitioner, Reason};
use crate::reconcile::fingerprint;
use crate::reconcile::identity::npi_values;

type Key = (String, String);
type ScanResult = Result<(usize, usize), crate::fhir::FhirError>;

/// Runs scans for every ready connection, each on its own jittered schedule and in its own
/// task, until the process ends: one connection's long walk never delays another's.
pub async fn run(ctx: Arc<Context>) {
    let mut next_due: HashMap<Key, Instant> = HashMap::new();
    // Records seen by the last scan per connection: the next one paces its pages by it.
    let mut last_size: HashMap<Key, usize> = HashMap::new();
    let mut running: HashMap<Key, tokio::task::JoinHandle<ScanResult>> = HashMap::new();
    loop {
        // Collect finished scans.
        let finished: Vec<Key> = running
            .iter()
            .filter(|(_, task)| task.is_finished())
            .map(|(k, _)| k.clone())
            .collect();
        for key in finished {
            let Some(task) = running.remove(&key) else {
                continue;
            };
            match task.await {
                Ok(Ok((woken, records))) => {
                    last_size.insert(key.clone(), records);
                    ctx.metrics
                        .roster_walk(&super::connections::connection_label(&key), true);
                    tracing::info!(connection = %key.1, woken, records, "roster scan done")
                }
                Ok(Err(e)) => {
                    ctx.metrics
                        .roster_walk(&super::connections::connection_label(&key), false);
                    tracing::warn!(connection = %key.1, reason = %e.reason(), error = %e, "roster scan failed")
                }
                Err(e) => {
                    ctx.metrics
                        .roster_walk(&super::connections::connection_label(&key), false);
                    tracing::warn!(connection = %key.1, error = %e, "roster scan task ended")
                }
            }
        }
        for (key, handle) in ctx.connections.ready_handles().await {
            if running.contains_key(&key) {
                continue;
            }
            // The first scan comes one interval after the connection appears: the initial
            // reconciles have just read every record.
            let due = *next_due
                .entry(key.clone())
                .or_insert_with(|| later(jittered(handle.resync)));
            if Instant::now() >= due {
                let expected = *last_size.get(&key).unwrap_or(&0);
                next_due.insert(key.clone(), later(jittered(handle.resync)));
                let (ctx, scan_key) = (ctx.clone(), key.clone());
                running.insert(
                    key,
                    tokio::spawn(async move { scan(&ctx, &scan_key, &handle, expected).await }),
                );
            }
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// `now + d`, or a day from now when that would overflow the clock.
fn later(d: Duration) -> Instant {
    let now = Instant::now();
    now.checked_add(d)
        .or_else(|| now.checked_add(Duration::from_secs(86_400)))
        .unwrap_or(now)
}

/// Whether a practitioner must be reconciled after the scan saw its record with `live_fp`.
fn needs_wake(p: &EpicPractitioner, live_fp: &str, resync: Duration) -> bool {
    if p.is_paused() {
        return false;
    }
    let Some(status) = &p.status else {
        return false;
    };
    if status.live_fingerprint.as_deref() != Some(live_fp) {
        return true;
    }
    // Drift held by a refused write is retried once per resync interval.
    if !status.drift.is_empty() && synced_reason(status) == Some(Reason::WriteDisabled) {
        let refused_long_ago = !status.refused_within(resync);
        return refused_long_ago;
    }
    false
}

/// One walk; returns how many practitioners were woken.
async fn scan(
    ctx: &Context,
    key: &(String, String),
    handle: &ConnectionHandle,
    expected_records: usize,
) -> Result<(usize, usize), crate::fhir::FhirError> {
    let (ns, name) = key;
    let mut by_npi: HashMap<String, Vec<Arc<EpicPractitioner>>> = HashMap::new();
    for p in ctx.practitioners.state() {
        if p.namespace().as_deref() == Some(ns.as_str()) && &p.spec.connection_ref.name == name {
            by_npi.entry(p.spec.npi.clone()).or_default().push(p);
        }
    }
    let mut seen: HashSet<String> = HashSet::new();
    let mut wake: HashSet<ObjectRef<EpicPractitioner>> = HashSet::new();
    // Spread the walk over most of the interval: the budget is the same, the busiest second is
    // not. The rest of the interval absorbs a roster that grew since the last walk.
    let page_size = handle.client.settings().page_size.max(1) as usize;
    let expected_pages = (expected_records.max(by_npi.len()) / page_size).max(1) as u32;
    let pace = (handle.resync.mul_f64(0.8) / expected_pages).min(Duration::from_secs(5));
    let mut records = 0usize;
    let normalizer = handle.normalizer();
    handle
        .client
        .roster_paced(page_size as u32, pace, |page| {
            records += page.len();
            for r in page {
                // A record can carry several NPIs (an ended one and the current one, under
                // either NPI system): it is seen under each.
                let npis = npi_values(&r);
                if !npis.iter().any(|n| by_npi.contains_key(n)) {
                    continue;
                }
                let fp = fingerprint(&r, &normalizer);
                for npi in npis {
                    let Some(objects) = by_npi.get(&npi) else {
                        continue;
                    };
                    for p in objects {
                        if needs_wake(p, &fp, handle.resync) {
                            // Woken as found, so the reads and writes follow the paced walk.
                            let r = ObjectRef::from_obj(&**p);
                            if wake.insert(r.clone()) {
                                let _ = ctx.wake.unbounded_send(r);
                            }
                        }
                    }
                    seen.insert(npi);
                }
            }
        })
        .await?;
    // A record that vanished from the roster (merged or deleted in Epic).
    for (npi, objects) in &by_npi {
        if !seen.contains(npi) {
            for p in objects {
                if p.status.as_ref().is_some_and(|s| s.fhir_id.is_some()) && !p.is_paused() {
                    let r = ObjectRef::from_obj(&**p);
                    if wake.insert(r.clone()) {
                        let _ = ctx.wake.unbounded_send(r);
                    }
                }
            }
        }
    }
    let n = wake.len();
    Ok((n, records))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::{Condition, ConditionStatus, DriftEntry, EpicPractitionerStatus};

    fn practitioner(status: Option<EpicPractitionerStatus>, paused: bool) -> EpicPractitioner {
        let spec = serde_json::from_value(serde_json::json!({
            "connectionRef": {"name": "epic"}, "npi": "1234567893"
        }))
        .unwrap();
        let mut p = EpicPractitioner::new("alice", spec);
        p.status = status;
        if paused {
            p.metadata.annotations = Some(
                [(
                    crate::crd::PAUSED_ANNOTATION.to_string(),
                    "true".to_string(),
                )]
                .into(),
            );
        }
        p
    }

    fn status(fp: &str, held: bool, refused_ago: Option<i64>) -> EpicPractitionerStatus {
        EpicPractitionerStatus {
            live_fingerprint: Some(fp.into()),
            drift: if held {
                vec![DriftEntry {
                    path: "active".into(),
                    desired: "false".into(),
                    live: "true".into(),
                }]
            } else {
                Vec::new()
            },
            conditions: vec![Condition {
                type_: "Synced".into(),
                status: ConditionStatus::False,
                reason: if held {
                    Reason::WriteDisabled
                } else {
                    Reason::Synced
                }
                .as_str()
                .into(),
                message: String::new(),
                last_transition_time: String::new(),
                observed_generation: None,
            }],
            last_refused_write_time: refused_ago.map(|secs| {
                (chrono::Utc::now() - chrono::TimeDelta::seconds(secs))
                    .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
            }),
            ..EpicPractitionerStatus::default()
        }
    }

    #[test]
    fn only_changed_records_and_due_retries_are_woken() {
        let resync = Duration::from_secs(600);
        let cases = [
            (
                "never reconciled: its own reconcile comes",
                practitioner(None, false),
                "fp",
                false,
            ),
            (
                "unchanged",
                practitioner(Some(status("fp", false, None)), false),
                "fp",
                false,
            ),
            (
                "changed in Epic",
                practitioner(Some(status("old", false, None)), false),
                "fp",
                true,
            ),
            (
                "paused",
                practitioner(Some(status("old", false, None)), true),
                "fp",
                false,
            ),
            (
                "held drift, refused recently",
                practitioner(Some(status("fp", true, Some(60))), false),
                "fp",
                false,
            ),
            (
                "held drift, refused an interval ago",
                practitioner(Some(status("fp", true, Some(700))), false),
                "fp",
                true,
            ),
        ];
        for (what, p, live_fp, want) in cases {
            assert_eq!(needs_wake(&p, live_fp, resync), want, "{what}");
        }
    }

    #[test]
    fn far_deadlines_do_not_overflow() {
        assert!(later(Duration::MAX) > Instant::now());
    }
}
