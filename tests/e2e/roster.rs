//! Roster mode at the default resync interval on an instance that offers no identifier search
//! and keeps paging sessions alive for 3 s only.

use std::time::{Duration, Instant};

use epic_operator::crd::{EpicPractitionerSpec, npi_from_prefix};
use epic_operator::sandbox::{SandboxConfig, Settings};
use reqwest::Method;
use serde_json::{Value, json};

use super::{ControlPlane, Operator, World, condition, create, is, stats, wait_for, world};

/// Generated records (`npi_from_prefix(200_000_000 + i)`), every third with a role.
const ROSTER: usize = 400;
const PAGE: u32 = 10;

/// A record for `npi` as someone working in Epic would add it.
fn record_for(npi: &str, given: &str) -> Value {
    json!({"resourceType": "Practitioner", "active": true,
        "identifier": [{"system": "http://hl7.org/fhir/sid/us-npi", "value": npi}],
        "name": [{"use": "official", "family": "Smith", "given": [given]}]})
}

fn spec(npi: &str) -> EpicPractitionerSpec {
    serde_json::from_value(json!({"connectionRef": {"name": "epic"}, "npi": npi})).unwrap()
}

/// Scenario 16: about 41 pages of 10 against a 3 s paging session, at the default 10-minute
/// interval. The earlier pace (80% of the interval over the pages, at most 5 s a page) would
/// have spread this walk over 200 s and met a 4113 after the first page. Every practitioner
/// resolves from the walk: no identifier search (the instance has none), no read by id (the
/// page copy is the observation), roles from one PractitionerRole walk.
pub async fn roster_walk_resolves_without_identifier_search(cp: &ControlPlane) {
    let w = world(
        cp,
        "s16-roster",
        SandboxConfig {
            generate: ROSTER,
            paging_ttl: Duration::from_secs(3),
            settings: Settings {
                identifier_search_unsupported: true,
                ..Settings::default()
            },
            ..SandboxConfig::default()
        },
        |c| {
            c.resync_interval = None;
            c.page_size = Some(PAGE);
            c.requests_per_second = Some(100);
            c.burst = Some(100);
        },
    )
    .await;
    let _op = Operator::start(cp, &w.ns, &[]);
    let picked: Vec<usize> = (0..ROSTER).step_by(10).collect();
    for &i in &picked {
        create(
            &w,
            &format!("g-{i}"),
            spec(&npi_from_prefix(200_000_000 + i as u32)),
        )
        .await;
    }
    // Not on the roster: NotFound from the index alone.
    let absent = npi_from_prefix(300_000_001);
    create(&w, "absent", spec(&absent)).await;
    let started = Instant::now();
    for &i in &picked {
        let p = wait_for(&w, &format!("g-{i}"), "Ready from the walk", |p| {
            is(p, "Ready", "True", "Ready")
        })
        .await;
        let s = p.status.unwrap();
        assert!(s.fhir_id.is_some(), "g-{i} resolved");
        // Every third generated record has one role, found by the PractitionerRole walk.
        let want_roles = usize::from(i % 3 == 0);
        assert_eq!(s.roles.len(), want_roles, "g-{i} roles: {:?}", s.roles);
        if want_roles == 1 {
            assert_eq!(s.roles[0].organization.as_deref(), Some("Synthetic Health"));
        }
    }
    let p = wait_for(&w, "absent", "NotFound from the index", |p| {
        is(p, "Synced", "False", "NotFound")
    })
    .await;
    assert!(
        condition(&p, "Synced").unwrap().message.contains(&absent),
        "{:?}",
        condition(&p, "Synced")
    );
    let elapsed = started.elapsed();
    let st = stats(&w).await;
    assert_eq!(st["identifierSearch"], 0, "no identifier search: {st}");
    assert_eq!(
        st["pagingExpired"], 0,
        "the walk finished inside its paging session: {st}"
    );
    assert_eq!(st["read"], 0, "page copies observed the records: {st}");
    // One Practitioner walk and one PractitionerRole walk: two first pages, the rest `next`
    // links; with 400 generated records and the seed, 40 and more pages.
    assert_eq!(st["search"], 2, "two walks, nothing per practitioner: {st}");
    assert!(st["page"].as_u64().unwrap_or(0) >= 40, "{st}");
    let c = w.connections.get("epic").await.unwrap();
    assert_eq!(
        c.status.and_then(|s| s.npi_search_supported),
        Some(false),
        "the connection says identifier search is not offered"
    );
    eprintln!(
        "roster of {ROSTER}: {} practitioners resolved in {elapsed:?} with {} FHIR requests",
        picked.len() + 1,
        st["fhirTotal"]
    );
}

