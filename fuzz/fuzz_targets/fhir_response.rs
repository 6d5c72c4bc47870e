//! Epic's answers: a FHIR Bundle (search page, OperationOutcome entries) and the classification
//! of an error response (status + OperationOutcome body) must never panic.
#![no_main]

use epic_operator::fhir::{OperationOutcome, SearchResult, classify, parse_search_page};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((head, body)) = data.split_first_chunk::<3>() else {
        return;
    };
    let status = u16::from_be_bytes([head[0], head[1]]);
    let write = head[2] & 1 == 1;
    let _ = classify(status, body, write, None).reason();
    if let Ok(v) = serde_json::from_slice::<serde_json::Value>(body) {
        if let Ok(page) = parse_search_page(&v, "Practitioner") {
            let result = SearchResult {
                resources: page.resources,
                outcomes: page.outcomes,
            };
            let _ = result.incomplete();
            let _ = result.warnings();
        }
        if let Some(o) = OperationOutcome::parse(&v) {
            let _ = (o.summary(), o.codes(), o.marks_incomplete(), o.is_merged());
        }
    }
});
