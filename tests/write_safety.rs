//! Tier 2: the write path against realistic Epic data, over real HTTP against the sandbox. Each
//! test is one way a write could hit the wrong clinician, corrupt an identifier or lose an
//! update; the sandbox is set up to produce that case first.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use epic_operator::crd::{EpicPractitionerSpec, NPI_OID_SYSTEM, NPI_SYSTEM, npi_from_prefix};
use epic_operator::fhir::FhirClient;
use epic_operator::pipeline::{
    CreateGuard, Prefetched, SyncOutcome, SyncRequest, WriteOutcome, sync_practitioner,
};
use epic_operator::reconcile::{
    Action, Disclosure, HoldReason, Normalizer, Resolution, WriteCapability,
};
use epic_operator::sandbox::{Sandbox, SandboxConfig, Settings};
use serde_json::{Value, json};

const NPI: &str = "1234567893";

async fn empty_writable() -> Sandbox {
    sandbox_with(SandboxConfig {
        settings: Settings {
            writes_enabled: true,
            ..Settings::default()
        },
        ..SandboxConfig::default()
    })
    .await
}

fn spec(npi: &str, fields: Value) -> EpicPractitionerSpec {
    let mut v = json!({"connectionRef": {"name": "epic"}, "npi": npi});
    for (k, f) in fields.as_object().unwrap() {
        v[k] = f.clone();
    }
    serde_json::from_value(v).unwrap()
}

async fn sync(c: &FhirClient, spec: &EpicPractitionerSpec, known_id: Option<&str>) -> SyncOutcome {
    sync_with(c, spec, known_id, true).await
}

/// A request that writes where the plan says so, with the defaults of these tests.
fn request<'a>(
    spec: &'a EpicPractitionerSpec,
    known_id: Option<&'a str>,
    normalizer: &'a Normalizer,
) -> SyncRequest<'a> {
    SyncRequest {
        spec,
        known_id,
        writes: WriteCapability::Enabled,
        deleting: false,
        paused: false,
        perform_writes: true,
        fetch_roles: false,
        normalizer,
        conditional_create: true,
        disclosure: Disclosure::Masked,
        prefetched: None,
        known_roles: None,
        create_guard: CreateGuard::SEARCH,
        attempt_recorder: None,
    }
}

async fn sync_with(
    c: &FhirClient,
    spec: &EpicPractitionerSpec,
    known_id: Option<&str>,
    perform_writes: bool,
) -> SyncOutcome {
    let norm = Normalizer::default();
    sync_practitioner(
        c,
        SyncRequest {
            perform_writes,
            ..request(spec, known_id, &norm)
        },
    )
    .await
    .unwrap()
}

/// Adds a record out of band (as someone working in Epic would); returns its opaque id.
async fn add(s: &Sandbox, record: Value) -> String {
    let r: Value = epic_operator::http::client()
        .unwrap()
        .post(format!("{}/practitioners", s.admin_url()))
        .json(&record)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    r["id"].as_str().unwrap().to_string()
}