/// Scenario 18: Epic hides a record from the roster walk (a `suppressed` entry on the page) on
/// an instance without identifier search. Under CreateOrUpdate the practitioner whose record is
/// hidden is SearchIncomplete, never NotFound, and nothing is POSTed: the record exists once.
/// (Before, the walk dropped the entry, the NPI read as absent and a second record was created.)
pub async fn a_record_hidden_from_the_walk_is_never_created(cp: &ControlPlane) {
    let alice = "1234567893";
    let w = world(
        cp,
        "s18-hidden",
        SandboxConfig {
            settings: Settings {
                writes_enabled: true,
                identifier_search_unsupported: true,
                walk_suppressed_npis: vec![alice.into()],
                ..Settings::default()
            },
            ..SandboxConfig::default()
        },
        |_| {},
    )
    .await;
    let _op = Operator::start(cp, &w.ns, &[]);
    let mut spec = super::example("alice-smith.yaml");
    spec.management_policy = epic_operator::crd::ManagementPolicy::CreateOrUpdate;
    create(&w, "alice-smith", spec).await;
    let p = wait_for(&w, "alice-smith", "SearchIncomplete", |p| {
        condition(p, "Synced").is_some_and(|c| c.reason == "SearchIncomplete")
    })
    .await;
    assert!(p.status.unwrap().fhir_id.is_none());
    // A few more passes: still nothing created.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(stats(&w).await["create"], 0);
    let carrying = super::records_carrying(&w, alice).await;
    assert_eq!(carrying.len(), 1, "exactly one record carries the NPI");
}

/// Scenario 19: two EpicPractitioners declare one NPI on one connection: both hold with
/// DuplicateNPI and nothing is written; once one is deleted, the other syncs.
pub async fn two_objects_for_one_npi_both_hold(cp: &ControlPlane) {
    let w = world(cp, "s19-duplicate", super::writable(), |_| {}).await;
    let _op = Operator::start(cp, &w.ns, &[]);
    // bob-jones's record differs from the seed: a write would follow if either acted.
    for name in ["bob-a", "bob-b"] {
        create(&w, name, super::example("bob-jones.yaml")).await;
    }
    both_hold_until_one_goes(&w, [("bob-a", "bob-b"), ("bob-b", "bob-a")]).await;
}

/// Both objects hold with DuplicateNPI, each message naming the other as given, and nothing is
/// written; once the second is deleted, the first syncs with one PUT.
async fn both_hold_until_one_goes(w: &World, holding: [(&str, &str); 2]) {
    for (name, other) in holding {
        let p = wait_for(w, name, "DuplicateNPI", |p| {
            condition(p, "Synced").is_some_and(|c| c.reason == "DuplicateNPI")
        })
        .await;
        let message = &condition(&p, "Synced").unwrap().message;
        assert!(message.contains(other), "{message}");
    }
    let s = stats(w).await;
    assert_eq!(s["update"], 0, "{s}");
    assert_eq!(s["create"], 0, "{s}");
    let (first, second) = (holding[0].0, holding[1].0);
    w.practitioners
        .delete(second, &Default::default())
        .await
        .unwrap();
    wait_for(w, first, "Ready after the duplicate went", |p| {
        is(p, "Ready", "True", "Ready")
    })
    .await;
    assert_eq!(stats(w).await["update"], 1);
}

