//! What to do, decided from policy, capability, resolution and drift.

use std::time::{Duration, Instant};

use crate::crd::{DeletionPolicy, ManagementPolicy, Reason};

/// Whether the Epic instance accepts Practitioner writes, as far as is known.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WriteCapability {
    Enabled,
    Disabled,
    /// Not known yet: a write is attempted and a refusal teaches the answer.
    Unknown,
}

/// Outcome of looking the NPI up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Resolution {
    Found,
    NotFound,
    /// More than one record carries the NPI; the count is kept for the message.
    Ambiguous(usize),
    /// No record was seen, but Epic said the search was incomplete (an error or suppression
    /// OperationOutcome in the Bundle): NotFound cannot be concluded, so nothing is created.
    Incomplete,
}

/// Everything the plan depends on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PlanInput {
    pub management: ManagementPolicy,
    pub deletion: DeletionPolicy,
    /// The object is being deleted.
    pub deleting: bool,
    pub paused: bool,
    pub writes: WriteCapability,
    pub resolution: Resolution,
    /// Owned fields differ between spec and live.
    pub drifted: bool,
    /// The live record's `active` (None when unknown or not found).
    pub live_active: Option<bool>,
}

/// Why drift or a missing record is left as it is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HoldReason {
    /// managementPolicy Observe.
    ObserveOnly,
    /// The instance refuses writes.
    WriteDisabled,
    /// The paused annotation is set.
    Paused,
    /// No record has the NPI and the policy does not create.
    NotFound,
    /// Several records have the NPI: never pick one.
    AmbiguousNpi,
    /// The search answer was incomplete: never create on it.
    SearchIncomplete,
    /// An earlier create's answer was lost and nothing since proves the record absent.
    CreateUnconfirmed,
    /// A record that carried the NPI (the saved id, or the walk's) no longer answers and none
    /// carries it now: nothing is created in its place.
    RecordGone,
}

/// What proves, before a POST, that no record carries the NPI. A create is the one write that
/// cannot be re-read into safety, so it needs positive evidence of absence.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Absence {
    /// A complete identifier search made in this pass found nothing.
    Searched,
    /// A complete roster walk found nothing, and it started after every earlier create attempt
    /// for the NPI whose answer was lost (or there was none).
    Walked,
    /// Only a walk that started before a create attempt whose answer was lost, or a search
    /// made so soon after that answer was lost that Epic may still have been applying it:
    /// that create may have arrived after the walk read its page, or after the search.
    Unconfirmed,
    /// A record known to carry the NPI (the saved id, or the walk's) answered 404 or 410 in this
    /// pass: whatever a search says, it was there, and may live on where this client cannot
    /// see it (deleted, merged into a record without the NPI, or hidden from this client).
    RecordGone,
}

/// Whether evidence gathered from `from` on (a walk's start, a search's) can prove absence
/// despite an unanswered create attempt dated `attempt` (when its answer was lost): only when
/// it started longer than `settle` after it, the time Epic may still take to apply a POST its
/// client stopped waiting for. Always, without an attempt; never, without evidence.
pub fn evidence_after_attempt(
    attempt: Option<Instant>,
    from: Option<Instant>,
    settle: Duration,
) -> bool {
    attempt.is_none_or(|t| {
        from.is_some_and(|f| f.checked_duration_since(t).is_some_and(|d| d > settle))
    })
}

/// A planned create stands only on positive evidence of absence; otherwise it holds.
pub fn guard_create(action: Action, absence: Absence) -> Action {
    match (action, absence) {
        (Action::Create, Absence::Unconfirmed) => Action::Hold(HoldReason::CreateUnconfirmed),
        (Action::Create, Absence::RecordGone) => Action::Hold(HoldReason::RecordGone),
        (action, _) => action,
    }
}

