//! The annotations people set on an EpicPractitioner to steer the operator, and how a whole
//! or a cached practitioner (`operator::slim`) reads them.

use kube::api::ObjectMeta;

/// Annotation that stops writes and polling for one practitioner.
pub const PAUSED_ANNOTATION: &str = "epic-operator.dev/paused";

/// Annotation that asks for a fresh read and plan of one object now (any new value, for
/// example the current time); `status.lastHandledRequestedAt` shows when it was acted on.
pub const REQUESTED_AT_ANNOTATION: &str = "epic-operator.dev/requested-at";

/// True when the paused annotation is set to "true" (of a whole or a cached practitioner).
pub fn is_paused(meta: &ObjectMeta) -> bool {
    meta.annotations
        .as_ref()
        .and_then(|a| a.get(PAUSED_ANNOTATION))
        .is_some_and(|v| v.eq_ignore_ascii_case("true"))
}

/// The `requested-at` value not yet acted on (`handled` is the status's
/// `lastHandledRequestedAt`), if any.
pub fn pending_request<'a>(meta: &'a ObjectMeta, handled: Option<&str>) -> Option<&'a str> {
    let asked = meta.annotations.as_ref()?.get(REQUESTED_AT_ANNOTATION)?;
    (handled != Some(asked.as_str())).then_some(asked.as_str())
}