/// Scenario 42: two EpicConnections point at one Epic instance, and one EpicPractitioner on
/// each declares the same NPI: both hold with DuplicateNPI (the message names the other and its
/// connection) and nothing is written; once one is deleted, the other syncs. (Before, each
/// connection saw only its own practitioners, and both wrote the one record.) The second
/// connection spells the base URL with a trailing slash and at first names a missing Secret:
/// declared on the instance but never ready, it still holds the first one's practitioner.
/// (Before, only ready connections counted, and bob-a wrote the record bob-b declares.)
pub async fn two_connections_to_one_instance_hold_a_twice_declared_npi(cp: &ControlPlane) {
    let w = world(cp, "s42-two-connections", super::writable(), |_| {}).await;
    let spec = w.connections.get("epic").await.unwrap().spec;
    let mut broken = spec.clone();
    broken.fhir_base_url = format!("{}/", spec.fhir_base_url);
    broken.private_key_secret_ref.name = "no-such-secret".into();
    w.connections
        .create(
            &kube::api::PostParams::default(),
            &epic_operator::crd::EpicConnection::new("epic-again", broken),
        )
        .await
        .unwrap();
    let _op = Operator::start(cp, &w.ns, &[]);
    // bob-jones's record differs from the seed: a write would follow if either acted.
    let mut again = super::example("bob-jones.yaml");
    again.connection_ref.name = "epic-again".into();
    create(&w, "bob-b", again).await;
    create(&w, "bob-a", super::example("bob-jones.yaml")).await;
    let p = wait_for(
        &w,
        "bob-a",
        "DuplicateNPI while epic-again is broken",
        |p| condition(p, "Synced").is_some_and(|c| c.reason == "DuplicateNPI"),
    )
    .await;
    let message = &condition(&p, "Synced").unwrap().message;
    assert!(
        message.contains("bob-b (through EpicConnection epic-again)"),
        "{message}"
    );
    let s = stats(&w).await;
    assert_eq!(s["update"], 0, "{s}");
    assert_eq!(s["create"], 0, "{s}");
    // Mended, the second connection becomes ready: both hold, until one goes.
    let fixed = serde_json::json!({"spec": {"privateKeySecretRef": spec.private_key_secret_ref}});
    w.connections
        .patch(
            "epic-again",
            &Default::default(),
            &kube::api::Patch::Merge(&fixed),
        )
        .await
        .unwrap();
    let holding = [
        ("bob-a", "bob-b (through EpicConnection epic-again)"),
        ("bob-b", "bob-a (through EpicConnection epic)"),
    ];
    both_hold_until_one_goes(&w, holding).await;
}

/// Scenario 25: a POST's answer is lost (the connection is cut after Epic applied it) on an
/// instance with neither identifier search nor conditional create. The create attempt was
/// recorded in status before the POST, so the next pass does not POST again on the walk from
/// before it (CreateUnconfirmed); the next walk finds the record and it is adopted. Exactly one
/// record carries the NPI. (Before, the next pass read the old walk's "not found" and POSTed a
/// second record.)
pub async fn a_lost_create_answer_never_creates_twice(cp: &ControlPlane) {
    let npi = "1245319599";
    let w = world(
        cp,
        "s20-lost-create",
        SandboxConfig {
            settings: Settings {
                writes_enabled: true,
                identifier_search_unsupported: true,
                conditional_create_unsupported: true,
                reset_writes: 1,
                ..Settings::default()
            },
            ..SandboxConfig::default()
        },
        |c| c.resync_interval = Some("10s".into()),
    )
    .await;
    let _op = Operator::start(cp, &w.ns, &[]);
    let mut spec = super::example("alice-smith.yaml");
    spec.npi = npi.into();
    spec.management_policy = epic_operator::crd::ManagementPolicy::CreateOrUpdate;
    create(&w, "new-clinician", spec).await;
    let p = wait_for(&w, "new-clinician", "the lost create adopted", |p| {
        p.status.as_ref().is_some_and(|s| s.fhir_id.is_some())
    })
    .await;
    let s = p.status.unwrap();
    assert!(s.create_attempt.is_none(), "{:?}", s.create_attempt);
    // More passes and walks: still one POST.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(stats(&w).await["create"], 1, "one POST");
    let carrying = super::records_carrying(&w, npi).await;
    assert_eq!(carrying.len(), 1, "exactly one record carries the NPI");
    assert_eq!(carrying[0]["id"].as_str(), s.fhir_id.as_deref());
}

