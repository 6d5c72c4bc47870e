//! The fault suite: the operator (the real binary, with writes enabled) against the sandbox and
//! a real kube-apiserver + etcd, while one part fails. Each fault has the same workload: 8
//! existing records to update (`active` flipped) and 2 to create, 10 writes needed. For each
//! fault the suite measures the time from the end of the fault until every object is Ready,
//! the writes Epic received against the 10 needed, duplicate creates (two records with one
//! NPI), lost fields (any change outside the owned `active` and `meta`), and operator exits;
//! it asserts the safety figures and prints one table row per fault (RELIABILITY.md quotes
//! them: `cargo test --features e2e --test e2e faults -- --nocapture --test-threads 8`).

use std::collections::BTreeMap;

use super::cluster::{Component, ControlPlane};
use super::*;

const UPDATES: u32 = 8;
const CREATES: u32 = 2;
const NEEDED: u64 = (UPDATES + CREATES) as u64;
/// How long convergence may take after a fault ends before the run counts as failed.
const CONVERGE_BUDGET: Duration = Duration::from_secs(240);

/// One line of the fault table.
struct Row {
    fault: &'static str,
    lasted: Duration,
    converged_after: Duration,
    writes: u64,
    duplicate_creates: usize,
    lost_fields: usize,
    exits: usize,
}

impl Row {
    /// Prints the row and holds the safety figures to zero.
    fn report(&self) {
        println!(
            "| {} | {:.0} s | {:.1} s | {} / {NEEDED} | {} | {} | {} |",
            self.fault,
            self.lasted.as_secs_f64(),
            self.converged_after.as_secs_f64(),
            self.writes,
            self.duplicate_creates,
            self.lost_fields,
            self.exits
        );
        assert_eq!(
            self.duplicate_creates, 0,
            "{}: duplicate creates",
            self.fault
        );
        assert_eq!(self.lost_fields, 0, "{}: lost fields", self.fault);
        assert_eq!(self.exits, 0, "{}: the operator exited", self.fault);
        assert_eq!(self.writes, NEEDED, "{}: writes sent vs needed", self.fault);
    }
}

/// The workload: generated records to update and NPIs to create, and every record as it was.
async fn workload(cp: &ControlPlane, ns: &str) -> (World, BTreeMap<String, Value>) {
    let w = world(
        cp,
        ns,
        SandboxConfig {
            generate: UPDATES as usize,
            ..writable()
        },
        |c| c.resync_interval = Some("10s".into()),
    )
    .await;
    for i in 0..UPDATES {
        let spec: EpicPractitionerSpec = serde_json::from_value(json!({
            "connectionRef": {"name": "epic"}, "npi": npi_from_prefix(200_000_000 + i), "active": false
        }))
        .unwrap();
        create(&w, &format!("update-{i}"), spec).await;
    }
    for i in 0..CREATES {
        let spec: EpicPractitionerSpec = serde_json::from_value(json!({
            "connectionRef": {"name": "epic"}, "npi": npi_from_prefix(300_000_000 + i),
            "managementPolicy": "CreateOrUpdate", "active": true,
            "name": {"family": "Newcomer", "given": ["Pat"]}
        }))
        .unwrap();
        create(&w, &format!("create-{i}"), spec).await;
    }
    let snapshot = records(&w).await;
    (w, snapshot)
}

/// Every record in the sandbox, by id.
async fn records(w: &World) -> BTreeMap<String, Value> {
    let mut out = BTreeMap::new();
    for p in admin_get(w, "practitioners").await.as_array().unwrap() {
        let id = p["id"].as_str().unwrap().to_string();
        out.insert(
            id.clone(),
            admin_get(w, &format!("practitioners/{id}")).await,
        );
    }
    out
}

