//! Tier 2: the create path, over real HTTP against the sandbox. A POST is the one write that
//! cannot be re-read into safety, so each test produces one way a clinician could be created a
//! second time (a record created since the walk, a lost POST answer on an instance without
//! conditional create or identifier search, a create attempt that could not be recorded) and
//! counts the records carrying the NPI afterwards: exactly one.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::atomic::{AtomicU32, Ordering};

use common::*;
use epic_operator::crd::{EpicPractitionerSpec, ManagementPolicy, NPI_OID_SYSTEM, NPI_SYSTEM};
use epic_operator::pipeline::{
    AttemptRecorder, AttemptState, CreateGuard, Prefetched, SyncOutcome, SyncRequest, WriteOutcome,
    sync_practitioner,
};
use epic_operator::reconcile::{
    Action, Disclosure, HoldReason, Normalizer, Resolution, WriteCapability,
};
use epic_operator::sandbox::{Sandbox, SandboxConfig, Settings};
use futures::future::BoxFuture;
use serde_json::json;

const NPI: &str = "1234567893";

/// A writable instance without conditional create (If-None-Exist is ignored), as many are.
async fn without_conditional_create(identifier_search: bool) -> Sandbox {
    sandbox_with(SandboxConfig {
        settings: Settings {
            writes_enabled: true,
            conditional_create_unsupported: true,
            identifier_search_unsupported: !identifier_search,
            ..Settings::default()
        },
        ..SandboxConfig::default()
    })
    .await
}

fn create_spec() -> EpicPractitionerSpec {
    let mut spec: EpicPractitionerSpec = serde_json::from_value(json!({
        "connectionRef": {"name": "epic"}, "npi": NPI, "active": true,
        "name": {"family": "Lee", "given": ["Ann"]}
    }))
    .unwrap();
    spec.management_policy = ManagementPolicy::CreateOrUpdate;
    spec
}

fn request<'a>(
    spec: &'a EpicPractitionerSpec,
    norm: &'a Normalizer,
    prefetched: Option<Prefetched>,
    guard: CreateGuard,
) -> SyncRequest<'a> {
    SyncRequest {
        spec,
        known_id: None,
        writes: WriteCapability::Enabled,
        deleting: false,
        paused: false,
        perform_writes: true,
        fetch_roles: false,
        normalizer: norm,
        conditional_create: false,
        disclosure: Disclosure::Masked,
        prefetched,
        known_roles: None,
        create_guard: guard,
        attempt_recorder: None,
    }
}

async fn carrying(s: &Sandbox, npi: &str) -> usize {
    practitioners(s)
        .await
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["npi"] == npi)
        .count()
}

async fn run(s: &Sandbox, req: SyncRequest<'_>) -> SyncOutcome {
    sync_practitioner(&client(s), req).await.expect("sync")
}

/// The request, with its attempts recorded by `recorder`.
fn recorded<'a>(recorder: &'a Recorder, req: SyncRequest<'a>) -> SyncRequest<'a> {
    SyncRequest {
        attempt_recorder: Some(recorder),
        ..req
    }
}

/// Counts the attempts it is asked to record; refuses them when `fail`.
#[derive(Default)]
struct Recorder {
    recorded: AtomicU32,
    fail: bool,
}

impl AttemptRecorder for Recorder {
    fn record(&self) -> BoxFuture<'_, Result<(), String>> {
        Box::pin(async move {
            if self.fail {
                return Err("the API server is away".into());
            }
            self.recorded.fetch_add(1, Ordering::SeqCst);
            Ok(())
        })
    }
}

#[tokio::test]
async fn a_walk_that_saw_no_record_is_checked_by_a_search_before_the_post() {
    let s = without_conditional_create(true).await;
    // The walk read its pages before the record was created in Epic.
    let id = add_record(&s).await;
    let (spec, norm) = (create_spec(), Normalizer::default());
    let o = run(
        &s,
        request(
            &spec,
            &norm,
            Some(Prefetched::NotFound),
            CreateGuard::SEARCH,
        ),
    )
    .await;
    assert!(o.searched, "a search confirms absence before any POST");
    assert_eq!(o.fhir_id.as_deref(), Some(id.as_str()));
    assert!(!matches!(o.write, WriteOutcome::Created), "{:?}", o.write);
    assert_eq!(stat(&stats(&s).await, "create"), 0);
    assert_eq!(
        carrying(&s, NPI).await,
        1,
        "exactly one record carries the NPI"
    );
    s.stop().await;
}

