//! Scenario: an EpicConnection behind an internal CA that requires mutual TLS, its CA and
//! client certificate in Secrets; the operator reaches it, and the connections missing either
//! say which field fixes them.

use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Secret;
use kube::Api;
use kube::api::{ObjectMeta, PostParams};
use serde_json::json;

use super::cluster::ControlPlane;
use super::net_support::{Ca, TlsServer, server_config};
use super::{Operator, WAIT};
use epic_operator::crd::{EpicConnection, EpicConnectionSpec};

fn secret(name: &str, kind: Option<&str>, entries: &[(&str, &str)]) -> Secret {
    Secret {
        metadata: ObjectMeta {
            name: Some(name.into()),
            ..ObjectMeta::default()
        },
        type_: kind.map(str::to_string),
        string_data: Some(
            entries
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        ),
        ..Secret::default()
    }
}

/// The Ready condition of a connection once `pred` holds for its status and message:
/// (status, "reason: message").
async fn ready_when(
    api: &Api<EpicConnection>,
    name: &str,
    pred: impl Fn(bool, &str) -> bool,
) -> (bool, String) {
    let started = Instant::now();
    let mut last = (false, String::new());
    while started.elapsed() < WAIT {
        if let Ok(c) = api.get(name).await
            && let Some(r) = c
                .status
                .as_ref()
                .and_then(|s| s.conditions.iter().find(|c| c.type_ == "Ready"))
        {
            last = (
                format!("{:?}", r.status) == "True",
                format!("{}: {}", r.reason, r.message),
            );
            if pred(last.0, &r.message) {
                return last;
            }
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    panic!("{name}: timed out; last Ready: {last:?}");
}

pub async fn an_internal_ca_and_mutual_tls_from_secrets(cp: &ControlPlane) {
    let ns = cp.namespace("s-tls").await;
    let ca = Ca::new("Hospital Internal CA");
    let clients = Ca::new("Hospital Client CA");
    let server = TlsServer::start(
        server_config(&ca.leaf(&["127.0.0.1"]), Some(&clients)),
        true,
    )
    .await;
    let (_, key_pem) =
        epic_operator::auth::generate_key(epic_operator::crd::Algorithm::RS384, "k").unwrap();
    let client_cert = clients.leaf(&["epic-operator"]);
    let secrets: Api<Secret> = Api::namespaced(cp.admin.clone(), &ns);
    for s in [
        secret("epic-key", None, &[("private-key.pem", &key_pem)]),
        secret("hospital-ca", None, &[("ca.crt", &ca.pem)]),
        secret(
            "epic-client",
            Some("kubernetes.io/tls"),
            &[
                ("tls.crt", &client_cert.cert_pem),
                ("tls.key", &client_cert.key_pem),
            ],
        ),
    ] {
        secrets.create(&PostParams::default(), &s).await.unwrap();
    }
    let connections: Api<EpicConnection> = Api::namespaced(cp.admin.clone(), &ns);
    // The operator's own --ca-file (chart value caBundle): a second CA, trusted by every
    // connection, alone or together with a connection's client certificate.
    let wide = Ca::new("Hospital-wide CA");
    let wide_file = cp.dir.join(format!("{ns}-wide-ca.crt"));
    std::fs::write(&wide_file, &wide.pem).unwrap();
    let wide_server = TlsServer::start(server_config(&wide.leaf(&["127.0.0.1"]), None), true).await;
    let wide_mtls = TlsServer::start(
        server_config(&wide.leaf(&["127.0.0.1"]), Some(&clients)),
        true,
    )
    .await;
    let spec = |base: &str, trust: serde_json::Value| -> EpicConnectionSpec {
        let mut v = json!({
            "fhirBaseUrl": format!("{base}/api/FHIR/R4"),
            "clientId": "c",
            "keyId": "k",
            "privateKeySecretRef": {"name": "epic-key", "key": "private-key.pem"},
            "resyncInterval": "1h",
        });
        v.as_object_mut()
            .unwrap()
            .extend(trust.as_object().unwrap().clone());
        serde_json::from_value(v).unwrap()
    };
    let one = server.url();
    let (two, three) = (wide_server.url(), wide_mtls.url());
    for (name, base, trust) in [
        (
            "trusted",
            &one,
            json!({"caSecretRef": {"name": "hospital-ca"}, "clientCertificateSecretRef": {"name": "epic-client"}}),
        ),
        ("untrusted", &one, json!({})),
        (
            "no-client-cert",
            &one,
            json!({"caSecretRef": {"name": "hospital-ca"}}),
        ),
        (
            "missing-ca",
            &one,
            json!({"caSecretRef": {"name": "nowhere"}}),
        ),
        ("operator-ca", &two, json!({})),
        (
            "operator-ca-and-client-cert",
            &three,
            json!({"clientCertificateSecretRef": {"name": "epic-client"}}),
        ),
    ] {
        connections
            .create(
                &PostParams::default(),
                &EpicConnection::new(name, spec(base, trust)),
            )
            .await
            .unwrap();
    }
    let _op = Operator::start(cp, &ns, &["--ca-file", wide_file.to_str().unwrap()]);

    let (ok, message) = ready_when(&connections, "trusted", |ok, _| ok).await;
    assert!(ok, "{message}");
    // Each waits for the message naming its fix, not for the first failure: on two loaded
    // cores a handshake can outlast the connect timeout once, and the connection controller
    // tries again (the first message then says "no answer in time", which is true).
    let (_, message) = ready_when(&connections, "untrusted", |ok, m| {
        !ok && m.contains("spec.caBundle")
    })
    .await;
    assert!(
        message.starts_with("InvalidConnection: ")
            && message.contains("spec.caBundle")
            && !message.contains("spec.tokenUrl"),
        "{message}"
    );
    let (_, message) = ready_when(&connections, "no-client-cert", |ok, m| {
        !ok && m.contains("spec.clientCertificateSecretRef")
    })
    .await;
    assert!(
        message.starts_with("InvalidConnection: ")
            && message.contains("spec.clientCertificateSecretRef"),
        "{message}"
    );
    let (_, message) = ready_when(&connections, "missing-ca", |ok, m| {
        !ok && m.contains("Secret nowhere")
    })
    .await;
    assert!(message.contains("Secret nowhere"), "{message}");
    for name in ["operator-ca", "operator-ca-and-client-cert"] {
        let (ok, message) = ready_when(&connections, name, |ok, _| ok).await;
        assert!(ok, "{name}: {message}");
    }
    assert!(wide_server.requests() >= 3 && wide_mtls.requests() >= 3);
}
