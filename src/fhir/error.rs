//! Every failure of a FHIR call as one typed error, classified from the HTTP status and the
//! OperationOutcome Epic sends, with a stable `reason()` and a message that can go straight into
//! a resource's status.

use std::time::Duration;

use serde_json::Value;

use super::outcome::OperationOutcome;
use crate::auth::AuthError;
use crate::crd::Reason;

/// Code system of Epic's OperationOutcome detail codes.
pub const EPIC_CODE_SYSTEM: &str = "urn:oid:1.2.840.114350.1.13.0.1.7.2.657369";

/// A failed FHIR interaction.
#[derive(Debug, Clone, thiserror::Error)]
pub enum FhirError {
    #[error("Epic rejected the access token (HTTP 401){}", outcome_text(.outcome))]
    Unauthorized { outcome: OperationOutcome },
    #[error("Epic refused the request (HTTP 403){}", outcome_text(.outcome))]
    Forbidden { outcome: OperationOutcome },
    #[error("this Epic instance does not accept Practitioner writes (HTTP {status}){}", outcome_text(.outcome))]
    WriteDisabled {
        status: u16,
        outcome: OperationOutcome,
    },
    #[error("not found (HTTP 404){}", outcome_text(.outcome))]
    NotFound { outcome: OperationOutcome },
    #[error("the record was deleted (HTTP 410){}", outcome_text(.outcome))]
    Gone { outcome: OperationOutcome },
    #[error("version conflict (HTTP {status}): the record changed since it was read{}", outcome_text(.outcome))]
    Conflict {
        status: u16,
        outcome: OperationOutcome,
    },
    #[error("Epic rejected the request as invalid (HTTP {status}){}", outcome_text(.outcome))]
    Invalid {
        status: u16,
        outcome: OperationOutcome,
    },
    #[error("the paging session expired (Epic code 4113){}", outcome_text(.outcome))]
    PagingExpired { outcome: OperationOutcome },
    #[error("Epic throttled the request (HTTP 429){}", .retry_after.map(|d| format!(", retry after {}s", d.as_secs())).unwrap_or_default())]
    Throttled { retry_after: Option<Duration> },
    #[error("Epic server error (HTTP {status}){}{}", outcome_text(.outcome), .retry_after.map(|d| format!(", retry after {}s", d.as_secs())).unwrap_or_default())]
    Server {
        status: u16,
        outcome: OperationOutcome,
        /// `Retry-After` of a 503 (Epic in maintenance or overloaded), either form.
        retry_after: Option<Duration>,
    },
    /// Epic's answer that the client's daily request allowance is spent: nothing is sent
    /// again before `retry_after` (when Epic said) or the next day.
    #[error("Epic's daily request limit for this client is reached (HTTP {status}){}{}", outcome_text(.outcome), .retry_after.map(|d| format!(", retry after {}s", d.as_secs())).unwrap_or_default())]
    DailyLimit {
        status: u16,
        outcome: OperationOutcome,
        retry_after: Option<Duration>,
    },
    /// A roster walk is not possible now: refused by the instance (400 with Epic 4110/4111),
    /// held outside the connection's walk windows, or stopped by a daily limit.
    #[error("{0}")]
    RosterUnavailable(String),
    #[error("request to Epic timed out: {0}")]
    Timeout(String),
    #[error("could not reach Epic: {0}")]
    Transport(String),
    #[error("Epic sent a response that could not be understood: {0}")]
    Malformed(String),
    #[error("refused for safety: {0}")]
    Refused(String),
    #[error(
        "Practitioner/{id} no longer carries NPI {npi} (it carries {found}); nothing is written to it. Check in Epic which record is this clinician's; deleting and re-applying this EpicPractitioner resolves the NPI afresh"
    )]
    IdentityMismatch {
        id: String,
        npi: String,
        found: String,
    },
    #[error(transparent)]
    Auth(#[from] AuthError),
}

fn outcome_text(o: &OperationOutcome) -> String {
    let s = o.summary();
    if s.is_empty() {
        String::new()
    } else {
        format!(": {s}")
    }
}

impl FhirError {
    /// Stable, low-cardinality reason for conditions, Events and metric labels.
    pub fn reason(&self) -> Reason {
        match self {
            FhirError::Unauthorized { .. } | FhirError::Forbidden { .. } => Reason::Unauthorized,
            FhirError::WriteDisabled { .. } => Reason::WriteDisabled,
            FhirError::NotFound { .. } | FhirError::Gone { .. } => Reason::NotFound,
            FhirError::Conflict { .. } => Reason::Conflict,
            FhirError::Invalid { .. } => Reason::Invalid,
            FhirError::PagingExpired { .. } => Reason::PagingExpired,
            FhirError::Throttled { .. } => Reason::Throttled,
            FhirError::Server { .. } | FhirError::Timeout(_) | FhirError::Transport(_) => {
                Reason::EpicUnavailable
            }
            FhirError::DailyLimit { .. } => Reason::DailyLimitReached,
            FhirError::RosterUnavailable(_) => Reason::RosterUnavailable,
            FhirError::Malformed(_) => Reason::Malformed,
            FhirError::Refused(_) => Reason::Refused,
            FhirError::IdentityMismatch { .. } => Reason::IdentityMismatch,
            FhirError::Auth(a) => a.reason(),
        }
    }

