//! Tier 2: a connection's key ring against the sandbox over HTTP. A new key Epic does not know
//! yet is refused once, the previous key signs instead and keeps signing, and the new key takes
//! over as soon as Epic accepts it; a pinned key never falls back; `jku` names the JWK Set URL.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use chrono::{TimeDelta, Utc};
use epic_operator::auth::{KeyRing, RingKey, SignerChoice, TokenSource, generate_key};
use epic_operator::crd::{Algorithm, RotationPeriods};
use epic_operator::sandbox::{RegisteredClient, SandboxConfig, default_scopes};

fn periods() -> RotationPeriods {
    RotationPeriods {
        rotate_every: Duration::from_secs(3600),
        publish_ahead: Duration::from_secs(2),
        retire_after: Duration::from_secs(3600),
    }
}

fn ring_key(kid: &str, age: i64) -> RingKey {
    RingKey {
        key: generate_key(Algorithm::ES384, kid).unwrap().0,
        since: Utc::now() - TimeDelta::seconds(age),
    }
}

fn jwks_of(keys: &[&RingKey]) -> serde_json::Value {
    epic_operator::auth::public_jwk_set(keys.iter().map(|k| &k.key))
}

#[tokio::test]
async fn a_refused_new_key_falls_back_to_the_previous_one_until_epic_accepts_it() {
    let old = ring_key("old", 100);
    let new = ring_key("new", 10);
    // Epic knows only the old key (its copy of the JWK Set predates the new one).
    let client = RegisteredClient::new("c", &jwks_of(&[&old]), default_scopes()).unwrap();
    let sandbox = common::sandbox_with(SandboxConfig {
        clients: vec![client],
        token_ttl: Duration::from_secs(3600),
        ..SandboxConfig::default()
    })
    .await;
    let both = jwks_of(&[&old, &new]);
    let ring = KeyRing::new(vec![old, new], SignerChoice::NewestPublished(periods())).unwrap();
    let tokens = TokenSource::with_keys(
        epic_operator::http::client().unwrap(),
        ring,
        "c",
        sandbox.token_url(),
        vec!["system/Practitioner.read".into()],
        None,
    )
    .unwrap();
    tokens
        .token()
        .await
        .expect("the previous key gets the token");
    let used = tokens.key_use();
    assert_eq!(used.refused_key_id.as_deref(), Some("new"));
    assert_eq!(used.last_accepted_key_id.as_deref(), Some("old"));
    let s = sandbox.stats();
    assert_eq!(s["tokenRejected"], 1, "one refusal, then the fallback: {s}");
    assert_eq!(s["token"], 2);
    // Not due yet: nothing is sent.
    assert!(!tokens.retry_refused_key().await);
    // Epic now has the new key; once the wait (publishAhead / 4, at least 1 s) is over the new
    // key is tried again, accepted, and signs from then on.
    sandbox.register_client(RegisteredClient::new("c", &both, default_scopes()).unwrap());
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert!(tokens.retry_refused_key().await);
    let used = tokens.key_use();
    assert_eq!(used.refused_key_id, None);
    assert_eq!(used.last_accepted_key_id.as_deref(), Some("new"));
    assert_eq!(sandbox.stats()["tokenRejected"], 1);
    sandbox.stop().await;
}

#[tokio::test]
async fn a_pinned_key_never_falls_back_and_jku_must_match_the_registered_url() {
    let old = ring_key("old", 100);
    let new = ring_key("new", 10);
    let client = RegisteredClient::new("c", &jwks_of(&[&old]), default_scopes()).unwrap();
    let sandbox = common::sandbox_with(SandboxConfig {
        clients: vec![client],
        ..SandboxConfig::default()
    })
    .await;
    let ring = KeyRing::new(vec![old, new], SignerChoice::Pinned("new".into())).unwrap();
    let tokens = TokenSource::with_keys(
        epic_operator::http::client().unwrap(),
        ring,
        "c",
        sandbox.token_url(),
        vec!["system/Practitioner.read".into()],
        None,
    )
    .unwrap();
    let err = tokens.token().await.unwrap_err();
    assert!(err.to_string().contains("invalid_client"), "{err}");
    assert_eq!(sandbox.stats()["tokenRejected"], 1, "no second attempt");
    assert_eq!(tokens.key_use().last_accepted_key_id, None);
    sandbox.stop().await;

    // A client registered by JWK Set URL: a jku other than that URL is refused.
    let (served, served_pem) = generate_key(Algorithm::ES384, "served").unwrap();
    let set = served.jwks();
    let app = axum::Router::new().route(
        "/jwks",
        axum::routing::get(move || {
            let set = set.clone();
            async move { axum::Json(set) }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/jwks", listener.local_addr().unwrap());
    let server = tokio::spawn(async move { axum::serve(listener, app).await });
    let client = RegisteredClient::with_jwks_url("c", &url, default_scopes()).unwrap();
    let sandbox = common::sandbox_with(SandboxConfig {
        clients: vec![client],
        ..SandboxConfig::default()
    })
    .await;
    for (jku, ok) in [
        (Some(url.clone()), true),
        (Some(format!("{url}/other")), false),
        (None, true),
    ] {
        let ring = KeyRing::single(
            epic_operator::auth::ClientKey::from_pem(&served_pem, Algorithm::ES384, "served")
                .unwrap(),
        );
        let tokens = TokenSource::with_keys(
            epic_operator::http::client().unwrap(),
            ring,
            "c",
            sandbox.token_url(),
            vec!["system/Practitioner.read".into()],
            jku.clone(),
        )
        .unwrap();
        let result = tokens.token().await;
        assert_eq!(result.is_ok(), ok, "jku {jku:?}: {result:?}");
        if let Err(e) = result {
            assert!(e.to_string().contains("jku"), "{e}");
        }
    }
    sandbox.stop().await;
    server.abort();
}
