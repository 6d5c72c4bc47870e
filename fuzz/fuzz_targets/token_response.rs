//! The token endpoint's answer (any status, any body) is a token or an error, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((head, body)) = data.split_first_chunk::<2>() else {
        return;
    };
    let status = u16::from_be_bytes(*head);
    let requested = vec!["system/Practitioner.read".to_string()];
    if let Err(e) = epic_operator::auth::parse_token_response(
        status,
        body,
        &requested,
        std::time::Instant::now(),
    ) {
        let _ = (e.reason(), e.to_string());
    }
});
