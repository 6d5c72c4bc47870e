//! Load an Epic team can approve, end to end: a refused roster walk falls back to identifier
//! search with a connection condition and backs off; where neither works every practitioner
//! says why; a request budget holds over a compressed period while new practitioners still
//! resolve at once; walk windows keep full walks out of the day.

use std::time::{Duration, Instant};

use epic_operator::crd::{
    Day, EpicConnection, EpicPractitionerSpec, RequestBudget, WalkWindow, WalkWindows,
    npi_from_prefix,
};
use epic_operator::sandbox::{LoadSettings, SandboxConfig, Settings};
use kube::api::{Patch, PatchParams};
use serde_json::json;

use super::{ControlPlane, Operator, World, condition, create, is, stats, wait_for, world};

const ALICE: &str = "1234567893";

fn spec(npi: &str) -> EpicPractitionerSpec {
    serde_json::from_value(json!({"connectionRef": {"name": "epic"}, "npi": npi})).unwrap()
}

fn refusing(identifier_search: bool) -> SandboxConfig {
    SandboxConfig {
        settings: Settings {
            identifier_search_unsupported: !identifier_search,
            load: LoadSettings {
                walk_needs_parameters: true,
                ..LoadSettings::default()
            },
            ..Settings::default()
        },
        ..SandboxConfig::default()
    }
}

/// Waits until the connection satisfies `pred`.
async fn wait_connection(
    w: &World,
    what: &str,
    pred: impl Fn(&EpicConnection) -> bool,
) -> EpicConnection {
    let started = Instant::now();
    let mut last = None;
    while started.elapsed() < Duration::from_secs(120) {
        if let Ok(c) = w.connections.get("epic").await {
            if pred(&c) {
                return c;
            }
            last = Some(c);
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    panic!(
        "[{}] timed out waiting for {what}: {:#?}",
        w.ns,
        last.and_then(|c| c.status)
    );
}

fn conn_condition<'a>(c: &'a EpicConnection, t: &str) -> Option<&'a epic_operator::crd::Condition> {
    c.status.as_ref()?.conditions.iter().find(|x| x.type_ == t)
}

async fn walks(w: &World) -> u64 {
    stats(w).await["load"]["walks"].as_u64().unwrap()
}

/// Scenario 20: Epic refuses `Practitioner?_count=N` (400, 4110). Practitioners resolve by
/// identifier search, the connection's RosterWalks condition says walks are refused, and the
/// walk is tried again after 30 s, then after a minute (no longer every 30 s forever).
pub async fn a_refused_roster_walk_falls_back_to_identifier_search(cp: &ControlPlane) {
    let w = world(cp, "s20-refused-walk", refusing(true), |c| {
        c.resync_interval = Some("10s".into());
    })
    .await;
    let _op = Operator::start(cp, &w.ns, &[]);
    create(&w, "alice", spec(ALICE)).await;
    let p = wait_for(&w, "alice", "Ready by identifier search", |p| {
        is(p, "Ready", "True", "Ready")
    })
    .await;
    assert!(p.status.unwrap().fhir_id.is_some());
    let c = wait_connection(&w, "RosterWalks=False", |c| {
        conn_condition(c, "RosterWalks").is_some_and(|x| x.reason == "RosterUnavailable")
    })
    .await;
    let message = &conn_condition(&c, "RosterWalks").unwrap().message;
    assert!(
        message.contains("4110") && message.contains("identifier search"),
        "{message}"
    );
    assert!(
        c.status
            .as_ref()
            .unwrap()
            .conditions
            .iter()
            .any(|x| x.type_ == "Ready" && x.reason == "Ready"),
        "the connection itself stays Ready"
    );
    assert!(stats(&w).await["identifierSearch"].as_u64().unwrap() >= 1);
    // The walk is tried again 30 s after the first refusal, a minute after the second, and so
    // on (no longer every 30 s forever): status.load shows each planned retry.
    let next_walk = |c: &EpicConnection| {
        c.status
            .as_ref()
            .and_then(|s| s.load.as_ref())
            .and_then(|l| l.next_walk_time.as_deref())
            .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
    };
    let c = wait_connection(&w, "a planned retry", |c| next_walk(c).is_some()).await;
    let t1 = next_walk(&c).unwrap();
    let c = wait_connection(&w, "the next retry planned", |c| {
        next_walk(c).is_some_and(|t| t != t1)
    })
    .await;
    let t2 = next_walk(&c).unwrap();
    let gap = (t2 - t1).num_seconds();
    // 30 s, then 60 s, then 120 s...: two planned retries in a row are at least a minute
    // apart (the old 30 s loop would plan them 30 s apart forever).
    assert!(
        (50..=130).contains(&gap),
        "retries {t1} then {t2}: {gap} s apart"
    );
    let load = c.status.unwrap().load.unwrap();
    assert!(
        load.drift_detection.contains("refused"),
        "{}",
        load.drift_detection
    );
}

