//! Scenario 26: one tenant's FHIR server is hostile, beside a healthy tenant on the same
//! operator. Its first roster page carries a ~9 MiB record holding the NPI of every one of that
//! tenant's 200 practitioners plus 110,000 other identifiers, and every record changes on every
//! walk. The operator's memory stays bounded, its Lease is renewed throughout, and a new
//! practitioner of the healthy tenant still becomes Ready within 2 s.
//! (Before, the record was copied once per object it woke, its NPIs de-duplicated in quadratic
//! time on an async worker, and the operator reached 3 GiB and missed its Lease renewal.)

use std::time::{Duration, Instant};

use epic_operator::crd::{EpicConnection, EpicPractitionerSpec, npi_from_prefix};
use epic_operator::sandbox::{Sandbox, SandboxConfig, Settings};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Secret;
use kube::Api;
use kube::api::{ObjectMeta, PostParams};
use serde_json::json;

use super::{ControlPlane, Operator, create, is, wait_for, world};

const TENANT_OBJECTS: usize = 200;
/// Peak resident memory allowed while the hostile page is processed (the operator idles at
/// about 40 MiB; the page is 9 MiB as text and about 3 times that parsed).
const RSS_BOUND_MIB: u64 = 400;

fn spec(connection: &str, npi: &str) -> EpicPractitionerSpec {
    serde_json::from_value(json!({"connectionRef": {"name": connection}, "npi": npi})).unwrap()
}

/// The operator process's resident memory, in MiB.
fn rss_mib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kib: u64 = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()?;
    Some(kib / 1024)
}

/// A second sandbox and EpicConnection `healthy` in the same namespace.
async fn healthy_connection(w: &super::World) -> Sandbox {
    let sandbox = Sandbox::start(SandboxConfig {
        seeds: vec![super::SEED.into()],
        ..SandboxConfig::default()
    })
    .await
    .expect("sandbox");
    let secrets: Api<Secret> = Api::namespaced(w.client.clone(), &w.ns);
    let pem = sandbox.dev_key_pem.clone().expect("dev key");
    secrets
        .create(
            &PostParams::default(),
            &Secret {
                metadata: ObjectMeta {
                    name: Some("healthy-key".into()),
                    ..ObjectMeta::default()
                },
                string_data: Some([("private-key.pem".to_string(), pem)].into()),
                ..Secret::default()
            },
        )
        .await
        .expect("secret");
    let spec = epic_operator::crd::EpicConnectionSpec {
        requests_per_second: Some(50),
        burst: Some(50),
        resync_interval: Some("1h".into()),
        ..sandbox.connection_spec("healthy-key")
    };
    w.connections
        .create(
            &PostParams::default(),
            &EpicConnection::new("healthy", spec),
        )
        .await
        .expect("connection");
    sandbox
}

pub async fn a_hostile_server_cannot_exhaust_the_operator(cp: &ControlPlane) {
    let w = world(
        cp,
        "s21-hostile",
        SandboxConfig {
            generate: TENANT_OBJECTS,
            settings: Settings {
                hostile_identifiers: 110_000,
                churn_every_walk: true,
                ..Settings::default()
            },
            ..SandboxConfig::default()
        },
        |c| {
            c.resync_interval = Some("10s".into());
            c.page_size = Some(50);
        },
    )
    .await;
    let healthy = healthy_connection(&w).await;
    let lease_name = format!("s21-{}", w.ns);
    let op = Operator::start(
        cp,
        &w.ns,
        &[
            "--leader-election",
            "--lease-namespace",
            "epic-system",
            "--lease-name",
            &lease_name,
        ],
    );
    let pid = op.child.id();
    // The healthy tenant is up first (its first walk done).
    let on_healthy = |file: &str| EpicPractitionerSpec {
        connection_ref: epic_operator::crd::ConnectionRef {
            name: "healthy".into(),
        },
        ..super::example(file)
    };
    create(&w, "healthy-first", on_healthy("carol-lee.yaml")).await;
    wait_for(
        &w,
        "healthy-first",
        "reconciled on the healthy tenant",
        |p| super::condition(p, "Synced").is_some(),
    )
    .await;
    for i in 0..TENANT_OBJECTS {
        create(
            &w,
            &format!("t-{i}"),
            spec("epic", &npi_from_prefix(200_000_000 + i as u32)),
        )
        .await;
    }
    // Watch memory, the Lease and the process while the hostile walks run.
    let leases: Api<Lease> = Api::namespaced(w.client.clone(), "epic-system");
    let mut renewals = std::collections::BTreeSet::new();
    let mut peak = 0u64;
    let mut healthy_ready: Option<Duration> = None;
    let started = Instant::now();
    let mut probe_created: Option<Instant> = None;
    while started.elapsed() < Duration::from_secs(40) {
        peak = peak.max(rss_mib(pid).unwrap_or_else(|| {
            panic!(
                "the operator process ended while the hostile server was walked (peak {peak} MiB)"
            )
        }));
        if let Ok(Some(l)) = leases.get_opt(&lease_name).await
            && let Some(t) = l.spec.and_then(|s| s.renew_time)
        {
            renewals.insert(t.0.to_string());
        }
        let walked = w.sandbox.stats()["page"].as_u64().unwrap_or(0) > 0;
        if walked && probe_created.is_none() {
            // The hostile page has been served: a new practitioner of the healthy tenant now.
            create(&w, "healthy-new", on_healthy("alice-smith.yaml")).await;
            probe_created = Some(Instant::now());
        }
        if let (Some(at), None) = (probe_created, healthy_ready)
            && let Ok(Some(p)) = w.practitioners.get_opt("healthy-new").await
            && is(&p, "Ready", "True", "Ready")
        {
            healthy_ready = Some(at.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let hostile_stats = w.sandbox.stats();
    eprintln!(
        "hostile tenant: peak RSS {peak} MiB, {} Lease renewals seen in 40 s, healthy practitioner settled in {healthy_ready:?}, hostile server served {} searches and {} pages",
        renewals.len(),
        hostile_stats["search"],
        hostile_stats["page"]
    );
    assert!(
        hostile_stats["search"].as_u64().unwrap_or(0) >= 2,
        "several hostile walks ran: {hostile_stats}"
    );
    assert!(
        peak < RSS_BOUND_MIB,
        "peak RSS {peak} MiB over {RSS_BOUND_MIB}"
    );
    // Renewed every 2 s or so: 40 s with no gap longer than the 10 s deadline means at least 4.
    assert!(
        renewals.len() >= 4,
        "the Lease was renewed throughout: {renewals:?}"
    );
    let ready = healthy_ready.expect("the healthy tenant's new practitioner became Ready");
    assert!(
        ready <= Duration::from_secs(2),
        "the healthy tenant's new practitioner waited {ready:?}"
    );
    // The hostile record is left out: each tenant NPI is on its own record, so those the walks
    // have reached resolve to it (the churn slows the tenant's walks down: each woken record
    // stretches the pause before the next page).
    let resolved = w
        .practitioners
        .list(&Default::default())
        .await
        .unwrap()
        .items
        .iter()
        .filter(|p| p.spec.connection_ref.name == "epic")
        .filter(|p| p.status.as_ref().is_some_and(|s| s.fhir_id.is_some()))
        .count();
    eprintln!("hostile tenant: {resolved} of {TENANT_OBJECTS} practitioners resolved");
    assert!(resolved > 0, "the tenant's own records resolve");
    drop(healthy);
}
