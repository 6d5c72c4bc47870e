//! When each connection's full roster walks may run, and what the connection's status says
//! about its load: the walk cadence under `requestBudget`, `walkWindows`, a daily limit from
//! Epic, and a roster walk the instance refuses (Epic 4110/4111), which backs off to hours
//! while practitioners resolve one by one. The numbers come from `roster_pace`; this is the
//! per-connection state behind one short lock, and `load_report.rs` words what it says.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use crate::crd::{Condition, LoadStatus};
use crate::fhir::FhirError;
use crate::fhir::rate::HoldKind;
use crate::operator::Context;
use crate::operator::connection::cache::{ConnectionHandle, Key};
use crate::operator::roster::pace::{self, cadence, human, walk_retry};
use load_report::{PlanSeen, forecast_input, rfc3339};

/// The status text of the plans (`status.load` and its conditions).
#[path = "load_report.rs"]
mod load_report;

/// One connection's walk plan.
#[derive(Debug, Default)]
struct Plan {
    interval: Option<Duration>,
    too_small: Option<String>,
    /// When the next walk is due, as status shows it.
    next_walk: Option<SystemTime>,
    /// When the next walk is due if the one running ends well. Status keeps the standing plan
    /// until the walk ends: a report made during the walk would otherwise show a retry the
    /// walk's failure may replace a moment later.
    after_this_walk: Option<SystemTime>,
    /// First walks failed in a row.
    failures: u32,
    /// Epic refuses roster walks here: what it answered.
    refused: Option<String>,
    daily_until: Option<SystemTime>,
    /// Walks wait for the next window (or the windows are invalid: the sentence).
    window: Option<Result<SystemTime, String>>,
    /// Records the last walk saw (a walk pages all of them, not only the practitioners').
    records: u64,
}

/// Whether a due walk may start now.
pub enum Gate {
    Go,
    /// Not before this long; the error is what practitioners waiting for a first walk get.
    Wait(Duration, Option<FhirError>),
}

/// Every connection's plan.
#[derive(Default)]
pub struct WalkPlans {
    plans: Mutex<HashMap<Key, Plan>>,
}

/// Practitioners of a connection (the members index).
pub fn practitioners_of(ctx: &Context, key: &Key) -> u64 {
    ctx.members.count(key)
}

impl WalkPlans {
    fn with<T>(&self, key: &Key, f: impl FnOnce(&mut Plan) -> T) -> T {
        let mut all = self.plans.lock().unwrap_or_else(|p| p.into_inner());
        f(all.entry(key.clone()).or_default())
    }

    pub fn forget(&self, key: &Key) {
        self.plans
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(key);
    }

    /// The interval planned when the last walk started (none before the first).
    pub fn planned_interval(&self, key: &Key) -> Option<Duration> {
        let all = self.plans.lock().unwrap_or_else(|p| p.into_inner());
        all.get(key).and_then(|p| p.interval)
    }

    /// How long after this walk the next one is due: the resync interval, stretched to fit
    /// the request budget.
    pub fn interval(&self, key: &Key, handle: &ConnectionHandle, practitioners: u64) -> Duration {
        let budget = handle
            .spec
            .request_budget
            .as_ref()
            .and_then(|b| b.per_day().ok());
        let records = self.with(key, |p| p.records);
        let c = cadence(
            &forecast_input(handle, practitioners, records, true),
            budget,
        );
        self.walk_starts(key, c.interval, c.too_small);
        c.interval
    }

    fn walk_starts(&self, key: &Key, interval: Duration, too_small: Option<String>) {
        self.with(key, |p| {
            p.interval = Some(interval);
            p.too_small = too_small;
            p.after_this_walk = SystemTime::now().checked_add(interval);
        });
    }

    /// Whether a walk due now may start: not during a daily limit, outside the walk windows,
    /// or when the budget's period has no room left for it.
    pub fn gate(&self, key: &Key, handle: &ConnectionHandle, practitioners: u64) -> Gate {
        let now = SystemTime::now();
        // A daily limit met by any request (a probe, a practitioner) holds the walks too.
        if let Some((left, HoldKind::DailyLimit)) = handle.client.rate().snapshot().held {
            self.with(key, |p| p.daily_until = now.checked_add(left));
            return Gate::Wait(left, None);
        }
        if let Some(until) = self.with(key, |p| p.daily_until.filter(|t| *t > now)) {
            return Gate::Wait(until.duration_since(now).unwrap_or_default(), None);
        }
        if let Some(w) = &handle.spec.walk_windows {
            let checked = w.checked();
            let at = jiff::Timestamp::try_from(now).ok();
            let next = match (&checked, at) {
                (Ok(windows), Some(at)) => windows.next_open(at),
                _ => None,
            };
            let held = match (&checked, next, at) {
                (Err(e), _, _) => Some(Err(e.clone())),
                (Ok(_), Some(next), Some(at)) if next > at => Some(Ok(SystemTime::from(next))),
                (Ok(_), Some(_), Some(_)) => None,
                // No window in the coming week: look again in an hour.
                _ => Some(Err("walkWindows opens no window in the coming week".into())),
            };
            self.with(key, |p| p.window = held.clone());
            match held {
                Some(Ok(until)) => {
                    let why = format!(
                        "full roster walks wait for the next walk window at {} ({}), and this instance does not search by identifier: the NPI is resolved by that walk",
                        rfc3339(until),
                        w.time_zone
                    );
                    let wait = until.duration_since(now).unwrap_or_default();
                    return Gate::Wait(wait, Some(FhirError::RosterUnavailable(why)));
                }
                Some(Err(e)) => {
                    let why = format!("roster walks are held: {e}");
                    return Gate::Wait(
                        Duration::from_secs(600),
                        Some(FhirError::RosterUnavailable(why)),
                    );
                }
                None => {}
            }
        }
        if let Some(b) = &handle.spec.request_budget
            && let Ok(period) = b.period()
        {
            let records = self.with(key, |p| p.records).max(practitioners);
            let pages = records.div_ceil(u64::from(handle.client.settings().page_size.max(1)));
            let used = handle.client.usage().within(period);
            let keep = (b.requests as f64 * pace::RESERVE) as u64;
            if used.saturating_add(pages).saturating_add(keep) > b.requests {
                let wait = (period / 24).clamp(Duration::from_secs(5), Duration::from_secs(3600));
                tracing::info!(connection = %key.1, used, budget = b.requests, "the request budget has no room for a walk now; it waits");
                return Gate::Wait(wait, None);
            }
        }
        Gate::Go
    }