#[tokio::test]
async fn a_lost_post_answer_is_never_followed_by_a_second_post_on_old_evidence() {
    // No identifier search and no conditional create: only walks can tell.
    let s = without_conditional_create(false).await;
    set_settings(&s, json!({"resetWrites": 1})).await;
    let (spec, norm) = (create_spec(), Normalizer::default());
    let recorder = Recorder::default();
    let walked = CreateGuard {
        search: false,
        walk_after_attempt: true,
        search_after_attempt: true,
    };
    let o = run(
        &s,
        recorded(
            &recorder,
            request(&spec, &norm, Some(Prefetched::NotFound), walked),
        ),
    )
    .await;
    assert_eq!(
        recorder.recorded.load(Ordering::SeqCst),
        1,
        "recorded before the POST"
    );
    assert!(matches!(o.write, WriteOutcome::Failed(_)), "{:?}", o.write);
    assert_eq!(
        o.create_attempt,
        AttemptState::Unknown,
        "the POST may have landed"
    );
    assert_eq!(carrying(&s, NPI).await, 1, "it did land");
    // The next pass has only the walk from before the attempt: it holds.
    let before_attempt = CreateGuard {
        search: false,
        walk_after_attempt: false,
        search_after_attempt: true,
    };
    let o = run(
        &s,
        recorded(
            &recorder,
            request(&spec, &norm, Some(Prefetched::NotFound), before_attempt),
        ),
    )
    .await;
    assert_eq!(o.action, Action::Hold(HoldReason::CreateUnconfirmed));
    assert!(matches!(o.write, WriteOutcome::NotAttempted));
    assert_eq!(stat(&stats(&s).await, "create"), 1, "no second POST");
    assert_eq!(
        carrying(&s, NPI).await,
        1,
        "exactly one record carries the NPI"
    );
    // The next walk indexes the record: it is adopted.
    let id = id_of(&s, NPI).await;
    let o = run(
        &s,
        request(
            &spec,
            &norm,
            Some(Prefetched::Id(id.clone())),
            before_attempt,
        ),
    )
    .await;
    assert_eq!(o.fhir_id.as_deref(), Some(id.as_str()));
    assert_eq!(carrying(&s, NPI).await, 1);
    s.stop().await;
}

