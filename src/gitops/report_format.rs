//! The versioned parts of a `plan`/`apply` report: the format version and tool, the write
//! capability as `{mode, reason}`, the summary counts, the would-be request of each
//! practitioner and the action a hold keeps back. `schemas/plan-output.schema.json` describes the
//! JSON; `tests/plan_output.rs` holds every output against it.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::report_kinds::{ReportAction, ReportResolution, ReportResult};
use super::report_types::{PlanMode, PractitionerReport};
use crate::crd::Reason;

/// Bumped when a field changes meaning or goes away (adding fields keeps the version).
pub const FORMAT_VERSION: u32 = 1;

/// Which program wrote the report.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct ToolInfo {
    pub name: String,
    pub version: String,
}

impl ToolInfo {
    pub fn this() -> Self {
        Self {
            name: env!("CARGO_PKG_NAME").into(),
            version: env!("CARGO_PKG_VERSION").into(),
        }
    }
}

/// Whether the instance takes writes, as a value a script can branch on, and why.
#[derive(Clone, Debug, Serialize)]
pub struct WritesInfo {
    /// enabled, disabled or unknown.
    pub mode: &'static str,
    pub reason: String,
}

/// The counts a CI job reads instead of walking the list.
#[derive(Clone, Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Summary {
    pub practitioners: usize,
    /// What the plan chose to write (for `apply`: before writing).
    pub create: usize,
    pub update: usize,
    pub deactivate: usize,
    /// Practitioners whose drift or creation is held back, by reason.
    pub held: BTreeMap<String, usize>,
    /// In sync: before anything is written for `plan`, at the end for `apply`.
    pub in_sync: usize,
    /// Practitioners that failed, plus every diagnostic.
    pub errors: usize,
    /// `apply` only: writes that succeeded.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub written: Option<usize>,
    /// `apply` only: writes Epic refused.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refused: Option<usize>,
}

impl Summary {
    pub fn of(practitioners: &[PractitionerReport], diagnostics: usize, mode: PlanMode) -> Self {
        let count =
            |f: &dyn Fn(&PractitionerReport) -> bool| practitioners.iter().filter(|r| f(r)).count();
        let mut held = BTreeMap::new();
        for r in practitioners {
            if r.action == ReportAction::Hold {
                let reason = r.reason.map_or("Held", Reason::as_str);
                *held.entry(reason.to_string()).or_insert(0) += 1;
            }
        }
        let apply = mode == PlanMode::Apply;
        Self {
            practitioners: practitioners.len(),
            create: count(&|r| r.action == ReportAction::Create),
            update: count(&|r| r.action == ReportAction::Update),
            deactivate: count(&|r| r.action == ReportAction::Deactivate),
            held,
            in_sync: count(&|r| r.in_sync),
            errors: count(&|r| r.result.failed()) + diagnostics,
            written: apply.then(|| count(&|r| r.result.wrote())),
            refused: apply.then(|| count(&|r| r.result == ReportResult::Refused)),
        }
    }

    pub fn held_total(&self) -> usize {
        self.held.values().sum()
    }

    /// `Plan: 1 to create, 2 to update, 1 to deactivate; 3 held (WriteDisabled 2, ObserveOnly 1).`
    pub fn plan_line(&self) -> String {
        let mut line = format!(
            "Plan: {} to create, {} to update, {} to deactivate",
            self.create, self.update, self.deactivate
        );
        if self.held_total() > 0 {
            let mut by: Vec<(&String, &usize)> = self.held.iter().collect();
            by.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
            let parts: Vec<String> = by.iter().map(|(k, v)| format!("{k} {v}")).collect();
            line.push_str(&format!(
                "; {} held ({})",
                self.held_total(),
                parts.join(", ")
            ));
        }
        if self.errors > 0 {
            line.push_str(&format!("; {} error(s)", self.errors));
        }
        line.push('.');
        line
    }
}

/// What a hold keeps back: the action the plan would take were the reason lifted (writes
/// enabled, not paused, managed rather than observed, created under CreateOrUpdate). None
/// when nothing can be said (several records carry the NPI, or Epic's answer was incomplete).
pub fn intended_action(r: &PractitionerReport, deactivates: bool) -> ReportAction {
    if r.action != ReportAction::Hold {
        return r.action;
    }
    match (r.reason, r.resolution) {
        (Some(Reason::AmbiguousNpi | Reason::SearchIncomplete), _) => ReportAction::None,
        (_, ReportResolution::NotFound) => ReportAction::Create,
        (_, ReportResolution::Found) if !r.drift.is_empty() && deactivates => {
            ReportAction::Deactivate
        }
        (_, ReportResolution::Found) if !r.drift.is_empty() => ReportAction::Update,
        _ => ReportAction::None,
    }
}

/// How the exit code is chosen.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ExitCodeMode {
    /// 2 for any drift, held or not (the default).
    #[default]
    Drift,
    /// 2 only when something is (plan) or remains (apply) to be written; drift that policy
    /// holds back exits 0.
    Writes,
}

/// 0 nothing to report, 2 drift (or writes, by `mode`), 1 any error.
pub fn exit_code(
    practitioners: &[PractitionerReport],
    errors: bool,
    run: PlanMode,
    mode: ExitCodeMode,
) -> i32 {
    if errors {
        return 1;
    }
    let two = match (run, mode) {
        (PlanMode::Plan, ExitCodeMode::Drift) => practitioners
            .iter()
            .any(|r| !(r.resolution == ReportResolution::Found && r.drift.is_empty())),
        (PlanMode::Plan, ExitCodeMode::Writes) => practitioners.iter().any(|r| r.action.writes()),
        (PlanMode::Apply, ExitCodeMode::Drift) => practitioners.iter().any(|r| !r.in_sync),
        (PlanMode::Apply, ExitCodeMode::Writes) => practitioners
            .iter()
            .any(|r| r.action.writes() && !r.in_sync),
    };
    if two { 2 } else { 0 }
}
