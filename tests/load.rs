//! Load that an Epic team can approve, against the sandbox over real HTTP: Retry-After in
//! both forms on 429 and 503, the adaptive rate falling under strain and climbing back, Epic's
//! daily-limit answer, and a roster walk refused for having no parameters (4110).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{client_with, dev_key, fast_retry, id_of, sandbox, scopes, stats};
use epic_operator::auth::TokenSource;
use epic_operator::fhir::rate::HoldKind;
use epic_operator::fhir::{ConnectionSettings, FhirClient, FhirError, ResourceWalk};
use epic_operator::sandbox::{DEV_CLIENT_ID, LoadSettings, Sandbox, Settings};

const NPI: &str = "1234567893";

fn set_load(s: &Sandbox, load: LoadSettings) {
    s.set_settings(Settings {
        load,
        ..Settings::default()
    });
}

/// A client at `rps` requests per second, retrying reads for up to 5 s.
fn client_at(s: &Sandbox, rps: u32) -> FhirClient {
    let http = epic_operator::http::client().unwrap();
    let tokens = TokenSource::new(
        http.clone(),
        dev_key(s),
        DEV_CLIENT_ID,
        s.token_url(),
        scopes(),
    )
    .unwrap();
    let mut settings = ConnectionSettings::new(s.fhir_base_url());
    settings.retry = fast_retry();
    settings.requests_per_second = rps;
    settings.burst = rps;
    FhirClient::new(http, settings, Arc::new(tokens), None).unwrap()
}

#[tokio::test]
async fn a_503_with_retry_after_as_a_date_is_waited_out_and_the_rate_drops() {
    let s = sandbox().await;
    let id = id_of(&s, NPI).await;
    let c = client_with(&s, scopes(), fast_retry());
    c.read_practitioner(&id).await.unwrap();
    set_load(
        &s,
        LoadSettings {
            unavailable_next: 1,
            unavailable_retry_after_secs: 2,
            ..LoadSettings::default()
        },
    );
    let started = Instant::now();
    c.read_practitioner(&id).await.unwrap();
    // An HTTP date has whole seconds: "2 s from now" is 1 to 2 s away.
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "{:?}",
        started.elapsed()
    );
    let load = &stats(&s).await["load"];
    assert_eq!(load["unavailable"], 1, "{load}");
    let rate = c.rate().snapshot();
    assert_eq!(rate.cuts, 1);
    assert_eq!(rate.last_cut, Some("503"));
    assert!(rate.current < rate.ceiling, "{rate:?}");
    s.stop().await;
}

#[tokio::test]
async fn a_429_with_retry_after_in_seconds_is_waited_out() {
    let s = sandbox().await;
    let id = id_of(&s, NPI).await;
    let c = client_with(&s, scopes(), fast_retry());
    set_load(
        &s,
        LoadSettings {
            throttle_next: 1,
            throttle_retry_after_secs: 1,
            ..LoadSettings::default()
        },
    );
    let started = Instant::now();
    c.read_practitioner(&id).await.unwrap();
    assert!(started.elapsed() >= Duration::from_secs(1));
    assert_eq!(stats(&s).await["load"]["throttledWithRetryAfter"], 1);
    assert_eq!(c.rate().snapshot().last_cut, Some("429"));
    s.stop().await;
}

#[tokio::test]
async fn a_long_retry_after_holds_every_request_without_sending_it() {
    let s = sandbox().await;
    let id = id_of(&s, NPI).await;
    let c = client_with(&s, scopes(), fast_retry());
    c.read_practitioner(&id).await.unwrap();
    set_load(
        &s,
        LoadSettings {
            throttle_next: 1,
            throttle_retry_after_secs: 120,
            ..LoadSettings::default()
        },
    );
    let e = c.read_practitioner(&id).await.unwrap_err();
    assert_eq!(e.retry_after().map(|d| d.as_secs()), Some(120), "{e}");
    let before = stats(&s).await["read"].as_u64().unwrap();
    let started = Instant::now();
    let again = c.read_practitioner(&id).await.unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "held requests fail at once"
    );
    assert!(
        matches!(again, FhirError::Throttled { retry_after: Some(d) } if d > Duration::from_secs(100))
    );
    assert_eq!(
        stats(&s).await["read"].as_u64().unwrap(),
        before,
        "nothing reached Epic"
    );
    let (left, kind) = c.rate().snapshot().held.unwrap();
    assert_eq!(kind, HoldKind::RetryAfter);
    assert!(left > Duration::from_secs(100));
    s.stop().await;
}

