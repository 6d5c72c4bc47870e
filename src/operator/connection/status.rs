//! The EpicConnection's status after one pass (pure): what the controller found goes in; the
//! status with its Ready condition, whether the practitioners should hear of it, and when the
//! keys next need a pass come out.

use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::crd::{
    Condition, EpicConnectionStatus, LastError, LoadStatus, READY, Reason, set_condition,
};
use crate::operator::connection::key_rotation::{self, RotationError, RotationOutcome};
use crate::operator::connection::keys::KeyReport;
use crate::operator::error::ConnectionFailure;
use crate::operator::practitioner::status_limits::MAX_MESSAGE_BYTES;
use crate::reconcile::WriteCapability;
use crate::util::bounded_message;

/// What one pass of the connection controller found.
pub struct PassFacts<'a> {
    pub generation: Option<i64>,
    /// The JWK Set URL the operator serves this connection's keys at.
    pub jwks_url: Option<String>,
    /// What managed rotation did this pass, if it ran.
    pub rotation: Option<&'a RotationOutcome>,
    pub outcome: Outcome,
    pub now: DateTime<Utc>,
}

/// Whether the connection is usable this pass.
pub enum Outcome {
    Ready(Box<ReadyFacts>),
    /// `news`: another failure than the one practitioners already know.
    Failed {
        failure: ConnectionFailure,
        news: bool,
    },
}

/// What a usable connection's client says now.
pub struct ReadyFacts {
    pub token_url: String,
    /// The token in hand (none when it could not be renewed now).
    pub token: Option<TokenFacts>,
    pub writes: WriteCapability,
    pub npi_search_supported: Option<bool>,
    pub probe_time: String,
    pub keys: KeyReport,
    /// When a new key Epic refused is tried again.
    pub retry_refused_at: Option<DateTime<Utc>>,
    /// When the key ring next switches its signing key.
    pub next_switch: Option<DateTime<Utc>>,
    pub load: LoadFacts,
    /// The connection was built anew: practitioners should use the new client.
    pub changed: bool,
}

pub struct TokenFacts {
    pub expires_at: DateTime<Utc>,
    pub scopes: Vec<String>,
}

/// `status.load` and its conditions as the walk plans report them.
pub struct LoadFacts {
    pub load: LoadStatus,
    pub conditions: Vec<Condition>,
    /// Drift is found per object (no roster walks): each practitioner reads its own record at
    /// this interval.
    pub per_object: Option<Duration>,
    /// The connection sets a `requestBudget`.
    pub budget: bool,
}

/// The status to write and what follows from it.
pub struct ConnectionPass {
    pub status: EpicConnectionStatus,
    pub ready: bool,
    /// The Ready condition's reason.
    pub reason: Reason,
    /// The practitioners of the connection should be reconciled now.
    pub wake: bool,
    /// The next key switch, retirement or rotation that needs a pass.
    pub next_key_event: Option<DateTime<Utc>>,
}

/// A refused managed rotation fails the connection; practitioners are woken only when this is
/// news (the Ready condition does not say it already).
pub fn rotation_refused(old: &EpicConnectionStatus, e: &RotationError) -> Outcome {
    let message = e.to_string();
    let news = !old
        .conditions
        .iter()
        .any(|c| c.type_ == READY && c.message == bounded_message(&message, MAX_MESSAGE_BYTES));
    Outcome::Failed {
        failure: ConnectionFailure {
            fingerprint: String::new(),
            reason: e.reason(),
            message,
            http_status: None,
        },
        news,
    }
}

