//! Tier 3: the operator binary against a real kube-apiserver + etcd and the sandbox over HTTP,
//! running with the least-privilege RBAC the project ships. Every scenario asserts on status
//! read back from the API server.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../chart_support/mod.rs"]
mod chart_support;
mod check_now;
mod cluster;
#[path = "../fs_support/mod.rs"]
mod fs_support;
mod hostile;
mod keys;
mod load;
#[path = "../net_support/mod.rs"]
mod net_support;
mod packaging;
mod readme;
mod roster;
mod tls;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use chart_support::helm_python;
use cluster::ControlPlane;
use epic_operator::crd::{
    Algorithm, DeletionPolicy, EpicConnection, EpicConnectionSpec, EpicPractitioner,
    EpicPractitionerSpec, ManagementPolicy, WriteMode, npi_from_prefix,
};
use epic_operator::sandbox::{DEV_KEY_ID, Sandbox, SandboxConfig, Settings};
use k8s_openapi::api::core::v1::Secret;
use kube::api::{DeleteParams, DynamicObject, ObjectMeta, Patch, PatchParams, PostParams};
use kube::core::ApiResource;
use kube::{Api, ResourceExt};
use serde_json::{Value, json};

const SEED: &str = include_str!("../../examples/sandbox/seed.json");
const WAIT: Duration = Duration::from_secs(90);

/// An operator process; killed on drop, its log printed if the test is failing.
struct Operator {
    child: Child,
    log: PathBuf,
}

/// The operator binary under test: the one cargo built for this test, or the one
/// `EPIC_OPERATOR_E2E_BINARY` names (a release build, or a copy kept apart from a shared target
/// directory that other checkouts build into).
fn operator_binary() -> PathBuf {
    std::env::var_os("EPIC_OPERATOR_E2E_BINARY")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_epic-operator")))
}

impl Operator {
    fn start(cp: &ControlPlane, ns: &str, extra: &[&str]) -> Self {
        Self::start_as(cp, &cp.operator_kubeconfig, ns, extra)
    }

    /// Runs the operator with the identity of `kubeconfig`.
    fn start_as(cp: &ControlPlane, kubeconfig: &Path, ns: &str, extra: &[&str]) -> Self {
        let log = cp.dir.join(format!("operator-{ns}-{}.log", rand_suffix()));
        let file = std::fs::File::create(&log).expect("log");
        let child = Command::new(operator_binary())
            .args(["run", "--namespace", ns])
            // The sandbox serves plain http on loopback: a development-only permission.
            .arg("--insecure-allow-loopback-http")
            .args(if extra.contains(&"--metrics-addr") {
                &[][..]
            } else {
                &["--metrics-addr", "127.0.0.1:0"][..]
            })
            // Loopback and a free port: scenarios run side by side, each with its own listener.
            .args(if extra.contains(&"--jwks-addr") {
                &[][..]
            } else {
                &["--jwks-addr", "127.0.0.1:0"][..]
            })
            .args(extra)
            .env("KUBECONFIG", kubeconfig)
            .env("RUST_LOG", "info,epic_operator=debug,kube_runtime=debug")
            .env_remove("POD_NAMESPACE")
            .stdout(Stdio::null())
            .stderr(file)
            .spawn()
            .expect("start the operator");
        Self { child, log }
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Operator {
    fn drop(&mut self) {
        self.kill();
        if std::thread::panicking() {
            let text = std::fs::read_to_string(&self.log).unwrap_or_default();
            // The periodic lines (scans, probes) would hide what matters.
            let tail: Vec<&str> = text
                .lines()
                .filter(|l| {
                    !l.contains("roster scan")
                        && !l.contains("/metadata")
                        && !l.contains("Server cert")
                        && !l.contains("\"path\":\"/api/FHIR/R4/Practitioner\"")
                })
                .rev()
                .take(40)
                .collect();
            eprintln!("--- operator log tail ({}) ---", self.log.display());
            for l in tail.into_iter().rev() {
                eprintln!("{l}");
            }
        }
    }
}

fn rand_suffix() -> u32 {
    rand::random::<u32>() % 100_000
}

/// One scenario's world: a namespace, a sandbox, a connection to it.
struct World {
    ns: String,
    sandbox: Sandbox,
    practitioners: Api<EpicPractitioner>,
    connections: Api<EpicConnection>,
    client: kube::Client,
}

async fn world(
    cp: &ControlPlane,
    ns: &str,
    sandbox: SandboxConfig,
    tweak: impl FnOnce(&mut EpicConnectionSpec),
) -> World {
    let ns = cp.namespace(ns).await;
    let sandbox = Sandbox::start(SandboxConfig {
        seeds: vec![SEED.into()],
        ..sandbox
    })
    .await
    .expect("sandbox");
    let secrets: Api<Secret> = Api::namespaced(cp.admin.clone(), &ns);
    let pem = sandbox.dev_key_pem.clone().expect("dev key");
    let secret = Secret {
        metadata: ObjectMeta {
            name: Some("epic-key".into()),
            ..ObjectMeta::default()
        },
        string_data: Some([("private-key.pem".to_string(), pem)].into()),
        ..Secret::default()
    };
    secrets
        .create(&PostParams::default(), &secret)
        .await
        .expect("secret");
    let mut spec = EpicConnectionSpec {
        requests_per_second: Some(50),
        burst: Some(50),
        page_size: Some(50),
        resync_interval: Some("1h".into()),
        paging_session_ttl: None,
        ..sandbox.connection_spec("epic-key")
    };
    tweak(&mut spec);
    let connections: Api<EpicConnection> = Api::namespaced(cp.admin.clone(), &ns);
    connections
        .create(&PostParams::default(), &EpicConnection::new("epic", spec))
        .await
        .expect("connection");
    World {
        practitioners: Api::namespaced(cp.admin.clone(), &ns),
        connections,
        client: cp.admin.clone(),
        ns,
        sandbox,
    }
}

fn writable() -> SandboxConfig {
    SandboxConfig {
        settings: Settings {
            writes_enabled: true,
            ..Settings::default()
        },
        ..SandboxConfig::default()
    }
}

/// A spec from examples/ (the manifests users start from).
fn example(file: &str) -> EpicPractitionerSpec {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("examples/practitioners")
        .join(file);
    let loaded = epic_operator::gitops::load_manifests(&[path]).expect("example");
    loaded.practitioners[0].practitioner.spec.clone()
}

async fn create(w: &World, name: &str, spec: EpicPractitionerSpec) {
    w.practitioners
        .create(&PostParams::default(), &EpicPractitioner::new(name, spec))
        .await
        .expect("create EpicPractitioner");
}

fn condition<'a>(p: &'a EpicPractitioner, t: &str) -> Option<&'a epic_operator::crd::Condition> {
    p.status.as_ref()?.conditions.iter().find(|c| c.type_ == t)
}

