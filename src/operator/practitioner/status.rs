//! Practitioner status: built from the old status and one sync's outcome (pure), so that every
//! patch carries the whole status under the operator's single field manager.

use crate::crd::{
    Condition, ConditionStatus, CreateAttempt, DEACTIVATION_NOTE, EpicPractitioner,
    EpicPractitionerStatus, LastError, Reason, set_condition,
};
use crate::operator::practitioner::status_limits::bounded;
use crate::pipeline::verdict::{self, Said, Verdict};
use crate::pipeline::{AttemptState, SyncOutcome, WriteOutcome};
use crate::reconcile::{Action, HoldReason, Normalizer, fingerprint};
use crate::util::now_rfc3339;

pub use crate::crd::{IN_SYNC, READY, SYNCED};

/// A condition of this pass, observed now.
fn condition(type_: &str, said: &Said, generation: Option<i64>) -> Condition {
    Condition::new(
        type_,
        said.status,
        said.reason,
        &said.message,
        generation,
        now_rfc3339(),
    )
}

/// Sets Synced and derives Ready from Synced and InSync.
pub fn set_synced(
    status: &mut EpicPractitionerStatus,
    ok: bool,
    reason: Reason,
    message: String,
    generation: Option<i64>,
) {
    put(
        status,
        SYNCED,
        &Said::new(ok.into(), reason, message),
        generation,
    );
}

pub fn set_in_sync(
    status: &mut EpicPractitionerStatus,
    s: ConditionStatus,
    reason: Reason,
    message: String,
    generation: Option<i64>,
) {
    put(status, IN_SYNC, &Said::new(s, reason, message), generation);
}

/// Ready, by the verdict's rule, from the Synced and InSync the status holds now.
fn derive_ready(status: &mut EpicPractitionerStatus, generation: Option<i64>) {
    let said = |t: &str| {
        status
            .conditions
            .iter()
            .find(|c| c.type_ == t)
            .map(|c| Said::new(c.status, c.reason(), c.message.clone()))
    };
    let ready = verdict::ready(said(SYNCED).as_ref(), said(IN_SYNC).as_ref());
    set_condition(&mut status.conditions, condition(READY, &ready, generation));
}

/// Whether `new` says anything `old` does not, beyond the time of the sync: a sync that only
/// confirms what status shows writes nothing to the API server (at 10,000 objects that is
/// 10,000 writes an interval saved).
pub fn changed(old: &EpicPractitionerStatus, new: &EpicPractitionerStatus) -> bool {
    old.last_sync_time.is_none() && new.last_sync_time.is_some()
        || EpicPractitionerStatus {
            last_sync_time: old.last_sync_time.clone(),
            ..new.clone()
        } != *old
}

/// The create attempt status keeps: none once a record is known or Epic answered the POST; a
/// new one when this pass's POST went unanswered; else the standing one.
fn create_attempt_after(
    obj: &EpicPractitioner,
    old: &EpicPractitionerStatus,
    outcome: &SyncOutcome,
    base_url: &str,
    now: &str,
) -> Option<CreateAttempt> {
    if outcome.fhir_id.is_some() {
        return None;
    }
    match outcome.create_attempt {
        AttemptState::Answered => None,
        AttemptState::Unknown => Some(CreateAttempt {
            npi: obj.spec.npi.clone(),
            connection: base_url.to_string(),
            sent_at: now.to_string(),
        }),
        // An attempt for another NPI or instance says nothing about this one.
        AttemptState::NotSent => old
            .create_attempt
            .clone()
            .filter(|a| a.npi == obj.spec.npi && a.connection == base_url),
    }
}

/// The new status after a sync. `base_url` is the connection the id belongs to.
pub fn from_outcome(
    obj: &EpicPractitioner,
    old: &EpicPractitionerStatus,
    outcome: &SyncOutcome,
    base_url: &str,
    verdict: &Verdict,
    normalizer: &Normalizer,
) -> EpicPractitionerStatus {
    let generation = obj.metadata.generation;
    let mut s = old.clone();
    s.observed_generation = generation;
    // A record held as gone keeps its id: the next pass reads it again (a search's "not
    // found" alone would lead to a create in its place).
    s.fhir_id = outcome.fhir_id.clone().or_else(|| outcome.gone_id.clone());
    s.live_active = outcome
        .live
        .as_ref()
        .and_then(|l| l.get("active"))
        .and_then(serde_json::Value::as_bool);
    s.connection = s.fhir_id.as_ref().map(|_| base_url.to_string());
    s.drift = outcome.remaining.entries.clone();
    s.diff = (!outcome.remaining.diff.is_empty()).then(|| outcome.remaining.diff.clone());
    if outcome.roles_known {
        s.roles = outcome.roles.clone();
    }
    let now = now_rfc3339();
    s.last_sync_time = Some(now.clone());
    s.live_fingerprint = outcome.live.as_ref().map(|l| fingerprint(l, normalizer));
    s.warnings = outcome.warnings.clone();
    s.note = (obj.spec.active == Some(false)).then(|| DEACTIVATION_NOTE.to_string());
    s.last_error = None;
    s.create_attempt = create_attempt_after(obj, old, outcome, base_url, &now);

    put(&mut s, IN_SYNC, &verdict.in_sync, generation);
    record_write(&mut s, old, outcome, now);
    put(&mut s, SYNCED, &verdict.synced, generation);
    bounded(s)
}

