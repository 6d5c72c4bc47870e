//! One practitioner's reason and message in a `plan`/`apply` report, rendered from the sync's
//! [`Verdict`]: the words are the operator's Synced condition (what was done, or why not), so
//! the command line and the status say the same thing. The row's drift, resolution and
//! `inSync` stand beside it, as InSync does in status. The command line adds only what it
//! knows and the operator does not: `plan` writes nothing, so a planned write is described
//! rather than reported as "nothing to write", and a record in sync with nothing to do needs
//! no detail. Pure: no I/O.

use super::report_types::PlanMode;
use crate::crd::Reason;
use crate::pipeline::verdict::Verdict;
use crate::pipeline::{SyncOutcome, WriteOutcome};
use crate::reconcile::Action;

/// The row's reason (none when Synced is plainly True: nothing to explain) and message.
pub(crate) fn detail(
    verdict: &Verdict,
    outcome: &SyncOutcome,
    mode: PlanMode,
) -> (Option<Reason>, String) {
    let synced = &verdict.synced;
    let not_sent = matches!(outcome.write, WriteOutcome::NotAttempted);
    match synced.reason {
        Reason::Synced if not_sent && outcome.action == Action::Nothing => (None, String::new()),
        // A plan does not write: say what apply (or the operator) would send.
        Reason::Synced if not_sent && outcome.action.writes() && mode == PlanMode::Plan => {
            (None, outcome.action.describe())
        }
        Reason::Synced => (None, synced.message.clone()),
        reason => (Some(reason), synced.message.clone()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::{DriftEntry, EpicPractitioner, EpicPractitionerStatus};
    use crate::fhir::{FhirError, OperationOutcome};
    use crate::pipeline::AttemptState;
    use crate::pipeline::verdict::of_sync;
    use crate::reconcile::{DriftReport, HoldReason, Resolution};

    const WHY: &str =
        "the CapabilityStatement lists no Practitioner update, so no write is attempted";

    fn practitioner(policy: &str) -> EpicPractitioner {
        let spec = serde_json::from_value(serde_json::json!({
            "connectionRef": {"name": "epic"}, "npi": "1234567893", "managementPolicy": policy
        }))
        .unwrap();
        EpicPractitioner::new("p", spec)
    }

    fn drift(paths: &[&str]) -> DriftReport {
        DriftReport {
            entries: paths
                .iter()
                .map(|p| DriftEntry {
                    path: p.to_string(),
                    desired: "1".into(),
                    live: "0".into(),
                })
                .collect(),
            diff: String::new(),
        }
    }

    fn outcome(
        resolution: Resolution,
        action: Action,
        write: WriteOutcome,
        before: &[&str],
        after: &[&str],
    ) -> SyncOutcome {
        let ambiguous = matches!(resolution, Resolution::Ambiguous(_));
        SyncOutcome {
            resolution,
            fhir_id: (resolution == Resolution::Found).then(|| "e1".to_string()),
            gone_id: None,
            searched: true,
            ambiguous_ids: if ambiguous {
                vec!["e1".into(), "e2".into()]
            } else {
                Vec::new()
            },
            warnings: Vec::new(),
            drift: drift(before),
            action,
            if_match: None,
            write,
            write_attempts: 0,
            remaining: drift(after),
            live: None,
            roles: Vec::new(),
            roles_known: false,
            create_attempt: AttemptState::NotSent,
        }
    }

    fn refused() -> FhirError {
        FhirError::WriteDisabled {
            status: 403,
            outcome: OperationOutcome::default(),
        }
    }

    fn conflict() -> FhirError {
        FhirError::Conflict {
            status: 412,
            outcome: OperationOutcome::default(),
        }
    }

    /// (case, policy, outcome, mode, reason, the message, or its start when it ends in ": ")
    type Case = (
        &'static str,
        &'static str,
        SyncOutcome,
        PlanMode,
        Option<Reason>,
        &'static str,
    );

    #[test]
    fn each_outcome_has_the_operator_s_reason_and_words() {
        use Action::{Create, Hold, Nothing, Update};
        use PlanMode::{Apply, Plan};
        use Resolution::{Ambiguous, Found, NotFound};
        let found = |a, w, before: &[&str], after: &[&str]| outcome(Found, a, w, before, after);
        let na = || WriteOutcome::NotAttempted;
        let cases: Vec<Case> = vec![
            (
                "in sync",
                "Update",
                found(Nothing, na(), &[], &[]),
                Plan,
                None,
                "",
            ),
            (
                "planned update",
                "Update",
                found(Update, na(), &["active"], &["active"]),
                Plan,
                None,
                "update (full PUT of the record with the owned fields replaced)",
            ),
            (
                "planned create",
                "CreateOrUpdate",
                outcome(NotFound, Create, na(), &[], &[]),
                Plan,
                None,
                "create (POST a new Practitioner)",
            ),
            (
                "in sync when re-read",
                "Update",
                found(Update, na(), &["active"], &[]),
                Apply,
                None,
                "nothing to write",
            ),
            (
                "updated",
                "Update",
                found(Update, WriteOutcome::Updated, &["active"], &[]),
                Apply,
                None,
                "updated the record; the response shows the desired values",
            ),
            (
                "read-only fields",
                "Update",
                found(Update, WriteOutcome::Updated, &["active"], &["active"]),
                Apply,
                Some(Reason::WriteNotApplied),
                "updated the record but Epic's response still differs: some fields may be read-only on this instance",
            ),
            (
                "write disabled",
                "Update",
                found(
                    Hold(HoldReason::WriteDisabled),
                    na(),
                    &["active"],
                    &["active"],
                ),
                Plan,
                Some(Reason::WriteDisabled),
                WHY,
            ),
            (
                "observe",
                "Observe",
                found(
                    Hold(HoldReason::ObserveOnly),
                    na(),
                    &["active"],
                    &["active"],
                ),
                Plan,
                Some(Reason::ObserveOnly),
                "managementPolicy Observe: drift is reported, never written",
            ),
            (
                "not found",
                "Update",
                outcome(NotFound, Hold(HoldReason::NotFound), na(), &[], &[]),
                Plan,
                Some(Reason::NotFound),
                "no Practitioner carries NPI 1234567893; managementPolicy Update does not create (use CreateOrUpdate)",
            ),
            (
                "ambiguous",
                "Update",
                outcome(Ambiguous(2), Hold(HoldReason::AmbiguousNpi), na(), &[], &[]),
                Plan,
                Some(Reason::AmbiguousNpi),
                "2 Practitioners carry NPI 1234567893 (e1, e2); nothing is written until the duplicates are merged in Epic",
            ),
            (
                "refused",
                "Update",
                found(
                    Update,
                    WriteOutcome::Refused(refused()),
                    &["active"],
                    &["active"],
                ),
                Apply,
                Some(Reason::WriteDisabled),
                "Epic refused the write; drift is reported, not fixed: ",
            ),
            (
                "failed",
                "Update",
                found(
                    Update,
                    WriteOutcome::Failed(conflict()),
                    &["active"],
                    &["active"],
                ),
                Apply,
                Some(Reason::Conflict),
                "the write failed: ",
            ),
            (
                "conflict",
                "Update",
                found(
                    Update,
                    WriteOutcome::Conflict {
                        attempts: 3,
                        last: conflict(),
                    },
                    &["active"],
                    &["active"],
                ),
                Apply,
                Some(Reason::Conflict),
                "Practitioner was changed in Epic between read and write on each of 3 attempts (each re-read it first), so nothing was overwritten; last answer: ",
            ),
        ];
        for (case, policy, o, mode, reason, says) in cases {
            let p = practitioner(policy);
            let v = of_sync(&p, &EpicPractitionerStatus::default(), &o, WHY);
            let (got_reason, message) = detail(&v, &o, mode);
            assert_eq!(got_reason, reason, "{case}");
            if says.is_empty() || !says.ends_with(": ") {
                assert_eq!(message, says, "{case}");
            } else {
                assert!(message.starts_with(says), "{case}: {message}");
            }
            // Where the operator would report a problem, the row's reason is its Synced
            // reason, with the same words.
            if reason.is_some() {
                assert_eq!(
                    (reason, message.as_str()),
                    (Some(v.synced.reason), v.synced.message.as_str()),
                    "{case}"
                );
            }
        }
    }
}
