//! Kubernetes-style status conditions, kept as a list keyed by `type`.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::Reason;

/// The condition types: Ready (both kinds), Synced and InSync (practitioners).
pub const READY: &str = "Ready";
pub const SYNCED: &str = "Synced";
pub const IN_SYNC: &str = "InSync";

/// `True`, `False` or `Unknown`, as Kubernetes conditions spell them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum ConditionStatus {
    True,
    False,
    Unknown,
}

impl From<bool> for ConditionStatus {
    fn from(b: bool) -> Self {
        if b { Self::True } else { Self::False }
    }
}

/// One observation about the resource, in the standard Kubernetes condition shape.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Condition {
    /// Condition type: Ready, Synced or InSync.
    #[serde(rename = "type")]
    pub type_: String,
    /// True, False or Unknown.
    pub status: ConditionStatus,
    /// A stable, CamelCase reason (for example WriteDisabled or NoDrift).
    pub reason: String,
    /// Human-readable detail; never contains names, contacts or birth dates.
    pub message: String,
    /// When the status last changed (RFC 3339).
    pub last_transition_time: String,
    /// The metadata.generation this condition was computed from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}

/// Longest message a condition keeps (Epic's diagnostics and OAuth `error_description` come
/// from outside and can be any size); a longer one is cut with a marker.
pub const MAX_CONDITION_MESSAGE_BYTES: usize = 1024;

impl Condition {
    /// The stored reason; one written by an older release that is no longer in the vocabulary
    /// reads as Unknown.
    pub fn reason(&self) -> Reason {
        Reason::parse(&self.reason).unwrap_or(Reason::Unknown)
    }

    /// The one constructor of a condition, for both kinds: its type, status, reason and
    /// message (cut to [`MAX_CONDITION_MESSAGE_BYTES`]), the generation it was computed from
    /// and when it was observed (RFC 3339; [`set_condition`] keeps the earlier time while the
    /// status does not change).
    pub fn new(
        type_: &str,
        status: ConditionStatus,
        reason: Reason,
        message: &str,
        generation: Option<i64>,
        at: String,
    ) -> Self {
        Condition {
            type_: type_.into(),
            status,
            reason: reason.as_str().into(),
            message: crate::util::bounded_message(message, MAX_CONDITION_MESSAGE_BYTES),
            last_transition_time: at,
            observed_generation: generation,
        }
    }
}

/// The reason of the stored condition of `type_`. A reason written by an older release that is
/// no longer in the vocabulary reads as Unknown.
pub fn reason_of(conditions: &[Condition], type_: &str) -> Option<Reason> {
    conditions
        .iter()
        .find(|c| c.type_ == type_)
        .map(Condition::reason)
}

impl super::EpicPractitionerStatus {
    /// The reason of the stored Synced condition (walks, metrics and a pass's previous status
    /// read it).
    pub fn synced_reason(&self) -> Option<Reason> {
        reason_of(&self.conditions, SYNCED)
    }
}

/// Replaces or adds the condition of `new.type_`, keeping `lastTransitionTime` when the status
/// did not change (so the time says when the state began, not when it was last observed).
pub fn set_condition(conditions: &mut Vec<Condition>, mut new: Condition) {
    match conditions.iter_mut().find(|c| c.type_ == new.type_) {
        Some(existing) => {
            if existing.status == new.status {
                new.last_transition_time = existing.last_transition_time.clone();
            }
            *existing = new;
        }
        None => conditions.push(new),
    }
}

/// Schema for a `conditions` list: a map-list keyed by `type`, so server-side apply merges
/// entries by type instead of replacing the whole list.
pub(crate) fn conditions_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
    let item = generator.subschema_for::<Condition>();
    schemars::json_schema!({
        "type": "array",
        "description": "Current state: Ready, Synced and InSync (practitioner) or Ready (connection).",
        "items": item,
        "x-kubernetes-list-type": "map",
        "x-kubernetes-list-map-keys": ["type"]
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cond(status: ConditionStatus, reason: &str, time: &str) -> Condition {
        Condition {
            type_: "Ready".into(),
            status,
            reason: reason.into(),
            message: String::new(),
            last_transition_time: time.into(),
            observed_generation: Some(1),
        }
    }

    #[test]
    fn transition_time_kept_while_status_unchanged() {
        let mut list = vec![cond(ConditionStatus::True, "A", "t1")];
        set_condition(&mut list, cond(ConditionStatus::True, "B", "t2"));
        assert_eq!(list.len(), 1);
        assert_eq!(list[0].last_transition_time, "t1");
        assert_eq!(list[0].reason, "B");
        set_condition(&mut list, cond(ConditionStatus::False, "C", "t3"));
        assert_eq!(list[0].last_transition_time, "t3");
    }

    #[test]
    fn the_constructor_spells_the_reason_and_bounds_the_message() {
        let long = "x".repeat(3 * MAX_CONDITION_MESSAGE_BYTES);
        let cases: [(&str, usize, bool); 3] = [
            ("", 0, false),
            ("differs in active", 17, false),
            (&long, MAX_CONDITION_MESSAGE_BYTES, true),
        ];
        for (message, at_most, cut) in cases {
            let c = Condition::new(
                READY,
                ConditionStatus::False,
                Reason::AmbiguousNpi,
                message,
                Some(4),
                "t1".into(),
            );
            assert_eq!(
                (c.type_.as_str(), c.reason.as_str(), c.observed_generation),
                (READY, "AmbiguousNPI", Some(4))
            );
            assert_eq!(c.last_transition_time, "t1");
            assert!(c.message.len() <= at_most, "{}", c.message.len());
            assert_eq!(c.message.ends_with("more bytes not shown]"), cut);
            assert_eq!(c.message == message, !cut);
        }
    }
}
