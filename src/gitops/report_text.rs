//! `plan` and `apply` as text for a terminal: per practitioner what was resolved, the drift,
//! the action and the result, then a summary of before, what was done, and after.

use std::fmt::Write as _;

use super::report::{PlanMode, PractitionerReport, RunReport};
use super::report_kinds::{ReportAction, ReportResolution, ReportResult};
use crate::crd::Reason;

impl RunReport {
    /// The report for a terminal.
    pub fn to_text(&self, mode: PlanMode) -> String {
        let mut out = String::new();
        if let Some(url) = &self.fhir_base_url {
            let _ = writeln!(out, "Epic instance: {url}");
        }
        if let Some(w) = &self.writes {
            let _ = writeln!(out, "Writes: {} ({})", w.mode, w.reason);
        }
        for d in &self.diagnostics {
            let _ = writeln!(out, "error: {}", d.line());
        }
        for n in &self.notes {
            let _ = writeln!(out, "note: {n}");
        }
        for r in &self.practitioners {
            let _ = writeln!(out);
            let ns = r
                .namespace
                .as_ref()
                .map(|n| format!("{n}/"))
                .unwrap_or_default();
            let _ = writeln!(
                out,
                "EpicPractitioner {ns}{}  NPI {}  ({})",
                r.name, r.npi, r.file
            );
            let resolved = match (r.resolution, &r.fhir_id) {
                (ReportResolution::Found, Some(id)) => format!("Practitioner/{id}"),
                (ReportResolution::NotFound, _) => "no record carries this NPI".into(),
                (ReportResolution::Ambiguous, _) => format!(
                    "AMBIGUOUS: {} records carry this NPI",
                    r.ambiguous_ids.len()
                ),
                (ReportResolution::Incomplete, _) => {
                    "unknown: Epic marked the search incomplete (see warning)".into()
                }
                (ReportResolution::Error, _) => "error".into(),
                (ReportResolution::Found, None) => "found".into(),
            };
            let _ = writeln!(out, "  resolved : {resolved}");
            if r.drift.is_empty() {
                if r.resolution == ReportResolution::Found {
                    let _ = writeln!(out, "  drift    : none");
                }
            } else {
                let _ = writeln!(out, "  drift    : {} field(s)", r.drift.len());
                for d in &r.drift {
                    let _ = writeln!(
                        out,
                        "    {}: live {} -> desired {}",
                        d.path, d.live, d.desired
                    );
                }
                for line in r.diff.lines() {
                    let _ = writeln!(out, "    {line}");
                }
            }
            let action = match (r.action, mode) {
                _ if r.resolution == ReportResolution::Error => format!(
                    "none (not planned: {})",
                    r.reason.map_or("error", Reason::as_str)
                ),
                (ReportAction::Hold, _) if r.intended_action.writes() => format!(
                    "{} held ({}): not performed while held",
                    r.intended_action.as_str(),
                    r.reason.map(Reason::as_str).unwrap_or_default()
                ),
                (ReportAction::Hold, _) => {
                    format!(
                        "none ({})",
                        r.reason.map(Reason::as_str).unwrap_or_default()
                    )
                }
                (a, PlanMode::Plan) if a != ReportAction::None => {
                    format!(
                        "{} (would be performed by apply / the operator)",
                        a.as_str()
                    )
                }
                (a, _) => a.as_str().to_string(),
            };
            let _ = writeln!(out, "  action   : {action}");
            if let Some(req) = &r.request {
                let mut headers = String::new();
                if let Some(m) = &req.if_match {
                    let _ = write!(headers, " (If-Match: {m})");
                }
                if let Some(c) = &req.if_none_exist {
                    let _ = write!(headers, " (If-None-Exist: {c})");
                }
                let _ = writeln!(out, "  request  : {} {}{headers}", req.method, req.url);
                if let Some(body) = &req.body {
                    let pretty = serde_json::to_string_pretty(body).unwrap_or_default();
                    for line in pretty.lines() {
                        let _ = writeln!(out, "    {line}");
                    }
                }
            }
            if let Some(m) = &r.if_match {
                let _ = writeln!(out, "  if-match : {m}");
            }
            for w in &r.warnings {
                let _ = writeln!(out, "  warning  : {w}");
            }
            if let Some(n) = &r.note {
                let _ = writeln!(out, "  note     : {n}");
            }
            if mode == PlanMode::Apply || r.result == ReportResult::Error {
                let _ = writeln!(out, "  result   : {}", r.result.as_str());
            }
            if !r.message.is_empty() {
                let _ = writeln!(out, "  detail   : {}", r.message);
            }
        }
        let count = |f: &dyn Fn(&PractitionerReport) -> bool| {
            self.practitioners.iter().filter(|r| f(r)).count()
        };
        let _ = writeln!(out);
        let saved = self.writes.as_ref().is_some_and(|w| w.mode == "planned");
        if saved {
            // A saved plan is not planned again: only what happened to its requests is known.
            let _ = writeln!(
                out,
                "Summary: {} practitioner(s), applied from a saved plan; {} stale.",
                self.practitioners.len(),
                count(&|r| r.result == ReportResult::Stale),
            );
        } else {
            // Before: what Epic held when read. Then what this run did (apply) or would do
            // (plan). After (apply only): what Epic holds now.
            let _ = writeln!(
                out,
                "Summary: {} practitioner(s). Before: {} in sync, {} drifted, {} not found, {} ambiguous, {} errors.",
                self.practitioners.len(),
                count(&|r| r.resolution == ReportResolution::Found
                    && r.drift.is_empty()
                    && r.result != ReportResult::Created),
                count(&|r| !r.drift.is_empty() && r.result != ReportResult::Created),
                count(&|r| r.resolution == ReportResolution::NotFound
                    || r.result == ReportResult::Created),
                count(&|r| r.resolution == ReportResolution::Ambiguous),
                count(&|r| r.resolution == ReportResolution::Error),
            );
        }
        match mode {
            PlanMode::Plan => {
                let _ = writeln!(out, "{}", self.summary.plan_line());
            }
            PlanMode::Apply => {
                let _ = writeln!(
                    out,
                    "Apply: {} written, {} refused, {} held, {} failed. After: {} in sync, {} not.",
                    count(&|r| r.result.wrote()),
                    count(&|r| r.result == ReportResult::Refused),
                    count(&|r| r.result == ReportResult::Held),
                    count(&|r| r.result.failed()),
                    count(&|r| r.in_sync),
                    count(&|r| !r.in_sync),
                );
            }
        }
        out
    }
}