impl HoldReason {
    /// Stable reason used for the Synced condition and metrics.
    pub fn reason(self) -> Reason {
        match self {
            HoldReason::ObserveOnly => Reason::ObserveOnly,
            HoldReason::WriteDisabled => Reason::WriteDisabled,
            HoldReason::Paused => Reason::Paused,
            HoldReason::NotFound => Reason::NotFound,
            HoldReason::AmbiguousNpi => Reason::AmbiguousNpi,
            HoldReason::SearchIncomplete => Reason::SearchIncomplete,
            HoldReason::CreateUnconfirmed => Reason::CreateUnconfirmed,
            HoldReason::RecordGone => Reason::RecordGone,
        }
    }
}

/// The action for one practitioner.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// Nothing to write: in sync, or (deleting) nothing to do in Epic.
    Nothing,
    /// Full PUT of the overlaid record.
    Update,
    /// POST a new record built from the spec.
    Create,
    /// PUT active=false before the object goes.
    Deactivate,
    /// Leave things as they are and say why.
    Hold(HoldReason),
}

impl Action {
    /// A short description for people (CLI output).
    pub fn describe(self) -> String {
        match self {
            Action::Nothing => "none (in sync)".into(),
            Action::Update => {
                "update (full PUT of the record with the owned fields replaced)".into()
            }
            Action::Create => "create (POST a new Practitioner)".into(),
            Action::Deactivate => "deactivate (PUT active=false)".into(),
            Action::Hold(HoldReason::ObserveOnly) => "none: managementPolicy is Observe".into(),
            Action::Hold(HoldReason::WriteDisabled) => {
                "none: write disabled on this instance".into()
            }
            Action::Hold(HoldReason::Paused) => "none: paused by annotation".into(),
            Action::Hold(HoldReason::NotFound) => {
                "none: NPI not found (use managementPolicy CreateOrUpdate to create it)".into()
            }
            Action::Hold(HoldReason::AmbiguousNpi) => {
                "none: several records carry this NPI; fix the duplicates in Epic".into()
            }
            Action::Hold(HoldReason::SearchIncomplete) => {
                "none: the NPI search answer is incomplete (the warnings say why); nothing is created on it".into()
            }
            Action::Hold(HoldReason::RecordGone) => {
                "none: the record that carried this NPI no longer answers; nothing is created in its place".into()
            }
            Action::Hold(HoldReason::CreateUnconfirmed) => {
                "none: an earlier create's answer was lost; waiting for a later search or complete walk to show whether it arrived".into()
            }
        }
    }

    pub fn writes(self) -> bool {
        matches!(self, Action::Update | Action::Create | Action::Deactivate)
    }
}

/// Decides the action. Observe never writes; a missing record is created only under
/// CreateOrUpdate; an ambiguous NPI never writes; deletion with Deactivate plans active=false.
pub fn plan(input: PlanInput) -> Action {
    match input.resolution {
        Resolution::Ambiguous(_) => return Action::Hold(HoldReason::AmbiguousNpi),
        Resolution::Incomplete => return Action::Hold(HoldReason::SearchIncomplete),
        _ => {}
    }
    let blocked = if input.paused {
        Some(HoldReason::Paused)
    } else if input.writes == WriteCapability::Disabled {
        Some(HoldReason::WriteDisabled)
    } else {
        None
    };
    if input.deleting {
        if input.management == ManagementPolicy::Observe
            || input.deletion == DeletionPolicy::Orphan
            || input.resolution == Resolution::NotFound
            || input.live_active == Some(false)
        {
            return Action::Nothing;
        }
        return blocked.map_or(Action::Deactivate, Action::Hold);
    }
    match input.resolution {
        Resolution::NotFound if input.management == ManagementPolicy::CreateOrUpdate => {
            blocked.map_or(Action::Create, Action::Hold)
        }
        Resolution::NotFound => Action::Hold(HoldReason::NotFound),
        _ if !input.drifted => Action::Nothing,
        _ if input.management == ManagementPolicy::Observe => Action::Hold(HoldReason::ObserveOnly),
        _ => blocked.map_or(Action::Update, Action::Hold),
    }
}

#[cfg(test)]
#[path = "plan_tests.rs"]
mod tests;
