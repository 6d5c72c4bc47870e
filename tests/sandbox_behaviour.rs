//! Tier 2: the sandbox behaves like Epic as documented, over real HTTP.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use common::*;
use epic_operator::sandbox::{SandboxConfig, Settings};
use serde_json::{Value, json};

async fn bearer(s: &epic_operator::sandbox::Sandbox) -> String {
    // A token through the project's own client; its secret is only reachable by the client,
    // so tests that need raw HTTP get a token the way any Backend Services app would.
    let key = dev_key(s);
    let a = epic_operator::auth::client_assertion(
        &key,
        epic_operator::sandbox::DEV_CLIENT_ID,
        &s.token_url(),
    )
    .unwrap();
    let r: Value = epic_operator::http::client().unwrap()
        .post(s.token_url())
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_assertion_type", epic_operator::auth::ASSERTION_TYPE),
            ("client_assertion", a.as_str()),
            ("scope", "system/Practitioner.read system/Practitioner.write system/PractitionerRole.read system/Patient.read"),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    r["access_token"].as_str().unwrap().to_string()
}

async fn get(s: &epic_operator::sandbox::Sandbox, token: Option<&str>, path: &str) -> (u16, Value) {
    let url = if path.starts_with("http") {
        path.to_string()
    } else {
        format!("{}/{path}", s.fhir_base_url())
    };
    let mut r = epic_operator::http::client().unwrap().get(url);
    if let Some(t) = token {
        r = r.bearer_auth(t);
    }
    let r = r.send().await.unwrap();
    (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
}

fn epic_code(oo: &Value) -> &str {
    oo["issue"][0]["details"]["coding"][0]["code"]
        .as_str()
        .unwrap_or_default()
}

#[tokio::test]
async fn fhir_requires_a_token_and_metadata_reflects_writes() {
    let s = sandbox().await;
    let (status, oo) = get(&s, None, "Practitioner?family=Smith").await;
    assert_eq!(status, 401);
    assert_eq!(oo["resourceType"], "OperationOutcome");
    let (status, oo) = get(&s, Some("made-up"), "Practitioner?family=Smith").await;
    assert_eq!((status, epic_code(&oo)), (401, "4118"));
    let (status, cs) = get(&s, None, "metadata").await;
    assert_eq!(status, 200);
    let interactions = cs["rest"][0]["resource"][0]["interaction"].to_string();
    assert!(
        interactions.contains("read") && !interactions.contains("update"),
        "{interactions}"
    );
    set_settings(&s, json!({"writesEnabled": true})).await;
    let (_, cs) = get(&s, None, "metadata").await;
    assert!(
        cs["rest"][0]["resource"][0]["interaction"]
            .to_string()
            .contains("update")
    );
    let (_, smart) = get(&s, None, ".well-known/smart-configuration").await;
    assert_eq!(smart["token_endpoint"], s.token_url());
    s.stop().await;
}

#[tokio::test]
async fn search_read_roles_patient_and_errors() {
    let s = sandbox().await;
    let t = bearer(&s).await;
    let (status, b) = get(
        &s,
        Some(&t),
        "Practitioner?identifier=http://hl7.org/fhir/sid/us-npi%7C1234567893",
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(b["total"], 1);
    let id = b["entry"][0]["resource"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    for q in [
        "family=smi",
        "given=Alice",
        "name=Smith",
        &format!("_id={id}"),
        "identifier=1234567893",
    ] {
        let (_, b) = get(&s, Some(&t), &format!("Practitioner?{q}")).await;
        assert_eq!(b["total"], 1, "{q}");
    }
    let (_, b) = get(&s, Some(&t), "Practitioner?family=Nobody").await;
    assert_eq!(b["total"], 0);
    assert_eq!(
        epic_code(&b["entry"][0]["resource"]),
        "4101",
        "no-results warning"
    );
    let (status, oo) = get(&s, Some(&t), "Practitioner?address-city=Madison").await;
    assert_eq!((status, epic_code(&oo)), (400, "4100"));
    let (status, p) = get(&s, Some(&t), &format!("Practitioner/{id}")).await;
    assert_eq!(status, 200);
    assert_eq!(
        p["extension"][0]["valueString"], "Attending",
        "seed fields are kept"
    );
    let (status, oo) = get(&s, Some(&t), "Practitioner/eDoesNotExist").await;
    assert_eq!((status, epic_code(&oo)), (404, "4102"));
    let (status, roles) = get(&s, Some(&t), &format!("PractitionerRole?practitioner={id}")).await;
    assert_eq!(status, 200);
    assert_eq!(roles["total"], 1);
    assert_eq!(
        roles["entry"][0]["resource"]["practitioner"]["reference"],
        format!("Practitioner/{id}"),
        "references rewritten to opaque ids"
    );
    // Without `practitioner`: every role (how the operator walks roles), unless the instance
    // needs the parameter, as some do.
    let (status, all) = get(&s, Some(&t), "PractitionerRole").await;
    assert_eq!(status, 200);
    assert!(all["total"].as_u64().unwrap_or(0) >= 1, "{all}");
    set_settings(&s, json!({"roleSearchNeedsPractitioner": true})).await;
    let (status, oo) = get(&s, Some(&t), "PractitionerRole").await;
    assert_eq!((status, epic_code(&oo)), (400, "4111"));
    // An instance where NPI search was never enabled: not listed, and refused.
    set_settings(&s, json!({"identifierSearchUnsupported": true})).await;
    let (_, cs) = get(&s, Some(&t), "metadata").await;
    let params = cs["rest"][0]["resource"][0]["searchParam"].to_string();
    assert!(!params.contains("\"identifier\""), "{params}");
    let (status, oo) = get(
        &s,
        Some(&t),
        "Practitioner?identifier=http://hl7.org/fhir/sid/us-npi%7C1234567893",
    )
    .await;
    assert_eq!((status, epic_code(&oo)), (400, "4100"));
    set_settings(&s, json!({})).await;
    let patients: Value = epic_operator::http::client()
        .unwrap()
        .get(format!("{}/patients", s.admin_url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let patient_id = patients[0]["id"].as_str().unwrap().to_string();
    let patient = client(&s).read_patient(&patient_id).await.unwrap();
    assert_eq!(patient["resourceType"], "Patient");
    let (status, _) = get(&s, Some(&t), "Patient/eUnknown").await;
    assert_eq!(status, 404);
    s.stop().await;
}

#[tokio::test]
async fn paging_with_opaque_expiring_links() {
    let s = sandbox_with(SandboxConfig {
        generate: 45,
        paging_ttl: Duration::from_millis(500),
        ..SandboxConfig::default()
    })
    .await;
    let t = bearer(&s).await;
    let (_, first) = get(&s, Some(&t), "Practitioner").await;
    assert_eq!(
        first["entry"].as_array().unwrap().len(),
        10,
        "default page size 10"
    );
    assert_eq!(first["total"], 45);
    let mut next = first["link"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["relation"] == "next")
        .unwrap()["url"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        !next.contains("offset") && !next.contains("page="),
        "opaque: {next}"
    );
    let mut count = 10;
    let mut pages = 1;
    loop {
        let (status, b) = get(&s, Some(&t), &next).await;
        assert_eq!(status, 200);
        count += b["entry"].as_array().map_or(0, Vec::len);
        pages += 1;
        match b["link"]
            .as_array()
            .unwrap()
            .iter()
            .find(|l| l["relation"] == "next")
        {
            Some(l) => next = l["url"].as_str().unwrap().to_string(),
            None => break,
        }
    }
    assert_eq!((count, pages), (45, 5));
    let (_, b) = get(&s, Some(&t), "Practitioner?_count=20").await;
    assert_eq!(b["entry"].as_array().unwrap().len(), 20);
    let stale = b["link"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["relation"] == "next")
        .unwrap()["url"]
        .as_str()
        .unwrap()
        .to_string();
    tokio::time::sleep(Duration::from_millis(600)).await;
    let (status, oo) = get(&s, Some(&t), &stale).await;
    assert_eq!(
        (status, epic_code(&oo)),
        (400, "4113"),
        "expired paging session"
    );
    s.stop().await;
}

#[tokio::test]
async fn ids_are_opaque_and_differ_between_instances() {
    let a = sandbox().await;
    let b = sandbox().await;
    let ia = id_of(&a, "1234567893").await;
    let ib = id_of(&b, "1234567893").await;
    assert_ne!(ia, ib);
    assert!(
        !ia.contains("alice"),
        "local seed ids are not exposed: {ia}"
    );
    // Real Epic ids carry '-' and '.': the sandbox's follow the FHIR id grammar too.
    assert!(
        epic_operator::reconcile::identity::check_fhir_id(&ia).is_ok()
            && epic_operator::reconcile::identity::check_fhir_id(&ib).is_ok(),
        "{ia} {ib}"
    );
    a.stop().await;
    b.stop().await;
}

#[tokio::test]
async fn writes_refused_by_default_and_accepted_when_enabled() {
    let s = sandbox().await;
    let t = bearer(&s).await;
    let id = id_of(&s, "1234567893").await;
    let (_, p) = get(&s, Some(&t), &format!("Practitioner/{id}")).await;
    let http = epic_operator::http::client().unwrap();
    let put = |body: String, id: String| {
        let http = http.clone();
        let url = format!("{}/Practitioner/{id}", s.fhir_base_url());
        let t = t.clone();
        async move {
            http.put(url)
                .bearer_auth(t)
                .body(body)
                .send()
                .await
                .unwrap()
        }
    };
    let r = put(p.to_string(), id.clone()).await;
    assert_eq!(r.status().as_u16(), 403);
    let oo: Value = r.json().await.unwrap();
    assert_eq!(oo["issue"][0]["code"], "forbidden");
    assert_eq!(epic_code(&oo), "4118");
    let r = http
        .post(format!("{}/Practitioner", s.fhir_base_url()))
        .bearer_auth(&t)
        .body(p.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 403);

    set_settings(&s, json!({"writesEnabled": true})).await;
    let mut changed = p.clone();
    changed["active"] = json!(false);
    let r = put(changed.to_string(), id.clone()).await;
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(r.json::<Value>().await.unwrap()["active"], false);
    assert_eq!(
        put("{not json".into(), id.clone()).await.status().as_u16(),
        400
    );
    let mut wrong = p.clone();
    wrong["id"] = json!("eOther");
    assert_eq!(
        put(wrong.to_string(), id.clone()).await.status().as_u16(),
        400,
        "body id must match"
    );
    assert_eq!(
        put(p.to_string().replace(&id, "eNope"), "eNope".into())
            .await
            .status()
            .as_u16(),
        404
    );
    // Epic-like validation: a create without a name, or with a bad gender code, is 422.
    for bad in [
        json!({"resourceType": "Practitioner"}),
        json!({"resourceType": "Practitioner", "name": [{"family": "X"}], "gender": "f"}),
        json!({"resourceType": "Practitioner", "name": [{"family": "X"}], "identifier": [{"system": "urn:x"}]}),
    ] {
        let r = http
            .post(format!("{}/Practitioner", s.fhir_base_url()))
            .bearer_auth(&t)
            .body(bad.to_string())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 422, "{bad}");
        let oo: Value = r.json().await.unwrap();
        assert_eq!(oo["resourceType"], "OperationOutcome");
    }
    let r = http
        .post(format!("{}/Practitioner", s.fhir_base_url()))
        .bearer_auth(&t)
        .body(json!({"resourceType": "Practitioner", "name": [{"family": "New"}]}).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 201);
    let location = r.headers()["location"].to_str().unwrap().to_string();
    assert!(
        location.starts_with(&format!("{}/Practitioner/", s.fhir_base_url()))
            && location.contains("/_history/"),
        "{location}"
    );
    let r = http
        .patch(format!("{}/Practitioner/{id}", s.fhir_base_url()))
        .bearer_auth(&t)
        .body("[]")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 405);
    assert_eq!(
        r.json::<Value>().await.unwrap()["issue"][0]["code"],
        "not-supported"
    );
    let st = stats(&s).await;
    assert_eq!(
        (
            stat(&st, "update"),
            stat(&st, "create"),
            stat(&st, "refused"),
            stat(&st, "patch")
        ),
        (1, 1, 2, 1)
    );
    s.stop().await;
}

#[tokio::test]
async fn faults_latency_throttle_errors_token_failures_and_rate_limit() {
    let s = sandbox().await;
    let t = bearer(&s).await;
    set_settings(&s, json!({"latencyMs": 150})).await;
    let started = Instant::now();
    get(&s, Some(&t), "Practitioner?family=Smith").await;
    assert!(started.elapsed() >= Duration::from_millis(150));

    set_settings(&s, json!({"latencyMs": 0, "throttleRate": 1.0})).await;
    let r = epic_operator::http::client()
        .unwrap()
        .get(format!("{}/Practitioner?family=Smith", s.fhir_base_url()))
        .bearer_auth(&t)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 429);
    assert!(
        r.headers().get("retry-after").is_none(),
        "like Epic: no Retry-After"
    );

    set_settings(&s, json!({"throttleRate": 0.0, "errorRate": 1.0})).await;
    assert_eq!(get(&s, Some(&t), "Practitioner?family=Smith").await.0, 500);

    set_settings(&s, json!({"errorRate": 0.0, "tokenFailureRate": 1.0})).await;
    let c = client(&s);
    let e = c.tokens().token().await.unwrap_err();
    assert_eq!(e.reason().as_str(), "EpicUnavailable");
    assert!(e.to_string().contains("503"), "{e}");

    set_settings(&s, json!({"tokenFailureRate": 0.0, "rateLimitRps": 5})).await;
    let mut statuses = Vec::new();
    for _ in 0..12 {
        statuses.push(get(&s, Some(&t), "Practitioner?family=Smith").await.0);
    }
    assert!(statuses.contains(&429), "{statuses:?}");
    assert!(
        statuses.iter().filter(|s| **s == 200).count() <= 10,
        "{statuses:?}"
    );
    let st = stats(&s).await;
    assert!(stat(&st, "throttled") >= 2);
    assert!(!st["perSecond"].as_array().unwrap().is_empty());
    let r = epic_operator::http::client()
        .unwrap()
        .post(format!("{}/stats/reset", s.admin_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 204);
    assert_eq!(stat(&stats(&s).await, "search"), 0);
    s.stop().await;
}

#[tokio::test]
async fn seed_problems_are_clear_errors() {
    for (seed, needle) in [
        ("{not json", "not valid JSON"),
        (r#"{"resourceType": "Patient"}"#, "Bundle"),
        (r#"[{"resourceType": "Observation"}]"#, "Observation"),
    ] {
        let err = epic_operator::sandbox::Sandbox::start(SandboxConfig {
            seeds: vec![seed.into()],
            ..SandboxConfig::default()
        })
        .await
        .err()
        .expect("refused");
        assert!(err.to_string().contains(needle), "{err}");
    }
    // A transaction Bundle and a plain array both load.
    for seed in [
        r#"{"resourceType":"Bundle","type":"transaction","entry":[{"resource":{"resourceType":"Practitioner","id":"x"}}]}"#,
        r#"[{"resourceType":"Practitioner","id":"x"},{"resourceType":"Patient","id":"y"}]"#,
    ] {
        let s = epic_operator::sandbox::Sandbox::start(SandboxConfig {
            seeds: vec![seed.into()],
            ..SandboxConfig::default()
        })
        .await
        .unwrap();
        s.stop().await;
    }
    let _ = Settings::default();
}

#[tokio::test]
async fn reset_writes_applies_the_write_then_cuts_the_response() {
    let s = writable_sandbox().await;
    let token = bearer(&s).await;
    let id = id_of(&s, "1234567893").await;
    let http = epic_operator::http::client().unwrap();
    let url = format!("{}/Practitioner/{id}", s.fhir_base_url());
    let (_, mut record) = get(&s, Some(&token), &url).await;
    record["active"] = json!(false);
    set_settings(&s, json!({"resetWrites": 1})).await;
    let sent = http
        .put(&url)
        .bearer_auth(&token)
        .header("Content-Type", "application/fhir+json")
        .body(record.to_string())
        .send()
        .await;
    let failed = match sent {
        Err(_) => true,
        Ok(r) => r.bytes().await.is_err(),
    };
    assert!(failed, "the response is cut off");
    assert_eq!(stat(&stats(&s).await, "update"), 1, "the write happened");
    let (_, now) = get(&s, Some(&token), &url).await;
    assert_eq!(now["active"], false);
    // One write only: the next one answers normally.
    assert_eq!(
        http.put(&url)
            .bearer_auth(&token)
            .header("Content-Type", "application/fhir+json")
            .body(now.to_string())
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
}
