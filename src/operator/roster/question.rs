//! The one question a practitioner's pass asks its connection's walks (`Question`), what may
//! come back (`Answer`, with what is `Known` of the record), what a pass teaches the connection
//! (`Lesson`): types only (the rules that make the answers are in `state.rs`).

use std::time::Duration;
use std::time::Instant;

use crate::crd::RoleSummary;
use crate::fhir::FhirError;
use crate::pipeline::Prefetched;

/// What a practitioner's pass asks the walks.
#[derive(Clone, Debug)]
pub struct Question<'a> {
    pub npi: &'a str,
    /// The object has a record id for this instance.
    pub has_id: bool,
    /// The object is settled (no error or drift in status, its generation observed, not
    /// paused or being deleted): a walk that did not wake it found nothing new.
    pub settled: bool,
    /// "Check now" was asked: a fresh read, not what walks know.
    pub fresh: bool,
    /// The CapabilityStatement lists the identifier search (or none was read).
    pub search_listed: bool,
    /// How recent the last walk must be to cover a settled object, and for its "not found"
    /// to prove an NPI absent where the instance cannot search.
    pub covered_within: Duration,
}

/// What is known of the record before asking Epic.
#[derive(Debug, Default)]
pub struct Known {
    pub prefetched: Option<Prefetched>,
    pub roles: Option<Vec<RoleSummary>>,
    /// When the walk this came from started.
    pub walk_started: Option<Instant>,
}

/// Where a practitioner stands with the walks.
#[derive(Debug)]
pub enum Answer {
    /// Sync with this; `search` says whether the instance searches by identifier (a create
    /// needs a search just before the POST where it can).
    Use { known: Known, search: bool },
    /// Not in the last walk, and the instance searches: search (a record created since),
    /// with the roles and walk start a roles-only hand-over brought.
    Search(Known),
    /// The first walk has not finished: it wakes the practitioner when it does.
    AwaitWalk,
    /// Walks keep coming and none found anything new for this settled practitioner.
    Covered,
    /// The first walk failed and searching is not possible.
    Failed(FhirError),
}

/// What a practitioner's pass teaches its connection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Lesson {
    /// A POST created this record for the NPI: the ledger resolves the NPI to it at once.
    Created { npi: String, id: String },
    /// The instance refused an identifier search: resolve from walks only.
    SearchRefused,
}
