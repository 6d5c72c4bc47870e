//! Metric names follow the Prometheus naming conventions (checked here by rule, so no
//! promtool is needed), and the dashboard uses only exported series, each filtered by its
//! namespace and job variables.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use epic_operator::fhir::{RequestEvent, RequestKind};
use epic_operator::operator::Metrics;
use epic_operator::operator::slim::CachedPractitioner;
use epic_operator::pipeline::WriteOutcome;
use serde_json::Value;

/// Every family with a sample (an empty family renders nothing).
fn exposition() -> String {
    let m = Arc::new(Metrics::default());
    let t = m.start_reconcile("EpicPractitioner");
    t.finish(None);
    drop(t);
    m.fhir_observer("ns/epic")(RequestEvent {
        kind: RequestKind::Read,
        status: Some(200),
        elapsed: Duration::from_millis(5),
        attempt: 2,
    });
    m.tokens_sent("ns/epic", 1);
    m.roster_walk("ns/epic", true);
    m.signing_key_age("ns/epic", Duration::from_secs(60));
    m.ops.set_leader(true);
    m.ops.token_expiry("ns/epic", Some(chrono::Utc::now()));
    m.ops.write("ns/epic", &WriteOutcome::Updated);
    let (store, _writer) = kube::runtime::reflector::store::<CachedPractitioner>();
    m.watch_store(store);
    m.render()
}

/// Family name -> (type, help) from the `# TYPE` and `# HELP` lines.
fn families(text: &str) -> BTreeMap<String, (String, String)> {
    let mut out: BTreeMap<String, (String, String)> = BTreeMap::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap();
            out.entry(name.into()).or_default().0 = kind.into();
        } else if let Some(rest) = line.strip_prefix("# HELP ") {
            let (name, help) = rest.split_once(' ').unwrap_or((rest, ""));
            out.entry(name.into()).or_default().1 = help.into();
        }
    }
    out
}

/// Units that must be given in their base unit instead (seconds, bytes, ratios).
const NOT_BASE_UNITS: &[&str] = &[
    "milliseconds",
    "microseconds",
    "nanoseconds",
    "ms",
    "minutes",
    "hours",
    "days",
    "kilobytes",
    "megabytes",
    "kibibytes",
    "mebibytes",
    "bits",
    "percent",
];

fn convention_problems(name: &str, kind: &str, help: &str) -> Vec<String> {
    let mut p = Vec::new();
    let words: Vec<&str> = name.split('_').collect();
    if !name
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        || name.contains("__")
        || name.ends_with('_')
    {
        p.push("not snake_case".into());
    }
    if !(name.starts_with("epic_operator_") || name.starts_with("process_")) {
        p.push("neither epic_operator_ nor the standard process_ prefix".into());
    }
    if name.starts_with("epic_operator_process_") {
        p.push("process metrics carry no project prefix".into());
    }
    if help.trim().is_empty() {
        p.push("no HELP".into());
    }
    // Counters: the family is named without `_total`, samples get it (OpenMetrics).
    if kind == "counter" && name.ends_with("_total") {
        p.push("counter family named with _total (samples would read _total_total)".into());
    }
    if kind != "counter" && name.ends_with("_total") {
        p.push("_total on something that is not a counter".into());
    }
    for unit in NOT_BASE_UNITS {
        if words.contains(unit) {
            p.push(format!("{unit}: use the base unit (seconds, bytes, ratio)"));
        }
    }
    // A unit, when there is one, is the suffix.
    for unit in ["seconds", "bytes"] {
        if let Some(at) = words.iter().position(|w| *w == unit)
            && at + 1 != words.len()
        {
            p.push(format!("{unit} is not the suffix"));
        }
    }
    if words.contains(&"timestamp") && !name.ends_with("_timestamp_seconds") {
        p.push("timestamps end in _timestamp_seconds".into());
    }
    if kind == "histogram" && !(name.ends_with("_seconds") || name.ends_with("_bytes")) {
        p.push("a histogram names its unit".into());
    }
    if kind == "info" && name.ends_with("_info") {
        p.push("info family named with _info (samples get it)".into());
    }
    p
}

