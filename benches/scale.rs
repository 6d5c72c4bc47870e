//! Scale benchmark: the operator at N practitioners against a real kube-apiserver and the
//! sandbox, in per-object and roster drift-detection modes. See BENCHMARKS.md.
//!
//! cargo bench --bench scale                     defaults: 10-minute resync, 5-minute paging
//!                                                sessions, page size 50; N = 10,000 in both
//!                                                modes, then N = 50,000 in roster mode
//! cargo bench --bench scale -- --fast 1000,10000 the fast variant: 60 s resync and tokens
//! cargo bench --bench scale -- 10000 roster      chosen sizes and modes
//!
//! Everything runs on 127.0.0.1; every wait is bounded.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../tests/e2e/cluster.rs"]
mod cluster;

use std::collections::BTreeMap;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use cluster::{Component, ControlPlane};
use epic_operator::crd::{
    EpicConnection, EpicConnectionSpec, EpicPractitioner, EpicPractitionerSpec, npi_from_prefix,
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
}

impl Drop for Operator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
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
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
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
}

async fn run(cp: &mut ControlPlane, n: usize, mode: &str, timing: Timing) -> Result_ {
    let resync_secs = timing.resync_secs;
    let ns = cp
        .namespace(&format!("bench-{n}-{mode}-{resync_secs}"))
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
        ..sandbox.connection_spec("epic-key")
    };
    let connections: Api<EpicConnection> = Api::namespaced(cp.admin.clone(), &ns);
    connections
        .create(&PostParams::default(), &EpicConnection::new("epic", conn))
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
    // (then RSS is the profiler's too).
    let wrapper = std::env::var("SCALE_OPERATOR_WRAPPER").unwrap_or_default();
    let mut words: Vec<String> = wrapper.split_whitespace().map(str::to_string).collect();
    words.push(env!("CARGO_BIN_EXE_epic-operator").to_string());
    let child = Command::new(&words[0])
        .args(&words[1..])
        .args([
            "run",
            "--insecure-allow-loopback-http",
            "--namespace",
            &ns,
            "--metrics-addr",
            "127.0.0.1:0",
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
    let pid = child.id();
    let _op = Operator { child };
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

    // One steady interval with 1% drift made out of band.
    reset(&sandbox).await;
    let window_start = Instant::now();
    let cpu_at_start = cpu_secs(pid);
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
    r.drifted = n / 100;
    for i in (0..n).step_by(100).take(r.drifted) {
        let id = &ids[&npi_from_prefix(200_000_000 + i as u32)];
        epic_operator::http::client()
            .unwrap()
            .patch(format!("{}/practitioners/{id}", sandbox.admin_url()))
            .json(&json!({"active": false}))
            .send()
            .await
            .unwrap();
    }
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
        let st = stats(&sandbox).await;
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
    let steady = stats(&sandbox).await;
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

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let fast = args.iter().any(|a| a == "--fast");
    let timing = if fast { FAST } else { DEFAULTS };
    let positional: Vec<&String> = args.iter().filter(|a| !a.starts_with('-')).collect();
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
        eprintln!("bench: N={n} mode={mode} timing={timing:?} ...");
        let r = run(&mut cp, *n, mode, timing).await;
        eprintln!("{r:#?}");
        results.push(r);
    }
    println!(
        "| N | mode | resync | initial sync: FHIR requests | FHIR done / all Ready | steady window, 1% drift: FHIR requests | window | walk (4113s) | drift fixed after | RSS sync peak / steady / relist peak | operator CPU over the window | new object Ready p50 / p99 (20) | tokens per token lifetime | busiest second / window average / average while active |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|");
    for r in &results {
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
}