    pub fn http_status(&self) -> Option<u16> {
        match self {
            FhirError::Unauthorized { .. } => Some(401),
            FhirError::Forbidden { .. } => Some(403),
            FhirError::NotFound { .. } => Some(404),
            FhirError::Gone { .. } => Some(410),
            FhirError::PagingExpired { .. } => None,
            FhirError::Throttled { .. } => Some(429),
            FhirError::WriteDisabled { status, .. }
            | FhirError::Conflict { status, .. }
            | FhirError::Invalid { status, .. }
            | FhirError::DailyLimit { status, .. }
            | FhirError::Server { status, .. } => Some(*status),
            FhirError::Auth(a) => a.http_status(),
            _ => None,
        }
    }

    pub fn epic_codes(&self) -> Vec<String> {
        match self {
            FhirError::Unauthorized { outcome }
            | FhirError::Forbidden { outcome }
            | FhirError::NotFound { outcome }
            | FhirError::Gone { outcome }
            | FhirError::PagingExpired { outcome }
            | FhirError::WriteDisabled { outcome, .. }
            | FhirError::Conflict { outcome, .. }
            | FhirError::Invalid { outcome, .. }
            | FhirError::DailyLimit { outcome, .. }
            | FhirError::Server { outcome, .. } => outcome.codes(),
            _ => Vec::new(),
        }
    }

    /// The id no longer names a live record (410, or Epic's merged-record code): resolve the
    /// NPI again instead of failing.
    pub fn is_gone_or_merged(&self) -> bool {
        match self {
            FhirError::Gone { .. } => true,
            FhirError::NotFound { outcome } | FhirError::Invalid { outcome, .. } => {
                outcome.is_merged()
            }
            _ => false,
        }
    }

    /// How long Epic asked the client to wait (`Retry-After` on 429, 503 or a daily limit).
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            FhirError::Throttled { retry_after }
            | FhirError::Server { retry_after, .. }
            | FhirError::DailyLimit { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    /// The instance refused a search for having no (or too few) parameters: 400 with Epic
    /// code 4110 ("no parameters are provided") or 4111 ("required parameter missing"), or a
    /// plain 400 to a parameterless search. Roster walks are not possible there.
    pub fn is_walk_refusal(&self) -> bool {
        match self {
            FhirError::Invalid {
                status: 400,
                outcome,
            } => outcome.has_code("4110") || outcome.has_code("4111") || outcome.codes().is_empty(),
            _ => false,
        }
    }

    /// Worth retrying a read automatically (the failure may pass).
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            FhirError::Throttled { .. }
                | FhirError::Server { .. }
                | FhirError::Timeout(_)
                | FhirError::Transport(_)
        )
    }
}

/// Classifies a non-success response. `is_write` marks PUT/POST, where 403/405/501 and the
/// `forbidden`/`not-supported`/4118 outcomes mean the instance does not accept writes.
pub fn classify(
    status: u16,
    body: &[u8],
    is_write: bool,
    retry_after: Option<Duration>,
) -> FhirError {
    let outcome = serde_json::from_slice::<Value>(body)
        .ok()
        .as_ref()
        .and_then(OperationOutcome::parse)
        .unwrap_or_default();
    if outcome.has_code("4113") {
        return FhirError::PagingExpired { outcome };
    }
    if matches!(status, 403 | 429 | 503) && is_daily_limit(&outcome) {
        return FhirError::DailyLimit {
            status,
            outcome,
            retry_after,
        };
    }
    let write_refusal = outcome.has_code("forbidden")
        || outcome.has_code("not-supported")
        || outcome.has_code("4118");
    match status {
        401 => FhirError::Unauthorized { outcome },
        403 | 405 | 501 if is_write => FhirError::WriteDisabled { status, outcome },
        400 if is_write && outcome.has_code("not-supported") => {
            FhirError::WriteDisabled { status, outcome }
        }
        403 => FhirError::Forbidden { outcome },
        404 => FhirError::NotFound { outcome },
        410 => FhirError::Gone { outcome },
        409 | 412 => FhirError::Conflict { status, outcome },
        429 => FhirError::Throttled { retry_after },
        500..=599 => FhirError::Server {
            status,
            outcome,
            retry_after: retry_after.filter(|_| status == 503),
        },
        _ if is_write && write_refusal => FhirError::WriteDisabled { status, outcome },
        400..=499 => FhirError::Invalid { status, outcome },
        _ => FhirError::Malformed(format!("unexpected HTTP {status}")),
    }
}

/// Epic documents no wording for a spent daily allowance; instances and gateways say
/// "daily limit", "daily quota" or "per day". An OperationOutcome saying so (in its
/// diagnostics or details) is that answer; a bare 429 stays an ordinary throttle.
fn is_daily_limit(outcome: &OperationOutcome) -> bool {
    let text = outcome.summary().to_ascii_lowercase();
    [
        "daily limit",
        "daily quota",
        "daily request",
        "per day",
        "per-day",
    ]
    .iter()
    .any(|w| text.contains(w))
}

#[cfg(test)]
#[path = "error_tests.rs"]
mod tests;
