//! `plan -o markdown`: the report as a pull-request comment. The summary comes first, then one
//! collapsible section per practitioner that changes, is held or failed (field-level drift,
//! the would-be request, personal values masked as in the text output); practitioners in sync
//! are one line. A comment has a size limit (GitHub: 65,536 characters), so past
//! [`MAX_MARKDOWN_CHARS`] the remaining sections are summarised instead of cut mid-way.

use std::fmt::Write as _;

use super::report::{PractitionerReport, RunReport};
use super::report_kinds::{ReportAction, ReportResolution};
use crate::crd::Reason;

/// Longest comment produced, with room under GitHub's 65,536 characters for a CI job's own
/// header or footer.
pub const MAX_MARKDOWN_CHARS: usize = 60_000;

/// Marks the comment so CI can find and update the same one on each push.
pub const COMMENT_MARKER: &str = "<!-- epic-operator-plan -->";

impl RunReport {
    /// The report as Markdown, at most `limit` characters (normally [`MAX_MARKDOWN_CHARS`]).
    pub fn to_markdown(&self, limit: usize) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "{COMMENT_MARKER}");
        let verb = if self.mode == "apply" {
            "apply"
        } else {
            "plan"
        };
        let headline = if self.diagnostics.is_empty() {
            self.summary.plan_line()
        } else {
            format!(
                "Plan: not run, {} error(s) in the input.",
                self.diagnostics.len()
            )
        };
        let _ = writeln!(
            out,
            "### epic-operator {verb}\n\n**{}**\n",
            escape(&headline)
        );
        if let Some(url) = &self.fhir_base_url {
            let _ = write!(out, "Epic instance: `{}`", code(url));
        }
        if let Some(w) = &self.writes {
            let _ = write!(out, " · Writes: **{}** ({})", w.mode, escape(&w.reason));
        }
        if self.fhir_base_url.is_some() || self.writes.is_some() {
            out.push_str("\n\n");
        }
        if self.summary.written.is_some() {
            let _ = writeln!(
                out,
                "Written: {} · refused: {} · in sync now: {} of {}\n",
                self.summary.written.unwrap_or_default(),
                self.summary.refused.unwrap_or_default(),
                self.summary.in_sync,
                self.summary.practitioners
            );
        }
        if !self.diagnostics.is_empty() {
            let _ = writeln!(out, "#### Errors\n");
            for d in &self.diagnostics {
                let field = d
                    .path
                    .as_ref()
                    .map(|p| format!(" `{}`", code(p)))
                    .unwrap_or_default();
                let _ = writeln!(out, "- {}{field}", escape(&d.line()));
            }
            out.push('\n');
        }
        for n in &self.notes {
            let _ = writeln!(out, "> {}", escape(n));
        }
        if !self.notes.is_empty() {
            out.push('\n');
        }
        let in_sync: Vec<&PractitionerReport> = self
            .practitioners
            .iter()
            .filter(|r| r.in_sync && r.drift.is_empty() && !r.result.failed())
            .collect();
        let sections: Vec<String> = self
            .practitioners
            .iter()
            .filter(|r| !in_sync.iter().any(|s| std::ptr::eq(*s, *r)))
            .map(section)
            .collect();
        let in_sync_line = (!in_sync.is_empty()).then(|| {
            let names: Vec<String> = in_sync
                .iter()
                .map(|r| format!("`{}`", code(&r.name)))
                .collect();
            format!("In sync ({}): {}\n", in_sync.len(), names.join(", "))
        });
        // Room kept for the last lines (the in-sync list may itself be cut to a count).
        let reserve = 400;
        let mut omitted = 0;
        for s in &sections {
            if omitted == 0 && out.len() + s.len() + reserve <= limit {
                out.push_str(s);
            } else {
                omitted += 1;
            }
        }
        if omitted > 0 {
            let _ = writeln!(
                out,
                "\n_{omitted} more practitioner(s) not shown: the comment is kept under {limit} characters. The job log (`-o text`) and `-o json` have the whole plan._\n"
            );
        }
        if let Some(line) = in_sync_line {
            if out.len() + line.len() < limit {
                out.push('\n');
                out.push_str(&line);
            } else {
                let _ = writeln!(out, "\nIn sync: {}", in_sync.len());
            }
        }
        out
    }
}

