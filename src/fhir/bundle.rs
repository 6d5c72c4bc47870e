//! Reading one page of a search: the matching resources, the OperationOutcome entries Epic
//! puts beside them (no-results warnings, suppressed or unauthorized results), and the `next`
//! link. Nothing here does I/O, so it is fuzzed and unit-tested directly.

use serde_json::Value;

use super::error::FhirError;
use super::outcome::OperationOutcome;

/// One page of a searchset Bundle.
#[derive(Debug, Default)]
pub struct SearchPage {
    /// Entries of the requested resource type.
    pub resources: Vec<Value>,
    /// OperationOutcome entries (`search.mode = outcome`).
    pub outcomes: Vec<OperationOutcome>,
    /// The `next` link as sent (opaque: used verbatim).
    pub next: Option<String>,
}

/// Splits a search response into resources, outcomes and the next link.
pub fn parse_search_page(bundle: &Value, resource_type: &str) -> Result<SearchPage, FhirError> {
    match bundle.get("resourceType").and_then(Value::as_str) {
        Some("Bundle") => {}
        Some("OperationOutcome") => {
            // A 200 answering a search with a bare OperationOutcome: nothing matched, and the
            // outcome says why.
            return Ok(SearchPage {
                outcomes: OperationOutcome::parse(bundle).into_iter().collect(),
                ..SearchPage::default()
            });
        }
        other => {
            return Err(FhirError::Malformed(format!(
                "a search answered with {} instead of a Bundle",
                other.unwrap_or("a body without resourceType")
            )));
        }
    }
    let mut page = SearchPage::default();
    for entry in bundle
        .get("entry")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[])
    {
        let included = entry.pointer("/search/mode").and_then(Value::as_str) == Some("include");
        match entry
            .get("resource")
            .map(|r| (r, r.get("resourceType").and_then(Value::as_str)))
        {
            Some((r, Some("OperationOutcome"))) => page.outcomes.extend(OperationOutcome::parse(r)),
            Some((r, Some(t))) if t == resource_type => page.resources.push(r.clone()),
            // A resource the search included beside its matches (`_include`): not a match.
            Some(_) if included => {}
            // A match that cannot be read may be the very record looked for: the page says
            // so as an incomplete answer, so that nothing reads as absent because of it.
            other => page
                .outcomes
                .push(unreadable_entry(other.and_then(|(_, t)| t), resource_type)),
        }
    }
    page.next = bundle
        .get("link")
        .and_then(Value::as_array)
        .and_then(|links| {
            links
                .iter()
                .find(|l| l.get("relation").and_then(Value::as_str) == Some("next"))
        })
        .and_then(|l| l.get("url").and_then(Value::as_str))
        .map(str::to_string);
    Ok(page)
}

/// The outcome standing for a search entry that could not be read as a match.
fn unreadable_entry(found: Option<&str>, wanted: &str) -> OperationOutcome {
    let what = match found {
        Some(t) => format!("a {t} where a {wanted} was expected"),
        None => "no resource, or one without resourceType".to_string(),
    };
    OperationOutcome {
        issues: vec![super::outcome::Issue {
            severity: "error".into(),
            code: "incomplete".into(),
            details: Vec::new(),
            diagnostics: Some(format!("a search entry held {what}; it was left out")),
        }],
    }
}

/// Everything a search returned over all its pages.
#[derive(Debug, Default)]
pub struct SearchResult {
    pub resources: Vec<Value>,
    pub outcomes: Vec<OperationOutcome>,
}

impl SearchResult {
    /// Epic's explanation when the answer of a search with criteria cannot prove absence
    /// (records cut or withheld, a parameter not applied).
    pub fn incomplete(&self) -> Option<String> {
        let bad: Vec<String> = self
            .outcomes
            .iter()
            .filter(|o| o.marks_search_incomplete())
            .map(|o| match o.summary() {
                s if s.is_empty() => format!("Epic codes {}", o.codes().join(",")),
                s => s,
            })
            .collect();
        (!bad.is_empty()).then(|| bad.join("; "))
    }

    /// Warnings worth showing: every outcome except the routine "no results" (4101).
    pub fn warnings(&self) -> Vec<String> {
        self.outcomes
            .iter()
            .filter(|o| !o.marks_search_incomplete() && !o.has_code("4101"))
            .map(OperationOutcome::summary)
            .filter(|s| !s.is_empty())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn outcome(severity: &str, code: &str) -> Value {
        json!({"resource": {"resourceType": "OperationOutcome", "issue": [{"severity": severity, "code": "processing",
            "details": {"coding": [{"system": "urn:oid:1.2.840.114350.1.13.0.1.7.2.657369", "code": code}]}}]},
            "search": {"mode": "outcome"}})
    }

    #[test]
    fn outcome_entries_are_kept_and_classified() {
        let bundle = json!({"resourceType": "Bundle", "entry": [
            {"resource": {"resourceType": "Practitioner", "id": "a"}},
            outcome("warning", "4101"),
            outcome("information", "59204"),
        ], "link": [{"relation": "next", "url": "https://x/next"}]});
        let page = parse_search_page(&bundle, "Practitioner").unwrap();
        assert_eq!(page.resources.len(), 1);
        assert_eq!(page.outcomes.len(), 2);
        assert_eq!(page.next.as_deref(), Some("https://x/next"));
        let result = SearchResult {
            resources: page.resources,
            outcomes: page.outcomes,
        };
        assert!(result.incomplete().is_some(), "59204 is a suppression");
        assert!(result.warnings().is_empty(), "4101 is routine");
    }

    #[test]
    fn a_plain_warning_is_a_warning_and_an_error_makes_it_incomplete() {
        let warn = SearchResult {
            resources: vec![],
            outcomes: OperationOutcome::parse(&outcome("warning", "4999")["resource"])
                .into_iter()
                .collect(),
        };
        assert!(warn.incomplete().is_none());
        assert_eq!(warn.warnings().len(), 1);
        let err = SearchResult {
            resources: vec![],
            outcomes: OperationOutcome::parse(&outcome("error", "4118")["resource"])
                .into_iter()
                .collect(),
        };
        assert!(err.incomplete().is_some());
    }

    #[test]
    fn an_entry_that_cannot_be_read_as_a_match_makes_the_answer_incomplete() {
        let cases = [
            (
                "no resource",
                json!({"fullUrl": "https://x/Practitioner/a"}),
                true,
            ),
            ("no resourceType", json!({"resource": {"id": "a"}}), true),
            (
                "another type as a match",
                json!({"resource": {"resourceType": "Patient", "id": "a"}, "search": {"mode": "match"}}),
                true,
            ),
            (
                "an included resource",
                json!({"resource": {"resourceType": "Organization", "id": "o"}, "search": {"mode": "include"}}),
                false,
            ),
            (
                "the type searched for",
                json!({"resource": {"resourceType": "Practitioner", "id": "a"}}),
                false,
            ),
        ];
        for (what, entry, incomplete) in cases {
            let bundle = json!({"resourceType": "Bundle", "entry": [entry]});
            let page = parse_search_page(&bundle, "Practitioner").unwrap();
            let result = SearchResult {
                resources: page.resources,
                outcomes: page.outcomes,
            };
            assert_eq!(result.incomplete().is_some(), incomplete, "{what}");
        }
    }

    #[test]
    fn non_bundles_are_refused() {
        assert!(
            parse_search_page(&json!({"resourceType": "Practitioner"}), "Practitioner").is_err()
        );
        assert!(parse_search_page(&json!([1, 2]), "Practitioner").is_err());
    }
}
