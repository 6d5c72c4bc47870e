//! The one reason vocabulary: every condition reason, Event reason, `lastError.reason`, metric
//! label and CLI reason is a [`Reason`]. The Argo CD health checks and the README's reason
//! table are checked against [`Reason::ALL`] by tests, so a new variant cannot be forgotten
//! there.

use std::fmt;
use std::str::FromStr;

macro_rules! reasons {
    ($($(#[doc = $doc:literal])* $variant:ident = $text:literal, lasting: $lasting:literal;)*) => {
        /// Why an object is in the state it is in: stable, CamelCase, low-cardinality.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum Reason {
            $($(#[doc = $doc])* $variant,)*
        }

        impl Reason {
            /// Every reason, in declaration order.
            pub const ALL: &'static [Reason] = &[$(Reason::$variant,)*];

            /// The text used in conditions, Events, metric labels and the CLI.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $(Reason::$variant => $text,)*
                }
            }

            /// A failure that retrying without a change (to the spec, the connection, the key,
            /// Epic's configuration or data) cannot fix: Argo CD shows it as Degraded. The
            /// others either are not failures or clear by themselves (retried with backoff).
            pub const fn is_lasting(self) -> bool {
                match self {
                    $(Reason::$variant => $lasting,)*
                }
            }
        }

        impl FromStr for Reason {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, String> {
                match s {
                    $($text => Ok(Reason::$variant),)*
                    other => Err(format!("unknown reason {other:?}")),
                }
            }
        }
    };
}

reasons! {
    // Success and progress.
    /// Ready=True: Epic matches the spec.
    Ready = "Ready", lasting: false;
    /// Synced=True: the operator did what the policy asks.
    Synced = "Synced", lasting: false;
    /// Synced=True under managementPolicy Observe: drift is reported, never written.
    ObserveOnly = "ObserveOnly", lasting: false;
    /// InSync=True: every owned field matches.
    NoDrift = "NoDrift", lasting: false;
    /// InSync=False: some owned field differs (Ready carries it while a write is pending).
    Drifted = "Drifted", lasting: false;
    /// Not reconciled yet.
    Pending = "Pending", lasting: false;
    /// InSync=Unknown: the live record could not be read (the Synced reason says why).
    Unknown = "Unknown", lasting: false;
    /// Paused by annotation: Argo CD shows it as Suspended.
    Paused = "Paused", lasting: false;

    // Holds and refusals that need a person.
    /// Epic refuses writes (read-only instance, scope or security point missing).
    WriteDisabled = "WriteDisabled", lasting: true;
    /// Epic accepted a write but its response still differs (read-only fields).
    WriteNotApplied = "WriteNotApplied", lasting: true;
    /// No record carries the NPI and the policy does not create.
    NotFound = "NotFound", lasting: true;
    /// Several records carry the NPI: nothing is written until they are merged in Epic.
    AmbiguousNpi = "AmbiguousNPI", lasting: true;
    /// The answer for the NPI is incomplete: Epic hid results (suppressed or unauthorized), the
    /// operator left records out (identity bounds), or, where the instance cannot search, the
    /// last complete walk is too old to prove the NPI absent.
    SearchIncomplete = "SearchIncomplete", lasting: true;
    /// Two EpicPractitioners declare the NPI on the same Epic instance (through one connection
    /// or two to the same base URL): neither writes.
    DuplicateNpi = "DuplicateNPI", lasting: true;
    /// A create was sent and its answer lost: no second POST until absence is confirmed (by an
    /// identifier search, or a complete roster walk started after it).
    CreateUnconfirmed = "CreateUnconfirmed", lasting: false;
    /// The record that carried the NPI (the saved id, or the walk's) no longer answers (404, or
    /// 410 merged) and no record carries the NPI now: nothing is created in its place.
    RecordGone = "RecordGone", lasting: true;
    /// The saved FHIR id no longer carries the NPI.
    IdentityMismatch = "IdentityMismatch", lasting: true;
    /// The spec is invalid in a way the schema cannot express.
    InvalidSpec = "InvalidSpec", lasting: true;
    /// Epic rejected the request as invalid (400/422).
    Invalid = "Invalid", lasting: true;
    /// Epic's answer could not be understood.
    Malformed = "Malformed", lasting: true;
    /// A response was refused before use (oversized, foreign link, bad id).
    Refused = "Refused", lasting: true;
    /// The token request or a FHIR call was refused (401/403, invalid_client).
    Unauthorized = "Unauthorized", lasting: true;
    /// A scope was not approved at registration.
    InvalidScope = "InvalidScope", lasting: true;
    /// The private key is missing, unreadable or of the wrong kind.
    InvalidKey = "InvalidKey", lasting: true;
    /// The EpicConnection is unusable as written (URL, policy, interval).
    InvalidConnection = "InvalidConnection", lasting: true;
    /// The EpicConnection named by connectionRef does not exist (yet).
    ConnectionNotReady = "ConnectionNotReady", lasting: true;
    /// deletionPolicy Deactivate cannot write active=false: the deletion waits.
    DeletionBlocked = "DeletionBlocked", lasting: true;
    /// The instance refuses roster walks (a search without parameters: Epic 4110/4111), or
    /// they are held (walk windows, a daily limit), and this object cannot be resolved by
    /// identifier search either.
    RosterUnavailable = "RosterUnavailable", lasting: true;
    /// The connection's requestBudget cannot hold one full roster walk a day.
    BudgetTooSmall = "BudgetTooSmall", lasting: true;

    // Transient: retried with backoff.
    /// The record changed between read and write on every attempt.
    Conflict = "Conflict", lasting: false;
    /// Epic (or its token endpoint) is down, slow or unreachable.
    EpicUnavailable = "EpicUnavailable", lasting: false;
    /// Epic answered 429.
    Throttled = "Throttled", lasting: false;
    /// Epic said the client's daily request allowance is spent: requests wait for the next
    /// day (or Epic's Retry-After).
    DailyLimitReached = "DailyLimitReached", lasting: false;
    /// A paging session expired during a walk (Epic 4113).
    PagingExpired = "PagingExpired", lasting: false;
    /// The Kubernetes API failed.
    KubernetesError = "KubernetesError", lasting: false;
    /// Adding or removing the finalizer failed.
    FinalizerError = "FinalizerError", lasting: false;

    // Event-only reasons (what happened).
    /// The NPI was resolved to a FHIR id.
    Resolved = "Resolved", lasting: false;
    /// Drift was found (field paths only).
    DriftDetected = "DriftDetected", lasting: false;
    /// A PUT was accepted.
    Updated = "Updated", lasting: false;
    /// A POST was accepted.
    Created = "Created", lasting: false;
    /// active=false was written.
    Deactivated = "Deactivated", lasting: false;
    /// A reconcile failed (the message names the reason).
    ReconcileFailed = "ReconcileFailed", lasting: false;
    /// Managed rotation generated a key and published it at the JWK Set URL.
    KeyPublished = "KeyPublished", lasting: false;
    /// A newer key signs client assertions now.
    KeySwitched = "KeySwitched", lasting: false;
    /// Managed rotation removed a key from the JWK Set (retireAfter passed).
    KeyRetired = "KeyRetired", lasting: false;
    /// Epic refused a new key (invalid_client): the previous key signs meanwhile.
    KeyNotTrusted = "KeyNotTrusted", lasting: false;
}

impl serde::Serialize for Reason {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Reason {
    /// Not settled yet, and settling by itself: not reconciled yet, a write pending, or a
    /// failure retried with backoff. Argo CD shows it as Progressing; every other reason on a
    /// False condition (except Paused) as Degraded.
    pub const fn is_transient(self) -> bool {
        matches!(
            self,
            Reason::Pending
                | Reason::Unknown
                | Reason::Drifted
                | Reason::Conflict
                | Reason::EpicUnavailable
                | Reason::Throttled
                | Reason::DailyLimitReached
                | Reason::PagingExpired
                | Reason::KubernetesError
                | Reason::FinalizerError
        )
    }

    /// What a person can do about it: shown in Events and by the CLI next to the reason.
    pub const fn remedy(self) -> &'static str {
        match self {
            Reason::Ready
            | Reason::Synced
            | Reason::NoDrift
            | Reason::Resolved
            | Reason::Updated
            | Reason::Created
            | Reason::Deactivated => "Nothing to do.",
            Reason::ObserveOnly => {
                "Drift is reported, never written; set managementPolicy Update to have it fixed."
            }
            Reason::Drifted | Reason::DriftDetected => {
                "The operator writes it where policy and Epic allow; see status.drift."
            }
            Reason::Pending | Reason::Unknown => {
                "Wait for the next reconcile; see the Synced condition."
            }
            Reason::Paused => "Remove the annotation epic-operator.dev/paused to resume.",
            Reason::WriteDisabled => {
                "Fix it in Epic, or ask the Epic team to enable Practitioner.write (scope and security point) for the client."
            }
            Reason::WriteNotApplied => {
                "Epic accepted the write but kept other values (read-only fields on this instance): fix them in Epic or remove them from the spec."
            }
            Reason::NotFound => {
                "Check the NPI, or set managementPolicy CreateOrUpdate to have the record created."
            }
            Reason::AmbiguousNpi => {
                "Ask the Epic team to merge the duplicate records; nothing is written until then."
            }
            Reason::SearchIncomplete => {
                "Read status.warnings: ask the Epic team why results are suppressed for this client (Epic's codes are there), or, for a walk too old, why roster walks fail."
            }
            Reason::DuplicateNpi => {
                "Two EpicPractitioners declare this NPI on the same Epic instance, through one EpicConnection or two to the same base URL (the message says which): keep one."
            }
            Reason::CreateUnconfirmed => {
                "Nothing to do: the next complete roster walk (or identifier search) tells whether the lost create arrived; the record is adopted or created once, never twice."
            }
            Reason::RecordGone => {
                "Ask the Epic team what became of the record named in the message (deleted, merged, or hidden from this client). To have a new one created, delete and re-create this EpicPractitioner."
            }
            Reason::IdentityMismatch => {
                "The saved FHIR id now belongs to another NPI: check the NPI in the spec and in Epic."
            }
            Reason::InvalidSpec => "Fix the spec; the message names the field.",
            Reason::Invalid => {
                "Epic rejected the request as invalid; status.lastError has its diagnostics."
            }
            Reason::Malformed | Reason::Refused => {
                "Epic's answer was unusable; check the EpicConnection's baseUrl and Epic's health."
            }
            Reason::Unauthorized => {
                "Check the EpicConnection's clientId and key id, and that the public key is registered with Epic."
            }
            Reason::InvalidScope => {
                "Ask the Epic team to approve the scopes at registration; nothing can change that at run time."
            }
            Reason::InvalidKey => {
                "Put a PEM private key (RSA or P-384) in the Secret and key the EpicConnection names."
            }
            Reason::InvalidConnection => "Fix the EpicConnection; its status names the field.",
            Reason::ConnectionNotReady => {
                "Create the EpicConnection named by spec.connectionRef, or fix the name."
            }
            Reason::DeletionBlocked => {
                "To delete without writing to Epic, set spec.deletionPolicy to Orphan (kubectl patch ... --type merge -p '{\"spec\":{\"deletionPolicy\":\"Orphan\"}}')."
            }
            Reason::Conflict => "Retried with backoff; nothing to do unless it persists.",
            Reason::EpicUnavailable | Reason::Throttled | Reason::PagingExpired => {
                "Retried with backoff; nothing to do unless it persists."
            }
            Reason::DailyLimitReached => {
                "Requests resume when Epic's day rolls over; agree a larger allowance with the Epic team, or set spec.requestBudget below it (see the forecast)."
            }
            Reason::RosterUnavailable => {
                "Ask the Epic team to allow Practitioner searches with only _count, or to enable search by identifier; the EpicConnection's RosterWalks condition says which is missing."
            }
            Reason::BudgetTooSmall => {
                "Raise spec.requestBudget (agree it with the Epic team) or lower pageSize costs: the condition gives the numbers."
            }
            Reason::KubernetesError | Reason::FinalizerError => {
                "Retried with backoff; check the operator's RBAC and the API server if it persists."
            }
            Reason::ReconcileFailed => "See the object's Synced condition.",
            Reason::KeyPublished | Reason::KeySwitched | Reason::KeyRetired => "Nothing to do.",
            Reason::KeyNotTrusted => {
                "Epic still caches a JWK Set without the new key: raise keyRotation.publishAhead above how long Epic caches it. The previous key signs meanwhile and the new one is tried again later."
            }
        }
    }

    /// The reason a stored condition carries, when it is one of ours.
    pub fn parse(s: &str) -> Option<Reason> {
        s.parse().ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_reason_round_trips_and_is_unique() {
        let mut seen = std::collections::HashSet::new();
        for r in Reason::ALL {
            assert_eq!(Reason::parse(r.as_str()), Some(*r));
            assert!(seen.insert(r.as_str()), "{r} twice");
            assert!(
                r.as_str()
                    .chars()
                    .next()
                    .is_some_and(|c| c.is_ascii_uppercase()),
                "{r} is CamelCase"
            );
        }
        assert_eq!(Reason::parse("NoSuchReason"), None);
    }
}