/// Scenario 21: roster walks refused and no identifier search: every practitioner says why.
pub async fn without_walks_or_search_every_practitioner_says_why(cp: &ControlPlane) {
    let w = world(cp, "s21-no-way", refusing(false), |_| {}).await;
    let _op = Operator::start(cp, &w.ns, &[]);
    create(&w, "alice", spec(ALICE)).await;
    let p = wait_for(&w, "alice", "RosterUnavailable", |p| {
        is(p, "Synced", "False", "RosterUnavailable")
    })
    .await;
    let m = &condition(&p, "Synced").unwrap().message;
    assert!(
        m.contains("refuses roster walks") && m.contains("identifier"),
        "{m}"
    );
}

/// Scenario 22: a budget of 60 requests a minute (a compressed day) on a roster of 150 at
/// page size 10 with a 10 s resync interval, which alone would cost about 100 a minute. The
/// sandbox counts at most the budget in every minute, the walk cadence is stretched, and a
/// practitioner created meanwhile is Ready within 2 s.
pub async fn a_request_budget_holds_and_new_practitioners_resolve_at_once(cp: &ControlPlane) {
    let budget = 60u64;
    let w = world(
        cp,
        "s22-budget",
        SandboxConfig {
            generate: 150,
            ..SandboxConfig::default()
        },
        |c| {
            c.resync_interval = Some("10s".into());
            c.page_size = Some(10);
            c.request_budget = Some(RequestBudget {
                requests: budget,
                per: "1m".into(),
            });
        },
    )
    .await;
    let _op = Operator::start(cp, &w.ns, &[]);
    for i in 0..10u32 {
        create(
            &w,
            &format!("g-{i}"),
            spec(&npi_from_prefix(200_000_000 + i)),
        )
        .await;
    }
    for i in 0..10u32 {
        wait_for(&w, &format!("g-{i}"), "Ready", |p| {
            is(p, "Ready", "True", "Ready")
        })
        .await;
    }
    let observed = Instant::now();
    tokio::time::sleep(Duration::from_secs(40)).await;
    // A new practitioner, while walks are paced by the budget.
    create(&w, "late", spec(&npi_from_prefix(200_000_100))).await;
    let created = Instant::now();
    loop {
        let p = w.practitioners.get("late").await.unwrap();
        if is(&p, "Ready", "True", "Ready") {
            break;
        }
        assert!(
            created.elapsed() < Duration::from_secs(2),
            "late is Ready within 2 s: {:?}",
            p.status
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // At least 70 s observed in all: more than one budget period.
    tokio::time::sleep(Duration::from_secs(70).saturating_sub(observed.elapsed())).await;
    let st = stats(&w).await;
    let per_second: Vec<(u64, u64)> = st["perSecond"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p[0].as_u64().unwrap(), p[1].as_u64().unwrap()))
        .collect();
    let (first, last) = (per_second.first().unwrap().0, per_second.last().unwrap().0);
    let mut worst = 0;
    for start in first..=last {
        let sum: u64 = per_second
            .iter()
            .filter(|(s, _)| *s >= start && *s < start + 60)
            .map(|(_, n)| n)
            .sum();
        worst = worst.max(sum);
    }
    // perSecond counts token requests as well as FHIR ones: allow those few.
    let tokens = st["token"].as_u64().unwrap();
    assert!(
        worst <= budget + tokens,
        "busiest minute {worst} > budget {budget} (+{tokens} tokens): {st}"
    );
    let c = w.connections.get("epic").await.unwrap();
    let s = c.status.unwrap();
    let load = s.load.unwrap();
    assert_eq!(load.budget.as_deref(), Some("60 per 1m"));
    let walk_interval = load.walk_interval.unwrap();
    assert_ne!(walk_interval, "10s", "the cadence is stretched");
    let cond = s
        .conditions
        .iter()
        .find(|x| x.type_ == "RequestBudget")
        .unwrap();
    assert_eq!(cond.reason, "Ready", "{cond:?}");
    eprintln!(
        "budget {budget}/min: busiest minute {worst} requests over {:?}, walks every {walk_interval}, projected {}/day",
        observed.elapsed(),
        load.projected_requests_per_day
    );
}

/// Scenario 23: walk windows. Outside them no full walk runs (practitioners resolve by
/// identifier search); a window that includes now lets the walk run.
pub async fn walk_windows_keep_full_walks_out_of_the_day(cp: &ControlPlane) {
    let now = chrono::Utc::now();
    let hhmm = |t: chrono::DateTime<chrono::Utc>| t.format("%H:%M").to_string();
    let closed = WalkWindows {
        time_zone: "UTC".into(),
        ranges: vec![WalkWindow {
            days: Vec::new(),
            start: hhmm(now + chrono::TimeDelta::hours(3)),
            end: hhmm(now + chrono::TimeDelta::hours(4)),
        }],
    };
    let w = world(cp, "s23-windows", SandboxConfig::default(), |c| {
        c.resync_interval = Some("10s".into());
        c.walk_windows = Some(closed.clone());
    })
    .await;
    let _op = Operator::start(cp, &w.ns, &[]);
    create(&w, "alice", spec(ALICE)).await;
    wait_for(&w, "alice", "Ready by identifier search", |p| {
        is(p, "Ready", "True", "Ready")
    })
    .await;
    // The walk plan is reported by the connection's pass after the schedule first weighs the
    // window; practitioners can be Ready before that pass.
    let c = wait_connection(&w, "status.load with the next walk", |c| {
        c.status
            .as_ref()
            .and_then(|s| s.load.as_ref())
            .is_some_and(|l| l.next_walk_time.is_some())
    })
    .await;
    let load = c.status.unwrap().load.unwrap();
    assert!(
        load.drift_detection.contains("walk windows (UTC)"),
        "{}",
        load.drift_detection
    );
    let next =
        chrono::DateTime::parse_from_rfc3339(load.next_walk_time.as_deref().unwrap()).unwrap();
    assert!(
        next > now + chrono::TimeDelta::minutes(150),
        "next walk at the window: {next}"
    );
    tokio::time::sleep(Duration::from_secs(12)).await;
    assert_eq!(walks(&w).await, 0, "no full walk outside the windows");
    // Every day, all day, Monday to Sunday: the walk runs.
    let open = WalkWindows {
        time_zone: "UTC".into(),
        ranges: vec![WalkWindow {
            days: vec![
                Day::Mon,
                Day::Tue,
                Day::Wed,
                Day::Thu,
                Day::Fri,
                Day::Sat,
                Day::Sun,
            ],
            start: "00:00".into(),
            end: "24:00".into(),
        }],
    };
    w.connections
        .patch(
            "epic",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"walkWindows": open}})),
        )
        .await
        .unwrap();
    let started = Instant::now();
    while walks(&w).await == 0 && started.elapsed() < Duration::from_secs(60) {
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert!(
        walks(&w).await >= 1,
        "the walk ran inside the window: {}",
        stats(&w).await
    );
}

