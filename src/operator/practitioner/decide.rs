//! Decide: one pure function from what a pass observed to everything it will do: the status
//! to report (and whether it must be written), the Events of real transitions, what the
//! object's memory and the connection learn, the metric, and when to look again. The shell
//! (`effect`) performs it; nothing here does I/O, so every branch has a table test.

use std::time::Duration;

use kube::runtime::events::EventType;

use super::observe::{Found, Observation, SyncRun};
use super::{check_now, events, status};
use crate::crd::{ConditionStatus, EpicPractitionerStatus, Reason};
use crate::operator::DriftDetection;
pub use crate::operator::memory::Remember;
use crate::operator::roster::state::Lesson;
use crate::pipeline::verdict::{self, Verdict};
use crate::pipeline::{AttemptState, WriteOutcome, deletion_done};
use crate::reconcile::{Action, HoldReason};

/// Added to the wait before the search after a lost POST answer, so that the search falls
/// after the settle time however the requeue's jitter falls.
const SETTLE_MARGIN: Duration = Duration::from_secs(5);

/// What to do after a pass.
#[derive(Debug, PartialEq)]
pub struct Decision {
    /// The status to report (none when roster walks cover the object).
    pub status: Option<EpicPractitionerStatus>,
    /// Whether that status says something the stored one does not.
    pub write_status: bool,
    pub events: Vec<(EventType, Reason, String)>,
    pub remember: Vec<Remember>,
    pub learned: Vec<Learned>,
    /// The metric's verdict of a pass that did not fail: (Synced is True, its reason).
    pub metric: Option<(bool, Reason)>,
    pub next: Next,
}

/// What the connection learns from the pass.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Learned {
    /// Epic refused a write: the connection holds writes for a while.
    WriteRefused,
    /// A POST created this record for the NPI: the ledger resolves the NPI to it at once.
    Created { npi: String, id: String },
    /// The instance refused an identifier search: resolve from walks only.
    SearchRefused,
}

impl Learned {
    /// What the connection's walk state takes from it (a refused write is the connection
    /// handle's to hold).
    pub fn lesson(&self) -> Option<Lesson> {
        match self {
            Learned::WriteRefused => None,
            Learned::Created { npi, id } => Some(Lesson::Created {
                npi: npi.clone(),
                id: id.clone(),
            }),
            Learned::SearchRefused => Some(Lesson::SearchRefused),
        }
    }
}

/// When to look again (jitter is added by the shell).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Next {
    Requeue(Duration),
    /// Roster mode's safety net: no timer of the object's own; the safety sweep
    /// (`roster/safety_sweep.rs`) wakes every member of a connection once per safety interval
    /// (six resync intervals, an hour at least), for a walk that keeps failing.
    SafetyNet,
    AwaitChange,
    /// A write failed: back off from this base (the decision counts the failure).
    Backoff(Duration),
    /// Return the observed error: the controller's error policy backs off per object.
    Fail,
    /// Deletion waits for the deactivation; this reason holds it (the finalizer stays).
    Blocked(Reason),
}

impl Decision {
    /// Nothing to report or remember; only when to look again.
    fn report_nothing(next: Next) -> Self {
        Decision {
            status: None,
            write_status: false,
            events: Vec::new(),
            remember: Vec::new(),
            learned: Vec::new(),
            metric: None,
            next,
        }
    }
}

/// The decision for one observation.
pub fn decide(obs: &Observation) -> Decision {
    match &obs.found {
        // A deletion that waits (for a first walk, or for the watch to bring a change) holds
        // its finalizer: the finalizer helper takes an `Ok` as a finished cleanup.
        Found::Wait(_) if obs.deleting => Decision::report_nothing(Next::Blocked(Reason::Pending)),
        Found::Wait(d) => Decision::report_nothing(Next::Requeue(*d)),
        Found::Covered => Decision::report_nothing(Next::SafetyNet),
        Found::Paused => {
            let new = status::paused(&obs.obj, &obs.prev.status);
            settled(obs, new, Reason::Paused, None, Next::AwaitChange)
        }
        Found::Synced(s) => after_sync(obs, s),
        // Without the whole status nothing is reported: the cache's slim copy is never
        // written back.
        Found::Failed { .. } if !obs.prev.complete => Decision::report_nothing(Next::Fail),
        Found::Failed {
            error,
            search_refused_on,
        } => {
            let (http, codes) = match error {
                crate::operator::error::Error::Fhir(f) => (f.http_status(), f.epic_codes()),
                crate::operator::error::Error::Connection { failure, .. } => {
                    (failure.http_status, Vec::new())
                }
                _ => (None, Vec::new()),
            };
            let mut new = status::from_error(
                &obs.obj,
                &obs.prev.status,
                error.reason(),
                error.to_string(),
                http,
                codes,
            );
            check_now::mark(&obs.obj, &mut new);
            let events = events::transitions(&obs.obj, &obs.prev, &new, Some(error.reason()), None);
            Decision {
                write_status: true,
                status: Some(new),
                events,
                remember: Vec::new(),
                learned: if search_refused_on.is_some() {
                    vec![Learned::SearchRefused]
                } else {
                    Vec::new()
                },
                metric: None,
                next: Next::Fail,
            }
        }
    }
}

