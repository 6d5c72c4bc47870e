//! Durations from settings and from Epic: resync intervals and walk limits, Retry-After, and
//! token lifetimes (`expires_in` as a number or a string).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = epic_operator::util::parse_duration(text);
    let _ = epic_operator::fhir::parse_retry_after(text);
    let _ = epic_operator::auth::token_lifetime(Some(&serde_json::Value::String(text.into())));
    if let Ok(v) = serde_json::from_str::<serde_json::Value>(text) {
        let _ = epic_operator::auth::token_lifetime(Some(&v));
    }
});
