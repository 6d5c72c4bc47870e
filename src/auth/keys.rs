//! Private keys that sign client assertions, and the public JWK Set users register with Epic.

use jsonwebtoken::EncodingKey;
use jsonwebtoken::jwk::{Jwk, JwkSet, PublicKeyUse};
use p384::pkcs8::{DecodePrivateKey, EncodePrivateKey, LineEnding};
use rsa::pkcs1::{DecodeRsaPrivateKey, EncodeRsaPrivateKey};
use serde_json::{Value, json};

use crate::crd::Algorithm;

/// Why a key could not be used. Never carries key material.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("the private key is not PEM text (expected a '-----BEGIN ... PRIVATE KEY-----' block)")]
    NotPem,
    /// Something else where the private key belongs: a JWK Set, a public key, a certificate.
    #[error(
        "this is {0}, not a private key: give the PEM private key whose public half is registered with Epic ('epic-operator keygen' writes it as private-key.pem beside jwks.json)"
    )]
    NotAPrivateKey(&'static str),
    #[error(
        "unsupported PEM block '{0}': use an RSA key (PKCS#1 or PKCS#8) or an EC P-384 key (SEC1 or PKCS#8)"
    )]
    UnsupportedPem(String),
    #[error(
        "the {kind} private key could not be parsed ({detail}); regenerate it with 'epic-operator keygen'"
    )]
    Malformed { kind: &'static str, detail: String },
    #[error(
        "algorithm {alg:?} needs {needs}, but the key is {found}; set the connection's algorithm to match the key"
    )]
    AlgorithmMismatch {
        alg: Algorithm,
        needs: &'static str,
        found: &'static str,
    },
    #[error("key generation failed: {0}")]
    Generate(String),
    /// The keys of a connection do not fit together (missing, unknown keyId, bad entry).
    #[error("{0}")]
    Layout(String),
}

enum KeyMaterial {
    Rsa(Box<rsa::RsaPrivateKey>),
    Ec(Box<p384::SecretKey>),
}

/// A loaded signing key with its key id and algorithm.
pub struct ClientKey {
    alg: Algorithm,
    kid: String,
    encoding: EncodingKey,
    public_jwk: Jwk,
}

impl std::fmt::Debug for ClientKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientKey")
            .field("alg", &self.alg)
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

impl ClientKey {
    /// Loads an RSA (PKCS#1/PKCS#8) or EC P-384 (SEC1/PKCS#8) private key and checks that it fits
    /// `alg`.
    pub fn from_pem(pem: &str, alg: Algorithm, kid: &str) -> Result<Self, KeyError> {
        if let Some(what) = crate::http::describe_non_pem(pem) {
            return Err(KeyError::NotAPrivateKey(what));
        }
        let label = pem
            .lines()
            .find_map(|l| {
                l.trim()
                    .strip_prefix("-----BEGIN ")
                    .and_then(|r| r.strip_suffix("-----"))
            })
            .ok_or(KeyError::NotPem)?
            .to_string();
        let material = match label.as_str() {
            "RSA PRIVATE KEY" => KeyMaterial::Rsa(Box::new(
                rsa::RsaPrivateKey::from_pkcs1_pem(pem)
                    .map_err(|e| malformed("RSA (PKCS#1)", e))?,
            )),
            "EC PRIVATE KEY" => KeyMaterial::Ec(Box::new(
                p384::SecretKey::from_sec1_pem(pem).map_err(|e| malformed("EC P-384 (SEC1)", e))?,
            )),
            "PRIVATE KEY" => match rsa::RsaPrivateKey::from_pkcs8_pem(pem) {
                Ok(k) => KeyMaterial::Rsa(Box::new(k)),
                Err(rsa_err) => match p384::SecretKey::from_pkcs8_pem(pem) {
                    Ok(k) => KeyMaterial::Ec(Box::new(k)),
                    Err(_) => return Err(malformed("PKCS#8 (neither RSA nor EC P-384)", rsa_err)),
                },
            },
            "ENCRYPTED PRIVATE KEY" => {
                return Err(KeyError::UnsupportedPem(
                    "ENCRYPTED PRIVATE KEY (decrypt it first; the Secret protects it at rest)"
                        .into(),
                ));
            }
            "PUBLIC KEY" | "RSA PUBLIC KEY" => {
                return Err(KeyError::NotAPrivateKey("a public key"));
            }
            "CERTIFICATE" => return Err(KeyError::NotAPrivateKey("a certificate")),
            other => return Err(KeyError::UnsupportedPem(other.to_string())),
        };
        Self::from_material(material, alg, kid)
    }

