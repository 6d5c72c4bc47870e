//! Unit tests of Epic's errors: classification of status codes and OperationOutcomes.

use super::*;

fn oo(code: &str, epic: &str, diag: &str) -> Vec<u8> {
    serde_json::json!({
        "resourceType": "OperationOutcome",
        "issue": [{
            "severity": "error",
            "code": code,
            "details": {"coding": [{"system": EPIC_CODE_SYSTEM, "code": epic, "display": diag}], "text": diag},
            "diagnostics": diag
        }]
    })
    .to_string()
    .into_bytes()
}

#[test]
fn classifies_recorded_outcomes() {
    let cases: Vec<(u16, Vec<u8>, bool, &str)> = vec![
        (
            401,
            oo("login", "4118", "token expired"),
            false,
            "Unauthorized",
        ),
        (
            403,
            oo("forbidden", "4118", "User not authorized for request"),
            false,
            "Unauthorized",
        ),
        (
            403,
            oo("forbidden", "4118", "Practitioner.Update is not enabled"),
            true,
            "WriteDisabled",
        ),
        (
            405,
            oo("not-supported", "4100", "PUT not allowed"),
            true,
            "WriteDisabled",
        ),
        (501, b"".to_vec(), true, "WriteDisabled"),
        (
            400,
            oo("not-supported", "4100", "update not supported"),
            true,
            "WriteDisabled",
        ),
        (
            422,
            oo("business-rule", "4100", "name required"),
            true,
            "Invalid",
        ),
        (
            404,
            oo("not-found", "4102", "The resource ID is invalid"),
            false,
            "NotFound",
        ),
        (410, oo("deleted", "4107", "merged"), false, "NotFound"),
        (409, oo("conflict", "4100", "conflict"), true, "Conflict"),
        (412, b"{}".to_vec(), true, "Conflict"),
        (
            400,
            oo("invalid", "4100", "invalid parameter"),
            false,
            "Invalid",
        ),
        (
            400,
            oo("processing", "4113", "paging session expired"),
            false,
            "PagingExpired",
        ),
        (429, b"".to_vec(), false, "Throttled"),
        (
            500,
            oo("exception", "4100", "boom"),
            false,
            "EpicUnavailable",
        ),
        (503, b"<html>down</html>".to_vec(), false, "EpicUnavailable"),
        (
            429,
            oo(
                "throttled",
                "4100",
                "Daily request limit reached for this client",
            ),
            false,
            "DailyLimitReached",
        ),
        (
            403,
            oo("forbidden", "4118", "Daily quota exceeded"),
            false,
            "DailyLimitReached",
        ),
        (
            403,
            oo("forbidden", "59204", "results suppressed"),
            false,
            "Unauthorized",
        ),
    ];
    for (status, body, write, reason) in cases {
        let e = classify(status, &body, write, None);
        assert_eq!(
            e.reason().as_str(),
            reason,
            "HTTP {status} write={write}: {e:?}"
        );
    }
}

#[test]
fn messages_carry_diagnostics_and_codes() {
    let e = classify(
        403,
        &oo("forbidden", "4118", "writes are disabled"),
        true,
        None,
    );
    assert!(e.to_string().contains("writes are disabled"), "{e}");
    assert_eq!(e.epic_codes(), vec!["4118".to_string()]);
    assert_eq!(e.http_status(), Some(403));
    let t = classify(429, b"", false, Some(Duration::from_secs(7)));
    assert!(t.to_string().contains("retry after 7s"));
    assert!(t.is_transient());
    let down = classify(503, b"", false, Some(Duration::from_secs(9)));
    assert_eq!(down.retry_after(), Some(Duration::from_secs(9)));
    assert!(down.to_string().contains("retry after 9s"), "{down}");
    // A Retry-After on a 500 is not Epic's request to wait.
    assert_eq!(
        classify(500, b"", false, Some(Duration::from_secs(9))).retry_after(),
        None
    );
    let daily = classify(
        429,
        &oo("throttled", "4100", "daily limit reached"),
        false,
        Some(Duration::from_secs(60)),
    );
    assert!(
        !daily.is_transient(),
        "a daily limit is not retried at once"
    );
    assert_eq!(daily.retry_after(), Some(Duration::from_secs(60)));
}

#[test]
fn refused_parameterless_searches_are_walk_refusals() {
    for (body, want) in [
        (oo("invalid", "4110", "no parameters are provided"), true),
        (oo("required", "4111", "required parameter missing"), true),
        (b"".to_vec(), true),
        (oo("invalid", "4100", "invalid parameter"), false),
    ] {
        assert_eq!(classify(400, &body, false, None).is_walk_refusal(), want);
    }
    assert!(!classify(500, b"", false, None).is_walk_refusal());
}