/// What the write leaves in status: when it happened or was refused, and the error it met.
fn record_write(
    s: &mut EpicPractitionerStatus,
    old: &EpicPractitionerStatus,
    outcome: &SyncOutcome,
    now: String,
) {
    match &outcome.write {
        WriteOutcome::Updated | WriteOutcome::Created | WriteOutcome::Deactivated => {
            s.last_write_time = Some(now);
            s.last_refused_write_time = None;
        }
        WriteOutcome::Refused(e) => {
            s.last_refused_write_time = Some(now);
            s.last_error = Some(last_error(
                Reason::WriteDisabled,
                e.to_string(),
                e.http_status(),
                e.epic_codes(),
            ));
        }
        WriteOutcome::Failed(e) => {
            s.last_error = Some(last_error(
                e.reason(),
                e.to_string(),
                e.http_status(),
                e.epic_codes(),
            ));
        }
        WriteOutcome::NotSent(why) => {
            s.last_error = Some(last_error(
                Reason::KubernetesError,
                format!("the create was not sent: {why}"),
                None,
                Vec::new(),
            ));
        }
        WriteOutcome::Conflict { attempts, last } => {
            s.last_error = Some(last_error(
                Reason::Conflict,
                verdict::conflict_message(*attempts, last),
                last.http_status(),
                last.epic_codes(),
            ));
        }
        // A held write keeps the refusal Epic gave last time: it is still the reason.
        WriteOutcome::NotAttempted if outcome.action == Action::Hold(HoldReason::WriteDisabled) => {
            s.last_error = old
                .last_error
                .clone()
                .filter(|e| e.reason == Reason::WriteDisabled.as_str());
        }
        WriteOutcome::NotAttempted => {}
    }
}

/// Sets one condition from its verdict (Ready follows Synced).
fn put(status: &mut EpicPractitionerStatus, type_: &str, said: &Said, generation: Option<i64>) {
    set_condition(&mut status.conditions, condition(type_, said, generation));
    if type_ == SYNCED {
        derive_ready(status, generation);
    }
}

/// The status after a failed reconcile: old fields kept, the error in Synced and lastError.
pub fn from_error(
    obj: &EpicPractitioner,
    old: &EpicPractitionerStatus,
    reason: Reason,
    message: String,
    http_status: Option<u16>,
    codes: Vec<String>,
) -> EpicPractitionerStatus {
    let generation = obj.metadata.generation;
    let mut s = old.clone();
    s.observed_generation = generation;
    s.last_error = Some(last_error(reason, message.clone(), http_status, codes));
    s.note = (obj.spec.active == Some(false)).then(|| DEACTIVATION_NOTE.to_string());
    if !s.conditions.iter().any(|c| c.type_ == IN_SYNC) {
        set_in_sync(
            &mut s,
            ConditionStatus::Unknown,
            Reason::Unknown,
            "the live record could not be read".into(),
            generation,
        );
    }
    set_synced(&mut s, false, reason, message, generation);
    bounded(s)
}

/// The status of a deleting object whose deactivation has not been written: Synced (and so
/// Ready) says DeletionBlocked, why, and the exact way out. The reason that blocks it (for
/// example WriteDisabled) stays in `lastError`.
pub fn deletion_blocked(
    obj: &EpicPractitioner,
    new: EpicPractitionerStatus,
) -> EpicPractitionerStatus {
    let generation = obj.metadata.generation;
    let why = new.synced_reason().unwrap_or(Reason::Pending);
    let mut s = new;
    if why == Reason::DeletionBlocked {
        return s;
    }
    let detail = s
        .conditions
        .iter()
        .find(|c| c.type_ == SYNCED)
        // Without its final full stop: the sentence goes on.
        .map(|c| c.message.trim_end_matches('.').to_string())
        .unwrap_or_default();
    if s.last_error.is_none() && why != Reason::Synced {
        s.last_error = Some(last_error(why, detail.clone(), None, Vec::new()));
    }
    let name = obj.metadata.name.as_deref().unwrap_or("NAME");
    let ns = obj.metadata.namespace.as_deref().unwrap_or("default");
    set_synced(
        &mut s,
        false,
        Reason::DeletionBlocked,
        format!(
            "deletion waits for active=false to be written to Epic (deletionPolicy Deactivate), and it cannot be: {why}: {detail}. \
To delete without writing, release the object: kubectl -n {ns} patch epicpractitioner {name} --type merge -p '{{\"spec\":{{\"deletionPolicy\":\"Orphan\"}}}}'"
        ),
        generation,
    );
    bounded(s)
}

/// What holds a blocked deletion: the reason in `lastError`, else the Synced reason.
pub fn blocking_reason(s: &EpicPractitionerStatus) -> Option<Reason> {
    s.last_error
        .as_ref()
        .and_then(|e| Reason::parse(&e.reason))
        .or_else(|| s.synced_reason())
}

/// The status of a paused object.
pub fn paused(obj: &EpicPractitioner, old: &EpicPractitionerStatus) -> EpicPractitionerStatus {
    let generation = obj.metadata.generation;
    let mut s = old.clone();
    s.observed_generation = generation;
    if !s.conditions.iter().any(|c| c.type_ == IN_SYNC) {
        set_in_sync(
            &mut s,
            ConditionStatus::Unknown,
            Reason::Paused,
            "not observed while paused".into(),
            generation,
        );
    }
    set_synced(
        &mut s,
        false,
        Reason::Paused,
        "paused by annotation epic-operator.dev/paused: no reads, no writes".into(),
        generation,
    );
    bounded(s)
}

fn last_error(
    reason: Reason,
    message: String,
    http_status: Option<u16>,
    epic_codes: Vec<String>,
) -> LastError {
    LastError {
        reason: reason.as_str().into(),
        message,
        http_status,
        epic_codes,
    }
}

#[cfg(test)]
#[path = "status_tests.rs"]
mod tests;
