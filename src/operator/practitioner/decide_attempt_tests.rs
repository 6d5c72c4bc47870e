//! Table tests of what a pass decides about a create attempt whose answer was lost: it stays
//! in status and memory, is dated from when its answer was lost, and a search too soon after
//! it waits for the settle time.

use super::*;
use crate::operator::practitioner::decide::Decision;

/// The sync run of a pass that found no record and did `write` as `action`.
fn unresolved(write: WriteOutcome, action: Action) -> Box<SyncRun> {
    let mut o = outcome(write, action);
    o.fhir_id = None;
    o.resolution = Resolution::NotFound;
    let Found::Synced(s) = synced(o) else {
        unreachable!()
    };
    s
}

/// The decision for that run, in roster mode.
fn decided(live: &EpicPractitioner, s: Box<SyncRun>) -> Decision {
    decide(&observation(
        live,
        None,
        Found::Synced(s),
        DriftDetection::Roster,
        false,
    ))
}

#[test]
fn an_unanswered_attempt_stays_in_status_and_in_memory() {
    let live = practitioner(true);
    let attempt = CreateAttempt {
        npi: "1234567893".into(),
        connection: "https://epic.example.org/fhir".into(),
        sent_at: "2026-12-01T00:00:00Z".into(),
    };
    let since = std::time::Instant::now();
    let mut s = unresolved(
        WriteOutcome::NotAttempted,
        Action::Hold(HoldReason::CreateUnconfirmed),
    );
    s.known_attempt = Some((since, attempt.clone()));
    let d = decided(&live, s);
    assert_eq!(
        d.status.as_ref().and_then(|s| s.create_attempt.clone()),
        Some(attempt.clone()),
        "a status that lost the attempt gets it back"
    );
    assert!(
        d.remember.contains(&Remember::SawAttempt(since, attempt)),
        "{:?}",
        d.remember
    );
    assert!(!d.remember.contains(&Remember::ClearAttempt));
}

#[test]
fn a_lost_post_answer_dates_the_attempt_and_a_search_too_soon_waits_for_the_settle_time() {
    let live = practitioner(true);
    // This pass's POST went unanswered: memory dates it from the end of the pass, not from
    // when the attempt was noted before the POST waited for the limiter and timed out.
    let mut s = unresolved(
        WriteOutcome::Failed(FhirError::Timeout("no answer".into())),
        Action::Create,
    );
    s.outcome.create_attempt = AttemptState::Unknown;
    let ended = s.ended;
    let d = decided(&live, s);
    let attempt = d
        .status
        .as_ref()
        .and_then(|s| s.create_attempt.clone())
        .expect("the attempt stands in status");
    assert!(
        d.remember.contains(&Remember::LostAnswer(ended, attempt)),
        "{:?}",
        d.remember
    );
    // The next pass searched too soon after that: it holds, and looks again once the settle
    // time has passed, not at the next walk or the hourly net.
    let cases = [
        (
            true,
            Some(Duration::from_secs(20)),
            Next::Requeue(Duration::from_secs(25)),
        ),
        (true, None, Next::SafetyNet),
        (false, Some(Duration::from_secs(20)), Next::SafetyNet),
    ];
    for (searched, settles_in, next) in cases {
        let mut s = unresolved(
            WriteOutcome::NotAttempted,
            Action::Hold(HoldReason::CreateUnconfirmed),
        );
        s.outcome.searched = searched;
        s.attempt_settles_in = settles_in;
        let d = decided(&live, s);
        assert_eq!(
            d.next, next,
            "searched {searched}, settles in {settles_in:?}"
        );
    }
}
