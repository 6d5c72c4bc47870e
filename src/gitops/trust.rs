//! The TLS of a command-line connection: the manifest's `caBundle`, plus CA and client
//! certificate files given as flags. The command line cannot read the Secrets a manifest's
//! `caSecretRef` or `clientCertificateSecretRef` name, so those need the files instead.

use std::path::{Path, PathBuf};

use crate::crd::EpicConnectionSpec;
use crate::http::{ClientCertificate, PemSource, TlsOptions};

/// TLS files given on the command line.
#[derive(Clone, Debug, Default)]
pub struct TlsFiles {
    /// PEM CA certificates trusted besides the system roots.
    pub ca_files: Vec<PathBuf>,
    /// Client certificate (PEM chain) and its private key, for mutual TLS.
    pub client_certificate: Option<(PathBuf, PathBuf)>,
}

/// The TLS options for `spec` (from the manifest at `manifest`) and the files.
pub fn tls_for(
    manifest: &Path,
    spec: &EpicConnectionSpec,
    files: &TlsFiles,
) -> Result<TlsOptions, String> {
    let mut out = TlsOptions::default();
    if let Some(pem) = &spec.trust.ca_bundle {
        out.extra_roots.push(PemSource::new(
            format!("{}: spec.caBundle", manifest.display()),
            pem.clone(),
        ));
    }
    for path in &files.ca_files {
        out.extra_roots.push(PemSource::read_file(path)?);
    }
    if let Some(r) = &spec.trust.ca_secret_ref
        && files.ca_files.is_empty()
    {
        return Err(format!(
            "{}: spec.caSecretRef names Secret {}, which the command line does not read: pass the same CA certificates with --ca-file PEM (for example from kubectl get secret {} -o jsonpath='{{.data.{}}}' | base64 -d)",
            manifest.display(),
            r.name,
            r.name,
            r.entry().replace('.', "\\.")
        ));
    }
    match (
        &files.client_certificate,
        &spec.trust.client_certificate_secret_ref,
    ) {
        (Some((cert, key)), _) => {
            out.client_certificate = Some(ClientCertificate {
                cert: PemSource::read_file(cert)?,
                key: PemSource::read_file(key)?,
            });
        }
        (None, Some(r)) => {
            return Err(format!(
                "{}: spec.clientCertificateSecretRef names Secret {}, which the command line does not read: pass its tls.crt and tls.key with --client-cert PEM --client-key PEM",
                manifest.display(),
                r.name
            ));
        }
        (None, None) => {}
    }
    Ok(out)
}
