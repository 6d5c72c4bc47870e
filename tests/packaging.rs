//! The Helm chart (linted and rendered by Helm's own Go SDK) and the kustomize base: the same
//! least-privilege RBAC, the hardening the issue asks for, and leader election with replicas.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::process::Command;

use serde_json::{Value, json};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Python with helm-python-sdk, prepared by scripts/ensure-helm.sh.
fn helm_python() -> String {
    let out = Command::new("bash")
        .arg(repo().join("scripts/ensure-helm.sh"))
        .output()
        .expect("run scripts/ensure-helm.sh");
    assert!(
        out.status.success(),
        "the chart tests need helm-python-sdk from PyPI; scripts/ensure-helm.sh failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Renders the chart; returns the documents.
pub fn render(values: &Value) -> Vec<Value> {
    let out = Command::new(helm_python())
        .arg(repo().join("scripts/helm_render.py"))
        .arg(repo().join("charts/epic-operator"))
        .arg(values.to_string())
        .args(["epic", "epic-system"])
        .output()
        .expect("render");
    assert!(
        out.status.success(),
        "helm lint/render failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_saphyr::from_multiple::<Value>(&String::from_utf8(out.stdout).unwrap())
        .unwrap()
        .into_iter()
        .filter(|d| !d.is_null())
        .collect()
}

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
        "image": {"repository": "registry.example.org/epic-operator", "tag": "1.2.3"}
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
    let out = Command::new(helm_python())
        .arg(repo().join("scripts/helm_render.py"))
        .arg(repo().join("charts/epic-operator"))
        .arg(json!({"driftDetection": "sometimes"}).to_string())
        .args(["epic", "epic-system"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("driftDetection"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