/// The status after this pass, from the one before it.
pub fn next_status(old: &EpicConnectionStatus, facts: PassFacts<'_>) -> ConnectionPass {
    let mut s = old.clone();
    s.observed_generation = facts.generation;
    s.jwks_url = facts.jwks_url;
    let (ready, reason, message, wake, mut next_key_event) = match facts.outcome {
        Outcome::Ready(r) => {
            let next = next_key_event(old, &r, facts.rotation, facts.now);
            let wake = r.changed;
            let message = ready_status(&mut s, *r);
            (true, Reason::Ready, message, wake, next)
        }
        Outcome::Failed { failure, news } => {
            let message = bounded_message(&failure.message, MAX_MESSAGE_BYTES);
            s.last_error = Some(LastError {
                reason: failure.reason.as_str().into(),
                message: message.clone(),
                http_status: failure.http_status,
                epic_codes: Vec::new(),
            });
            (false, failure.reason, message, news, None)
        }
    };
    if let Some(r) = facts.rotation
        && let Some(periods) = &r.periods
    {
        next_key_event = next_key_event
            .into_iter()
            .chain(key_rotation::next_event(
                &r.plan,
                &r.published,
                periods,
                facts.now,
            ))
            .min();
    }
    set_condition(
        &mut s.conditions,
        Condition::new(
            READY,
            ready.into(),
            reason,
            &message,
            facts.generation,
            facts.now.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        ),
    );
    ConnectionPass {
        status: s,
        ready,
        reason,
        wake,
        next_key_event,
    }
}

/// A usable connection's fields, and the Ready message.
fn ready_status(s: &mut EpicConnectionStatus, r: ReadyFacts) -> String {
    s.token_url = Some(r.token_url);
    if let Some(t) = r.token {
        s.token_expires_at = Some(
            t.expires_at
                .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        );
        s.granted_scopes = t.scopes;
    }
    s.writable = match r.writes {
        WriteCapability::Enabled => Some(true),
        WriteCapability::Disabled => Some(false),
        WriteCapability::Unknown => None,
    };
    s.npi_search_supported = r.npi_search_supported;
    s.last_probe_time = Some(r.probe_time);
    s.last_error = None;
    s.keys = Some(r.keys.status);
    apply_load(s, r.load);
    let mut message = "token obtained and capabilities probed".to_string();
    if let Some(note) = r.keys.note {
        message = format!("{message}; {note}");
    }
    bounded_message(&message, MAX_MESSAGE_BYTES)
}

/// The earliest key event of a usable connection: a switch, a refused key's retry, or now when
/// Epic just accepted a newer key and a retirement was held for it.
fn next_key_event(
    old: &EpicConnectionStatus,
    r: &ReadyFacts,
    rotation: Option<&RotationOutcome>,
    now: DateTime<Utc>,
) -> Option<DateTime<Utc>> {
    let accepted_now = r.keys.status.last_accepted_key_id
        != old
            .keys
            .as_ref()
            .and_then(|k| k.last_accepted_key_id.clone());
    [
        r.next_switch,
        r.retry_refused_at.filter(|t| *t > now),
        rotation
            .filter(|x| x.plan.retirement_held.is_some() && accepted_now)
            .map(|_| now),
    ]
    .into_iter()
    .flatten()
    .min()
}

/// `status.load`, the RosterWalks and RequestBudget conditions.
fn apply_load(s: &mut EpicConnectionStatus, facts: LoadFacts) {
    let LoadFacts {
        mut load,
        mut conditions,
        per_object,
        budget,
    } = facts;
    if let Some(resync) = per_object {
        // No roster walks in this mode: each practitioner reads its own record.
        conditions.retain(|c| c.type_ != "RosterWalks");
        s.conditions.retain(|c| c.type_ != "RosterWalks");
        load.walk_interval = None;
        load.next_walk_time = None;
        load.drift_detection = format!(
            "each practitioner reads its own record every {}: drift made in Epic is noticed within about that",
            crate::operator::roster::pace::human(resync)
        );
    }
    s.load = Some(load);
    if !budget {
        s.conditions.retain(|c| c.type_ != "RequestBudget");
    }
    for c in conditions {
        set_condition(&mut s.conditions, c);
    }
}

#[cfg(test)]
#[path = "status_tests.rs"]
mod tests;
