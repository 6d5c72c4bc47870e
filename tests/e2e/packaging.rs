//! The packaging, applied to the real API server: the chart (default and non-default values,
//! among them the JWK Set Ingress and managed keys), the kustomize base and its opt-in
//! managed-keys RBAC with `kubectl apply --dry-run=server`.

use std::path::PathBuf;
use std::process::{Command, Stdio};

use serde_json::json;

use super::cluster::ControlPlane;
use super::{kubectl, render_chart};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn packaging_applies_to_the_api_server() {
    applies(&ControlPlane::shared().await).await;
}

/// The chart (default and non-default values) and the kustomize base, applied with
/// `kubectl apply --dry-run=server` to this API server.
async fn applies(cp: &ControlPlane) {
    cp.namespace("epic-system").await;
    let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let kubectl = kubectl();
    // The chart's namespaced mode renders a Role in the watched namespace: it must exist.
    cp.namespace("team-a").await;
    for values in [
        json!({}),
        json!({"replicaCount": 2, "watchNamespace": "team-a", "networkPolicy": {"enabled": true}, "metrics": {"port": 9090}}),
        // The JWK Set behind an Ingress, managed keys (Secret writes) and the NetworkPolicy
        // admitting the jwks port from the Ingress controller's namespace.
        json!({
            "jwks": {"port": 8443, "ingress": {
                "enabled": true,
                "className": "nginx",
                "host": "keys.example.org",
                "tls": {"secretName": "keys-tls"},
                "annotations": {"cert-manager.io/cluster-issuer": "letsencrypt"}
            }},
            "keyRotation": {"managed": true},
            "networkPolicy": {"enabled": true, "jwksFrom": [
                {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "ingress-nginx"}}}
            ]}
        }),
        json!({"jwks": {"enabled": false}, "keyRotation": {"managed": true}, "watchNamespace": "team-a"}),
        // Day two: replicas with a disruption budget and spread, a priority class, OpenShift
        // (no fixed UID), CRDs left out or not kept, text logs, no user roles or helm test.
        json!({"replicaCount": 3, "priorityClassName": "system-cluster-critical", "openshift": true}),
        json!({"crds": {"install": false}, "logFormat": "text", "rbac": {"aggregateToDefaultRoles": false}, "helmTest": {"enabled": false}}),
        json!({"crds": {"keep": false}, "replicaCount": 2, "topologySpreadConstraints": [
            {"maxSkew": 1, "topologyKey": "topology.kubernetes.io/zone", "whenUnsatisfiable": "DoNotSchedule",
             "labelSelector": {"matchLabels": {"app.kubernetes.io/name": "epic-operator"}}}
        ]}),
    ] {
        let out = render_chart(&values, "epic", "epic-system");
        let (crds, rest) = for_this_server(&out.stdout);
        // As for the kustomize base below: the CRDs are validated by the server only.
        if !crds.is_empty() {
            dry_run(&kubectl, cp, &crds, false);
        }
        dry_run(&kubectl, cp, &rest, true);
    }
    let kustomized = Command::new(&kubectl)
        .args(["kustomize"])
        .arg(repo.join("config"))
        .output()
        .unwrap();
    assert!(
        kustomized.status.success(),
        "kustomize: {}",
        String::from_utf8_lossy(&kustomized.stderr)
    );
    // Client-side validation uses the 1.20 server's OpenAPI, which predates the CEL rule in the
    // CRD; the server itself ignores the rule, so validate there only.
    dry_run(&kubectl, cp, &kustomized.stdout, false);
    // The opt-in managed-keys RBAC, applied on top of the base.
    let managed = std::fs::read(repo.join("config/rbac/managed_keys_role.yaml")).unwrap();
    dry_run(&kubectl, cp, &managed, true);
}

/// The test API server is 1.20, which serves PodDisruptionBudget as policy/v1beta1 only (the
/// chart targets 1.25+, where policy/v1 is the only one); the fields the chart sets are the
/// same in both. Returns the CRDs and the rest apart.
fn for_this_server(manifests: &[u8]) -> (Vec<u8>, Vec<u8>) {
    let text = String::from_utf8_lossy(manifests).replace(
        "apiVersion: policy/v1\nkind: PodDisruptionBudget",
        "apiVersion: policy/v1beta1\nkind: PodDisruptionBudget",
    );
    let (mut crds, mut rest) = (String::new(), String::new());
    for doc in text.split("\n---\n") {
        let into = if doc.contains("\nkind: CustomResourceDefinition\n") {
            &mut crds
        } else {
            &mut rest
        };
        into.push_str("\n---\n");
        into.push_str(doc);
    }
    (crds.into_bytes(), rest.into_bytes())
}

fn dry_run(kubectl: &PathBuf, cp: &ControlPlane, manifests: &[u8], validate: bool) {
    use std::io::Write;
    let mut child = Command::new(kubectl)
        .arg("--kubeconfig")
        .arg(&cp.admin_kubeconfig)
        .args(["apply", "--dry-run=server", "-f", "-"])
        .arg(format!("--validate={validate}"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("kubectl");
    child.stdin.take().unwrap().write_all(manifests).unwrap();
    let out = child.wait_with_output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "kubectl apply --dry-run=server failed:\n{text}"
    );
    assert!(text.contains("(server dry run)"), "{text}");
}