fn is(p: &EpicPractitioner, t: &str, status: &str, reason: &str) -> bool {
    condition(p, t).is_some_and(|c| format!("{:?}", c.status) == status && c.reason == reason)
}

async fn wait_for(
    w: &World,
    name: &str,
    what: &str,
    pred: impl Fn(&EpicPractitioner) -> bool,
) -> EpicPractitioner {
    let started = Instant::now();
    let mut last = None;
    while started.elapsed() < WAIT {
        if let Ok(Some(p)) = w.practitioners.get_opt(name).await {
            if pred(&p) {
                return p;
            }
            last = Some(p);
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let finalizers = last.as_ref().map(|p| p.finalizers().to_vec());
    panic!(
        "[{}] {name}: timed out waiting for {what}; finalizers {finalizers:?}; last status: {:#?}",
        w.ns,
        last.and_then(|p| p.status)
    );
}

/// A GET on the sandbox's admin API (`stats`, `practitioners`, `practitioners/{id}`).
async fn admin_get(w: &World, path: &str) -> Value {
    epic_operator::http::client()
        .unwrap()
        .get(format!("{}/{path}", w.sandbox.admin_url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// An out-of-band change through the sandbox's admin API (`PUT settings`, `POST
/// practitioners` to add a record, `PATCH` or `DELETE practitioners/{id}`); returns its answer.
async fn admin_send(w: &World, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
    let request = epic_operator::http::client()
        .unwrap()
        .request(method, format!("{}/{path}", w.sandbox.admin_url()));
    let r = match body {
        Some(body) => request.json(&body),
        None => request,
    }
    .send()
    .await
    .unwrap();
    assert!(r.status().is_success(), "{path}: {}", r.status());
    r.json().await.unwrap_or(Value::Null)
}

/// The sandbox's records that carry `npi`.
async fn records_carrying(w: &World, npi: &str) -> Vec<Value> {
    let records = admin_get(w, "practitioners").await;
    let all = records.as_array().cloned().unwrap_or_default();
    all.into_iter().filter(|r| r["npi"] == npi).collect()
}

async fn stats(w: &World) -> Value {
    admin_get(w, "stats").await
}

async fn live(w: &World, npi: &str) -> Value {
    let list = admin_get(w, "practitioners").await;
    let id = list
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["npi"] == npi)
        .expect("record")["id"]
        .as_str()
        .unwrap()
        .to_string();
    admin_get(w, &format!("practitioners/{id}")).await
}

async fn events(w: &World) -> Vec<Value> {
    let api: Api<k8s_openapi::api::events::v1::Event> = Api::namespaced(w.client.clone(), &w.ns);
    api.list(&Default::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|e| serde_json::to_value(e).unwrap())
        .collect()
}

async fn wait_event(w: &World, reason: &str) -> Value {
    let started = Instant::now();
    while started.elapsed() < WAIT {
        if let Some(e) = events(w).await.into_iter().find(|e| e["reason"] == reason) {
            return e;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    panic!(
        "[{}] no {reason} Event; events: {:#?}",
        w.ns,
        events(w).await
    );
}

/// Waits until the sandbox's counter `key` satisfies `pred`.
async fn wait_stat(w: &World, key: &str, what: &str, pred: impl Fn(u64) -> bool) -> Value {
    let started = Instant::now();
    while started.elapsed() < WAIT {
        let st = stats(w).await;
        if st[key].as_u64().is_some_and(&pred) {
            return st;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    panic!(
        "[{}] timed out waiting for {what}; stats: {}",
        w.ns,
        stats(w).await
    );
}

async fn annotate(w: &World, name: &str, key: &str, value: Option<&str>) {
    let patch = json!({"metadata": {"annotations": {key: value}}});
    w.practitioners
        .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .expect("annotate");
}

// Each scenario is its own test (filter by name: `cargo test --features e2e --test e2e -- deletion`),
// in its own namespace, against the one control plane the binary shares.
macro_rules! scenario {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn scenario() {
                super::$name(&super::ControlPlane::shared().await).await;
            }
        }
    )*};
}

scenario!(
    in_sync_record,
    drift_is_fixed_when_writes_are_enabled,
    drift_is_reported_when_writes_are_disabled,
    unknown_npi_not_found_then_created,
    ambiguous_npi_writes_nothing,
    deactivation_notes_login_access,
    deletion_with_deactivate_holds_the_finalizer,
    invalid_manifests,
    wrong_key_and_wrong_scope,
    restart_mid_flight_writes_once,
    pause_stops_writes,
    an_edit_between_read_and_write_is_kept,
    namespaced_rbac_is_enough_and_confines,
    a_hanging_tenant_does_not_stall_another,
    deleting_a_connection_stops_writes,
    roster_walk_resolves_without_identifier_search,
    keys_rotate_without_an_outage,
    a_record_hidden_from_the_walk_is_never_created,
    two_objects_for_one_npi_both_hold,
    a_lost_create_answer_never_creates_twice,
    a_hostile_server_cannot_exhaust_the_operator,
    a_known_record_whose_npi_appears_twice_holds,
    an_internal_ca_and_mutual_tls_from_secrets,
    requested_at_reads_again_now,
    a_refused_roster_walk_falls_back_to_identifier_search,
    without_walks_or_search_every_practitioner_says_why,
    a_request_budget_holds_and_new_practitioners_resolve_at_once,
    walk_windows_keep_full_walks_out_of_the_day,
    a_daily_limit_stops_walks_until_the_next_day,
    a_walk_of_a_repointed_connection_stops,
    an_old_walk_never_proves_an_npi_absent,
    two_connections_to_one_instance_hold_a_twice_declared_npi,
    a_record_gone_from_epic_is_never_replaced,
    a_gone_record_is_followed_to_the_one_the_walk_found,
);

use check_now::requested_at_reads_again_now;
use hostile::a_hostile_server_cannot_exhaust_the_operator;
use tls::an_internal_ca_and_mutual_tls_from_secrets;

use keys::keys_rotate_without_an_outage;
use load::{
    a_daily_limit_stops_walks_until_the_next_day,
    a_refused_roster_walk_falls_back_to_identifier_search,
    a_request_budget_holds_and_new_practitioners_resolve_at_once,
    walk_windows_keep_full_walks_out_of_the_day,
    without_walks_or_search_every_practitioner_says_why,
};
use roster::{
    a_gone_record_is_followed_to_the_one_the_walk_found,
    a_known_record_whose_npi_appears_twice_holds, a_lost_create_answer_never_creates_twice,
    a_record_gone_from_epic_is_never_replaced, a_record_hidden_from_the_walk_is_never_created,
    a_walk_of_a_repointed_connection_stops, an_old_walk_never_proves_an_npi_absent,
    roster_walk_resolves_without_identifier_search,
    two_connections_to_one_instance_hold_a_twice_declared_npi, two_objects_for_one_npi_both_hold,
};

/// Scenario 1: In sync: Ready, InSync, fhirId, roles, printer columns, a Resolved Event without PHI.
async fn in_sync_record(cp: &ControlPlane) {
    let w = world(cp, "s1-in-sync", SandboxConfig::default(), |_| {}).await;
    let _op = Operator::start(cp, &w.ns, &[]);
    create(&w, "alice-smith", example("alice-smith.yaml")).await;
    let p = wait_for(&w, "alice-smith", "Ready=True", |p| {
        is(p, "Ready", "True", "Ready")
    })
    .await;
    let s = p.status.clone().unwrap();
    assert!(is(&p, "InSync", "True", "NoDrift"));
    let id = s.fhir_id.clone().expect("fhirId");
    assert_eq!(
        s.connection.as_deref(),
        Some(w.sandbox.fhir_base_url().as_str())
    );
    assert_eq!(s.roles.len(), 1);
    assert_eq!(
        s.roles[0].organization.as_deref(),
        Some("Example Health Clinic")
    );
    assert_eq!(
        s.roles[0].location.as_deref(),
        Some("Cardiology Department")
    );
    assert!(s.drift.is_empty() && s.diff.is_none());
    assert_eq!(s.observed_generation, p.metadata.generation);
    // `kubectl get epr` columns, as the API server renders them.
    let req = http::Request::get(format!(
        "/apis/epic-operator.dev/v1alpha1/namespaces/{}/epicpractitioners",
        w.ns
    ))
    .header("Accept", "application/json;as=Table;v=v1;g=meta.k8s.io")
    .body(Vec::new())
    .unwrap();
    let table: Value = w.client.request(req).await.expect("table");
    let columns: Vec<&str> = table["columnDefinitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        columns,
        vec![
            "Name",
            "NPI",
            "Ready",
            "Reason",
            "Active",
            "Live-Active",
            "Synced",
            "Drift",
            "FHIR-ID",
            "Connection",
            "Verified",
            "Last-Change",
            "Age"
        ]
    );
    let cells = &table["rows"][0]["cells"];
    assert_eq!(cells[1], "1234567893");
    assert_eq!(cells[2], "True");
    assert_eq!(cells[3], "Ready");
    assert_eq!(cells[4], true);
    assert_eq!(cells[5], true, "active as Epic holds it");
    assert_eq!(cells[6], "True", "Synced");
    assert_eq!(cells[7], 0, "no owned field differs");
    assert_eq!(cells[8], id.as_str());
    assert_eq!(cells[9], "epic");
    // A date column shows the age ("3s"); absent, the cell would be null.
    assert!(
        s.last_verified_time.is_some() && cells[10].as_str().is_some_and(|a| a.ends_with('s')),
        "Verified: read from Epic seconds ago: {}",
        cells[10]
    );
    // Resolved from the connection's roster walk: a routine resolution publishes no Event
    // (only an identifier search for a single new object does).
    let all = events(&w).await;
    assert!(
        all.iter().all(|e| e["reason"] != "Resolved"),
        "no Event for a routine resolution: {all:?}"
    );
    // What people read (reason, action, note), not the metadata: a uid, a timestamp or a
    // resourceVersion can hold "555" by chance.
    for e in all {
        let text = format!("{} {} {}", e["reason"], e["action"], e["note"]);
        assert!(
            !text.contains("Smith") && !text.contains("alice.smith@") && !text.contains("555"),
            "PHI in an Event: {text}"
        );
    }
    // The connection reports what it learned (its status is written by its own controller,
    // which may come a moment after the practitioner's).
    let started = Instant::now();
    let cs = loop {
        let c = w.connections.get("epic").await.unwrap();
        if let Some(s) = c.status.filter(|s| !s.conditions.is_empty()) {
            break s;
        }
        assert!(
            started.elapsed() < WAIT,
            "the connection never reported a status"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    assert!(
        cs.conditions
            .iter()
            .any(|c| c.type_ == "Ready" && format!("{:?}", c.status) == "True")
    );
    assert_eq!(cs.writable, Some(false));
    assert_eq!(cs.npi_search_supported, Some(true));
    assert!(
        cs.token_expires_at.is_some()
            && cs
                .granted_scopes
                .contains(&"system/Practitioner.read".to_string())
    );
}

/// Scenario 2: Drift made out of band with writes enabled: detected by the roster scan, PUT, back in
/// sync, unmanaged fields unchanged.
/// Scenario: two connections in one operator; B's token endpoint accepts connections and never
/// answers. A practitioner of A still converges within seconds.
async fn a_hanging_tenant_does_not_stall_another(cp: &ControlPlane) {
    let w = world(cp, "s15-tenants", SandboxConfig::default(), |_| {}).await;
    // A token endpoint that hangs: it accepts and holds connections, answering nothing.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let hang_url = format!("http://{}/oauth2/token", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for (n, stream) in listener.incoming().enumerate() {
            held.extend(stream.ok());
            if n > 1000 {
                break;
            }
        }
    });
    let hanging = EpicConnectionSpec {
        token_url: Some(hang_url),
        ..w.connections.get("epic").await.unwrap().spec
    };
    w.connections
        .create(
            &PostParams::default(),
            &EpicConnection::new("hanging", hanging),
        )
        .await
        .unwrap();
    let _op = Operator::start(cp, &w.ns, &[]);
    let mut b = example("bob-jones.yaml");
    b.connection_ref.name = "hanging".into();
    create(&w, "bob-on-hanging", b).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let started = Instant::now();
    create(&w, "alice-smith", example("alice-smith.yaml")).await;
    wait_for(
        &w,
        "alice-smith",
        "Ready while the other tenant hangs",
        |p| is(p, "Ready", "True", "Ready"),
    )
    .await;
    let took = started.elapsed();
    eprintln!("tenant A Ready in {took:?} while tenant B's token endpoint hangs");
    assert!(
        took < Duration::from_secs(15),
        "tenant A took {took:?} while tenant B's token endpoint hangs"
    );
}

/// Scenario: deleting an EpicConnection (and its Secret) stops writes at once: its
/// practitioners report ConnectionNotReady and nothing more is sent to Epic.
async fn deleting_a_connection_stops_writes(cp: &ControlPlane) {
    let w = world(cp, "s16-conn-deleted", writable(), |c| {
        c.resync_interval = Some("10s".into())
    })
    .await;
    let _op = Operator::start(cp, &w.ns, &[]);
    create(&w, "alice-smith", example("alice-smith.yaml")).await;
    wait_for(&w, "alice-smith", "Ready", |p| {
        is(p, "Ready", "True", "Ready")
    })
    .await;
    w.connections
        .delete("epic", &DeleteParams::default())
        .await
        .unwrap();
    let secrets: Api<Secret> = Api::namespaced(w.client.clone(), &w.ns);
    secrets
        .delete("epic-key", &DeleteParams::default())
        .await
        .unwrap();
    wait_for(&w, "alice-smith", "ConnectionNotReady", |p| {
        is(p, "Synced", "False", "ConnectionNotReady")
    })
    .await;
    // Drift made in Epic now is not written back: the cached client is gone.
    let id = live(&w, "1234567893").await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let writes_before = stats(&w).await["update"].clone();
    let r = epic_operator::http::client()
        .unwrap()
        .patch(format!("{}/practitioners/{id}", w.sandbox.admin_url()))
        .json(&json!({"active": false}))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success());
    // Wake the object: a spec change that would otherwise be written.
    annotate(&w, "alice-smith", "example.org/touch", Some("1")).await;
    tokio::time::sleep(Duration::from_secs(12)).await;
    let st = stats(&w).await;
    assert_eq!(st["update"], writes_before, "no write after deletion: {st}");
    assert_eq!(live(&w, "1234567893").await["active"], false);
}

/// Scenario: the chart's namespaced mode (watchNamespace). The operator runs as an identity bound
/// only by the RBAC the chart renders for that mode, reconciles its namespace, and can neither
/// read a Secret nor touch a Lease anywhere else.
async fn namespaced_rbac_is_enough_and_confines(cp: &ControlPlane) {
    let w = world(cp, "s14-namespaced", SandboxConfig::default(), |_| {}).await;
    cp.namespace("epic-tenant").await;
    let rendered = render_chart(
        &json!({"watchNamespace": w.ns, "replicaCount": 2}),
        "epic-operator",
        "epic-tenant",
    );
    let docs: Vec<Value> =
        serde_saphyr::from_multiple(&String::from_utf8(rendered.stdout).unwrap()).unwrap();
    let rbac: Vec<String> = docs
        .into_iter()
        .filter(|d| {
            d["apiVersion"]
                .as_str()
                .is_some_and(|v| v.starts_with("rbac.authorization.k8s.io/"))
        })
        .map(|d| d.to_string())
        .collect();
    assert!(
        rbac.len() >= 4,
        "Role, RoleBinding and the Lease pair: {rbac:?}"
    );
    cluster::apply_yaml(&w.client, &rbac.join("\n---\n")).await;
    let tenant = &cp.tenant_kubeconfig;
    let _op = Operator::start_as(
        cp,
        tenant,
        &w.ns,
        &[
            "--leader-election",
            "--lease-namespace",
            "epic-tenant",
            "--lease-name",
            "s14",
        ],
    );
    create(&w, "alice-smith", example("alice-smith.yaml")).await;
    wait_for(&w, "alice-smith", "Ready under namespaced RBAC", |p| {
        is(p, "Ready", "True", "Ready")
    })
    .await;
    assert!(can_i(tenant, "get", "secrets", &w.ns));
    assert!(can_i(tenant, "update", "leases", "epic-tenant"));
    for (verb, resource, ns) in [
        ("list", "secrets", w.ns.as_str()),
        ("watch", "secrets", w.ns.as_str()),
        ("get", "secrets", "default"),
        ("get", "secrets", "epic-system"),
        ("update", "leases", "kube-system"),
        ("update", "leases", w.ns.as_str()),
        ("list", "epicpractitioners", "default"),
    ] {
        assert!(
            !can_i(tenant, verb, resource, ns),
            "the namespaced operator may not {verb} {resource} in {ns}"
        );
    }
}

/// Scenario: someone edits the record in Epic between the operator's read and its PUT. The
/// conditional PUT gets 412; the operator re-reads and writes again at once, keeping the edit.
async fn an_edit_between_read_and_write_is_kept(cp: &ControlPlane) {
    let w = world(cp, "s13-lost-update", writable(), |_| {}).await;
    let r = epic_operator::http::client()
        .unwrap()
        .put(format!("{}/settings", w.sandbox.admin_url()))
        .json(&json!({"editBeforePut": {"address": [{"city": "Verona"}]}, "editBeforePutCount": 1}))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success());
    let _op = Operator::start(cp, &w.ns, &[]);
    let mut spec = example("alice-smith.yaml");
    spec.gender = Some(epic_operator::crd::Gender::Other);
    create(&w, "alice-smith", spec).await;
    let p = wait_for(&w, "alice-smith", "the write after a conflict", |p| {
        p.status
            .as_ref()
            .is_some_and(|s| s.last_write_time.is_some())
            && is(p, "Ready", "True", "Ready")
    })
    .await;
    assert!(p.status.unwrap().drift.is_empty());
    let st = stats(&w).await;
    assert_eq!(st["conflicts"], 1, "{st}");
    assert_eq!(st["update"], 1, "one successful PUT after the 412: {st}");
    let after = live(&w, "1234567893").await;
    assert_eq!(after["gender"], "other");
    assert_eq!(
        after["address"],
        json!([{"city": "Verona"}]),
        "the out-of-band edit survives"
    );
    wait_event(&w, "Updated").await;
}

async fn drift_is_fixed_when_writes_are_enabled(cp: &ControlPlane) {
    let w = world(cp, "s2-drift-fixed", writable(), |c| {
        c.resync_interval = Some("10s".into())
    })
    .await;
    let metrics_port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let metrics_addr = format!("127.0.0.1:{metrics_port}");
    let _op = Operator::start(cp, &w.ns, &["--metrics-addr", &metrics_addr]);
    create(&w, "alice-smith", example("alice-smith.yaml")).await;
    wait_for(&w, "alice-smith", "Ready", |p| {
        is(p, "Ready", "True", "Ready")
    })
    .await;
    let before = live(&w, "1234567893").await;
    let id = before["id"].as_str().unwrap().to_string();
    // A person edits the record in Epic.
    let r = epic_operator::http::client().unwrap()
        .patch(format!("{}/practitioners/{id}", w.sandbox.admin_url()))
        .json(&json!({"telecom": [{"system": "phone", "value": "+1 555 0000", "use": "work"}], "active": false}))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success());
    let p = wait_for(&w, "alice-smith", "a write that restores the record", |p| {
        p.status
            .as_ref()
            .is_some_and(|s| s.last_write_time.is_some())
            && is(p, "Ready", "True", "Ready")
    })
    .await;
    assert!(p.status.unwrap().drift.is_empty());
    let after = live(&w, "1234567893").await;
    for field in ["extension", "address", "photo", "gender", "qualification"] {
        assert_eq!(
            after[field], before[field],
            "unmanaged or unchanged field {field} was altered"
        );
    }
    // meta changes only where the server versions the record (versionId, lastUpdated).
    let unversioned = |v: &Value| {
        let mut m = v["meta"].clone();
        if let Some(o) = m.as_object_mut() {
            o.remove("versionId");
            o.remove("lastUpdated");
        }
        m
    };
    assert_eq!(unversioned(&after), unversioned(&before), "meta kept");
    assert_eq!(
        after["identifier"], before["identifier"],
        "Epic identifiers kept"
    );
    assert_eq!(after["name"], before["name"], "usual name kept");
    assert_eq!(after["active"], true);
    assert_eq!(after["telecom"].as_array().unwrap().len(), 2);
    let st = stats(&w).await;
    assert_eq!(st["update"], 1);
    assert_eq!(st["patch"], 0);
    wait_event(&w, "DriftDetected").await;
    wait_event(&w, "Updated").await;
    let connection = format!("{}/epic", w.ns);
    let needles: Vec<String> = vec![
        format!(
            "epic_operator_fhir_requests_total{{connection=\"{connection}\",interaction=\"update\",status_class=\"2xx\"}} 1"
        ),
        format!(
            "epic_operator_fhir_request_duration_seconds_count{{connection=\"{connection}\",interaction=\"update\",status_class=\"2xx\"}} 1"
        ),
        format!("epic_operator_token_requests_total{{connection=\"{connection}\"}}"),
        "epic_operator_reconciles_total{kind=\"EpicPractitioner\",result=\"success\",reason=\"Synced\"}".into(),
        "epic_operator_reconciles_in_flight{kind=\"EpicPractitioner\"} 0".into(),
        "epic_operator_practitioners{reason=\"Synced\"} 1".into(),
        "epic_operator_drifted_practitioners 0".into(),
        format!("epic_operator_build_info{{version=\"{}\"}} 1", env!("CARGO_PKG_VERSION")),
        // The standard names, without the project prefix.
        "\nprocess_resident_memory_bytes ".into(),
        "\nprocess_cpu_seconds_total ".into(),
        "\nprocess_max_fds ".into(),
        "epic_operator_leader 1".into(),
        "epic_operator_pending_reconciles 0".into(),
        format!("epic_operator_writes_total{{connection=\"{connection}\",result=\"updated\"}} 1"),
        format!("epic_operator_token_expiry_timestamp_seconds{{connection=\"{connection}\"}}"),
    ];
    // The token expiry is sampled every 5 s: look for up to 15 s.
    let started = Instant::now();
    loop {
        let metrics = epic_operator::http::client()
            .unwrap()
            .get(format!("http://{metrics_addr}/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let missing: Vec<&String> = needles.iter().filter(|n| !metrics.contains(*n)).collect();
        if missing.is_empty() {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "{missing:?} missing:\n{metrics}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert_eq!(
        epic_operator::http::client()
            .unwrap()
            .get(format!("http://{metrics_addr}/healthz"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(
        epic_operator::http::client()
            .unwrap()
            .get(format!("http://{metrics_addr}/readyz"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
}

/// Scenario 3: The same drift with writes disabled: WriteDisabled with Epic's diagnostics, drift field by
/// field, and no further PUT within the resync interval.
async fn drift_is_reported_when_writes_are_disabled(cp: &ControlPlane) {
    let w = world(cp, "s3-write-disabled", SandboxConfig::default(), |c| {
        c.writes = WriteMode::Enabled
    })
    .await;
    let _op = Operator::start(cp, &w.ns, &[]);
    create(&w, "bob-jones", example("bob-jones.yaml")).await;
    let p = wait_for(&w, "bob-jones", "Synced=False/WriteDisabled", |p| {
        is(p, "Synced", "False", "WriteDisabled")
    })
    .await;
    let s = p.status.clone().unwrap();
    assert!(is(&p, "Ready", "False", "WriteDisabled"));
    assert!(is(&p, "InSync", "False", "Drifted"));
    let paths: Vec<&str> = s.drift.iter().map(|d| d.path.as_str()).collect();
    assert_eq!(paths, vec!["telecom", "qualification"]);
    // Contact values in status are masked: the last four digits only.
    let diff = s.diff.as_deref().unwrap_or_default();
    assert!(
        diff.contains("***0199") && !diff.contains("555 0199"),
        "{diff}"
    );
    let shown = serde_json::to_string(&s.drift).unwrap();
    assert!(!shown.contains("555 0199"), "{shown}");
    let err = s.last_error.clone().expect("lastError");
    assert_eq!(err.reason, "WriteDisabled");
    assert_eq!(err.http_status, Some(403));
    assert_eq!(err.epic_codes, vec!["4118".to_string()]);
    assert!(
        err.message.contains("not enabled on this Epic instance"),
        "{}",
        err.message
    );
    wait_event(&w, "WriteDisabled").await;
    assert_eq!(stats(&w).await["refused"], 1);
    // More reconciles within the resync interval: observed, not written. Each one reads the
    // record; its status is not a sign of it, since a pass that confirms what status shows
    // writes nothing (the walk's pass may already have confirmed the refusal).
    for i in 0..2 {
        let reads = stats(&w).await["read"].as_u64().unwrap_or_default();
        annotate(&w, "bob-jones", "e2e/poke", Some(&i.to_string())).await;
        wait_stat(&w, "read", "another reconcile's read", |n| n > reads).await;
    }
    let st = stats(&w).await;
    assert_eq!(st["refused"], 1, "no doomed writes: {st}");
    assert_eq!(st["update"], 0);
}

/// Scenario 4: Unknown NPI: NotFound under Update, created under CreateOrUpdate.
async fn unknown_npi_not_found_then_created(cp: &ControlPlane) {
    let w = world(cp, "s4-not-found", writable(), |_| {}).await;
    let _op = Operator::start(cp, &w.ns, &[]);
    let mut update_only = example("erin-new.yaml");
    update_only.management_policy = ManagementPolicy::Update;
    create(&w, "erin-update", update_only).await;
    let p = wait_for(&w, "erin-update", "NotFound", |p| {
        is(p, "Synced", "False", "NotFound")
    })
    .await;
    assert!(is(&p, "InSync", "False", "NotFound"));
    assert!(p.status.unwrap().fhir_id.is_none());
    wait_event(&w, "NotFound").await;
    assert_eq!(stats(&w).await["create"], 0);
    // Two objects for one NPI would both hold (DuplicateNPI): the first goes before the second
    // comes.
    w.practitioners
        .delete("erin-update", &Default::default())
        .await
        .unwrap();
    let started = Instant::now();
    while w
        .practitioners
        .get_opt("erin-update")
        .await
        .unwrap()
        .is_some()
    {
        assert!(started.elapsed() < WAIT, "erin-update not deleted");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    create(&w, "erin-novak", example("erin-new.yaml")).await;
    let p = wait_for(&w, "erin-novak", "created and Ready", |p| {
        is(p, "Ready", "True", "Ready")
    })
    .await;
    let id = p
        .status
        .unwrap()
        .fhir_id
        .expect("fhirId of the created record");
    assert_eq!(live(&w, "1321098760").await["id"], id.as_str());
    assert_eq!(stats(&w).await["create"], 1);
    wait_event(&w, "Created").await;
}

/// Scenario 5: Two records carry the NPI: AmbiguousNPI, nothing written.
async fn ambiguous_npi_writes_nothing(cp: &ControlPlane) {
    let w = world(cp, "s5-ambiguous", writable(), |_| {}).await;
    epic_operator::http::client().unwrap()
        .post(format!("{}/practitioners", w.sandbox.admin_url()))
        .json(&json!({"identifier": [{"system": "http://hl7.org/fhir/sid/us-npi", "value": "1987654328"}], "active": true}))
        .send()
        .await
        .unwrap();
    let _op = Operator::start(cp, &w.ns, &[]);
    create(&w, "bob-jones", example("bob-jones.yaml")).await;
    let p = wait_for(&w, "bob-jones", "AmbiguousNPI", |p| {
        is(p, "Synced", "False", "AmbiguousNPI")
    })
    .await;
    let message = &condition(&p, "Synced").unwrap().message;
    assert!(
        message.contains("2 Practitioners carry NPI 1987654328"),
        "{message}"
    );
    wait_event(&w, "AmbiguousNPI").await;
    let st = stats(&w).await;
    assert_eq!(
        (st["update"].as_u64(), st["create"].as_u64()),
        (Some(0), Some(0)),
        "{st}"
    );
}

/// Scenario 6: active=false is written, and status says login access is not revoked.
async fn deactivation_notes_login_access(cp: &ControlPlane) {
    let w = world(cp, "s6-deactivate", writable(), |_| {}).await;
    let _op = Operator::start(cp, &w.ns, &[]);
    create(&w, "carol-lee", example("carol-lee.yaml")).await;
    let p = wait_for(&w, "carol-lee", "Ready after deactivation", |p| {
        is(p, "Ready", "True", "Ready")
    })
    .await;
    let note = p.status.unwrap().note.expect("note");
    assert!(note.contains("does not revoke Epic login access"), "{note}");
    assert_eq!(live(&w, "1456789019").await["active"], false);
    wait_event(&w, "Deactivated").await;
}

/// Scenario 7: Deletion with Deactivate: the finalizer holds while writes are refused, and goes once
/// active=false is written.
async fn deletion_with_deactivate_holds_the_finalizer(cp: &ControlPlane) {
    let w = world(cp, "s7-deletion", SandboxConfig::default(), |c| {
        c.writes = WriteMode::Enabled;
        c.resync_interval = Some("10s".into());
    })
    .await;
    let _op = Operator::start(cp, &w.ns, &[]);
    let mut spec = example("alice-smith.yaml");
    spec.deletion_policy = DeletionPolicy::Deactivate;
    create(&w, "alice-smith", spec).await;
    let p = wait_for(&w, "alice-smith", "Ready with the finalizer", |p| {
        is(p, "Ready", "True", "Ready")
            && p.finalizers()
                .iter()
                .any(|f| f == epic_operator::operator::FINALIZER)
    })
    .await;
    assert!(
        p.finalizers()
            .contains(&epic_operator::operator::FINALIZER.to_string())
    );
    w.practitioners
        .delete("alice-smith", &DeleteParams::default())
        .await
        .unwrap();
    // The blocked deletion is visible: its own reason with the way out, in Synced and Ready,
    // the blocking refusal in lastError, and one Warning Event.
    let held = wait_for(&w, "alice-smith", "deletion held by a refused write", |p| {
        p.metadata.deletion_timestamp.is_some()
            && is(p, "Synced", "False", "DeletionBlocked")
            && is(p, "Ready", "False", "DeletionBlocked")
    })
    .await;
    let s = held.status.unwrap();
    let synced = s.conditions.iter().find(|c| c.type_ == "Synced").unwrap();
    assert!(
        synced.message.contains("WriteDisabled")
            && synced.message.contains(r#""deletionPolicy":"Orphan""#),
        "{}",
        synced.message
    );
    assert_eq!(s.last_error.unwrap().reason, "WriteDisabled");
    let e = wait_event(&w, "DeletionBlocked").await;
    assert_eq!(e["type"], "Warning");
    assert!(
        e["note"].as_str().unwrap().contains("Orphan"),
        "the Event says the way out: {e}"
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(
        w.practitioners
            .get_opt("alice-smith")
            .await
            .unwrap()
            .is_some(),
        "finalizer holds while writes are refused"
    );
    w.sandbox.set_settings(Settings {
        writes_enabled: true,
        ..Settings::default()
    });
    let started = Instant::now();
    while w
        .practitioners
        .get_opt("alice-smith")
        .await
        .unwrap()
        .is_some()
    {
        assert!(
            started.elapsed() < WAIT,
            "object not released after writes were enabled"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert_eq!(live(&w, "1234567893").await["active"], false);
    wait_event(&w, "Deactivated").await;
}

/// Scenario 8: The API server rejects schema violations; a Luhn-invalid NPI becomes InvalidSpec.
async fn invalid_manifests(cp: &ControlPlane) {
    let w = world(cp, "s8-invalid", SandboxConfig::default(), |_| {}).await;
    let _op = Operator::start(cp, &w.ns, &[]);
    let ar = ApiResource::erase::<EpicPractitioner>(&());
    let api: Api<DynamicObject> = Api::namespaced_with(w.client.clone(), &w.ns, &ar);
    for (name, spec, needle) in [
        (
            "npi-pattern",
            json!({"connectionRef": {"name": "epic"}, "npi": "12345"}),
            "npi",
        ),
        (
            "missing-family",
            json!({"connectionRef": {"name": "epic"}, "npi": "1234567893", "name": {"given": ["A"]}}),
            "family",
        ),
        (
            "bad-policy",
            json!({"connectionRef": {"name": "epic"}, "npi": "1234567893", "managementPolicy": "Overwrite"}),
            "managementPolicy",
        ),
        (
            "bad-telecom",
            json!({"connectionRef": {"name": "epic"}, "npi": "1234567893", "telecom": [{"system": "carrier-pigeon", "value": "x"}]}),
            "system",
        ),
    ] {
        let obj: DynamicObject = serde_json::from_value(json!({
            "apiVersion": "epic-operator.dev/v1alpha1", "kind": "EpicPractitioner",
            "metadata": {"name": name}, "spec": spec
        }))
        .unwrap();
        match api.create(&PostParams::default(), &obj).await {
            Err(kube::Error::Api(e)) => {
                assert_eq!(e.code, 422, "{name}: {e:?}");
                assert!(e.message.contains(needle), "{name}: {}", e.message);
            }
            other => panic!("{name}: expected a 422, got {other:?}"),
        }
    }
    let mut spec = example("alice-smith.yaml");
    spec.npi = "1234567890".into();
    create(&w, "bad-check-digit", spec).await;
    let p = wait_for(&w, "bad-check-digit", "InvalidSpec", |p| {
        is(p, "Synced", "False", "InvalidSpec")
    })
    .await;
    assert!(condition(&p, "Synced").unwrap().message.contains("Luhn"));
    assert_eq!(
        stats(&w).await["search"],
        0,
        "nothing sent to Epic for an invalid spec"
    );
}

/// Scenario 9: A wrong key and a scope not approved: the connection and its practitioners say so, with
/// the OAuth error text.
async fn wrong_key_and_wrong_scope(cp: &ControlPlane) {
    let w = world(cp, "s9-wrong-key", SandboxConfig::default(), |_| {}).await;
    let (_, other_pem) = epic_operator::auth::generate_key(Algorithm::RS384, DEV_KEY_ID).unwrap();
    let secrets: Api<Secret> = Api::namespaced(cp.admin.clone(), &w.ns);
    secrets
        .patch(
            "epic-key",
            &PatchParams::default(),
            &Patch::Merge(&json!({"stringData": {"private-key.pem": other_pem}})),
        )
        .await
        .unwrap();
    let w2 = world(cp, "s9-wrong-scope", SandboxConfig::default(), |c| {
        c.scopes = Some(vec![
            "system/Practitioner.read".into(),
            "system/Observation.read".into(),
        ])
    })
    .await;
    let _op1 = Operator::start(cp, &w.ns, &[]);
    let _op2 = Operator::start(cp, &w2.ns, &[]);
    create(&w, "alice-smith", example("alice-smith.yaml")).await;
    create(&w2, "alice-smith", example("alice-smith.yaml")).await;
    let p = wait_for(&w, "alice-smith", "Unauthorized", |p| {
        is(p, "Synced", "False", "Unauthorized")
    })
    .await;
    assert!(
        condition(&p, "Synced")
            .unwrap()
            .message
            .contains("invalid_client"),
        "{:?}",
        condition(&p, "Synced")
    );
    let p = wait_for(&w2, "alice-smith", "InvalidScope", |p| {
        is(p, "Synced", "False", "InvalidScope")
    })
    .await;
    assert!(
        condition(&p, "Synced")
            .unwrap()
            .message
            .contains("not approved"),
        "{:?}",
        condition(&p, "Synced")
    );
    for (world, reason) in [(&w, "Unauthorized"), (&w2, "InvalidScope")] {
        let started = Instant::now();
        loop {
            let c = world.connections.get("epic").await.unwrap();
            let ready = c
                .status
                .as_ref()
                .and_then(|s| s.conditions.iter().find(|c| c.type_ == "Ready").cloned());
            if let Some(r) = ready.filter(|r| r.reason == reason) {
                assert!(
                    r.message.contains("invalid_client") || r.message.contains("invalid_scope"),
                    "{}",
                    r.message
                );
                break;
            }
            assert!(
                started.elapsed() < WAIT,
                "connection never showed {reason}: {:?}",
                c.status
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
}

/// Scenario 10: The operator is killed mid-flight and restarted: state converges, no write twice.
async fn restart_mid_flight_writes_once(cp: &ControlPlane) {
    let n = 12;
    let w = world(
        cp,
        "s10-restart",
        SandboxConfig {
            generate: n,
            ..writable()
        },
        |_| {},
    )
    .await;
    for i in 0..n {
        let spec: EpicPractitionerSpec = serde_json::from_value(json!({
            "connectionRef": {"name": "epic"}, "npi": npi_from_prefix(200_000_000 + i as u32), "active": false
        }))
        .unwrap();
        create(&w, &format!("synthetic-{i}"), spec).await;
    }
    // Leases live in the operator's own namespace (the only place its RBAC allows them).
    let lease = [
        "--leader-election",
        "--lease-namespace",
        "epic-system",
        "--lease-name",
        "s10-restart",
    ];
    let mut first = Operator::start(cp, &w.ns, &lease);
    let started = Instant::now();
    while stats(&w).await["update"].as_u64().unwrap_or(0) == 0 {
        assert!(started.elapsed() < WAIT, "no write before the restart");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    first.kill();
    let _second = Operator::start(cp, &w.ns, &lease);
    for i in 0..n {
        wait_for(&w, &format!("synthetic-{i}"), "Ready after restart", |p| {
            is(p, "Ready", "True", "Ready")
        })
        .await;
    }
    assert_eq!(
        stats(&w).await["update"].as_u64(),
        Some(n as u64),
        "each record written exactly once"
    );
}

/// Scenario 11: The pause annotation stops writes until removed.
async fn pause_stops_writes(cp: &ControlPlane) {
    let w = world(cp, "s11-pause", writable(), |_| {}).await;
    let _op = Operator::start(cp, &w.ns, &[]);
    let mut p = EpicPractitioner::new("bob-jones", example("bob-jones.yaml"));
    p.metadata.annotations = Some(
        [(
            epic_operator::crd::PAUSED_ANNOTATION.to_string(),
            "true".to_string(),
        )]
        .into(),
    );
    w.practitioners
        .create(&PostParams::default(), &p)
        .await
        .unwrap();
    wait_for(&w, "bob-jones", "Paused", |p| {
        is(p, "Synced", "False", "Paused")
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let st = stats(&w).await;
    // The connection's own walks (Practitioner and PractitionerRole, one page each) run;
    // the paused practitioner is neither read nor written.
    assert_eq!(
        (
            st["update"].as_u64(),
            st["read"].as_u64(),
            st["page"].as_u64()
        ),
        (Some(0), Some(0), Some(0)),
        "paused: no writes, no reads of its own: {st}"
    );
    assert!(
        st["search"].as_u64().unwrap_or(99) <= 2,
        "paused: only the connection's walks search: {st}"
    );
    annotate(&w, "bob-jones", epic_operator::crd::PAUSED_ANNOTATION, None).await;
    wait_for(&w, "bob-jones", "Ready after unpausing", |p| {
        is(p, "Ready", "True", "Ready")
    })
    .await;
    assert_eq!(stats(&w).await["update"], 1);
}

/// The Helm chart rendered with `values` (Helm's Go SDK through scripts/helm_render.py).
fn render_chart(values: &Value, release: &str, namespace: &str) -> std::process::Output {
    let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let out = Command::new(helm_python())
        .arg(repo.join("scripts/helm_render.py"))
        .arg(repo.join("charts/epic-operator"))
        .arg(values.to_string())
        .args([release, namespace])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "render: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// `kubectl auth can-i VERB RESOURCE -n NS` as the identity of `kubeconfig`.
fn can_i(kubeconfig: &Path, verb: &str, resource: &str, ns: &str) -> bool {
    let out = Command::new(kubectl())
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .args(["auth", "can-i", verb, resource, "-n", ns])
        .output()
        .expect("kubectl auth can-i");
    let answer = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert!(
        answer == "yes" || answer == "no",
        "kubectl auth can-i {verb} {resource} -n {ns}: {answer} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    answer == "yes"
}

fn kubectl() -> PathBuf {
    let real = Command::new("bash")
        .args(["-c", "readlink -f \"$(command -v kubectl)\""])
        .output()
        .expect("bash");
    let real = PathBuf::from(String::from_utf8_lossy(&real.stdout).trim());
    assert!(
        real.is_file(),
        "kubectl is needed for the packaging dry-run: install kubectl (the google-cloud-cli packages ship it)"
    );
    // The client closest to the 1.20 test server, when the machine has it.
    let closest = real.with_file_name("kubectl.1.27");
    if closest.is_file() { closest } else { real }
}

// The fault suite (after the macro it uses).
mod faults;
