//! The TLS of one EpicConnection: its CA bundle (inline or from a Secret) and its client
//! certificate Secret, read each time the connection is (re)built, so a renewed certificate
//! takes effect as a rotated key does, within a minute.

use k8s_openapi::api::core::v1::Secret;
use kube::Api;

use crate::crd::{EpicConnectionSpec, Reason, TLS_CERT_KEY, TLS_KEY_KEY};
use crate::http::{ClientCertificate, PemSource, TlsOptions};

/// Why the TLS settings could not be read.
pub struct TlsFailure {
    pub reason: Reason,
    pub message: String,
    /// The Kubernetes API failed (worth retrying, not the user's fault).
    pub transient: bool,
}

fn invalid(message: String) -> TlsFailure {
    TlsFailure {
        reason: Reason::InvalidConnection,
        message,
        transient: false,
    }
}

async fn secret(api: &Api<Secret>, name: &str, what: &str) -> Result<Secret, TlsFailure> {
    match api.get_opt(name).await {
        Ok(Some(s)) => Ok(s),
        Ok(None) => Err(invalid(format!(
            "Secret {name} ({what}) not found in the EpicConnection's namespace: create it, or remove the reference"
        ))),
        Err(e) => Err(TlsFailure {
            reason: Reason::KubernetesError,
            message: format!("cannot read Secret {name}: {e}"),
            transient: true,
        }),
    }
}

fn entry(secret: &Secret, name: &str, key: &str, what: &str) -> Result<PemSource, TlsFailure> {
    let origin = format!("Secret {name} entry {key}");
    let bytes = secret
        .data
        .as_ref()
        .and_then(|d| d.get(key))
        .map(|b| b.0.clone())
        .or_else(|| {
            secret
                .string_data
                .as_ref()
                .and_then(|d| d.get(key))
                .map(|s| s.clone().into_bytes())
        })
        .ok_or_else(|| {
            invalid(format!(
                "Secret {name} has no entry {key} ({what}): add it, or name the entry that holds it"
            ))
        })?;
    let text = String::from_utf8(bytes)
        .map_err(|_| invalid(format!("{origin} is not PEM text (not UTF-8)")))?;
    Ok(PemSource::new(origin, text))
}

/// The connection's own TLS options (empty when it sets none).
pub async fn options(
    kube: &kube::Client,
    namespace: &str,
    spec: &EpicConnectionSpec,
) -> Result<TlsOptions, TlsFailure> {
    let trust = &spec.trust;
    let mut out = TlsOptions::default();
    if trust.is_default() {
        return Ok(out);
    }
    let api: Api<Secret> = Api::namespaced(kube.clone(), namespace);
    if let Some(pem) = &trust.ca_bundle {
        out.extra_roots
            .push(PemSource::new("spec.caBundle", pem.clone()));
    }
    if let Some(r) = &trust.ca_secret_ref {
        let s = secret(&api, &r.name, "caSecretRef").await?;
        out.extra_roots
            .push(entry(&s, &r.name, r.entry(), "the CA certificates")?);
    }
    if let Some(r) = &trust.client_certificate_secret_ref {
        let s = secret(&api, &r.name, "clientCertificateSecretRef").await?;
        out.client_certificate = Some(ClientCertificate {
            cert: entry(&s, &r.name, TLS_CERT_KEY, "the client certificate")?,
            key: entry(
                &s,
                &r.name,
                TLS_KEY_KEY,
                "the client certificate's private key",
            )?,
        });
    }
    Ok(out)
}
