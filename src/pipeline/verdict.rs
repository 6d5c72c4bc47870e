//! What one sync concluded about a practitioner, typed: the InSync and Synced conditions with
//! their [`Reason`] and message, and Ready derived from them. Both drivers render it: the
//! operator's status, Events and reconcile metric take their reasons from here (nothing
//! parses a reason back from the text of a condition this pass wrote), and the command line's
//! `plan`/`apply` report takes each practitioner's reason and message from it. Every message
//! about a sync's outcome is written here, once. Pure: no I/O.

use super::{SyncOutcome, WriteOutcome};
use crate::crd::{ConditionStatus, EpicPractitioner, EpicPractitionerStatus, Reason};
use crate::fhir::FhirError;
use crate::reconcile::{Action, HoldReason, Resolution};

/// One condition's verdict.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Said {
    pub status: ConditionStatus,
    pub reason: Reason,
    pub message: String,
}

impl Said {
    pub fn new(status: ConditionStatus, reason: Reason, message: impl Into<String>) -> Self {
        Said {
            status,
            reason,
            message: message.into(),
        }
    }
}

/// What a sync concluded: whether Epic matches (InSync) and whether the operator did what the
/// spec asks (Synced).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verdict {
    pub in_sync: Said,
    pub synced: Said,
}

impl Verdict {
    /// Ready, from this verdict's Synced and InSync.
    pub fn ready(&self) -> Said {
        ready(Some(&self.synced), Some(&self.in_sync))
    }

    /// The operator tries a conflicted write again with backoff (the command line does not):
    /// its Synced message says so.
    pub fn retried_with_backoff(mut self) -> Self {
        // Before Epic's answer, which comes from outside and may be cut to the message bound.
        if self.synced.reason == Reason::Conflict {
            let m = &mut self.synced.message;
            let at = m.find(LAST_ANSWER).unwrap_or(m.len());
            m.insert_str(at, RETRIED);
        }
        self
    }
}

/// Ready from Synced and InSync (either may be missing from a status written before them).
/// The decisive reason: a record that is not found (or ambiguous, or whose search was
/// incomplete) says so before the instance's refusal to write, which is secondary then.
pub fn ready(synced: Option<&Said>, in_sync: Option<&Said>) -> Said {
    use ConditionStatus::{False, True, Unknown};
    let resolution_problem = in_sync.is_some_and(|i| {
        i.status != True
            && matches!(
                i.reason,
                Reason::NotFound | Reason::AmbiguousNpi | Reason::SearchIncomplete
            )
    });
    let write_disabled = synced.is_some_and(|s| s.reason == Reason::WriteDisabled);
    let not_ready = |said: &Said| Said::new(False, said.reason, said.message.clone());
    match (synced, in_sync) {
        (_, Some(i)) if resolution_problem && write_disabled => not_ready(i),
        (Some(s), Some(i)) if s.status == True && i.status == True => {
            Said::new(True, Reason::Ready, "Epic matches the spec")
        }
        (Some(s), _) if s.status != True => not_ready(s),
        (_, Some(i)) => not_ready(i),
        _ => Said::new(Unknown, Reason::Pending, "not reconciled yet"),
    }
}

/// The phrases of an outcome that both the conditions here and the operator's Events say
/// (an Event adds its subject and remedy, never Epic's answer: that text comes from outside).
pub mod phrase {
    /// A conditional write met a changed record on every attempt.
    pub fn conflicted(attempts: u32) -> String {
        format!(
            "was changed in Epic between read and write on each of {attempts} attempts (each re-read it first), so nothing was overwritten"
        )
    }

    pub fn not_found(npi: &str) -> String {
        format!("no Practitioner carries NPI {npi}")
    }

    pub fn ambiguous(n: usize, npi: &str) -> String {
        format!("{n} Practitioners carry NPI {npi}")
    }

    pub fn gone(id: &str, npi: &str) -> String {
        format!("record {id} carried NPI {npi} and no longer answers")
    }

    pub fn incomplete(npi: &str) -> String {
        format!("the search for NPI {npi} is incomplete")
    }

    pub use crate::reconcile::NOT_FIXED;
}

/// What the operator adds to a conflict: it tries the write again.
pub const RETRIED: &str = "; it is tried again with backoff";

/// A conditional write that met a changed record on every attempt (the Synced message, and
/// the operator's `lastError`).
pub fn conflict_message(attempts: u32, last: &FhirError) -> String {
    format!(
        "Practitioner {}{LAST_ANSWER}{last}",
        phrase::conflicted(attempts)
    )
}

/// Where Epic's answer starts in a conflict message.
const LAST_ANSWER: &str = "; last answer: ";

/// A write Epic accepted while its response still differs from the spec. `what` says what
/// was written ("updated the record").
pub fn not_applied_message(what: &str) -> String {
    format!(
        "{what} but Epic's response still differs: some fields may be read-only on this instance"
    )
}

/// The verdict of a sync. `write_disabled_message` says why writes are held on this
/// connection, when they are (the operator's write policy, the command line's reading of the
/// connection and CapabilityStatement).
pub fn of_sync(
    obj: &EpicPractitioner,
    prev: &EpicPractitionerStatus,
    outcome: &SyncOutcome,
    write_disabled_message: &str,
) -> Verdict {
    Verdict {
        in_sync: in_sync(obj, outcome),
        synced: synced(obj, prev, outcome, write_disabled_message),
    }
}

