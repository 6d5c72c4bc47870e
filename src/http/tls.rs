//! Trust beyond the system roots and client certificates: the PEM a user hands over is
//! checked here, so a wrong file (a key where a CA belongs, a JWK Set where a key belongs)
//! is named with what it is and where it came from, before any connection is tried.

use std::io::BufRead;

use rustls::pki_types::pem::{self, SectionKind};
use sha2::{Digest, Sha256};

/// PEM text and where it came from ("spec.caBundle", "Secret hospital-ca entry ca.crt", a
/// file path), so every error can name its source.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PemSource {
    pub origin: String,
    pub text: String,
}

impl PemSource {
    pub fn new(origin: impl Into<String>, text: impl Into<String>) -> Self {
        Self {
            origin: origin.into(),
            text: text.into(),
        }
    }

    /// Reads a PEM file; the error names the file.
    pub fn read_file(path: &std::path::Path) -> Result<Self, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("{}: cannot read the file: {e}", path.display()))?;
        Ok(Self::new(path.display().to_string(), text))
    }
}

/// A client certificate chain and its private key (mutual TLS).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientCertificate {
    pub cert: PemSource,
    pub key: PemSource,
}

/// What a connection's TLS adds to the defaults (system roots, no client certificate).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TlsOptions {
    /// CA certificates trusted besides the system roots.
    pub extra_roots: Vec<PemSource>,
    pub client_certificate: Option<ClientCertificate>,
}

impl TlsOptions {
    pub fn is_default(&self) -> bool {
        self.extra_roots.is_empty() && self.client_certificate.is_none()
    }

    /// These options plus `more` (roots of both; `more`'s client certificate wins).
    pub fn merged(&self, more: &TlsOptions) -> TlsOptions {
        let mut out = self.clone();
        out.extra_roots.extend(more.extra_roots.iter().cloned());
        if more.client_certificate.is_some() {
            out.client_certificate = more.client_certificate.clone();
        }
        out
    }

    /// A digest of the contents, so a changed CA or certificate rebuilds the connection
    /// (the material itself never goes into a fingerprint).
    pub fn digest(&self) -> String {
        let mut h = Sha256::new();
        for r in &self.extra_roots {
            h.update(r.text.as_bytes());
            h.update([0]);
        }
        if let Some(c) = &self.client_certificate {
            h.update(c.cert.text.as_bytes());
            h.update([1]);
            h.update(c.key.text.as_bytes());
        }
        let d = h.finalize();
        d.iter().take(8).map(|b| format!("{b:02x}")).collect()
    }
}

/// The PEM sections of a text, by kind; an unreadable section is an error naming `origin`.
fn sections(src: &PemSource) -> Result<Vec<(SectionKind, Vec<u8>)>, String> {
    let mut reader = std::io::Cursor::new(src.text.as_bytes());
    let mut out = Vec::new();
    // Bounded by the input: every call consumes at least one line or ends.
    while reader.fill_buf().map(|b| !b.is_empty()).unwrap_or(false) {
        match pem::from_buf(&mut reader) {
            Ok(Some(section)) => out.push(section),
            Ok(None) => break,
            Err(e) => {
                return Err(format!(
                    "{}: a PEM block is damaged ({e}): copy the PEM again, including the BEGIN and END lines",
                    src.origin
                ));
            }
        }
    }
    Ok(out)
}

/// What a text that is not the expected PEM looks like, for the error.
pub fn describe_non_pem(text: &str) -> Option<&'static str> {
    let trimmed = text.trim_start();
    if trimmed.starts_with('{') {
        let json: serde_json::Value = serde_json::from_str(trimmed).ok()?;
        if json.get("keys").is_some_and(|k| k.is_array()) {
            return Some(
                "a JWK Set (public keys, the jwks.json registered with Epic), not a private key",
            );
        }
        if json.get("kty").is_some() {
            return Some("a single JWK, not a PEM private key");
        }
        return Some("JSON, not PEM");
    }
    None
}

fn kind_name(kind: SectionKind) -> &'static str {
    match kind {
        SectionKind::Certificate => "a certificate",
        SectionKind::PublicKey => "a public key",
        SectionKind::RsaPrivateKey | SectionKind::PrivateKey | SectionKind::EcPrivateKey => {
            "a private key"
        }
        SectionKind::Crl => "a certificate revocation list",
        SectionKind::Csr => "a certificate signing request",
        _ => "an unsupported PEM block",
    }
}

