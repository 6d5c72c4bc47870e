//! `forecast`: the requests a day an EpicConnection's settings cost for N practitioners, for
//! the Epic team before go-live; `token --practitioners N` prints the same table.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Args;

use super::fail;
use crate::crd::{EpicConnectionSpec, WriteMode};
use crate::operator::roster::pace::{ForecastInput, RESERVE, cadence, forecast, human};

#[derive(Args, Debug, Clone)]
pub struct ForecastArgs {
    /// The EpicConnection manifest whose settings (pageSize, resyncInterval, writes,
    /// requestBudget, walkWindows) are costed. Nothing is sent to Epic.
    #[arg(long, value_name = "FILE")]
    pub connection: PathBuf,
    #[command(flatten)]
    pub assumptions: Assumptions,
}

/// What the forecast assumes about the practitioners.
#[derive(Args, Debug, Clone)]
pub struct Assumptions {
    /// EpicPractitioners on the connection (the roster is taken to be as large).
    #[arg(long, value_name = "N", default_value_t = 1000)]
    pub practitioners: u64,
    /// Fraction of records changed in Epic per day (drift to read and write back).
    #[arg(long, value_name = "FRACTION", default_value_t = 0.01)]
    pub drift_per_day: f64,
    /// New EpicPractitioners per day.
    #[arg(long, value_name = "N", default_value_t = 10)]
    pub new_per_day: u64,
    /// Cost the instance as one that refuses roster walks (Epic 4110): every practitioner
    /// then reads its own record at least hourly.
    #[arg(long)]
    pub no_roster_walks: bool,
}

pub(super) fn forecast_command(args: ForecastArgs) -> ExitCode {
    let conn = match crate::gitops::load_connection_manifest(&args.connection) {
        Ok(c) => c,
        Err(e) => return fail(&e),
    };
    match print_forecast(&conn.spec, &args.assumptions) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(&e),
    }
}

/// Prints the forecast table for `spec`.
pub fn print_forecast(spec: &EpicConnectionSpec, a: &Assumptions) -> Result<(), String> {
    if !(0.0..=1.0).contains(&a.drift_per_day) {
        return Err(format!(
            "--drift-per-day {} is not a fraction: give a value between 0 and 1, for example 0.01",
            a.drift_per_day
        ));
    }
    let resync = spec.resync_interval()?;
    let page_size = spec.page_size.unwrap_or(50).max(1);
    let budget = spec
        .request_budget
        .as_ref()
        .map(|b| b.per_day())
        .transpose()?;
    let windows = spec
        .walk_windows
        .as_ref()
        .map(|w| w.checked())
        .transpose()?;
    let input = ForecastInput {
        practitioners: a.practitioners,
        roster_records: 0,
        page_size,
        resync,
        walk_interval: resync,
        drift_per_day: a.drift_per_day,
        new_per_day: a.new_per_day,
        writes: spec.writes != WriteMode::Disabled,
        roster_walks: !a.no_roster_walks,
    };
    let plan = cadence(&input, budget);
    let f = forecast(&ForecastInput {
        walk_interval: plan.interval,
        ..input
    });
    println!(
        "forecast for {} practitioners (pageSize {page_size}, resyncInterval {}, writes {:?}, drift {:.1}% a day, {} new a day)",
        a.practitioners,
        human(resync),
        spec.writes,
        a.drift_per_day * 100.0,
        a.new_per_day
    );
    for (what, n) in f.lines() {
        println!("  {n:>10}  {what}");
    }
    println!("  {:>10}  requests a day in all", f.total().ceil() as u64);
    println!(
        "  {:>10}  requests a second at most (requestsPerSecond; slower by itself when Epic strains)",
        spec.requests_per_second.unwrap_or(20)
    );
    if !a.no_roster_walks {
        println!("walks         : every {}", human(plan.interval));
    }
    match (&spec.request_budget, budget) {
        (Some(b), Some(per_day)) => {
            println!(
                "budget        : {} per {} ({:.0} a day, {:.0}% kept for new practitioners)",
                b.requests,
                b.per,
                per_day,
                RESERVE * 100.0
            );
            match &plan.too_small {
                Some(why) => println!("BudgetTooSmall: {why}"),
                None if plan.interval > resync => println!(
                    "cadence       : walks stretched from every {} to every {} to stay inside the budget",
                    human(resync),
                    human(plan.interval)
                ),
                None => println!("cadence       : fits at the resync interval"),
            }
        }
        _ => {
            println!("budget        : none set (spec.requestBudget); agree one with the Epic team")
        }
    }
    if let (Some(w), Some(spec_w)) = (windows, &spec.walk_windows)
        && let Ok(now) = jiff::Timestamp::try_from(std::time::SystemTime::now())
    {
        let gap = w.longest_gap(now);
        println!(
            "windows       : full walks only inside the walk windows ({}); drift is noticed within about {} inside them and up to {} across the longest gap. Walks outside are skipped, so the day's total is lower than above",
            spec_w.time_zone,
            human(plan.interval),
            human(plan.interval + gap.min(Duration::from_secs(7 * 86_400)))
        );
    }
    Ok(())
}
