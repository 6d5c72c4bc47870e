//! Scale benchmark: the operator at N practitioners against a real kube-apiserver and the
//! sandbox, in per-object and roster drift-detection modes. See BENCHMARKS.md.
//!
//! cargo bench --bench scale                     defaults: 10-minute resync, 5-minute paging
//!                                                sessions, page size 50; N = 10,000 in both
//!                                                modes, then N = 50,000 in roster mode
//! cargo bench --bench scale -- --fast 1000,10000 the fast variant: 60 s resync and tokens
//! cargo bench --bench scale -- 10000 roster      chosen sizes and modes
//! cargo bench --bench scale -- --fast --budget 3000/1h 10000 roster
//!                                                a request budget on the connection: after
//!                                                the initial sync, a window of budget-paced
//!                                                walks (at most 28 min) counted by the
//!                                                sandbox, next to `epic-operator forecast`
//!
//! Everything runs on 127.0.0.1; every wait is bounded.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../tests/e2e/cluster.rs"]
mod cluster;

use std::collections::BTreeMap;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use cluster::{Component, ControlPlane, free_port};
use epic_operator::crd::{
    EpicConnection, EpicConnectionSpec, EpicPractitioner, EpicPractitionerSpec, RequestBudget,
    npi_from_prefix,
};
use epic_operator::sandbox::{Sandbox, SandboxConfig, Settings};
use futures::StreamExt;
use k8s_openapi::api::core::v1::Secret;
use kube::Api;
use kube::api::{ListParams, ObjectMeta, PostParams};
use serde_json::{Value, json};

const RATE_LIMIT: u32 = 300;
const CONCURRENCY: u16 = 16;
const PAGE_SIZE: u32 = 50;

/// The intervals of one run: the defaults, or the fast variant.
#[derive(Clone, Copy, Debug)]
struct Timing {
    resync_secs: u64,
    token_ttl_secs: u64,
}

const DEFAULTS: Timing = Timing {
    resync_secs: 600,
    token_ttl_secs: 3600,
};
const FAST: Timing = Timing {
    resync_secs: 60,
    token_ttl_secs: 60,
};

struct Operator {
    child: Child,
    /// The operator process itself: the child, or under a wrapper its `epic-operator` child.
    pid: u32,
}