#[tokio::test]
async fn a_post_epic_applies_after_its_answer_was_lost_is_not_sent_again_on_an_early_search() {
    // Identifier search and no conditional create: the search before a second POST is all
    // that guards it, and Epic is still applying the first one when that search runs.
    let s = without_conditional_create(true).await;
    set_settings(&s, json!({"lateCreateMs": 2000})).await;
    let (spec, norm) = (create_spec(), Normalizer::default());
    let recorder = Recorder::default();
    let o = run(
        &s,
        recorded(&recorder, request(&spec, &norm, None, CreateGuard::SEARCH)),
    )
    .await;
    assert!(matches!(o.write, WriteOutcome::Failed(_)), "{:?}", o.write);
    assert_eq!(
        o.create_attempt,
        AttemptState::Unknown,
        "a 504 says nothing"
    );
    assert_eq!(carrying(&s, NPI).await, 0, "not applied yet");
    // The next pass, within the settle time: its search finds nothing, which proves nothing.
    let too_soon = CreateGuard {
        search: true,
        walk_after_attempt: false,
        search_after_attempt: false,
    };
    let o = run(
        &s,
        recorded(&recorder, request(&spec, &norm, None, too_soon)),
    )
    .await;
    assert!(o.searched);
    assert_eq!(o.action, Action::Hold(HoldReason::CreateUnconfirmed));
    assert!(
        matches!(o.write, WriteOutcome::NotAttempted),
        "{:?}",
        o.write
    );
    assert_eq!(stat(&stats(&s).await, "create"), 1, "no second POST");
    // Epic finishes the first POST.
    let started = std::time::Instant::now();
    while carrying(&s, NPI).await == 0 {
        assert!(
            started.elapsed() < std::time::Duration::from_secs(20),
            "the late create never landed"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    // After the settle time the search counts, and it finds the record: adopted, not created.
    set_settings(&s, json!({"lateCreateMs": 0})).await;
    let settled = CreateGuard {
        search: true,
        walk_after_attempt: false,
        search_after_attempt: true,
    };
    let o = run(
        &s,
        recorded(&recorder, request(&spec, &norm, None, settled)),
    )
    .await;
    assert_eq!(o.fhir_id.as_deref(), Some(id_of(&s, NPI).await.as_str()));
    assert_eq!(stat(&stats(&s).await, "create"), 1);
    assert_eq!(
        carrying(&s, NPI).await,
        1,
        "exactly one record carries the NPI"
    );
    assert_eq!(
        recorder.recorded.load(Ordering::SeqCst),
        1,
        "one POST, one record of it"
    );
    s.stop().await;
}

#[tokio::test]
async fn a_search_cut_short_by_a_mere_warning_creates_nothing() {
    // The record exists, but the search answering for it was stopped as too costly: Epic says
    // so with a warning, no error and no Epic code. That is no proof of absence.
    let s = without_conditional_create(true).await;
    add_record(&s).await;
    set_settings(&s, json!({"cutNpis": [NPI]})).await;
    let (spec, norm) = (create_spec(), Normalizer::default());
    let o = run(&s, request(&spec, &norm, None, CreateGuard::SEARCH)).await;
    assert_eq!(o.resolution, Resolution::Incomplete);
    assert_eq!(o.action, Action::Hold(HoldReason::SearchIncomplete));
    assert_eq!(stat(&stats(&s).await, "create"), 0, "no POST");
    assert_eq!(carrying(&s, NPI).await, 1);
    s.stop().await;
}

#[tokio::test]
async fn an_or_search_that_applies_one_token_is_checked_system_by_system_before_a_post() {
    // The instance takes `identifier=a|n,b|n` but answers for the first token alone, and the
    // record carries the NPI under the OID system only, the second token.
    let s = without_conditional_create(true).await;
    set_settings(&s, json!({"orSearchFirstTokenOnly": true})).await;
    let id = add_record_under(&s, NPI_OID_SYSTEM).await;
    let (spec, norm) = (create_spec(), Normalizer::default());
    let c = client(&s);
    let o = sync_practitioner(&c, request(&spec, &norm, None, CreateGuard::SEARCH))
        .await
        .expect("sync");
    assert_eq!(
        o.fhir_id.as_deref(),
        Some(id.as_str()),
        "found, not created"
    );
    assert_eq!(stat(&stats(&s).await, "create"), 0, "no POST");
    assert_eq!(
        stat(&stats(&s).await, "identifierSearch"),
        3,
        "the OR form, then one per system"
    );
    // The client learned it: the next resolution searches each system at once.
    let o = sync_practitioner(&c, request(&spec, &norm, None, CreateGuard::SEARCH))
        .await
        .expect("sync");
    assert_eq!(o.fhir_id.as_deref(), Some(id.as_str()));
    assert_eq!(stat(&stats(&s).await, "identifierSearch"), 5);
    s.stop().await;
}

#[tokio::test]
async fn a_record_with_the_npi_under_another_system_spelling_blocks_a_create() {
    // The NPI system spelled with a trailing slash: not an NPI system, so the record is not
    // taken for the clinician's, but a server that returns it for the NPI search is no proof
    // that the clinician has no record.
    let s = without_conditional_create(true).await;
    set_settings(&s, json!({"looseIdentifierSearch": true})).await;
    add_record_under(&s, &format!("{NPI_SYSTEM}/")).await;
    let (spec, norm) = (create_spec(), Normalizer::default());
    let o = run(&s, request(&spec, &norm, None, CreateGuard::SEARCH)).await;
    assert_eq!(o.resolution, Resolution::Incomplete);
    assert_eq!(o.action, Action::Hold(HoldReason::SearchIncomplete));
    assert!(
        o.warnings.iter().any(|w| w.contains("us-npi/")),
        "{:?}",
        o.warnings
    );
    assert_eq!(stat(&stats(&s).await, "create"), 0, "no POST");
    s.stop().await;
}

#[tokio::test]
async fn a_post_answered_with_a_refusal_leaves_no_attempt_standing() {
    let s = sandbox_with(SandboxConfig::default()).await; // read-only: POST answers 403
    let (spec, norm) = (create_spec(), Normalizer::default());
    let o = run(&s, request(&spec, &norm, None, CreateGuard::SEARCH)).await;
    assert!(matches!(o.write, WriteOutcome::Refused(_)), "{:?}", o.write);
    assert_eq!(o.create_attempt, AttemptState::Answered);
    s.stop().await;
}

#[tokio::test]
async fn no_post_is_sent_when_its_attempt_cannot_be_recorded() {
    let s = without_conditional_create(true).await;
    let (spec, norm) = (create_spec(), Normalizer::default());
    let recorder = Recorder {
        fail: true,
        ..Recorder::default()
    };
    let o = run(
        &s,
        recorded(&recorder, request(&spec, &norm, None, CreateGuard::SEARCH)),
    )
    .await;
    assert!(matches!(o.write, WriteOutcome::NotSent(_)), "{:?}", o.write);
    assert_eq!(o.create_attempt, AttemptState::NotSent);
    assert_eq!(stat(&stats(&s).await, "create"), 0);
    assert_eq!(carrying(&s, NPI).await, 0);
    s.stop().await;
}

#[tokio::test]
async fn an_instance_without_conditional_create_says_so_and_ignores_if_none_exist() {
    let s = without_conditional_create(true).await;
    let c = client(&s);
    let capability = c.capability().await.expect("capability");
    assert!(!capability.conditional_create);
    add_record(&s).await;
    let body = json!({"resourceType": "Practitioner",
        "identifier": [{"system": NPI_SYSTEM, "value": NPI}],
        "name": [{"use": "official", "family": "Lee"}]});
    let query = format!("identifier={NPI_SYSTEM}|{NPI}");
    c.create_practitioner(&body, Some(&query))
        .await
        .expect("POST");
    assert_eq!(carrying(&s, NPI).await, 2, "the header was ignored");
    s.stop().await;
}

/// Adds a record carrying the NPI out of band; its id.
async fn add_record(s: &Sandbox) -> String {
    add_record_under(s, NPI_SYSTEM).await
}

/// Adds a record carrying the NPI under `system` out of band; its id.
async fn add_record_under(s: &Sandbox, system: &str) -> String {
    let r: serde_json::Value = epic_operator::http::client()
        .unwrap()
        .post(format!("{}/practitioners", s.admin_url()))
        .json(&json!({"resourceType": "Practitioner", "active": true,
            "identifier": [{"system": system, "value": NPI}],
            "name": [{"use": "official", "family": "Lee", "given": ["Ann"]}]}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    r["id"].as_str().expect("id").to_string()
}
