//! The Helm chart (linted and rendered by Helm's own Go SDK) and the kustomize base: the same
//! least-privilege RBAC, the hardening the issue asks for, and leader election with replicas.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod chart_support;

use std::process::Command;

use chart_support::{documents, helm, refusal, render, repo};
use serde_json::{Value, json};

fn find<'a>(docs: &'a [Value], kind: &str) -> Option<&'a Value> {
    docs.iter().find(|d| d["kind"] == kind)
}

fn rules(doc: &Value) -> Value {
    doc["rules"].clone()
}

#[test]
fn default_values_render_a_hardened_least_privilege_operator() {
    let docs = render(&json!({}));
    let kinds: Vec<&str> = docs.iter().map(|d| d["kind"].as_str().unwrap()).collect();
    assert_eq!(
        kinds
            .iter()
            .filter(|k| **k == "ServiceMonitor" || **k == "NetworkPolicy")
            .count(),
        0,
        "{kinds:?}"
    );
    let deploy = find(&docs, "Deployment").unwrap();
    let pod = &deploy["spec"]["template"]["spec"];
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    let c = &pod["containers"][0];
    assert_eq!(c["securityContext"]["readOnlyRootFilesystem"], true);
    assert_eq!(c["securityContext"]["allowPrivilegeEscalation"], false);
    assert_eq!(c["securityContext"]["capabilities"]["drop"], json!(["ALL"]));
    assert_eq!(c["livenessProbe"]["httpGet"]["path"], "/healthz");
    assert_eq!(c["readinessProbe"]["httpGet"]["path"], "/readyz");
    assert!(
        c["resources"]["limits"]["memory"].is_string()
            && c["resources"]["requests"]["cpu"].is_string()
    );
    let args: Vec<&str> = c["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    assert!(
        !args.contains(&"--leader-election"),
        "one replica: no leader election: {args:?}"
    );
    // The chart's RBAC is exactly the kustomize base's (which the e2e operator runs with).
    let base: Value = serde_saphyr::from_str(
        &std::fs::read_to_string(repo().join("config/rbac/role.yaml")).unwrap(),
    )
    .unwrap();
    assert_eq!(rules(find(&docs, "ClusterRole").unwrap()), rules(&base));
    let binding = find(&docs, "ClusterRoleBinding").unwrap();
    assert_eq!(
        binding["subjects"][0]["name"],
        find(&docs, "ServiceAccount").unwrap()["metadata"]["name"]
    );
}

#[test]
fn non_default_values_enable_leader_election_monitoring_and_network_policy() {
    let docs = render(&json!({
        "replicaCount": 2,
        "watchNamespace": "team-a",
        "driftDetection": "per-object",
        "metrics": {"port": 9090, "serviceMonitor": {"enabled": true, "labels": {"release": "prom"}}},
        "networkPolicy": {"enabled": true, "egressCidrs": ["192.0.2.0/24"]},
        "image": {"repository": "registry.example.org/epic-operator", "tag": "1.2.3"},
        "allowedTokenHosts": ["login.epic.example.org"]
    }));
    let c = &find(&docs, "Deployment").unwrap()["spec"]["template"]["spec"]["containers"][0];
    let args: Vec<&str> = c["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    for a in [
        "--leader-election",
        "--namespace=team-a",
        "--drift-detection=per-object",
        "--metrics-addr=0.0.0.0:9090",
        "--allowed-token-host=login.epic.example.org",
    ] {
        assert!(args.contains(&a), "{a} missing from {args:?}");
    }
    assert_eq!(c["image"], "registry.example.org/epic-operator:1.2.3");
    let sm = find(&docs, "ServiceMonitor").unwrap();
    assert_eq!(sm["metadata"]["labels"]["release"], "prom");
    let np = find(&docs, "NetworkPolicy").unwrap();
    assert_eq!(
        np["spec"]["egress"][1]["to"][0]["ipBlock"]["cidr"],
        "192.0.2.0/24"
    );
}

