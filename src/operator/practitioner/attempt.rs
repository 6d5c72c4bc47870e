//! The create attempt, written into status before a POST leaves: if that write fails, no
//! POST is sent, and an answer lost after it cannot lead to a second create unnoticed.

use kube::runtime::reflector::ObjectRef;
use kube::{Api, ResourceExt};

use super::status_write::apply_status;
use crate::crd::{CreateAttempt, EpicPractitioner, EpicPractitionerStatus};
use crate::operator::Context;
use crate::operator::memory::Memory;
use crate::pipeline::AttemptRecorder;

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
            self.memory.note_attempt(
                &ObjectRef::from_obj(self.obj),
                &self.obj.uid().unwrap_or_default(),
                attempt,
            );
            Ok(())
        })
    }
}