fn in_sync(obj: &EpicPractitioner, outcome: &SyncOutcome) -> Said {
    let npi = &obj.spec.npi;
    match outcome.resolution {
        Resolution::Found if outcome.remaining.is_empty() => Said::new(
            ConditionStatus::True,
            Reason::NoDrift,
            "the live record matches every owned field",
        ),
        Resolution::Found => {
            let paths: Vec<&str> = outcome
                .remaining
                .entries
                .iter()
                .map(|d| d.path.as_str())
                .collect();
            Said::new(
                ConditionStatus::False,
                Reason::Drifted,
                format!("differs in {}", paths.join(", ")),
            )
        }
        Resolution::NotFound => Said::new(
            ConditionStatus::False,
            Reason::NotFound,
            phrase::not_found(npi),
        ),
        Resolution::Ambiguous(n) => Said::new(
            ConditionStatus::False,
            Reason::AmbiguousNpi,
            phrase::ambiguous(n, npi),
        ),
        Resolution::Incomplete => Said::new(
            ConditionStatus::Unknown,
            Reason::SearchIncomplete,
            format!("{}; see status.warnings", phrase::incomplete(npi)),
        ),
    }
}

fn synced(
    obj: &EpicPractitioner,
    prev: &EpicPractitionerStatus,
    outcome: &SyncOutcome,
    write_disabled_message: &str,
) -> Said {
    match (&outcome.write, outcome.action) {
        (WriteOutcome::Updated | WriteOutcome::Created | WriteOutcome::Deactivated, _) => {
            let what = match outcome.write {
                WriteOutcome::Created => "created the record",
                WriteOutcome::Deactivated => "wrote active=false",
                _ => "updated the record",
            };
            if outcome.remaining.is_empty() {
                Said::new(
                    ConditionStatus::True,
                    Reason::Synced,
                    format!("{what}; the response shows the desired values"),
                )
            } else {
                Said::new(
                    ConditionStatus::False,
                    Reason::WriteNotApplied,
                    not_applied_message(what),
                )
            }
        }
        (WriteOutcome::Refused(e), _) => Said::new(
            ConditionStatus::False,
            Reason::WriteDisabled,
            format!("Epic refused the write; {}: {e}", phrase::NOT_FIXED),
        ),
        (WriteOutcome::Failed(e), _) => Said::new(
            ConditionStatus::False,
            e.reason(),
            format!("the write failed: {e}"),
        ),
        (WriteOutcome::NotSent(why), _) => Said::new(
            ConditionStatus::False,
            Reason::KubernetesError,
            format!(
                "the create was not sent, because its attempt could not be recorded in status first: {why}"
            ),
        ),
        (WriteOutcome::Conflict { attempts, last }, _) => Said::new(
            ConditionStatus::False,
            Reason::Conflict,
            conflict_message(*attempts, last),
        ),
        (WriteOutcome::NotAttempted, Action::Hold(h)) => {
            // Observe is a choice, not a failure: Synced stays True and InSync tells the drift.
            let ok = h == HoldReason::ObserveOnly;
            Said::new(
                ok.into(),
                h.reason(),
                held(obj, prev, outcome, h, write_disabled_message),
            )
        }
        (WriteOutcome::NotAttempted, _) => {
            Said::new(ConditionStatus::True, Reason::Synced, "nothing to write")
        }
    }
}

/// Why a write is held, and what would release it.
fn held(
    obj: &EpicPractitioner,
    prev: &EpicPractitionerStatus,
    outcome: &SyncOutcome,
    h: HoldReason,
    write_disabled_message: &str,
) -> String {
    let npi = &obj.spec.npi;
    match h {
        HoldReason::WriteDisabled => write_disabled_message.to_string(),
        HoldReason::ObserveOnly => {
            "managementPolicy Observe: drift is reported, never written".into()
        }
        HoldReason::Paused => "paused by annotation epic-operator.dev/paused".into(),
        HoldReason::NotFound => format!(
            "{}; managementPolicy {:?} does not create (use CreateOrUpdate)",
            phrase::not_found(npi),
            obj.spec.management_policy
        ),
        HoldReason::SearchIncomplete => format!(
            "{} (status.warnings says why: results Epic hid, records left out, or a walk too old to prove absence); nothing is created or written on an incomplete answer",
            phrase::incomplete(npi)
        ),
        HoldReason::CreateUnconfirmed => format!(
            "a create for NPI {npi} was sent{} and its answer was lost; no second one is sent until {} shows whether it arrived",
            prev.create_attempt
                .as_ref()
                .map(|a| format!(" at {}", a.sent_at))
                .unwrap_or_default(),
            if outcome.searched {
                "a search made once Epic has had the request timeout to apply it"
            } else {
                "a complete roster walk that started after it"
            }
        ),
        HoldReason::RecordGone => format!(
            "{} (deleted, merged, or hidden from this client), and no record carries the NPI now: nothing is created in its place",
            phrase::gone(outcome.gone_id.as_deref().unwrap_or("?"), npi)
        ),
        HoldReason::AmbiguousNpi => format!(
            "{} ({}); nothing is written until the duplicates are merged in Epic",
            phrase::ambiguous(outcome.ambiguous_ids.len(), npi),
            outcome.ambiguous_ids.join(", ")
        ),
    }
}

#[cfg(test)]
#[path = "verdict_tests.rs"]
mod tests;
