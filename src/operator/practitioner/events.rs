//! Which Events a reconcile publishes: one per real transition (resolved, drift found, written,
//! created, refused, conflict, not found, ambiguous, search incomplete, failed), decided from
//! the old and new status and what the sync did. Pure: no I/O, unit-tested here. Notes name
//! the NPI, the FHIR id and field paths only, never values (no PHI in Events).

use kube::runtime::events::EventType;

use crate::crd::{EpicPractitioner, EpicPractitionerStatus, Reason};
use crate::operator::practitioner::observe::Prev;
use crate::pipeline::verdict::{RETRIED, phrase};
use crate::pipeline::{SyncOutcome, WriteOutcome};
use crate::reconcile::Resolution;

/// Events for what changed, from the previous status, the new one and its Synced reason.
/// Notes name NPI, FHIR id and field paths only: never values.
pub fn transitions(
    obj: &EpicPractitioner,
    prev: &Prev,
    new: &EpicPractitionerStatus,
    new_reason: Option<Reason>,
    outcome: Option<&SyncOutcome>,
) -> Vec<(EventType, Reason, String)> {
    let npi = &obj.spec.npi;
    // "Practitioner/x (NPI n)" once resolved, "NPI n" before: never a placeholder id.
    let subject = match new.fhir_id.as_deref() {
        Some(id) => format!("Practitioner/{id} (NPI {npi})"),
        None => format!("NPI {npi}"),
    };
    let mut events = Vec::new();
    let old_reason = prev.synced;
    if let Some(o) = outcome {
        events.extend(sync_events(obj, prev, new, new_reason, o, &subject));
    }
    if new_reason == Some(Reason::WriteDisabled) && old_reason != Some(Reason::WriteDisabled) {
        events.push((
            EventType::Warning,
            Reason::WriteDisabled,
            format!(
                "Epic does not accept writes for {subject}; {}. {}",
                phrase::NOT_FIXED,
                Reason::WriteDisabled.remedy()
            ),
        ));
    }
    if new_reason == Some(Reason::DeletionBlocked) && old_reason != new_reason {
        events.push((
            EventType::Warning,
            Reason::DeletionBlocked,
            format!(
                "deletion of {subject} waits: deletionPolicy Deactivate needs active=false written to Epic, and {} holds it. {}",
                crate::operator::practitioner::status::blocking_reason(new).unwrap_or(Reason::Pending),
                Reason::DeletionBlocked.remedy()
            ),
        ));
    } else if outcome.is_none()
        && new_reason != old_reason
        && let Some(r) = new_reason
        && r != Reason::Paused
    {
        events.push((
            EventType::Warning,
            Reason::ReconcileFailed,
            format!("{subject}: {r}. {}", r.remedy()),
        ));
    }
    events
}

/// Events of what a sync found and did: resolved, drift found, written, created,
/// deactivated, conflict, and the first time a record is not found, ambiguous, or its search
/// incomplete.
fn sync_events(
    obj: &EpicPractitioner,
    prev: &Prev,
    new: &EpicPractitionerStatus,
    new_reason: Option<Reason>,
    o: &SyncOutcome,
    subject: &str,
) -> Vec<(EventType, Reason, String)> {
    let old = &prev.status;
    let old_reason = prev.synced;
    let npi = &obj.spec.npi;
    let id = new.fhir_id.as_deref().unwrap_or_default();
    let mut events = Vec::new();
    // A record held as gone keeps its id in status: it was not resolved to.
    if new.fhir_id.is_some() && new.fhir_id != old.fhir_id && o.searched && o.gone_id.is_none() {
        events.push((
            EventType::Normal,
            Reason::Resolved,
            format!("NPI {npi} resolved to Practitioner/{id}"),
        ));
    }
    let old_drift: Vec<&str> = old.drift.iter().map(|d| d.path.as_str()).collect();
    let paths: Vec<&str> = o.drift.entries.iter().map(|d| d.path.as_str()).collect();
    if !paths.is_empty() && paths != old_drift {
        events.push((
            EventType::Normal,
            Reason::DriftDetected,
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
            events.push((EventType::Normal, Reason::Updated, format!("{subject} updated: {}", paths.join(", "))));
            if deactivated {
                events.push((EventType::Normal, Reason::Deactivated, format!("{subject} set active=false; Epic login access is not revoked by this: end it in Epic's user records")));
            }
        }
        WriteOutcome::Created => events.push((EventType::Normal, Reason::Created, format!("created Practitioner/{id} for NPI {npi}"))),
        WriteOutcome::Deactivated => events.push((EventType::Normal, Reason::Deactivated, format!("{subject} set active=false before deletion; Epic login access is not revoked by this: end it in Epic's user records"))),
        WriteOutcome::Conflict { attempts, .. } => events.push((EventType::Warning, Reason::Conflict, format!("{subject} {}{RETRIED}", phrase::conflicted(*attempts)))),
        _ => {}
    }
    events.extend(resolution_events(npi, old_reason, new_reason, o));
    events
}

/// The first Event of a record not found, ambiguous, or whose search was incomplete.
fn resolution_events(
    npi: &str,
    old_reason: Option<Reason>,
    new_reason: Option<Reason>,
    o: &SyncOutcome,
) -> Vec<(EventType, Reason, String)> {
    let mut events = Vec::new();
    if o.resolution == Resolution::Incomplete && old_reason != Some(Reason::SearchIncomplete) {
        events.push((
            EventType::Warning,
            Reason::SearchIncomplete,
            format!(
                "{} (status.warnings says why); nothing is created on it. {}",
                phrase::incomplete(npi),
                Reason::SearchIncomplete.remedy()
            ),
        ));
    }
    if o.resolution == Resolution::NotFound
        && old_reason != Some(Reason::NotFound)
        && new_reason == Some(Reason::NotFound)
    {
        events.push((
            EventType::Warning,
            Reason::NotFound,
            format!("{}. {}", phrase::not_found(npi), Reason::NotFound.remedy()),
        ));
    }
    if new_reason == Some(Reason::RecordGone) && old_reason != Some(Reason::RecordGone) {
        events.push((
            EventType::Warning,
            Reason::RecordGone,
            format!(
                "{}, and no record carries the NPI now: nothing is created in its place. {}",
                phrase::gone(o.gone_id.as_deref().unwrap_or_default(), npi),
                Reason::RecordGone.remedy()
            ),
        ));
    }
    if matches!(o.resolution, Resolution::Ambiguous(_)) && old_reason != Some(Reason::AmbiguousNpi)
    {
        events.push((
            EventType::Warning,
            Reason::AmbiguousNpi,
            format!(
                "{}; nothing written. {}",
                phrase::ambiguous(o.ambiguous_ids.len(), npi),
                Reason::AmbiguousNpi.remedy()
            ),
        ));
    }
    events
}

#[cfg(test)]
#[path = "events_tests.rs"]
mod tests;
