//! Tier 2: the sandbox fetches client keys from a JWK Set URL the way Epic does (cached per
//! Cache-Control within a cap, one refetch per cooldown on an unknown kid, jku checked, only
//! loopback URLs, no private key material), over real HTTP on 127.0.0.1.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use common::{set_settings, stat, stats};
use epic_operator::auth::{ClientKey, client_assertion, generate_key};
use epic_operator::crd::Algorithm;
use epic_operator::sandbox::{RegisteredClient, Sandbox, SandboxConfig, SeedError, Settings};
use jsonwebtoken::{EncodingKey, Header};
use serde_json::{Value, json};

const CLIENT: &str = "jwks-url-client";

/// What the test's JWK Set URL answers; the test changes it between requests.
struct Served {
    status: u16,
    body: String,
    cache_control: Option<String>,
}

/// A JWK Set URL on 127.0.0.1:0, like the one the operator serves, whose content and
/// Cache-Control the test controls, counting the requests it answers.
struct JwksServer {
    url: String,
    served: Arc<Mutex<Served>>,
    hits: Arc<AtomicU64>,
}

type Shared = (Arc<Mutex<Served>>, Arc<AtomicU64>);

async fn serve_jwks(State((served, hits)): State<Shared>) -> Response {
    hits.fetch_add(1, Ordering::SeqCst);
    let s = served.lock().unwrap();
    let mut r = (
        StatusCode::from_u16(s.status).unwrap(),
        [(header::CONTENT_TYPE, "application/json")],
        s.body.clone(),
    )
        .into_response();
    if let Some(cc) = &s.cache_control {
        r.headers_mut()
            .insert(header::CACHE_CONTROL, HeaderValue::from_str(cc).unwrap());
    }
    r
}

impl JwksServer {
    async fn start(set: &Value, cache_control: Option<&str>) -> Self {
        let served = Arc::new(Mutex::new(Served {
            status: 200,
            body: set.to_string(),
            cache_control: cache_control.map(str::to_string),
        }));
        let hits = Arc::new(AtomicU64::new(0));
        let app = Router::new()
            .route("/jwks/default/epic", get(serve_jwks))
            .with_state((served.clone(), hits.clone()));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Self {
            url: format!("http://{addr}/jwks/default/epic"),
            served,
            hits,
        }
    }

    fn publish(&self, set: &Value, cache_control: Option<&str>) {
        self.answer(200, &set.to_string(), cache_control);
    }

    fn answer(&self, status: u16, body: &str, cache_control: Option<&str>) {
        let mut s = self.served.lock().unwrap();
        s.status = status;
        s.body = body.to_string();
        s.cache_control = cache_control.map(str::to_string);
    }

    fn hits(&self) -> u64 {
        self.hits.load(Ordering::SeqCst)
    }
}

/// An ES384 key (fast to generate) and its PEM, for hand-made headers.
fn key(kid: &str) -> (ClientKey, String) {
    generate_key(Algorithm::ES384, kid).unwrap()
}

/// The public JWK Set of several keys.
fn set_of(keys: &[&ClientKey]) -> Value {
    let all: Vec<Value> = keys
        .iter()
        .flat_map(|k| k.jwks()["keys"].as_array().unwrap().clone())
        .collect();
    json!({ "keys": all })
}

async fn sandbox(client: RegisteredClient, cache_max_secs: u64, cooldown_secs: u64) -> Sandbox {
    common::sandbox_with(SandboxConfig {
        clients: vec![client],
        settings: Settings {
            jwks_cache_max_secs: cache_max_secs,
            jwks_refetch_cooldown_secs: cooldown_secs,
            ..Settings::default()
        },
        ..SandboxConfig::default()
    })
    .await
}

async fn url_sandbox(server: &JwksServer, cache_max_secs: u64, cooldown_secs: u64) -> Sandbox {
    let client = RegisteredClient::with_jwks_url(
        CLIENT,
        &server.url,
        epic_operator::sandbox::default_scopes(),
    )
    .unwrap();
    sandbox(client, cache_max_secs, cooldown_secs).await
}