/// Scenario 27: a practitioner already resolved to its record; then a second record with the
/// same NPI appears in Epic and someone edits the first. The next walk shows the NPI on two
/// records: the practitioner holds as AmbiguousNPI and its known record is not written.
/// (Before, the known id kept being written after the index showed the NPI twice.)
pub async fn a_known_record_whose_npi_appears_twice_holds(cp: &ControlPlane) {
    let alice = "1234567893";
    let w = world(cp, "s22-known-ambiguous", super::writable(), |c| {
        c.resync_interval = Some("10s".into())
    })
    .await;
    let _op = Operator::start(cp, &w.ns, &[]);
    create(&w, "alice-smith", super::example("alice-smith.yaml")).await;
    let p = wait_for(&w, "alice-smith", "Ready", |p| {
        is(p, "Ready", "True", "Ready")
    })
    .await;
    let id = p.status.unwrap().fhir_id.unwrap();
    super::admin_send(
        &w,
        Method::POST,
        "practitioners",
        Some(record_for(alice, "Alicia")),
    )
    .await;
    let edit = json!({"active": false});
    super::admin_send(
        &w,
        Method::PATCH,
        &format!("practitioners/{id}"),
        Some(edit),
    )
    .await;
    let updates = stats(&w).await["update"].as_u64().unwrap_or(0);
    let p = wait_for(&w, "alice-smith", "AmbiguousNPI after the walk", |p| {
        is(p, "Synced", "False", "AmbiguousNPI")
    })
    .await;
    let message = &condition(&p, "Synced").unwrap().message;
    assert!(message.contains(&id), "names the records: {message}");
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        stats(&w).await["update"].as_u64().unwrap_or(0),
        updates,
        "the known record was not written while its NPI is on two records"
    );
}