/// The CA certificates of `src`, checked: certificates only, at least one.
pub fn ca_certificates(src: &PemSource) -> Result<Vec<reqwest::Certificate>, String> {
    if let Some(what) = describe_non_pem(&src.text) {
        return Err(format!(
            "{} holds {what}: it must hold the PEM CA certificate(s) (-----BEGIN CERTIFICATE-----) of the CA that issued Epic's certificate",
            src.origin
        ));
    }
    let found = sections(src)?;
    if let Some((kind, _)) = found.iter().find(|(k, _)| *k != SectionKind::Certificate) {
        return Err(format!(
            "{} holds {}: a CA bundle holds only certificates (-----BEGIN CERTIFICATE-----); remove it (and never put a private key in a CA bundle)",
            src.origin,
            kind_name(*kind)
        ));
    }
    if found.is_empty() {
        return Err(format!(
            "{} holds no PEM certificate: give the CA certificate(s) (-----BEGIN CERTIFICATE-----) of the CA that issued Epic's certificate",
            src.origin
        ));
    }
    found
        .into_iter()
        .map(|(_, der)| {
            reqwest::Certificate::from_der(&der).map_err(|_| {
                format!(
                    "{}: a certificate could not be read: copy the PEM again",
                    src.origin
                )
            })
        })
        .collect()
}

/// The client identity of `c`, checked: a certificate chain in `cert`, one private key in
/// `key`, each error naming the file or entry it came from.
pub fn identity(c: &ClientCertificate) -> Result<reqwest::Identity, String> {
    let certs = sections(&c.cert)?;
    if certs.is_empty() || certs.iter().any(|(k, _)| *k != SectionKind::Certificate) {
        let what = certs
            .iter()
            .find(|(k, _)| *k != SectionKind::Certificate)
            .map(|(k, _)| kind_name(*k))
            .unwrap_or("no PEM certificate");
        return Err(format!(
            "{} holds {what}: the client certificate must be PEM certificate(s) (-----BEGIN CERTIFICATE-----), the client's own first",
            c.cert.origin
        ));
    }
    if let Some(what) = describe_non_pem(&c.key.text) {
        return Err(format!(
            "{} holds {what}: give the PEM private key of the client certificate",
            c.key.origin
        ));
    }
    let keys = sections(&c.key)?;
    let private = |k: &SectionKind| {
        matches!(
            k,
            SectionKind::PrivateKey | SectionKind::RsaPrivateKey | SectionKind::EcPrivateKey
        )
    };
    match keys.as_slice() {
        [(k, _)] if private(k) => {}
        [] => {
            return Err(format!(
                "{} holds no PEM private key: give the (unencrypted) private key of the client certificate",
                c.key.origin
            ));
        }
        [(k, _)] => {
            return Err(format!(
                "{} holds {}, not the private key: give the private key of the client certificate (-----BEGIN PRIVATE KEY-----)",
                c.key.origin,
                kind_name(*k)
            ));
        }
        _ => {
            return Err(format!(
                "{} holds {} PEM blocks: it must hold exactly one private key",
                c.key.origin,
                keys.len()
            ));
        }
    }
    let mut both = c.cert.text.clone();
    both.push('\n');
    both.push_str(&c.key.text);
    reqwest::Identity::from_pem(both.as_bytes()).map_err(|_| {
        format!(
            "{} and {}: the client certificate and key could not be used together: check that the key belongs to the certificate",
            c.cert.origin, c.key.origin
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrong_files_are_named_with_what_they_are() {
        let jwks = PemSource::new("/keys/jwks.json", r#"{"keys":[{"kty":"RSA"}]}"#);
        let e = ca_certificates(&jwks).unwrap_err();
        assert!(
            e.contains("/keys/jwks.json") && e.contains("JWK Set"),
            "{e}"
        );
        let key = PemSource::new(
            "spec.caBundle",
            "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
        );
        let e = ca_certificates(&key).unwrap_err();
        assert!(
            e.contains("spec.caBundle") && e.contains("a private key"),
            "{e}"
        );
        assert!(!e.contains("AAAA"), "{e}");
        let empty = PemSource::new("Secret ca entry ca.crt", "hello");
        let e = ca_certificates(&empty).unwrap_err();
        assert!(
            e.contains("Secret ca entry ca.crt") && e.contains("no PEM"),
            "{e}"
        );
    }

    #[test]
    fn a_public_key_or_jwk_set_is_not_a_client_key() {
        let cert = PemSource::new(
            "tls.crt",
            "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
        );
        let public = PemSource::new(
            "/certs/client.key",
            "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n",
        );
        let e = identity(&ClientCertificate {
            cert: cert.clone(),
            key: public,
        })
        .unwrap_err();
        assert!(
            e.contains("/certs/client.key") && e.contains("a public key"),
            "{e}"
        );
        let jwks = PemSource::new("/certs/client.key", r#"{"keys":[]}"#);
        let e = identity(&ClientCertificate { cert, key: jwks }).unwrap_err();
        assert!(e.contains("JWK Set"), "{e}");
    }

    #[test]
    fn digests_change_with_content_only() {
        let a = TlsOptions {
            extra_roots: vec![PemSource::new("x", "one")],
            client_certificate: None,
        };
        let b = TlsOptions {
            extra_roots: vec![PemSource::new("y", "one")],
            client_certificate: None,
        };
        assert_eq!(a.digest(), b.digest());
        assert_ne!(a.digest(), TlsOptions::default().digest());
        assert_eq!(a.merged(&b).extra_roots.len(), 2);
    }
}
