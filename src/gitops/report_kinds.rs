//! The vocabulary of a `plan`/`apply` report: how each NPI resolved, what action the plan chose,
//! and what happened. Serialised in kebab-case (`not-found`) for `--output json`.

use serde::{Deserialize, Serialize};

use crate::pipeline::WriteOutcome;
use crate::reconcile::{Action, Resolution};

/// How the NPI resolved.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ReportResolution {
    Found,
    NotFound,
    Ambiguous,
    /// Epic marked the search incomplete.
    Incomplete,
    /// Not resolved: the manifest or the request failed.
    #[default]
    Error,
}

impl From<Resolution> for ReportResolution {
    fn from(r: Resolution) -> Self {
        match r {
            Resolution::Found => Self::Found,
            Resolution::NotFound => Self::NotFound,
            Resolution::Ambiguous(_) => Self::Ambiguous,
            Resolution::Incomplete => Self::Incomplete,
        }
    }
}

/// The action the plan chose.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ReportAction {
    #[default]
    None,
    Update,
    Create,
    Deactivate,
    Hold,
}

impl From<Action> for ReportAction {
    fn from(a: Action) -> Self {
        match a {
            Action::Nothing => Self::None,
            Action::Update => Self::Update,
            Action::Create => Self::Create,
            Action::Deactivate => Self::Deactivate,
            Action::Hold(_) => Self::Hold,
        }
    }
}

impl ReportAction {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Update => "update",
            Self::Create => "create",
            Self::Deactivate => "deactivate",
            Self::Hold => "hold",
        }
    }

    /// A PUT or POST (update, create, deactivate).
    pub fn writes(self) -> bool {
        matches!(self, Self::Update | Self::Create | Self::Deactivate)
    }
}

/// What happened to the record.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ReportResult {
    Unchanged,
    Planned,
    Held,
    Updated,
    Created,
    Deactivated,
    Refused,
    Failed,
    Conflict,
    /// `apply --plan`: the record changed since the plan; nothing was written for it.
    Stale,
    #[default]
    Error,
}

impl ReportResult {
    /// From what the write did and what the plan chose.
    pub fn of(write: &WriteOutcome, action: Action) -> Self {
        match (write, action) {
            (WriteOutcome::Updated, _) => Self::Updated,
            (WriteOutcome::Created, _) => Self::Created,
            (WriteOutcome::Deactivated, _) => Self::Deactivated,
            (WriteOutcome::Refused(_), _) => Self::Refused,
            (WriteOutcome::Failed(_) | WriteOutcome::NotSent(_), _) => Self::Failed,
            (WriteOutcome::Conflict { .. }, _) => Self::Conflict,
            (WriteOutcome::NotAttempted, Action::Nothing) => Self::Unchanged,
            (WriteOutcome::NotAttempted, Action::Hold(_)) => Self::Held,
            (WriteOutcome::NotAttempted, _) => Self::Planned,
        }
    }

    /// A write happened.
    pub fn wrote(self) -> bool {
        matches!(self, Self::Updated | Self::Created | Self::Deactivated)
    }

    /// Something went wrong.
    pub fn failed(self) -> bool {
        matches!(
            self,
            Self::Error | Self::Failed | Self::Conflict | Self::Stale
        )
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Unchanged => "unchanged",
            Self::Planned => "planned",
            Self::Held => "held",
            Self::Updated => "updated",
            Self::Created => "created",
            Self::Deactivated => "deactivated",
            Self::Refused => "refused",
            Self::Failed => "failed",
            Self::Conflict => "conflict",
            Self::Stale => "stale",
            Self::Error => "error",
        }
    }
}
