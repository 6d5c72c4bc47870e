//! Keys from Secrets and registrations: a PEM private key for every algorithm, and a JWK Set
//! (the sandbox's client registration and the decoding keys made from it), and Secret entries
//! of the several-keys form.
#![no_main]

use epic_operator::auth::ClientKey;
use epic_operator::crd::Algorithm;
use epic_operator::sandbox::RegisteredClient;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    for alg in [Algorithm::RS384, Algorithm::ES384, Algorithm::RS256, Algorithm::RS512] {
        if let Ok(key) = ClientKey::from_pem(text, alg, "kid") {
            let _ = key.jwks();
        }
    }
    // The same bytes as a Secret entry of the several-keys form, and as its entry name.
    let layout = epic_operator::crd::KeyLayout::Several {
        pinned: None,
        periods: epic_operator::crd::RotationPeriods::default(),
        managed: false,
    };
    let name = format!("{}.pem", text.chars().take(80).collect::<String>());
    let entries = std::collections::BTreeMap::from([
        ("k.pem".to_string(), data.to_vec()),
        (name, data.to_vec()),
    ]);
    if let Ok(ring) = epic_operator::auth::load_ring(
        &layout,
        &entries,
        Algorithm::ES384,
        |_| chrono::Utc::now(),
        "fuzz",
    ) {
        let _ = ring.jwks();
        let _ = ring.signing_at(chrono::Utc::now());
    }
    if let Ok(v) = serde_json::from_str::<serde_json::Value>(text)
        && let Ok(client) = RegisteredClient::new("fuzz", &v, Vec::new())
    {
        for k in &client.keys {
            let _ = jsonwebtoken::DecodingKey::from_jwk(k);
        }
    }
});