/// A sync ran: its status, what memory and the connection learn, and the next look.
fn after_sync(obs: &Observation, s: &SyncRun) -> Decision {
    let (obj, old, outcome) = (&obs.obj, &obs.prev.status, &s.outcome);
    let verdict: Verdict =
        verdict::of_sync(obj, old, outcome, &s.write_disabled_message).retried_with_backoff();
    let base = &s.base_url;
    let mut new = status::from_outcome(obj, old, outcome, base, &verdict, &s.normalizer);
    let mut remember = Vec::new();
    // What this process knows of the attempt outlives a cached status from before its write.
    if outcome.fhir_id.is_some() || outcome.create_attempt == AttemptState::Answered {
        remember.push(Remember::ClearAttempt);
    } else if outcome.create_attempt == AttemptState::Unknown
        && let Some(attempt) = &new.create_attempt
    {
        remember.push(Remember::LostAnswer(s.ended, attempt.clone()));
    } else if let Some((since, attempt)) = &s.known_attempt {
        if new.create_attempt.is_none() {
            new.create_attempt = Some(attempt.clone());
        }
        remember.push(Remember::SawAttempt(*since, attempt.clone()));
    }
    let new = check_now::verified(old, new, s.resync);
    let next = match obs.mode {
        DriftDetection::PerObject => Next::Requeue(s.resync),
        // The roster walk wakes changed records; the safety sweep's pass (an hour at least) is
        // only a net for a walk that keeps failing.
        DriftDetection::Roster => Next::SafetyNet,
    };
    let next = match (&outcome.write, outcome.action, s.attempt_settles_in) {
        // Reported in status; tried again with the same per-object backoff as errors, not
        // after the long resync interval.
        (WriteOutcome::Failed(_) | WriteOutcome::Conflict { .. }, ..) => {
            Next::Backoff(super::backoff::WRITE_RETRY)
        }
        // A search found nothing too soon after a lost POST answer: search again once Epic
        // has had the time to apply it (a walk would wake the object only at its next run).
        (_, Action::Hold(HoldReason::CreateUnconfirmed), Some(wait)) if outcome.searched => {
            Next::Requeue(wait + SETTLE_MARGIN)
        }
        _ => next,
    };
    let mut learned = Vec::new();
    if let WriteOutcome::Refused(_) = outcome.write {
        learned.push(Learned::WriteRefused);
    }
    if let (WriteOutcome::Created, Some(id)) = (&outcome.write, &outcome.fhir_id) {
        learned.push(Learned::Created {
            npi: obj.spec.npi.clone(),
            id: id.clone(),
        });
    }
    let mut d = settled(obs, new, verdict.synced.reason, Some(s), next);
    d.remember.extend(remember);
    d.learned = learned;
    d
}

/// A pass that did not fail (a sync, or a pause): a deletion that cannot finish is marked
/// blocked, the "check now" mark is set, and the Events and metric follow from the status.
fn settled(
    obs: &Observation,
    mut new: EpicPractitionerStatus,
    synced: Reason,
    sync: Option<&SyncRun>,
    next: Next,
) -> Decision {
    let outcome = sync.map(|s| &s.outcome);
    let blocked = obs.deleting && !outcome.is_some_and(|o| deletion_done(&obs.obj.spec, o));
    let mut synced_now = synced;
    if blocked {
        // The way out goes where people look (status, an Event, Argo CD), not only into a
        // returned error.
        new = status::deletion_blocked(&obs.obj, new);
        synced_now = Reason::DeletionBlocked;
    }
    check_now::mark(&obs.obj, &mut new);
    let write_status = status::changed(&obs.prev.status, &new)
        || obs.prev.status.observed_generation != obs.obj.metadata.generation;
    let events = events::transitions(&obs.obj, &obs.prev, &new, Some(synced_now), outcome);
    let ok = new
        .conditions
        .iter()
        .any(|c| c.type_ == crate::crd::SYNCED && c.status == ConditionStatus::True);
    let next = if blocked {
        // Keep the finalizer: the error keeps it and retries with backoff.
        Next::Blocked(status::blocking_reason(&new).unwrap_or(Reason::Pending))
    } else {
        next
    };
    let remember = if matches!(next, Next::Backoff(_)) {
        vec![Remember::CountFailure]
    } else {
        vec![Remember::ForgetFailures]
    };
    Decision {
        status: Some(new),
        write_status,
        events,
        remember,
        learned: Vec::new(),
        metric: Some((ok, synced_now)),
        next,
    }
}
