//! Acting on a plan: POST a new record, or read-then-conditional-PUT an existing one, and
//! record what happened even when a read after the write fails.

use serde_json::Value;

use super::empty_report;
use super::resolve::read_verified;
use super::{AttemptState, MAX_WRITE_ATTEMPTS, Observed, SyncOutcome, SyncRequest, WriteOutcome};
use crate::crd::{EpicPractitionerSpec, NPI_SYSTEMS};
use crate::fhir::{FhirClient, FhirError};
use crate::reconcile::identity::{is_subsetted, version_precondition};
use crate::reconcile::{Action, Normalizer, Resolution, drift, new_resource, overlay};

/// POST a new record (conditional on the NPI where the instance supports it). Reads after it
/// are best-effort: the create is recorded whatever follows.
pub(super) async fn create(client: &FhirClient, req: &SyncRequest<'_>, outcome: &mut SyncOutcome) {
    let spec = req.spec;
    let if_none_exist = req.conditional_create.then(|| {
        let tokens: Vec<String> = NPI_SYSTEMS
            .iter()
            .map(|s| format!("{s}|{}", spec.npi))
            .collect();
        format!("identifier={}", tokens.join(","))
    });
    let sent = new_resource(spec, req.normalizer);
    // The attempt is on record before the POST leaves: if its answer is lost (or this process
    // with it), the next pass knows a record may exist and does not POST on old evidence.
    if let Some(recorder) = req.attempt_recorder
        && let Err(why) = recorder.record().await
    {
        outcome.write = WriteOutcome::NotSent(why);
        return;
    }
    outcome.write_attempts = 1;
    let answer = client
        .create_practitioner(&sent, if_none_exist.as_deref())
        .await;
    outcome.create_attempt = match &answer {
        Err(e) if !epic_answered(e) => AttemptState::Unknown,
        _ => AttemptState::Answered,
    };
    match answer {
        Ok((id, body)) => {
            let body = settle(client, &id, body, &sent, outcome).await;
            outcome.remaining = drift(spec, &body, req.normalizer);
            outcome.fhir_id = Some(id);
            outcome.live = Some(body);
            outcome.resolution = Resolution::Found;
            outcome.write = WriteOutcome::Created;
        }
        Err(e @ FhirError::WriteDisabled { .. }) => outcome.write = WriteOutcome::Refused(e),
        Err(e) => outcome.write = WriteOutcome::Failed(e),
    }
}

/// Whether a failed POST was answered by Epic, so that nothing can have been created: a 4xx
/// other than 408 (a timeout, which may come after the work is done). No answer (reset,
/// timeout), a 5xx, or a 2xx that could not be understood leave the outcome unknown.
fn epic_answered(e: &FhirError) -> bool {
    e.http_status()
        .is_some_and(|s| (400..500).contains(&s) && s != 408)
}

/// Read-then-write: every PUT is built from a by-id read of the record (never from a search
/// copy), carries `If-Match` when a version is known, and on 412/409 the record is read again
/// and the write re-planned, up to [`MAX_WRITE_ATTEMPTS`] times.
pub(super) async fn update(
    client: &FhirClient,
    spec: &EpicPractitionerSpec,
    norm: &Normalizer,
    mut observed: Observed,
    outcome: &mut SyncOutcome,
) {
    let mut last_conflict = None;
    for _ in 0..MAX_WRITE_ATTEMPTS {
        if !observed.by_id {
            observed = match read_verified(client, &observed.id, &spec.npi).await {
                Ok(o) => o,
                Err(e) => {
                    outcome.write = WriteOutcome::Failed(e);
                    return;
                }
            };
        }
        if is_subsetted(&observed.body) {
            outcome.write = WriteOutcome::Failed(FhirError::Refused(format!(
                "Practitioner/{} was read tagged SUBSETTED (not the whole resource); writing it back would erase fields",
                observed.id
            )));
            return;
        }
        // Re-plan on the fresh copy: someone may have fixed the drift meanwhile.
        if drift(spec, &observed.body, norm).is_empty() {
            outcome.action = Action::Nothing;
            outcome.remaining = empty_report();
            outcome.live = Some(observed.body);
            return;
        }
        let body = overlay(spec, &observed.body, norm);
        let if_match = version_precondition(observed.etag.as_deref(), &observed.body);
        outcome.if_match = if_match.clone();
        outcome.write_attempts += 1;
        match client
            .update_practitioner(&observed.id, &body, if_match.as_deref())
            .await
        {
            Ok(v) => {
                let written = settle(client, &observed.id, v.body, &body, outcome).await;
                outcome.remaining = drift(spec, &written, norm);
                outcome.live = Some(written);
                outcome.write = if outcome.action == Action::Deactivate {
                    WriteOutcome::Deactivated
                } else {
                    WriteOutcome::Updated
                };
                return;
            }
            Err(e @ FhirError::Conflict { .. }) => {
                tracing::info!(id = %observed.id, "version conflict on write; reading the record again");
                observed.by_id = false;
                last_conflict = Some(e);
            }
            Err(e @ FhirError::WriteDisabled { .. }) => {
                outcome.write = WriteOutcome::Refused(e);
                return;
            }
            Err(e) => {
                outcome.write = WriteOutcome::Failed(e);
                return;
            }
        }
    }
    if let Some(last) = last_conflict {
        outcome.write = WriteOutcome::Conflict {
            attempts: MAX_WRITE_ATTEMPTS,
            last,
        };
    }
}

/// The record as it stands after a successful write: the server's answer when it is the
/// resource, else a best-effort read, else what was sent (with a warning). Never fails.
async fn settle(
    client: &FhirClient,
    id: &str,
    answered: Value,
    sent: &Value,
    outcome: &mut SyncOutcome,
) -> Value {
    if answered.get("resourceType").and_then(Value::as_str) == Some("Practitioner") {
        return answered;
    }
    match client.read_practitioner(id).await {
        Ok(v) => v.body,
        Err(e) => {
            outcome.warnings.push(format!(
                "the write succeeded but the record could not be read back: {e}"
            ));
            let mut s = sent.clone();
            s["id"] = Value::String(id.to_string());
            s
        }
    }
}