async fn show(s: &Sandbox, id: &str) -> Value {
    epic_operator::http::client()
        .unwrap()
        .get(format!("{}/practitioners/{id}", s.admin_url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

fn record(identifier: Value) -> Value {
    json!({"identifier": identifier, "active": true,
        "name": [{"use": "official", "family": "Lee", "given": ["Kim"]}]})
}

#[tokio::test]
async fn a_loosely_matched_record_is_never_taken_for_the_clinician() {
    let s = empty_writable().await;
    set_settings(&s, json!({"looseIdentifierSearch": true})).await;
    let other = add(&s, record(json!([{"system": NPI_SYSTEM, "value": NPI}]))).await;
    let before = show(&s, &other).await;
    // Shares the first six digits: the loose server returns the other clinician's record.
    let npi = npi_from_prefix(123_456_000);
    let c = client(&s);
    let o = sync(
        &c,
        &spec(&npi, json!({"active": false, "name": {"family": "Park"}})),
        None,
    )
    .await;
    assert_eq!(o.resolution, Resolution::NotFound);
    assert!(!o.wrote());
    assert_eq!(
        show(&s, &other).await,
        before,
        "the other clinician is untouched"
    );
    assert_eq!(stat(&stats(&s).await, "update"), 0);
    s.stop().await;
}

#[tokio::test]
async fn an_npi_under_the_oid_system_resolves_and_is_never_duplicated() {
    let s = empty_writable().await;
    let id = add(
        &s,
        record(json!([{"system": NPI_OID_SYSTEM, "value": NPI}])),
    )
    .await;
    let c = client(&s);
    let o = sync(
        &c,
        &spec(
            NPI,
            json!({"active": false, "managementPolicy": "CreateOrUpdate"}),
        ),
        None,
    )
    .await;
    assert_eq!(o.fhir_id.as_deref(), Some(id.as_str()));
    assert!(matches!(o.write, WriteOutcome::Updated), "{:?}", o.write);
    let st = stats(&s).await;
    assert_eq!(stat(&st, "create"), 0, "no duplicate clinician");
    assert_eq!(
        show(&s, &id).await["identifier"],
        json!([{"system": NPI_OID_SYSTEM, "value": NPI}])
    );
    s.stop().await;
}

#[tokio::test]
async fn several_npi_entries_and_other_identifiers_stay_byte_identical() {
    let s = empty_writable().await;
    let old = npi_from_prefix(987_654_321);
    let identifiers = json!([
        {"use": "old", "system": NPI_SYSTEM, "value": old, "period": {"end": "2019-06-30"}},
        {"use": "usual", "system": NPI_SYSTEM, "value": NPI},
        {"system": "urn:oid:1.2.840.114350.1.13.0.1.7.5.737384.0", "value": "E1234"}
    ]);
    let id = add(&s, record(identifiers.clone())).await;
    let c = client(&s);
    let o = sync(&c, &spec(NPI, json!({"active": false})), None).await;
    assert!(matches!(o.write, WriteOutcome::Updated), "{:?}", o.write);
    let after = show(&s, &id).await;
    assert_eq!(after["active"], false);
    assert_eq!(after["identifier"].to_string(), identifiers.to_string());
    s.stop().await;
}

#[tokio::test]
async fn usual_only_names_are_replaced_in_place_and_text_keeps_prefix_and_suffix() {
    let s = empty_writable().await;
    let usual = add(
        &s,
        json!({"identifier": [{"system": NPI_SYSTEM, "value": NPI}],
            "name": [{"use": "usual", "family": "Lee", "given": ["Kim"]}]}),
    )
    .await;
    let npi2 = npi_from_prefix(111_222_333);
    let texted = add(
        &s,
        json!({"identifier": [{"system": NPI_SYSTEM, "value": npi2}],
            "name": [{"use": "official", "text": "Dr. Kim Text Jr.", "family": "Text", "given": ["Kim"], "prefix": ["Dr."], "suffix": ["Jr."]}]}),
    )
    .await;
    let c = client(&s);
    // In sync as it is: the usual name is the one Epic shows.
    let o = sync(
        &c,
        &spec(NPI, json!({"name": {"family": "Lee", "given": ["Kim"]}})),
        None,
    )
    .await;
    assert!(o.drift.is_empty(), "{:?}", o.drift.entries);
    let o = sync(
        &c,
        &spec(NPI, json!({"name": {"family": "Park", "given": ["Kim"]}})),
        None,
    )
    .await;
    assert!(matches!(o.write, WriteOutcome::Updated));
    assert_eq!(
        show(&s, &usual).await["name"],
        json!([{"use": "usual", "family": "Park", "given": ["Kim"]}]),
        "replaced in place, no second (official) name"
    );
    let o = sync(
        &c,
        &spec(&npi2, json!({"name": {"family": "Lee", "given": ["Kim"]}})),
        None,
    )
    .await;
    assert!(matches!(o.write, WriteOutcome::Updated));
    let name = &show(&s, &texted).await["name"][0];
    assert_eq!(name["text"], "Dr. Kim Lee Jr.");
    assert_eq!(name["prefix"], json!(["Dr."]));
    assert_eq!(name["suffix"], json!(["Jr."]));
    s.stop().await;
}

#[tokio::test]
async fn undeclared_entries_stay_and_formatting_alone_is_no_write() {
    let s = empty_writable().await;
    let id = add(
        &s,
        json!({"identifier": [{"system": NPI_SYSTEM, "value": NPI}],
            "name": [{"use": "official", "family": "Lee"}],
            "telecom": [
                {"system": "phone", "value": "(608) 555-0100", "use": "work"},
                {"system": "pager", "value": "608-555-0177"},
                {"system": "email", "value": "Kim.Lee@Example.ORG", "use": "work"}
            ],
            "qualification": [
                {"code": {"coding": [{"system": "urn:oid:1.2.840.114350.1.13.0.1.7.4.836982.1040", "code": "1"}], "text": "Board certified"}},
                {"code": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0360", "code": "MD"}]}, "period": {"start": "2004"}}
            ]}),
    )
    .await;
    let before = show(&s, &id).await;
    let c = client(&s);
    // The same values spelled differently: no drift, no write, on every resync.
    let same = spec(
        NPI,
        json!({"telecom": [
            {"system": "phone", "value": "608-555-0100", "use": "work"},
            {"system": "email", "value": "Kim.Lee@example.org", "use": "work"}],
          "qualifications": [{"code": "MD"}]}),
    );
    for _ in 0..2 {
        let o = sync(&c, &same, None).await;
        assert!(o.drift.is_empty(), "{:?}", o.drift.entries);
        assert!(!o.wrote());
    }
    assert_eq!(stat(&stats(&s).await, "update"), 0);
    // A changed work phone and a new qualification: the pager and both existing
    // qualifications stay; the new coding carries a system.
    let changed = spec(
        NPI,
        json!({"telecom": [{"system": "phone", "value": "608-555-0111", "use": "work"}],
          "qualifications": [{"code": "RN", "display": "Registered nurse"}]}),
    );
    let o = sync(&c, &changed, None).await;
    assert!(matches!(o.write, WriteOutcome::Updated), "{:?}", o.write);
    assert!(o.remaining.is_empty(), "{:?}", o.remaining.entries);
    let after = show(&s, &id).await;
    let telecom = after["telecom"].as_array().unwrap();
    assert_eq!(telecom.len(), 3);
    assert_eq!(telecom[0]["value"], "608-555-0111");
    assert_eq!(telecom[1], before["telecom"][1], "undeclared pager stays");
    assert_eq!(telecom[2], before["telecom"][2], "undeclared e-mail stays");
    let quals = after["qualification"].as_array().unwrap();
    assert_eq!(
        &quals[..2],
        &before["qualification"].as_array().unwrap()[..]
    );
    assert_eq!(
        quals[2]["code"]["coding"][0]["system"],
        "http://terminology.hl7.org/CodeSystem/v2-0360"
    );
    s.stop().await;
}

#[tokio::test]
async fn an_edit_between_read_and_write_gets_412_then_a_retry_that_keeps_it() {
    let s = empty_writable().await;
    let id = add(&s, record(json!([{"system": NPI_SYSTEM, "value": NPI}]))).await;
    set_settings(
        &s,
        json!({"editBeforePut": {"address": [{"city": "Madison"}]}, "editBeforePutCount": 1}),
    )
    .await;
    let c = client(&s);
    let o = sync(&c, &spec(NPI, json!({"active": false})), None).await;
    assert!(matches!(o.write, WriteOutcome::Updated), "{:?}", o.write);
    assert_eq!(o.write_attempts, 2);
    assert!(
        o.if_match.as_deref().is_some_and(|m| m.starts_with("W/\"")),
        "{:?}",
        o.if_match
    );
    let st = stats(&s).await;
    assert_eq!(stat(&st, "conflicts"), 1);
    assert_eq!(stat(&st, "update"), 1);
    let after = show(&s, &id).await;
    assert_eq!(after["active"], false);
    assert_eq!(
        after["address"],
        json!([{"city": "Madison"}]),
        "the edit survives"
    );

    // A record that changes before every attempt: Conflict after three, nothing lost.
    set_settings(
        &s,
        json!({"editBeforePut": {"address": [{"city": "Verona"}]}, "editBeforePutCount": 5}),
    )
    .await;
    let o = sync(&c, &spec(NPI, json!({"active": true})), Some(&id)).await;
    let WriteOutcome::Conflict { attempts, last } = &o.write else {
        panic!("{:?}", o.write)
    };
    assert_eq!(*attempts, 3);
    assert_eq!(last.http_status(), Some(412));
    assert_eq!(show(&s, &id).await["active"], false);
    s.stop().await;
}

#[tokio::test]
async fn subsetted_search_copies_are_never_written_back() {
    let s = empty_writable().await;
    let mut r = record(json!([{"system": NPI_SYSTEM, "value": NPI}]));
    r["photo"] = json!([{"url": "https://example.org/p.png"}]);
    let id = add(&s, r).await;
    set_settings(&s, json!({"subsettedSearch": true})).await;
    let c = client(&s);
    let o = sync(&c, &spec(NPI, json!({"gender": "female"})), None).await;
    assert!(matches!(o.write, WriteOutcome::Updated), "{:?}", o.write);
    let after = show(&s, &id).await;
    assert_eq!(after["active"], true, "active survives");
    assert_eq!(
        after["photo"],
        json!([{"url": "https://example.org/p.png"}])
    );
    assert_eq!(after["gender"], "female");
    assert!(
        after["meta"].get("tag").is_none(),
        "no SUBSETTED tag written"
    );
    s.stop().await;
}

#[tokio::test]
async fn suppressed_or_sparse_search_results_never_lead_to_a_create() {
    let s = empty_writable().await;
    add(&s, record(json!([{"system": NPI_SYSTEM, "value": NPI}]))).await;
    set_settings(&s, json!({"suppressedNpis": [NPI], "sparsePages": true})).await;
    let c = client(&s);
    let o = sync(
        &c,
        &spec(
            NPI,
            json!({"managementPolicy": "CreateOrUpdate", "name": {"family": "Lee"}}),
        ),
        None,
    )
    .await;
    assert_eq!(o.resolution, Resolution::Incomplete);
    assert_eq!(o.action, Action::Hold(HoldReason::SearchIncomplete));
    assert!(
        o.warnings.iter().any(|w| w.contains("59204")),
        "{:?}",
        o.warnings
    );
    assert_eq!(stat(&stats(&s).await, "create"), 0);
    // Sparse pages alone (an empty first page with a next link) still find the record.
    set_settings(&s, json!({"suppressedNpis": []})).await;
    let o = sync(&c, &spec(NPI, json!({})), None).await;
    assert_eq!(o.resolution, Resolution::Found);
    s.stop().await;
}

#[tokio::test]
async fn ids_with_dash_and_dot_go_into_paths_as_they_are() {
    let s = sandbox_with(SandboxConfig {
        generate: 120,
        settings: Settings {
            writes_enabled: true,
            ..Settings::default()
        },
        ..SandboxConfig::default()
    })
    .await;
    let list = practitioners(&s).await;
    let c = client(&s);
    let mut used: Vec<String> = Vec::new();
    for ch in ['-', '.'] {
        // A different record for each character (one id may carry both).
        let p = list
            .as_array()
            .unwrap()
            .iter()
            .find(|p| {
                let id = p["id"].as_str().unwrap();
                id.contains(ch) && !used.iter().any(|u| u == id)
            })
            .unwrap_or_else(|| panic!("no generated id with {ch}"));
        used.push(p["id"].as_str().unwrap().to_string());
        let (id, npi) = (p["id"].as_str().unwrap(), p["npi"].as_str().unwrap());
        let read = c.read_practitioner(id).await.unwrap();
        assert_eq!(read.body["id"], id);
        let o = sync(&c, &spec(npi, json!({"active": false})), Some(id)).await;
        assert!(
            matches!(o.write, WriteOutcome::Updated),
            "{ch}: {:?}",
            o.write
        );
    }
    assert!(c.read_practitioner("../metadata").await.is_err());
    s.stop().await;
}

/// Sends an out-of-band change to the sandbox's admin API (`DELETE practitioners/{id}`
/// removes a record, `POST practitioners/{id}/merge` merges it away).
async fn admin(s: &Sandbox, method: reqwest::Method, path: &str) {
    let r = epic_operator::http::client()
        .unwrap()
        .request(method, format!("{}/{path}", s.admin_url()))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{path}: {}", r.status());
}

/// A record carrying NPI, merged away in Epic (its id answers 410, Epic code 4107).
async fn merged_away(s: &Sandbox) -> String {
    let id = add(s, record(json!([{"system": NPI_SYSTEM, "value": NPI}]))).await;
    admin(
        s,
        reqwest::Method::POST,
        &format!("practitioners/{id}/merge"),
    )
    .await;
    id
}

/// A record carrying NPI merged away in Epic, and the survivor (the NPI under the OID system):
/// (merged id, surviving id).
async fn merged_record(s: &Sandbox) -> (String, String) {
    let old_id = merged_away(s).await;
    let survivor = add(s, record(json!([{"system": NPI_OID_SYSTEM, "value": NPI}]))).await;
    (old_id, survivor)
}

#[tokio::test]
async fn a_merged_record_resolves_again_by_npi() {
    let s = empty_writable().await;
    let (old_id, survivor) = merged_record(&s).await;
    let c = client(&s);
    let o = sync(&c, &spec(NPI, json!({"active": false})), Some(&old_id)).await;
    assert!(o.searched);
    assert_eq!(o.fhir_id.as_deref(), Some(survivor.as_str()));
    assert!(matches!(o.write, WriteOutcome::Updated));
    s.stop().await;
}

#[tokio::test]
async fn an_indexed_id_merged_since_the_walk_is_searched_again_never_created() {
    let s = empty_writable().await;
    let (old_id, survivor) = merged_record(&s).await;
    let c = client(&s);
    let norm = Normalizer::default();
    let mut create = spec(NPI, json!({"active": false}));
    create.management_policy = epic_operator::crd::ManagementPolicy::CreateOrUpdate;
    // The walk's index still names the merged id: the sync searches, finds the survivor and
    // updates it; it never POSTs a third record.
    let o = sync_practitioner(
        &c,
        SyncRequest {
            prefetched: Some(Prefetched::Id(old_id.clone())),
            ..request(&create, None, &norm)
        },
    )
    .await
    .unwrap();
    assert!(o.searched);
    assert_eq!(o.fhir_id.as_deref(), Some(survivor.as_str()));
    assert!(matches!(o.write, WriteOutcome::Updated), "{:?}", o.write);
    assert_eq!(s.stats()["create"], 0);
    // A walk that Epic marked incomplete: nothing is concluded, nothing created.
    let mut unseen = spec("1245319599", json!({"active": true}));
    unseen.management_policy = epic_operator::crd::ManagementPolicy::CreateOrUpdate;
    let o = sync_practitioner(
        &c,
        SyncRequest {
            prefetched: Some(Prefetched::Incomplete("suppressed".into())),
            ..request(&unseen, None, &norm)
        },
    )
    .await
    .unwrap();
    assert!(
        matches!(o.write, WriteOutcome::NotAttempted),
        "{:?}",
        o.write
    );
    assert_eq!(s.stats()["create"], 0);
    s.stop().await;
}

/// A record that carried the NPI answers 404 (removed, or hidden from this client) or 410
/// (merged into a record that does not carry the NPI), and no search finds the NPI: under
/// CreateOrUpdate nothing is created in its place, whether the id was saved or came from a
/// walk's index, and the outcome names the record so that status can keep it.
#[tokio::test]
async fn a_record_gone_from_epic_is_never_replaced_by_a_create() {
    let s = empty_writable().await;
    let removed = add(&s, record(json!([{"system": NPI_SYSTEM, "value": NPI}]))).await;
    admin(
        &s,
        reqwest::Method::DELETE,
        &format!("practitioners/{removed}"),
    )
    .await;
    let merged = merged_away(&s).await;
    let c = client(&s);
    let norm = Normalizer::default();
    let mut create = spec(NPI, json!({"active": true}));
    create.management_policy = epic_operator::crd::ManagementPolicy::CreateOrUpdate;
    let cases = [
        ("a saved id removed", Some(removed.as_str()), None, &removed),
        (
            "an indexed id removed",
            None,
            Some(Prefetched::Id(removed.clone())),
            &removed,
        ),
        (
            "a saved id merged away",
            Some(merged.as_str()),
            None,
            &merged,
        ),
    ];
    for (what, known_id, prefetched, gone) in cases {
        let o = sync_practitioner(
            &c,
            SyncRequest {
                prefetched,
                ..request(&create, known_id, &norm)
            },
        )
        .await
        .unwrap();
        assert_eq!(o.resolution, Resolution::NotFound, "{what}");
        assert!(o.searched, "{what}: the NPI was searched");
        assert_eq!(o.action, Action::Hold(HoldReason::RecordGone), "{what}");
        assert!(matches!(o.write, WriteOutcome::NotAttempted), "{what}");
        assert_eq!(o.gone_id.as_deref(), Some(gone.as_str()), "{what}");
    }
    // Whatever else holds the pass, the id stays for the next one to read again.
    let update = spec(NPI, json!({"active": true}));
    let refused = SyncRequest {
        writes: WriteCapability::Disabled,
        ..request(&create, Some(&removed), &norm)
    };
    for (what, req, action) in [
        (
            "managementPolicy Update",
            request(&update, Some(&removed), &norm),
            HoldReason::NotFound,
        ),
        ("writes refused", refused, HoldReason::WriteDisabled),
    ] {
        let o = sync_practitioner(&c, req).await.unwrap();
        assert_eq!(o.action, Action::Hold(action), "{what}");
        assert_eq!(o.gone_id.as_deref(), Some(removed.as_str()), "{what}");
    }
    assert_eq!(s.stats()["create"], 0);
    // A new clinician (no record ever known) is still created.
    let mut new = spec(
        "1245319599",
        json!({"active": true, "name": {"family": "Lee", "given": ["Kim"]}}),
    );
    new.management_policy = epic_operator::crd::ManagementPolicy::CreateOrUpdate;
    let o = sync(&c, &new, None).await;
    assert!(matches!(o.write, WriteOutcome::Created), "{:?}", o.write);
    assert_eq!(o.gone_id, None);
    s.stop().await;
}

/// The create guard of an instance without identifier search.
const NO_SEARCH: CreateGuard = CreateGuard {
    search: false,
    ..CreateGuard::SEARCH
};

/// An instance without identifier search: a known record gone from Epic is followed to the
/// record the last walk found the NPI on (the walk's id), read by id; no search, no POST. Where
/// the walk's id is the gone one itself, it is not read a second time.
#[tokio::test]
async fn a_gone_record_is_followed_to_the_walks_record_without_a_search() {
    let s = sandbox_with(SandboxConfig {
        settings: Settings {
            writes_enabled: true,
            identifier_search_unsupported: true,
            ..Settings::default()
        },
        ..SandboxConfig::default()
    })
    .await;
    let removed = add(&s, record(json!([{"system": NPI_SYSTEM, "value": NPI}]))).await;
    admin(
        &s,
        reqwest::Method::DELETE,
        &format!("practitioners/{removed}"),
    )
    .await;
    let replacement = add(&s, record(json!([{"system": NPI_SYSTEM, "value": NPI}]))).await;
    let (merged, survivor) = merged_record(&s).await;
    let c = client(&s);
    let norm = Normalizer::default();
    let mut create = spec(NPI, json!({"active": true}));
    create.management_policy = epic_operator::crd::ManagementPolicy::CreateOrUpdate;
    for (what, saved, walk) in [
        (
            "deleted, another record carries the NPI",
            &removed,
            &replacement,
        ),
        ("merged away, the survivor carries it", &merged, &survivor),
    ] {
        let before = s.stats();
        let o = sync_practitioner(
            &c,
            SyncRequest {
                prefetched: Some(Prefetched::Id(walk.clone())),
                create_guard: NO_SEARCH,
                ..request(&create, Some(saved), &norm)
            },
        )
        .await
        .unwrap();
        assert_eq!(o.resolution, Resolution::Found, "{what}");
        assert_eq!(o.fhir_id.as_deref(), Some(walk.as_str()), "{what}");
        assert!(!o.searched, "{what}");
        let after = s.stats();
        assert_eq!(
            after["read"],
            before["read"].as_u64().unwrap() + 2,
            "{what}"
        );
        assert_eq!(
            after["identifierSearch"], before["identifierSearch"],
            "{what}"
        );
    }
    // The walk's id is the gone one: read once, then the NPI must be searched, which this
    // instance refuses; nothing is created.
    let before = s.stats();
    let refused = sync_practitioner(
        &c,
        SyncRequest {
            prefetched: Some(Prefetched::Id(removed.clone())),
            create_guard: NO_SEARCH,
            ..request(&create, Some(&removed), &norm)
        },
    )
    .await;
    assert!(refused.is_err(), "the search is refused");
    assert_eq!(s.stats()["read"], before["read"].as_u64().unwrap() + 1);
    assert_eq!(s.stats()["create"], 0);
    s.stop().await;
}

#[tokio::test]
async fn a_saved_id_that_no_longer_carries_the_npi_is_an_identity_error() {
    let s = empty_writable().await;
    let id = add(&s, record(json!([{"system": NPI_SYSTEM, "value": NPI}]))).await;
    edit(
        &s,
        &id,
        json!({"identifier": [{"system": NPI_SYSTEM, "value": "1987654328"}]}),
    )
    .await;
    let c = client(&s);
    let spec = spec(NPI, json!({"active": false}));
    let norm = Normalizer::default();
    let err = sync_practitioner(
        &c,
        SyncRequest {
            conditional_create: false,
            disclosure: Disclosure::Masked,
            prefetched: None,
            known_roles: None,
            ..request(&spec, Some(&id), &norm)
        },
    )
    .await
    .unwrap_err();
    assert_eq!(err.reason().as_str(), "IdentityMismatch");
    assert!(err.to_string().contains("1987654328"), "{err}");
    assert_eq!(stat(&stats(&s).await, "update"), 0);
    s.stop().await;
}

#[tokio::test]
async fn a_failed_read_after_a_create_keeps_the_create() {
    let s = empty_writable().await;
    // No PractitionerRole scope: the role read after the create answers 403.
    let c = client_with(
        &s,
        vec![
            "system/Practitioner.read".into(),
            "system/Practitioner.write".into(),
        ],
        fast_retry(),
    );
    let spec = spec(
        NPI,
        json!({"managementPolicy": "CreateOrUpdate", "name": {"family": "Lee"}}),
    );
    let norm = Normalizer::default();
    let o = sync_practitioner(
        &c,
        SyncRequest {
            fetch_roles: true,
            ..request(&spec, None, &norm)
        },
    )
    .await
    .expect("a successful create is an outcome, whatever follows");
    assert!(matches!(o.write, WriteOutcome::Created));
    assert!(o.fhir_id.is_some());
    assert!(
        o.warnings.iter().any(|w| w.contains("PractitionerRoles")),
        "{:?}",
        o.warnings
    );
    s.stop().await;
}

#[tokio::test]
async fn instances_without_or_search_get_one_search_per_system() {
    let s = empty_writable().await;
    set_settings(&s, json!({"orSearchUnsupported": true})).await;
    let id = add(
        &s,
        record(json!([{"system": NPI_OID_SYSTEM, "value": NPI}])),
    )
    .await;
    let c = client(&s);
    let o = sync_with(&c, &spec(NPI, json!({})), None, false).await;
    assert_eq!(o.fhir_id.as_deref(), Some(id.as_str()));
    // Learned once: the next lookup goes straight to one search per system.
    stats_reset(&s).await;
    sync_with(&c, &spec(NPI, json!({})), None, false).await;
    assert_eq!(stat(&stats(&s).await, "search"), 2);
    s.stop().await;
}

async fn stats_reset(s: &Sandbox) {
    epic_operator::http::client()
        .unwrap()
        .post(format!("{}/stats/reset", s.admin_url()))
        .send()
        .await
        .unwrap();
}