#[test]
fn every_metric_name_follows_the_prometheus_conventions() {
    let text = exposition();
    let fams = families(&text);
    let mut problems = Vec::new();
    for (name, (kind, help)) in &fams {
        for p in convention_problems(name, kind, help) {
            problems.push(format!("{name} ({kind}): {p}"));
        }
    }
    assert!(problems.is_empty(), "{problems:#?}\n{text}");
    // What standard dashboards and alerts expect, and what the issue asks for.
    for expected in [
        "process_cpu_seconds",
        "process_resident_memory_bytes",
        "process_virtual_memory_bytes",
        "process_open_fds",
        "process_max_fds",
        "process_start_time_seconds",
        "epic_operator_pending_reconciles",
        "epic_operator_leader",
        "epic_operator_roster_walk_last_success_timestamp_seconds",
        "epic_operator_token_expiry_timestamp_seconds",
        "epic_operator_writes",
    ] {
        assert!(fams.contains_key(expected), "{expected} missing:\n{text}");
    }
    assert!(
        text.contains(r#"epic_operator_writes_total{connection="ns/epic",result="updated"} 1"#),
        "{text}"
    );
    assert!(text.contains("process_cpu_seconds_total "), "{text}");
    assert!(text.contains("epic_operator_leader 1"), "{text}");
}

#[test]
fn the_rules_catch_what_they_should() {
    let bad = [
        ("epic_operator_walk_duration_ms", "gauge"),
        ("epic_operator_writes_total", "counter"),
        ("epic_operator_process_open_fds", "gauge"),
        ("epic_operator_last_walk_timestamp", "gauge"),
        ("epic_operator_seconds_walked", "gauge"),
        ("epic_operator_walk_duration", "histogram"),
        ("epicOperatorWrites", "counter"),
    ];
    for (name, kind) in bad {
        assert!(
            !convention_problems(name, kind, "help").is_empty(),
            "{name} should be refused"
        );
    }
    assert!(convention_problems("epic_operator_writes", "counter", "").len() == 1);
}

fn dashboard() -> Value {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("charts/epic-operator/dashboards/epic-operator.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// Series a PromQL expression names (the project's and the process metrics).
fn series(expr: &str) -> Vec<&str> {
    expr.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|w| w.starts_with("epic_operator_") || w.starts_with("process_"))
        .collect()
}

/// The family a sample name belongs to, if exported with a type that has such samples.
fn family_of<'a>(sample: &'a str, fams: &BTreeMap<String, (String, String)>) -> Option<&'a str> {
    let candidates = [
        ("", &["gauge", "unknown"][..]),
        ("_total", &["counter"][..]),
        ("_bucket", &["histogram"][..]),
        ("_sum", &["histogram"][..]),
        ("_count", &["histogram"][..]),
        ("_info", &["info"][..]),
    ];
    candidates.iter().find_map(|(suffix, kinds)| {
        let base = sample.strip_suffix(suffix)?;
        let (kind, _) = fams.get(base)?;
        kinds.contains(&kind.as_str()).then_some(base)
    })
}

#[test]
fn the_dashboard_queries_exported_series_filtered_by_namespace_and_job() {
    let fams = families(&exposition());
    let d = dashboard();
    let vars: Vec<&str> = d["templating"]["list"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["name"].as_str().unwrap())
        .collect();
    for v in ["datasource", "namespace", "job"] {
        assert!(
            vars.contains(&v),
            "dashboard variable {v} missing: {vars:?}"
        );
    }
    let mut used = 0;
    for panel in d["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().unwrap() {
            let expr = target["expr"].as_str().unwrap();
            let names = series(expr);
            assert!(!names.is_empty(), "{}: no metric in {expr}", panel["title"]);
            for name in names {
                assert!(
                    family_of(name, &fams).is_some(),
                    "panel {}: {name} is not an exported series",
                    panel["title"]
                );
                used += 1;
            }
            // Every selector narrows to the picked namespace and job.
            let selectors = expr.matches('{').count();
            assert_eq!(
                expr.matches(r#"namespace=~"$namespace""#).count(),
                selectors,
                "{expr}"
            );
            assert_eq!(expr.matches(r#"job=~"$job""#).count(), selectors, "{expr}");
        }
    }
    assert!(used >= 15, "the dashboard shows {used} series");
    // The variables are read from a series every replica exports.
    let ns = &d["templating"]["list"][1];
    assert!(
        ns["definition"]
            .as_str()
            .unwrap()
            .contains("epic_operator_build_info"),
        "{ns}"
    );
    assert!(family_of("epic_operator_build_info", &fams).is_some());
}
