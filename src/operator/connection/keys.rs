//! What a connection reports about its keys (pure): `status.keys`, the note on its Ready
//! condition, and the Events of each rotation step.

use chrono::{DateTime, Utc};
use kube::runtime::events::EventType;

use crate::auth::{KeyRing, KeyUse};
use crate::crd::{KeysStatus, PublishedKey, Reason};
use crate::operator::connection::key_rotation::RotationOutcome;

fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// The keys as status shows them, and a sentence for the Ready condition when something needs
/// a person's attention (a refused key, a retirement held back).
pub struct KeyReport {
    pub status: KeysStatus,
    pub note: Option<String>,
    /// When the key that signs now was published.
    pub signing_since: Option<DateTime<Utc>>,
}

pub fn key_report(
    ring: &KeyRing,
    used: &KeyUse,
    rotation: Option<&RotationOutcome>,
    now: DateTime<Utc>,
) -> KeyReport {
    let preferred = ring.signing_at(now).key.kid().to_string();
    // While Epic refuses the key the ring prefers, the key it last accepted signs.
    let refused = used.refused_key_id.clone().filter(|k| *k == preferred);
    let signing = match (&refused, &used.last_accepted_key_id) {
        (Some(_), Some(accepted)) => accepted.clone(),
        _ => preferred,
    };
    let retires_at = |kid: &str| {
        rotation
            .and_then(|r| r.plan.retires_at.get(kid))
            .map(|t| rfc3339(*t))
    };
    let published = ring
        .keys()
        .iter()
        .map(|k| PublishedKey {
            key_id: k.key.kid().to_string(),
            algorithm: k.key.algorithm(),
            since: rfc3339(k.since),
            retires_at: retires_at(k.key.kid()),
        })
        .collect();
    let signing_since = ring
        .keys()
        .iter()
        .find(|k| k.key.kid() == signing)
        .map(|k| k.since);
    let mut notes = Vec::new();
    if let Some(kid) = &refused {
        let retry = used
            .retry_refused_at
            .map(rfc3339)
            .unwrap_or_else(|| "later".into());
        notes.push(format!(
            "Epic refused the new key {kid} (invalid_client): its cached JWK Set predates the key. Signing with the previous key {signing}, still published; {kid} is tried again at {retry}. Raise keyRotation.publishAhead above how long Epic caches the JWK Set"
        ));
    }
    if rotation.is_some_and(|r| r.plan.rotation_held) {
        notes.push(format!(
            "rotation waits: Epic has not accepted key {signing} yet (register the JWK Set URL with Epic, or see the token error)"
        ));
    }
    if let Some(kid) = rotation.and_then(|r| r.plan.retirement_held.as_ref()) {
        notes.push(format!(
            "key {kid} stays published past retireAfter: Epic has not accepted a newer key yet"
        ));
    }
    KeyReport {
        status: KeysStatus {
            signing_key_id: Some(signing),
            last_accepted_key_id: used.last_accepted_key_id.clone(),
            published,
            next_rotation_time: rotation.and_then(|r| r.plan.next_rotation).map(rfc3339),
            refused_key_id: refused,
        },
        note: (!notes.is_empty()).then(|| notes.join("; ")),
        signing_since,
    }
}

/// One Event per rotation step: a key published, a key retired, a switch of the signing key,
/// and a new key Epic refused.
pub fn key_events(
    old: Option<&KeysStatus>,
    new: &KeysStatus,
    rotation: Option<&RotationOutcome>,
) -> Vec<(EventType, Reason, String)> {
    let mut events = Vec::new();
    if let Some(r) = rotation {
        if let Some(kid) = &r.generated {
            events.push((
                EventType::Normal,
                Reason::KeyPublished,
                format!("generated key {kid} and published it at the JWK Set URL; it signs once published for keyRotation.publishAhead"),
            ));
        }
        for kid in &r.retired {
            events.push((
                EventType::Normal,
                Reason::KeyRetired,
                format!("removed key {kid} from the Secret and the JWK Set (retireAfter passed)"),
            ));
        }
    }
    let old_signing = old.and_then(|o| o.signing_key_id.as_deref());
    if let (Some(before), Some(now)) = (old_signing, new.signing_key_id.as_deref())
        && before != now
    {
        events.push((
            EventType::Normal,
            Reason::KeySwitched,
            format!("key {now} signs client assertions now (was {before})"),
        ));
    }
    if let Some(kid) = &new.refused_key_id
        && old.and_then(|o| o.refused_key_id.as_ref()) != Some(kid)
    {
        events.push((
            EventType::Warning,
            Reason::KeyNotTrusted,
            format!(
                "Epic refused the new key {kid} (invalid_client); the previous key signs meanwhile. {}",
                Reason::KeyNotTrusted.remedy()
            ),
        ));
    }
    events
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(signing: &str, refused: Option<&str>) -> KeysStatus {
        KeysStatus {
            signing_key_id: Some(signing.into()),
            refused_key_id: refused.map(str::to_string),
            ..KeysStatus::default()
        }
    }

    #[test]
    fn events_only_on_transitions() {
        let a = keys("a", None);
        assert!(key_events(Some(&a), &a, None).is_empty());
        let switched = key_events(Some(&a), &keys("b", None), None);
        assert_eq!(switched.len(), 1);
        assert_eq!(switched[0].1, Reason::KeySwitched);
        assert!(switched[0].2.contains("key b signs") && switched[0].2.contains("was a"));
        let refused = key_events(Some(&a), &keys("a", Some("b")), None);
        assert_eq!(refused.len(), 1);
        assert_eq!(refused[0].0, EventType::Warning);
        assert_eq!(refused[0].1, Reason::KeyNotTrusted);
        assert!(key_events(Some(&keys("a", Some("b"))), &keys("a", Some("b")), None).is_empty());
        // The first status of a connection is no switch.
        assert!(key_events(None, &a, None).is_empty());
    }
}
