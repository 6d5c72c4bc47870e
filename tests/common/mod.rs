//! Shared helpers for integration tests: an in-process sandbox and a client for it.
#![allow(dead_code)]

use std::sync::Arc;

use epic_operator::auth::{ClientKey, TokenSource};
use epic_operator::crd::Algorithm;
use epic_operator::fhir::{ConnectionSettings, FhirClient, RetryPolicy};
use epic_operator::http::client as http_client;
use epic_operator::sandbox::{DEV_CLIENT_ID, DEV_KEY_ID, Sandbox, SandboxConfig, Settings};

pub const EXAMPLES_SEED: &str = include_str!("../../examples/sandbox/seed.json");

pub async fn sandbox_with(config: SandboxConfig) -> Sandbox {
    Sandbox::start(config).await.expect("sandbox starts")
}

pub async fn sandbox() -> Sandbox {
    sandbox_with(SandboxConfig {
        seeds: vec![EXAMPLES_SEED.into()],
        ..SandboxConfig::default()
    })
    .await
}

pub async fn writable_sandbox() -> Sandbox {
    sandbox_with(SandboxConfig {
        seeds: vec![EXAMPLES_SEED.into()],
        settings: Settings {
            writes_enabled: true,
            ..Settings::default()
        },
        ..SandboxConfig::default()
    })
    .await
}

pub fn dev_key(s: &Sandbox) -> ClientKey {
    ClientKey::from_pem(
        s.dev_key_pem.as_deref().expect("dev key"),
        Algorithm::RS384,
        DEV_KEY_ID,
    )
    .expect("key")
}

pub fn scopes() -> Vec<String> {
    vec![
        "system/Practitioner.read".into(),
        "system/Practitioner.write".into(),
        "system/PractitionerRole.read".into(),
        "system/Patient.read".into(),
    ]
}

pub fn client_with(s: &Sandbox, scopes: Vec<String>, retry: RetryPolicy) -> FhirClient {
    let http = http_client().expect("http");
    let tokens = TokenSource::new(
        http.clone(),
        dev_key(s),
        DEV_CLIENT_ID,
        s.token_url(),
        scopes,
    )
    .expect("tokens");
    let mut settings = ConnectionSettings::new(s.fhir_base_url());
    settings.retry = retry;
    settings.requests_per_second = 1000;
    settings.burst = 1000;
    FhirClient::new(http, settings, Arc::new(tokens), None).expect("client")
}

pub fn client(s: &Sandbox) -> FhirClient {
    client_with(s, scopes(), fast_retry())
}

pub fn fast_retry() -> RetryPolicy {
    RetryPolicy {
        max_attempts: 4,
        base_delay: std::time::Duration::from_millis(10),
        max_delay: std::time::Duration::from_millis(50),
        max_elapsed: std::time::Duration::from_secs(5),
    }
}

pub async fn stats(s: &Sandbox) -> serde_json::Value {
    epic_operator::http::client()
        .unwrap()
        .get(format!("{}/stats", s.admin_url()))
        .send()
        .await
        .expect("stats")
        .json()
        .await
        .expect("json")
}

pub fn stat(v: &serde_json::Value, key: &str) -> u64 {
    v[key]
        .as_u64()
        .unwrap_or_else(|| panic!("no counter {key} in {v}"))
}

/// Every practitioner's id and NPIs, from the admin API.
pub async fn practitioners(s: &Sandbox) -> serde_json::Value {
    epic_operator::http::client()
        .unwrap()
        .get(format!("{}/practitioners", s.admin_url()))
        .send()
        .await
        .expect("list")
        .json()
        .await
        .expect("json")
}

/// The sandbox id of the record carrying `npi` (ids are opaque).
pub async fn id_of(s: &Sandbox, npi: &str) -> String {
    practitioners(s)
        .await
        .as_array()
        .expect("array")
        .iter()
        .find(|p| p["npi"] == npi)
        .and_then(|p| p["id"].as_str())
        .unwrap_or_else(|| panic!("no record with NPI {npi}"))
        .to_string()
}

/// Out-of-band edit through the admin API (JSON merge patch).
pub async fn edit(s: &Sandbox, id: &str, patch: serde_json::Value) {
    let r = epic_operator::http::client()
        .unwrap()
        .patch(format!("{}/practitioners/{id}", s.admin_url()))
        .json(&patch)
        .send()
        .await
        .expect("edit");
    assert!(r.status().is_success(), "edit failed: {}", r.status());
}

pub async fn set_settings(s: &Sandbox, patch: serde_json::Value) {
    let r = epic_operator::http::client()
        .unwrap()
        .put(format!("{}/settings", s.admin_url()))
        .json(&patch)
        .send()
        .await
        .expect("settings");
    assert!(r.status().is_success());
}
