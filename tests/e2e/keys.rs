//! Scenario 17: keys Epic fetches. The sandbox knows the client only by its JWK Set URL (the
//! operator's own listener) and verifies every assertion from what it fetched there; managed
//! keys rotate twice with no refused token and every practitioner Ready; the previous key
//! leaves the set after retireAfter; a sandbox that caches the set longer than publishAhead
//! gets the previous key instead (no outage, the condition says why); an unlabelled Secret is
//! never touched.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use epic_operator::crd::{Algorithm, EpicConnection, EpicConnectionSpec, KeyRotation};
use epic_operator::sandbox::{
    DEV_CLIENT_ID, RegisteredClient, Sandbox, SandboxConfig, Settings, default_scopes,
};
use k8s_openapi::api::core::v1::Secret;
use kube::api::{ObjectMeta, Patch, PatchParams, PostParams};
use kube::{Api, ResourceExt};
use serde_json::{Value, json};

use super::cluster::{ControlPlane, apply_yaml, free_port};
use super::{Operator, SEED, World, create, events, example, is, stats, wait_event, wait_stat};

const PUBLISH_AHEAD: Duration = Duration::from_secs(3);
const RETIRE_AFTER: Duration = Duration::from_secs(4);

/// The JWK Set at `url`: kids in order, and the response itself.
async fn fetch_set(url: &str) -> (Vec<String>, reqwest::Response) {
    let http = epic_operator::http::client().unwrap();
    let r = http.get(url).send().await.unwrap();
    assert_eq!(r.status(), 200, "GET {url}");
    let body: Value = serde_json::from_str(&r.text().await.unwrap()).unwrap();
    let kids = body["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap().to_string())
        .collect();
    let again = http.get(url).send().await.unwrap();
    (kids, again)
}

async fn connection(w: &World, name: &str) -> EpicConnection {
    w.connections.get(name).await.unwrap()
}

fn keys_of(c: &EpicConnection) -> epic_operator::crd::KeysStatus {
    c.status
        .as_ref()
        .and_then(|s| s.keys.clone())
        .unwrap_or_default()
}

fn ready(c: &EpicConnection) -> (bool, String) {
    c.status
        .as_ref()
        .and_then(|s| s.conditions.iter().find(|c| c.type_ == "Ready"))
        .map(|c| (format!("{:?}", c.status) == "True", c.message.clone()))
        .unwrap_or((false, String::new()))
}

/// Every practitioner of the world is Ready, now.
async fn all_ready(w: &World, names: &[&str]) {
    for name in names {
        let p = w.practitioners.get(name).await.unwrap();
        assert!(
            is(&p, "Ready", "True", "Ready"),
            "[{}] {name} left Ready during rotation: {:#?}",
            w.ns,
            p.status
        );
    }
}

pub async fn keys_rotate_without_an_outage(cp: &ControlPlane) {
    let ns = cp.namespace("s17-keys").await;
    let port = free_port();
    let public = format!("http://127.0.0.1:{port}");
    let jwks_url = format!("{public}/jwks/{ns}/epic");
    // Epic's side: the client is registered by its JWK Set URL only; short tokens, so the
    // keys are used often; a cache of at most 1 s at first (Epic honouring max-age).
    let sandbox = Sandbox::start(SandboxConfig {
        seeds: vec![SEED.into()],
        token_ttl: Duration::from_secs(3),
        clients: vec![
            RegisteredClient::with_jwks_url(DEV_CLIENT_ID, &jwks_url, default_scopes()).unwrap(),
        ],
        // Writes on, so that every practitioner can be Ready (the examples carry drift).
        settings: Settings {
            writes_enabled: true,
            jwks_cache_max_secs: 1,
            jwks_refetch_cooldown_secs: 1,
            ..Settings::default()
        },
        ..SandboxConfig::default()
    })
    .await
    .unwrap();
    // The chart's keyRotation.managed privilege: Secret create/update/patch, here in this
    // namespace only.
    apply_yaml(
        &cp.admin,
        &format!(
            r#"
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {{name: managed-keys, namespace: {ns}}}
rules:
  - apiGroups: [""]
    resources: ["secrets"]
    verbs: ["create", "update", "patch"]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {{name: managed-keys, namespace: {ns}}}
roleRef: {{apiGroup: rbac.authorization.k8s.io, kind: Role, name: managed-keys}}
subjects: [{{kind: ServiceAccount, name: epic-operator, namespace: epic-system}}]
"#
        ),
    )
    .await;
    let secrets: Api<Secret> = Api::namespaced(cp.admin.clone(), &ns);
    // Someone else's Secret, unlabelled: a managed connection pointed at it must not touch it.
    let foreign = secrets
        .create(
            &PostParams::default(),
            &Secret {
                metadata: ObjectMeta {
                    name: Some("someone-elses".into()),
                    ..ObjectMeta::default()
                },
                string_data: Some([("notes".to_string(), "keep me".to_string())].into()),
                ..Secret::default()
            },
        )
        .await
        .unwrap();
    let managed = |secret: &str| {
        let mut spec = EpicConnectionSpec {
            requests_per_second: Some(50),
            burst: Some(50),
            page_size: Some(50),
            resync_interval: Some("1h".into()),
            algorithm: Algorithm::ES384,
            key_id: None,
            key_rotation: Some(KeyRotation {
                managed: true,
                rotate_every: Some("8s".into()),
                publish_ahead: Some(format!("{}s", PUBLISH_AHEAD.as_secs())),
                retire_after: Some(format!("{}s", RETIRE_AFTER.as_secs())),
            }),
            send_jku: true,
            ..sandbox.connection_spec(secret)
        };
        spec.private_key_secret_ref.key = None;
        spec
    };
    let connections: Api<EpicConnection> = Api::namespaced(cp.admin.clone(), &ns);
    for (name, secret) in [("epic", "epic-managed-keys"), ("foreign", "someone-elses")] {
        connections
            .create(
                &PostParams::default(),
                &EpicConnection::new(name, managed(secret)),
            )
            .await
            .unwrap();
    }
    let w = World {
        practitioners: Api::namespaced(cp.admin.clone(), &ns),
        connections,
        client: cp.admin.clone(),
        ns: ns.clone(),
        sandbox,
    };
    let port_arg = format!("127.0.0.1:{port}");
    let _op = Operator::start(
        cp,
        &ns,
        &["--jwks-addr", &port_arg, "--jwks-public-url", &public],
    );
    let names = ["alice-smith", "bob-jones"];
    for name in names {
        create(&w, name, example(&format!("{name}.yaml"))).await;
    }
    let started = Instant::now();
    loop {
        let mut ok = true;
        for name in names {
            ok &= w
                .practitioners
                .get(name)
                .await
                .is_ok_and(|p| is(&p, "Ready", "True", "Ready"));
        }
        if ok {
            break;
        }
        if started.elapsed() > Duration::from_secs(60) {
            let mut statuses = Vec::new();
            for name in names {
                statuses.push(w.practitioners.get(name).await.unwrap().status);
            }
            panic!(
                "practitioners not Ready with a fetched key: {statuses:#?}\n{:#?}\n{:#?}",
                connection(&w, "epic").await.status,
                stats(&w).await
            );
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let c = connection(&w, "epic").await;
    let status = c.status.clone().unwrap();
    assert_eq!(status.jwks_url.as_deref(), Some(jwks_url.as_str()));
    assert!(
        stats(&w).await["jwksFetches"].as_u64().unwrap() >= 1,
        "the sandbox verified keys it fetched from the operator"
    );

    // The unlabelled Secret: refused with the reason and the fix, and never modified.
    let f = connection(&w, "foreign").await;
    let (f_ready, f_message) = ready(&f);
    assert!(
        !f_ready && f_message.contains("not labelled"),
        "{f_message}"
    );
    let after = secrets.get("someone-elses").await.unwrap();
    assert_eq!(after.resource_version(), foreign.resource_version());
    assert_eq!(after.data.as_ref().map(|d| d.len()), Some(1));

    // The listener: cache headers, ETag, HEAD, 404 for anything else, 405 for other methods,
    // and never a private member.
    let (kids, r) = fetch_set(&jwks_url).await;
    assert!(!kids.is_empty());
    let cache = r.headers()["cache-control"].to_str().unwrap().to_string();
    assert!(cache.starts_with("public, max-age="), "{cache}");
    let etag = r.headers()["etag"].to_str().unwrap().to_string();
    let body = r.text().await.unwrap();
    for private in ["\"d\"", "\"p\"", "\"q\"", "\"dp\"", "\"dq\"", "\"qi\""] {
        assert!(!body.contains(private), "{private} in {body}");
    }
    let http = epic_operator::http::client().unwrap();
    let not_modified = http
        .get(&jwks_url)
        .header("if-none-match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(not_modified.status(), 304);
    assert_eq!(http.head(&jwks_url).send().await.unwrap().status(), 200);
    assert_eq!(http.post(&jwks_url).send().await.unwrap().status(), 405);
    for path in [
        format!("/jwks/{ns}/nope"),
        "/jwks/other/epic".to_string(),
        "/jwks".into(),
        "/".into(),
        format!("/jwks/{ns}/someone-elses"),
    ] {
        let r = http.get(format!("{public}{path}")).send().await.unwrap();
        assert_eq!(r.status(), 404, "{path}");
    }

    // Two rotations (rotateEvery 8s): every poll, every practitioner Ready and no token refused.
    let mut signing_seen: Vec<(String, Instant)> = Vec::new();
    let mut gone: BTreeMap<String, Instant> = BTreeMap::new();
    let mut published_seen: Vec<String> = Vec::new();
    let started = Instant::now();
    loop {
        all_ready(&w, &names).await;
        let s = stats(&w).await;
        assert_eq!(s["tokenRejected"], 0, "a token request was refused: {s:#}");
        let keys = keys_of(&connection(&w, "epic").await);
        if let Some(k) = keys.signing_key_id
            && signing_seen.last().is_none_or(|(last, _)| *last != k)
        {
            signing_seen.push((k, Instant::now()));
        }
        let (kids, _) = fetch_set(&jwks_url).await;
        for k in &kids {
            if !published_seen.contains(k) {
                published_seen.push(k.clone());
            }
        }
        for k in &published_seen {
            if !kids.contains(k) {
                gone.entry(k.clone()).or_insert_with(Instant::now);
            }
        }
        if signing_seen.len() >= 3 && gone.contains_key(&signing_seen[0].0) {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "no two rotations in 60 s: signing {signing_seen:?}, published {published_seen:?}, gone {gone:?}"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    // The first key left the set no sooner than retireAfter after the second one signed.
    let first_gone = gone[&signing_seen[0].0];
    let second_signed = signing_seen[1].1;
    assert!(
        first_gone.duration_since(second_signed) + Duration::from_millis(700) >= RETIRE_AFTER,
        "key retired {:?} after the switch, before retireAfter",
        first_gone.duration_since(second_signed)
    );
    let c = connection(&w, "epic").await;
    let k = keys_of(&c);
    assert_eq!(k.last_accepted_key_id, k.signing_key_id);
    for reason in ["KeyPublished", "KeySwitched", "KeyRetired"] {
        wait_event(&w, reason).await;
    }

    // Epic caching longer than publishAhead: the sandbox keeps its set 20 s whatever max-age
    // says and refetches at most every 20 s. The next key is refused at first; the previous key
    // signs meanwhile, nothing goes un-Ready, and the condition says why.
    let http = epic_operator::http::client().unwrap();
    http.put(format!("{}/settings", w.sandbox.admin_url()))
        .json(
            &json!({"jwksCacheMinSecs": 20, "jwksCacheMaxSecs": 20, "jwksRefetchCooldownSecs": 20}),
        )
        .send()
        .await
        .unwrap()
        .error_for_status()
        .unwrap();
    // No scheduled rotation from here on: only the one asked for below.
    w.connections
        .patch(
            "epic",
            &PatchParams::default(),
            &Patch::Merge(&json!({"spec": {"keyRotation": {"rotateEvery": "1h"}}})),
        )
        .await
        .unwrap();
    // Let the sandbox take its long-lived copy before the new key exists.
    let fetches = stats(&w).await["jwksFetches"].as_u64().unwrap();
    wait_stat(&w, "jwksFetches", "the sandbox's fetch", |n| n > fetches).await;
    let before = keys_of(&connection(&w, "epic").await);
    let previous = before.signing_key_id.clone().unwrap();
    w.connections
        .patch(
            "epic",
            &PatchParams::default(),
            &Patch::Merge(
                &json!({"metadata": {"annotations": {"epic-operator.dev/rotate-keys": "now"}}}),
            ),
        )
        .await
        .unwrap();
    let rejected_before = stats(&w).await["tokenRejected"].as_u64().unwrap();
    let mut refused_seen = None;
    let started = Instant::now();
    let accepted = loop {
        all_ready(&w, &names).await;
        let c = connection(&w, "epic").await;
        let (ok, message) = ready(&c);
        assert!(ok, "the connection left Ready: {message}");
        let keys = keys_of(&c);
        if let Some(refused) = &keys.refused_key_id {
            assert_eq!(keys.signing_key_id.as_deref(), Some(previous.as_str()));
            assert!(
                message.contains(&format!("Epic refused the new key {refused}"))
                    && message.contains("publishAhead"),
                "{message}"
            );
            let (kids, _) = fetch_set(&jwks_url).await;
            assert!(
                kids.contains(&previous),
                "the previous key must stay published"
            );
            refused_seen = Some(refused.clone());
        }
        if let Some(r) = &refused_seen
            && keys.last_accepted_key_id.as_ref() == Some(r)
        {
            break r.clone();
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the new key was never refused then accepted: {keys:#?}; {message}"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    assert!(stats(&w).await["tokenRejected"].as_u64().unwrap() > rejected_before);
    let warning = wait_event(&w, "KeyNotTrusted").await;
    assert_eq!(warning["type"], "Warning");
    // Once Epic took the new key, the previous one retires.
    let started = Instant::now();
    loop {
        let (kids, _) = fetch_set(&jwks_url).await;
        if !kids.contains(&previous) && kids.contains(&accepted) {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the previous key was not retired: {kids:?}"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    all_ready(&w, &names).await;
    // Events name keys and nothing personal.
    for e in events(&w).await {
        let note = e["note"].as_str().unwrap_or_default();
        assert!(!note.contains("PRIVATE"), "{note}");
    }
}
