//! What a connection's settings cost Epic, and how often its full roster walks may run: the
//! forecast (`epic-operator forecast`, and `status.load.projectedRequestsPerDay`), the walk
//! cadence that keeps a `requestBudget`, and how a refused or failing walk backs off. Pure:
//! numbers in, numbers out.

use std::time::Duration;

const DAY: f64 = 86_400.0;

/// The shortest safety interval, and the shortest time between PractitionerRole walks.
const AN_HOUR: Duration = Duration::from_secs(3600);

/// In roster mode, how often each practitioner gets a pass of its own (the safety sweep's
/// interval): six resync intervals, an hour at least. Walks wake it when its record changes;
/// this is the net for walks that keep failing, and what every practitioner reads when Epic
/// refuses roster walks.
pub fn safety_interval(resync: Duration) -> Duration {
    resync.saturating_mul(6).max(AN_HOUR)
}

/// Share of a budget kept for first resolutions of new practitioners and retries: walks are
/// planned into the rest, so a new EpicPractitioner is never starved by the walks.
pub const RESERVE: f64 = 0.1;

/// What the forecast is for.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ForecastInput {
    /// EpicPractitioners on the connection (the roster is assumed about as large).
    pub practitioners: u64,
    /// Records in Epic's roster when known and larger (a walk pages all of them).
    pub roster_records: u64,
    pub page_size: u32,
    /// The resync interval (capability probes; the shortest walk cadence).
    pub resync: Duration,
    /// How often full walks run (the resync interval, or longer under a budget).
    pub walk_interval: Duration,
    /// Fraction of practitioners whose record changes in Epic per day (drift).
    pub drift_per_day: f64,
    /// New EpicPractitioners per day.
    pub new_per_day: u64,
    /// Whether writes are tried (a drifted record costs a read and a PUT).
    pub writes: bool,
    /// Whether roster walks are possible; without them every practitioner is read on its own
    /// at least hourly and new ones are searched by identifier.
    pub roster_walks: bool,
}

/// Requests per day, by what they are for.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Forecast {
    pub walks_per_day: f64,
    pub walk_pages: f64,
    pub role_pages: f64,
    pub per_object_reads: f64,
    pub drift_requests: f64,
    pub resolutions: f64,
    pub probes: f64,
}

impl Forecast {
    pub fn total(&self) -> f64 {
        self.walk_pages
            + self.role_pages
            + self.per_object_reads
            + self.drift_requests
            + self.resolutions
            + self.probes
    }

    /// The forecast as lines for the Epic team.
    pub fn lines(&self) -> Vec<(String, u64)> {
        vec![
            (
                format!("roster walk pages ({:.1} walks a day)", self.walks_per_day),
                self.walk_pages.ceil() as u64,
            ),
            (
                "PractitionerRole walk pages".into(),
                self.role_pages.ceil() as u64,
            ),
            (
                "reads of single records (no roster walks)".into(),
                self.per_object_reads.ceil() as u64,
            ),
            (
                "reads and writes of drifted records".into(),
                self.drift_requests.ceil() as u64,
            ),
            (
                "first resolutions of new practitioners".into(),
                self.resolutions.ceil() as u64,
            ),
            ("capability probes".into(), self.probes.ceil() as u64),
        ]
    }
}

fn per_day(every: Duration) -> f64 {
    DAY / every.as_secs_f64().max(1.0)
}

/// How often the PractitionerRole walk runs, given the walk interval (as the walks do).
pub fn role_every(walk_interval: Duration) -> Duration {
    walk_interval.saturating_mul(6).max(AN_HOUR)
}