impl Operator {
    /// SIGTERM first, so that a profiler around the operator can write its data, then up to
    /// 60 s for the child to exit; SIGKILL after that.
    fn stop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.pid.to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if !matches!(self.child.try_wait(), Ok(None)) {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Operator {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The process's command name (`/proc/PID/comm`).
fn comm(pid: u32) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/comm"))
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

/// The operator's own process: `child` itself, or a child process of it named
/// `epic-operator` (a wrapper such as heaptrack's script starts it), waited for up to 10 s.
fn operator_pid(child: u32) -> u32 {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if comm(child) == "epic-operator" {
            return child;
        }
        let found = std::fs::read_dir("/proc").ok().and_then(|dir| {
            dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
                .find(|&pid| {
                    let parent = std::fs::read_to_string(format!("/proc/{pid}/stat"))
                        .ok()
                        .and_then(|s| {
                            s.rsplit_once(')')?
                                .1
                                .split_whitespace()
                                .nth(1)?
                                .parse::<u32>()
                                .ok()
                        });
                    parent == Some(child) && comm(pid) == "epic-operator"
                })
        });
        if let Some(pid) = found {
            return pid;
        }
        if Instant::now() >= deadline {
            return child;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// CPU seconds (user + system) the process has used, from /proc/PID/stat (clock ticks at the
/// kernel's USER_HZ of 100).
fn cpu_secs(pid: u32) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            // Fields after the command name (which is in parentheses and may hold spaces).
            let rest = s.rsplit_once(')')?.1;
            let f: Vec<&str> = rest.split_whitespace().collect();
            let utime: f64 = f.get(11)?.parse().ok()?;
            let stime: f64 = f.get(12)?.parse().ok()?;
            Some((utime + stime) / 100.0)
        })
        .unwrap_or(0.0)
}

fn rss_kib(pid: u32) -> u64 {
    status_kib(pid, "VmRSS:")
}

/// A `kB` line of /proc/PID/status (`VmRSS:`, `RssAnon:`, `RssFile:`).
fn status_kib(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

/// Owns `active` only: the generated records take Epic's varied shapes (usual-only names,
/// prefixes, OID-system NPIs), so a declared name would make a third of them drift at start.
/// The initial sync then measures resolution alone, and the steady window the 1% drift made.
fn spec(i: usize) -> EpicPractitionerSpec {
    serde_json::from_value(json!({
        "connectionRef": {"name": "epic"},
        "npi": npi_from_prefix(200_000_000 + i as u32),
        "active": true,
    }))
    .unwrap()
}

fn ready(p: &EpicPractitioner) -> bool {
    p.status.as_ref().is_some_and(|s| {
        s.conditions
            .iter()
            .any(|c| c.type_ == "Ready" && format!("{:?}", c.status) == "True")
    })
}

async fn count_ready(api: &Api<EpicPractitioner>) -> usize {
    api.list(&ListParams::default())
        .await
        .map(|l| l.items.iter().filter(|p| ready(p)).count())
        .unwrap_or(0)
}

async fn stats(s: &Sandbox) -> Value {
    s.stats()
}

/// The operator's `epic_operator_heap_*` lines (jemalloc's allocated and resident bytes), in
/// MiB, from its metrics endpoint; empty when it does not answer.
async fn heap_metrics(metrics_port: u16) -> String {
    let Ok(resp) = epic_operator::http::client()
        .unwrap()
        .get(format!("http://127.0.0.1:{metrics_port}/metrics"))
        .send()
        .await
    else {
        return String::new();
    };
    let text = resp.text().await.unwrap_or_default();
    text.lines()
        .filter(|l| l.starts_with("epic_operator_heap_"))
        .filter_map(|l| {
            let (name, value) = l.split_once(' ')?;
            let mib = value.trim().parse::<f64>().ok()? / 1_048_576.0;
            Some(format!(
                "{} {mib:.1} MiB",
                name.trim_start_matches("epic_operator_heap_")
            ))
        })
        .collect::<Vec<_>>()
        .join(", ")
}

async fn reset(s: &Sandbox) {
    epic_operator::http::client()
        .unwrap()
        .post(format!("{}/stats/reset", s.admin_url()))
        .send()
        .await
        .unwrap();
}

fn kinds(v: &Value) -> String {
    [
        "search",
        "identifierSearch",
        "page",
        "pagingExpired",
        "read",
        "update",
        "metadata",
        "token",
    ]
    .iter()
    .filter(|k| v[**k].as_u64().unwrap_or(0) > 0)
    .map(|k| format!("{k} {}", v[*k].as_u64().unwrap_or(0)))
    .collect::<Vec<_>>()
    .join(", ")
}

fn fhir_total(v: &Value) -> u64 {
    v["fhirTotal"].as_u64().unwrap_or(0)
}

#[derive(Default, Debug)]
struct Result_ {
    n: usize,
    mode: String,
    resync_secs: u64,
    create_secs: f64,
    sync_secs: f64,
    /// When the last FHIR request of the initial sync was answered.
    fhir_done_secs: f64,
    initial: String,
    initial_total: u64,
    throughput: f64,
    steady: String,
    steady_total: u64,
    window_secs: f64,
    /// The paced walk of the steady window: how long it took, and 4113s met.
    walk_secs: f64,
    paging_expired: u64,
    drifted: usize,
    fixed_secs: f64,
    peak_rss_mib: f64,
    steady_rss_mib: f64,
    /// CPU seconds the operator used over the steady window.
    steady_cpu_secs: f64,
    relist_peak_mib: f64,
    new_object_p50_ms: u128,
    new_object_p99_ms: u128,
    tokens_per_lifetime: f64,
    busiest_second: u64,
    average_rate: f64,
    /// Average over the seconds from the first to the last request of the window.
    active_rate: f64,
    /// With `--budget`: the budget-paced window instead of the 1%-drift one.
    budget: Option<BudgetWindow>,
}

async fn run(
    cp: &mut ControlPlane,
    n: usize,
    mode: &str,
    timing: Timing,
    budget: Option<&RequestBudget>,
) -> Result_ {
    let resync_secs = timing.resync_secs;
    let suffix = if budget.is_some() { "-budget" } else { "" };
    let ns = cp
        .namespace(&format!("bench-{n}-{mode}-{resync_secs}{suffix}"))
        .await;
    let sandbox = Sandbox::start(SandboxConfig {
        generate: n + 20,
        token_ttl: Duration::from_secs(timing.token_ttl_secs),
        max_page_size: 200,
        settings: Settings {
            writes_enabled: true,
            ..Settings::default()
        },
        ..SandboxConfig::default()
    })
    .await
    .unwrap();
    let secrets: Api<Secret> = Api::namespaced(cp.admin.clone(), &ns);
    let _ = secrets
        .create(
            &PostParams::default(),
            &Secret {
                metadata: ObjectMeta {
                    name: Some("epic-key".into()),
                    ..ObjectMeta::default()
                },
                string_data: Some(
                    [(
                        "private-key.pem".to_string(),
                        sandbox.dev_key_pem.clone().unwrap(),
                    )]
                    .into(),
                ),
                ..Secret::default()
            },
        )
        .await;
    let conn = EpicConnectionSpec {
        requests_per_second: Some(RATE_LIMIT),
        burst: Some(RATE_LIMIT),
        page_size: Some(PAGE_SIZE),
        resync_interval: Some(format!("{resync_secs}s")),
        paging_session_ttl: None,
        request_budget: budget.cloned(),
        ..sandbox.connection_spec("epic-key")
    };
    let connection = EpicConnection::new("epic", conn);
    // What `epic-operator forecast` says about this very connection, before it runs.
    let forecasts = if budget.is_some() {
        vec![
            (n, forecast(&connection, n)),
            (n + 20, forecast(&connection, n + 20)),
        ]
    } else {
        Vec::new()
    };
    let connections: Api<EpicConnection> = Api::namespaced(cp.admin.clone(), &ns);
    connections
        .create(&PostParams::default(), &connection)
        .await
        .unwrap();
    let api: Api<EpicPractitioner> = Api::namespaced(cp.admin.clone(), &ns);

    let mut r = Result_ {
        n,
        resync_secs,
        mode: mode.into(),
        ..Result_::default()
    };
    let started = Instant::now();
    let api2 = api.clone();
    futures::stream::iter(0..n)
        .map(|i| {
            let api = api2.clone();
            async move {
                api.create(
                    &PostParams::default(),
                    &EpicPractitioner::new(&format!("p-{i}"), spec(i)),
                )
                .await
                .unwrap();
            }
        })
        .buffer_unordered(32)
        .collect::<Vec<_>>()
        .await;
    eprintln!("bench: {n} created in {:?}", started.elapsed());
    r.create_secs = started.elapsed().as_secs_f64();
    reset(&sandbox).await;

    // SCALE_OPERATOR_WRAPPER runs the operator under a profiler, e.g. "heaptrack -o /tmp/op"
    // (RSS and CPU are still the operator's own process). SCALE_STOP_AFTER_STEADY=1 stops the
    // operator (SIGTERM) at the end of the steady window and skips the rest: a profile then
    // ends on the steady state (with `--features heap-profile` its "leaked" bytes are the heap
    // live at that moment).
    let wrapper = std::env::var("SCALE_OPERATOR_WRAPPER").unwrap_or_default();
    let mut words: Vec<String> = wrapper.split_whitespace().map(str::to_string).collect();
    words.push(env!("CARGO_BIN_EXE_epic-operator").to_string());
    let metrics_port = free_port();
    let metrics_addr = format!("127.0.0.1:{metrics_port}");
    let child = Command::new(&words[0])
        .args(&words[1..])
        .args([
            "run",
            "--insecure-allow-loopback-http",
            "--namespace",
            &ns,
            "--metrics-addr",
            &metrics_addr,
            "--jwks-addr",
            "127.0.0.1:0",
            "--drift-detection",
            mode,
        ])
        .args(["--concurrency", &CONCURRENCY.to_string()])
        .env("KUBECONFIG", &cp.operator_kubeconfig)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let pid = operator_pid(child.id());
    let mut op = Operator { child, pid };
    let peak = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let sampler = {
        let peak = peak.clone();
        tokio::spawn(async move {
            loop {
                peak.fetch_max(rss_kib(pid), std::sync::atomic::Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        })
    };
    let started = Instant::now();
    // Listing every object is itself load on the API server: poll less often at large N.
    let poll = Duration::from_secs((n as u64 / 5000).max(2));
    let (mut last_total, mut last_change) = (0, Duration::ZERO);
    loop {
        let total = fhir_total(&stats(&sandbox).await);
        if total != last_total {
            (last_total, last_change) = (total, started.elapsed());
        }
        if count_ready(&api).await >= n {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(1800),
            "initial sync did not finish in 30 min"
        );
        tokio::time::sleep(poll).await;
    }
    r.sync_secs = started.elapsed().as_secs_f64();
    r.fhir_done_secs = last_change.as_secs_f64();
    eprintln!("bench: all Ready after {:.0} s", r.sync_secs);
    let initial = stats(&sandbox).await;
    r.initial = kinds(&initial);
    r.initial_total = fhir_total(&initial);
    r.throughput = r.initial_total as f64 / r.sync_secs;

    if let Some(b) = budget {
        let mut w = budget_window(&sandbox, &connections, n, b).await;
        w.forecasts = forecasts;
        r.drifted = w.drifted;
        r.fixed_secs = w.fixed_secs;
        r.steady = w.kinds.clone();
        r.steady_total = w.total;
        r.window_secs = w.window_secs;
        r.steady_rss_mib = rss_kib(pid) as f64 / 1024.0;
        r.budget = Some(w);
    } else {
        steady_window(&sandbox, n, mode, timing, pid, &mut r).await;
    }
    eprintln!(
        "bench: at the end of the window RSS {} KiB (anon {} KiB, file {} KiB); heap: {}",
        rss_kib(pid),
        status_kib(pid, "RssAnon:"),
        status_kib(pid, "RssFile:"),
        heap_metrics(metrics_port).await
    );
    if std::env::var_os("SCALE_STOP_AFTER_STEADY").is_some() {
        sampler.abort();
        r.peak_rss_mib = peak.load(std::sync::atomic::Ordering::Relaxed) as f64 / 1024.0;
        op.stop();
        sandbox.stop().await;
        return r;
    }

    // New objects while N exist: create -> Ready, 20 tries.
    let mut latencies = Vec::new();
    for k in 0..20 {
        let i = n + k;
        let t = Instant::now();
        api.create(
            &PostParams::default(),
            &EpicPractitioner::new(&format!("p-{i}"), spec(i)),
        )
        .await
        .unwrap();
        loop {
            if api
                .get(&format!("p-{i}"))
                .await
                .map(|p| ready(&p))
                .unwrap_or(false)
            {
                break;
            }
            assert!(
                t.elapsed() < Duration::from_secs(120),
                "new object not Ready in 120 s"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        latencies.push(t.elapsed().as_millis());
    }
    latencies.sort();
    r.new_object_p50_ms = latencies[latencies.len() / 2];
    r.new_object_p99_ms = *latencies.last().unwrap();
    r.peak_rss_mib = peak.load(std::sync::atomic::Ordering::Relaxed) as f64 / 1024.0;

    // A forced relist: the API server restarts, every watch starts over with a full list.
    peak.store(0, std::sync::atomic::Ordering::Relaxed);
    cp.kill(Component::ApiServer);
    tokio::time::sleep(Duration::from_secs(5)).await;
    cp.restart(Component::ApiServer);
    let restarted = Instant::now();
    while api.list(&ListParams::default().limit(1)).await.is_err() {
        assert!(
            restarted.elapsed() < Duration::from_secs(120),
            "the API server did not come back"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    // The operator's watches reconnect within seconds (its backoff tops out at 5 s) and list
    // everything again; sample through that.
    tokio::time::sleep(Duration::from_secs(30)).await;
    sampler.abort();
    r.relist_peak_mib = peak.load(std::sync::atomic::Ordering::Relaxed) as f64 / 1024.0;
    sandbox.stop().await;
    r
}

/// One steady interval with 1% drift made out of band.
async fn steady_window(
    sandbox: &Sandbox,
    n: usize,
    mode: &str,
    timing: Timing,
    pid: u32,
    r: &mut Result_,
) {
    let resync_secs = timing.resync_secs;
    reset(sandbox).await;
    let window_start = Instant::now();
    let cpu_at_start = cpu_secs(pid);
    r.drifted = n / 100;
    drift(sandbox, r.drifted).await;
    // Wait for every drifted record to be written back and at least one interval; in roster
    // mode also for the whole (paced) walk that found them.
    let fixed = Instant::now();
    let expected_pages = ((n + 20) as u64)
        .div_ceil(PAGE_SIZE as u64)
        .saturating_sub(1);
    let (mut walk_start, mut walk_end) = (None, None);
    let mut fixed_secs = None;
    let window = Duration::from_secs(resync_secs);
    loop {
        let st = stats(sandbox).await;
        let pages = st["page"].as_u64().unwrap_or(0);
        if walk_start.is_none() && st["search"].as_u64().unwrap_or(0) > 0 {
            walk_start = Some(Instant::now());
        }
        if walk_end.is_none() && pages >= expected_pages {
            walk_end = Some(Instant::now());
        }
        if fixed_secs.is_none() && st["update"].as_u64().unwrap_or(0) >= r.drifted as u64 {
            fixed_secs = Some(fixed.elapsed().as_secs_f64());
        }
        let walked = mode != "roster" || walk_end.is_some();
        if fixed_secs.is_some() && walked && window_start.elapsed() >= window {
            break;
        }
        assert!(
            window_start.elapsed() < Duration::from_secs(resync_secs * 3),
            "drift not fixed or walk not done within 3 intervals: {st}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    r.fixed_secs = fixed_secs.unwrap_or_default();
    if let (Some(a), Some(b)) = (walk_start, walk_end) {
        r.walk_secs = b.duration_since(a).as_secs_f64();
    }
    let steady = stats(sandbox).await;
    r.window_secs = window_start.elapsed().as_secs_f64();
    r.paging_expired = steady["pagingExpired"].as_u64().unwrap_or(0);
    r.steady = kinds(&steady);
    r.steady_total = fhir_total(&steady);
    r.steady_rss_mib = rss_kib(pid) as f64 / 1024.0;
    r.steady_cpu_secs = cpu_secs(pid) - cpu_at_start;
    let tokens = steady["token"].as_u64().unwrap_or(0) as f64;
    r.tokens_per_lifetime =
        tokens / (window_start.elapsed().as_secs_f64() / timing.token_ttl_secs as f64).max(1.0);
    let per_second: Vec<u64> = steady["perSecond"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p[1].as_u64().unwrap_or(0))
        .collect();
    r.busiest_second = per_second.iter().copied().max().unwrap_or(0);
    let seconds: Vec<u64> = steady["perSecond"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p[0].as_u64().unwrap_or(0))
        .collect();
    if let (Some(first), Some(last)) = (seconds.first(), seconds.last()) {
        r.active_rate = per_second.iter().sum::<u64>() as f64 / ((last - first + 1) as f64);
    }
    r.average_rate = r.steady_total as f64 / window_start.elapsed().as_secs_f64();
}

/// Sets `active: false` out of band on `count` records: every 100th practitioner's.
async fn drift(sandbox: &Sandbox, count: usize) {
    let list: Value = epic_operator::http::client()
        .unwrap()
        .get(format!("{}/practitioners", sandbox.admin_url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let ids: BTreeMap<String, String> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["npi"].as_str().unwrap_or_default().to_string(),
                p["id"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    for i in (0..).step_by(100).take(count) {
        let id = &ids[&npi_from_prefix(200_000_000 + i as u32)];
        epic_operator::http::client()
            .unwrap()
            .patch(format!("{}/practitioners/{id}", sandbox.admin_url()))
            .json(&json!({"active": false}))
            .send()
            .await
            .unwrap();
    }
}

/// `--budget REQUESTS/PER`, for example 3000/1h.
fn parse_budget(text: &str) -> RequestBudget {
    let (requests, per) = text
        .split_once('/')
        .unwrap_or_else(|| panic!("--budget {text:?}: give REQUESTS/PER, for example 3000/1h"));
    let b = RequestBudget {
        requests: requests
            .parse()
            .unwrap_or_else(|e| panic!("--budget {text:?}: {e}")),
        per: per.to_string(),
    };
    b.period()
        .unwrap_or_else(|e| panic!("--budget {text:?}: {e}"));
    b
}

/// `epic-operator forecast` for this connection (its manifest written to a file, as an Epic
/// team would be given it) at `practitioners`.
fn forecast(connection: &EpicConnection, practitioners: usize) -> String {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("connection.yaml");
    // JSON is YAML.
    std::fs::write(&file, serde_json::to_string_pretty(connection).unwrap()).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_epic-operator"))
        .arg("forecast")
        .arg("--connection")
        .arg(&file)
        .args(["--practitioners", &practitioners.to_string()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "forecast failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Counter differences `b - a` (the numeric fields of two stats snapshots).
fn diff(a: &Value, b: &Value) -> Value {
    let mut d = serde_json::Map::new();
    if let Some(o) = b.as_object() {
        for (k, v) in o {
            if let Some(n) = v.as_u64() {
                d.insert(
                    k.clone(),
                    json!(n.saturating_sub(a[k].as_u64().unwrap_or(0))),
                );
            }
        }
    }
    Value::Object(d)
}

/// Requests by what they are for, from stats counters: walk pages (Practitioner and
/// PractitionerRole searches without parameters and their next pages), reads, writes, token,
/// and other FHIR requests (CapabilityStatement probes, identifier searches, refusals).
#[derive(Clone, Copy, Debug, Default)]
struct Split {
    walk: u64,
    reads: u64,
    writes: u64,
    token: u64,
    other: u64,
}

impl Split {
    fn of(v: &Value) -> Split {
        let g = |k: &str| v[k].as_u64().unwrap_or(0);
        Split {
            walk: g("search").saturating_sub(g("identifierSearch"))
                + g("page")
                + g("pagingExpired"),
            reads: g("read"),
            writes: g("update") + g("create") + g("patch"),
            token: g("token"),
            other: g("metadata") + g("identifierSearch") + g("refused"),
        }
    }

    /// The FHIR requests (what the budget counts: everything but the token).
    fn fhir(&self) -> u64 {
        self.walk + self.reads + self.writes + self.other
    }

    fn text(&self) -> String {
        format!(
            "walk pages {}, reads {}, writes {}, other {}; token {}",
            self.walk, self.reads, self.writes, self.other, self.token
        )
    }
}

/// The window of budget-paced walks after the initial sync.
#[derive(Debug, Default)]
struct BudgetWindow {
    budget: String,
    period_secs: f64,
    /// `epic-operator forecast` output, by practitioners costed.
    forecasts: Vec<(usize, String)>,
    window_secs: f64,
    total: u64,
    kinds: String,
    split: Split,
    throttled: u64,
    /// Walk starts the sandbox saw (a search without parameters after 20 s without one),
    /// seconds after the window started.
    walk_starts: Vec<f64>,
    /// `status.walk.lastStartTime` values seen while polling the connection every 5 s.
    operator_walk_starts: Vec<String>,
    /// From the first walk start to the last: the whole cycles in between.
    cycles: usize,
    cycle_secs: f64,
    cycle_split: Split,
    drifted: usize,
    fixed_secs: f64,
    /// The connection's status at the end of the window.
    load: Value,
    walk: Value,
    budget_condition: String,
}

const BUDGET_WINDOW_MAX: Duration = Duration::from_secs(28 * 60);
const BUDGET_WALKS: usize = 5;

/// With a request budget: drift at the rate the forecast assumes (1% of records a day, over
/// the window), then count what the sandbox sees until `BUDGET_WALKS` walks have started or
/// `BUDGET_WINDOW_MAX` has passed.
async fn budget_window(
    sandbox: &Sandbox,
    connections: &Api<EpicConnection>,
    n: usize,
    b: &RequestBudget,
) -> BudgetWindow {
    let mut w = BudgetWindow {
        budget: format!("{} per {}", b.requests, b.per),
        period_secs: b.period().unwrap().as_secs_f64(),
        ..BudgetWindow::default()
    };
    reset(sandbox).await;
    let start = Instant::now();
    let zero = stats(sandbox).await;
    w.drifted = (n as f64 * 0.01 * BUDGET_WINDOW_MAX.as_secs_f64() / 86_400.0).ceil() as usize;
    drift(sandbox, w.drifted).await;
    let mut last_search = 0;
    let mut last_start: Option<Instant> = None;
    let mut at_starts: Vec<Value> = Vec::new();
    let mut polls = 0u64;
    loop {
        let st = stats(sandbox).await;
        let searches = st["search"]
            .as_u64()
            .unwrap_or(0)
            .saturating_sub(st["identifierSearch"].as_u64().unwrap_or(0));
        if searches > last_search {
            last_search = searches;
            // A role walk's search and the Practitioner walk's come seconds apart: one walk.
            if last_start.is_none_or(|t| t.elapsed() > Duration::from_secs(20)) {
                last_start = Some(Instant::now());
                w.walk_starts.push(start.elapsed().as_secs_f64());
                at_starts.push(st.clone());
                eprintln!(
                    "bench: walk {} started at {:.0} s of the window",
                    w.walk_starts.len(),
                    start.elapsed().as_secs_f64()
                );
            }
        }
        if w.fixed_secs == 0.0 && st["update"].as_u64().unwrap_or(0) >= w.drifted as u64 {
            w.fixed_secs = start.elapsed().as_secs_f64();
        }
        if polls.is_multiple_of(10)
            && let Ok(c) = connections.get("epic").await
            && let Some(t) = c
                .status
                .as_ref()
                .and_then(|s| s.walk.as_ref())
                .map(|x| x.last_start_time.clone())
            && w.operator_walk_starts.last() != Some(&t)
        {
            w.operator_walk_starts.push(t);
        }
        polls += 1;
        // A couple of seconds into the last walk, so its first pages are in the window.
        if w.walk_starts.len() >= BUDGET_WALKS
            && last_start.is_some_and(|t| t.elapsed() > Duration::from_secs(2))
        {
            break;
        }
        if start.elapsed() >= BUDGET_WINDOW_MAX {
            eprintln!(
                "bench: only {} walk starts in {:?}",
                w.walk_starts.len(),
                BUDGET_WINDOW_MAX
            );
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let end = stats(sandbox).await;
    w.window_secs = start.elapsed().as_secs_f64();
    let window = diff(&zero, &end);
    w.total = fhir_total(&window);
    w.kinds = kinds(&window);
    w.split = Split::of(&window);
    w.throttled = window["throttled"].as_u64().unwrap_or(0);
    if let (Some(first), Some(last)) = (at_starts.first(), at_starts.last()) {
        w.cycles = at_starts.len() - 1;
        w.cycle_secs = w.walk_starts.last().unwrap() - w.walk_starts.first().unwrap();
        w.cycle_split = Split::of(&diff(first, last));
    }
    // The operator writes status.load at its connection probe (every resync interval), and
    // status.walk after each walk: wait for the last walk's record, bounded.
    let waited = Instant::now();
    loop {
        let c = connections.get("epic").await.unwrap();
        let s = c.status.unwrap_or_default();
        w.load = serde_json::to_value(&s.load).unwrap();
        w.walk = serde_json::to_value(&s.walk).unwrap();
        w.budget_condition = s
            .conditions
            .iter()
            .find(|c| c.type_ == "RequestBudget")
            .map(|c| format!("{:?} {}: {}", c.status, c.reason, c.message))
            .unwrap_or_default();
        if let Some(t) = s.walk.as_ref().map(|x| x.last_start_time.clone())
            && w.operator_walk_starts.last() != Some(&t)
        {
            w.operator_walk_starts.push(t);
        }
        // The initial sync's walk, then each walk of the window.
        if w.operator_walk_starts.len() > w.walk_starts.len()
            || waited.elapsed() > Duration::from_secs(120)
        {
            break;
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    w
}

/// Seconds between consecutive entries.
fn gaps(starts: &[f64]) -> Vec<f64> {
    starts.windows(2).map(|p| p[1] - p[0]).collect()
}

fn median(mut v: Vec<f64>) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(f64::total_cmp);
    let m = v.len() / 2;
    if !v.len().is_multiple_of(2) {
        v[m]
    } else {
        (v[m - 1] + v[m]) / 2.0
    }
}

fn print_budget(r: &Result_, w: &BudgetWindow) {
    let per_period = |requests: u64, secs: f64| requests as f64 * w.period_secs / secs.max(1.0);
    let per_day = |requests: u64, secs: f64| requests as f64 * 86_400.0 / secs.max(1.0);
    let g = gaps(&w.walk_starts);
    println!();
    println!(
        "## N = {}, {} mode, resync {} s, requestBudget {}",
        r.n, r.mode, r.resync_secs, w.budget
    );
    for (n, f) in &w.forecasts {
        println!("\nepic-operator forecast --connection FILE --practitioners {n}:\n{f}");
    }
    println!(
        "measured window: {:.0} s from the end of the initial sync: {} FHIR requests ({}), {}; throttled {}",
        w.window_secs,
        w.total,
        w.kinds,
        w.split.text(),
        w.throttled
    );
    println!(
        "  = {:.0} per {} and {:.0} a day (FHIR requests, token excluded)",
        per_period(w.split.fhir(), w.window_secs),
        w.budget.split(" per ").nth(1).unwrap_or_default(),
        per_day(w.split.fhir(), w.window_secs)
    );
    println!(
        "walk starts (sandbox, s into the window): {:?}; between them {:?}, median {:.0} s",
        w.walk_starts
            .iter()
            .map(|s| s.round() as u64)
            .collect::<Vec<_>>(),
        g.iter().map(|s| s.round() as u64).collect::<Vec<_>>(),
        median(g.clone())
    );
    println!(
        "walk starts (status.walk.lastStartTime): {:?}",
        w.operator_walk_starts
    );
    if w.cycles > 0 {
        let c = &w.cycle_split;
        println!(
            "{} whole cycles, first walk start to last, {:.0} s: {} FHIR requests ({}) = {:.0} per walk, {:.0} per {} and {:.0} a day",
            w.cycles,
            w.cycle_secs,
            c.fhir(),
            c.text(),
            c.fhir() as f64 / w.cycles as f64,
            per_period(c.fhir(), w.cycle_secs),
            w.budget.split(" per ").nth(1).unwrap_or_default(),
            per_day(c.fhir(), w.cycle_secs)
        );
    }
    println!(
        "drift: {} records set inactive out of band at the window's start, all written back after {:.0} s",
        w.drifted, w.fixed_secs
    );
    println!("status.load: {}", w.load);
    println!("status.walk: {}", w.walk);
    println!("RequestBudget condition: {}", w.budget_condition);
    println!(
        "new object Ready p50 / p99 (20, after the window): {} / {} ms",
        r.new_object_p50_ms, r.new_object_p99_ms
    );
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let fast = args.iter().any(|a| a == "--fast");
    let timing = if fast { FAST } else { DEFAULTS };
    // --budget REQUESTS/PER (or --budget=REQUESTS/PER): a request budget on the connection.
    let mut budget = None;
    let mut positional: Vec<&String> = Vec::new();
    let mut words = args.iter();
    while let Some(a) = words.next() {
        if a == "--budget" {
            let v = words
                .next()
                .expect("--budget needs REQUESTS/PER, e.g. 3000/1h");
            budget = Some(parse_budget(v));
        } else if let Some(v) = a.strip_prefix("--budget=") {
            budget = Some(parse_budget(v));
        } else if !a.starts_with('-') {
            positional.push(a);
        }
    }
    let sizes: Option<Vec<usize>> = positional
        .first()
        .map(|a| a.split(',').filter_map(|n| n.parse().ok()).collect());
    let modes: Vec<String> = positional
        .get(1)
        .map(|m| m.split(',').map(str::to_string).collect())
        .unwrap_or_else(|| vec!["per-object".into(), "roster".into()]);
    let plan: Vec<(usize, String)> = match (sizes, fast) {
        (Some(sizes), _) => sizes
            .iter()
            .flat_map(|&n| modes.iter().map(move |m| (n, m.clone())))
            .collect(),
        (None, true) => [1000, 10000]
            .iter()
            .flat_map(|&n| modes.iter().map(move |m| (n, m.clone())))
            .collect(),
        (None, false) => vec![
            (10_000, "per-object".into()),
            (10_000, "roster".into()),
            (50_000, "roster".into()),
        ],
    };
    let mut cp = ControlPlane::start().await;
    let mut results = Vec::new();
    for (n, mode) in &plan {
        eprintln!("bench: N={n} mode={mode} timing={timing:?} budget={budget:?} ...");
        let r = run(&mut cp, *n, mode, timing, budget.as_ref()).await;
        eprintln!("{r:#?}");
        results.push(r);
    }
    println!(
        "| N | mode | resync | initial sync: FHIR requests | FHIR done / all Ready | steady window, 1% drift: FHIR requests | window | walk (4113s) | drift fixed after | RSS sync peak / steady / relist peak | operator CPU over the window | new object Ready p50 / p99 (20) | tokens per token lifetime | busiest second / window average / average while active |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|");
    for r in results.iter().filter(|r| r.budget.is_none()) {
        println!(
            "| {} | {} | {} s | {} ({}) | {:.0} s / {:.0} s | {} ({}) | {:.0} s | {:.0} s ({}) | {:.1} s | {:.0} / {:.0} / {:.0} MiB | {:.1} s | {} / {} ms | {:.2} | {} / {:.2} ({:.1}x) / {:.2} ({:.1}x) |",
            r.n,
            r.mode,
            r.resync_secs,
            r.initial_total,
            r.initial,
            r.fhir_done_secs,
            r.sync_secs,
            r.steady_total,
            r.steady,
            r.window_secs,
            r.walk_secs,
            r.paging_expired,
            r.fixed_secs,
            r.peak_rss_mib,
            r.steady_rss_mib,
            r.relist_peak_mib,
            r.steady_cpu_secs,
            r.new_object_p50_ms,
            r.new_object_p99_ms,
            r.tokens_per_lifetime,
            r.busiest_second,
            r.average_rate,
            r.busiest_second as f64 / r.average_rate.max(0.001),
            r.active_rate,
            r.busiest_second as f64 / r.active_rate.max(0.001)
        );
    }
    for r in &results {
        if let Some(w) = &r.budget {
            print_budget(r, w);
            println!(
                "initial sync: {} FHIR requests ({}), FHIR done / all Ready {:.0} s / {:.0} s; RSS sync peak / end of window / relist peak {:.0} / {:.0} / {:.0} MiB",
                r.initial_total,
                r.initial,
                r.fhir_done_secs,
                r.sync_secs,
                r.peak_rss_mib,
                r.steady_rss_mib,
                r.relist_peak_mib
            );
        }
    }
}
