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

/// FHIR issue types that, at any severity, say a search's result set may lack records: it
/// was cut (too costly, too long, timed out, throttled, incomplete) or records were withheld
/// (suppressed, forbidden, security). Epic's codes of the same meaning: suppressed (59204),
/// not authorized (4118).
const WITHHELD_CODES: &[&str] = &[
    "incomplete",
    "too-costly",
    "too-long",
    "timeout",
    "throttled",
    "transient",
    "suppressed",
    "forbidden",
    "security",
];
const WITHHELD_EPIC_CODES: &[&str] = &["59204", "4118"];

/// Issue types and Epic codes that say a search parameter was not applied: not supported,
/// or invalid, missing or not combinable (4100, 4110, 4111, 4112, 4115). A search whose
/// `identifier` was not applied answers with records that are not the NPI's, and none of
/// them is its record; a roster walk's only parameter is the advisory `_count`.
const NOT_APPLIED_CODES: &[&str] = &["not-supported"];
const NOT_APPLIED_EPIC_CODES: &[&str] = &["4100", "4110", "4111", "4112", "4115"];

impl Issue {
    fn has_any(&self, codes: &[&str], epic: &[&str]) -> bool {
        codes.contains(&self.code.as_str())
            || self.details.iter().any(|d| epic.contains(&d.as_str()))
    }

    /// Whether this issue, inside a search Bundle, means records may be missing from it.
    fn marks_incomplete(&self) -> bool {
        matches!(self.severity.as_str(), "error" | "fatal")
            || self.has_any(WITHHELD_CODES, WITHHELD_EPIC_CODES)
    }

    /// Whether this issue says a search parameter was not applied.
    fn parameter_not_applied(&self) -> bool {
        self.has_any(NOT_APPLIED_CODES, NOT_APPLIED_EPIC_CODES)
    }
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
    /// an error or fatal issue, or at any severity an issue type or Epic code that says records
    /// were cut or withheld (a suppression arrives as Epic's 59204 or as the standard
    /// `suppressed`). Then a search that shows no record does not prove that none exists.
    /// What a search may say and still be whole: 4101 (no results), `informational`.
    pub fn marks_incomplete(&self) -> bool {
        self.issues.iter().any(Issue::marks_incomplete)
    }

    /// Whether these issues, inside the Bundle of a search with criteria (an identifier
    /// search), mean its answer cannot prove absence: records cut or withheld, or a
    /// parameter not applied.
    pub fn marks_search_incomplete(&self) -> bool {
        self.issues
            .iter()
            .any(|i| i.marks_incomplete() || i.parameter_not_applied())
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
            .filter(|i| {
                i.severity != "information" || i.marks_incomplete() || i.parameter_not_applied()
            })
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

    #[test]
    fn an_answer_is_incomplete_when_any_issue_says_records_may_be_missing() {
        let issue = |severity: &str, code: &str, epic: Option<&str>| {
            let mut i = serde_json::json!({"severity": severity, "code": code});
            if let Some(e) = epic {
                i["details"] = serde_json::json!({"coding": [{"code": e}]});
            }
            OperationOutcome::parse(
                &serde_json::json!({"resourceType": "OperationOutcome", "issue": [i]}),
            )
            .unwrap()
        };
        let cases = [
            (
                "no results",
                issue("warning", "not-found", Some("4101")),
                false,
            ),
            (
                "informational",
                issue("information", "informational", None),
                false,
            ),
            ("an error", issue("error", "processing", None), true),
            (
                "cut as too costly",
                issue("warning", "too-costly", None),
                true,
            ),
            ("incomplete", issue("information", "incomplete", None), true),
            ("throttled", issue("warning", "throttled", None), true),
            (
                "a parameter not supported",
                issue("warning", "not-supported", None),
                true,
            ),
            (
                "Epic: invalid parameter",
                issue("warning", "processing", Some("4100")),
                true,
            ),
            (
                "Epic: no parameters",
                issue("warning", "processing", Some("4110")),
                true,
            ),
            (
                "Epic: suppressed",
                issue("information", "processing", Some("59204")),
                true,
            ),
            (
                "Epic: not authorized",
                issue("warning", "processing", Some("4118")),
                true,
            ),
        ];
        for (what, o, incomplete) in cases {
            assert_eq!(o.marks_search_incomplete(), incomplete, "{what}");
            if incomplete {
                assert!(!o.summary().is_empty(), "{what}: the message says why");
            }
        }
        // A walk's one parameter is the advisory `_count`: a parameter not applied does not
        // make its pages incomplete; records cut or withheld do.
        for (what, o, incomplete) in [
            (
                "not-supported",
                issue("warning", "not-supported", None),
                false,
            ),
            (
                "Epic 4100",
                issue("warning", "processing", Some("4100")),
                false,
            ),
            ("too costly", issue("warning", "too-costly", None), true),
            (
                "Epic 59204",
                issue("information", "processing", Some("59204")),
                true,
            ),
        ] {
            assert_eq!(o.marks_incomplete(), incomplete, "walk: {what}");
        }
    }
}
