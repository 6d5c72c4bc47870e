//! Which Events a reconcile publishes: one per real transition (resolved, drift found, written,
//! created, refused, conflict, not found, ambiguous, search incomplete, failed), decided from
//! the old and new status and what the sync did. Pure: no I/O, unit-tested here. Notes name
//! the NPI, the FHIR id and field paths only, never values (no PHI in Events).

use kube::runtime::events::EventType;

use super::status::synced_reason;
use crate::crd::{EpicPractitioner, EpicPractitionerStatus};
use crate::pipeline::{SyncOutcome, WriteOutcome};
use crate::reconcile::Resolution;

/// Events for what changed. Notes name NPI, FHIR id and field paths only: never values.
pub fn transitions(
    obj: &EpicPractitioner,
    old: &EpicPractitionerStatus,
    new: &EpicPractitionerStatus,
    outcome: Option<&SyncOutcome>,
) -> Vec<(EventType, &'static str, String)> {
    let npi = &obj.spec.npi;
    let id = new.fhir_id.as_deref().unwrap_or("-");
    let mut events = Vec::new();
    let old_reason = synced_reason(old);
    let new_reason = synced_reason(new);
    if let Some(o) = outcome {
        if new.fhir_id.is_some() && new.fhir_id != old.fhir_id && o.searched {
            events.push((
                EventType::Normal,
                "Resolved",
                format!("NPI {npi} resolved to Practitioner/{id}"),
            ));
        }
        let old_drift: Vec<&str> = old.drift.iter().map(|d| d.path.as_str()).collect();
        let paths: Vec<&str> = o.drift.entries.iter().map(|d| d.path.as_str()).collect();
        if !paths.is_empty() && paths != old_drift {
            events.push((
                EventType::Normal,
                "DriftDetected",
                format!(
                    "Practitioner/{id} (NPI {npi}) differs in {}",
                    paths.join(", ")
                ),
            ));
        }
        match &o.write {
            WriteOutcome::Updated => {
                let deactivated = obj.spec.active == Some(false)
                    && o.drift.entries.iter().any(|d| d.path == "active");
                events.push((EventType::Normal, "Updated", format!("Practitioner/{id} (NPI {npi}) updated: {}", paths.join(", "))));
                if deactivated {
                    events.push((EventType::Normal, "Deactivated", format!("Practitioner/{id} (NPI {npi}) set active=false; Epic login access is not revoked by this")));
                }
            }
            WriteOutcome::Created => events.push((EventType::Normal, "Created", format!("created Practitioner/{id} for NPI {npi}"))),
            WriteOutcome::Deactivated => events.push((EventType::Normal, "Deactivated", format!("Practitioner/{id} (NPI {npi}) set active=false before deletion; Epic login access is not revoked by this"))),
            WriteOutcome::Conflict { attempts, .. } => events.push((EventType::Warning, "Conflict", format!("Practitioner/{id} (NPI {npi}) changed in Epic during each of {attempts} conditional writes; nothing was overwritten, retrying with backoff"))),
            _ => {}
        }
        if o.resolution == Resolution::Incomplete && old_reason != Some("SearchIncomplete") {
            events.push((
                EventType::Warning,
                "SearchIncomplete",
                format!("Epic marked the search for NPI {npi} incomplete (suppressed or unauthorized results); nothing is created on it"),
            ));
        }
        if o.resolution == Resolution::NotFound
            && old_reason != Some("NotFound")
            && new_reason == Some("NotFound")
        {
            events.push((
                EventType::Warning,
                "NotFound",
                format!("no Practitioner carries NPI {npi}"),
            ));
        }
        if matches!(o.resolution, Resolution::Ambiguous(_)) && old_reason != Some("AmbiguousNPI") {
            events.push((
                EventType::Warning,
                "AmbiguousNPI",
                format!(
                    "{} Practitioners carry NPI {npi}; nothing written",
                    o.ambiguous_ids.len()
                ),
            ));
        }
    }
    if new_reason == Some("WriteDisabled") && old_reason != Some("WriteDisabled") {
        events.push((EventType::Warning, "WriteDisabled", format!("Epic does not accept writes for Practitioner/{id} (NPI {npi}); drift is reported, not fixed")));
    }
    if outcome.is_none()
        && new_reason != old_reason
        && let Some(r) = new_reason
        && r != "Paused"
    {
        events.push((
            EventType::Warning,
            "ReconcileFailed",
            format!("NPI {npi}: {r}"),
        ));
    }
    events
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::{Condition, ConditionStatus, DriftEntry};
    use crate::fhir::{FhirError, OperationOutcome};
    use crate::reconcile::{Action, DriftReport, HoldReason};

    fn practitioner(active: bool) -> EpicPractitioner {
        let spec = serde_json::from_value(serde_json::json!({
            "connectionRef": {"name": "epic"}, "npi": "1234567893", "active": active,
            "name": {"family": "Smith", "given": ["Alice"]},
            "telecom": [{"system": "email", "value": "alice@hospital.example.org"}]
        }))
        .unwrap();
        EpicPractitioner::new("alice", spec)
    }

    fn drift(paths: &[&str]) -> DriftReport {
        DriftReport {
            entries: paths
                .iter()
                .map(|p| DriftEntry {
                    path: p.to_string(),
                    desired: "\"Smith\"".into(),
                    live: "\"alice@hospital.example.org\"".into(),
                })
                .collect(),
            diff: String::new(),
        }
    }

    fn outcome(
        resolution: Resolution,
        action: Action,
        write: WriteOutcome,
        d: &[&str],
    ) -> SyncOutcome {
        SyncOutcome {
            resolution,
            fhir_id: (resolution == Resolution::Found).then(|| "eAb-1.2".to_string()),
            searched: true,
            ambiguous_ids: vec!["a".into(), "b".into()],
            warnings: Vec::new(),
            drift: drift(d),
            action,
            if_match: None,
            write,
            write_attempts: 0,
            remaining: drift(&[]),
            live: None,
            roles: Vec::new(),
        }
    }

    fn status(synced_reason: &str, fhir_id: Option<&str>) -> EpicPractitionerStatus {
        EpicPractitionerStatus {
            fhir_id: fhir_id.map(str::to_string),
            conditions: vec![Condition {
                type_: "Synced".into(),
                status: ConditionStatus::False,
                reason: synced_reason.into(),
                message: String::new(),
                last_transition_time: String::new(),
                observed_generation: None,
            }],
            ..EpicPractitionerStatus::default()
        }
    }

    fn reasons(events: &[(EventType, &'static str, String)]) -> Vec<&'static str> {
        events.iter().map(|(_, r, _)| *r).collect()
    }

    #[test]
    fn one_event_per_real_transition() {
        let p = practitioner(true);
        let none = EpicPractitionerStatus::default();
        let found = status("Synced", Some("eAb-1.2"));
        let conflict = WriteOutcome::Conflict {
            attempts: 3,
            last: FhirError::Conflict {
                status: 412,
                outcome: OperationOutcome::default(),
            },
        };
        let cases: Vec<(
            &str,
            EpicPractitionerStatus,
            EpicPractitionerStatus,
            SyncOutcome,
            Vec<&str>,
        )> = vec![
            (
                "first resolution",
                none.clone(),
                found.clone(),
                outcome(
                    Resolution::Found,
                    Action::Nothing,
                    WriteOutcome::NotAttempted,
                    &[],
                ),
                vec!["Resolved"],
            ),
            (
                "steady state: nothing",
                found.clone(),
                found.clone(),
                outcome(
                    Resolution::Found,
                    Action::Nothing,
                    WriteOutcome::NotAttempted,
                    &[],
                ),
                vec![],
            ),
            (
                "drift written",
                found.clone(),
                found.clone(),
                outcome(
                    Resolution::Found,
                    Action::Update,
                    WriteOutcome::Updated,
                    &["name[use=official]"],
                ),
                vec!["DriftDetected", "Updated"],
            ),
            (
                "created",
                none.clone(),
                found.clone(),
                outcome(
                    Resolution::Found,
                    Action::Create,
                    WriteOutcome::Created,
                    &[],
                ),
                vec!["Resolved", "Created"],
            ),
            (
                "conflict",
                found.clone(),
                found.clone(),
                outcome(Resolution::Found, Action::Update, conflict, &["active"]),
                vec!["DriftDetected", "Conflict"],
            ),
            (
                "not found, first time",
                none.clone(),
                status("NotFound", None),
                outcome(
                    Resolution::NotFound,
                    Action::Hold(HoldReason::NotFound),
                    WriteOutcome::NotAttempted,
                    &[],
                ),
                vec!["NotFound"],
            ),
            (
                "not found again",
                status("NotFound", None),
                status("NotFound", None),
                outcome(
                    Resolution::NotFound,
                    Action::Hold(HoldReason::NotFound),
                    WriteOutcome::NotAttempted,
                    &[],
                ),
                vec![],
            ),
            (
                "ambiguous",
                none.clone(),
                status("AmbiguousNPI", None),
                outcome(
                    Resolution::Ambiguous(2),
                    Action::Hold(HoldReason::AmbiguousNpi),
                    WriteOutcome::NotAttempted,
                    &[],
                ),
                vec!["AmbiguousNPI"],
            ),
            (
                "search incomplete",
                none.clone(),
                status("SearchIncomplete", None),
                outcome(
                    Resolution::Incomplete,
                    Action::Hold(HoldReason::SearchIncomplete),
                    WriteOutcome::NotAttempted,
                    &[],
                ),
                vec!["SearchIncomplete"],
            ),
            (
                "write disabled, first time",
                found.clone(),
                status("WriteDisabled", Some("eAb-1.2")),
                outcome(
                    Resolution::Found,
                    Action::Hold(HoldReason::WriteDisabled),
                    WriteOutcome::NotAttempted,
                    &["active"],
                ),
                vec!["DriftDetected", "WriteDisabled"],
            ),
        ];
        for (what, old, new, o, want) in cases {
            let got = transitions(&p, &old, &new, Some(&o));
            assert_eq!(reasons(&got), want, "{what}");
            for (_, _, note) in &got {
                assert!(
                    !note.contains("Smith") && !note.contains('@') && !note.contains("Alice"),
                    "{what}: an Event note carries PHI: {note}"
                );
            }
        }
    }

    #[test]
    fn deactivation_and_failures() {
        let p = practitioner(false);
        let found = status("Synced", Some("eAb-1.2"));
        let o = outcome(
            Resolution::Found,
            Action::Update,
            WriteOutcome::Updated,
            &["active"],
        );
        let got = transitions(&p, &found, &found, Some(&o));
        assert_eq!(
            reasons(&got),
            vec!["DriftDetected", "Updated", "Deactivated"]
        );
        assert!(got[2].2.contains("login access is not revoked"));
        // A failed reconcile (no outcome) reports its new reason once; Paused is not a failure.
        let failed = transitions(&p, &found, &status("Unauthorized", None), None);
        assert_eq!(reasons(&failed), vec!["ReconcileFailed"]);
        assert!(transitions(&p, &found, &status("Paused", None), None).is_empty());
        assert!(
            transitions(
                &p,
                &status("Unauthorized", None),
                &status("Unauthorized", None),
                None
            )
            .is_empty()
        );
    }
}
