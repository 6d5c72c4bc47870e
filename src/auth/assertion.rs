//! The signed JWT client assertion of SMART Backend Services.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Header, encode};
use rand::RngCore;
use serde::{Deserialize, Serialize};

use super::keys::{ClientKey, KeyError, jwt_algorithm};

/// `client_assertion_type` for JWT bearer client authentication.
pub const ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// Lifetime of an assertion. The server rejects `exp` more than 5 minutes ahead; one minute of
/// margin absorbs clock skew between this host and Epic.
const ASSERTION_LIFETIME_SECS: i64 = 240;

/// Claims of a client assertion.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct AssertionClaims {
    pub iss: String,
    pub sub: String,
    pub aud: String,
    pub exp: i64,
    pub iat: i64,
    pub jti: String,
}

/// Signs a fresh assertion: iss = sub = client id, aud = the token URL exactly, a new random
/// `jti` (256 bits, 43 characters: well under Epic's 151) so no two requests ever share one.
pub fn client_assertion(
    key: &ClientKey,
    client_id: &str,
    token_url: &str,
) -> Result<String, KeyError> {
    client_assertion_with_jku(key, client_id, token_url, None)
}

/// As [`client_assertion`], with `jku` (the registered JWK Set URL) in the header when given:
/// Epic then refuses the assertion unless it equals the URL it registered.
pub fn client_assertion_with_jku(
    key: &ClientKey,
    client_id: &str,
    token_url: &str,
    jku: Option<&str>,
) -> Result<String, KeyError> {
    let now = chrono::Utc::now().timestamp();
    let mut nonce = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut nonce);
    let claims = AssertionClaims {
        iss: client_id.to_string(),
        sub: client_id.to_string(),
        aud: token_url.to_string(),
        exp: now + ASSERTION_LIFETIME_SECS,
        iat: now,
        jti: URL_SAFE_NO_PAD.encode(nonce),
    };
    let mut header = Header::new(jwt_algorithm(key.algorithm()));
    header.kid = Some(key.kid().to_string());
    header.typ = Some("JWT".into());
    header.jku = jku.map(str::to_string);
    encode(&header, &claims, key.encoding_key()).map_err(|e| KeyError::Malformed {
        kind: "signing",
        detail: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::generate_key;
    use crate::crd::Algorithm;

    #[test]
    fn assertion_has_the_required_header_and_claims() {
        let (key, _) = generate_key(Algorithm::ES384, "kid-1").unwrap();
        let a = client_assertion(&key, "client-9", "https://epic.test/oauth2/token").unwrap();
        let b = client_assertion(&key, "client-9", "https://epic.test/oauth2/token").unwrap();
        let header = jsonwebtoken::decode_header(&a).unwrap();
        assert_eq!(header.alg, jsonwebtoken::Algorithm::ES384);
        assert_eq!(header.kid.as_deref(), Some("kid-1"));
        assert_eq!(header.typ.as_deref(), Some("JWT"));
        let payload: AssertionClaims = serde_json::from_slice(
            &URL_SAFE_NO_PAD
                .decode(a.split('.').nth(1).unwrap())
                .unwrap(),
        )
        .unwrap();
        let other: AssertionClaims = serde_json::from_slice(
            &URL_SAFE_NO_PAD
                .decode(b.split('.').nth(1).unwrap())
                .unwrap(),
        )
        .unwrap();
        assert_eq!(payload.iss, "client-9");
        assert_eq!(payload.sub, "client-9");
        assert_eq!(payload.aud, "https://epic.test/oauth2/token");
        assert!(payload.exp - payload.iat <= 300);
        assert!(payload.jti.len() >= 22 && payload.jti.len() <= 151);
        assert_ne!(payload.jti, other.jti);
    }
}