/// Waits until every object is Ready; the time it took.
async fn converge(w: &World) -> Duration {
    let started = Instant::now();
    loop {
        let list = w.practitioners.list(&Default::default()).await;
        if let Ok(list) = list
            && list.items.len() == (UPDATES + CREATES) as usize
            && list.items.iter().all(|p| is(p, "Ready", "True", "Ready"))
        {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < CONVERGE_BUDGET,
            "[{}] not converged {CONVERGE_BUDGET:?} after the fault",
            w.ns
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Writes received, duplicate creates and lost fields, against the snapshot.
async fn verdict(w: &World, before: &BTreeMap<String, Value>) -> (u64, usize, usize) {
    let st = stats(w).await;
    let writes = st["update"].as_u64().unwrap_or(0) + st["create"].as_u64().unwrap_or(0);
    let after = records(w).await;
    let mut by_npi: BTreeMap<String, usize> = BTreeMap::new();
    for r in after.values() {
        for npi in epic_operator::reconcile::identity::npi_values(r) {
            *by_npi.entry(npi).or_default() += 1;
        }
    }
    let duplicates = by_npi.values().filter(|n| **n > 1).count();
    let strip = |v: &Value| {
        let mut v = v.clone();
        if let Some(o) = v.as_object_mut() {
            o.remove("active");
            o.remove("meta");
        }
        v
    };
    let lost = before
        .iter()
        .filter(|(id, b)| after.get(*id).is_none_or(|a| strip(a) != strip(b)))
        .count();
    (writes, duplicates, lost)
}

/// Convergence, writes, duplicates, lost fields and exits once a fault has ended: one row.
async fn measure(
    w: &World,
    before: &BTreeMap<String, Value>,
    fault: &'static str,
    lasted: Duration,
    ops: &mut [&mut Operator],
) {
    let converged_after = converge(w).await;
    let (writes, duplicate_creates, lost_fields) = verdict(w, before).await;
    Row {
        fault,
        lasted,
        converged_after,
        writes,
        duplicate_creates,
        lost_fields,
        exits: exits(ops),
    }
    .report();
}

fn exits(ops: &mut [&mut Operator]) -> usize {
    let mut n = 0;
    for o in ops.iter_mut() {
        if matches!(o.child.try_wait(), Ok(Some(_))) {
            n += 1;
        }
    }
    n
}

/// A fault of Epic's (`on` applied to the sandbox's settings), switched on before the operator
/// starts and off after `lasted` seconds.
async fn epic_fault(
    cp: &ControlPlane,
    ns: &str,
    fault: &'static str,
    on: impl FnOnce(&mut Settings),
    lasted: u64,
) {
    let lasted = Duration::from_secs(lasted);
    let mut settings = writable().settings;
    on(&mut settings);
    let (w, before) = workload(cp, ns).await;
    w.sandbox.set_settings(settings);
    let mut op = Operator::start(cp, &w.ns, &[]);
    tokio::time::sleep(lasted).await;
    w.sandbox.set_settings(writable().settings);
    measure(&w, &before, fault, lasted, &mut [&mut op]).await;
}

async fn faults_epic_5xx_burst(cp: &ControlPlane) {
    let fault = "Epic answers 500 to every request";
    epic_fault(cp, "f1-5xx", fault, |s| s.error_rate = 1.0, 20).await;
}

async fn faults_epic_429_burst(cp: &ControlPlane) {
    let fault = "Epic answers 429 to every request";
    epic_fault(cp, "f2-429", fault, |s| s.throttle_rate = 1.0, 20).await;
}

async fn faults_epic_latency(cp: &ControlPlane) {
    let fault = "Epic answers after 10 s";
    epic_fault(cp, "f3-latency", fault, |s| s.latency_ms = 10_000, 30).await;
}

async fn faults_token_endpoint_down(cp: &ControlPlane) {
    let fault = "token endpoint answers 503";
    epic_fault(cp, "f4-token", fault, |s| s.token_failure_rate = 1.0, 60).await;
}

async fn faults_reset_during_writes(cp: &ControlPlane) {
    // Every needed write is applied, then its response is cut off: the operator cannot know
    // the write happened, and must neither repeat an update blindly nor create twice.
    let on = Settings {
        reset_writes: NEEDED as u32,
        ..writable().settings
    };
    let (w, before) = workload(cp, "f5-reset").await;
    w.sandbox.set_settings(on);
    let mut op = Operator::start(cp, &w.ns, &[]);
    let started = Instant::now();
    while w.sandbox.stats()["update"].as_u64().unwrap_or(0)
        + w.sandbox.stats()["create"].as_u64().unwrap_or(0)
        < NEEDED
    {
        assert!(started.elapsed() < CONVERGE_BUDGET, "writes never arrived");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let lasted = started.elapsed();
    measure(
        &w,
        &before,
        "connection reset after each write is applied",
        lasted,
        &mut [&mut op],
    )
    .await;
}

/// Kills a control-plane component once the operator has begun writing, for `lasted`.
async fn control_plane_fault(component: Component, fault: &'static str, lasted: Duration) {
    let mut cp = ControlPlane::start().await;
    let (w, before) = workload(&cp, "f-cp").await;
    // Epic answers in 1 s, so that the fault lands while records are still being written.
    w.sandbox.set_settings(Settings {
        latency_ms: 1_000,
        ..writable().settings
    });
    let mut op = Operator::start(&cp, &w.ns, &[]);
    let started = Instant::now();
    while w.sandbox.stats()["update"].as_u64().unwrap_or(0) == 0 {
        assert!(
            started.elapsed() < CONVERGE_BUDGET,
            "no write before the fault"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    cp.kill(component);
    let written = w.sandbox.stats()["update"].as_u64().unwrap_or(0);
    assert!(
        written < NEEDED,
        "the fault came mid-flight ({written} written)"
    );
    tokio::time::sleep(lasted).await;
    cp.restart(component);
    // The API server takes seconds to start; convergence counts from when it answers again.
    let restarted = Instant::now();
    while w.practitioners.list(&Default::default()).await.is_err() {
        assert!(
            restarted.elapsed() < CONVERGE_BUDGET,
            "the API server did not come back"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    println!(
        "  ({fault}: the API answered again {:.1} s after the restart)",
        restarted.elapsed().as_secs_f64()
    );
    measure(&w, &before, fault, lasted, &mut [&mut op]).await;
}

async fn faults_apiserver_killed(_: &ControlPlane) {
    control_plane_fault(
        Component::ApiServer,
        "kube-apiserver killed, then restarted",
        Duration::from_secs(20),
    )
    .await;
}

async fn faults_etcd_killed(_: &ControlPlane) {
    control_plane_fault(
        Component::Etcd,
        "etcd killed, then restarted",
        Duration::from_secs(20),
    )
    .await;
}

async fn faults_leader_killed(cp: &ControlPlane) {
    let (w, before) = workload(cp, "f8-leader").await;
    let lease = [
        "--leader-election",
        "--lease-namespace",
        "epic-system",
        "--lease-name",
        "f8-leader",
        "--concurrency",
        "2",
    ];
    // The standby waits for the Lease; Epic is slow (2 s a request) and two practitioners are
    // reconciled at a time, so that the leader is still writing when it dies (the first walk
    // hands every practitioner over at once).
    w.sandbox.set_settings(Settings {
        latency_ms: 2_000,
        ..writable().settings
    });
    let mut leader = Operator::start(cp, &w.ns, &lease);
    let started = Instant::now();
    while w.sandbox.stats()["update"].as_u64().unwrap_or(0) == 0 {
        assert!(
            started.elapsed() < CONVERGE_BUDGET,
            "no write before the fault"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut standby = Operator::start(cp, &w.ns, &lease);
    leader.kill();
    let written = w.sandbox.stats()["update"].as_u64().unwrap_or(0)
        + w.sandbox.stats()["create"].as_u64().unwrap_or(0);
    assert!(
        written < NEEDED,
        "the leader died mid-flight ({written} written)"
    );
    w.sandbox.set_settings(writable().settings);
    let fault = "leader killed mid-write, a second replica waiting";
    measure(&w, &before, fault, Duration::ZERO, &mut [&mut standby]).await;
}

scenario!(
    faults_epic_5xx_burst,
    faults_epic_429_burst,
    faults_epic_latency,
    faults_token_endpoint_down,
    faults_reset_during_writes,
    faults_apiserver_killed,
    faults_etcd_killed,
    faults_leader_killed,
);
