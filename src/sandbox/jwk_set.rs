//! What the sandbox takes from a JWK Set URL: only http(s) to a loopback host, and only a set of
//! public keys, each with a kid.

use jsonwebtoken::jwk::{Jwk, JwkSet};
use serde_json::Value;

/// JWK members that carry private or secret key material (RFC 7518 §6.2.2, §6.3.2, §6.4.1).
/// A JWK Set URL is public: a set with any of them has leaked its keys.
const PRIVATE_MEMBERS: &[&str] = &["d", "p", "q", "dp", "dq", "qi", "oth", "k"];

/// Checks that a JWK Set URL is http or https to a loopback host (127.0.0.0/8, ::1 or
/// `localhost`), the only hosts the sandbox will fetch from.
pub(crate) fn check_loopback_url(raw: &str) -> Result<(), String> {
    let url = url::Url::parse(raw).map_err(|e| format!("not a URL: {e}"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!("scheme {:?} is not http or https", url.scheme()));
    }
    let loopback = match url.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    };
    if loopback {
        Ok(())
    } else {
        Err(format!(
            "host {} is not a loopback host: the sandbox fetches keys only from 127.0.0.0/8, ::1 or localhost",
            url.host_str().unwrap_or("(none)")
        ))
    }
}

/// The first private member found in a JWK Set document, with the kid of its key.
pub(crate) fn private_member(doc: &Value) -> Option<(&'static str, String)> {
    let keys = doc.get("keys")?.as_array()?;
    keys.iter().find_map(|k| {
        let member = PRIVATE_MEMBERS.iter().find(|m| k.get(**m).is_some())?;
        let kid = k
            .get("kid")
            .and_then(Value::as_str)
            .unwrap_or("(no kid)")
            .to_string();
        Some((*member, kid))
    })
}

/// Reads a fetched JWK Set: public keys only, each with a kid (assertions name keys by kid).
pub(super) fn parse_public_jwks(doc: &Value) -> Result<Vec<Jwk>, String> {
    if let Some((member, kid)) = private_member(doc) {
        return Err(format!(
            "the JWK Set URL publishes private key material (member {member:?} of key {kid:?}); publish public keys only"
        ));
    }
    if doc.get("keys").and_then(Value::as_array).is_none() {
        return Err("the response is not a JWK Set (no \"keys\" array)".into());
    }
    let set: JwkSet = serde_json::from_value(doc.clone())
        .map_err(|e| format!("the response is not a valid JWK Set: {e}"))?;
    if set.keys.iter().any(|k| k.common.key_id.is_none()) {
        return Err("a key in the JWK Set has no kid (every key needs one)".into());
    }
    Ok(set.keys)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn only_loopback_urls_are_fetched() {
        for ok in [
            "http://127.0.0.1:8090/jwks",
            "http://127.9.9.9/jwks",
            "https://[::1]:8443/jwks",
            "http://LOCALHOST:1/x",
        ] {
            assert!(check_loopback_url(ok).is_ok(), "{ok}");
        }
        for bad in [
            "http://10.0.0.1/jwks",
            "https://example.org/jwks",
            "http://localhost.example.org/jwks",
            "http://[::ffff:10.0.0.1]/jwks",
            "http://169.254.169.254/latest/meta-data",
            "file:///etc/passwd",
            "ftp://127.0.0.1/jwks",
            "not a url",
        ] {
            assert!(check_loopback_url(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn private_members_are_found_and_public_sets_read() {
        let (key, _) = crate::auth::generate_key(crate::crd::Algorithm::ES384, "k1").expect("key");
        let public = key.jwks();
        assert!(private_member(&public).is_none());
        assert_eq!(parse_public_jwks(&public).unwrap().len(), 1);
        let mut leaked = public.clone();
        leaked["keys"][0]["d"] = json!("c2VjcmV0");
        assert_eq!(private_member(&leaked), Some(("d", "k1".to_string())));
        let e = parse_public_jwks(&leaked).unwrap_err();
        assert!(e.contains("publishes private key material"), "{e}");
        assert!(!e.contains("c2VjcmV0"), "the secret is not echoed: {e}");
        let e = parse_public_jwks(&json!({"issuer": "x"})).unwrap_err();
        assert!(e.contains("not a JWK Set"), "{e}");
        let mut no_kid = public;
        no_kid["keys"][0].as_object_mut().unwrap().remove("kid");
        assert!(parse_public_jwks(&no_kid).unwrap_err().contains("no kid"));
    }
}