#[test]
fn values_outside_the_schema_are_refused() {
    let out = helm(&json!({"driftDetection": "sometimes"}), false);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("driftDetection"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Rules that grant `verb` on `resource` (any group).
fn grants(doc: &Value, resource: &str, verb: &str) -> bool {
    doc["rules"].as_array().into_iter().flatten().any(|r| {
        r["resources"]
            .as_array()
            .is_some_and(|a| a.iter().any(|x| x == resource))
            && r["verbs"]
                .as_array()
                .is_some_and(|a| a.iter().any(|x| x == verb || x == "*"))
    })
}

fn roles(docs: &[Value]) -> Vec<&Value> {
    docs.iter()
        .filter(|d| d["kind"] == "Role" || d["kind"] == "ClusterRole")
        .collect()
}

fn assert_least_privilege(docs: &[Value], release_ns: &str) {
    for role in roles(docs) {
        for verb in ["list", "watch", "delete"] {
            assert!(!grants(role, "secrets", verb), "{verb} on Secrets: {role}");
        }
        if grants(role, "leases", "update") {
            assert_eq!(role["kind"], "Role", "Leases only through a Role: {role}");
            assert_eq!(
                role["metadata"]["namespace"], release_ns,
                "Leases only in the operator's own namespace"
            );
        }
    }
}

#[test]
fn rbac_is_cluster_wide_or_per_namespace_and_never_lists_secrets_or_touches_foreign_leases() {
    let base: Value = serde_saphyr::from_str(
        &std::fs::read_to_string(repo().join("config/rbac/role.yaml")).unwrap(),
    )
    .unwrap();
    // Cluster-wide mode (no watchNamespace).
    let docs = render(&json!({}));
    assert_least_privilege(&docs, "epic-system");
    let cluster_role = find(&docs, "ClusterRole").unwrap();
    assert_eq!(rules(cluster_role), rules(&base));
    assert!(grants(cluster_role, "secrets", "get"));
    assert!(!grants(cluster_role, "leases", "update"));

    // Namespaced mode: a Role and RoleBinding in the watched namespace, nothing cluster-wide.
    let docs = render(&json!({"watchNamespace": "team-a"}));
    assert_least_privilege(&docs, "epic-system");
    assert!(find(&docs, "ClusterRole").is_none());
    assert!(find(&docs, "ClusterRoleBinding").is_none());
    let role = docs
        .iter()
        .find(|d| d["kind"] == "Role" && d["metadata"]["namespace"] == "team-a")
        .expect("a Role in team-a");
    assert_eq!(rules(role), rules(&base));
    let binding = docs
        .iter()
        .find(|d| d["kind"] == "RoleBinding" && d["metadata"]["namespace"] == "team-a")
        .expect("a RoleBinding in team-a");
    assert_eq!(binding["subjects"][0]["namespace"], "epic-system");

    // The kustomize base: the same ClusterRole, Leases in epic-system only.
    let docs = kustomize(&repo().join("config"));
    assert_least_privilege(&docs, "epic-system");
    assert_eq!(rules(find(&docs, "ClusterRole").unwrap()), rules(&base));
    assert!(
        roles(&docs).iter().any(|r| grants(r, "leases", "update")),
        "leader election still has its Lease rights"
    );
}

fn container(docs: &[Value]) -> &Value {
    &find(docs, "Deployment").unwrap()["spec"]["template"]["spec"]["containers"][0]
}

fn args(docs: &[Value]) -> Vec<String> {
    container(docs)["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap().to_string())
        .collect()
}

/// The named port of a container or Service port list.
fn port<'a>(ports: &'a Value, name: &str) -> Option<&'a Value> {
    ports.as_array()?.iter().find(|p| p["name"] == name)
}

fn kustomize(dir: &std::path::Path) -> Vec<Value> {
    let out = Command::new("kubectl")
        .arg("kustomize")
        .arg(dir)
        .output()
        .expect("kubectl kustomize");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    documents(&out.stdout)
}

const SECRET_WRITES: [&str; 3] = ["create", "update", "patch"];

#[test]
fn the_jwks_listener_is_on_by_default_on_its_own_port_with_no_ingress_and_secrets_get_only() {
    let docs = render(&json!({}));
    let a = args(&docs);
    assert!(a.contains(&"--jwks-addr=0.0.0.0:8090".to_string()), "{a:?}");
    assert!(
        a.contains(&"--metrics-addr=0.0.0.0:8080".to_string()),
        "{a:?}"
    );
    assert!(
        !a.iter().any(|x| x.starts_with("--jwks-public-url")),
        "no public URL unless configured: {a:?}"
    );
    let p = port(&container(&docs)["ports"], "jwks").expect("container port jwks");
    assert_eq!(p["containerPort"], 8090);
    // The probes stay on the metrics listener.
    assert_eq!(
        container(&docs)["readinessProbe"]["httpGet"]["port"],
        "metrics"
    );
    let svc = find(&docs, "Service").unwrap();
    let sp = port(&svc["spec"]["ports"], "jwks").expect("Service port jwks");
    assert_eq!(
        (sp["port"].clone(), sp["targetPort"].clone()),
        (json!(8090), json!("jwks"))
    );
    assert!(port(&svc["spec"]["ports"], "metrics").is_some());
    // Every replica serves the keys: the Service selects all of the release's pods.
    assert_eq!(
        svc["spec"]["selector"],
        find(&docs, "Deployment").unwrap()["spec"]["selector"]["matchLabels"]
    );
    assert!(find(&docs, "Ingress").is_none());
    for role in roles(&docs) {
        for verb in SECRET_WRITES {
            assert!(
                !grants(role, "secrets", verb),
                "{verb} on Secrets by default: {role}"
            );
        }
    }

    // The kustomize base: the same listener and Service port, and Secrets get-only.
    let docs = kustomize(&repo().join("config"));
    let a = args(&docs);
    assert!(a.contains(&"--jwks-addr=0.0.0.0:8090".to_string()), "{a:?}");
    assert_eq!(
        port(&container(&docs)["ports"], "jwks").unwrap()["containerPort"],
        8090
    );
    let sp = port(&find(&docs, "Service").unwrap()["spec"]["ports"], "jwks").unwrap();
    assert_eq!(
        (sp["port"].clone(), sp["targetPort"].clone()),
        (json!(8090), json!("jwks"))
    );
    for role in roles(&docs) {
        for verb in SECRET_WRITES {
            assert!(
                !grants(role, "secrets", verb),
                "{verb} on Secrets in the base: {role}"
            );
        }
    }
}

#[test]
fn jwks_disabled_turns_the_listener_off_and_exposes_no_port() {
    let docs = render(&json!({
        "jwks": {"enabled": false},
        "networkPolicy": {"enabled": true}
    }));
    let a = args(&docs);
    assert!(a.contains(&"--jwks-addr=off".to_string()), "{a:?}");
    assert!(port(&container(&docs)["ports"], "jwks").is_none());
    assert!(port(&find(&docs, "Service").unwrap()["spec"]["ports"], "jwks").is_none());
    let ingress = find(&docs, "NetworkPolicy").unwrap()["spec"]["ingress"].clone();
    assert_eq!(
        ingress.as_array().unwrap().len(),
        1,
        "metrics only: {ingress}"
    );
    // An Ingress to a listener that is off is refused, as is a port shared with metrics.
    let e = refusal(
        &json!({"jwks": {"enabled": false, "ingress": {"enabled": true, "host": "keys.example.org"}}}),
    );
    assert!(e.contains("jwks.enabled"), "{e}");
    let e = refusal(&json!({"jwks": {"port": 8080}}));
    assert!(e.contains("jwks.port"), "{e}");
}

#[test]
fn the_jwks_ingress_routes_its_host_over_tls_to_the_services_jwks_port() {
    let docs = render(&json!({"jwks": {"ingress": {
        "enabled": true,
        "className": "nginx",
        "host": "keys.example.org",
        "tls": {"secretName": "keys-tls"},
        "annotations": {"cert-manager.io/cluster-issuer": "letsencrypt"}
    }}}));
    let ing = find(&docs, "Ingress").expect("an Ingress");
    assert_eq!(ing["apiVersion"], "networking.k8s.io/v1");
    assert_eq!(
        ing["metadata"]["annotations"]["cert-manager.io/cluster-issuer"],
        "letsencrypt"
    );
    let spec = &ing["spec"];
    assert_eq!(spec["ingressClassName"], "nginx");
    assert_eq!(
        spec["tls"],
        json!([{"hosts": ["keys.example.org"], "secretName": "keys-tls"}])
    );
    assert_eq!(spec["rules"].as_array().unwrap().len(), 1);
    let rule = &spec["rules"][0];
    assert_eq!(rule["host"], "keys.example.org");
    let paths = rule["http"]["paths"].as_array().unwrap();
    assert_eq!(paths.len(), 1, "the JWK Set only: {paths:?}");
    assert_eq!(paths[0]["path"], "/jwks");
    assert_eq!(paths[0]["pathType"], "Prefix");
    let backend = &paths[0]["backend"]["service"];
    let svc = find(&docs, "Service").unwrap();
    assert_eq!(backend["name"], svc["metadata"]["name"]);
    assert_eq!(backend["port"], json!({"name": "jwks"}));
    assert!(port(&svc["spec"]["ports"], "jwks").is_some());
    // The Ingress at the default path is the public base URL, unless one is given.
    let a = args(&docs);
    assert!(
        a.contains(&"--jwks-public-url=https://keys.example.org".to_string()),
        "{a:?}"
    );
    let a = args(&render(&json!({"jwks": {
        "publicUrl": "https://epic.example.org/keys/",
        "ingress": {"enabled": true, "host": "keys.example.org"}
    }})));
    assert!(
        a.contains(&"--jwks-public-url=https://epic.example.org/keys".to_string()),
        "{a:?}"
    );
    // Without a class or TLS Secret: the cluster's defaults, no tls section.
    let docs = render(&json!({"jwks": {"ingress": {"enabled": true, "host": "keys.example.org"}}}));
    let spec = &find(&docs, "Ingress").unwrap()["spec"];
    assert!(
        spec.get("ingressClassName").is_none() && spec.get("tls").is_none(),
        "{spec}"
    );

    // The host is required; the public URL is https.
    let e = refusal(&json!({"jwks": {"ingress": {"enabled": true}}}));
    assert!(e.contains("host"), "{e}");
    for url in [
        "http://keys.example.org",
        "https://keys.example.org/?x=1",
        "keys.example.org",
    ] {
        let e = refusal(&json!({"jwks": {"publicUrl": url}}));
        assert!(e.contains("publicUrl"), "{url}: {e}");
    }
}

#[test]
fn managed_keys_add_exactly_create_update_patch_on_secrets_and_nothing_else() {
    let base: Value = serde_saphyr::from_str(
        &std::fs::read_to_string(repo().join("config/rbac/role.yaml")).unwrap(),
    )
    .unwrap();
    let extra = json!({"apiGroups": [""], "resources": ["secrets"], "verbs": SECRET_WRITES});
    let mut expected = rules(&base);
    // Right after the get-only Secrets rule, as its own rule.
    let at = expected
        .as_array()
        .unwrap()
        .iter()
        .position(|r| r["resources"] == json!(["secrets"]))
        .unwrap();
    expected
        .as_array_mut()
        .unwrap()
        .insert(at + 1, extra.clone());
    for (values, kind) in [
        (json!({"keyRotation": {"managed": true}}), "ClusterRole"),
        (
            json!({"keyRotation": {"managed": true}, "watchNamespace": "team-a"}),
            "Role",
        ),
    ] {
        let docs = render(&values);
        assert_least_privilege(&docs, "epic-system");
        let role = docs
            .iter()
            .find(|d| d["kind"] == kind && !grants(d, "leases", "get"))
            .unwrap();
        assert_eq!(rules(role), expected, "{values}");
        for verb in SECRET_WRITES {
            assert!(grants(role, "secrets", verb), "{verb}: {role}");
        }
        for verb in ["list", "watch", "delete", "deletecollection"] {
            assert!(!grants(role, "secrets", verb), "{verb}: {role}");
        }
        // The leader-election Role gains nothing.
        let leases = docs.iter().find(|d| grants(d, "leases", "get")).unwrap();
        assert!(!grants(leases, "secrets", "get"));
    }

    // The kustomize equivalent: the same one rule, bound to the base's ServiceAccount, and
    // not in the base unless its line in config/kustomization.yaml is uncommented.
    let text = std::fs::read_to_string(repo().join("config/rbac/managed_keys_role.yaml")).unwrap();
    let docs: Vec<Value> = serde_saphyr::from_multiple(&text).unwrap();
    let role = find(&docs, "ClusterRole").unwrap();
    assert_eq!(rules(role), json!([extra]));
    let binding = find(&docs, "ClusterRoleBinding").unwrap();
    assert_eq!(binding["roleRef"]["name"], role["metadata"]["name"]);
    let sa: Value = serde_saphyr::from_str(
        &std::fs::read_to_string(repo().join("config/rbac/service_account.yaml")).unwrap(),
    )
    .unwrap();
    assert_eq!(binding["subjects"][0]["name"], sa["metadata"]["name"]);
    assert_eq!(
        binding["subjects"][0]["namespace"],
        sa["metadata"]["namespace"]
    );
    let kustomization = std::fs::read_to_string(repo().join("config/kustomization.yaml")).unwrap();
    assert!(
        kustomization.contains("# - rbac/managed_keys_role.yaml"),
        "{kustomization}"
    );
    let based = kustomize(&repo().join("config"));
    assert!(
        !based
            .iter()
            .any(|d| d["metadata"]["name"] == role["metadata"]["name"])
    );
}

#[test]
fn the_network_policy_admits_the_jwks_port_from_its_own_peers() {
    let docs = render(&json!({"networkPolicy": {"enabled": true}}));
    let ingress = find(&docs, "NetworkPolicy").unwrap()["spec"]["ingress"].clone();
    let jwks = ingress
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["ports"] == json!([{"port": 8090, "protocol": "TCP"}]))
        .unwrap_or_else(|| panic!("no rule for the jwks port: {ingress}"));
    assert!(
        jwks.get("from").is_none(),
        "empty jwksFrom: from anywhere: {jwks}"
    );

    let peer = json!({"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "ingress-nginx"}}});
    let scraper = json!({"podSelector": {"matchLabels": {"app": "prometheus"}}});
    let docs = render(&json!({
        "jwks": {"port": 8443},
        "networkPolicy": {"enabled": true, "jwksFrom": [peer], "metricsFrom": [scraper]}
    }));
    let ingress = find(&docs, "NetworkPolicy").unwrap()["spec"]["ingress"].clone();
    assert_eq!(
        ingress,
        json!([
            {"ports": [{"port": 8080, "protocol": "TCP"}], "from": [scraper]},
            {"ports": [{"port": 8443, "protocol": "TCP"}], "from": [peer]}
        ])
    );
}

#[test]
fn the_schema_refuses_unknown_and_mistyped_jwks_and_key_rotation_values() {
    for (values, needle) in [
        (json!({"jwks": {"listen": "0.0.0.0:8090"}}), "listen"),
        (
            json!({"jwks": {"ingress": {"tlsSecret": "x"}}}),
            "tlsSecret",
        ),
        (json!({"jwks": {"port": "8090"}}), "port"),
        (
            json!({"jwks": {"ingress": {"pathType": "prefix"}}}),
            "pathType",
        ),
        (json!({"keyRotation": {"managed": "yes"}}), "managed"),
        (
            json!({"keyRotation": {"rotateEvery": "90d"}}),
            "rotateEvery",
        ),
        (
            json!({"networkPolicy": {"jwksFrom": "anywhere"}}),
            "jwksFrom",
        ),
    ] {
        let e = refusal(&values);
        assert!(e.contains(needle), "{values}: {e}");
    }
}

/// Metric names a PromQL expression uses (words starting with `epic_operator_` or `process_`).
fn metric_names(expr: &str) -> Vec<String> {
    expr.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|w| w.starts_with("epic_operator_") || w.starts_with("process_"))
        .map(str::to_string)
        .collect()
}

/// Whether the operator exports this series name (histograms as _bucket/_count/_sum, counters
/// as _total), judged from the descriptors a fresh registry renders.
fn exported(name: &str, exposition: &str) -> bool {
    let base = ["_bucket", "_count", "_sum", "_total"]
        .iter()
        .find_map(|s| name.strip_suffix(s))
        .unwrap_or(name);
    exposition.lines().any(|l| {
        l.starts_with(&format!("# TYPE {base} ")) || l.starts_with(&format!("# TYPE {name} "))
    })
}

#[test]
fn alerts_and_dashboard_are_off_by_default_and_use_only_exported_metrics() {
    let defaults = render(&json!({}));
    assert!(find(&defaults, "PrometheusRule").is_none());
    assert!(!defaults.iter().any(|d| d["kind"] == "ConfigMap"));

    let docs = render(&json!({"metrics": {
        "prometheusRule": {"enabled": true, "driftHeldFor": "6h", "labels": {"release": "prom"}},
        "grafanaDashboard": {"enabled": true}
    }}));
    let exposition = exercised_metrics();
    let rule = find(&docs, "PrometheusRule").unwrap();
    assert_eq!(rule["metadata"]["labels"]["release"], "prom");
    let alerts = rule["spec"]["groups"][0]["rules"].as_array().unwrap();
    let names: Vec<&str> = alerts
        .iter()
        .map(|a| a["alert"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        vec![
            "EpicOperatorAbsent",
            "EpicOperatorNoLeader",
            "EpicOperatorWritesRefused",
            "EpicOperatorAuthenticationFailing",
            "EpicOperatorDriftHeld",
            "EpicOperatorRosterWalksFailing"
        ]
    );
    let drift = alerts
        .iter()
        .find(|a| a["alert"] == "EpicOperatorDriftHeld")
        .unwrap();
    assert_eq!(drift["for"], "6h");
    for a in alerts {
        let expr = a["expr"].as_str().unwrap();
        for m in metric_names(expr) {
            assert!(
                exported(&m, &exposition),
                "{}: {m} is not exported:\n{exposition}",
                a["alert"]
            );
        }
    }
    let cm = docs
        .iter()
        .find(|d| d["kind"] == "ConfigMap")
        .expect("dashboard ConfigMap");
    assert_eq!(cm["metadata"]["labels"]["grafana_dashboard"], "1");
    let dashboard: Value =
        serde_json::from_str(cm["data"]["epic-operator.json"].as_str().unwrap()).unwrap();
    let panels = dashboard["panels"].as_array().unwrap();
    assert!(panels.len() >= 8);
    for p in panels {
        for t in p["targets"].as_array().unwrap() {
            for m in metric_names(t["expr"].as_str().unwrap()) {
                assert!(
                    exported(&m, &exposition),
                    "panel {}: {m} is not exported",
                    p["title"]
                );
            }
        }
    }
}

/// What /metrics shows once every family has a sample (an empty family renders nothing).
fn exercised_metrics() -> String {
    use epic_operator::fhir::{RequestEvent, RequestKind};
    use epic_operator::operator::slim::CachedPractitioner;
    let m = std::sync::Arc::new(epic_operator::operator::Metrics::default());
    m.start_reconcile("EpicPractitioner").finish(None);
    let observe = m.fhir_observer("ns/epic");
    observe(RequestEvent {
        kind: RequestKind::Read,
        status: Some(200),
        elapsed: std::time::Duration::from_millis(5),
        attempt: 2,
    });
    m.tokens_sent("ns/epic", 1);
    m.roster_walk("ns/epic", false);
    m.roster_walk("ns/epic", true);
    m.ops.set_leader(true);
    m.ops.token_expiry("ns/epic", Some(chrono::Utc::now()));
    m.ops
        .write("ns/epic", &epic_operator::pipeline::WriteOutcome::Updated);
    let (store, _writer) = kube::runtime::reflector::store::<CachedPractitioner>();
    m.watch_store(store);
    m.render()
}
