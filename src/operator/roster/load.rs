//! When each connection's full roster walks may run, and what the connection's status says
//! about its load: the walk cadence under `requestBudget`, `walkWindows`, a daily limit from
//! Epic, and a roster walk the instance refuses (Epic 4110/4111), which backs off to hours
//! while practitioners resolve one by one. The numbers come from `roster_pace`; this is the
//! per-connection state behind one short lock.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use crate::crd::{Condition, ConditionStatus, LoadStatus, Reason, WriteMode};
use crate::fhir::FhirError;
use crate::fhir::rate::HoldKind;
use crate::operator::Context;
use crate::operator::connection::cache::{ConnectionHandle, Key};
use crate::operator::roster::pace::{self, ForecastInput, cadence, forecast, human, walk_retry};

/// Drift assumed by the projection in status (1% of records change a day).
pub const ASSUMED_DRIFT_PER_DAY: f64 = 0.01;

/// One connection's walk plan.
#[derive(Debug, Default)]
struct Plan {
    interval: Option<Duration>,
    too_small: Option<String>,
    next_walk: Option<SystemTime>,
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

fn rfc3339(t: SystemTime) -> String {
    chrono::DateTime::<chrono::Utc>::from(t).to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

fn input(
    handle: &ConnectionHandle,
    practitioners: u64,
    records: u64,
    roster_walks: bool,
) -> ForecastInput {
    let settings = handle.client.settings();
    ForecastInput {
        practitioners,
        roster_records: records,
        page_size: settings.page_size.max(1),
        resync: handle.resync,
        walk_interval: handle.resync,
        drift_per_day: ASSUMED_DRIFT_PER_DAY,
        new_per_day: 0,
        writes: handle.spec.writes != WriteMode::Disabled,
        roster_walks,
    }
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

    /// How long after this walk the next one is due: the resync interval, stretched to fit
    /// the request budget.
    pub fn interval(&self, key: &Key, handle: &ConnectionHandle, practitioners: u64) -> Duration {
        let budget = handle
            .spec
            .request_budget
            .as_ref()
            .and_then(|b| b.per_day().ok());
        let records = self.with(key, |p| p.records);
        let c = cadence(&input(handle, practitioners, records, true), budget);
        self.with(key, |p| {
            p.interval = Some(c.interval);
            p.too_small = c.too_small;
            p.next_walk = SystemTime::now().checked_add(c.interval);
            c.interval
        })
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
            self.with(key, |p| p.daily_until = now.checked_add(wait));
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
            self.with(key, |p| p.next_walk = now.checked_add(retry));
            let why = format!(
                "this Epic instance refuses roster walks (a Practitioner search with only _count: {answer}) and does not search by identifier either: nothing can resolve this NPI until the Epic team allows one of the two (walks are tried again after {})",
                human(retry)
            );
            return (Some(retry), Some(FhirError::RosterUnavailable(why)));
        }
        if has_index {
            return (None, None);
        }
        let failures = self.with(key, |p| {
            p.failures = p.failures.saturating_add(1);
            p.failures
        });
        let retry = walk_retry(failures, false);
        self.with(key, |p| p.next_walk = now.checked_add(retry));
        (Some(retry), None)
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
        let rate = handle.client.rate().snapshot();
        let usage = handle.client.usage();
        let budget = handle.spec.request_budget.as_ref();
        let period = budget
            .and_then(|b| b.period().ok())
            .unwrap_or(Duration::from_secs(86_400));
        let (interval, too_small, next_walk, refused, daily_until, window, records) =
            self.with(key, |p| {
                (
                    p.interval.unwrap_or(handle.resync),
                    p.too_small.clone(),
                    p.next_walk,
                    p.refused.clone(),
                    p.daily_until.filter(|t| *t > now),
                    p.window.clone(),
                    p.records,
                )
            });
        let projected = forecast(&ForecastInput {
            walk_interval: interval,
            ..input(handle, practitioners, records, refused.is_none())
        })
        .total()
        .ceil() as u64;
        let safety = handle
            .resync
            .saturating_mul(6)
            .max(Duration::from_secs(3600));
        let mut drift = match (&refused, &handle.spec.walk_windows) {
            (Some(_), _) => format!(
                "roster walks are refused here: each practitioner reads its own record at least every {}, so drift made in Epic is noticed within about {}",
                human(safety),
                human(safety)
            ),
            (None, Some(w)) => {
                let gap = w
                    .checked()
                    .ok()
                    .zip(jiff::Timestamp::try_from(now).ok())
                    .map(|(c, at)| c.longest_gap(at))
                    .unwrap_or_default();
                format!(
                    "full walks run every {} inside the walk windows ({}) only: drift made in Epic is noticed within about {} inside them, and up to {} across the longest stretch without a window this week; new and changed EpicPractitioners are resolved and written at any time",
                    human(interval),
                    w.time_zone,
                    human(interval),
                    human(interval + gap)
                )
            }
            (None, None) => format!(
                "full walks every {}: drift made in Epic is noticed within about {}",
                human(interval),
                human(interval)
            ),
        };
        if let Some(t) = daily_until {
            drift.push_str(&format!(
                "; Epic's daily limit was reached, so walks wait until {}",
                rfc3339(t)
            ));
        }
        let status = LoadStatus {
            configured_requests_per_second: rate.ceiling as u32,
            current_requests_per_second: format!("{:.1}", rate.current),
            slowed_by: rate
                .last_cut
                .filter(|_| rate.current < rate.ceiling)
                .map(str::to_string),
            held_until: rate
                .held
                .and_then(|(left, _)| now.checked_add(left))
                .map(rfc3339),
            requests_used: usage.within(period),
            counted_since: now.checked_sub(usage.counted_for()).map(rfc3339),
            budget: budget.map(|b| format!("{} per {}", b.requests, b.per)),
            projected_requests_per_day: projected,
            walk_interval: Some(human(interval)),
            next_walk_time: match &window {
                Some(Ok(open)) => Some(rfc3339(*open)),
                _ => daily_until.or(next_walk).map(rfc3339),
            },
            drift_detection: drift,
        };
        let condition = |type_: &str, ok: bool, reason: Reason, message: String| Condition {
            type_: type_.into(),
            status: if ok {
                ConditionStatus::True
            } else {
                ConditionStatus::False
            },
            reason: reason.as_str().into(),
            message: crate::util::bounded_message(&message, 1024),
            last_transition_time: crate::util::now_rfc3339(),
            observed_generation: generation,
        };
        let walks = match (&refused, daily_until, &window) {
            (Some(answer), _, _) => condition(
                "RosterWalks",
                false,
                Reason::RosterUnavailable,
                format!(
                    "Epic refuses roster walks on this instance ({answer}): practitioners are resolved one by one by identifier search where the instance offers it, and re-read at least every {}; walks are tried again at {}",
                    human(safety),
                    next_walk.map(rfc3339).unwrap_or_default()
                ),
            ),
            (None, Some(t), _) => condition(
                "RosterWalks",
                false,
                Reason::DailyLimitReached,
                format!(
                    "Epic's daily request limit for this client was reached: walks wait until {}",
                    rfc3339(t)
                ),
            ),
            (None, None, Some(Err(e))) => condition(
                "RosterWalks",
                false,
                Reason::InvalidConnection,
                format!("roster walks are held: {e}"),
            ),
            (None, None, _) => condition(
                "RosterWalks",
                true,
                Reason::Ready,
                status.drift_detection.clone(),
            ),
        };
        let mut conditions = vec![walks];
        if let Some(b) = budget {
            conditions.push(match (b.period(), &too_small) {
                (Err(e), _) => condition("RequestBudget", false, Reason::InvalidConnection, e),
                (Ok(_), Some(why)) => {
                    condition("RequestBudget", false, Reason::BudgetTooSmall, why.clone())
                }
                (Ok(_), None) => condition(
                    "RequestBudget",
                    true,
                    Reason::Ready,
                    format!(
                        "about {projected} requests a day projected for {practitioners} practitioners, within {} per {} ({} used so far in the period); walks every {}",
                        b.requests,
                        b.per,
                        status.requests_used,
                        human(interval)
                    ),
                ),
            });
        }
        (status, conditions)
    }
}