/// Posts a token request with `assertion`; (status, body).
async fn post_token(s: &Sandbox, assertion: &str, scope: &str) -> (u16, Value) {
    let r = epic_operator::http::client()
        .unwrap()
        .post(s.token_url())
        .form(&[
            ("grant_type", "client_credentials"),
            (
                "client_assertion_type",
                "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            ),
            ("client_assertion", assertion),
            ("scope", scope),
        ])
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

/// A token request signed by `key` for `client`, as the operator signs it.
async fn token_as(s: &Sandbox, key: &ClientKey, client: &str) -> (u16, Value) {
    let a = client_assertion(key, client, &s.token_url()).unwrap();
    post_token(s, &a, "system/Practitioner.read").await
}

async fn token(s: &Sandbox, key: &ClientKey) -> (u16, Value) {
    token_as(s, key, CLIENT).await
}

/// An assertion with a `jku` header, signed with an ES384 PEM.
fn assertion_with_jku(s: &Sandbox, pem: &str, kid: &str, client: &str, jku: &str) -> String {
    let mut h = Header::new(jsonwebtoken::Algorithm::ES384);
    h.kid = Some(kid.into());
    h.typ = Some("JWT".into());
    h.jku = Some(jku.into());
    let now = chrono::Utc::now().timestamp();
    let claims = json!({
        "iss": client, "sub": client, "aud": s.token_url(), "exp": now + 240, "iat": now,
        "jti": format!("jti-{}", rand::random::<u64>()),
    });
    jsonwebtoken::encode(
        &h,
        &claims,
        &EncodingKey::from_ec_pem(pem.as_bytes()).unwrap(),
    )
    .unwrap()
}

fn assert_invalid_client(status: u16, body: &Value, needle: &str) -> String {
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"], "invalid_client", "{body}");
    let d = body["error_description"].as_str().unwrap().to_string();
    assert!(d.contains(needle), "description lacks {needle:?}: {d}");
    d
}

async fn clients(s: &Sandbox) -> Value {
    epic_operator::http::client()
        .unwrap()
        .get(format!("{}/clients", s.admin_url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

async fn post_client(s: &Sandbox, body: Value) -> (u16, String) {
    let r = epic_operator::http::client()
        .unwrap()
        .post(format!("{}/clients", s.admin_url()))
        .json(&body)
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

fn listed<'a>(list: &'a Value, id: &str) -> &'a Value {
    list.as_array()
        .unwrap()
        .iter()
        .find(|c| c["clientId"] == id)
        .unwrap_or_else(|| panic!("{id} not listed in {list}"))
}

#[tokio::test]
async fn a_token_is_issued_for_a_key_fetched_from_the_url_and_the_set_is_cached() {
    let (k1, _) = key("k1");
    let server = JwksServer::start(&set_of(&[&k1]), Some("public, max-age=300")).await;
    let s = url_sandbox(&server, 300, 60).await;
    assert_eq!(
        server.hits(),
        0,
        "keys are fetched when needed, not at registration"
    );

    let (status, body) = token(&s, &k1).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["scope"], "system/Practitioner.read");
    let (status, body) = token(&s, &k1).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(server.hits(), 1, "the second request used the cached set");
    assert_eq!(stat(&stats(&s).await, "jwksFetches"), 1);

    let list = clients(&s).await;
    let c = listed(&list, CLIENT);
    assert_eq!(c["jwksUrl"], server.url.as_str());
    assert_eq!(c["cachedKids"], json!(["k1"]));
    assert_eq!(c["fetches"], 1);
    assert!(c["cachedUntil"].is_string(), "{c}");
    let x = k1.jwks()["keys"][0]["x"].as_str().unwrap().to_string();
    assert!(
        !list.to_string().contains(&x),
        "no key material listed: {list}"
    );
    assert_eq!(list, s.clients(), "the API and the admin endpoint agree");
}

#[tokio::test]
async fn a_rotated_key_is_refused_while_cached_and_accepted_after_the_cooldown() {
    let (k1, _) = key("k1");
    let (k2, _) = key("k2");
    let server = JwksServer::start(&set_of(&[&k1]), Some("max-age=300")).await;
    let s = url_sandbox(&server, 300, 1).await;
    assert_eq!(token(&s, &k1).await.0, 200);

    // The client publishes k2 and signs with it at once: the cache still holds the old set,
    // and the fetch that filled it is less than a cooldown old.
    server.publish(&set_of(&[&k1, &k2]), Some("max-age=300"));
    let (status, body) = token(&s, &k2).await;
    let d = assert_invalid_client(status, &body, "unknown kid \"k2\"");
    assert!(
        d.contains("JWK Set fetched at") && d.contains("next refetch allowed after"),
        "{d}"
    );
    assert_eq!(server.hits(), 1, "no refetch within the cooldown");
    let st = stats(&s).await;
    assert_eq!(stat(&st, "jwksUnknownKid"), 1);
    assert_eq!(stat(&st, "jwksFetches"), 1);

    tokio::time::sleep(Duration::from_millis(1200)).await;
    let (status, body) = token(&s, &k2).await;
    assert_eq!(
        status, 200,
        "after the cooldown the unknown kid refetches: {body}"
    );
    assert_eq!(server.hits(), 2);
    assert_eq!(
        token(&s, &k1).await.0,
        200,
        "the previous key is still published"
    );
    assert_eq!(server.hits(), 2);
}

#[tokio::test]
async fn the_cache_expires_with_max_age() {
    let (k1, _) = key("k1");
    let (k2, _) = key("k2");
    let server = JwksServer::start(&set_of(&[&k1]), Some("public, max-age=1")).await;
    // A long cooldown: only the expiry of the cache can bring k2 in.
    let s = url_sandbox(&server, 300, 60).await;
    assert_eq!(token(&s, &k1).await.0, 200);
    server.publish(&set_of(&[&k2]), Some("public, max-age=1"));
    let (status, body) = token(&s, &k2).await;
    assert_invalid_client(status, &body, "unknown kid \"k2\"");

    tokio::time::sleep(Duration::from_millis(1200)).await;
    let (status, body) = token(&s, &k2).await;
    assert_eq!(status, 200, "the expired set was fetched again: {body}");
    assert_eq!(server.hits(), 2);
    // k1 is no longer published: refused against the new set, without another fetch.
    let (status, body) = token(&s, &k1).await;
    assert_invalid_client(status, &body, "unknown kid \"k1\"");
    assert_eq!(server.hits(), 2);
}

#[tokio::test]
async fn max_age_is_capped_by_the_setting_changed_at_run_time() {
    let (k1, _) = key("k1");
    let (k2, _) = key("k2");
    let server = JwksServer::start(&set_of(&[&k1]), Some("max-age=86400")).await;
    let s = url_sandbox(&server, 300, 60).await;
    // Rust spelling, as the field is named; the admin endpoint takes camelCase too.
    set_settings(&s, json!({"jwks_cache_max_secs": 1})).await;
    let current: Value = epic_operator::http::client()
        .unwrap()
        .get(format!("{}/settings", s.admin_url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(current["jwksCacheMaxSecs"], 1);
    assert_eq!(current["jwksRefetchCooldownSecs"], 60);

    assert_eq!(token(&s, &k1).await.0, 200);
    server.publish(&set_of(&[&k1, &k2]), Some("max-age=86400"));
    let (status, body) = token(&s, &k2).await;
    assert_invalid_client(status, &body, "unknown kid");
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let (status, body) = token(&s, &k2).await;
    assert_eq!(status, 200, "a day's max-age is cut to the 1 s cap: {body}");
    assert_eq!(stat(&stats(&s).await, "jwksFetches"), 2);
}

#[tokio::test]
async fn no_store_is_not_cached_and_no_directive_is_cached_for_the_cap() {
    let (k1, _) = key("k1");
    let server = JwksServer::start(&set_of(&[&k1]), Some("no-store")).await;
    let s = url_sandbox(&server, 300, 60).await;
    for _ in 0..3 {
        assert_eq!(token(&s, &k1).await.0, 200);
    }
    assert_eq!(
        server.hits(),
        3,
        "a no-store set is fetched for every request"
    );
    assert_eq!(listed(&s.clients(), CLIENT)["cachedKids"], json!([]));

    server.publish(&set_of(&[&k1]), None);
    for _ in 0..3 {
        assert_eq!(token(&s, &k1).await.0, 200);
    }
    assert_eq!(
        server.hits(),
        4,
        "without max-age the set is kept (for the cap)"
    );
}

#[tokio::test]
async fn an_unknown_kid_refetches_at_most_once_per_cooldown() {
    let (k1, _) = key("k1");
    let (stranger, _) = key("k9");
    let server = JwksServer::start(&set_of(&[&k1]), Some("max-age=300")).await;
    let s = url_sandbox(&server, 300, 1).await;
    assert_eq!(token(&s, &k1).await.0, 200);
    for _ in 0..3 {
        let (status, body) = token(&s, &stranger).await;
        assert_invalid_client(status, &body, "unknown kid \"k9\"");
    }
    assert_eq!(
        server.hits(),
        1,
        "within the cooldown of the first fetch: none"
    );

    tokio::time::sleep(Duration::from_millis(1200)).await;
    // Five at once: one refetch between them, not five.
    let results = futures::future::join_all((0..5).map(|_| token(&s, &stranger))).await;
    for (status, body) in &results {
        assert_invalid_client(*status, body, "unknown kid \"k9\"");
    }
    assert_eq!(server.hits(), 2);
    let st = stats(&s).await;
    assert_eq!(stat(&st, "jwksFetches"), 2);
    assert_eq!(stat(&st, "jwksUnknownKid"), 8);
    assert_eq!(token(&s, &k1).await.0, 200, "known keys are unaffected");
    assert_eq!(server.hits(), 2);
}

#[tokio::test]
async fn jku_must_equal_the_registered_url() {
    let (k1, pem) = key("k1");
    let server = JwksServer::start(&set_of(&[&k1]), Some("max-age=300")).await;
    let s = url_sandbox(&server, 300, 60).await;

    let ok = assertion_with_jku(&s, &pem, "k1", CLIENT, &server.url);
    let (status, body) = post_token(&s, &ok, "system/Practitioner.read").await;
    assert_eq!(status, 200, "{body}");

    for other in [
        format!("{}/", server.url),
        server.url.replace("127.0.0.1", "localhost"),
        "https://attacker.example/jwks".to_string(),
    ] {
        let a = assertion_with_jku(&s, &pem, "k1", CLIENT, &other);
        let (status, body) = post_token(&s, &a, "system/Practitioner.read").await;
        assert_invalid_client(status, &body, "does not match the registered JWK Set URL");
    }
    assert_eq!(server.hits(), 1, "a jku is compared, never fetched");

    // A client registered with static keys sends a jku: refused too.
    let (status, text) = post_client(
        &s,
        json!({"clientId": "static-client", "jwks": set_of(&[&k1])}),
    )
    .await;
    assert_eq!(status, 201, "{text}");
    assert_eq!(token_as(&s, &k1, "static-client").await.0, 200);
    let a = assertion_with_jku(&s, &pem, "k1", "static-client", &server.url);
    let (status, body) = post_token(&s, &a, "system/Practitioner.read").await;
    assert_invalid_client(status, &body, "has none");
}

#[tokio::test]
async fn non_loopback_urls_are_refused_at_registration() {
    for url in [
        "http://10.0.0.1/jwks",
        "https://example.org/.well-known/jwks.json",
        "http://169.254.169.254/latest/meta-data",
        "http://localhost.example.org/jwks",
        "file:///etc/passwd",
    ] {
        let e = RegisteredClient::with_jwks_url("c", url, vec![]).unwrap_err();
        assert!(matches!(e, SeedError::JwksUrl { .. }), "{url}: {e:?}");
        assert!(e.to_string().contains(url), "{e}");
    }
    let e = RegisteredClient::with_jwks_url("c", "http://192.168.1.5:8090/jwks", vec![])
        .unwrap_err()
        .to_string();
    assert!(e.contains("not a loopback host"), "{e}");
    for url in [
        "http://127.0.0.1:1/jwks",
        "http://127.8.0.1/jwks",
        "https://[::1]:8443/jwks",
        "http://localhost:8090/jwks",
    ] {
        assert!(
            RegisteredClient::with_jwks_url("c", url, vec![]).is_ok(),
            "{url}"
        );
    }

    let s = common::sandbox_with(SandboxConfig::default()).await;
    let (status, text) = post_client(
        &s,
        json!({"clientId": "remote", "jwksUrl": "http://10.0.0.1/jwks"}),
    )
    .await;
    assert_eq!(status, 400);
    assert!(text.contains("not a loopback host"), "{text}");
    let (status, text) = post_client(&s, json!({"clientId": "nothing"})).await;
    assert_eq!(status, 400, "{text}");
    let list = s.clients();
    assert!(
        list.as_array()
            .unwrap()
            .iter()
            .all(|c| c["clientId"] != "remote" && c["clientId"] != "nothing"),
        "{list}"
    );
}

#[tokio::test]
async fn a_set_with_private_key_material_is_refused() {
    let (k1, _) = key("k1");
    let mut leaked = set_of(&[&k1]);
    leaked["keys"][0]["d"] = json!("cHJpdmF0ZS1zY2FsYXI");
    let server = JwksServer::start(&leaked, Some("max-age=300")).await;
    let s = url_sandbox(&server, 300, 60).await;
    let (status, body) = token(&s, &k1).await;
    assert_invalid_client(
        status,
        &body,
        "the JWK Set URL publishes private key material",
    );
    assert!(!body.to_string().contains("cHJpdmF0ZS1zY2FsYXI"), "{body}");
    assert_eq!(stat(&stats(&s).await, "jwksFetchFailed"), 1);
    assert_eq!(listed(&s.clients(), CLIENT)["cachedKids"], json!([]));

    // The admin endpoint refuses a static set with private members as well.
    let (status, text) = post_client(&s, json!({"clientId": "leaky", "jwks": leaked})).await;
    assert_eq!(status, 400);
    assert!(text.contains("private key material"), "{text}");

    // Fixed at the source: accepted on the next request (a failed fetch is not cached).
    server.publish(&set_of(&[&k1]), Some("max-age=300"));
    assert_eq!(token(&s, &k1).await.0, 200);
}

#[tokio::test]
async fn fetch_failures_are_invalid_client_with_a_clear_description() {
    let (k1, _) = key("k1");
    let server = JwksServer::start(&set_of(&[&k1]), Some("max-age=300")).await;
    let s = url_sandbox(&server, 300, 60).await;

    server.answer(404, "no such connection", None);
    let (status, body) = token(&s, &k1).await;
    let d = assert_invalid_client(status, &body, "HTTP 404");
    assert!(d.contains(&server.url), "names the URL: {d}");
    server.answer(503, "", None);
    let (status, body) = token(&s, &k1).await;
    assert_invalid_client(status, &body, "HTTP 503");
    server.answer(200, "<html>login</html>", None);
    let (status, body) = token(&s, &k1).await;
    assert_invalid_client(status, &body, "not JSON");
    server.answer(200, r#"{"issuer": "me"}"#, None);
    let (status, body) = token(&s, &k1).await;
    assert_invalid_client(status, &body, "not a JWK Set");
    server.answer(302, "", None);
    let (status, body) = token(&s, &k1).await;
    assert_invalid_client(status, &body, "redirects are not followed");
    assert_eq!(stat(&stats(&s).await, "jwksFetchFailed"), 5);

    // Nothing listens on the URL.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    s.register_client(
        RegisteredClient::with_jwks_url(
            "unreachable",
            &format!("http://127.0.0.1:{port}/jwks"),
            epic_operator::sandbox::default_scopes(),
        )
        .unwrap(),
    );
    let (status, body) = token_as(&s, &k1, "unreachable").await;
    assert_invalid_client(status, &body, "connection failed");

    server.publish(&set_of(&[&k1]), Some("max-age=300"));
    assert_eq!(token(&s, &k1).await.0, 200, "recovers once the URL answers");
}

#[tokio::test]
async fn clients_registered_at_run_time_replace_earlier_registrations() {
    let (k1, _) = key("k1");
    let server = JwksServer::start(&set_of(&[&k1]), Some("max-age=300")).await;
    let s = common::sandbox_with(SandboxConfig::default()).await;
    assert_eq!(
        token(&s, &k1).await.1["error"],
        "invalid_client",
        "not yet known"
    );

    let (status, text) = post_client(&s, json!({"clientId": CLIENT, "jwksUrl": server.url})).await;
    assert_eq!(status, 201, "{text}");
    let shown: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(shown["clientId"], CLIENT);
    assert_eq!(shown["fetches"], 0);
    assert_eq!(token(&s, &k1).await.0, 200, "default scopes");
    assert_eq!(listed(&s.clients(), CLIENT)["fetches"], 1);

    // Registered again with narrower scopes: a new registration, its cache empty.
    let (status, text) = post_client(
        &s,
        json!({"clientId": CLIENT, "jwksUrl": server.url, "scopes": ["system/Patient.read"]}),
    )
    .await;
    assert_eq!(status, 201, "{text}");
    let c = listed(&s.clients(), CLIENT).clone();
    assert_eq!(c["fetches"], 0, "{c}");
    assert_eq!(c["scopes"], json!(["system/Patient.read"]));
    let (status, body) = token(&s, &k1).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_scope"))
    );
    let a = client_assertion(&k1, CLIENT, &s.token_url()).unwrap();
    assert_eq!(post_token(&s, &a, "system/Patient.read").await.0, 200);
    let n = s.clients().as_array().unwrap().len();
    assert_eq!(n, 2, "the dev client and this one, not a duplicate");

    // Static keys beside the URL: a static kid needs no fetch.
    let (k2, _) = key("k2");
    let mut both =
        RegisteredClient::new(CLIENT, &k2.jwks(), vec!["system/Practitioner.read".into()]).unwrap();
    both.set_jwks_url(&server.url).unwrap();
    s.register_client(both);
    let before = server.hits();
    assert_eq!(token(&s, &k2).await.0, 200);
    assert_eq!(server.hits(), before);
    assert_eq!(token(&s, &k1).await.0, 200, "URL keys still used");
    assert_eq!(server.hits(), before + 1);
}

/// The `sandbox` command's flags: a client with a JWK Set URL and the cache settings.
#[tokio::test]
async fn the_sandbox_command_registers_jwks_url_clients() {
    use std::io::BufRead;
    let bin = env!("CARGO_BIN_EXE_epic-operator");
    let refused = std::process::Command::new(bin)
        .args(["sandbox", "--addr", "127.0.0.1:0", "--empty"])
        .args(["--client-jwks-url", "c=http://10.1.2.3/jwks"])
        .output()
        .unwrap();
    assert!(!refused.status.success());
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(err.contains("not a loopback host"), "{err}");

    let (k1, _) = key("k1");
    let server = JwksServer::start(&set_of(&[&k1]), None).await;
    let mut child = std::process::Command::new(bin)
        .args(["sandbox", "--addr", "127.0.0.1:0", "--empty"])
        .args(["--client-jwks-url", &format!("{CLIENT}={}", server.url)])
        .args(["--jwks-cache-max", "2s", "--jwks-refetch-cooldown", "1s"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let base = tokio::task::spawn_blocking(move || {
        let mut lines = std::io::BufReader::new(stdout).lines();
        let base = lines.by_ref().map_while(Result::ok).find_map(|l| {
            l.strip_prefix("Epic sandbox listening on ")
                .map(str::to_string)
        });
        std::thread::spawn(move || for _ in lines {});
        base
    })
    .await
    .unwrap();
    let outcome = async {
        let base = base.expect("the sandbox started");
        let http = epic_operator::http::client().unwrap();
        let settings: Value = http
            .get(format!("{base}/_sandbox/settings"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(settings["jwksCacheMaxSecs"], 2);
        assert_eq!(settings["jwksRefetchCooldownSecs"], 1);
        let token_url = format!("{base}/oauth2/token");
        let a = client_assertion(&k1, CLIENT, &token_url).unwrap();
        let r = http
            .post(&token_url)
            .form(&[
                ("grant_type", "client_credentials"),
                (
                    "client_assertion_type",
                    "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
                ),
                ("client_assertion", a.as_str()),
                ("scope", "system/Practitioner.read"),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 200);
        assert_eq!(server.hits(), 1);
    };
    // The child is stopped whether or not the checks pass.
    let result = futures::FutureExt::catch_unwind(std::panic::AssertUnwindSafe(outcome)).await;
    let _ = child.kill();
    let _ = child.wait();
    if let Err(panic) = result {
        std::panic::resume_unwind(panic);
    }
}