#[tokio::test]
async fn the_rate_falls_under_rising_latency_and_climbs_back_slowly() {
    let s = sandbox().await;
    let id = id_of(&s, NPI).await;
    let c = client_at(&s, 20);
    // The baseline: quick answers.
    for _ in 0..15 {
        c.read_practitioner(&id).await.unwrap();
    }
    assert_eq!(c.rate().snapshot().current, 20.0);
    // Latency that grows with load, up to well above the baseline.
    set_load(
        &s,
        LoadSettings {
            latency_ramp_ms_per_request: 200,
            latency_ramp_max_ms: 800,
            ..LoadSettings::default()
        },
    );
    for _ in 0..6 {
        c.read_practitioner(&id).await.unwrap();
    }
    let slowed = c.rate().snapshot();
    assert!(slowed.current < 20.0, "{slowed:?}");
    assert_eq!(slowed.last_cut, Some("latency"));
    // Healthy again: the rate climbs back, additively (5% of the ceiling a second).
    set_load(&s, LoadSettings::default());
    let recovering = Instant::now();
    let mut back = false;
    while recovering.elapsed() < Duration::from_secs(20) {
        c.read_practitioner(&id).await.unwrap();
        if c.rate().snapshot().current >= 20.0 {
            back = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(back, "the rate came back: {:?}", c.rate().snapshot());
    let took = recovering.elapsed();
    assert!(
        took >= Duration::from_secs(1),
        "slowly, not at once: {took:?}"
    );
    s.stop().await;
}

#[tokio::test]
async fn the_daily_limit_answer_stops_requests_until_the_next_day() {
    let s = sandbox().await;
    let id = id_of(&s, NPI).await;
    let c = client_with(&s, scopes(), fast_retry());
    // A compressed day of 3 s with an allowance of 4 requests. Start just after a day began.
    let day = 3u64;
    loop {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap();
        if now.as_millis() % u128::from(day * 1000) < 300 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    set_load(
        &s,
        LoadSettings {
            daily_quota: 4,
            day_length_secs: day,
            ..LoadSettings::default()
        },
    );
    for _ in 0..4 {
        c.read_practitioner(&id).await.unwrap();
    }
    let e = c.read_practitioner(&id).await.unwrap_err();
    assert!(matches!(e, FhirError::DailyLimit { .. }), "{e:?}");
    assert_eq!(e.reason().as_str(), "DailyLimitReached");
    assert!(
        e.retry_after()
            .is_some_and(|d| d <= Duration::from_secs(day)),
        "{e}"
    );
    let (_, kind) = c.rate().snapshot().held.unwrap();
    assert_eq!(kind, HoldKind::DailyLimit);
    // The next request waits for the new day instead of meeting the limit again.
    c.read_practitioner(&id).await.unwrap();
    let load = &stats(&s).await["load"];
    assert_eq!(load["dailyLimited"], 1, "{load}");
    assert_eq!(load["usedToday"], 1, "{load}");
    s.stop().await;
}

#[tokio::test]
async fn a_roster_walk_without_parameters_is_refused_with_4110() {
    let s = sandbox().await;
    let c = client_with(&s, scopes(), fast_retry());
    set_load(
        &s,
        LoadSettings {
            walk_needs_parameters: true,
            ..LoadSettings::default()
        },
    );
    let e = c
        .walk_all(ResourceWalk::Practitioner, 10, |_, _| Duration::ZERO)
        .await
        .unwrap_err();
    assert!(e.is_walk_refusal(), "{e:?}");
    assert_eq!(e.epic_codes(), vec!["4110".to_string()]);
    // Identifier search still works there.
    let found = c.read_practitioner(&id_of(&s, NPI).await).await;
    assert!(found.is_ok());
    s.stop().await;
}

#[test]
fn forecast_prints_the_daily_volume_and_the_cadence_a_budget_allows() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = dir.path().join("conn.yaml");
    let write = |budget: &str| {
        std::fs::write(
            &manifest,
            format!(
                "apiVersion: epic-operator.dev/v1alpha1\nkind: EpicConnection\nmetadata: {{name: epic}}\nspec:\n  fhirBaseUrl: https://epic.example.org/api/FHIR/R4\n  clientId: c\n  keyId: k\n  privateKeySecretRef: {{name: s, key: private-key.pem}}\n  pageSize: 50\n{budget}"
            ),
        )
        .unwrap();
    };
    let run = |extra: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_epic-operator"))
            .arg("forecast")
            .arg("--connection")
            .arg(&manifest)
            .args(extra)
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).to_string(),
            String::from_utf8_lossy(&out.stderr).to_string(),
        )
    };
    // The numbers: 50,000 clinicians every 10 minutes.
    write("");
    let (ok, out, _) = run(&["--practitioners", "50000"]);
    assert!(ok);
    assert!(
        out.contains("144000  roster walk pages (144.0 walks a day)"),
        "{out}"
    );
    assert!(out.contains("169144  requests a day in all"), "{out}");
    assert!(out.contains("none set"), "{out}");
    // 10,000 under 20,000 a day: the cadence stretches.
    write("  requestBudget: {requests: 20000, per: 24h}\n");
    let (ok, out, _) = run(&["--practitioners", "10000"]);
    assert!(ok);
    assert!(
        out.contains("walks stretched from every 10m to every"),
        "{out}"
    );
    // A budget too small for one walk a day says so with the numbers.
    write("  requestBudget: {requests: 100, per: 24h}\n");
    let (ok, out, _) = run(&["--practitioners", "10000"]);
    assert!(ok);
    assert!(
        out.contains("BudgetTooSmall") && out.contains("10000 records at pageSize 50"),
        "{out}"
    );
    // Bad input: a clear error, not a panic.
    let (ok, _, err) = run(&["--drift-per-day", "3"]);
    assert!(!ok);
    assert!(err.contains("between 0 and 1"), "{err}");
}

#[tokio::test]
async fn only_parameterless_searches_count_as_walks() {
    let s = sandbox().await;
    let c = client_with(&s, scopes(), fast_retry());
    let found = c.search_npi(NPI).await.unwrap();
    let walks = || async { stats(&s).await["load"]["walks"].as_u64().unwrap() };
    assert_eq!(walks().await, 0, "identifier search: {found:?}");
    let id = id_of(&s, NPI).await;
    c.practitioner_roles(&id).await.unwrap();
    assert_eq!(walks().await, 0, "role search by practitioner");
    c.walk_all(ResourceWalk::Practitioner, 10, |_, _| Duration::ZERO)
        .await
        .unwrap();
    assert_eq!(walks().await, 1);
    s.stop().await;
}
