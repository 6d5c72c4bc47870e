//! What a connection's status says about its load, from its walk plan (`load.rs`) and its
//! client's rate and request count: `status.load`, and the RosterWalks and RequestBudget
//! conditions with the sentences a person reads.

use std::time::{Duration, SystemTime};

use crate::crd::{Condition, LoadStatus, Reason, RequestBudget, WalkWindows, WriteMode};
use crate::operator::connection::cache::ConnectionHandle;
use crate::operator::roster::pace::{ForecastInput, forecast, human, safety_interval};

/// Drift assumed by the projection in status (1% of records change a day).
pub const ASSUMED_DRIFT_PER_DAY: f64 = 0.01;

pub(super) fn rfc3339(t: SystemTime) -> String {
    chrono::DateTime::<chrono::Utc>::from(t).to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// What the forecast needs of a connection.
pub(super) fn forecast_input(
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

/// The walk plan of one connection as the report reads it.
pub(super) struct PlanSeen {
    /// The walk interval (the resync interval before the first walk).
    pub(super) interval: Duration,
    pub(super) too_small: Option<String>,
    pub(super) next_walk: Option<SystemTime>,
    /// Epic refuses roster walks: what it answered.
    pub(super) refused: Option<String>,
    /// A daily limit that holds walks now.
    pub(super) daily_until: Option<SystemTime>,
    pub(super) window: Option<Result<SystemTime, String>>,
    pub(super) records: u64,
}

/// The connection's `status.load` and its RosterWalks and RequestBudget conditions.
pub(super) fn report(
    plan: &PlanSeen,
    handle: &ConnectionHandle,
    practitioners: u64,
    generation: Option<i64>,
    now: SystemTime,
) -> (LoadStatus, Vec<Condition>) {
    let projected = forecast(&ForecastInput {
        walk_interval: plan.interval,
        ..forecast_input(handle, practitioners, plan.records, plan.refused.is_none())
    })
    .total()
    .ceil() as u64;
    // How often each practitioner reads its own record when walks are refused.
    let safety = safety_interval(handle.resync);
    let drift = drift_detection(plan, handle.spec.walk_windows.as_ref(), safety, now);
    let status = load_status(plan, handle, projected, drift, now);
    let mut conditions = vec![walks_condition(
        plan,
        safety,
        &status.drift_detection,
        generation,
    )];
    if let Some(b) = &handle.spec.request_budget {
        let numbers = BudgetNumbers {
            projected,
            practitioners,
            used: status.requests_used,
            interval: plan.interval,
        };
        conditions.push(budget_condition(
            b,
            plan.too_small.as_ref(),
            &numbers,
            generation,
        ));
    }
    (status, conditions)
}

/// How soon drift made in Epic is noticed, in a sentence.
fn drift_detection(
    plan: &PlanSeen,
    windows: Option<&WalkWindows>,
    safety: Duration,
    now: SystemTime,
) -> String {
    let interval = plan.interval;
    let mut drift = match (&plan.refused, windows) {
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
    if let Some(t) = plan.daily_until {
        drift.push_str(&format!(
            "; Epic's daily limit was reached, so walks wait until {}",
            rfc3339(t)
        ));
    }
    drift
}

/// `status.load`: the rate now, the requests counted, the forecast and the walk cadence.
fn load_status(
    plan: &PlanSeen,
    handle: &ConnectionHandle,
    projected: u64,
    drift_detection: String,
    now: SystemTime,
) -> LoadStatus {
    let rate = handle.client.rate().snapshot();
    let usage = handle.client.usage();
    let budget = handle.spec.request_budget.as_ref();
    let period = budget
        .and_then(|b| b.period().ok())
        .unwrap_or(Duration::from_secs(86_400));
    LoadStatus {
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
        walk_interval: Some(human(plan.interval)),
        next_walk_time: match &plan.window {
            Some(Ok(open)) => Some(rfc3339(*open)),
            _ => plan.daily_until.or(plan.next_walk).map(rfc3339),
        },
        drift_detection,
    }
}

fn condition(
    type_: &str,
    ok: bool,
    reason: Reason,
    message: String,
    generation: Option<i64>,
) -> Condition {
    Condition::new(
        type_,
        ok.into(),
        reason,
        &message,
        generation,
        crate::util::now_rfc3339(),
    )
}

/// RosterWalks: refused by Epic, held by a daily limit or invalid windows, or running.
fn walks_condition(
    plan: &PlanSeen,
    safety: Duration,
    drift_detection: &str,
    generation: Option<i64>,
) -> Condition {
    let (ok, reason, message) = match (&plan.refused, plan.daily_until, &plan.window) {
        (Some(answer), _, _) => (
            false,
            Reason::RosterUnavailable,
            format!(
                "Epic refuses roster walks on this instance ({answer}): practitioners are resolved one by one by identifier search where the instance offers it, and re-read at least every {}; walks are tried again at {}",
                human(safety),
                plan.next_walk.map(rfc3339).unwrap_or_default()
            ),
        ),
        (None, Some(t), _) => (
            false,
            Reason::DailyLimitReached,
            format!(
                "Epic's daily request limit for this client was reached: walks wait until {}",
                rfc3339(t)
            ),
        ),
        (None, None, Some(Err(e))) => (
            false,
            Reason::InvalidConnection,
            format!("roster walks are held: {e}"),
        ),
        (None, None, _) => (true, Reason::Ready, drift_detection.to_string()),
    };
    condition("RosterWalks", ok, reason, message, generation)
}

/// The numbers the RequestBudget condition states.
struct BudgetNumbers {
    projected: u64,
    practitioners: u64,
    /// Requests used so far in the budget's period.
    used: u64,
    interval: Duration,
}

/// RequestBudget: invalid, too small for the practitioners, or the projection within it.
fn budget_condition(
    b: &RequestBudget,
    too_small: Option<&String>,
    n: &BudgetNumbers,
    generation: Option<i64>,
) -> Condition {
    let (ok, reason, message) = match (b.period(), too_small) {
        (Err(e), _) => (false, Reason::InvalidConnection, e),
        (Ok(_), Some(why)) => (false, Reason::BudgetTooSmall, why.clone()),
        (Ok(_), None) => (
            true,
            Reason::Ready,
            format!(
                "about {} requests a day projected for {} practitioners, within {} per {} ({} used so far in the period); walks every {}",
                n.projected,
                n.practitioners,
                b.requests,
                b.per,
                n.used,
                human(n.interval)
            ),
        ),
    };
    condition("RequestBudget", ok, reason, message, generation)
}