    fn from_material(material: KeyMaterial, alg: Algorithm, kid: &str) -> Result<Self, KeyError> {
        let encoding = match (&material, alg) {
            (KeyMaterial::Rsa(k), Algorithm::RS256 | Algorithm::RS384 | Algorithm::RS512) => {
                let der = k.to_pkcs1_der().map_err(|e| malformed("RSA", e))?;
                EncodingKey::from_rsa_der(der.as_bytes())
            }
            (KeyMaterial::Ec(k), Algorithm::ES384) => {
                let der = k.to_pkcs8_der().map_err(|e| malformed("EC P-384", e))?;
                EncodingKey::from_ec_der(der.as_bytes())
            }
            (KeyMaterial::Rsa(_), _) => {
                return Err(KeyError::AlgorithmMismatch {
                    alg,
                    needs: "an EC P-384 key",
                    found: "an RSA key",
                });
            }
            (KeyMaterial::Ec(_), _) => {
                return Err(KeyError::AlgorithmMismatch {
                    alg,
                    needs: "an RSA key",
                    found: "an EC P-384 key",
                });
            }
        };
        // jsonwebtoken derives the public members (n/e or crv/x/y) from the signing key; an
        // RSA or EC key never yields a private member there (only HMAC keys would, and none
        // is ever built here).
        let mut public_jwk = Jwk::from_encoding_key(&encoding, jwt_algorithm(alg))
            .map_err(|e| malformed("public JWK", e))?;
        public_jwk.common.key_id = Some(kid.to_string());
        public_jwk.common.public_key_use = Some(PublicKeyUse::Signature);
        Ok(Self {
            alg,
            kid: kid.to_string(),
            encoding,
            public_jwk,
        })
    }

    pub fn algorithm(&self) -> Algorithm {
        self.alg
    }

    pub fn kid(&self) -> &str {
        &self.kid
    }

    pub(crate) fn encoding_key(&self) -> &EncodingKey {
        &self.encoding
    }

    /// This key's public JWK (`kty`, `kid`, `use`, `alg` and the public members only).
    pub fn public_jwk(&self) -> &Jwk {
        &self.public_jwk
    }

    /// The public JWK Set of this one key (no private parts).
    pub fn jwks(&self) -> Value {
        public_jwk_set([self])
    }
}

/// The JWK Set of the public halves of `keys`, in the order given.
pub fn public_jwk_set<'a>(keys: impl IntoIterator<Item = &'a ClientKey>) -> Value {
    let set = JwkSet {
        keys: keys.into_iter().map(|k| k.public_jwk.clone()).collect(),
    };
    serde_json::to_value(set).unwrap_or_else(|_| json!({"keys": []}))
}

/// The JWT signing algorithm of a connection's `algorithm`.
pub(crate) fn jwt_algorithm(alg: Algorithm) -> jsonwebtoken::Algorithm {
    match alg {
        Algorithm::RS256 => jsonwebtoken::Algorithm::RS256,
        Algorithm::RS384 => jsonwebtoken::Algorithm::RS384,
        Algorithm::RS512 => jsonwebtoken::Algorithm::RS512,
        Algorithm::ES384 => jsonwebtoken::Algorithm::ES384,
    }
}

fn malformed(kind: &'static str, e: impl std::fmt::Display) -> KeyError {
    KeyError::Malformed {
        kind,
        detail: e.to_string(),
    }
}