    pub fn succeeded(&self, key: &Key, records: u64) {
        self.with(key, |p| {
            p.records = records;
            p.next_walk = p.after_this_walk.take();
            p.failures = 0;
            p.refused = None;
            p.daily_until = None;
        });
    }

    /// A walk failed: when to try again (None: at the usual interval) and, for a refused
    /// walk, the error practitioners without a way to search get instead of Epic's 400.
    pub fn failed(
        &self,
        key: &Key,
        handle: &ConnectionHandle,
        error: &FhirError,
        has_index: bool,
    ) -> (Option<Duration>, Option<FhirError>) {
        let now = SystemTime::now();
        if let FhirError::DailyLimit { .. } = error {
            let wait = handle
                .client
                .rate()
                .snapshot()
                .held
                .filter(|(_, k)| *k == HoldKind::DailyLimit)
                .map(|(left, _)| left)
                .or(error.retry_after())
                .unwrap_or_else(crate::fhir::rate::until_next_utc_day);
            self.with(key, |p| {
                p.daily_until = now.checked_add(wait);
                p.after_this_walk = None;
            });
            return (Some(wait), None);
        }
        if error.is_walk_refusal() {
            let answer = match (error.http_status(), error.epic_codes()) {
                (Some(s), codes) if !codes.is_empty() => {
                    format!("HTTP {s}, Epic code {}", codes.join(","))
                }
                (Some(s), _) => format!("HTTP {s}"),
                _ => "a refusal".into(),
            };
            let failures = self.with(key, |p| {
                p.failures = p.failures.saturating_add(1);
                p.refused = Some(answer.clone());
                p.failures
            });
            let retry = walk_retry(failures, true);
            self.retry_after(key, now.checked_add(retry));
            let why = format!(
                "this Epic instance refuses roster walks (a Practitioner search with only _count: {answer}) and does not search by identifier either: nothing can resolve this NPI until the Epic team allows one of the two (walks are tried again after {})",
                human(retry)
            );
            return (Some(retry), Some(FhirError::RosterUnavailable(why)));
        }
        if has_index {
            // The next walk comes at the usual interval.
            self.with(key, |p| p.next_walk = p.after_this_walk.take());
            return (None, None);
        }
        let failures = self.with(key, |p| {
            p.failures = p.failures.saturating_add(1);
            p.failures
        });
        let retry = walk_retry(failures, false);
        self.retry_after(key, now.checked_add(retry));
        (Some(retry), None)
    }

    /// A failed walk is tried again at `at`, not at the usual interval.
    fn retry_after(&self, key: &Key, at: Option<SystemTime>) {
        self.with(key, |p| {
            p.next_walk = at;
            p.after_this_walk = None;
        });
    }

    /// The connection's `status.load` and its RosterWalks and RequestBudget conditions.
    pub fn report(
        &self,
        key: &Key,
        handle: &ConnectionHandle,
        practitioners: u64,
        generation: Option<i64>,
    ) -> (LoadStatus, Vec<Condition>) {
        let now = SystemTime::now();
        let plan = self.with(key, |p| PlanSeen {
            interval: p.interval.unwrap_or(handle.resync),
            too_small: p.too_small.clone(),
            next_walk: p.next_walk,
            refused: p.refused.clone(),
            daily_until: p.daily_until.filter(|t| *t > now),
            window: p.window.clone(),
            records: p.records,
        });
        load_report::report(&plan, handle, practitioners, generation, now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_running_walk_keeps_the_standing_plan_until_it_ends() {
        // Found by the refused-walk scenario under load: a report made while a retry walk ran
        // showed "the resync interval after its start", 10 s after the planned retry.
        let plans = WalkPlans::default();
        let key: Key = ("ns".into(), "epic".into());
        let next = |plans: &WalkPlans| plans.with(&key, |p| p.next_walk);
        let retry = SystemTime::now() + Duration::from_secs(30);
        plans.retry_after(&key, Some(retry));
        plans.walk_starts(&key, Duration::from_secs(600), None);
        assert_eq!(next(&plans), Some(retry), "during the walk");
        plans.succeeded(&key, 5);
        let after = next(&plans).unwrap();
        let ahead = after.duration_since(SystemTime::now()).unwrap_or_default();
        assert!(
            ahead > Duration::from_secs(590),
            "{ahead:?}: the interval after the walk"
        );
        // A failed walk's retry replaces what its success would have planned.
        plans.walk_starts(&key, Duration::from_secs(600), None);
        plans.retry_after(&key, Some(retry));
        assert_eq!(next(&plans), Some(retry));
        assert_eq!(plans.with(&key, |p| p.after_this_walk), None);
    }
}
