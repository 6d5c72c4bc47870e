//! Sandbox throughput for Practitioner reads (so it is never the bottleneck of the scale
//! benchmark). cargo bench --bench sandbox_reads
//! Bounded: 20,000 requests from 32 concurrent tasks, on 127.0.0.1.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Instant;

use epic_operator::auth::{ClientKey, TokenSource};
use epic_operator::crd::Algorithm;
use epic_operator::fhir::{ConnectionSettings, FhirClient};
use epic_operator::sandbox::{DEV_CLIENT_ID, DEV_KEY_ID, Sandbox, SandboxConfig};
use futures::StreamExt;

const REQUESTS: usize = 20_000;
const CONCURRENCY: usize = 32;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let sandbox = Sandbox::start(SandboxConfig {
        generate: 1000,
        ..SandboxConfig::default()
    })
    .await
    .unwrap();
    let http = epic_operator::http::client().unwrap();
    let key = ClientKey::from_pem(
        sandbox.dev_key_pem.as_deref().unwrap(),
        Algorithm::RS384,
        DEV_KEY_ID,
    )
    .unwrap();
    let tokens = TokenSource::new(
        http.clone(),
        key,
        DEV_CLIENT_ID,
        sandbox.token_url(),
        vec!["system/Practitioner.read".into()],
    )
    .unwrap();
    let mut settings = ConnectionSettings::new(sandbox.fhir_base_url());
    settings.requests_per_second = 1_000_000;
    settings.burst = 1_000_000;
    let client = Arc::new(FhirClient::new(http, settings, Arc::new(tokens), None).unwrap());
    let mut ids = Vec::new();
    client
        .roster(200, |page| {
            ids.extend(page.iter().map(|p| p["id"].as_str().unwrap().to_string()))
        })
        .await
        .unwrap();
    let ids = Arc::new(ids);
    let mut rates = Vec::new();
    for _round in 0..3 {
        let started = Instant::now();
        futures::stream::iter(0..REQUESTS)
            .map(|i| {
                let client = client.clone();
                let ids = ids.clone();
                async move { client.read_practitioner(&ids[i % ids.len()]).await.unwrap() }
            })
            .buffer_unordered(CONCURRENCY)
            .collect::<Vec<_>>()
            .await;
        rates.push(REQUESTS as f64 / started.elapsed().as_secs_f64());
    }
    rates.sort_by(f64::total_cmp);
    println!(
        "sandbox Practitioner reads: median {:.0}/s over 3 rounds of {REQUESTS} (client and server in one process, 2 cores, {CONCURRENCY} concurrent); min {:.0}/s, max {:.0}/s",
        rates[1], rates[0], rates[2]
    );
    sandbox.stop().await;
}
