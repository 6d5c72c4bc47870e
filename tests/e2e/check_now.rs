//! "Check now": the `epic-operator.dev/requested-at` annotation makes the operator read the
//! record from Epic again at once, even in roster mode, where a settled object otherwise
//! leaves its checking to the connection's walks.

use std::time::{Duration, Instant};

use epic_operator::crd::REQUESTED_AT_ANNOTATION;
use epic_operator::sandbox::SandboxConfig;

use super::{ControlPlane, Operator, World, annotate, create, example, is, stats, wait_for, world};

/// How soon after the annotation the fresh read must reach Epic.
const WITHIN: Duration = Duration::from_secs(2);

async fn reads(w: &World) -> u64 {
    stats(w).await["read"].as_u64().expect("read counter")
}

/// Annotates `value` and returns how long it took until the sandbox counted one more read.
async fn request_and_time(w: &World, value: &str) -> Duration {
    let before = reads(w).await;
    let started = Instant::now();
    annotate(w, "alice-smith", REQUESTED_AT_ANNOTATION, Some(value)).await;
    while started.elapsed() < WITHIN * 5 {
        if reads(w).await > before {
            return started.elapsed();
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!(
        "[{}] no read by id within {:?} of requested-at={value}: {}",
        w.ns,
        WITHIN * 5,
        stats(w).await
    );
}

/// Scenario 28: requested-at leads to a read within 2 s, twice, and is recorded in status.
pub async fn requested_at_reads_again_now(cp: &ControlPlane) {
    let w = world(cp, "s20-check-now", SandboxConfig::default(), |_| {}).await;
    let _op = Operator::start(cp, &w.ns, &[]);
    create(&w, "alice-smith", example("alice-smith.yaml")).await;
    let p = wait_for(&w, "alice-smith", "Ready=True", |p| {
        is(p, "Ready", "True", "Ready")
    })
    .await;
    let s = p.status.clone().unwrap();
    assert_eq!(s.drift_count, Some(0));
    let verified = s.last_verified_time.clone().expect("lastVerifiedTime");
    // Settled and covered by the walks: nothing reads the record by itself meanwhile.
    let quiet = reads(&w).await;
    tokio::time::sleep(WITHIN).await;
    assert_eq!(reads(&w).await, quiet, "no read without a request");

    for value in ["2026-12-01T10:00:00Z", "again"] {
        let took = request_and_time(&w, value).await;
        assert!(
            took <= WITHIN,
            "requested-at={value}: the read came after {took:?}"
        );
        let p = wait_for(&w, "alice-smith", "lastHandledRequestedAt", |p| {
            p.status
                .as_ref()
                .and_then(|s| s.last_handled_requested_at.as_deref())
                == Some(value)
        })
        .await;
        assert!(is(&p, "Ready", "True", "Ready"));
        let s = p.status.unwrap();
        // Coarse: the time moves at most once per resync interval (1 h here).
        assert_eq!(s.last_verified_time.as_deref(), Some(verified.as_str()));
    }
    // The connection shows its last walk (roster mode): what it saw and what it cost.
    let started = Instant::now();
    let walk = loop {
        let c = w.connections.get_status("epic").await.unwrap();
        if let Some(walk) = c.status.and_then(|s| s.walk) {
            break walk;
        }
        assert!(
            started.elapsed() < WITHIN * 5,
            "no status.walk on the connection"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(walk.last_result, "Succeeded", "{walk:?}");
    assert!(
        walk.records >= 1 && walk.pages >= 2,
        "Practitioner and role pages: {walk:?}"
    );
    assert_eq!(walk.paging_expired, 0);
    assert!(walk.last_success_time.is_some() && walk.last_error.is_none());

    // `epic-operator trace`: the same, as a tree read from the cluster.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_epic-operator"))
        .args(["trace", "-n", &w.ns, "epic"])
        .env("KUBECONFIG", &cp.admin_kubeconfig)
        .output()
        .unwrap();
    let tree = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{tree}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let ns = &w.ns;
    assert!(
        tree.starts_with(&format!("EpicConnection {ns}/epic  Ready=True")),
        "{tree}"
    );
    assert!(tree.contains("last walk: Succeeded"), "{tree}");
    assert!(
        tree.contains("└── EpicPractitioner alice-smith  NPI 1234567893  Ready=True Ready"),
        "{tree}"
    );
    // An unknown connection is an error naming it.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_epic-operator"))
        .args(["trace", "-n", &w.ns, "nope"])
        .env("KUBECONFIG", &cp.admin_kubeconfig)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no EpicConnection nope"));

    // Handled: no further reads come from the annotation that stays.
    let after = reads(&w).await;
    tokio::time::sleep(WITHIN).await;
    assert_eq!(reads(&w).await, after, "a handled request is not repeated");
}
