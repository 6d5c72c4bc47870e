//! How large a status may grow: every field that carries outside text (Epic's diagnostics, an
//! OAuth `error_description`, drift values) is cut to a documented size with a marker, so a
//! status stays far below etcd's object limit whatever Epic sends.

use crate::crd::EpicPractitionerStatus;
use crate::util::bounded_message;

/// Longest message kept in a condition or `lastError` (Epic's diagnostics and OAuth
/// `error_description` come from outside and can be any size): the conditions' own bound.
pub const MAX_MESSAGE_BYTES: usize = crate::crd::MAX_CONDITION_MESSAGE_BYTES;
/// Longest desired or live value kept in a drift entry.
pub const MAX_DRIFT_VALUE_BYTES: usize = 512;
/// Most roles, warnings and Epic codes kept.
pub const MAX_LIST_ITEMS: usize = 20;

/// Cuts every field that carries outside text to its documented size, with a marker.
pub fn bounded(mut s: EpicPractitionerStatus) -> EpicPractitionerStatus {
    let cut = |t: &mut String, max: usize| *t = bounded_message(t, max);
    for c in &mut s.conditions {
        cut(&mut c.message, MAX_MESSAGE_BYTES);
    }
    if let Some(e) = &mut s.last_error {
        cut(&mut e.message, MAX_MESSAGE_BYTES);
        e.epic_codes.truncate(MAX_LIST_ITEMS);
        for c in &mut e.epic_codes {
            cut(c, 64);
        }
    }
    for d in &mut s.drift {
        cut(&mut d.desired, MAX_DRIFT_VALUE_BYTES);
        cut(&mut d.live, MAX_DRIFT_VALUE_BYTES);
        cut(&mut d.path, 128);
    }
    s.warnings.truncate(MAX_LIST_ITEMS);
    for w in &mut s.warnings {
        cut(w, MAX_DRIFT_VALUE_BYTES);
    }
    s.roles.truncate(MAX_LIST_ITEMS);
    for r in &mut s.roles {
        for f in [
            &mut r.organization,
            &mut r.location,
            &mut r.specialty,
            &mut r.code,
        ]
        .into_iter()
        .flatten()
        {
            cut(f, 256);
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::{DriftEntry, RoleSummary};

    /// The size a status stays under whatever Epic sends (etcd's object limit is 1.5 MiB; a
    /// practitioner's status is a few KiB).
    const STATUS_BUDGET_BYTES: usize = 32 * 1024;

    #[test]
    fn a_status_stays_within_its_budget_whatever_epic_sends() {
        let huge = "x".repeat(500 * 1024);
        let old = EpicPractitionerStatus {
            drift: (0..6)
                .map(|i| DriftEntry {
                    path: format!("f{i}"),
                    desired: huge.clone(),
                    live: huge.clone(),
                })
                .collect(),
            roles: (0..500)
                .map(|_| RoleSummary {
                    organization: Some(huge.clone()),
                    location: None,
                    specialty: None,
                    code: None,
                })
                .collect(),
            warnings: vec![huge.clone(); 100],
            ..EpicPractitionerStatus::default()
        };
        let mut old = old;
        old.last_error = Some(crate::crd::LastError {
            reason: "Unauthorized".into(),
            message: huge.clone(),
            http_status: Some(400),
            epic_codes: vec![huge.clone(); 100],
        });
        old.conditions = ["Ready", "Synced", "InSync"]
            .iter()
            .map(|t| crate::crd::Condition {
                type_: t.to_string(),
                status: crate::crd::ConditionStatus::False,
                reason: "Unauthorized".into(),
                message: huge.clone(),
                last_transition_time: String::new(),
                observed_generation: None,
            })
            .collect();
        let s = bounded(old);
        let size = serde_json::to_string(&s).unwrap().len();
        assert!(size < STATUS_BUDGET_BYTES, "{size} bytes");
        let message = &s.last_error.as_ref().unwrap().message;
        assert!(
            message.ends_with("more bytes not shown]"),
            "a marker says it was cut"
        );
        assert!(
            bounded(s.clone()) == s,
            "bounding is stable (no status write loop)"
        );
        assert!(message.len() <= MAX_MESSAGE_BYTES);
    }
}
