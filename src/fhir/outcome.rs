//! OperationOutcome: what Epic says went wrong (or what a search left out), with its detail
//! codes (Epic's are listed in EPIC-REFERENCE.md: 4101 no results, 4107 merged, 4113 paging
//! session expired, 4118 not authorized, 59204 suppressed).

use serde_json::Value;

/// One OperationOutcome issue.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Issue {
    pub severity: String,
    pub code: String,
    /// Epic detail codes (and any other coded details).
    pub details: Vec<String>,
    pub diagnostics: Option<String>,
}

/// The parts of an OperationOutcome the operator uses.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct OperationOutcome {
    pub issues: Vec<Issue>,
}

impl OperationOutcome {
    /// Parses an OperationOutcome; None when the body is something else.
    pub fn parse(body: &Value) -> Option<Self> {
        if body.get("resourceType").and_then(Value::as_str) != Some("OperationOutcome") {
            return None;
        }
        let issues = body
            .get("issue")
            .and_then(Value::as_array)
            .map(|issues| {
                issues
                    .iter()
                    .map(|i| Issue {
                        severity: str_at(i, "severity"),
                        code: str_at(i, "code"),
                        details: i
                            .pointer("/details/coding")
                            .and_then(Value::as_array)
                            .map(|c| {
                                c.iter()
                                    .filter_map(|c| {
                                        c.get("code").and_then(Value::as_str).map(str::to_string)
                                    })
                                    .collect()
                            })
                            .unwrap_or_default(),
                        diagnostics: i
                            .get("diagnostics")
                            .and_then(Value::as_str)
                            .or_else(|| i.pointer("/details/text").and_then(Value::as_str))
                            .map(str::to_string),
                    })
                    .collect()
            })
            .unwrap_or_default();
        Some(Self { issues })
    }

    /// All detail codes, in order, without repeats.
    pub fn codes(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for c in self.issues.iter().flat_map(|i| i.details.iter()) {
            if !out.contains(c) {
                out.push(c.clone());
            }
        }
        out
    }

    /// True when an issue's `code` or one of its detail codes is `code`.
    pub fn has_code(&self, code: &str) -> bool {
        self.issues
            .iter()
            .any(|i| i.code == code || i.details.iter().any(|d| d == code))
    }

    /// Whether these issues, found inside a search Bundle, mean the result set is incomplete:
    /// an error or fatal issue, or a suppression (Epic 59204) or not-authorized (4118) code.
    /// Then a search that shows no record does not prove that none exists.
    pub fn marks_incomplete(&self) -> bool {
        // A suppression arrives as Epic's 59204 or as the standard issue code `suppressed`.
        self.issues
            .iter()
            .any(|i| matches!(i.severity.as_str(), "error" | "fatal") || i.code == "suppressed")
            || self.has_code("59204")
            || self.has_code("4118")
    }

    /// The record was merged into another (Epic 4107): its id must be resolved again.
    pub fn is_merged(&self) -> bool {
        self.has_code("4107")
    }

    /// The diagnostics texts joined, for messages, with personal data masked: Epic's text
    /// goes on into status, Events, logs and `plan -o json`, and may echo an e-mail address, a
    /// phone number or a birth date.
    pub fn summary(&self) -> String {
        let text = self
            .issues
            .iter()
            .filter(|i| i.severity != "information" || i.code == "suppressed")
            .map(|i| {
                let mut s = i.code.clone();
                if !i.details.is_empty() {
                    s.push_str(&format!(" [{}]", i.details.join(",")));
                }
                if let Some(d) = &i.diagnostics {
                    s.push_str(": ");
                    s.push_str(d);
                }
                s
            })
            .collect::<Vec<_>>()
            .join("; ");
        crate::reconcile::mask_personal_text(&text)
    }
}

fn str_at(v: &Value, key: &str) -> String {
    v.get(key)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn epic_diagnostics_are_masked_before_they_go_anywhere() {
        let o = OperationOutcome::parse(&serde_json::json!({
            "resourceType": "OperationOutcome",
            "issue": [{"severity": "error", "code": "business-rule",
                "diagnostics": "record of jane.doe@hospital.example.org (born 1980-04-12, tel 555-123-4567) is locked"}]
        }))
        .unwrap();
        let text = o.summary();
        assert_eq!(
            text,
            "business-rule: record of ***@hospital.example.org (born 1980-**-**, tel [phone]) is locked"
        );
        let refused = crate::auth::parse_token_response(
            400,
            br#"{"error":"invalid_client","error_description":"ask admin@epic.example.org"}"#,
            &[],
            std::time::Instant::now(),
        )
        .unwrap_err()
        .to_string();
        assert!(
            refused.contains("***@epic.example.org") && !refused.contains("admin@"),
            "{refused}"
        );
    }

    #[test]
    fn a_suppression_without_an_epic_code_marks_the_answer_incomplete() {
        let o = OperationOutcome::parse(&serde_json::json!({
            "resourceType": "OperationOutcome",
            "issue": [{"severity": "information", "code": "suppressed", "diagnostics": "hidden"}]
        }))
        .unwrap();
        assert!(o.marks_incomplete());
        let info = OperationOutcome::parse(&serde_json::json!({
            "resourceType": "OperationOutcome",
            "issue": [{"severity": "information", "code": "informational"}]
        }))
        .unwrap();
        assert!(!info.marks_incomplete());
    }
}