/// Generates a new private key for `alg` and returns it loaded, with its PEM (PKCS#8).
pub fn generate_key(alg: Algorithm, kid: &str) -> Result<(ClientKey, String), KeyError> {
    let mut rng = rand::rngs::OsRng;
    let (material, pem) = match alg {
        Algorithm::ES384 => {
            let k = p384::SecretKey::random(&mut rng);
            let pem = k
                .to_pkcs8_pem(LineEnding::LF)
                .map_err(|e| KeyError::Generate(e.to_string()))?;
            (KeyMaterial::Ec(Box::new(k)), pem.to_string())
        }
        _ => {
            let k = rsa::RsaPrivateKey::new(&mut rng, 2048)
                .map_err(|e| KeyError::Generate(e.to_string()))?;
            let pem = rsa::pkcs8::EncodePrivateKey::to_pkcs8_pem(&k, LineEnding::LF)
                .map_err(|e| KeyError::Generate(e.to_string()))?;
            (KeyMaterial::Rsa(Box::new(k)), pem.to_string())
        }
    };
    Ok((ClientKey::from_material(material, alg, kid)?, pem))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_round_trip_through_pem() {
        for alg in [Algorithm::RS384, Algorithm::ES384] {
            let (key, pem) = generate_key(alg, "k1").unwrap();
            let again = ClientKey::from_pem(&pem, alg, "k1").unwrap();
            assert_eq!(key.jwks(), again.jwks());
            assert!(
                !key.jwks().to_string().contains("\"d\""),
                "no private parts in the JWKS"
            );
            assert!(!format!("{key:?}").contains("PRIVATE"));
        }
    }

    #[test]
    fn pkcs1_and_sec1_are_accepted() {
        let (_, pem) = generate_key(Algorithm::RS384, "k").unwrap();
        let rsa = rsa::RsaPrivateKey::from_pkcs8_pem(&pem).unwrap();
        let pkcs1 = rsa.to_pkcs1_pem(LineEnding::LF).unwrap();
        assert!(ClientKey::from_pem(&pkcs1, Algorithm::RS256, "k").is_ok());
        let ec = p384::SecretKey::random(&mut rand::rngs::OsRng);
        let sec1 = ec.to_sec1_pem(LineEnding::LF).unwrap();
        assert!(ClientKey::from_pem(&sec1, Algorithm::ES384, "k").is_ok());
    }

    #[test]
    fn mismatch_and_garbage_are_clear_errors() {
        let (_, pem) = generate_key(Algorithm::ES384, "k").unwrap();
        let err = ClientKey::from_pem(&pem, Algorithm::RS384, "k").unwrap_err();
        assert!(err.to_string().contains("needs an RSA key"), "{err}");
        let err = ClientKey::from_pem("hello", Algorithm::RS384, "k").unwrap_err();
        assert!(matches!(err, KeyError::NotPem));
        let bad = "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n";
        let err = ClientKey::from_pem(bad, Algorithm::RS384, "k").unwrap_err();
        assert!(matches!(err, KeyError::Malformed { .. }), "{err}");
        assert!(!err.to_string().contains("AAAA"));
        let cert = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
        assert!(matches!(
            ClientKey::from_pem(cert, Algorithm::RS384, "k"),
            Err(KeyError::NotAPrivateKey("a certificate"))
        ));
        let public = "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n";
        let err = ClientKey::from_pem(public, Algorithm::RS384, "k").unwrap_err();
        assert!(
            err.to_string().contains("a public key, not a private key"),
            "{err}"
        );
        let (key, _) = generate_key(Algorithm::RS384, "k").unwrap();
        let jwks = key.jwks().to_string();
        let err = ClientKey::from_pem(&jwks, Algorithm::RS384, "k").unwrap_err();
        assert!(err.to_string().contains("JWK Set"), "{err}");
        assert!(err.to_string().contains("private-key.pem"), "{err}");
    }
}