/// One collapsible section.
fn section(r: &PractitionerReport) -> String {
    let mut s = String::new();
    let action = match r.action {
        _ if r.resolution == ReportResolution::Error => {
            format!("error ({})", r.reason.map_or("error", Reason::as_str))
        }
        ReportAction::Hold if r.intended_action.writes() => format!(
            "{} held ({})",
            r.intended_action.as_str(),
            r.reason.map(Reason::as_str).unwrap_or_default()
        ),
        ReportAction::Hold => format!(
            "held ({})",
            r.reason.map(Reason::as_str).unwrap_or_default()
        ),
        a => a.as_str().to_string(),
    };
    let ns = r
        .namespace
        .as_ref()
        .map(|n| format!("{n}/"))
        .unwrap_or_default();
    let _ = writeln!(
        s,
        "<details><summary><b>{}</b> · NPI {} · {}</summary>\n",
        html(&format!("{ns}{}", r.name)),
        html(&r.npi),
        html(&action)
    );
    let resolved = match (&r.fhir_id, r.resolution) {
        (Some(id), _) => format!("`Practitioner/{}`", code(id)),
        (None, ReportResolution::NotFound) => "no record carries this NPI".into(),
        (None, ReportResolution::Ambiguous) => format!(
            "{} records carry this NPI: {}",
            r.ambiguous_ids.len(),
            r.ambiguous_ids
                .iter()
                .map(|i| format!("`{}`", code(i)))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        (None, ReportResolution::Incomplete) => "unknown: Epic marked the search incomplete".into(),
        (None, _) => "not resolved".into(),
    };
    let _ = writeln!(s, "File `{}` · {resolved}\n", code(&r.file));
    if !r.drift.is_empty() {
        let _ = writeln!(s, "| Field | Live | Desired |\n|---|---|---|");
        for d in &r.drift {
            let _ = writeln!(
                s,
                "| `{}` | `{}` | `{}` |",
                code(&d.path),
                code(&d.live),
                code(&d.desired)
            );
        }
        s.push('\n');
    }
    if let Some(req) = &r.request {
        let mut headers = String::new();
        if let Some(m) = &req.if_match {
            headers.push_str(&format!(" with `If-Match: {}`", code(m)));
        }
        if let Some(c) = &req.if_none_exist {
            headers.push_str(&format!(" with `If-None-Exist: {}`", code(c)));
        }
        let held = if r.action == ReportAction::Hold {
            " (held: not sent)"
        } else {
            ""
        };
        let _ = writeln!(
            s,
            "Request{held}: `{} {}`{headers}\n",
            req.method,
            code(&req.url)
        );
        if let Some(body) = &req.body {
            let pretty = serde_json::to_string_pretty(body).unwrap_or_default();
            let _ = writeln!(s, "```json\n{}\n```\n", pretty.replace("```", "'''"));
        }
    }
    if !r.diff.is_empty() {
        let _ = writeln!(
            s,
            "```diff\n{}\n```\n",
            r.diff.trim_end().replace("```", "'''")
        );
    }
    for w in &r.warnings {
        let _ = writeln!(s, "- warning: {}", escape(w));
    }
    if let Some(n) = &r.note {
        let _ = writeln!(s, "- note: {}", escape(n));
    }
    if !r.message.is_empty() {
        let _ = writeln!(s, "- {}", escape(&r.message));
    }
    s.push_str("\n</details>\n\n");
    s
}

/// Text inside an inline code span or table cell: no backtick, pipe or line break can end it.
fn code(text: &str) -> String {
    text.replace('`', "'")
        .replace('|', "\\|")
        .replace(['\n', '\r'], " ")
}

/// Text inside HTML tags (`<summary>`).
fn html(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// Plain text in Markdown: HTML and line breaks cannot open a block of their own.
fn escape(text: &str) -> String {
    html(text).replace(['\n', '\r'], " ")
}
