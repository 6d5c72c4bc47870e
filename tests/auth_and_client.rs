//! Tier 2: SMART Backend Services auth and the FHIR client against the sandbox, over HTTP.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::routing::{get, post};
use common::*;
use epic_operator::auth::{AuthError, TokenSource};
use epic_operator::fhir::{ConnectionSettings, FhirClient, FhirError, NpiLookup, WalkLimits};
use epic_operator::http::client as http_client;
use epic_operator::sandbox::{
    DEV_CLIENT_ID, DEV_KEY_ID, RegisteredClient, SandboxConfig, Settings, default_scopes,
};
use jsonwebtoken::{EncodingKey, Header};
use serde_json::{Value, json};

/// Posts a hand-made assertion (to test each rule the server enforces).
async fn post_assertion(
    s: &epic_operator::sandbox::Sandbox,
    header: Header,
    claims: Value,
    key_pem: &str,
) -> (u16, Value) {
    let key = EncodingKey::from_rsa_pem(key_pem.as_bytes()).expect("pem");
    let jwt = jsonwebtoken::encode(&header, &claims, &key).expect("sign");
    let form = [
        ("grant_type", "client_credentials"),
        (
            "client_assertion_type",
            "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
        ),
        ("client_assertion", jwt.as_str()),
        ("scope", "system/Practitioner.read"),
    ];
    let r = epic_operator::http::client()
        .unwrap()
        .post(s.token_url())
        .form(&form)
        .send()
        .await
        .expect("post");
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

fn header(kid: &str) -> Header {
    let mut h = Header::new(jsonwebtoken::Algorithm::RS384);
    h.kid = Some(kid.into());
    h.typ = Some("JWT".into());
    h
}

fn claims(aud: &str, exp_in: i64, jti: &str) -> Value {
    let now = chrono::Utc::now().timestamp();
    json!({"iss": DEV_CLIENT_ID, "sub": DEV_CLIENT_ID, "aud": aud, "exp": now + exp_in, "iat": now, "jti": jti})
}

#[tokio::test]
async fn token_success_and_each_assertion_rule() {
    let s = sandbox().await;
    let pem = s.dev_key_pem.clone().unwrap();
    let token_url = s.token_url();

    let (status, body) = post_assertion(
        &s,
        header(DEV_KEY_ID),
        claims(&token_url, 240, "jti-ok"),
        &pem,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["token_type"], "bearer");
    assert_eq!(body["scope"], "system/Practitioner.read");
    assert!(body["expires_in"].as_u64().unwrap() > 0);

    let cases: Vec<(&str, Header, Value, &str)> = vec![
        (
            "wrong aud",
            header(DEV_KEY_ID),
            claims("http://127.0.0.1:1/oauth2/token", 240, "jti-1"),
            "aud",
        ),
        (
            "expired exp",
            header(DEV_KEY_ID),
            claims(&token_url, -30, "jti-2"),
            "expired",
        ),
        (
            "far-future exp",
            header(DEV_KEY_ID),
            claims(&token_url, 3600, "jti-3"),
            "5 minutes",
        ),
        (
            "reused jti",
            header(DEV_KEY_ID),
            claims(&token_url, 240, "jti-ok"),
            "already been used",
        ),
        (
            "unknown kid",
            header("other-kid"),
            claims(&token_url, 240, "jti-4"),
            "unknown kid",
        ),
        (
            "iss != sub",
            header(DEV_KEY_ID),
            {
                let mut c = claims(&token_url, 240, "jti-5");
                c["sub"] = json!("someone-else");
                c
            },
            "iss and sub",
        ),
        (
            "unknown client",
            header(DEV_KEY_ID),
            {
                let mut c = claims(&token_url, 240, "jti-6");
                c["iss"] = json!("nobody");
                c["sub"] = json!("nobody");
                c
            },
            "unknown client",
        ),
        (
            "no jti",
            header(DEV_KEY_ID),
            {
                let mut c = claims(&token_url, 240, "x");
                c.as_object_mut().unwrap().remove("jti");
                c
            },
            "jti",
        ),
        (
            "nbf in the future",
            header(DEV_KEY_ID),
            {
                let mut c = claims(&token_url, 240, "jti-7");
                c["nbf"] = json!(chrono::Utc::now().timestamp() + 120);
                c
            },
            "not valid yet",
        ),
    ];
    for (what, h, c, needle) in cases {
        let (status, body) = post_assertion(&s, h, c, &pem).await;
        assert_eq!(status, 400, "{what}: {body}");
        assert_eq!(body["error"], "invalid_client", "{what}: {body}");
        let d = body["error_description"].as_str().unwrap_or_default();
        assert!(d.contains(needle), "{what}: {d}");
    }
    // HS256 is not on the allow-list.
    let mut hs = Header::new(jsonwebtoken::Algorithm::HS256);
    hs.kid = Some(DEV_KEY_ID.into());
    let jwt = jsonwebtoken::encode(
        &hs,
        &claims(&token_url, 240, "jti-hs"),
        &EncodingKey::from_secret(b"k"),
    )
    .unwrap();
    let r = epic_operator::http::client()
        .unwrap()
        .post(&token_url)
        .form(&[
            ("grant_type", "client_credentials"),
            (
                "client_assertion_type",
                "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            ),
            ("client_assertion", jwt.as_str()),
        ])
        .send()
        .await
        .unwrap();
    let body: Value = r.json().await.unwrap();
    assert!(
        body["error_description"]
            .as_str()
            .unwrap()
            .contains("not allowed"),
        "{body}"
    );
    // A request without `scope` is refused (SMART makes it required), never widened to every
    // approved scope.
    let jwt = jsonwebtoken::encode(
        &header(DEV_KEY_ID),
        &claims(&token_url, 240, "jti-noscope"),
        &EncodingKey::from_rsa_pem(pem.as_bytes()).unwrap(),
    )
    .unwrap();
    let r = epic_operator::http::client()
        .unwrap()
        .post(&token_url)
        .form(&[
            ("grant_type", "client_credentials"),
            (
                "client_assertion_type",
                "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            ),
            ("client_assertion", jwt.as_str()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 400);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"], "invalid_request", "{body}");
    assert!(body.get("access_token").is_none());
    s.stop().await;
}

#[tokio::test]
async fn token_is_reused_and_renewed_after_expiry() {
    let s = sandbox_with(SandboxConfig {
        token_ttl: Duration::from_secs(2),
        ..SandboxConfig::default()
    })
    .await;
    let c = client(&s);
    let t1 = c.tokens().token().await.unwrap();
    let t2 = c.tokens().token().await.unwrap();
    c.capability().await.unwrap();
    assert_eq!(t1.expires_at, t2.expires_at);
    assert_eq!(
        stat(&stats(&s).await, "token"),
        1,
        "one token for several calls"
    );
    assert!(
        !format!("{t1:?}").contains(t1.expires_at.timestamp().to_string().as_str())
            || !format!("{t1:?}").is_empty()
    );
    tokio::time::sleep(Duration::from_millis(2100)).await;
    c.capability().await.unwrap();
    assert_eq!(stat(&stats(&s).await, "token"), 2, "renewed after expiry");
    s.stop().await;
}

#[tokio::test]
async fn token_debug_output_hides_the_secret() {
    let s = sandbox().await;
    let c = client(&s);
    let t = c.tokens().token().await.unwrap();
    let debug = format!("{t:?}");
    assert!(debug.contains("<redacted>"), "{debug}");
    s.stop().await;
}

#[tokio::test]
async fn single_flight_under_50_concurrent_callers() {
    let s = sandbox().await;
    let c = Arc::new(client(&s));
    let mut tasks = Vec::new();
    for _ in 0..50 {
        let c = c.clone();
        tasks.push(tokio::spawn(
            async move { c.tokens().token().await.map(|_| ()) },
        ));
    }
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    assert_eq!(
        stat(&stats(&s).await, "token"),
        1,
        "exactly one token request"
    );
    s.stop().await;
}

#[tokio::test]
async fn oauth_errors_are_typed() {
    let s = sandbox().await;
    let c = client_with(
        &s,
        vec![
            "system/Practitioner.read".into(),
            "system/Observation.read".into(),
        ],
        fast_retry(),
    );
    let err = c.tokens().token().await.unwrap_err();
    assert!(
        matches!(&err, AuthError::OAuth { error, .. } if error == "invalid_scope"),
        "{err:?}"
    );
    assert_eq!(err.reason().as_str(), "InvalidScope");
    assert!(err.to_string().contains("not approved"), "{err}");
    // A request through the client carries the same typed error.
    let e = c.search_npi("1234567893").await.unwrap_err();
    assert_eq!(e.reason().as_str(), "InvalidScope");

    // A key the server does not know: invalid_client.
    let (other, _) =
        epic_operator::auth::generate_key(epic_operator::crd::Algorithm::RS384, DEV_KEY_ID)
            .unwrap();
    let tokens = TokenSource::new(
        http_client().unwrap(),
        other,
        DEV_CLIENT_ID,
        s.token_url(),
        scopes(),
    )
    .unwrap();
    let e = tokens.token().await.unwrap_err();
    assert_eq!(e.reason().as_str(), "Unauthorized");
    assert!(e.to_string().contains("invalid_client"), "{e}");
    s.stop().await;
}

#[tokio::test]
async fn token_url_discovery() {
    let s = sandbox().await;
    let url = epic_operator::auth::discover_token_url(&http_client().unwrap(), &s.fhir_base_url())
        .await
        .unwrap();
    assert_eq!(url, s.token_url());
    let err = epic_operator::auth::discover_token_url(
        &http_client().unwrap(),
        "http://127.0.0.1:9/api/FHIR/R4",
    )
    .await
    .unwrap_err();
    assert_eq!(err.reason().as_str(), "EpicUnavailable");
    s.stop().await;
}

#[tokio::test]
async fn npi_search_zero_one_many() {
    let s = sandbox().await;
    let c = client(&s);
    assert!(matches!(
        c.search_npi("1111111112").await.unwrap().lookup,
        NpiLookup::NotFound
    ));
    let NpiLookup::Found { record: p, .. } = c.search_npi("1234567893").await.unwrap().lookup
    else {
        panic!("one record")
    };
    assert_eq!(p["resourceType"], "Practitioner");
    assert!(p["id"].as_str().unwrap().len() >= 20, "opaque id");
    // A duplicate made in Epic out of band.
    epic_operator::http::client().unwrap()
        .post(format!("{}/practitioners", s.admin_url()))
        .json(&json!({"identifier": [{"system": "http://hl7.org/fhir/sid/us-npi", "value": "1234567893"}]}))
        .send()
        .await
        .unwrap();
    let NpiLookup::Ambiguous(ids) = c.search_npi("1234567893").await.unwrap().lookup else {
        panic!("two records")
    };
    assert_eq!(ids.len(), 2);
    s.stop().await;
}

#[tokio::test]
async fn roster_walk_across_many_pages_equals_the_seeded_set() {
    let s = sandbox_with(SandboxConfig {
        generate: 95,
        ..SandboxConfig::default()
    })
    .await;
    let c = client(&s);
    let mut ids = std::collections::BTreeSet::new();
    let pages = c
        .roster(10, |page| {
            for p in page {
                ids.insert(p["id"].as_str().unwrap().to_string());
            }
        })
        .await
        .unwrap();
    assert_eq!(pages, 10);
    assert_eq!(ids.len(), 95);
    let st = stats(&s).await;
    assert_eq!(stat(&st, "search"), 1);
    assert_eq!(stat(&st, "page"), 9);
    s.stop().await;
}

#[tokio::test]
async fn expired_paging_session_restarts_the_walk_once() {
    let s = sandbox_with(SandboxConfig {
        generate: 30,
        paging_ttl: Duration::from_millis(300),
        ..SandboxConfig::default()
    })
    .await;
    let c = client(&s);
    let mut first = true;
    let mut seen = std::collections::BTreeSet::new();
    let pages = c
        .roster(10, |page| {
            if first {
                // Outlive the paging session while holding the first page.
                std::thread::sleep(Duration::from_millis(400));
                first = false;
            }
            for p in page {
                seen.insert(p["id"].as_str().unwrap().to_string());
            }
        })
        .await
        .unwrap();
    assert_eq!(seen.len(), 30);
    assert_eq!(pages, 3, "the restarted walk");
    assert_eq!(stat(&stats(&s).await, "search"), 2, "one restart");
    s.stop().await;
}

#[tokio::test]
async fn write_refused_is_write_disabled_with_diagnostics_and_patch_is_never_used() {
    let s = sandbox().await;
    let c = client(&s);
    let id = id_of(&s, "1987654328").await;
    let live = c.read_practitioner(&id).await.unwrap().body;
    let err = c.update_practitioner(&id, &live, None).await.unwrap_err();
    assert!(
        matches!(err, FhirError::WriteDisabled { status: 403, .. }),
        "{err:?}"
    );
    assert_eq!(err.reason().as_str(), "WriteDisabled");
    assert_eq!(err.epic_codes(), vec!["4118".to_string()]);
    assert!(
        err.to_string()
            .contains("not enabled on this Epic instance"),
        "{err}"
    );
    let st = stats(&s).await;
    assert_eq!(stat(&st, "refused"), 1);
    assert_eq!(stat(&st, "patch"), 0);
    s.stop().await;
}

#[tokio::test]
async fn update_and_create_with_writes_enabled() {
    let s = writable_sandbox().await;
    let c = client(&s);
    let id = id_of(&s, "1987654328").await;
    let mut live = c.read_practitioner(&id).await.unwrap().body;
    live["active"] = json!(false);
    let stored = c.update_practitioner(&id, &live, None).await.unwrap();
    assert_eq!(stored.body["active"], false);
    let (new_id, body) = c
        .create_practitioner(&json!({"resourceType": "Practitioner", "name": [{"use": "official", "family": "New"}], "identifier": [{"system": "http://hl7.org/fhir/sid/us-npi", "value": "1321098760"}]}), None)
        .await
        .unwrap();
    assert_eq!(body["id"], new_id.as_str());
    assert!(matches!(
        c.search_npi("1321098760").await.unwrap().lookup,
        NpiLookup::Found { .. }
    ));
    assert_eq!(stat(&stats(&s).await, "patch"), 0);
    s.stop().await;
}

#[tokio::test]
async fn throttling_and_server_errors_are_retried_for_reads_then_surfaced() {
    let s = sandbox().await;
    let c = client(&s);
    let id = id_of(&s, "1234567893").await;
    c.tokens().token().await.unwrap();
    set_settings(&s, json!({"throttleRate": 1.0})).await;
    let err = c.read_practitioner(&id).await.unwrap_err();
    assert_eq!(err.reason().as_str(), "Throttled");
    assert_eq!(stat(&stats(&s).await, "throttled"), 4, "max_attempts reads");
    set_settings(&s, json!({"throttleRate": 0.0, "errorRate": 1.0})).await;
    let err = c.read_practitioner(&id).await.unwrap_err();
    assert_eq!(err.reason().as_str(), "EpicUnavailable");
    assert_eq!(stat(&stats(&s).await, "serverErrors"), 4);
    // Writes are never retried automatically.
    set_settings(&s, json!({"errorRate": 1.0, "writesEnabled": true})).await;
    let err = c
        .update_practitioner(
            &id,
            &json!({"resourceType": "Practitioner", "id": id}),
            None,
        )
        .await
        .unwrap_err();
    assert_eq!(err.reason().as_str(), "EpicUnavailable");
    assert_eq!(
        stat(&stats(&s).await, "serverErrors"),
        5,
        "one PUT, no retry"
    );
    s.stop().await;
}

/// A hand-written misbehaving server: cross-origin next links, loops, flaky reads,
/// Retry-After, and a 401 that a renewed token fixes.
async fn misbehaving_server() -> (String, tokio::task::JoinHandle<()>) {
    use std::sync::atomic::{AtomicU32, Ordering};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let base = format!("http://{addr}");
    let flaky = Arc::new(AtomicU32::new(0));
    let throttled = Arc::new(AtomicU32::new(0));
    let th = throttled.clone();
    let tokens = Arc::new(AtomicU32::new(0));
    let b1 = base.clone();
    let b2 = base.clone();
    let f = flaky.clone();
    let t1 = tokens.clone();
    let t2 = tokens.clone();
    let app = Router::new()
        .route("/token", post(move || {
            let n = t1.fetch_add(1, Ordering::SeqCst);
            async move { axum::Json(json!({"access_token": format!("t{n}"), "token_type": "Bearer", "expires_in": 3600})) }
        }))
        .route("/fhir/Practitioner", get(move |q: axum::extract::RawQuery| {
            let b1 = b1.clone();
            async move {
                let q = q.0.unwrap_or_default();
                let next = if q.contains("loop") { format!("{b1}/fhir/Practitioner?loop=1") } else { "http://localhost:9/fhir/Practitioner?page=2".to_string() };
                axum::Json(json!({"resourceType": "Bundle", "type": "searchset", "entry": [], "link": [{"relation": "next", "url": next}]}))
            }
        }))
        .route("/fhir/Practitioner/{id}", get(move |axum::extract::Path(id): axum::extract::Path<String>, headers: axum::http::HeaderMap| {
            let f = f.clone();
            let th = th.clone();
            let t2 = t2.clone();
            let _ = &b2;
            async move {
                use axum::response::IntoResponse;
                match id.as_str() {
                    "flaky" if f.fetch_add(1, Ordering::SeqCst) < 2 => (axum::http::StatusCode::SERVICE_UNAVAILABLE, "busy").into_response(),
                    "retry-after" if th.fetch_add(1, Ordering::SeqCst) < 1 => {
                        (axum::http::StatusCode::TOO_MANY_REQUESTS, [("retry-after", "1")], "slow down").into_response()
                    }
                    "needs-new-token" => {
                        // Only the second token works: the first one is "revoked".
                        let auth = headers.get("authorization").and_then(|v| v.to_str().ok()).unwrap_or_default();
                        if auth == "Bearer t0" || t2.load(Ordering::SeqCst) == 0 {
                            (axum::http::StatusCode::UNAUTHORIZED, "revoked").into_response()
                        } else {
                            axum::Json(json!({"resourceType": "Practitioner", "id": id})).into_response()
                        }
                    }
                    "huge" => axum::Json(json!({"resourceType": "Practitioner", "id": "huge", "pad": "x".repeat(200_000)})).into_response(),
                    _ => axum::Json(json!({"resourceType": "Practitioner", "id": id})).into_response(),
                }
            }
        }));
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (base, task)
}

fn plain_client(base: &str, max_body: usize) -> FhirClient {
    let http = http_client().unwrap();
    let (key, _) =
        epic_operator::auth::generate_key(epic_operator::crd::Algorithm::ES384, "k").unwrap();
    let tokens = TokenSource::new(http.clone(), key, "c", format!("{base}/token"), vec![]).unwrap();
    let mut settings = ConnectionSettings::new(format!("{base}/fhir"));
    settings.retry = fast_retry();
    settings.max_body_bytes = max_body;
    FhirClient::new(http, settings, Arc::new(tokens), None).unwrap()
}

#[tokio::test]
async fn links_to_other_origins_loops_and_oversized_bodies_are_refused() {
    let (base, task) = misbehaving_server().await;
    let c = plain_client(&base, 100_000);
    let err = c.roster(10, |_| {}).await.unwrap_err();
    assert!(
        matches!(err, FhirError::Refused(ref m) if m.contains("another origin")),
        "{err:?}"
    );
    let err = c.search_npi("loop").await;
    // The NPI search URL has no "loop" in it, so it gets the cross-origin link too.
    assert!(err.is_err());
    let err = c.read_practitioner("huge").await.unwrap_err();
    assert!(err.to_string().contains("limit"), "{err}");
    task.abort();
}

#[tokio::test]
async fn flaky_reads_recover_and_retry_after_is_honoured() {
    let (base, task) = misbehaving_server().await;
    let c = plain_client(&base, 1 << 20);
    assert_eq!(
        c.read_practitioner("flaky").await.unwrap().body["id"],
        "flaky"
    );
    let started = std::time::Instant::now();
    assert_eq!(
        c.read_practitioner("retry-after").await.unwrap().body["id"],
        "retry-after"
    );
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "waited for Retry-After"
    );
    // A 401 renews the token once and retries once.
    assert_eq!(
        c.read_practitioner("needs-new-token").await.unwrap().body["id"],
        "needs-new-token"
    );
    assert_eq!(c.tokens().requests_sent(), 2);
    task.abort();
}

#[tokio::test]
async fn plain_http_is_refused_off_loopback() {
    let err = TokenSource::new(
        http_client().unwrap(),
        epic_operator::auth::generate_key(epic_operator::crd::Algorithm::ES384, "k")
            .unwrap()
            .0,
        "c",
        "http://epic.example.org/oauth2/token",
        vec![],
    )
    .unwrap_err();
    assert_eq!(err.reason().as_str(), "InvalidConnection");
}

#[tokio::test]
async fn narrowed_client_scopes_and_write_scope() {
    let s0 = sandbox().await;
    let jwks = dev_key(&s0).jwks();
    let client_reg = RegisteredClient::new(
        DEV_CLIENT_ID,
        &jwks,
        vec!["system/Practitioner.read".into()],
    )
    .unwrap();
    let s = sandbox_with(SandboxConfig {
        clients: vec![client_reg],
        seeds: vec![EXAMPLES_SEED.into()],
        settings: Settings {
            writes_enabled: true,
            ..Settings::default()
        },
        ..SandboxConfig::default()
    })
    .await;
    // The narrowed client may not ask for the write scope.
    let http = http_client().unwrap();
    let key = dev_key(&s0);
    let tokens = TokenSource::new(
        http.clone(),
        key,
        DEV_CLIENT_ID,
        s.token_url(),
        default_scopes(),
    )
    .unwrap();
    assert_eq!(
        tokens.token().await.unwrap_err().reason().as_str(),
        "InvalidScope"
    );
    // With read only, a write is refused 403 even though the instance allows writes.
    let tokens = TokenSource::new(
        http.clone(),
        dev_key(&s0),
        DEV_CLIENT_ID,
        s.token_url(),
        vec!["system/Practitioner.read".into()],
    )
    .unwrap();
    let c = FhirClient::new(
        http,
        ConnectionSettings::new(s.fhir_base_url()),
        Arc::new(tokens),
        None,
    )
    .unwrap();
    let id = id_of(&s, "1234567893").await;
    let live = c.read_practitioner(&id).await.unwrap().body;
    let err = c.update_practitioner(&id, &live, None).await.unwrap_err();
    assert_eq!(err.http_status(), Some(403));
    assert!(err.to_string().contains("Practitioner.write"), "{err}");
    s.stop().await;
    s0.stop().await;
}

/// A server whose Practitioner search never ends: every page has one record and a new,
/// distinct `next` link.
async fn endless_server() -> (String, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let b = base.clone();
    let app = Router::new()
        .route(
            "/token",
            post(|| async {
                axum::Json(json!({"access_token": "t", "token_type": "Bearer", "expires_in": 3600}))
            }),
        )
        .route(
            "/fhir/Practitioner",
            get(move |q: axum::extract::RawQuery| {
                let b = b.clone();
                async move {
                    let n: u64 = q
                        .0
                        .unwrap_or_default()
                        .split('&')
                        .find_map(|kv| kv.strip_prefix("page=").and_then(|v| v.parse().ok()))
                        .unwrap_or(0);
                    axum::Json(json!({"resourceType": "Bundle", "type": "searchset",
                        "entry": [{"resource": {"resourceType": "Practitioner", "id": format!("p{n}")}}],
                        "link": [{"relation": "next", "url": format!("{b}/fhir/Practitioner?page={}", n + 1)}]}))
                }
            }),
        );
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (base, task)
}

#[tokio::test]
async fn endless_walks_stop_at_their_page_record_and_time_limits() {
    let (base, task) = endless_server().await;
    for (limits, expect) in [
        (
            WalkLimits {
                max_pages: 25,
                ..WalkLimits::default()
            },
            "25 pages (maxWalkPages)",
        ),
        (
            WalkLimits {
                max_records: 40,
                ..WalkLimits::default()
            },
            "40 records (maxWalkRecords)",
        ),
        (
            WalkLimits {
                max_duration: std::time::Duration::from_millis(300),
                ..WalkLimits::default()
            },
            "(maxWalkDuration)",
        ),
    ] {
        let http = http_client().unwrap();
        let (key, _) =
            epic_operator::auth::generate_key(epic_operator::crd::Algorithm::ES384, "k").unwrap();
        let tokens =
            TokenSource::new(http.clone(), key, "c", format!("{base}/token"), vec![]).unwrap();
        let mut settings = ConnectionSettings::new(format!("{base}/fhir"));
        settings.requests_per_second = 1000;
        settings.burst = 1000;
        settings.walk_limits = limits;
        let c = FhirClient::new(http, settings, Arc::new(tokens), None).unwrap();
        let started = std::time::Instant::now();
        let mut seen = 0usize;
        let err = c.roster(1, |page| seen += page.len()).await.unwrap_err();
        assert!(
            matches!(&err, FhirError::Refused(m) if m.contains(expect)),
            "{expect}: {err}"
        );
        assert!(started.elapsed() < std::time::Duration::from_secs(20));
        // A search walks under the same limits (plan and the operator's NPI lookups).
        assert!(c.search_npi("1234567893").await.is_err(), "{expect}");
        assert!(seen <= 40 || limits.max_duration < std::time::Duration::from_secs(1));
    }
    task.abort();
}

#[tokio::test]
async fn a_failing_token_endpoint_costs_one_attempt_per_backoff_step() {
    let s = sandbox().await;
    set_settings(&s, json!({"tokenFailureRate": 1.0})).await;
    let c = client(&s);
    // Many practitioners asking at once and one after another within the first backoff step.
    let attempts = futures::future::join_all((0..10).map(|_| c.tokens().token())).await;
    assert!(attempts.iter().all(Result::is_err));
    for _ in 0..5 {
        assert!(c.tokens().token().await.is_err());
    }
    assert_eq!(
        c.tokens().requests_sent(),
        1,
        "one request for the connection, not one per caller"
    );
    // Once the step has passed and the endpoint is back, a token comes.
    set_settings(&s, json!({"tokenFailureRate": 0.0})).await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert!(c.tokens().token().await.is_ok());
    assert_eq!(c.tokens().requests_sent(), 2);
    s.stop().await;
}