/// The requests a day these settings cost.
pub fn forecast(i: &ForecastInput) -> Forecast {
    let records = i.practitioners.max(i.roster_records) as f64;
    let n = i.practitioners as f64;
    let pages = (records / f64::from(i.page_size.max(1))).ceil().max(1.0);
    let drifted = n * i.drift_per_day.clamp(0.0, 1.0);
    let probes = per_day(i.resync);
    if !i.roster_walks {
        return Forecast {
            per_object_reads: n * per_day(safety_interval(i.resync)),
            // The read is already there: a drifted record costs its PUT.
            drift_requests: if i.writes { drifted } else { 0.0 },
            // An identifier search and a PractitionerRole search each.
            resolutions: i.new_per_day as f64 * 2.0,
            probes,
            ..Forecast::default()
        };
    }
    let walks = per_day(i.walk_interval);
    Forecast {
        walks_per_day: walks,
        walk_pages: walks * pages,
        role_pages: per_day(role_every(i.walk_interval)) * pages,
        per_object_reads: 0.0,
        // Woken with the walk's page copy: a write reads by id, then PUTs.
        drift_requests: if i.writes { drifted * 2.0 } else { 0.0 },
        // New practitioners resolve from the walk's index: no request of their own.
        resolutions: 0.0,
        probes,
    }
}

/// The walk cadence a budget allows.
#[derive(Clone, Debug, PartialEq)]
pub struct Cadence {
    pub interval: Duration,
    /// Why the budget cannot hold one walk a day, with the numbers (BudgetTooSmall).
    pub too_small: Option<String>,
}

/// The shortest walk interval (at least the resync interval) whose forecast fits in the
/// budget less [`RESERVE`]; a budget that cannot hold one walk a day walks daily and says so.
pub fn cadence(input: &ForecastInput, budget_per_day: Option<f64>) -> Cadence {
    let Some(budget) = budget_per_day else {
        return Cadence {
            interval: input.resync,
            too_small: None,
        };
    };
    let usable = budget * (1.0 - RESERVE);
    let cost = |interval: Duration| {
        forecast(&ForecastInput {
            walk_interval: interval,
            ..*input
        })
        .total()
    };
    if cost(input.resync) <= usable {
        return Cadence {
            interval: input.resync,
            too_small: None,
        };
    }
    let day = Duration::from_secs(86_400);
    if cost(day) > usable {
        let f = forecast(&ForecastInput {
            walk_interval: day,
            ..*input
        });
        let records = input.practitioners.max(input.roster_records);
        return Cadence {
            interval: day,
            too_small: Some(format!(
                "one full walk a day costs {} requests ({} records at pageSize {}: {} walk pages and {} PractitionerRole pages, plus {} for probes, drift and new practitioners), more than the {} a day requestBudget leaves after its {:.0}% reserve ({} a day): raise requestBudget to at least {} a day or raise pageSize; walks run once a day meanwhile",
                f.total().ceil(),
                records,
                input.page_size,
                f.walk_pages.ceil(),
                f.role_pages.ceil(),
                (f.probes + f.drift_requests + f.resolutions).ceil(),
                usable.floor(),
                RESERVE * 100.0,
                budget.floor(),
                (f.total() / (1.0 - RESERVE)).ceil(),
            )),
        };
    }
    // Cost falls as the interval grows: bisect to the second.
    let (mut lo, mut hi) = (input.resync.as_secs_f64(), 86_400.0f64);
    for _ in 0..60 {
        let mid = (lo + hi) / 2.0;
        if cost(Duration::from_secs_f64(mid)) <= usable {
            hi = mid;
        } else {
            lo = mid;
        }
        if hi - lo < 1.0 {
            break;
        }
    }
    Cadence {
        interval: Duration::from_secs(hi.ceil() as u64),
        too_small: None,
    }
}

/// The wait before trying a first walk again after `failures` failures in a row: 30 s,
/// doubling, up to 6 h for a walk the instance refuses (it will not pass by itself) and
/// 30 min for other failures.
pub fn walk_retry(failures: u32, refused: bool) -> Duration {
    let cap = if refused {
        Duration::from_secs(6 * 3600)
    } else {
        Duration::from_secs(1800)
    };
    Duration::from_secs(30)
        .saturating_mul(1u32 << failures.saturating_sub(1).min(16))
        .min(cap)
}

