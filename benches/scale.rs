//! Scale benchmark: the operator at N practitioners against a real kube-apiserver and the
//! sandbox, in per-object and roster drift-detection modes. See BENCHMARKS.md.
//!
//! cargo bench --bench scale -- [N,N,...] [per-object,roster]   (default 1000,10000 and both)
//!
//! Everything runs on 127.0.0.1; every wait is bounded.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../tests/e2e/cluster.rs"]
mod cluster;

use std::collections::BTreeMap;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use cluster::ControlPlane;
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
const RESYNC_SECS: u64 = 60;
const TOKEN_TTL_SECS: u64 = 60;
const PAGE_SIZE: u32 = 50;

struct Operator {
    child: Child,
}

impl Drop for Operator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
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

fn spec(i: usize) -> EpicPractitionerSpec {
    serde_json::from_value(json!({
        "connectionRef": {"name": "epic"},
        "npi": npi_from_prefix(200_000_000 + i as u32),
        "active": true,
        "name": {"family": format!("Synthetic{i}"), "given": ["Clinician"]},
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
    ["search", "page", "read", "update", "metadata", "token"]
        .iter()
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
    create_secs: f64,
    sync_secs: f64,
    initial: String,
    initial_total: u64,
    throughput: f64,
    steady: String,
    steady_total: u64,
    drifted: usize,
    fixed_secs: f64,
    peak_rss_mib: f64,
    steady_rss_mib: f64,
    new_object_p50_ms: u128,
    new_object_p99_ms: u128,
    tokens_per_lifetime: f64,
    busiest_second: u64,
    average_rate: f64,
    /// Average over the seconds from the first to the last request of the window.
    active_rate: f64,
}

async fn run(cp: &ControlPlane, n: usize, mode: &str) -> Result_ {
    let ns = cp.namespace(&format!("bench-{n}-{mode}")).await;
    let sandbox = Sandbox::start(SandboxConfig {
        generate: n + 20,
        token_ttl: Duration::from_secs(TOKEN_TTL_SECS),
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
        resync_interval: Some(format!("{RESYNC_SECS}s")),
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
    r.create_secs = started.elapsed().as_secs_f64();
    reset(&sandbox).await;

    let child = Command::new(env!("CARGO_BIN_EXE_epic-operator"))
        .args([
            "run",
            "--insecure-allow-loopback-http",
            "--namespace",
            &ns,
            "--metrics-addr",
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
    while count_ready(&api).await < n {
        assert!(
            started.elapsed() < Duration::from_secs(1800),
            "initial sync did not finish in 30 min"
        );
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    r.sync_secs = started.elapsed().as_secs_f64();
    let initial = stats(&sandbox).await;
    r.initial = kinds(&initial);
    r.initial_total = fhir_total(&initial);
    r.throughput = r.initial_total as f64 / r.sync_secs;

    // One steady interval with 1% drift made out of band.
    reset(&sandbox).await;
    let window_start = Instant::now();
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
    // Wait for every drifted record to be written back, then to the end of one interval.
    let fixed = Instant::now();
    loop {
        let st = stats(&sandbox).await;
        if st["update"].as_u64().unwrap_or(0) >= r.drifted as u64 {
            break;
        }
        assert!(
            fixed.elapsed() < Duration::from_secs(RESYNC_SECS * 3),
            "drift not fixed within 3 intervals: {st}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    r.fixed_secs = fixed.elapsed().as_secs_f64();
    let window = Duration::from_secs(RESYNC_SECS);
    if window_start.elapsed() < window {
        tokio::time::sleep(window - window_start.elapsed()).await;
    }
    // In roster mode the window also covers the whole (paced) walk.
    let expected_pages = ((n + 20) as u64)
        .div_ceil(PAGE_SIZE as u64)
        .saturating_sub(1);
    while mode == "roster" && stats(&sandbox).await["page"].as_u64().unwrap_or(0) < expected_pages {
        assert!(
            window_start.elapsed() < Duration::from_secs(RESYNC_SECS * 4),
            "roster scan did not complete"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let steady = stats(&sandbox).await;
    r.steady = kinds(&steady);
    r.steady_total = fhir_total(&steady);
    r.steady_rss_mib = rss_kib(pid) as f64 / 1024.0;
    let tokens = steady["token"].as_u64().unwrap_or(0) as f64;
    r.tokens_per_lifetime = tokens / (window_start.elapsed().as_secs_f64() / TOKEN_TTL_SECS as f64);
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
    sampler.abort();
    r.peak_rss_mib = peak.load(std::sync::atomic::Ordering::Relaxed) as f64 / 1024.0;
    sandbox.stop().await;
    r
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let sizes: Vec<usize> = std::env::args()
        .skip(1)
        .find(|a| !a.starts_with('-'))
        .map(|a| a.split(',').filter_map(|n| n.parse().ok()).collect())
        .unwrap_or_else(|| vec![1000, 10000]);
    // Optional second argument: the modes to run (default both).
    let modes: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .nth(1)
        .map(|m| m.split(',').map(str::to_string).collect())
        .unwrap_or_else(|| vec!["per-object".into(), "roster".into()]);
    let cp = ControlPlane::start().await;
    let mut results = Vec::new();
    for &n in &sizes {
        for mode in modes.iter().map(String::as_str) {
            eprintln!("bench: N={n} mode={mode} ...");
            let r = run(&cp, n, mode).await;
            eprintln!("{r:#?}");
            results.push(r);
        }
    }
    println!(
        "| N | mode | initial sync: FHIR requests | sync time | throughput (limit {RATE_LIMIT}/s) | steady interval ({RESYNC_SECS}s, 1% drift): FHIR requests | drift fixed after | RSS peak / steady | new object Ready p50 / p99 (20) | tokens per token lifetime | busiest second / window average / average while scanning |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|");
    for r in &results {
        println!(
            "| {} | {} | {} ({}) | {:.0} s | {:.0}/s | {} ({}) | {:.1} s | {:.0} / {:.0} MiB | {} / {} ms | {:.2} | {} / {:.1} ({:.1}x) / {:.1} ({:.1}x) |",
            r.n,
            r.mode,
            r.initial_total,
            r.initial,
            r.sync_secs,
            r.throughput,
            r.steady_total,
            r.steady,
            r.fixed_secs,
            r.peak_rss_mib,
            r.steady_rss_mib,
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
