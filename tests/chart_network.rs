//! The chart's hospital-network values (rendered by Helm's own Go SDK): `caBundle` becomes a
//! ConfigMap mounted read-only and passed as --ca-file, `extraEnv` carries the egress proxy,
//! `extraVolumes`/`extraVolumeMounts` reach the pod, and a wrong CA bundle is refused.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod chart_support;
mod net_support;

use chart_support::{refusal, render};
use serde_json::{Value, json};

fn pod(docs: &[Value]) -> &Value {
    &docs.iter().find(|d| d["kind"] == "Deployment").unwrap()["spec"]["template"]
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn defaults_add_no_ca_no_volumes_and_no_extra_env() {
    let docs = render(&json!({}));
    assert!(!docs.iter().any(|d| {
        d["kind"] == "ConfigMap"
            && d["metadata"]["name"]
                .as_str()
                .unwrap_or("")
                .ends_with("-ca-bundle")
    }));
    let pod = pod(&docs);
    let c = &pod["spec"]["containers"][0];
    assert!(
        !strings(&c["args"])
            .iter()
            .any(|a| a.starts_with("--ca-file"))
    );
    assert!(c["volumeMounts"].is_null() && pod["spec"]["volumes"].is_null());
    let env: Vec<&str> = c["env"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap())
        .collect();
    assert_eq!(env, ["RUST_LOG", "POD_NAME", "POD_NAMESPACE"]);
}

#[test]
fn ca_bundle_proxy_env_and_extra_volumes_reach_the_pod() {
    let ca = net_support::Ca::new("Hospital Internal CA");
    let docs = render(&json!({
        "caBundle": ca.pem,
        "extraEnv": [
            {"name": "HTTPS_PROXY", "value": "http://proxy.hospital.internal:3128"},
            {"name": "NO_PROXY", "value": "kubernetes.default.svc,.svc,.cluster.local"},
        ],
        "extraVolumes": [{"name": "trust", "configMap": {"name": "hospital-trust"}}],
        "extraVolumeMounts": [{"name": "trust", "mountPath": "/etc/trust", "readOnly": true}],
    }));
    let map = docs
        .iter()
        .find(|d| {
            d["kind"] == "ConfigMap" && d["metadata"]["name"] == "epic-epic-operator-ca-bundle"
        })
        .expect("the CA bundle ConfigMap");
    let pem = map["data"]["ca.crt"].as_str().unwrap();
    assert_eq!(pem.trim(), ca.pem.trim());
    // What the chart mounts is what the operator accepts at start-up.
    epic_operator::http::client_with(&epic_operator::http::TlsOptions {
        extra_roots: vec![epic_operator::http::PemSource::new("ca.crt", pem)],
        client_certificate: None,
    })
    .unwrap();

    let template = pod(&docs);
    let c = &template["spec"]["containers"][0];
    assert!(
        strings(&c["args"]).contains(&"--ca-file=/etc/epic-operator/ca/ca.crt".to_string()),
        "{}",
        c["args"]
    );
    let mounts = c["volumeMounts"].as_array().unwrap();
    assert!(mounts.iter().any(|m| m["name"] == "ca-bundle"
        && m["mountPath"] == "/etc/epic-operator/ca"
        && m["readOnly"] == true));
    assert!(
        mounts
            .iter()
            .any(|m| m["name"] == "trust" && m["mountPath"] == "/etc/trust")
    );
    let volumes = template["spec"]["volumes"].as_array().unwrap();
    assert!(
        volumes.iter().any(|v| v["name"] == "ca-bundle"
            && v["configMap"]["name"] == "epic-epic-operator-ca-bundle")
    );
    assert!(volumes.iter().any(|v| v["name"] == "trust"));
    let env = c["env"].as_array().unwrap();
    assert!(
        env.iter()
            .any(|e| e["name"] == "HTTPS_PROXY"
                && e["value"] == "http://proxy.hospital.internal:3128")
    );
    assert!(env.iter().any(|e| e["name"] == "NO_PROXY"));
    assert!(
        env.iter().any(|e| e["name"] == "POD_NAMESPACE"),
        "standard env kept"
    );
    // A new CA restarts the pods (the operator reads --ca-file at start).
    let checksum = &template["metadata"]["annotations"]["checksum/ca-bundle"];
    assert!(
        checksum.as_str().is_some_and(|s| s.len() == 64),
        "{checksum}"
    );
    let other = render(&json!({"caBundle": net_support::Ca::new("Other").pem}));
    assert_ne!(
        &pod(&other)["metadata"]["annotations"]["checksum/ca-bundle"],
        checksum
    );
}

#[test]
fn a_wrong_ca_bundle_and_malformed_extras_are_refused() {
    let e = refusal(&json!({"caBundle": "not a certificate"}));
    assert!(e.contains("caBundle must hold PEM CA certificates"), "{e}");
    let with_key = format!(
        "{}-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
        net_support::Ca::new("CA").pem
    );
    let e = refusal(&json!({ "caBundle": with_key }));
    assert!(e.contains("private key"), "{e}");
    refusal(&json!({"extraEnv": [{"value": "no name"}]}));
    refusal(&json!({"extraEnv": {"HTTPS_PROXY": "http://p:3128"}}));
    refusal(&json!({"extraVolumeMounts": [{"name": "trust"}]}));
    refusal(&json!({"caBundle": 42}));
}