/// Scenario 29: the connection is pointed at another instance while a slow first walk of the
/// old one is running. That walk stops (the old instance sees no more page requests), and the
/// practitioner resolves on the new instance: nothing found on the old one is used there.
/// (Before, the old walk ran to its end and its findings reached the rebuilt connection.)
pub async fn a_walk_of_a_repointed_connection_stops(cp: &ControlPlane) {
    let w = world(
        cp,
        "s29-repointed",
        SandboxConfig {
            generate: 300,
            settings: Settings {
                latency_ms: 300,
                ..Settings::default()
            },
            ..SandboxConfig::default()
        },
        |c| {
            c.page_size = Some(PAGE);
            c.resync_interval = Some("1h".into());
        },
    )
    .await;
    let _op = Operator::start(cp, &w.ns, &[]);
    create(&w, "alice-smith", super::example("alice-smith.yaml")).await;
    let started = Instant::now();
    while stats(&w).await["page"].as_u64().unwrap_or(0) < 3 {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the walk never began"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The other instance, with its own key.
    let other = epic_operator::sandbox::Sandbox::start(SandboxConfig {
        seeds: vec![super::SEED.into()],
        ..SandboxConfig::default()
    })
    .await
    .expect("sandbox");
    let secrets: kube::Api<k8s_openapi::api::core::v1::Secret> =
        kube::Api::namespaced(w.client.clone(), &w.ns);
    secrets
        .create(
            &Default::default(),
            &k8s_openapi::api::core::v1::Secret {
                metadata: kube::api::ObjectMeta {
                    name: Some("other-key".into()),
                    ..Default::default()
                },
                string_data: Some(
                    [(
                        "private-key.pem".to_string(),
                        other.dev_key_pem.clone().expect("dev key"),
                    )]
                    .into(),
                ),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    w.connections
        .patch(
            "epic",
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(json!({"spec": {
                "fhirBaseUrl": other.fhir_base_url(),
                "privateKeySecretRef": {"name": "other-key", "key": "private-key.pem"}
            }})),
        )
        .await
        .unwrap();
    let p = wait_for(&w, "alice-smith", "resolved on the new instance", |p| {
        p.status
            .as_ref()
            .is_some_and(|s| s.connection.as_deref() == Some(other.fhir_base_url().as_str()))
    })
    .await;
    assert!(p.status.unwrap().fhir_id.is_some());
    // Give a stopping walk a moment, then the old instance must see no more pages.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let pages = stats(&w).await["page"].as_u64().unwrap_or(0);
    tokio::time::sleep(Duration::from_secs(4)).await;
    let later = stats(&w).await["page"].as_u64().unwrap_or(0);
    assert_eq!(
        later, pages,
        "the old instance's walk stopped ({pages} pages of about 30 served)"
    );
    assert!(
        pages < 30,
        "the walk was stopped before its end: {pages} pages"
    );
}

/// Scenario 41: an instance with writes but neither identifier search nor conditional create,
/// whose roster walks start failing after the first ones (400, 4110). Meanwhile someone adds a
/// record for a new NPI in Epic. A practitioner for that NPI, declared once the last complete
/// walk is older than two walk intervals and a minute (2 x 10 s + 60 s here), holds as SearchIncomplete and nothing
/// is POSTed. (Before, the old walk's "not found" was taken as proof and a second record was
/// created. Once walks come back, the next one finds the record and wakes the practitioner, as
/// in scenario 25.)
pub async fn an_old_walk_never_proves_an_npi_absent(cp: &ControlPlane) {
    let npi = "1245319599";
    let w = world(
        cp,
        "s41-old-walk",
        SandboxConfig {
            settings: Settings {
                writes_enabled: true,
                identifier_search_unsupported: true,
                conditional_create_unsupported: true,
                ..Settings::default()
            },
            ..SandboxConfig::default()
        },
        |c| c.resync_interval = Some("10s".into()),
    )
    .await;
    let _op = Operator::start(cp, &w.ns, &[]);
    create(&w, "alice-smith", super::example("alice-smith.yaml")).await;
    wait_for(&w, "alice-smith", "Ready from the first walk", |p| {
        is(p, "Ready", "True", "Ready")
    })
    .await;
    let refuse_walks = json!({"walkNeedsParameters": true});
    super::admin_send(&w, Method::PUT, "settings", Some(refuse_walks)).await;
    let added = record_for(npi, "Alice");
    let added = super::admin_send(&w, Method::POST, "practitioners", Some(added)).await;
    assert!(added["id"].is_string(), "{added}");
    // The last walk that completed started before the refusal: 2 x 10 s + 60 s, and a margin.
    tokio::time::sleep(Duration::from_secs(85)).await;
    let mut declared = super::example("alice-smith.yaml");
    declared.npi = npi.into();
    declared.management_policy = epic_operator::crd::ManagementPolicy::CreateOrUpdate;
    create(&w, "new-clinician", declared).await;
    let p = wait_for(&w, "new-clinician", "SearchIncomplete", |p| {
        condition(p, "Synced").is_some_and(|c| c.reason == "SearchIncomplete")
    })
    .await;
    let message = &condition(&p, "Synced").unwrap().message;
    assert!(message.contains("nothing is created"), "{message}");
    let warnings = p.status.unwrap().warnings;
    assert!(
        warnings
            .iter()
            .any(|w| w.contains("the last complete walk started more than 80s ago")),
        "status.warnings says why: {warnings:?}"
    );
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(stats(&w).await["create"], 0, "no POST on an old walk");
    let carrying = super::records_carrying(&w, npi).await;
    assert_eq!(carrying.len(), 1, "exactly one record carries the NPI");
}

/// Scenario 43: a practitioner under CreateOrUpdate is Ready on its record; then the record
/// leaves Epic (removed, or hidden from this client: its id answers 404 and no search finds the
/// NPI). "Check now" reads it: the practitioner holds as RecordGone, keeps the record's id in
/// status, and nothing is POSTed, then or at the next check. (Before, the search's "not found"
/// led to a create in its place.)
pub async fn a_record_gone_from_epic_is_never_replaced(cp: &ControlPlane) {
    use epic_operator::crd::REQUESTED_AT_ANNOTATION;
    let w = world(cp, "s43-record-gone", super::writable(), |_| {}).await;
    let _op = Operator::start(cp, &w.ns, &[]);
    let mut spec = super::example("alice-smith.yaml");
    spec.management_policy = epic_operator::crd::ManagementPolicy::CreateOrUpdate;
    create(&w, "alice-smith", spec).await;
    let p = wait_for(&w, "alice-smith", "Ready", |p| {
        is(p, "Ready", "True", "Ready")
    })
    .await;
    let id = p.status.unwrap().fhir_id.unwrap();
    super::admin_send(&w, Method::DELETE, &format!("practitioners/{id}"), None).await;
    for asked in ["2026-12-04T00:00:00Z", "again"] {
        super::annotate(&w, "alice-smith", REQUESTED_AT_ANNOTATION, Some(asked)).await;
        let p = wait_for(&w, "alice-smith", "RecordGone after the check", |p| {
            p.status.as_ref().is_some_and(|s| {
                s.last_handled_requested_at.as_deref() == Some(asked)
                    && condition(p, "Synced").is_some_and(|c| c.reason == "RecordGone")
            })
        })
        .await;
        let message = &condition(&p, "Synced").unwrap().message;
        assert!(message.contains(&format!("record {id}")), "{message}");
        assert_eq!(p.status.unwrap().fhir_id.as_deref(), Some(id.as_str()));
        assert_eq!(stats(&w).await["create"], 0, "nothing created in its place");
    }
}

/// Scenario 44: an instance without identifier search; a Ready practitioner's record is
/// removed from Epic and another record for its NPI added. The next walk misses the known
/// record and finds the NPI on the other one: the practitioner follows it there (read by id,
/// then written), with no search and no POST. (Before, the known record's 404 led to an
/// identifier search the instance refuses, and the practitioner never found the record.)
pub async fn a_gone_record_is_followed_to_the_one_the_walk_found(cp: &ControlPlane) {
    let npi = "1234567893";
    let w = world(
        cp,
        "s44-gone-followed",
        SandboxConfig {
            settings: Settings {
                writes_enabled: true,
                identifier_search_unsupported: true,
                ..Settings::default()
            },
            ..SandboxConfig::default()
        },
        |c| c.resync_interval = Some("10s".into()),
    )
    .await;
    let _op = Operator::start(cp, &w.ns, &[]);
    create(&w, "alice-smith", super::example("alice-smith.yaml")).await;
    let p = wait_for(&w, "alice-smith", "Ready from the first walk", |p| {
        is(p, "Ready", "True", "Ready")
    })
    .await;
    let gone = p.status.unwrap().fhir_id.unwrap();
    super::admin_send(&w, Method::DELETE, &format!("practitioners/{gone}"), None).await;
    let added = super::admin_send(
        &w,
        Method::POST,
        "practitioners",
        Some(record_for(npi, "Alice")),
    )
    .await;
    let added = added["id"].as_str().unwrap().to_string();
    let p = wait_for(
        &w,
        "alice-smith",
        "Ready on the record the walk found",
        |p| {
            is(p, "Ready", "True", "Ready")
                && p.status.as_ref().and_then(|s| s.fhir_id.as_deref()) == Some(added.as_str())
        },
    )
    .await;
    assert!(p.status.unwrap().last_error.is_none());
    let s = stats(&w).await;
    assert_eq!(s["create"], 0, "{s}");
    assert_eq!(s["identifierSearch"], 0, "{s}");
    assert_eq!(super::records_carrying(&w, npi).await.len(), 1);
}