/// Scenario 24: Epic's daily limit. The allowance is spent within seconds; the walk that meets
/// the daily-limit answer stops walks until Epic's next day, the connection says so
/// (RosterWalks DailyLimitReached, load.heldUntil) and nothing more reaches Epic meanwhile.
pub async fn a_daily_limit_stops_walks_until_the_next_day(cp: &ControlPlane) {
    let w = world(
        cp,
        "s24-daily-limit",
        SandboxConfig {
            settings: Settings {
                // Epic's own day (UTC midnight to midnight): with a shorter one the scenario
                // could straddle the start of the next day, when walks rightly resume.
                load: LoadSettings {
                    daily_quota: 8,
                    ..LoadSettings::default()
                },
                ..Settings::default()
            },
            ..SandboxConfig::default()
        },
        |c| c.resync_interval = Some("10s".into()),
    )
    .await;
    let _op = Operator::start(cp, &w.ns, &[]);
    create(&w, "alice", spec(ALICE)).await;
    let c = wait_connection(&w, "RosterWalks=False DailyLimitReached", |c| {
        conn_condition(c, "RosterWalks").is_some_and(|x| x.reason == "DailyLimitReached")
    })
    .await;
    let s = c.status.unwrap();
    assert!(
        s.conditions
            .iter()
            .any(|x| x.type_ == "Ready" && x.reason == "Ready"),
        "the connection stays Ready: {:?}",
        s.conditions
    );
    assert!(
        s.load.unwrap().held_until.is_some(),
        "held until Epic's next day"
    );
    let before = stats(&w).await;
    tokio::time::sleep(Duration::from_secs(25)).await;
    let after = stats(&w).await;
    assert_eq!(
        after["load"]["walks"], before["load"]["walks"],
        "no walk: {after}"
    );
    assert_eq!(
        after["fhirTotal"], before["fhirTotal"],
        "nothing reaches Epic while held: {after}"
    );
    assert!(after["load"]["dailyLimited"].as_u64().unwrap() >= 1);
}
