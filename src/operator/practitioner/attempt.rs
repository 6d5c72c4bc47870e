//! The create attempt, written into status before a POST leaves: if that write fails, no
//! POST is sent, and an answer lost after it cannot lead to a second create unnoticed. And
//! the guard an unanswered attempt puts on the next POST.

use std::time::{Duration, Instant};

use kube::{Api, ResourceExt};

use super::status_write::apply_status;
use crate::crd::{CreateAttempt, EpicPractitioner, EpicPractitionerStatus};
use crate::operator::Context;
use crate::operator::connection::cache::ConnectionHandle;
use crate::operator::memory::Memory;
use crate::pipeline::{AttemptRecorder, CreateGuard};
use crate::reconcile::evidence_after_attempt;

/// Writes the create attempt into status (the whole status, under the one field manager)
/// before the POST leaves. The status is built only when a POST is about to be sent.
pub struct StatusAttempt<'a> {
    api: Api<EpicPractitioner>,
    obj: &'a EpicPractitioner,
    old: &'a EpicPractitionerStatus,
    base_url: String,
    memory: &'a Memory,
}

impl<'a> StatusAttempt<'a> {
    pub fn new(
        ctx: &'a Context,
        obj: &'a EpicPractitioner,
        old: &'a EpicPractitionerStatus,
        base_url: &str,
    ) -> Self {
        StatusAttempt {
            api: Api::namespaced(ctx.kube.clone(), &obj.namespace().unwrap_or_default()),
            obj,
            old,
            base_url: base_url.to_string(),
            memory: &ctx.memory,
        }
    }
}

impl AttemptRecorder for StatusAttempt<'_> {
    fn record(&self) -> futures::future::BoxFuture<'_, Result<(), String>> {
        Box::pin(async move {
            let attempt = CreateAttempt {
                npi: self.obj.spec.npi.clone(),
                connection: self.base_url.clone(),
                sent_at: crate::util::now_rfc3339(),
            };
            let status = EpicPractitionerStatus {
                create_attempt: Some(attempt.clone()),
                ..self.old.clone()
            };
            apply_status(&self.api, &self.obj.name_any(), &status)
                .await
                .map_err(|e| format!("status write failed: {e}"))?;
            let (object, uid) = crate::operator::slim::identity(self.obj);
            self.memory.note_attempt(&object, &uid, attempt);
            Ok(())
        })
    }
}

/// What may prove this object's record absent before a POST: a search just before it where
/// the instance searches by identifier; and where an unanswered create attempt stands, dated
/// by this process's own clock (when its POST's answer was lost, or when it first saw the
/// attempt), only a search or a walk that started later than that plus the request timeout:
/// Epic may still be applying a POST its client stopped waiting for.
/// Returns the guard, the attempt it dated, and how long until a search may prove absence.
pub(super) fn create_guard(
    obj: &EpicPractitioner,
    old: &EpicPractitionerStatus,
    remembered: Option<(Instant, CreateAttempt)>,
    conn: &ConnectionHandle,
    search: bool,
    walk_started: Option<Instant>,
) -> (
    CreateGuard,
    Option<(Instant, CreateAttempt)>,
    Option<Duration>,
) {
    // An unanswered attempt in status that memory does not hold is first seen now.
    let in_status = old
        .create_attempt
        .as_ref()
        .filter(|a| a.npi == obj.spec.npi && a.connection == conn.base_url());
    let attempt = remembered.or_else(|| in_status.map(|a| (Instant::now(), a.clone())));
    let settle = conn.client.settings().request_timeout;
    let at = attempt.as_ref().map(|(t, _)| *t);
    let now = Instant::now();
    let guard = CreateGuard {
        search,
        walk_after_attempt: evidence_after_attempt(at, walk_started, settle),
        search_after_attempt: evidence_after_attempt(at, Some(now), settle),
    };
    // Whenever a search cannot prove absence yet, when it can.
    let settles_in = (!guard.search_after_attempt).then(|| {
        at.and_then(|t| t.checked_add(settle))
            .map_or(settle, |due| due.saturating_duration_since(now))
    });
    (guard, attempt, settles_in)
}