/// A duration as the status shows it (2h13m, 45s).
pub fn human(d: Duration) -> String {
    let s = d.as_secs();
    match (s / 3600, (s % 3600) / 60, s % 60) {
        (0, 0, s) => format!("{s}s"),
        (0, m, 0) => format!("{m}m"),
        (0, m, s) => format!("{m}m{s}s"),
        (h, 0, _) => format!("{h}h"),
        (h, m, _) => format!("{h}h{m}m"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(n: u64) -> ForecastInput {
        ForecastInput {
            practitioners: n,
            roster_records: 0,
            page_size: 50,
            resync: Duration::from_secs(600),
            walk_interval: Duration::from_secs(600),
            drift_per_day: 0.01,
            new_per_day: 10,
            writes: true,
            roster_walks: true,
        }
    }

    #[test]
    fn the_issue_s_numbers_fifty_thousand_every_ten_minutes() {
        // 50,000 clinicians at page size 50 every 10 minutes: 144,000 walk pages a day.
        let f = forecast(&input(50_000));
        assert_eq!(f.walks_per_day, 144.0);
        assert_eq!(f.walk_pages, 144_000.0);
        // Roles hourly: 24 walks of 1,000 pages.
        assert_eq!(f.role_pages, 24_000.0);
        assert_eq!(f.drift_requests, 1_000.0);
        assert_eq!(f.probes, 144.0);
        assert_eq!(f.total(), 169_144.0);
    }

    #[test]
    fn a_budget_stretches_the_cadence_and_keeps_a_reserve() {
        // 10,000 practitioners, 200 pages a walk, 20,000 requests a day.
        let c = cadence(&input(10_000), Some(20_000.0));
        assert!(c.too_small.is_none());
        let f = forecast(&ForecastInput {
            walk_interval: c.interval,
            ..input(10_000)
        });
        assert!(f.total() <= 18_000.0, "{f:?}");
        // A second shorter would not fit.
        let tighter = forecast(&ForecastInput {
            walk_interval: c.interval - Duration::from_secs(2),
            ..input(10_000)
        });
        assert!(tighter.total() > 18_000.0 - 1.0, "{tighter:?}");
        assert!(
            c.interval > Duration::from_secs(600) && c.interval < Duration::from_secs(3 * 3600)
        );
        // No budget: the resync interval.
        assert_eq!(
            cadence(&input(10_000), None).interval,
            Duration::from_secs(600)
        );
    }

    #[test]
    fn a_budget_that_cannot_hold_a_walk_a_day_says_so_with_numbers() {
        let c = cadence(&input(10_000), Some(300.0));
        assert_eq!(c.interval, Duration::from_secs(86_400));
        let why = c.too_small.unwrap();
        assert!(why.contains("10000 records at pageSize 50"), "{why}");
        assert!(why.contains("300 a day"), "{why}");
        assert!(why.contains("raise requestBudget to at least"), "{why}");
    }

    #[test]
    fn without_roster_walks_every_record_is_read_hourly() {
        let f = forecast(&ForecastInput {
            roster_walks: false,
            ..input(1_000)
        });
        assert_eq!(f.per_object_reads, 24_000.0);
        assert_eq!(f.walk_pages, 0.0);
        assert_eq!(f.resolutions, 20.0);
    }

    #[test]
    fn refused_walks_back_off_to_hours() {
        assert_eq!(walk_retry(1, true), Duration::from_secs(30));
        assert_eq!(walk_retry(2, true), Duration::from_secs(60));
        assert_eq!(walk_retry(12, true), Duration::from_secs(6 * 3600));
        assert_eq!(walk_retry(u32::MAX, false), Duration::from_secs(1800));
        assert_eq!(human(Duration::from_secs(7980)), "2h13m");
        assert_eq!(human(Duration::from_secs(45)), "45s");
    }
}
