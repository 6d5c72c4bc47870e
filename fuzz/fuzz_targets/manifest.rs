//! Manifests from Git (`plan -f`, `-f -`): YAML decoding, the CRD schema check, duplicate
//! detection and the spec checks must refuse bad input with an error, never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = epic_operator::gitops::load_manifest_text(text, std::path::Path::new("fuzz.yaml"));
    }
});
